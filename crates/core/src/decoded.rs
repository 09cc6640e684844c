//! A capture file read and decoded in a thread of its own, a few batches ahead of the tracker
//! that takes its columns: what `conns`, `ports`, `handshakes` and `sockets` run on one file.
//!
//! The pipeline's general path reads and decodes in a Python thread (`pipeline/ahead.py`): each
//! batch's ~75 decoded columns become NumPy arrays, which the tracker's binding then borrows
//! back, one attribute lookup and one borrow each, and the file's counts are kept with NumPy.
//! On the 2M benchmark capture that traffic through Python was about 0.2 CPU s of the
//! command's 1.15 (docs/benchmarks.md). Here the columns never leave the core: the thread
//! reads, walks and decodes each chunk into columns the tracker borrows
//! ([`crate::track::Packets::of`]) and hands back, so their memory is reused and nothing is
//! allocated per batch once a few are in circulation.
//!
//! To the caller the file reads as it does through the general path: the same batches, in file
//! order, a problem after every batch before it, and as of each batch the reader's progress
//! and the file's counts (sources.merge's FileStats: frames, wire bytes, times, steps back in
//! time; and frames of link types not decoded).
//!
//! Several files read as one capture (a rotated set, a directory) are merged in time order by
//! the same thread ([`DecodedFile::open_many`], [`crate::capture::merge`]): a file that cannot
//! be read is a problem said as it happens, and the others are read all the same. For
//! `packets --stats` of several files the thread only reads and merges, and the caller
//! decodes and counts each batch ([`DecodedFile::count`]), as [`crate::scan::PacketScan`]
//! divides the work for one file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use crate::capture::ahead::{AheadThread, Made, Progress};
use crate::capture::merge::{FileReport, Merge};
use crate::capture::{CaptureError, CaptureReader, Compression, Format};
use crate::decode::{Columns, DecodeOptions, Decoder};
use crate::frames::FrameBatch;
use crate::hand::{Hand, Wake};
use crate::summary::{CaptureCounts, FileCounts};
use crate::track::shards::{SharedBatch, SplitPlan, SplitSpec};
use crate::track::Packets;

/// One chunk's frames decoded, with what the caller reads of the file as of this batch.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    pub columns: Columns,
    progress: Progress,
    counts: FileCounts,
    not_decoded: BTreeMap<u16, u64>,
    /// Several files: the problems met since the batch before (a file that could not be
    /// opened or read further; the others are read all the same).
    problems: Vec<String>,
    /// The merged frames themselves, not decoded, for a caller that counts them
    /// ([`DecodedFile::open_many`] with `count`).
    frames: FrameBatch,
    /// The rows shared out among the tracker's shards, once it said how
    /// ([`DecodedFile::split_for`]).
    pub split: SplitPlan,
}

/// Where the thread's frames come from: one file, or several merged in time order.
enum Input {
    One(Box<CaptureReader>),
    Many(Merge),
}

/// What the thread owns while it reads, and gives back when it ends.
struct Work {
    input: Input,
    /// False when the caller decodes (and counts) the frames itself.
    decode: bool,
    decoder: Decoder,
    options: DecodeOptions,
    supported: Vec<u16>,
    counts: FileCounts,
    not_decoded: BTreeMap<u16, u64>,
    split: Arc<OnceLock<SplitSpec>>,
    hand: Arc<Hand>,
}

/// The thread: decoded batches to the caller, and back for their memory.
type Running = AheadThread<Box<DecodedBatch>, Box<DecodedBatch>, Work>;

/// One capture file, or several merged in time order ([`open_many`](Self::open_many)), read
/// and decoded ahead of the caller's [`next_batch`](Self::next_batch).
pub struct DecodedFile {
    pub format: Format,
    pub compression: Option<Compression>,
    pub total_bytes: u64,
    running: Option<Running>,
    /// Back from the thread once it ended: the reader's (or the merge's) final state and the
    /// reassembler's.
    ended: Option<Work>,
    progress: Progress,
    counts: FileCounts,
    not_decoded: BTreeMap<u16, u64>,
    problems: Vec<String>,
    /// `packets --stats` of several files: the frames of the batches taken, decoded and
    /// counted by the caller's thread ([`count`](Self::count)) while this one reads and
    /// merges the next, as [`crate::scan::PacketScan`] divides the work for one file.
    counting: Option<Box<Counting>>,
    /// How the tracker shares rows out among its shards, for the thread to do it.
    split: Arc<OnceLock<SplitSpec>>,
    /// Where the tracker offers the thread a shard's rows of a batch, once it splits them.
    hand: Arc<Hand>,
}

/// What counting the frames takes: as [`crate::scan::PacketScan`] holds it.
struct Counting {
    counts: CaptureCounts,
    decoder: Decoder,
    columns: Columns,
    options: DecodeOptions,
}

impl DecodedFile {
    /// Opens `path` (see [`CaptureReader::open`]) and starts reading it; `supported`: the link
    /// types the decoder decodes (frames of the others are counted in `not_decoded`).
    pub fn open(
        path: &Path,
        name: &str,
        chunk_bytes: usize,
        options: DecodeOptions,
        supported: &[u16],
    ) -> Result<Self, CaptureError> {
        let reader = CaptureReader::open(path, name, chunk_bytes)?;
        let (format, compression, total_bytes) =
            (reader.format, reader.compression, reader.total_bytes);
        let progress = Progress::of(&reader);
        Ok(Self::start(
            Input::One(Box::new(reader)),
            (options, true),
            supported,
            (format, compression, total_bytes),
            progress,
        ))
    }

    /// Several files (path, how messages call it) read as one capture, merged in time order
    /// ([`Merge`]): a file that cannot be read is a problem ([`take_problems`]
    /// (Self::take_problems)), not the end; [`reports`](Self::reports) say what each gave.
    ///
    /// `count`: the caller counts the frames as `packets --stats` counts them
    /// ([`count`](Self::count), [`capture_counts`](Self::capture_counts)); the thread only
    /// reads and merges them.
    pub fn open_many(
        paths: Vec<(PathBuf, String)>,
        chunk_bytes: usize,
        options: DecodeOptions,
        supported: &[u16],
        count: bool,
    ) -> Self {
        let mut merge = Merge::open(paths, chunk_bytes);
        let problems = merge.take_problems();
        let total_bytes = merge.total_bytes;
        let mut file = Self::start(
            Input::Many(merge),
            (options, !count),
            supported,
            (Format::Pcap, None, total_bytes),
            Progress::default(),
        );
        file.problems = problems;
        file.counting = count.then(|| {
            Box::new(Counting {
                counts: CaptureCounts::new(supported),
                decoder: Decoder::default(),
                columns: Columns::default(),
                options,
            })
        });
        file
    }

    fn start(
        input: Input,
        (options, decode): (DecodeOptions, bool),
        supported: &[u16],
        (format, compression, total_bytes): (Format, Option<Compression>, u64),
        progress: Progress,
    ) -> Self {
        let split = Arc::new(OnceLock::new());
        let hand = Arc::new(Hand::default());
        let work = Work {
            input,
            decode,
            decoder: Decoder::default(),
            options,
            supported: supported.to_vec(),
            counts: FileCounts::default(),
            not_decoded: BTreeMap::new(),
            split: Arc::clone(&split),
            hand: Arc::clone(&hand),
        };
        let running = AheadThread::spawn(move |to_caller, from_caller| {
            read_and_decode(work, to_caller, from_caller)
        });
        DecodedFile {
            format,
            compression,
            total_bytes,
            running: Some(running),
            ended: None,
            progress,
            counts: FileCounts::default(),
            not_decoded: BTreeMap::new(),
            problems: Vec::new(),
            counting: None,
            split,
            hand,
        }
    }

    /// From the next batch it decodes on, the thread also shares each batch's rows out as
    /// `spec` says ([`DecodedBatch::split`]): the work of a tracker of several shards
    /// (`Shards::feed_split`) that the caller's thread would otherwise do before each
    /// batch, while the thread has a core to spare. The first spec holds for the file.
    ///
    /// From then on, while two batches wait for the caller, the thread also takes a job
    /// offered on [`hand`](Self::hand) (`Shards::feed_helped`: a shard's rows) rather than
    /// only wait for room; the caller rings it there once done with each batch it took.
    pub fn split_for(&self, spec: &SplitSpec) {
        if self.split.get().is_none() {
            let _ = self.split.set(spec.clone());
        }
    }

    /// Where the thread takes jobs while it waits for room, once the batches come split.
    pub fn hand(&self) -> &Arc<Hand> {
        &self.hand
    }

    /// The next batch of decoded frames, the problem that ended reading after the batches
    /// before it, or `None` at the end. Hand the batch back ([`give_back`](Self::give_back))
    /// once done with it, for its memory.
    pub fn next_batch(&mut self) -> Option<Result<Box<DecodedBatch>, CaptureError>> {
        let running = self.running.as_ref()?;
        let made = running.try_next().unwrap_or_else(|| {
            // The thread may wait on the hand for room that batches taken since freed (the
            // tracker rings once done with a batch, and this caller took two without).
            self.hand.ring();
            running.next()
        });
        match made {
            Made::Batch(mut batch) => {
                self.progress.clone_from(&batch.progress);
                self.counts = batch.counts;
                if !batch.not_decoded.is_empty() {
                    self.not_decoded.clone_from(&batch.not_decoded);
                }
                self.problems.append(&mut batch.problems);
                Some(Ok(batch))
            }
            Made::End(problem) => {
                self.join();
                problem.map(Err)
            }
        }
    }

    /// A batch the caller is done with: its columns' memory goes to a later batch.
    pub fn give_back(&mut self, batch: Box<DecodedBatch>) {
        if let Some(running) = &self.running {
            running.give_back(batch);
        }
    }

    /// Stops reading and closes the file (and ends the thread).
    pub fn close(&mut self) {
        self.join();
        match self.ended.as_mut().map(|w| &mut w.input) {
            Some(Input::One(reader)) => reader.close(),
            Some(Input::Many(merge)) => merge.close(),
            None => {}
        }
    }

    fn join(&mut self) {
        if let Some(running) = self.running.take() {
            self.hand.close(); // a thread waiting on it ends
            self.ended = running.join();
            if let Some(Work {
                input: Input::Many(merge),
                ..
            }) = &mut self.ended
            {
                self.problems.append(&mut merge.take_problems());
            }
        }
    }

    /// Several files: the problems met since the last call, in the order they happened.
    pub fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    /// Several files, once reading ended (closed, or read to its end): what each file gave,
    /// in the order given.
    pub fn reports(&self) -> Option<&[FileReport]> {
        match &self.ended {
            Some(Work {
                input: Input::Many(merge),
                ..
            }) => Some(merge.reports()),
            _ => None,
        }
    }

    /// The reader's progress as of the last batch given.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The file's counts as of the last batch given (one file; several: `reports`).
    pub fn counts(&self) -> &FileCounts {
        &self.counts
    }

    /// Frames of link types not decoded, by link type, as of the last batch given.
    pub fn not_decoded(&self) -> &BTreeMap<u16, u64> {
        &self.not_decoded
    }

    /// Counts the rows of `batch` (one of this file's, taken) as `packets --stats` counts
    /// them, when opened with `count`.
    pub fn count(&mut self, batch: &DecodedBatch) {
        if let Some(c) = &mut self.counting {
            let frames = batch.frames.as_ref();
            crate::scan::count(
                &mut c.decoder,
                &mut c.counts,
                &mut c.columns,
                c.options,
                frames,
            );
        }
    }

    /// Several files opened with `count`: the frames of the batches taken so far, counted as
    /// `packets --stats` counts them.
    pub fn capture_counts(&self) -> Option<&CaptureCounts> {
        self.counting.as_ref().map(|c| &c.counts)
    }

    /// The decoder once reading ended (its fragment reassembler's counters), or the caller's
    /// that counts; `None` while the thread reads and decodes.
    pub fn decoder(&self) -> Option<&Decoder> {
        match &self.counting {
            Some(c) => Some(&c.decoder),
            None => self.ended.as_ref().map(|w| &w.decoder),
        }
    }
}

impl Drop for DecodedFile {
    fn drop(&mut self) {
        self.join();
    }
}

/// The thread: every chunk read, walked, decoded and counted, until the end, a problem, or
/// the caller gone.
fn read_and_decode(
    mut w: Work,
    to_caller: &SyncSender<Made<Box<DecodedBatch>>>,
    spares: &Receiver<Box<DecodedBatch>>,
) -> Work {
    let mut frames: Option<FrameBatch> = None;
    let mut rung = 0;
    loop {
        let next = match &mut w.input {
            Input::One(reader) => reader.next_batch_reusing(frames.take()),
            Input::Many(merge) => merge.next_batch().map(Ok),
        };
        let batch = match next {
            None => {
                hand_over(&w, to_caller, Made::End(None), &mut rung);
                return w;
            }
            Some(Err(e)) => {
                hand_over(&w, to_caller, Made::End(Some(e)), &mut rung);
                return w;
            }
            Some(Ok(batch)) => batch,
        };
        if batch.is_empty() {
            frames = Some(batch);
            continue; // what the general path yields too: nothing for an empty chunk
        }
        let mut out = spares.try_recv().unwrap_or_default();
        w.count(&batch);
        if w.decode {
            w.decoder
                .decode_into(batch.as_ref(), w.options, &mut out.columns);
            if let Some(spec) = w.split.get() {
                // a batch it cannot split is split by the tracker, which says why
                let _ = out.split.make(&Packets::of(&out.columns), spec);
            }
        }
        out.counts = w.counts;
        out.not_decoded.clone_from(&w.not_decoded);
        match &mut w.input {
            Input::One(reader) => out.progress.update(reader),
            Input::Many(merge) => {
                out.progress.bytes_read = merge.bytes_read();
                out.problems = merge.take_problems();
            }
        }
        if !w.decode {
            out.frames = batch; // the caller decodes it
        } else {
            frames = Some(batch);
        }
        if !hand_over(&w, to_caller, Made::Batch(out), &mut rung) {
            return w; // the caller closed the file
        }
    }
}

/// Hands `made` to the caller, waiting for room; false when the caller is gone. Once the
/// batches come split, a job offered on the hand while two batches wait is taken instead of
/// only waiting (hand.rs): the caller then has enough to go on with.
fn hand_over(
    w: &Work,
    to_caller: &SyncSender<Made<Box<DecodedBatch>>>,
    made: Made<Box<DecodedBatch>>,
    rung: &mut u64,
) -> bool {
    if w.split.get().is_none() {
        return to_caller.send(made).is_ok();
    }
    let mut made = made;
    loop {
        match to_caller.try_send(made) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => made = back,
        }
        match w.hand.wait(rung) {
            Wake::Job(job) => job(),
            Wake::Rung => {}
            Wake::Closed => return false,
        }
    }
}

impl SharedBatch for DecodedBatch {
    fn packets(&self) -> Packets<'_> {
        Packets::of(&self.columns)
    }

    fn split(&self) -> &SplitPlan {
        &self.split
    }
}

impl Work {
    fn count(&mut self, batch: &FrameBatch) {
        let n = batch.len();
        if let Input::One(_) = self.input {
            // Several files' figures are each file's, counted by the merge as it reads them.
            let (ts, frame, wire) = (&batch.ts_ns[..n], &batch.frame[..n], &batch.wirelen[..n]);
            for i in 0..n {
                self.counts.add(ts[i], frame[i], wire[i]);
            }
        }
        let mut known = None;
        for &linktype in &batch.linktype[..n] {
            if known == Some(linktype) {
                continue; // the usual case: every frame of a file of one link type
            }
            if self.supported.contains(&linktype) {
                known = Some(linktype);
            } else {
                *self.not_decoded.entry(linktype).or_insert(0) += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::ahead::Source;
    use crate::testing::{capture, SUPPORTED};

    /// The same columns, batch for batch, as reading and decoding on one thread.
    #[test]
    fn batches_equal_those_decoded_here() {
        for name in [
            "tcp-session.pcap",
            "fragments.pcap",
            "encap/encap-gtp-fragmented.pcap",
            "malformed.pcap",
        ] {
            let path = capture(name);
            let options = DecodeOptions { checksums: true };
            let mut here = Source::new(CaptureReader::open(&path, "x", 4096).expect("opens"));
            let mut decoder = Decoder::default();
            let mut file = DecodedFile::open(&path, "x", 4096, options, &SUPPORTED).expect("opens");
            let mut frames = 0;
            while let Some(batch) = here.next_batch(None) {
                let batch = batch.expect("reads");
                if batch.is_empty() {
                    continue;
                }
                let want = decoder.decode(FrameBatch::as_ref(&batch), options);
                let got = file.next_batch().expect("a batch").expect("reads");
                assert_eq!(got.columns, want, "{name}");
                frames += batch.len() as u64;
                assert_eq!(file.counts().frames, frames, "{name}");
                file.give_back(got);
            }
            assert!(file.next_batch().is_none(), "{name}");
            assert!(frames > 0);
            let counters = file.decoder().expect("ended").reassembler.counters;
            assert_eq!(counters, decoder.reassembler.counters, "{name}");
        }
    }

    /// Once the tracker says how, the thread splits each batch among its shards as the
    /// tracker would (`Shards::feed_split` takes the split made here).
    #[test]
    fn batches_come_split_for_the_shards() {
        use crate::track::{Config, Counting};
        let path = capture("loopback-sample.pcap");
        let options = DecodeOptions { checksums: true };
        let mut file = DecodedFile::open(&path, "x", 512, options, &SUPPORTED).expect("opens");
        let spec = SplitSpec {
            shards: 3,
            counting: Counting::of(&Config::default()),
        };
        file.split_for(&spec);
        let (mut split, mut batches) = (0, 0);
        while let Some(batch) = file.next_batch() {
            let batch = batch.expect("reads");
            let mut here = SplitPlan::default();
            here.make(&Packets::of(&batch.columns), &spec)
                .expect("splits");
            // the thread may have decoded the first batches before it was told
            if batch.split.made_for().is_some() {
                assert_eq!(batch.split, here);
                split += 1;
            }
            batches += 1;
            file.give_back(batch);
        }
        assert!(
            batches > 3 && split + 3 >= batches,
            "{split} of {batches} split"
        );
    }

    #[test]
    fn a_cut_file_gives_its_batches_then_the_problem() {
        let whole = std::fs::read(capture("tcp-session.pcap")).expect("reads");
        let dir = std::env::temp_dir().join(format!("portlens-decoded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cut = dir.join("cut.pcap");
        std::fs::write(&cut, &whole[..whole.len() - 7]).expect("writes");
        let options = DecodeOptions { checksums: false };
        let mut file = DecodedFile::open(&cut, "cut", 4096, options, &SUPPORTED).expect("opens");
        let mut rows = 0;
        let problem = loop {
            match file.next_batch() {
                Some(Ok(batch)) => {
                    rows += batch.columns.len();
                    file.give_back(batch);
                }
                Some(Err(e)) => break e,
                None => panic!("a cut file ends with its problem"),
            }
        };
        assert!(rows > 0);
        assert!(problem.0.starts_with("cut: "), "{}", problem.0);
        assert!(file.next_batch().is_none());
        file.close();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn closing_early_ends_the_thread() {
        let path = capture("tcp-session.pcap");
        let options = DecodeOptions { checksums: false };
        let mut file = DecodedFile::open(&path, "x", 4096, options, &SUPPORTED).expect("opens");
        let first = file.next_batch().expect("a batch").expect("reads");
        assert!(!first.columns.is_empty());
        file.close();
        assert!(file.next_batch().is_none());
        assert!(file.decoder().is_some());
    }
}
