//! IP fragment reassembly across frames and batches (portlens.reference.fragments), bounded.
//!
//! The decoder decodes each fragment on its own (a first fragment gets its transport header
//! like any packet) and hands a [`FragRecord`] per fragment; [`Reassembler::apply`] then
//! rewrites the batch's fragment rows as docs/decoding.md (*Fragments*) says: every fragment a
//! `FRAG_PART` row attributed to its datagram's ports, the one that completes the coverage a
//! `FRAG_COMPLETE` row carrying the whole datagram. No fragment bytes are kept, only the byte
//! ranges covered and the first fragment's row.
//!
//! Memory is bounded three ways, each counted when it acts: datagrams incomplete for
//! `timeout_ns` of capture time are dropped (`expired`); past `max_datagrams` the oldest is
//! dropped (`evicted`); past `max_bytes` of state the oldest are dropped (`evicted_bytes`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use super::columns::{Cell, Columns, Row, CSUM_UNVERIFIED, FRAG_COMPLETE, FRAG_PART};
use super::frame::{decode_reassembled, FragKey, FragRecord};
use crate::frames::Frames;
use crate::wire::ipproto;

/// Datagrams incomplete for this long (capture time) are dropped, as in fragments.py.
pub const FRAGMENT_TIMEOUT_NS: i64 = 60_000_000_000;
/// Datagrams held at most, as in fragments.py.
pub const MAX_DATAGRAMS: usize = 4096;
/// State held at most (datagrams, their covered ranges and waiting rows).
pub const MAX_BYTES: usize = 16 << 20;
/// Fragment bytes held at most, of outer IPv4 datagrams that may carry a tunnel (UDP, GRE,
/// IP in IP): past it a datagram's bytes are let go (`bytes_dropped`) and it is reassembled
/// for counting only, not descended into.
pub const MAX_TUNNEL_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentLimits {
    pub timeout_ns: i64,
    pub max_datagrams: usize,
    pub max_bytes: usize,
}

impl Default for FragmentLimits {
    fn default() -> Self {
        FragmentLimits {
            timeout_ns: FRAGMENT_TIMEOUT_NS,
            max_datagrams: MAX_DATAGRAMS,
            max_bytes: MAX_BYTES,
        }
    }
}

/// What the reassembler did, summed over the batches it saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentCounters {
    /// Datagrams whose coverage completed.
    pub completed: u64,
    /// Datagrams dropped after `timeout_ns` without completing.
    pub expired: u64,
    /// Datagrams dropped because `max_datagrams` were held.
    pub evicted: u64,
    /// Datagrams dropped because the state exceeded `max_bytes`.
    pub evicted_bytes: u64,
    /// Completed datagrams decoded whole and found to carry a tunnel (descended into).
    pub descended: u64,
    /// Datagrams whose bytes were let go (MAX_TUNNEL_BYTES), so not descended into.
    pub bytes_dropped: u64,
}

#[derive(Debug)]
struct Datagram {
    /// Insertion order, to tell a live entry of `order` from a stale one.
    seq: u64,
    first_ts: i64,
    /// Byte ranges covered, sorted, disjoint and not touching.
    covered: Vec<(u64, u64)>,
    /// Data length, once the last fragment (MF clear) was seen.
    total: Option<u64>,
    frames: u64,
    unfrag_len: u64,
    /// The first fragment's row: its transport columns describe the datagram.
    first: Option<Box<Row>>,
    /// Part rows of the current batch still waiting for their ports.
    waiting_rows: Vec<usize>,
    /// The first fragment's IPv4 header and the data bytes by offset, for a datagram that
    /// may carry a tunnel while every fragment's bytes were captured (else None).
    bytes: Option<Box<DatagramBytes>>,
    /// A fragment came without its bytes (cut, inside a tunnel) or they were let go.
    frames_without_bytes: bool,
}

#[derive(Debug, Default)]
struct DatagramBytes {
    header: Vec<u8>,
    data: Vec<u8>,
    /// IPv6: the next header to patch in `header` (FragBytes::next_header).
    next_header: Option<(usize, u8)>,
}

impl DatagramBytes {
    fn held(&self) -> usize {
        self.header.capacity() + self.data.capacity()
    }
}

impl Datagram {
    /// A datagram whose first fragment (in arrival order) came at `first_ts`.
    fn new(seq: u64, first_ts: i64) -> Self {
        Datagram {
            seq,
            first_ts,
            covered: Vec::new(),
            total: None,
            frames: 0,
            unfrag_len: 0,
            first: None,
            waiting_rows: Vec::new(),
            bytes: None,
            frames_without_bytes: false,
        }
    }

    /// Bytes this datagram holds (its key and entry, its ranges, its waiting rows).
    fn cost(&self) -> usize {
        ENTRY_BYTES
            + self.covered.capacity() * std::mem::size_of::<(u64, u64)>()
            + self.waiting_rows.capacity() * std::mem::size_of::<usize>()
            + if self.first.is_some() {
                std::mem::size_of::<Row>()
            } else {
                0
            }
    }

    /// Adds [start, stop) to the coverage: the union of the ranges seen, touching ranges
    /// merged.
    fn cover(&mut self, start: u64, stop: u64) {
        let lo = self.covered.partition_point(|&(_, end)| end < start);
        let hi = self.covered.partition_point(|&(begin, _)| begin <= stop);
        if lo >= hi {
            self.covered.insert(lo, (start, stop));
            return;
        }
        let merged = (
            start.min(self.covered.get(lo).map_or(start, |r| r.0)),
            stop.max(self.covered.get(hi - 1).map_or(stop, |r| r.1)),
        );
        self.covered.splice(lo..hi, [merged]);
    }

    fn complete(&self) -> bool {
        match (self.total, &self.first, self.covered.as_slice()) {
            (Some(total), Some(_), [(0, end)]) => *end >= total,
            _ => false,
        }
    }
}

const ENTRY_BYTES: usize = std::mem::size_of::<Datagram>()
    + std::mem::size_of::<FragKey>()
    + std::mem::size_of::<(u64, FragKey)>();

/// Datagrams in progress, keyed by [`FragRecord::key`], in insertion order.
#[derive(Debug, Default)]
pub struct Reassembler {
    limits: FragmentLimits,
    pending: HashMap<FragKey, Datagram>,
    /// Keys by insertion; entries whose datagram completed are skipped and compacted away.
    order: VecDeque<(u64, FragKey)>,
    next_seq: u64,
    held_bytes: usize,
    /// Fragment bytes held (DatagramBytes), bounded by MAX_TUNNEL_BYTES.
    held_data: usize,
    pub counters: FragmentCounters,
    /// Rows the datagrams decoded whole in the last `apply` give after their completing
    /// row's (frame index, row): the middle carriers of three tunnels, A-MSDU subframes.
    pub extras: Vec<(usize, Row)>,
}

macro_rules! copy_columns {
    ($cols:expr, $row:expr, $from:expr, $($name:ident),* $(,)?) => {
        $( $from.$name.write_at(&mut $cols.$name, $row); )*
    };
}

impl Reassembler {
    pub fn new(limits: FragmentLimits) -> Self {
        Reassembler {
            limits: FragmentLimits {
                max_datagrams: limits.max_datagrams.max(1),
                ..limits
            },
            ..Reassembler::default()
        }
    }

    pub fn limits(&self) -> FragmentLimits {
        self.limits
    }

    /// Datagrams held now.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes of state held now (the figure `max_bytes` bounds).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Rewrites the fragment rows of `cols` (records in row order). `checksums` says whether
    /// the batch's checksum columns were filled: if not, they stay `CSUM_NONE`. `frames` are
    /// the batch's frames (rows in frame order), whose fragment bytes an outer datagram that
    /// may carry a tunnel keeps until it completes.
    pub fn apply(
        &mut self,
        cols: &mut Columns,
        records: &[FragRecord],
        checksums: bool,
        frames: Option<&Frames<'_>>,
    ) {
        self.extras.clear();
        if records.is_empty() {
            return;
        }
        for d in self.pending.values_mut() {
            d.waiting_rows.clear();
        }
        self.held_bytes = self.pending.values().map(Datagram::cost).sum();
        for rec in records {
            self.one(cols, rec, checksums, frames);
        }
    }

    /// Keeps the bytes of `rec` for its datagram `d` (see `Datagram::bytes`).
    fn keep_bytes(&mut self, key: &FragKey, rec: &FragRecord, frame: Option<&[u8]>) {
        let Some(d) = self.pending.get_mut(key) else {
            return;
        };
        let tunnel_proto = matches!(
            key.get(33).copied().unwrap_or(0),
            ipproto::UDP | ipproto::GRE | ipproto::IPIP | ipproto::IPV6
        );
        let (Some(ranges), Some(frame)) = (rec.bytes, frame) else {
            // A fragment not captured whole: the datagram cannot be decoded whole.
            if let Some(b) = d.bytes.take() {
                self.held_data = self.held_data.saturating_sub(b.held());
            }
            d.frames_without_bytes = true;
            return;
        };
        if !tunnel_proto || d.frames_without_bytes {
            return;
        }
        let (Some(header), Some(data)) = (
            frame.get(ranges.header.0..ranges.header.1),
            frame.get(ranges.data.0..ranges.data.1),
        ) else {
            return;
        };
        let Ok(offset) = usize::try_from(rec.offset) else {
            return;
        };
        let Some(end) = offset.checked_add(data.len()) else {
            return;
        };
        let bytes = d.bytes.get_or_insert_with(Box::default);
        let before = bytes.held();
        if bytes.data.len() < end {
            bytes.data.resize(end, 0);
        }
        if let Some(slot) = bytes.data.get_mut(offset..end) {
            slot.copy_from_slice(data);
        }
        if rec.offset == 0 {
            bytes.header.clear();
            bytes.header.extend_from_slice(header);
            bytes.next_header = ranges.next_header;
        }
        self.held_data = (self.held_data + bytes.held()).saturating_sub(before);
        if self.held_data > MAX_TUNNEL_BYTES {
            if let Some(b) = d.bytes.take() {
                self.held_data = self.held_data.saturating_sub(b.held());
            }
            d.frames_without_bytes = true;
            self.counters.bytes_dropped += 1;
        }
    }

    fn one(
        &mut self,
        cols: &mut Columns,
        rec: &FragRecord,
        checksums: bool,
        frames: Option<&Frames<'_>>,
    ) {
        let row = rec.row;
        let Some(&now) = cols.ts_ns.get(row) else {
            return;
        };
        self.expire(now);
        while self.held_bytes > self.limits.max_bytes && self.drop_oldest() {
            self.counters.evicted_bytes += 1;
        }
        if let Entry::Vacant(e) = self.pending.entry(rec.key) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.push_back((seq, rec.key));
            let d = e.insert(Datagram::new(seq, now));
            self.held_bytes += d.cost();
            if self.pending.len() > self.limits.max_datagrams && self.drop_oldest() {
                self.counters.evicted += 1;
            }
        }
        self.keep_bytes(&rec.key, rec, frames.and_then(|f| f.bytes(rec.row)));
        let Some(d) = self.pending.get_mut(&rec.key) else {
            return;
        };
        let before = d.cost();
        d.frames += 1;
        if rec.offset == 0 && d.first.is_none() {
            d.first = cols.row(row).map(Box::new);
            d.unfrag_len = rec.unfrag_len;
        }
        if !rec.more {
            d.total = Some(rec.offset.saturating_add(rec.length));
        }
        if rec.length > 0 {
            d.cover(rec.offset, rec.offset.saturating_add(rec.length));
        }
        FRAG_PART.write_at(&mut cols.frag, row);
        0u8.write_at(&mut cols.l4, row);
        (-1i32).write_at(&mut cols.payload, row);
        if let Some(csum) = cols.l4_csum.get_mut(row) {
            *csum = if *csum != 0 { CSUM_UNVERIFIED } else { 0 };
        }
        d.waiting_rows.push(row);
        if d.complete() {
            Self::complete(cols, row, d, checksums);
            if let Some((row_got, more)) = Self::descend(cols, row, d, checksums) {
                cols.set_row(row, &row_got);
                self.extras
                    .extend(more.into_iter().map(|extra| (row, extra)));
                self.counters.descended += 1;
            }
            if let Some(b) = d.bytes.take() {
                self.held_data = self.held_data.saturating_sub(b.held());
            }
            self.held_bytes = self.held_bytes.saturating_sub(before);
            self.pending.remove(&rec.key);
            self.counters.completed += 1;
            self.compact();
        } else {
            if d.first.is_some() {
                Self::attribute(cols, d);
            }
            self.held_bytes = (self.held_bytes + d.cost()).saturating_sub(before);
        }
    }

    /// Part rows waiting in this batch get the datagram's ports (attribution to the flow).
    fn attribute(cols: &mut Columns, d: &mut Datagram) {
        if let Some(first) = &d.first {
            for &r in &d.waiting_rows {
                first.sport.write_at(&mut cols.sport, r);
                first.dport.write_at(&mut cols.dport, r);
            }
        }
        d.waiting_rows.clear();
    }

    /// The fragment at `row` completed `d`: its row describes the whole datagram.
    fn complete(cols: &mut Columns, row: usize, d: &mut Datagram, checksums: bool) {
        let (Some(first), Some(total)) = (d.first.as_deref(), d.total) else {
            return;
        };
        copy_columns!(
            cols, row, first, l4, sport, dport, tcp_flags, seq, ack, tcp_hlen, win, urp, mss,
            wscale, sack_perm, has_ts, tsval, tsecr, sack_count, sack, opt_count, opt_kinds,
            udp_len, icmp_type, icmp_code, icmp_id, q_valid, q_src, q_dst, q_proto, q_sport,
            q_dport, proto,
        );
        let total_i = i64::try_from(total).unwrap_or(i64::MAX);
        let payload: i64 = match first.l4 {
            ipproto::TCP => total_i - i64::from(first.tcp_hlen),
            ipproto::UDP => {
                let udp_len = i64::from(first.udp_len);
                if (8..=total_i).contains(&udp_len) {
                    udp_len - 8
                } else {
                    total_i - 8
                }
            }
            ipproto::ICMP | ipproto::ICMPV6 => (total_i - 8).max(0),
            _ => -1,
        };
        FRAG_COMPLETE.write_at(&mut cols.frag, row);
        u16::try_from(d.frames)
            .unwrap_or(u16::MAX)
            .write_at(&mut cols.frag_count, row);
        u32::try_from(d.unfrag_len.saturating_add(total))
            .unwrap_or(u32::MAX)
            .write_at(&mut cols.ip_len, row);
        i32::try_from(payload)
            .unwrap_or(if payload < 0 { i32::MIN } else { i32::MAX })
            .write_at(&mut cols.payload, row);
        let l4_csum = if checksums && first.l4 != 0 {
            CSUM_UNVERIFIED
        } else {
            0
        };
        l4_csum.write_at(&mut cols.l4_csum, row);
        if let Some(k) = d.waiting_rows.iter().position(|&r| r == row) {
            d.waiting_rows.remove(k);
        }
        Self::attribute(cols, d);
    }

    /// The completing row of a datagram whose bytes were kept, decoded whole: Some when it
    /// carries a tunnel (the row then describes the inner packet, the datagram its carrier),
    /// with the rows it gives after it.
    fn descend(
        cols: &Columns,
        row: usize,
        d: &Datagram,
        checksums: bool,
    ) -> Option<(Row, Vec<Row>)> {
        let bytes = d.bytes.as_deref()?;
        let total = usize::try_from(d.total?).ok()?;
        let hlen = bytes.header.len();
        if hlen < 20 || bytes.data.len() != total {
            return None;
        }
        let mut datagram = Vec::with_capacity(hlen.checked_add(total)?);
        datagram.extend_from_slice(&bytes.header);
        datagram.extend_from_slice(&bytes.data);
        if let Some((at, next)) = bytes.next_header {
            // IPv6: the fragment header goes; the header that named it names what it carried
            let payload = u16::try_from(hlen.checked_sub(40)?.checked_add(total)?).ok()?;
            datagram
                .get_mut(4..6)?
                .copy_from_slice(&payload.to_be_bytes());
            *datagram.get_mut(at)? = next;
        } else {
            let length = u16::try_from(hlen.checked_add(total)?).ok()?;
            datagram
                .get_mut(2..4)?
                .copy_from_slice(&length.to_be_bytes());
            datagram.get_mut(6..8)?.copy_from_slice(&[0, 0]); // no more fragments, offset 0
        }
        let completing = cols.row(row)?;
        let (mut got, more) = decode_reassembled(&datagram, completing, checksums)?;
        got.frag = FRAG_COMPLETE;
        got.frag_count = completing.frag_count;
        if !checksums {
            got.ip_csum = 0;
            got.l4_csum = 0;
        }
        Some((got, more))
    }

    /// Drops the datagrams incomplete since `timeout_ns` before `now`, oldest first (only the
    /// oldest are looked at, as fragments.py does).
    fn expire(&mut self, now: i64) {
        while let Some(first_ts) = self.oldest().map(|d| d.first_ts) {
            if now.saturating_sub(first_ts) <= self.limits.timeout_ns {
                return;
            }
            self.drop_oldest();
            self.counters.expired += 1;
        }
    }

    /// The datagram inserted first among those held (stale order entries are dropped).
    fn oldest(&mut self) -> Option<&Datagram> {
        loop {
            let (seq, key) = *self.order.front()?;
            if self.pending.get(&key).is_some_and(|d| d.seq == seq) {
                return self.pending.get(&key);
            }
            self.order.pop_front();
        }
    }

    fn drop_oldest(&mut self) -> bool {
        if self.oldest().is_none() {
            return false;
        }
        let Some((_, key)) = self.order.pop_front() else {
            return false;
        };
        if let Some(mut d) = self.pending.remove(&key) {
            self.held_bytes = self.held_bytes.saturating_sub(d.cost());
            if let Some(b) = d.bytes.take() {
                self.held_data = self.held_data.saturating_sub(b.held());
            }
        }
        true
    }

    /// Keeps `order` within twice the datagrams held: entries of completed datagrams go.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.order
                .retain(|(seq, key)| pending.get(key).is_some_and(|d| d.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram() -> Datagram {
        Datagram::new(0, 0)
    }

    #[test]
    fn coverage_is_the_union_of_ranges() {
        let mut d = datagram();
        d.cover(16, 24);
        d.cover(0, 8);
        assert_eq!(d.covered, [(0, 8), (16, 24)]);
        d.cover(8, 16); // touching both: one range
        assert_eq!(d.covered, [(0, 24)]);
        d.cover(40, 48);
        d.cover(30, 35);
        d.cover(2, 44);
        assert_eq!(d.covered, [(0, 48)]);
        d.cover(48, 48);
        d.cover(50, 60);
        assert_eq!(d.covered, [(0, 48), (50, 60)]);
    }
}
