//! A capture file read in a thread of its own, a few batches ahead of whoever decodes them.
//!
//! Reading is the copy out of the page cache (or the decompression) and the walk of the
//! records; on the benchmark capture it is about as much work as decoding, so the two threads
//! nearly halve the wall time when the machine has a core to spare. The batches still arrive
//! one at a time in file order, each with the reader's progress as it was after that batch,
//! and a problem arrives after every batch before it: to the caller the file reads exactly as
//! it does on one thread ([`Source`] gives the same batches, progress and errors either way).
//! `packets --stats` ([`crate::scan::PacketScan`]) reads ahead through it; the pipeline's
//! reader binding (`portlens._core.CaptureReader`) reads through it on the caller's thread,
//! and `portlens.pipeline.ahead` runs that, with the decoder, in a Python thread instead.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

use super::{CaptureError, CaptureReader, InterfaceInfo};
use crate::frames::FrameBatch;

/// Batches the read-ahead thread may have read before the decoder takes them: enough to ride
/// out a slow read or a slow batch, few enough that the chunks in flight stay within a few MB
/// and warm in the cache.
pub const READ_AHEAD_BATCHES: usize = 2;

/// What callers read of the reader between batches (progress bars, file statistics, the
/// final summary), as of the batch they were last given.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub frames_read: u64,
    pub bytes_read: u64,
    pub frames_cut: u64,
    pub interfaces: Vec<InterfaceInfo>,
    pub skipped_blocks: BTreeMap<u32, u64>,
}

impl Progress {
    pub fn of(reader: &CaptureReader) -> Progress {
        let mut p = Progress::default();
        p.update(reader);
        p
    }

    /// Brings `self` up to `reader`, copying the interfaces only when there are new ones (a
    /// pcapng file declares them as it goes; they are never removed).
    pub fn update(&mut self, reader: &CaptureReader) {
        self.frames_read = reader.frames_read;
        self.bytes_read = reader.bytes_read;
        self.frames_cut = reader.frames_cut();
        if reader.interfaces().len() != self.interfaces.len() {
            self.interfaces = reader.interfaces().to_vec();
        }
        self.skipped_blocks = reader.skipped_blocks();
    }
}

/// A thread that makes a file's batches ahead of its caller, at most [`READ_AHEAD_BATCHES`]
/// waiting, and takes back the ones the caller is done with for their memory: [`Source`]'s
/// (read and walked) and [`crate::decoded::DecodedFile`]'s (read, walked and decoded).
/// `M` is what the thread hands over, `S` a spare handed back, `W` what the thread returns
/// when it ends (the reader, for its final state).
pub struct AheadThread<M, S, W> {
    batches: Receiver<Made<M>>,
    spares: Sender<S>,
    thread: JoinHandle<W>,
}

/// What the thread hands over: a batch, or the end of the file (with the problem that ended
/// reading, after every batch before it).
pub enum Made<M> {
    Batch(M),
    End(Option<CaptureError>),
}

impl<M: Send + 'static, S: Send + 'static, W: Send + 'static> AheadThread<M, S, W> {
    /// Runs `make` in a thread of its own, which sends its batches and then the end to the
    /// first channel (stopping early when a send fails: the caller is gone) and finds spares
    /// in the second.
    pub fn spawn(
        make: impl FnOnce(&SyncSender<Made<M>>, &Receiver<S>) -> W + Send + 'static,
    ) -> Self {
        let (to_caller, batches) = mpsc::sync_channel(READ_AHEAD_BATCHES);
        let (spares, from_caller) = mpsc::channel();
        let thread = thread::spawn(move || make(&to_caller, &from_caller));
        AheadThread {
            batches,
            spares,
            thread,
        }
    }

    /// The next batch or the end. A thread that ended without saying so panicked: that is said
    /// as a problem of the file rather than passed on.
    pub fn next(&self) -> Made<M> {
        self.batches.recv().unwrap_or_else(|mpsc::RecvError| {
            Made::End(Some(CaptureError(
                "reading stopped unexpectedly".to_string(),
            )))
        })
    }

    /// The next batch or the end if one is there already; `None` if the thread has not made
    /// it yet.
    pub fn try_next(&self) -> Option<Made<M>> {
        match self.batches.try_recv() {
            Ok(made) => Some(made),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(self.next()),
        }
    }

    /// A batch the caller is done with. The thread may have ended meanwhile: it is then
    /// simply dropped.
    pub fn give_back(&self, spare: S) {
        let _ = self.spares.send(spare);
    }

    /// Ends the thread (which has ended, or ends now that its channels are closed: one
    /// waiting to hand over a batch stops there) and returns what it returned, `None` if it
    /// panicked.
    pub fn join(self) -> Option<W> {
        let AheadThread {
            batches,
            spares,
            thread,
        } = self;
        drop((batches, spares));
        thread.join().ok()
    }
}

/// A capture file's batches, read here or ahead in a thread.
pub struct Source {
    reading: Reading,
    progress: Progress,
}

enum Reading {
    /// In this thread: each call reads its chunk.
    Here(Box<CaptureReader>),
    /// In the read-ahead thread, until the end of the file or `close`.
    Ahead(ReadAhead),
    /// Only while moving from one to the other, or after the thread panicked.
    Moving,
}

/// The read-ahead thread: batches to the decoder, in file order, each with the reader's
/// progress after it, and batches the decoder is done with back to the reader, whose memory
/// it reuses.
type ReadAhead = AheadThread<(Box<FrameBatch>, Box<Progress>), Box<FrameBatch>, Box<CaptureReader>>;

impl Source {
    pub fn new(reader: CaptureReader) -> Source {
        Source {
            progress: Progress::of(&reader),
            reading: Reading::Here(Box::new(reader)),
        }
    }

    /// Reads the rest of the file in a thread of its own, ahead of the calls that take its
    /// batches (a no-op once reading ended or was moved already).
    pub fn read_ahead(&mut self) {
        let reader = match std::mem::replace(&mut self.reading, Reading::Moving) {
            Reading::Here(reader) => reader,
            other => {
                self.reading = other;
                return;
            }
        };
        self.reading = Reading::Ahead(AheadThread::spawn(move |to_decoder, from_decoder| {
            read_batches(reader, to_decoder, from_decoder)
        }));
    }

    /// The reader itself while it reads in this thread (for the zero-copy walk of
    /// [`CaptureReader::next_frames`]); `None` while it reads ahead.
    pub fn here(&mut self) -> Option<&mut CaptureReader> {
        match &mut self.reading {
            Reading::Here(reader) => Some(reader),
            _ => None,
        }
    }

    /// The next batch, the problem that ended reading after the batches before it, or `None`
    /// at the end. `spare`: a batch the caller is done with, whose memory the reader reuses.
    pub fn next_batch(
        &mut self,
        spare: Option<Box<FrameBatch>>,
    ) -> Option<Result<Box<FrameBatch>, CaptureError>> {
        match &mut self.reading {
            Reading::Here(reader) => {
                let next = reader.next_batch_reusing(spare.map(|b| *b));
                self.progress.update(reader);
                Some(next?.map(Box::new))
            }
            Reading::Ahead(ahead) => {
                if let Some(spare) = spare {
                    ahead.give_back(spare);
                }
                match ahead.next() {
                    Made::Batch((batch, progress)) => {
                        self.progress = *progress;
                        Some(Ok(batch))
                    }
                    Made::End(problem) => {
                        self.join();
                        problem.map(Err)
                    }
                }
            }
            Reading::Moving => None,
        }
    }

    /// After the caller read from [`here`](Self::here) itself: its progress brought up to it.
    pub fn sync_progress(&mut self) {
        if let Reading::Here(reader) = &self.reading {
            self.progress.update(reader);
        }
    }

    /// The reader's progress as of the last batch given.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Brings the reader back from the read-ahead thread (which has ended, or ends now that
    /// its channels are closed), with its final state.
    fn join(&mut self) {
        if let Reading::Ahead(ahead) = std::mem::replace(&mut self.reading, Reading::Moving) {
            if let Some(reader) = ahead.join() {
                self.progress.update(&reader);
                self.reading = Reading::Here(reader);
            }
        }
    }

    /// Stops reading and closes the file (and ends the read-ahead thread).
    pub fn close(&mut self) {
        self.join();
        if let Reading::Here(reader) = &mut self.reading {
            reader.close();
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.join();
    }
}

/// The read-ahead thread: every batch of `reader` to the decoder, then the end; stops early
/// when the decoder hangs up (closed, dropped). Returns the reader for its final state.
fn read_batches(
    mut reader: Box<CaptureReader>,
    to_decoder: &SyncSender<Made<(Box<FrameBatch>, Box<Progress>)>>,
    from_decoder: &Receiver<Box<FrameBatch>>,
) -> Box<CaptureReader> {
    let mut progress = Progress::of(&reader);
    loop {
        let spare = from_decoder.try_recv().ok().map(|b| *b);
        let message = match reader.next_batch_reusing(spare) {
            None => Made::End(None),
            Some(Err(e)) => Made::End(Some(e)),
            Some(Ok(batch)) => {
                progress.update(&reader);
                Made::Batch((Box::new(batch), Box::new(progress.clone())))
            }
        };
        let ended = matches!(message, Made::End(_));
        if to_decoder.send(message).is_err() || ended {
            return reader;
        }
    }
}
