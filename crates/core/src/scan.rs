//! A capture file read, decoded and counted in one pass: what `portlens packets --stats` runs.
//!
//! Every buffer is reused from batch to batch: the reader's chunk and frame columns
//! ([`CaptureReader::next_frames`], or the batches a read-ahead thread hands back and forth)
//! and the decoder's packet columns ([`Decoder::decode_into`]), so that after the first
//! batches nothing is allocated, and no fresh page faulted in, per batch. A chunk's frames are
//! decoded [`SLICE_ROWS`] at a time, so the packet columns the counts read back stay in the
//! CPU's cache.
//!
//! With [`PacketScan::read_ahead`], a second thread reads and walks the file (the copy out of
//! the page cache, or the decompression) while the caller's thread decodes and counts the
//! batch before: the batches still reach the decoder one at a time in file order, so the
//! decoder's state (fragment reassembly) and the counts are exactly those of the single
//! thread.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

use crate::capture::{CaptureError, CaptureReader, Compression, Format, InterfaceInfo};
use crate::decode::{Columns, DecodeOptions, Decoded, Decoder};
use crate::frames::{FrameBatch, Frames};
use crate::summary::CaptureCounts;

/// Frames decoded into the columns at a time: about 0.5 MB of columns.
pub const SLICE_ROWS: usize = 1024;

/// The scan's chunk: small enough that the chunk the kernel just copied is still in the
/// cache while its records are walked and decoded. On the 2 M benchmark capture, 1 MiB
/// chunks cost 0.48 CPU s where 8 MiB ones (the pipeline's, sized for Python's per-batch
/// overhead) cost 0.87 (docs/benchmarks.md); the scan has no per-batch Python to amortise.
pub const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Batches the read-ahead thread may have read before the decoder takes them: enough to ride
/// out a slow read or a slow batch, few enough that the chunks in flight (each about twice
/// [`SCAN_CHUNK_BYTES`]) stay within a few MB and warm in the cache.
pub const READ_AHEAD_BATCHES: usize = 2;

/// One capture file, read, decoded and counted batch by batch.
pub struct PacketScan {
    reading: Reading,
    /// The file's format and compression, known from the open.
    pub format: Format,
    pub compression: Option<Compression>,
    pub total_bytes: u64,
    /// The reader's progress as of the last batch counted (see [`Progress`]).
    progress: Progress,
    pub decoder: Decoder,
    pub counts: CaptureCounts,
    options: DecodeOptions,
    columns: Columns,
}

/// Where the reader is.
enum Reading {
    /// In this thread: each step reads its chunk.
    Here(Box<CaptureReader>),
    /// In the read-ahead thread, until the end of the file or `close`.
    Ahead(ReadAhead),
    /// Only while moving from one to the other.
    Moving,
}

/// The read-ahead thread and its two channels: batches to the decoder, in file order, and
/// batches the decoder is done with back to the reader, whose memory it reuses.
struct ReadAhead {
    batches: Receiver<Ahead>,
    spares: Sender<Box<FrameBatch>>,
    thread: JoinHandle<Box<CaptureReader>>,
}

enum Ahead {
    /// A batch, the reader's progress after it and its interfaces when there are new ones.
    Batch(Box<FrameBatch>, u64, u64, Option<Vec<InterfaceInfo>>),
    /// The end of the file, or the problem that ended reading after the batches before it.
    End(Option<CaptureError>),
}

/// What callers read of the reader between steps (progress bars, the final summary), as of
/// the batch they last saw counted.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub bytes_read: u64,
    pub frames_cut: u64,
    pub interfaces: Vec<InterfaceInfo>,
}

impl Progress {
    fn of(reader: &CaptureReader) -> Progress {
        Progress {
            bytes_read: reader.bytes_read,
            frames_cut: reader.frames_cut(),
            interfaces: reader.interfaces().to_vec(),
        }
    }

    /// Brings `self` up to `reader`, copying the interfaces only when there are new ones (a
    /// pcapng file declares them as it goes; they are never removed).
    fn update(&mut self, reader: &CaptureReader) {
        self.bytes_read = reader.bytes_read;
        self.frames_cut = reader.frames_cut();
        if reader.interfaces().len() != self.interfaces.len() {
            self.interfaces = reader.interfaces().to_vec();
        }
    }
}

impl PacketScan {
    /// Opens `path` (see [`CaptureReader::open`]); `supported`: the link types decoded.
    pub fn open(
        path: &Path,
        name: &str,
        chunk_bytes: usize,
        options: DecodeOptions,
        supported: &[u16],
    ) -> Result<Self, CaptureError> {
        let reader = CaptureReader::open(path, name, chunk_bytes)?;
        Ok(PacketScan {
            format: reader.format,
            compression: reader.compression,
            total_bytes: reader.total_bytes,
            progress: Progress::of(&reader),
            reading: Reading::Here(Box::new(reader)),
            decoder: Decoder::default(),
            counts: CaptureCounts::new(supported),
            options,
            columns: Columns::default(),
        })
    }

    /// Reads the rest of the file in a thread of its own, ahead of the steps that decode and
    /// count it (a no-op once reading ended or was moved already).
    pub fn read_ahead(&mut self) {
        let reader = match std::mem::replace(&mut self.reading, Reading::Moving) {
            Reading::Here(reader) => reader,
            other => {
                self.reading = other;
                return;
            }
        };
        let (to_decoder, batches) = mpsc::sync_channel(READ_AHEAD_BATCHES);
        let (spares, from_decoder) = mpsc::channel();
        let thread = thread::spawn(move || read_batches(reader, &to_decoder, &from_decoder));
        self.reading = Reading::Ahead(ReadAhead {
            batches,
            spares,
            thread,
        });
    }

    /// Reads, decodes and counts the next chunk's frames: `None` at the end of the file, the
    /// problem that ended reading after the frames before it were counted.
    pub fn step(&mut self) -> Option<Result<(), CaptureError>> {
        match &mut self.reading {
            Reading::Here(reader) => {
                let frames = match reader.next_frames()? {
                    Ok(frames) => frames,
                    Err(e) => {
                        self.progress.update(reader);
                        return Some(Err(e));
                    }
                };
                count(
                    &mut self.decoder,
                    &mut self.counts,
                    &mut self.columns,
                    self.options,
                    frames,
                );
                self.progress.update(reader);
                Some(Ok(()))
            }
            Reading::Ahead(ahead) => match ahead.batches.recv() {
                Ok(Ahead::Batch(batch, bytes_read, frames_cut, interfaces)) => {
                    count(
                        &mut self.decoder,
                        &mut self.counts,
                        &mut self.columns,
                        self.options,
                        FrameBatch::as_ref(&batch),
                    );
                    self.progress.bytes_read = bytes_read;
                    self.progress.frames_cut = frames_cut;
                    if let Some(interfaces) = interfaces {
                        self.progress.interfaces = interfaces;
                    }
                    // The reader may have ended meanwhile: the batch is then simply dropped.
                    let _ = ahead.spares.send(batch);
                    Some(Ok(()))
                }
                Ok(Ahead::End(problem)) => {
                    self.join();
                    problem.map(Err)
                }
                Err(mpsc::RecvError) => {
                    // The thread ended without saying so: it panicked. Say it as a problem
                    // of the file rather than pass the panic on.
                    self.join();
                    Some(Err(CaptureError(
                        "reading stopped unexpectedly".to_string(),
                    )))
                }
            },
            Reading::Moving => None,
        }
    }

    /// Brings the reader back from the read-ahead thread (which has ended, or ends now that
    /// its channels are closed), with its final state.
    fn join(&mut self) {
        if let Reading::Ahead(ahead) = std::mem::replace(&mut self.reading, Reading::Moving) {
            let ReadAhead {
                batches,
                spares,
                thread,
            } = ahead;
            drop((batches, spares));
            if let Ok(reader) = thread.join() {
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

    /// Bytes of the file read so far (compressed bytes for a compressed file).
    pub fn bytes_read(&self) -> u64 {
        self.progress.bytes_read
    }

    /// Frames cut at the frame cap so far.
    pub fn frames_cut(&self) -> u64 {
        self.progress.frames_cut
    }

    /// Interfaces known so far.
    pub fn interfaces(&self) -> &[InterfaceInfo] {
        &self.progress.interfaces
    }
}

impl Drop for PacketScan {
    fn drop(&mut self) {
        self.join();
    }
}

/// Decodes `frames` [`SLICE_ROWS`] at a time and adds them to `counts`.
fn count(
    decoder: &mut Decoder,
    counts: &mut CaptureCounts,
    columns: &mut Columns,
    options: DecodeOptions,
    frames: Frames<'_>,
) {
    let mut start = 0;
    while start < frames.len() {
        let end = frames.len().min(start + SLICE_ROWS);
        let slice = frames.slice(start..end);
        // Each row counted as it is decoded; only fragment rows (and those after them) are
        // stored, for the reassembler, and counted from the columns once it is done.
        decoder.decode_each(slice, options, columns, |rows| match rows {
            Decoded::Row(row) => counts.add_row(row),
            Decoded::Stored(cols, first) => counts.add_from(cols, first),
        });
        start = end;
    }
}

/// The read-ahead thread: every batch of `reader` to the decoder, then the end; stops early
/// when the decoder hangs up (closed, dropped). Returns the reader for its final state.
fn read_batches(
    mut reader: Box<CaptureReader>,
    to_decoder: &SyncSender<Ahead>,
    from_decoder: &Receiver<Box<FrameBatch>>,
) -> Box<CaptureReader> {
    let mut known = reader.interfaces().len();
    loop {
        let spare = from_decoder.try_recv().ok().map(|b| *b);
        let message = match reader.next_batch_reusing(spare) {
            None => Ahead::End(None),
            Some(Err(e)) => Ahead::End(Some(e)),
            Some(Ok(batch)) => {
                let interfaces = reader.interfaces();
                let new = (interfaces.len() != known).then(|| interfaces.to_vec());
                known = interfaces.len();
                Ahead::Batch(Box::new(batch), reader.bytes_read, reader.frames_cut(), new)
            }
        };
        let ended = matches!(message, Ahead::End(_));
        if to_decoder.send(message).is_err() || ended {
            return reader;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// portlens.sources.linktypes.SUPPORTED.
    const SUPPORTED: [u16; 12] = [0, 1, 9, 10, 12, 14, 101, 108, 113, 228, 229, 276];

    fn capture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../captures")
            .join(name)
    }

    /// The counts of every row stored by `decode_into` and added batch by batch, in slices
    /// of `rows`: what the scan counted before `decode_each`.
    fn stored_counts(path: &Path, rows: usize) -> CaptureCounts {
        let mut reader = CaptureReader::open(path, "x", 4096).expect("opens");
        let mut decoder = Decoder::default();
        let mut counts = CaptureCounts::new(&SUPPORTED);
        let mut columns = Columns::default();
        while let Some(Ok(batch)) = reader.next_batch() {
            let frames = batch.as_ref();
            let mut start = 0;
            while start < frames.len() {
                let end = frames.len().min(start + rows);
                let options = DecodeOptions { checksums: true };
                decoder.decode_into(frames.slice(start..end), options, &mut columns);
                counts.add(&columns);
                start = end;
            }
        }
        counts
    }

    #[test]
    fn rows_counted_as_decoded_equal_rows_stored() {
        // Fragments first, after other frames, completing datagrams, tunnelled in fragments.
        for name in [
            "fragments.pcap",
            "encap/encap-gtp-fragmented.pcap",
            "encap/encap-gtp-fragmented-v6.pcap",
            "tcp-session.pcap",
            "malformed.pcap",
        ] {
            let path = capture(name);
            let mut scan = PacketScan::open(
                &path,
                "x",
                4096,
                DecodeOptions { checksums: true },
                &SUPPORTED,
            )
            .expect("opens");
            while let Some(step) = scan.step() {
                step.expect("reads");
            }
            assert!(scan.counts.frames > 0, "{name}");
            assert_eq!(scan.counts, stored_counts(&path, SLICE_ROWS), "{name}");
            if name.contains("frag") {
                assert!(scan.counts.reassembled > 0, "{name}");
            }
        }
    }
}
