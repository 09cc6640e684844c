//! Frames -> packet columns: link layers, IPv4/IPv6, tunnels, TCP/UDP/ICMP headers, fragment
//! reassembly. The rules are docs/decoding.md; `portlens.reference.decode` (Python) is the
//! oracle every column is tested against (tests/test_rust_decoder.py).
//!
//! [`Decoder::decode`] walks each frame once ([`frame`]), writing one [`Row`] into
//! preallocated [`Columns`]; nothing is allocated per packet but for fragments.

pub mod app;
pub mod columns;
pub mod fragments;
pub mod frame;
pub mod malformed;

pub use columns::{ColumnData, Columns, NamedColumn, Row, SUB_CARRIER, SUB_FRAME, SUB_MSDU};
pub use fragments::{FragmentCounters, FragmentLimits, Reassembler};
pub use frame::FragRecord;

use crate::frames::Frames;

/// What [`Decoder::decode_each`] hands over: one row, or rows `first..` of the columns
/// (the rows before `first` are not set).
pub enum Decoded<'c> {
    Row(&'c Row),
    Stored(&'c Columns, usize),
}

/// Options of one decode call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify IPv4 header and TCP/UDP/ICMP checksums. When false, `ip_csum` and `l4_csum`
    /// are `CSUM_NONE` in every row: see docs/decoding.md (*Checksums*) for who asks.
    pub checksums: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { checksums: true }
    }
}

/// Decodes successive batches of one source: fragments of a datagram may span batches.
#[derive(Debug, Default)]
pub struct Decoder {
    pub reassembler: Reassembler,
    records: Vec<FragRecord>,
    /// Rows frames give after their own (frame index, row): A-MSDU subframes, middle carriers.
    extras: Vec<(usize, Row)>,
    /// The last few frames' rows, stored into the columns together ([`Columns::set_rows`]).
    block: Vec<Row>,
}

/// Rows stored into the columns at a time: a few hundred bytes each, so that the block stays
/// in the first-level cache while it is copied out column by column.
const BLOCK_ROWS: usize = 64;

impl Decoder {
    pub fn new(limits: FragmentLimits) -> Self {
        Decoder {
            reassembler: Reassembler::new(limits),
            records: Vec::new(),
            extras: Vec::new(),
            block: Vec::with_capacity(BLOCK_ROWS),
        }
    }

    /// One row per frame (followed by any more it gives, `sub` > 0), fragments reassembled
    /// with the state of earlier batches. Never
    /// panics on frame contents: a frame whose offset and length lie outside `data` decodes as
    /// an empty one; columns shorter than `offset` read as 0.
    pub fn decode(&mut self, frames: Frames<'_>, options: DecodeOptions) -> Columns {
        let mut cols = Columns::filled(frames.len());
        self.decode_rows(frames, options, &mut cols);
        cols
    }

    /// As [`decode`](Self::decode), into `cols`, whose memory is reused: a caller decoding
    /// batch after batch into the same columns allocates (and faults in) nothing per batch.
    pub fn decode_into(&mut self, frames: Frames<'_>, options: DecodeOptions, cols: &mut Columns) {
        cols.resize(frames.len());
        self.decode_rows(frames, options, cols);
    }

    /// As [`decode_into`](Self::decode_into) for a caller that reads each row once, in
    /// order (the counts of `packets --stats`): the rows before the batch's first fragment
    /// go to `rows` as they are decoded ([`Decoded::Row`]), never stored (storing a row's
    /// 70 columns cost as much as decoding it); from the first fragment on, rows are stored
    /// in `cols` as `decode_into` stores them, since the reassembler completes fragment rows
    /// after the batch is walked, and handed over once it has ([`Decoded::Stored`]). The
    /// rows, and their order, are the frames' own rows of `decode_into` (not the more rows
    /// some frames give after their own, which `packets --stats` does not count).
    pub fn decode_each(
        &mut self,
        frames: Frames<'_>,
        options: DecodeOptions,
        cols: &mut Columns,
        mut rows: impl FnMut(Decoded<'_>),
    ) {
        self.records.clear();
        let mut first = frames.len();
        let mut walker = frame::Walker::new(&[], 0, Row::default(), 0, options.checksums);
        for i in 0..frames.len() {
            Self::walk(&frames, i, &mut walker);
            if walker.record.is_none() && first == frames.len() {
                rows(Decoded::Row(&walker.row));
                continue;
            }
            if first == frames.len() {
                first = i;
                cols.resize(frames.len());
            }
            cols.set_row(i, &walker.row);
            if let Some(record) = walker.record.take() {
                self.records.push(record);
            }
        }
        if first < frames.len() {
            self.reassembler
                .apply(cols, &self.records, options.checksums, Some(&frames));
            rows(Decoded::Stored(cols, first));
        }
        // The rows some frames give after their own (A-MSDU subframes, middle carriers) are
        // not counted: a frame is counted by its own row.
        self.reassembler.extras.clear();
    }

    /// Sets every frame's row of `cols` (as long as `frames`), reassembles, then inserts the
    /// more rows some frames give after their own.
    fn decode_rows(&mut self, frames: Frames<'_>, options: DecodeOptions, cols: &mut Columns) {
        self.records.clear();
        self.extras.clear();
        self.block.clear();
        let mut walker = frame::Walker::new(&[], 0, Row::default(), 0, options.checksums);
        for i in 0..frames.len() {
            Self::walk(&frames, i, &mut walker);
            // from the walker straight into the block: `push` made a copy on the stack first
            self.block
                .extend_from_slice(std::slice::from_ref(&walker.row));
            if self.block.len() == BLOCK_ROWS {
                cols.set_rows((i + 1).saturating_sub(BLOCK_ROWS), &self.block);
                self.block.clear();
            }
            if let Some(record) = walker.record.take() {
                self.records.push(record);
            }
            self.extras.extend(walker.extra_rows().map(|row| (i, row)));
        }
        cols.set_rows(frames.len().saturating_sub(self.block.len()), &self.block);
        self.reassembler
            .apply(cols, &self.records, options.checksums, Some(&frames));
        if !self.reassembler.extras.is_empty() {
            // a datagram decoded whole once complete: its rows go after its completing frame's
            self.extras.append(&mut self.reassembler.extras);
            self.extras.sort_by_key(|(frame, _)| *frame);
        }
        if !self.extras.is_empty() {
            insert_extras(cols, &self.extras);
        }
    }

    /// Frame `i` of `frames` decoded into `walker`: its row and fragment record.
    #[inline(always)]
    fn walk<'a>(frames: &Frames<'a>, i: usize, walker: &mut frame::Walker<'a>) {
        let caplen = frames.caplen.get(i).copied().unwrap_or(0);
        let wirelen = frames.wirelen.get(i).copied().unwrap_or(0);
        let linktype = frames.linktype.get(i).copied().unwrap_or(0);
        let row = Row {
            frame: frames.frame.get(i).copied().unwrap_or(0),
            ts_ns: frames.ts_ns.get(i).copied().unwrap_or(0),
            wirelen,
            caplen,
            linktype,
            interface: frames.interface.get(i).copied().unwrap_or(0),
            truncated: caplen < wirelen,
            ..Row::default()
        };
        let bytes = frames.bytes(i).unwrap_or(&[]);
        walker.reset(bytes, wirelen, row, i);
        walker.decode(linktype);
    }
}

/// `cols` with each extra row after its frame's (extras in frame order): a copy, made only
/// for the batches that have such frames.
fn insert_extras(cols: &mut Columns, extras: &[(usize, Row)]) {
    let n = cols.len();
    let mut out = Columns::with_capacity(n.saturating_add(extras.len()));
    let mut pending = extras.iter().peekable();
    for i in 0..n {
        if let Some(row) = cols.row(i) {
            out.push(&row);
        }
        while let Some((_, row)) = pending.next_if(|(frame, _)| *frame == i) {
            out.push(row);
        }
    }
    *cols = out;
}

/// Decodes one frame on its own (no reassembly): its row and its fragment record if any
/// (not the rows some frames give after their own).
pub fn decode_one(
    bytes: &[u8],
    wirelen: u32,
    linktype: u16,
    checksums: bool,
) -> (Row, Option<FragRecord>) {
    let caplen = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let row = Row {
        wirelen,
        caplen,
        linktype,
        truncated: caplen < wirelen,
        ..Row::default()
    };
    let mut walker = frame::Walker::new(bytes, wirelen, row, 0, checksums);
    walker.decode(linktype);
    (walker.row, walker.record)
}

#[cfg(test)]
mod tests;
