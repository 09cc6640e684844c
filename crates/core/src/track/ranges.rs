//! Sequence ranges in ordered maps (track/ranges.py), so that a connection whose segments
//! leave holes costs O(log n) per segment, not O(n) (issue 15: a 4.5 MB gapped capture took
//! 129 s when the ranges were kept in vectors walked from the front).
//!
//! - `Coverage`: disjoint ranges [start, end), touching ones merged: what a host has sent
//!   (the observer's retransmission analysis), and the union of a reassembler's blocks.
//! - `Blocks`: Zeek's reassembler blocks. Their boundaries matter (the delivered position
//!   moves to a block's end, and a block that starts below it is never delivered), so they
//!   are kept as inserted: each insert adds only the parts not held yet (the holes of the
//!   `Coverage` beside them, found in time proportional to the ranges it merges).

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

#[cfg(test)]
thread_local! {
    static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// One range visited or changed (counted in tests: the work per segment, which must not
/// grow with the number of ranges held).
#[inline]
fn step() {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + 1));
}

#[cfg(test)]
pub fn steps() -> u64 {
    STEPS.with(std::cell::Cell::get)
}

/// Disjoint ranges [start, end), sorted, touching ones merged. A stream with few holes (almost
/// every one) keeps them in a short vector searched by bisection; past `SMALL` ranges they
/// move to a B-tree (a vector would move its tail on every insert in the middle).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    small: Vec<(i64, i64)>,
    /// Boxed: 8 bytes in every host of every connection, the tree's 24 only past SMALL.
    #[allow(clippy::box_collection)]
    map: Option<Box<BTreeMap<i64, i64>>>,
}

const SMALL: usize = 8;

impl Coverage {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(self.small.len(), |m| m.len())
    }

    /// Every range, in order (tests and the vector's hand-over to the tree).
    pub fn to_vec(&self) -> Vec<(i64, i64)> {
        match &self.map {
            Some(m) => m.iter().map(|(&a, &b)| (a, b)).collect(),
            None => self.small.clone(),
        }
    }

    /// The range starting at or before `at`, the last such.
    fn floor(&self, at: i64) -> Option<(i64, i64)> {
        step();
        match &self.map {
            Some(m) => m.range(..=at).next_back().map(|(&a, &b)| (a, b)),
            None => {
                let i = self.small.partition_point(|r| r.0 <= at);
                i.checked_sub(1).map(|i| self.small[i])
            }
        }
    }

    /// Is [start, end) inside one range?
    pub fn covers(&self, start: i64, end: i64) -> bool {
        self.floor(start).is_some_and(|(_, b)| end <= b)
    }

    /// Adds [start, end), merging every range it overlaps or touches (empty ranges add
    /// nothing).
    pub fn add(&mut self, start: i64, end: i64) {
        if end <= start {
            return;
        }
        if let Some(m) = self.map.as_deref_mut() {
            Self::add_tree(m, start, end);
            return;
        }
        let v = &mut self.small;
        if let Some(last) = v.last_mut() {
            // The common case: the stream grows at its end.
            if start >= last.1 {
                step();
                if start == last.1 {
                    last.1 = end;
                } else {
                    v.push((start, end));
                }
                self.spill();
                return;
            }
        }
        let mut i = v.partition_point(|r| r.0 <= start);
        let (mut lo, mut hi) = (start, end);
        if i > 0 && v[i - 1].1 >= start {
            i -= 1;
            lo = v[i].0;
        }
        let j = v.partition_point(|r| r.0 <= end);
        if j > i {
            hi = hi.max(v[j - 1].1);
        }
        step();
        v.splice(i..j, [(lo, hi)]);
        self.spill();
    }

    /// Past SMALL ranges, the vector becomes a tree. Inlined: it runs after every add and
    /// almost never spills.
    #[inline(always)]
    fn spill(&mut self) {
        if self.small.len() > SMALL {
            self.move_to_tree();
        }
    }

    #[inline(never)]
    fn move_to_tree(&mut self) {
        let m: BTreeMap<i64, i64> = self.small.drain(..).collect();
        self.small = Vec::new();
        self.map = Some(Box::new(m));
    }

    fn add_tree(map: &mut BTreeMap<i64, i64>, start: i64, end: i64) {
        let (mut lo, mut hi) = (start, end);
        if let Some((&a, &b)) = map.range(..=start).next_back() {
            step();
            if b >= start {
                lo = a;
                hi = hi.max(b);
            }
        }
        // Every range starting after lo and at most hi is swallowed.
        while let Some((&a, &b)) = map.range((Excluded(lo), Unbounded)).next() {
            step();
            if a > hi {
                break;
            }
            hi = hi.max(b);
            map.remove(&a);
        }
        map.insert(lo, hi);
    }

    /// The parts of [start, end) no range covers, in order.
    fn holes(&self, start: i64, end: i64, out: &mut impl FnMut(i64, i64)) {
        let mut lo = start;
        if let Some((_, b)) = self.floor(start) {
            lo = lo.max(b);
        }
        let mut visit = |a: i64, b: i64| -> bool {
            step();
            if a >= end {
                return false;
            }
            if lo < a {
                out(lo, a);
            }
            lo = lo.max(b);
            true
        };
        match &self.map {
            Some(m) => {
                for (&a, &b) in m.range((Excluded(start), Unbounded)) {
                    if !visit(a, b) {
                        break;
                    }
                }
            }
            None => {
                let i = self.small.partition_point(|r| r.0 <= start);
                for &(a, b) in &self.small[i..] {
                    if !visit(a, b) {
                        break;
                    }
                }
            }
        }
        if lo < end {
            out(lo, end);
        }
    }

    /// Drops what lies below `first` (the first block kept; None: all gone). Blocks tile the
    /// ranges, so the first range left starts at that block.
    fn trim_to(&mut self, first: Option<i64>) {
        let Some(first) = first else {
            // Emptied, its vector kept: the blocks it belongs to are reused (`SpareBlocks`).
            self.small.clear();
            self.map = None;
            return;
        };
        if let Some(m) = self.map.as_deref_mut() {
            while let Some((&a, &b)) = m.first_key_value() {
                step();
                if b > first {
                    if a < first {
                        m.remove(&a);
                        m.insert(first, b);
                    }
                    break;
                }
                m.remove(&a);
            }
            return;
        }
        let k = self.small.partition_point(|r| r.1 <= first);
        step();
        self.small.drain(..k);
        if let Some(r) = self.small.first_mut() {
            r.0 = r.0.max(first);
        }
    }
}

/// Zeek's reassembler blocks: disjoint [seq, upper) as inserted (not merged), and their union.
/// Like `Coverage`, a short vector (in-flight segments, appended in order) until it holds more
/// than `SMALL_PIECES`, then a B-tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocks {
    small: Vec<(i64, i64)>,
    /// Boxed: the tree's 24 bytes only past SMALL_PIECES.
    #[allow(clippy::box_collection)]
    tree: Option<Box<BTreeMap<i64, i64>>>,
    union: Coverage,
}

const SMALL_PIECES: usize = 32;

/// Emptied `Blocks` kept for the next flight of data (`SpareBlocks`), at most this many, each
/// with vectors of at most SPARE_CAPACITY ranges: the boxes and vectors every flight
/// allocated and freed were a tenth of the tracker's instructions (three allocations and
/// three frees a flight).
const SPARE_MAX: usize = 256;
const SPARE_CAPACITY: usize = 8;

/// The tracker's emptied `Blocks`, handed to the next reassembler that needs one.
/// Boxes, as a reassembler holds them: what is reused is the box with its vectors.
#[derive(Debug, Default)]
#[allow(clippy::vec_box)]
pub struct SpareBlocks(Vec<Box<Blocks>>);

impl SpareBlocks {
    /// An empty `Blocks`, reused if one is spare.
    pub fn take(&mut self) -> Box<Blocks> {
        self.0.pop().unwrap_or_default()
    }

    /// How many are kept (tests).
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.0.len()
    }

    /// Keeps `b` (emptied) for reuse, or drops it.
    pub fn give(&mut self, mut b: Box<Blocks>) {
        if self.0.len() < SPARE_MAX && b.reset_for_reuse() {
            self.0.push(b);
        }
    }
}

impl Blocks {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.tree.as_ref().map_or(self.small.len(), |t| t.len())
    }

    /// Adds [seq, upper) minus what the blocks already hold: one block per hole.
    pub fn insert(&mut self, seq: i64, upper: i64) {
        let Blocks { small, tree, union } = self;
        union.holes(seq, upper, &mut |a, b| {
            step();
            match tree.as_deref_mut() {
                Some(t) => {
                    t.insert(a, b);
                }
                None => {
                    if small.last().is_none_or(|l| l.0 < a) {
                        small.push((a, b));
                    } else {
                        let i = small.partition_point(|r| r.0 < a);
                        small.insert(i, (a, b));
                    }
                }
            }
        });
        if self.small.len() > SMALL_PIECES {
            let t: BTreeMap<i64, i64> = self.small.drain(..).collect();
            self.small = Vec::new();
            self.tree = Some(Box::new(t));
        }
        self.union.add(seq, upper);
    }

    /// The end of the block that starts exactly at `seq`.
    pub fn end_of(&self, seq: i64) -> Option<i64> {
        step();
        match &self.tree {
            Some(t) => t.get(&seq).copied(),
            None => {
                let i = self.small.partition_point(|r| r.0 < seq);
                self.small.get(i).filter(|r| r.0 == seq).map(|r| r.1)
            }
        }
    }

    /// The first block starting at or after `seq`.
    pub fn first_from(&self, seq: i64) -> Option<(i64, i64)> {
        step();
        match &self.tree {
            Some(t) => t.range(seq..).next().map(|(&a, &b)| (a, b)),
            None => {
                let i = self.small.partition_point(|r| r.0 < seq);
                self.small.get(i).copied()
            }
        }
    }

    pub fn first(&self) -> Option<(i64, i64)> {
        match &self.tree {
            Some(t) => t.first_key_value().map(|(&a, &b)| (a, b)),
            None => self.small.first().copied(),
        }
    }

    pub fn last(&self) -> Option<(i64, i64)> {
        match &self.tree {
            Some(t) => t.last_key_value().map(|(&a, &b)| (a, b)),
            None => self.small.last().copied(),
        }
    }

    /// Drops every block that ends at or before `seq` (they are a prefix: disjoint blocks
    /// end in the order they start).
    pub fn drop_ending_by(&mut self, seq: i64) {
        let dropped = match self.tree.as_deref_mut() {
            Some(t) => {
                let mut dropped = false;
                while let Some((&a, &b)) = t.first_key_value() {
                    step();
                    if b > seq {
                        break;
                    }
                    t.remove(&a);
                    dropped = true;
                }
                dropped
            }
            None => {
                step();
                let k = self.small.partition_point(|r| r.1 <= seq);
                self.small.drain(..k);
                k > 0
            }
        };
        if dropped {
            let first = self.first().map(|(a, _)| a);
            self.union.trim_to(first);
        }
    }

    pub fn clear(&mut self) {
        *self = Blocks::default();
    }

    /// Empties it for another flight, keeping its vectors' allocations; false if it is not
    /// worth keeping (it grew a tree, or vectors longer than a flight usually needs).
    fn reset_for_reuse(&mut self) -> bool {
        let small = self.tree.is_none()
            && self.union.map.is_none()
            && self.small.capacity() <= SPARE_CAPACITY
            && self.union.small.capacity() <= SPARE_CAPACITY;
        if small {
            self.small.clear();
            self.union.small.clear();
        }
        small
    }

    /// Every block, in order (tests).
    pub fn to_vec(&self) -> Vec<(i64, i64)> {
        match &self.tree {
            Some(t) => t.iter().map(|(&a, &b)| (a, b)).collect(),
            None => self.small.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector algorithm this replaces, kept as the oracle.
    fn insert_vec(blocks: &mut Vec<(i64, i64)>, seq: i64, upper: i64) {
        let mut lo = seq;
        let mut i = 0;
        while i < blocks.len() && lo < upper {
            let (b0, b1) = blocks[i];
            if b1 <= lo {
                i += 1;
                continue;
            }
            if b0 >= upper {
                break;
            }
            if lo < b0 {
                blocks.insert(i, (lo, b0));
                i += 1;
            }
            lo = lo.max(b1);
            i += 1;
        }
        if lo < upper {
            blocks.insert(i, (lo, upper));
        }
    }

    fn cover_vec(ranges: &mut Vec<(i64, i64)>, start: i64, end: i64) {
        ranges.push((start, end));
        ranges.sort_unstable();
        let mut out: Vec<(i64, i64)> = Vec::new();
        for &(a, b) in ranges.iter() {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        *ranges = out;
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> i64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n) as i64
        }
    }

    #[test]
    fn blocks_equal_the_vector_algorithm() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..200 {
            let (mut b, mut v) = (Blocks::default(), Vec::new());
            let (mut c, mut cv) = (Coverage::default(), Vec::new());
            for _ in 0..60 {
                let start = rng.below(400);
                let end = start + 1 + rng.below(40);
                if rng.below(8) == 0 {
                    let seq = rng.below(400);
                    b.drop_ending_by(seq);
                    v.retain(|x: &(i64, i64)| x.1 > seq);
                } else {
                    b.insert(start, end);
                    insert_vec(&mut v, start, end);
                }
                assert_eq!(b.to_vec(), v);
                let mut union = Vec::new();
                for &(x, y) in &v {
                    cover_vec(&mut union, x, y);
                }
                assert_eq!(b.union.to_vec(), union);
                c.add(start, end);
                cover_vec(&mut cv, start, end);
                let probe = rng.below(440);
                let probe_end = probe + rng.below(20);
                let expect = cv.iter().any(|&(x, y)| x <= probe && probe_end <= y);
                assert_eq!(c.covers(probe, probe_end), expect);
            }
            assert_eq!(c.to_vec(), cv);
        }
    }

    /// Gapped segments (every other one missing), then segments spanning many holes: the
    /// work per segment stays logarithmic (the vector algorithm walked every block).
    #[test]
    fn gapped_segments_cost_logarithmic_steps() {
        let per_segment = |n: i64| {
            let mut b = Blocks::default();
            let mut c = Coverage::default();
            let before = steps();
            for k in 0..n {
                b.insert(200 * k, 200 * k + 100);
                c.add(200 * k, 200 * k + 100);
                let _ = c.covers(200 * k, 200 * k + 100);
                let _ = b.end_of(200 * k + 100);
            }
            for k in 0..n / 2 {
                // Each fills one hole and touches the ranges around it only.
                b.insert(400 * k, 400 * k + 300);
            }
            (steps() - before) as f64 / n as f64
        };
        let small = per_segment(1000);
        let large = per_segment(16000);
        assert!(large < small * 1.5, "{small} -> {large} steps per segment");
        assert!(large < 20.0, "{large} steps per segment");
    }
}
