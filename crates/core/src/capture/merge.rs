//! Several capture files as one stream in time order, as mergecap writes them: the merge of
//! src/portlens/sources/merge.py (its reference, which the tests hold this one to), run in
//! the core so that a rotated set is read, merged and decoded by one thread of it
//! ([`crate::decoded::DecodedFile`]) as one file is.
//!
//! mergecap keeps one record of each file at hand and always writes the earliest; within a
//! file, records keep their order even where time runs backwards. That is a stable sort of
//! every frame by the *running maximum* of its file's timestamps (ties: the file named first),
//! applied a batch at a time: a frame is released once every file still open has reached a
//! later running maximum, and a file is only opened once the merge has reached its first
//! timestamp, so the files of a rotated capture are read one after another, and a batch of
//! one file goes out as it was read (frames are copied only where files interleave). Frames
//! are renumbered 1, 2, 3 ... across the stream.

use std::collections::VecDeque;
use std::path::PathBuf;

use super::{CaptureError, CaptureReader, Compression, Format};
use crate::frames::FrameBatch;
use crate::summary::FileCounts;

/// Chunk size used to read a file's first timestamp before the merge needs the file.
const PEEK_CHUNK_BYTES: usize = 1 << 16;

/// What one file contributed (Python's FileStats): what it is, its frames' counts, frames cut
/// at the frame cap, and the problem that ended its reading.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub format: Option<Format>,
    pub compression: Option<Compression>,
    /// The link type of its first interface.
    pub linktype: Option<u16>,
    pub counts: FileCounts,
    pub frames_cut: u64,
    pub error: Option<String>,
}

/// Frames of a file read and not released yet: `batch` from frame `from` on, with the keys
/// (the file's running maximum of time at each frame).
struct Pending {
    batch: FrameBatch,
    keys: Vec<i64>,
    from: usize,
}

/// A file being merged.
struct Open {
    index: usize,
    reader: CaptureReader,
    pending: VecDeque<Pending>,
    running_max: i64,
    done: bool,
}

/// Several files merged into one stream of batches ([`next_batch`](Self::next_batch)).
pub struct Merge {
    /// (path, how messages call it), in the order given.
    paths: Vec<(PathBuf, String)>,
    chunk_bytes: usize,
    reports: Vec<FileReport>,
    /// (first time, index) of the files not opened yet, in the order they open.
    waiting: VecDeque<(i64, usize)>,
    opened: Vec<Open>,
    frames_out: i64,
    finished_bytes: u64,
    pub total_bytes: u64,
    /// Problems not taken yet (`take_problems`), in the order they happened.
    problems: Vec<String>,
    ended: bool,
}

impl Merge {
    /// Looks at each file's first timestamp (a file that cannot be read is a problem, and
    /// left out; one without frames is done at once).
    pub fn open(paths: Vec<(PathBuf, String)>, chunk_bytes: usize) -> Merge {
        let total_bytes = paths
            .iter()
            .map(|(p, _)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let mut m = Merge {
            reports: vec![FileReport::default(); paths.len()],
            paths,
            chunk_bytes,
            waiting: VecDeque::new(),
            opened: Vec::new(),
            frames_out: 0,
            finished_bytes: 0,
            total_bytes,
            problems: Vec::new(),
            ended: false,
        };
        let mut starts = Vec::new();
        for i in 0..m.paths.len() {
            match m.first_timestamp(i) {
                Ok(Some(first)) => starts.push((first, i)),
                Ok(None) => {} // a valid file without frames
                Err(e) => m.failed(i, e),
            }
        }
        starts.sort_unstable();
        m.waiting = starts.into();
        m
    }

    fn first_timestamp(&mut self, i: usize) -> Result<Option<i64>, CaptureError> {
        let (path, name) = &self.paths[i];
        let mut reader = CaptureReader::open(path, name, PEEK_CHUNK_BYTES)?;
        let report = &mut self.reports[i];
        report.format = Some(reader.format);
        report.compression = reader.compression;
        report.linktype = reader.interfaces().first().map(|f| f.linktype);
        while let Some(batch) = reader.next_batch() {
            if let Some(&first) = batch?.ts_ns.first() {
                return Ok(Some(first));
            }
        }
        Ok(None)
    }

    fn failed(&mut self, i: usize, e: CaptureError) {
        self.reports[i].error = Some(e.0.clone());
        self.problems.push(e.0);
    }

    /// The next frames in merge order, renumbered; `None` at the end of every file. Problems
    /// do not end the merge: they wait in [`take_problems`](Self::take_problems).
    pub fn next_batch(&mut self) -> Option<FrameBatch> {
        while !self.ended {
            let live = self.opened.iter().filter(|f| !f.done);
            let laggard = live.map(|f| (f.running_max, f.index)).min();
            let next = self.waiting.front().copied();
            if laggard.is_none() && next.is_none() {
                self.ended = true;
                return self.release(None);
            }
            // The earliest (key, file) any unread frame can still have: what is not after it
            // in the merge order can go.
            let reach = match (laggard, next) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("one of them, checked above"),
            };
            let out = self.release(Some(reach));
            match (laggard, next) {
                (Some((horizon, index)), next) if next.is_none_or(|(start, _)| horizon < start) => {
                    self.read_more(index); // the open file that holds the merge back
                }
                _ => {
                    let (_, i) = self.waiting.pop_front().expect("a file waits");
                    let (path, name) = &self.paths[i];
                    match CaptureReader::open(path, name, self.chunk_bytes) {
                        Ok(reader) => {
                            self.opened.push(Open {
                                index: i,
                                reader,
                                pending: VecDeque::new(),
                                running_max: i64::MIN,
                                done: false,
                            });
                            self.read_more(i);
                        }
                        Err(e) => self.failed(i, e), // changed since it was first looked at
                    }
                }
            }
            self.opened.retain(|f| !f.done || !f.pending.is_empty());
            if out.is_some() {
                return out;
            }
        }
        None
    }

    fn read_more(&mut self, index: usize) {
        let Some(f) = self.opened.iter_mut().find(|f| f.index == index) else {
            return;
        };
        let report = &mut self.reports[index];
        match f.reader.next_batch() {
            Some(Ok(batch)) => {
                report.frames_cut = f.reader.frames_cut();
                take(f, report, batch);
                return;
            }
            None => {}
            Some(Err(e)) => {
                report.error = Some(e.0.clone());
                self.problems.push(e.0);
            }
        }
        f.done = true;
        report.frames_cut = f.reader.frames_cut();
        self.finished_bytes += f.reader.total_bytes;
        f.reader.close();
    }

    /// The pending frames at or before `upto` (key, file index) in merge order (all with
    /// `None`), renumbered. A frame of a file named before `upto`'s may share its key; one
    /// named after may not, since that file's frame comes first.
    fn release(&mut self, upto: Option<(i64, usize)>) -> Option<FrameBatch> {
        // (file index, the frames released: a whole batch, or some of one)
        let mut parts: Vec<(usize, Released)> = Vec::new();
        for f in &mut self.opened {
            while let Some(p) = f.pending.front_mut() {
                let keys = &p.keys[p.from..];
                let cut = match upto {
                    None => keys.len(),
                    Some((key, i)) if f.index <= i => keys.partition_point(|&k| k <= key),
                    Some((key, _)) => keys.partition_point(|&k| k < key),
                };
                if cut == 0 {
                    break;
                }
                if cut == keys.len() {
                    let p = f.pending.pop_front().expect("the front, just seen");
                    parts.push((f.index, Released::from(p)));
                    continue;
                }
                let (from, to) = (p.from, p.from + cut);
                parts.push((
                    f.index,
                    Released::Some(p.batch.clone_frames(from..to), p.keys[from..to].to_vec()),
                ));
                p.from = to;
                break;
            }
        }
        let mut out = match parts.len() {
            0 => return None,
            1 => parts.pop().map(|(_, part)| part.into_batch())?,
            _ => merged(parts),
        };
        let first = self.frames_out;
        for (k, frame) in out.frame.iter_mut().enumerate() {
            *frame = first + 1 + k as i64;
        }
        self.frames_out += out.len() as i64;
        Some(out)
    }

    /// Problems since the last call: a file that could not be opened or read further.
    pub fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }

    /// Every file's report, in the order the files were given.
    pub fn reports(&self) -> &[FileReport] {
        &self.reports
    }

    /// File bytes read so far, over all files (compressed bytes of compressed ones).
    pub fn bytes_read(&self) -> u64 {
        let reading: u64 = self
            .opened
            .iter()
            .filter(|f| !f.done)
            .map(|f| f.reader.bytes_read)
            .sum();
        self.finished_bytes + reading
    }

    /// Closes every file still open.
    pub fn close(&mut self) {
        for f in &mut self.opened {
            f.reader.close();
        }
        self.opened.clear();
        self.waiting.clear();
        self.ended = true;
    }
}

/// Counts a batch of `f` into its report and queues it with its keys.
fn take(f: &mut Open, report: &mut FileReport, batch: FrameBatch) {
    if batch.is_empty() {
        return;
    }
    let mut keys = Vec::with_capacity(batch.len());
    for ((&ts, &frame), &wirelen) in batch.ts_ns.iter().zip(&batch.frame).zip(&batch.wirelen) {
        report.counts.add(ts, frame, wirelen);
        f.running_max = f.running_max.max(ts);
        keys.push(f.running_max);
    }
    f.pending.push_back(Pending {
        batch,
        keys,
        from: 0,
    });
}

/// Frames released from one pending batch: all of it (moved, not copied), or a copy of some.
enum Released {
    Whole(FrameBatch, Vec<i64>),
    Some(FrameBatch, Vec<i64>),
}

impl From<Pending> for Released {
    fn from(p: Pending) -> Self {
        if p.from == 0 {
            Released::Whole(p.batch, p.keys)
        } else {
            let n = p.batch.len();
            Released::Some(p.batch.clone_frames(p.from..n), p.keys[p.from..].to_vec())
        }
    }
}

impl Released {
    fn into_batch(self) -> FrameBatch {
        match self {
            Released::Whole(b, _) | Released::Some(b, _) => b,
        }
    }

    fn parts(&self) -> (&FrameBatch, &[i64]) {
        match self {
            Released::Whole(b, k) | Released::Some(b, k) => (b, k),
        }
    }
}

/// Frames of several parts in merge order: a stable sort by (key, file), each part's frames
/// already in order, the parts in the order they were released.
fn merged(parts: Vec<(usize, Released)>) -> FrameBatch {
    let mut order: Vec<(i64, usize, usize, usize)> = Vec::new();
    for (p, (index, part)) in parts.iter().enumerate() {
        let (_, keys) = part.parts();
        order.extend(keys.iter().enumerate().map(|(i, &k)| (k, *index, p, i)));
    }
    order.sort_by_key(|&(key, index, _, _)| (key, index)); // stable
    let mut out = FrameBatch::default();
    for (_, _, p, i) in order {
        out.push_frame(parts[p].1.parts().0, i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::capture;

    fn frames_of(path: &std::path::Path) -> FrameBatch {
        let mut reader = CaptureReader::open(path, "x", 4096).expect("opens");
        let mut all = FrameBatch::default();
        while let Some(batch) = reader.next_batch() {
            let batch = batch.expect("reads");
            for i in 0..batch.len() {
                all.push_frame(&batch, i);
            }
        }
        all
    }

    /// A file merged with itself: each frame twice in a row (the file named first first),
    /// renumbered 1..2n, in small chunks so that releases cut batches.
    #[test]
    fn a_file_merged_with_itself() {
        let path = capture("scenario-loss-reorder.pcap");
        let one = frames_of(&path);
        let named = vec![(path.clone(), "a".to_string()), (path, "b".to_string())];
        let mut merge = Merge::open(named, 4096);
        let mut out = FrameBatch::default();
        while let Some(batch) = merge.next_batch() {
            for i in 0..batch.len() {
                out.push_frame(&batch, i);
            }
        }
        assert!(merge.take_problems().is_empty());
        assert_eq!(out.len(), 2 * one.len());
        assert_eq!(out.frame, (1..=out.len() as i64).collect::<Vec<_>>());
        for i in 0..one.len() {
            for copy in [2 * i, 2 * i + 1] {
                assert_eq!(out.ts_ns[copy], one.ts_ns[i]);
                assert_eq!(out.as_ref().bytes(copy), one.as_ref().bytes(i));
            }
        }
        let reports = merge.reports();
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.counts.frames == one.len() as u64));
    }

    #[test]
    fn a_missing_file_is_a_problem_not_the_end() {
        let path = capture("tcp-session.pcap");
        let named = vec![
            (PathBuf::from("/nonexistent/x.pcap"), "x.pcap".to_string()),
            (path.clone(), "y".to_string()),
        ];
        let mut merge = Merge::open(named, 4096);
        let mut frames = 0;
        while let Some(batch) = merge.next_batch() {
            frames += batch.len();
        }
        assert_eq!(frames, frames_of(&path).len());
        let problems = merge.take_problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("x.pcap: cannot open"),
            "{}",
            problems[0]
        );
        assert!(merge.reports()[0].error.is_some());
    }
}
