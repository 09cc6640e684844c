//! Zeek's own bookkeeping of a TCP endpoint (track/zeek.py), so conn.log fields come out as
//! Zeek prints them: endpoint states, sizes from sequence numbers, and a model of Zeek's
//! reassembler that decides gaps (missed_bytes). docs/zeek-rules.md gives every rule.

use super::history::Scaled;
use super::ranges::{Blocks, SpareBlocks};

/// Zeek ignores SYN/RST sequence numbers that jump further than this (§8.1).
pub const TOO_LARGE_SEQ_DELTA: i64 = 1_048_576;
/// Unacknowledged bytes after which Zeek's reassembler gives up on a stream (§8.4).
pub const REASSEMBLY_SKIP: i64 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

impl ZState {
    pub fn in_handshake(self) -> bool {
        matches!(
            self,
            ZState::Inactive | ZState::SynSent | ZState::SynAckSent
        )
    }
}

/// a - b in 32-bit sequence space, as a signed number.
pub fn seq_delta(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// How often the sequence space had wrapped at `value`, which lies near `mark` (wrapped
/// `wraps` times): one less just before a wrap, one more just after; and value - mark.
pub fn wraps_near(value: u32, mark: u32, wraps: u32) -> (i64, u32) {
    let d = seq_delta(value, mark);
    let mut w = wraps;
    if d < 0 {
        if w > 0 && value > mark {
            w -= 1;
        }
    } else if d > 0 && value < mark {
        w = w.saturating_add(1);
    }
    (d, w)
}

/// One side of a TCP connection as Zeek's TCP_Endpoint keeps it, with its reassembler.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZEndpoint {
    pub state: ZState,
    pub prev_state: ZState,
    pub start_seq: u32,
    pub last_seq: u32,
    pub ack_seq: u32,
    pub seq_wraps: u32,
    pub ack_wraps: u32,
    pub fin_cnt: u32,
    pub rst_cnt: u32,
    pub did_close: bool,
    pub first_seen: bool,
    pub fin_seq: i64,
    pub hist_syn: i64,
    pub hist_fin: i64,
    pub hist_rst: i64,
    pub rxmit: Scaled,
    pub zero_window: Scaled,
    pub gaps: Scaled,
    pub corrupt: Scaled,
    pub reasm: Reasm,
}

/// What Zeek's TCP reassembler decides for conn.log: the blocks [seq, upper) not yet trimmed
/// (boxed: allocated with the first block, dropped when the last goes), the first byte not yet
/// delivered in order, the trim point.
#[derive(Debug, Clone, PartialEq)]
pub struct Reasm {
    pub blocks: Option<Box<Blocks>>,
    pub next: i64,
    pub trim: i64,
    pub skip: bool,
    pub did_eof: bool,
}

impl Default for Reasm {
    fn default() -> Self {
        Reasm {
            blocks: None,
            next: 1,
            trim: 1,
            skip: false,
            did_eof: false,
        }
    }
}

impl Reasm {
    /// Adds [seq, upper) minus what the blocks already hold (the box from `spare`).
    pub fn insert(&mut self, seq: i64, upper: i64, spare: &mut SpareBlocks) {
        self.blocks
            .get_or_insert_with(|| spare.take())
            .insert(seq, upper);
    }

    pub fn has_blocks(&self) -> bool {
        self.blocks.as_ref().is_some_and(|b| !b.is_empty())
    }

    pub fn end_of(&self, seq: i64) -> Option<i64> {
        self.blocks.as_ref().and_then(|b| b.end_of(seq))
    }

    pub fn first_from(&self, seq: i64) -> Option<(i64, i64)> {
        self.blocks.as_ref().and_then(|b| b.first_from(seq))
    }

    pub fn first(&self) -> Option<(i64, i64)> {
        self.blocks.as_ref().and_then(|b| b.first())
    }

    pub fn last(&self) -> Option<(i64, i64)> {
        self.blocks.as_ref().and_then(|b| b.last())
    }

    /// Drops the blocks that end at or before `seq`; the box goes (to `spare`) with the last
    /// of them.
    pub fn drop_ending_by(&mut self, seq: i64, spare: &mut SpareBlocks) {
        if let Some(b) = self.blocks.as_mut() {
            b.drop_ending_by(seq);
            if b.is_empty() {
                if let Some(b) = self.blocks.take() {
                    spare.give(b);
                }
            }
        }
    }

    pub fn clear(&mut self, spare: &mut SpareBlocks) {
        if let Some(b) = self.blocks.take() {
            spare.give(b);
        }
    }

    /// Every block, in order (tests).
    pub fn block_list(&self) -> Vec<(i64, i64)> {
        self.blocks.as_ref().map(|b| b.to_vec()).unwrap_or_default()
    }
}

impl ZEndpoint {
    pub fn init_seqs(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
    }

    pub fn update_last(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps = self.seq_wraps.saturating_add(1);
        }
        self.last_seq = seq;
    }

    pub fn update_ack(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps = self.ack_wraps.saturating_add(1);
        }
        self.ack_seq = seq;
    }

    pub fn abs_ack(&self) -> i64 {
        (i64::from(self.ack_wraps) << 32) + i64::from(self.ack_seq)
    }

    pub fn abs_last(&self) -> i64 {
        (i64::from(self.seq_wraps) << 32) + i64::from(self.last_seq)
    }

    /// ep_rel(ep, ack_seq, ack_wraps): the highest acknowledged position, relative.
    pub fn rel_ack(&self) -> i64 {
        self.abs_ack() - i64::from(self.start_seq)
    }

    pub fn no_data_acked(&self) -> bool {
        let ack = self.abs_ack();
        let start = i64::from(self.start_seq);
        ack == start || ack == start + 1
    }

    pub fn clean(&self) -> bool {
        self.state == ZState::Established
            || (self.state == ZState::Closed && self.prev_state == ZState::Established)
    }
}

/// Zeek's orig_bytes/resp_bytes: payload bytes by sequence numbers (§8.1).
pub fn size(ep: &ZEndpoint, peer: &ZEndpoint) -> u64 {
    if ep.prev_state == ZState::SynSent
        && ep.state == ZState::Reset
        && peer.state == ZState::Inactive
        && !ep.no_data_acked()
    {
        return 0;
    }
    let top = ep.abs_last().max(ep.abs_ack());
    let mut size = (top - i64::from(ep.start_seq)) as u64;
    size = size.saturating_sub(1); // the SYN's sequence number, real or assumed
    if ep.fin_cnt > 0 && size != 0 {
        size -= 1; // the FIN's
    }
    size
}

/// Zeek's conn_state codes, in the order of CONN_STATE_NAMES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    S0 = 0,
    S1,
    SF,
    Rej,
    S2,
    S3,
    Rsto,
    Rstr,
    Rstos0,
    Rstrh,
    Sh,
    Shr,
    Oth,
}

pub const CONN_STATE_NAMES: [&str; 13] = [
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];

/// `\^?S[^HAFGIQ]*R.*` as a full match: a SYN, then a RST before any answer or data.
fn rstos0_history(h: &[u8]) -> bool {
    let h = h.strip_prefix(b"^").unwrap_or(h);
    let Some(rest) = h.strip_prefix(b"S") else {
        return false;
    };
    for &c in rest {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

/// conn_state in the order of Zeek's decision procedure (§7.1).
pub fn tcp_conn_state(orig: &ZEndpoint, resp: &ZEndpoint, history: &[u8]) -> ConnState {
    use ZState::*;
    let (os, rs) = (orig.state, resp.state);
    let o_inactive = matches!(os, Inactive | Partial);
    let r_inactive = matches!(rs, Inactive | Partial);
    if rs == Reset {
        if matches!(os, SynSent | SynAckSent)
            || (os == Reset && size(orig, resp) == 0 && size(resp, orig) == 0)
        {
            return ConnState::Rej;
        }
        return if o_inactive {
            ConnState::Rstrh
        } else {
            ConnState::Rstr
        };
    }
    if os == Reset {
        if r_inactive {
            return if rstos0_history(history) {
                ConnState::Rstos0
            } else {
                ConnState::Oth
            };
        }
        return ConnState::Rsto;
    }
    if rs == Closed && os == Closed {
        return ConnState::SF;
    }
    if os == Closed {
        return if r_inactive {
            ConnState::Sh
        } else {
            ConnState::S2
        };
    }
    if rs == Closed {
        return if o_inactive {
            ConnState::Shr
        } else {
            ConnState::S3
        };
    }
    if os == SynSent && rs == Inactive {
        return ConnState::S0;
    }
    if os == Established && rs == Established {
        return ConnState::S1;
    }
    ConnState::Oth
}

pub fn udp_conn_state(orig_active: bool, resp_active: bool) -> ConnState {
    match (orig_active, resp_active) {
        (true, true) => ConnState::SF,
        (true, false) => ConnState::S0,
        (false, true) => ConnState::Shr,
        (false, false) => ConnState::Oth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_blocks_sorted_and_disjoint() {
        let mut r = Reasm::default();
        let spare = &mut SpareBlocks::default();
        r.insert(10, 20, spare);
        r.insert(30, 40, spare);
        r.insert(5, 35, spare);
        assert_eq!(r.block_list(), vec![(5, 10), (10, 20), (20, 30), (30, 40)]);
        r.insert(0, 50, spare);
        assert_eq!(
            r.block_list(),
            vec![(0, 5), (5, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
        );
    }

    #[test]
    fn blocks_of_an_acknowledged_flight_serve_the_next_one_empty() {
        let spare = &mut SpareBlocks::default();
        let mut r = Reasm::default();
        r.insert(10, 20, spare);
        r.insert(30, 40, spare);
        r.drop_ending_by(40, spare);
        assert!(!r.has_blocks());
        assert_eq!(spare.kept(), 1);
        let mut q = Reasm::default();
        q.insert(100, 110, spare);
        assert_eq!(spare.kept(), 0);
        assert_eq!(q.block_list(), vec![(100, 110)]);
        // Its union was emptied too: an insert around the block adds only the holes.
        q.insert(90, 120, spare);
        assert_eq!(q.block_list(), vec![(90, 100), (100, 110), (110, 120)]);
        q.clear(spare);
        assert_eq!(spare.kept(), 1);
    }

    #[test]
    fn rstos0_pattern() {
        assert!(rstos0_history(b"SR"));
        assert!(rstos0_history(b"^SdTR"));
        assert!(rstos0_history(b"ShR")); // letters are case-sensitive, as in the regex
        assert!(!rstos0_history(b"SAR"));
        assert!(!rstos0_history(b"S"));
        assert!(!rstos0_history(b"DSR"));
    }

    #[test]
    fn seq_delta_wraps() {
        assert_eq!(seq_delta(1, u32::MAX), 2);
        assert_eq!(seq_delta(u32::MAX, 1), -2);
    }
}
