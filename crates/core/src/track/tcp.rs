//! One TCP connection, followed packet by packet (track/tcp.py): Zeek's view of both
//! endpoints (zeek.rs) for conn.log, beside the RFC 9293 observer (rfc.rs).
//!
//! Roles can flip (Zeek's rules). Everything per host is kept by host index (0 = the sender
//! of the first packet), and `c.orig` says which host is the originator now, so a flip moves
//! no data: it only changes `c.orig`.

use super::rfc::Observer;
use super::zeek::{
    seq_delta, size, wraps_near, ZEndpoint, ZState, REASSEMBLY_SKIP, TOO_LARGE_SEQ_DELTA,
};
use super::{Common, Timeouts, TimerCtx, TimerKind};

pub const FIN: u16 = 0x01;
pub const SYN: u16 = 0x02;
pub const RST: u16 = 0x04;
pub const ACK: u16 = 0x10;

// One-time history letters (§5.1): bit masks; the responder's are shifted by 16.
const HIST_SYN: u32 = 0x1;
const HIST_FIN: u32 = 0x2;
const HIST_RST: u32 = 0x4;
const HIST_FIN_RST: u32 = 0x8;
const HIST_DATA: u32 = 0x10;
const HIST_ACK: u32 = 0x20;
const HIST_MULTI_FLAG: u32 = 0x40;

/// The fields of one TCP packet the tracker uses.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub ts: i64,
    /// Zeek's time: microseconds, as Zeek reads them (§1.1), in ns units.
    pub zts: i64,
    pub frame: i64,
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub payload: i64,
    pub win: u16,
    pub ip_len: u32,
    /// The whole payload was captured (not cut by snaplen).
    pub captured: bool,
    pub csum_bad: bool,
}

/// A TCP connection keyed by its 4-tuple, from its first packet until it is removed.
#[derive(Debug, PartialEq)]
pub struct TcpConn {
    pub c: Common,
    pub ep: [ZEndpoint; 2],
    pub obs: Observer,
    pub missed: u64,
    pub is_partial: bool,
    pub close_deferred: bool,
    pub deferred_gen: bool,
    pub is_active: bool,
    pub timers_cancelled: bool,
    pub gaps_for_partial: bool,
}

impl TcpConn {
    pub fn new(c: Common, first: &Segment, gaps_for_partial: bool) -> Self {
        let obs = Observer::new(first.flags);
        TcpConn {
            c,
            ep: [ZEndpoint::default(), ZEndpoint::default()],
            obs,
            missed: 0,
            is_partial: false,
            close_deferred: false,
            deferred_gen: false,
            is_active: true,
            timers_cancelled: false,
            gaps_for_partial,
        }
    }

    /// The timers of a new connection, once the table has numbered it. Zeek gives a new TCP
    /// connection the UDP inactivity timeout until its handshake is over
    /// (TCPAnalyzer::MakeSessionAdapter, then TCP_Endpoint::SetState), and checks it first
    /// tcp_SYN_timeout after its creation.
    pub fn arm(&mut self, t: &mut TimerCtx) {
        self.set_inactivity(t.timeouts.udp_inactivity, t);
        let start = self.c.start_zts();
        t.add(
            &self.c,
            start.saturating_add(t.timeouts.tcp_syn_timeout),
            TimerKind::Expire,
        );
    }

    fn is_orig(&self, h: usize) -> bool {
        h == usize::from(self.c.orig)
    }

    // --- timers and owner callbacks ---------------------------------------------------------

    fn set_inactivity(&mut self, timeout: i64, t: &mut TimerCtx) {
        if timeout == self.c.inactivity {
            return;
        }
        self.c.inactivity = timeout;
        if timeout != 0 {
            t.add(
                &self.c,
                self.c.last_zts.saturating_add(timeout),
                TimerKind::Inactivity,
            );
        }
    }

    fn set_state(&mut self, h: usize, state: ZState, t: &mut TimerCtx) {
        let cur = self.ep[h].state;
        if state != cur {
            if !state.in_handshake() && cur.in_handshake() && self.ep[1 - h].state.in_handshake() {
                self.set_inactivity(t.timeouts.tcp_inactivity, t);
            }
            self.ep[h].prev_state = cur;
            self.ep[h].state = state;
        }
    }

    fn content_gap(&mut self, h: usize, n: i64) {
        let clean = self.ep[h].clean() && self.ep[1 - h].clean();
        if clean && self.ep[h].gaps.hit() {
            self.add_letter(b'G', self.is_orig(h));
        }
        if clean || self.gaps_for_partial {
            self.missed = self.missed.wrapping_add(n as u64);
        }
    }

    fn cancel_timers(&mut self) {
        self.c.timer_gen = self.c.timer_gen.wrapping_add(1);
        self.timers_cancelled = true;
    }

    fn timer_guarded(&self, deadline: i64, kind: TimerKind, t: &mut TimerCtx) {
        if !self.timers_cancelled {
            t.add(&self.c, deadline, kind);
        }
    }

    /// What its Expire timers read of it (`ExpireView`).
    pub fn expire_view(&self) -> ExpireView {
        use ZState::{Inactive, Reset};
        let o = usize::from(self.c.orig);
        let (os, rs) = (self.ep[o].state, self.ep[1 - o].state);
        let (od, rd) = (self.ep[o].did_close, self.ep[1 - o].did_close);
        let idle_end = if (od || rd)
            && ((od && rd) || os == Reset || rs == Reset || os == Inactive || rs == Inactive)
        {
            Some(Cause::Closed)
        } else if rs == Inactive && os == Inactive {
            Some(Cause::Idle)
        } else {
            None
        };
        ExpireView {
            timer_gen: self.c.timer_gen,
            is_active: self.is_active,
            cancelled: self.timers_cancelled,
            last_zts: self.c.last_zts,
            idle_end,
        }
    }

    /// A timer fired at capture time `now`: the removal cause, or None to keep going.
    pub fn timer(&mut self, now: i64, kind: TimerKind, t: &mut TimerCtx) -> Option<Cause> {
        let o = usize::from(self.c.orig);
        let (os, rs) = (self.ep[o].state, self.ep[1 - o].state);
        let to = t.timeouts;
        match kind {
            TimerKind::Inactivity => {
                if self.c.inactivity == 0 {
                    return None;
                }
                let deadline = self.c.last_zts.saturating_add(self.c.inactivity);
                if deadline <= now {
                    return Some(Cause::Idle);
                }
                t.add(&self.c, deadline, TimerKind::Inactivity);
            }
            TimerKind::Attempt => {
                if self.is_active
                    && matches!(os, ZState::SynSent | ZState::SynAckSent)
                    && rs == ZState::Inactive
                {
                    self.is_active = false;
                    return Some(Cause::Idle);
                }
            }
            TimerKind::Expire => match self.expire_view().step(now, to) {
                ExpireStep::Nothing => {}
                ExpireStep::End(cause) => {
                    if cause == Cause::Closed {
                        self.is_active = false;
                    }
                    return Some(cause);
                }
                ExpireStep::Rearm(deadline) => t.add(&self.c, deadline, TimerKind::Expire),
            },
            TimerKind::Close | TimerKind::Reset => return Some(Cause::Closed),
            TimerKind::PartialClose => {
                // Zeek's PartialCloseTimer: both heard from, not both closed, no RST.
                let (od, rd) = (self.ep[o].did_close, self.ep[1 - o].did_close);
                if self.is_active
                    && os != ZState::Inactive
                    && rs != ZState::Inactive
                    && !(od && rd)
                    && os != ZState::Reset
                    && rs != ZState::Reset
                {
                    return Some(Cause::Idle);
                }
            }
            TimerKind::Dns => {}
        }
        None
    }

    // --- history ------------------------------------------------------------------------------

    fn add_letter(&mut self, code: u8, is_orig: bool) {
        self.c.history.push(if is_orig {
            code
        } else {
            code.to_ascii_lowercase()
        });
    }

    /// Adds a one-time letter; true if it had been added before (Zeek's CheckHistory).
    fn check_history(&mut self, h: usize, mask: u32, code: u8) -> bool {
        let is_orig = self.is_orig(h);
        let mask = if is_orig { mask } else { mask << 16 };
        if self.c.hist_seen & mask != 0 {
            return true;
        }
        self.c.hist_seen |= mask;
        self.add_letter(code, is_orig);
        false
    }

    /// Swaps the roles (§3.5); history gets '^', older letters stay.
    pub fn flip(&mut self) {
        self.c.orig ^= 1;
        self.is_partial = false;
        self.c.history.push(b'^');
        self.c.flips = self.c.flips.saturating_add(1);
    }

    /// Would this packet start a new connection on the same tuple (§2.2)?
    pub fn is_reuse(&self, flags: u16, seq: u32) -> bool {
        if flags & SYN == 0 {
            return false;
        }
        let o = usize::from(self.c.orig);
        let (oe, re) = (&self.ep[o], &self.ep[1 - o]);
        let mut reference = oe;
        if flags & ACK != 0 {
            if oe.state != ZState::Inactive {
                return false;
            }
            reference = re;
        }
        if !(oe.did_close || re.did_close) {
            if seq == reference.start_seq {
                return false;
            }
            return !(flags & ACK == 0
                && reference.state == ZState::SynAckSent
                && re.state == ZState::Inactive
                && seq == re.start_seq);
        }
        true
    }

    // --- the packet ---------------------------------------------------------------------------

    /// One segment from host `h` (the sender).
    pub fn packet(
        &mut self,
        s: &Segment,
        h: usize,
        check_csum: bool,
        opts: &super::SynOptions,
        t: &mut TimerCtx,
    ) {
        if check_csum && s.csum_bad {
            if self.ep[h].corrupt.hit() {
                self.add_letter(b'C', self.is_orig(h));
            }
            return;
        }
        // The second-packet flip (§3.2): a connection that began with a SYN-ACK.
        if self.c.history.as_bytes() == b"H"
            && s.flags & (SYN | RST) == 0
            && (s.flags & ACK != 0 || s.payload != 0)
        {
            self.flip(); // the sending host keeps its index; its role changed
            self.c.history.set(b"^h");
        }
        self.c.last_ts = s.ts;
        self.c.last_frame = s.frame;
        let at = super::columns::Sockets {
            addr: &self.c.id.addr,
            port: &self.c.id.port,
            orig: self.c.orig,
        };
        self.obs.observe(s, h, at, opts, t);
        self.zeek(s, h, t);
        self.c.pkts[h] += 1;
        self.c.ip_bytes[h] += u64::from(s.ip_len);
    }

    fn zeek(&mut self, s: &Segment, h: usize, t: &mut TimerCtx) {
        let p = 1 - h;
        let flags = s.flags;
        let (is_syn, is_fin, is_rst, is_ack) = (
            flags & SYN != 0,
            flags & FIN != 0,
            flags & RST != 0,
            flags & ACK != 0,
        );
        let length = s.payload;
        self.set_partial(flags, h);
        let mut seg_len = length + i64::from(is_syn) + i64::from(is_fin);
        if is_rst {
            seg_len -= length;
        }
        let base = s.seq;
        let end_seq = base.wrapping_add(seg_len as u32);
        init_endpoint(&mut self.ep[h], is_syn, base, end_seq);
        let (rel_seq, underflow) = relative(&self.ep[h], base);
        self.history(h, flags, rel_seq, length);
        if s.win == 0
            && !is_rst
            && self.ep[p].state != ZState::Closed
            && self.ep[h].state != ZState::Reset
        {
            let hit = self.ep[h].zero_window.hit();
            if hit {
                self.add_letter(b'W', self.is_orig(h));
            }
        }
        if !(self.ep[0].did_close && self.ep[1].did_close) {
            self.c.last_zts = s.zts;
        }
        if is_fin {
            self.ep[h].fin_cnt = self.ep[h].fin_cnt.saturating_add(1);
            self.ep[h].fin_seq = rel_seq + seg_len;
        }
        if is_rst {
            self.ep[h].rst_cnt = self.ep[h].rst_cnt.saturating_add(1);
        }
        let rel_ack = if is_ack {
            ack_bookkeeping(&mut self.ep[p], s.ack, is_rst)
        } else {
            0
        };
        self.update_last_seq(h, end_seq, is_syn, is_fin, is_rst, length);
        let (do_close, gen) = self.state_machine(s, h, is_syn, is_fin, is_rst, is_ack, base, t);
        if is_ack {
            self.ack_received(p, rel_ack, t);
        }
        self.ep[h].first_seen = true;
        if length > 0 && s.captured && !is_rst && !underflow {
            self.data_sent(h, if is_syn { rel_seq + 1 } else { rel_seq }, length, t);
        }
        self.check_eof(h, t);
        if do_close {
            self.connection_closed(h, gen, t);
        }
    }

    fn set_partial(&mut self, flags: u16, h: usize) {
        let (syn, ack) = (flags & SYN != 0, flags & ACK != 0);
        if self.is_orig(h) {
            if !self.ep[h].first_seen {
                self.is_partial = !syn || ack;
            }
        } else if !self.ep[h].first_seen && !self.is_partial {
            self.is_partial = !syn;
        }
    }

    fn history(&mut self, h: usize, flags: u16, rel_seq: i64, length: i64) {
        let (is_syn, is_fin, is_rst) = (flags & SYN != 0, flags & FIN != 0, flags & RST != 0);
        let bits = u8::from(is_syn) + u8::from(is_fin) + u8::from(is_rst);
        if bits > 1 {
            if is_fin && is_rst {
                self.check_history(h, HIST_FIN_RST, b'I');
            } else {
                self.check_history(h, HIST_MULTI_FLAG, b'Q');
            }
        } else if bits == 1 {
            if is_syn {
                let code = if flags & ACK != 0 { b'H' } else { b'S' };
                if self.check_history(h, HIST_SYN, code) && rel_seq != self.ep[h].hist_syn {
                    self.add_letter(code, self.is_orig(h));
                }
                self.ep[h].hist_syn = rel_seq;
            }
            if is_fin {
                if self.check_history(h, HIST_FIN, b'F') && rel_seq + length != self.ep[h].hist_fin
                {
                    self.add_letter(b'F', self.is_orig(h));
                }
                self.ep[h].hist_fin = rel_seq + length;
            }
            if is_rst {
                if self.check_history(h, HIST_RST, b'R') && rel_seq != self.ep[h].hist_rst {
                    self.add_letter(b'R', self.is_orig(h));
                }
                self.ep[h].hist_rst = rel_seq;
            }
        } else if length != 0 {
            self.check_history(h, HIST_DATA, b'D');
        } else if flags & ACK != 0 {
            self.check_history(h, HIST_ACK, b'A');
        }
    }

    fn update_last_seq(
        &mut self,
        h: usize,
        end_seq: u32,
        is_syn: bool,
        is_fin: bool,
        is_rst: bool,
        length: i64,
    ) {
        let ep = &mut self.ep[h];
        let d = seq_delta(end_seq, ep.last_seq);
        if (is_syn || is_rst) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&d) {
            return;
        }
        if is_fin && ep.last_seq == ep.start_seq.wrapping_add(1) {
            ep.update_last(end_seq);
        } else if ep.state == ZState::Reset {
        } else if d > 0 {
            ep.update_last(end_seq);
        } else if length > 0 && ep.rxmit.hit() {
            self.add_letter(b'T', self.is_orig(h));
        }
    }

    /// Zeek's endpoint transitions (§6); returns (close requested, generate event).
    #[allow(clippy::too_many_arguments)]
    fn state_machine(
        &mut self,
        s: &Segment,
        h: usize,
        is_syn: bool,
        is_fin: bool,
        is_rst: bool,
        is_ack: bool,
        base: u32,
        t: &mut TimerCtx,
    ) -> (bool, bool) {
        use ZState::*;
        let p = 1 - h;
        let (mut do_close, mut gen) = (false, false);
        let st = self.ep[h].state;
        match st {
            Inactive => {
                if is_syn {
                    if self.is_orig(h) {
                        self.set_state(h, if is_ack { SynAckSent } else { SynSent }, t);
                        if t.timeouts.tcp_attempt != 0 {
                            self.timer_guarded(
                                s.zts.saturating_add(t.timeouts.tcp_attempt),
                                TimerKind::Attempt,
                                t,
                            );
                        }
                    } else {
                        if !is_ack && self.ep[p].state == SynAckSent && base == self.ep[h].start_seq
                        {
                            self.is_partial = false;
                            self.flip(); // SYN/SYN-ACK reversal (§3.3)
                            self.set_state(p, Established, t);
                            let o = usize::from(self.c.orig);
                            self.ep[o].first_seen = true;
                        }
                        if self.ep[p].state == SynSent {
                            self.set_state(p, Established, t);
                        }
                        self.set_state(h, Established, t);
                    }
                }
                if is_fin {
                    self.set_state(h, Closed, t);
                    do_close = true;
                    gen = true;
                }
                if is_rst {
                    self.set_state(h, Reset, t);
                    let reject = if self.is_orig(h) {
                        self.ep[p].state == Established
                    } else {
                        matches!(self.ep[p].state, SynSent | SynAckSent)
                    };
                    do_close = true;
                    gen = !reject;
                }
                if self.ep[h].state == Inactive {
                    let o = usize::from(self.c.orig);
                    if !self.is_orig(h) && s.payload == 0 && self.ep[o].state == SynSent {
                    } else if is_ack && self.ep[p].state == Established {
                        self.set_state(h, Established, t);
                        self.is_partial = false;
                        self.ep[h].first_seen = true;
                    } else {
                        self.set_state(h, Partial, t);
                    }
                }
            }
            SynSent | SynAckSent => {
                if is_fin {
                    self.set_state(h, Closed, t);
                    do_close = true;
                    gen = true;
                }
                if is_rst {
                    self.set_state(h, Reset, t);
                    self.is_active = false;
                    do_close = true;
                }
            }
            Established | Partial => {
                if is_syn && st == Partial && self.ep[p].state == Inactive && !is_ack {
                    self.set_state(h, SynSent, t);
                }
                if is_fin && !is_rst {
                    self.set_state(h, Closed, t);
                    if self.ep[p].state == Reset && self.ep[p].prev_state == Closed {
                        self.set_state(p, Closed, t);
                    }
                    do_close = true;
                    gen = true;
                }
                if is_rst {
                    self.set_state(h, Reset, t);
                    do_close = true;
                    if self.ep[p].state != Reset || self.ep[p].prev_state != Established {
                        self.is_active = false;
                    }
                }
            }
            Closed if is_rst && self.ep[p].state != Closed => {
                self.set_state(h, Reset, t);
                if !self.ep[h].did_close {
                    do_close = true;
                }
                self.timer_guarded(
                    s.zts.saturating_add(t.timeouts.tcp_reset),
                    TimerKind::Reset,
                    t,
                );
            }
            _ => {}
        }
        (do_close, gen)
    }

    /// Zeek's ConnectionClosed (§8.5): did_close, and the timers that remove the conn.
    fn connection_closed(&mut self, h: usize, gen: bool, t: &mut TimerCtx) {
        let p = 1 - h;
        if self.data_pending(h) {
            self.close_deferred = true;
            self.deferred_gen = self.deferred_gen || gen;
            return;
        }
        self.close_deferred = false;
        if self.ep[h].did_close {
            return;
        }
        self.ep[h].did_close = true;
        let (ep, peer) = (&self.ep[h], &self.ep[p]);
        if ep.state == ZState::Reset || peer.did_close || peer.state == ZState::Inactive {
            if (ep.prev_state != ZState::Inactive || peer.state != ZState::Inactive)
                && (gen || self.deferred_gen)
            {
                self.deferred_gen = false;
                self.is_active = false;
            }
            self.cancel_timers();
            t.add(
                &self.c,
                self.c.last_zts.saturating_add(t.timeouts.tcp_close),
                TimerKind::Close,
            );
        } else if ep.prev_state != ZState::Inactive {
            self.timer_guarded(
                self.c.last_zts.saturating_add(t.timeouts.tcp_session_timer),
                TimerKind::Expire,
                t,
            );
        } else if let Some(delay) = t.timeouts.tcp_partial_close {
            // The first packet heard from this side is its FIN.
            self.timer_guarded(
                self.c.last_zts.saturating_add(delay),
                TimerKind::PartialClose,
                t,
            );
        }
    }

    fn endpoint_eof(&mut self, h: usize, t: &mut TimerCtx) {
        if self.close_deferred {
            self.close_deferred = false;
            let gen = self.deferred_gen;
            self.connection_closed(h, gen, t);
        }
    }

    // --- Zeek's reassembler ---------------------------------------------------------------------

    fn deliver(&mut self, h: usize, t: &mut TimerCtx) {
        let r = &mut self.ep[h].reasm;
        // A block starting exactly at the delivered position moves it to the block's end;
        // one starting below it is never delivered (Zeek's reassembler walks its list so).
        while let Some(end) = r.end_of(r.next) {
            r.next = end;
        }
        let next = self.ep[h].reasm.next;
        if self.ep[h].no_data_acked()
            && size(&self.ep[h], &self.ep[1 - h]) as i128 > i128::from(REASSEMBLY_SKIP)
        {
            self.trim_to(h, next, t);
        }
    }

    fn data_sent(&mut self, h: usize, seq: i64, length: i64, t: &mut TimerCtx) {
        if self.ep[h].reasm.skip {
            return;
        }
        let acked = self.ep[h].rel_ack();
        let upper = seq + length;
        let mut seq = seq;
        if seq < acked {
            if upper <= acked {
                return;
            }
            seq = acked;
        }
        if length == 0 || upper <= self.ep[h].reasm.trim {
            return;
        }
        seq = seq.max(self.ep[h].reasm.trim);
        self.ep[h].reasm.insert(seq, upper, t.spare);
        self.deliver(h, t);
        let ep = &mut self.ep[h];
        if ep.no_data_acked() {
            if let Some((_, last)) = ep.reasm.last() {
                if last - ep.reasm.next > REASSEMBLY_SKIP {
                    ep.reasm.clear(t.spare);
                    ep.reasm.skip = true;
                }
            }
        }
    }

    fn trim_to(&mut self, h: usize, seq: i64, t: &mut TimerCtx) {
        if seq > self.ep[h].reasm.next {
            self.undelivered(h, seq, t);
        }
        let r = &mut self.ep[h].reasm;
        r.drop_ending_by(seq, t.spare);
        if r.first().is_some_and(|b| b.0 == r.next) {
            self.deliver(h, t);
        }
        self.ep[h].reasm.trim = seq;
    }

    fn undelivered(&mut self, h: usize, up_to: i64, t: &mut TimerCtx) {
        if up_to <= 2 && self.is_partial {
            return;
        }
        if !self.ep[h].reasm.skip {
            loop {
                let r = &self.ep[h].reasm;
                let Some((b0, _)) = r.first_from(r.next) else {
                    break;
                };
                if b0 >= up_to {
                    break;
                }
                let n = b0 - r.next;
                self.content_gap(h, n);
                self.ep[h].reasm.next = b0;
                self.deliver(h, t);
            }
            let next = self.ep[h].reasm.next;
            if up_to > next {
                self.content_gap(h, up_to - next);
            }
        }
        let r = &mut self.ep[h].reasm;
        r.next = r.next.max(up_to);
    }

    fn ack_received(&mut self, h: usize, seq: i64, t: &mut TimerCtx) {
        let ep = &self.ep[h];
        let mut seq = seq;
        if ep.fin_cnt > 0 && seq >= ep.fin_seq {
            seq = ep.fin_seq - 1; // the FIN's sequence number is not data
        }
        if seq <= ep.reasm.trim {
            return;
        }
        self.trim_to(h, seq, t);
        self.check_eof(h, t);
    }

    fn data_pending(&self, h: usize) -> bool {
        let ep = &self.ep[h];
        if ep.reasm.skip {
            return false;
        }
        let delivered = i64::from(ep.start_seq) + ep.reasm.next;
        let last = ep.abs_last();
        if last < delivered {
            return false;
        }
        if delivered != last - 1 && delivered != last {
            return true;
        }
        ep.state != ZState::Reset && self.ep[1 - h].reasm.has_blocks()
    }

    fn check_eof(&mut self, h: usize, t: &mut TimerCtx) {
        let ep = &self.ep[h];
        if !ep.reasm.did_eof
            && (ep.fin_cnt > 0 || matches!(ep.state, ZState::Closed | ZState::Reset))
            && !self.data_pending(h)
        {
            self.ep[h].reasm.did_eof = true;
            self.endpoint_eof(h, t);
        }
    }
}

fn init_endpoint(ep: &mut ZEndpoint, is_syn: bool, base: u32, end_seq: u32) {
    let st = ep.state;
    if st == ZState::Inactive {
        if is_syn {
            ep.init_seqs(base, end_seq);
        } else {
            ep.init_seqs(base.wrapping_sub(1), base);
        }
    } else if is_syn
        && ((matches!(st, ZState::SynSent | ZState::SynAckSent) && base != ep.start_seq)
            || matches!(st, ZState::Established | ZState::Partial)
            || (st == ZState::Reset && ep.prev_state == ZState::Inactive))
    {
        ep.init_seqs(base, end_seq);
    }
}

fn relative(ep: &ZEndpoint, base: u32) -> (i64, bool) {
    let (_, wraps) = wraps_near(base, ep.last_seq, ep.seq_wraps);
    if wraps == 0 {
        let rel = seq_delta(base, ep.start_seq);
        return (rel, rel < 0);
    }
    (
        (i64::from(wraps) << 32) + i64::from(base) - i64::from(ep.start_seq),
        false,
    )
}

/// The ACK field moves the peer's acknowledged sequence (§8.1); returns it relative.
fn ack_bookkeeping(peer: &mut ZEndpoint, ack: u32, is_rst: bool) -> i64 {
    if peer.state == ZState::Inactive {
        let v = ack.wrapping_sub(1);
        peer.start_seq = v;
        peer.ack_seq = v;
        peer.last_seq = v;
        return 1;
    }
    let (d, wraps) = wraps_near(ack, peer.ack_seq, peer.ack_wraps);
    let rel = if wraps == 0 {
        let rel = seq_delta(ack, peer.start_seq);
        if rel < 0 {
            return 0;
        }
        rel
    } else {
        (i64::from(wraps) << 32) + i64::from(ack) - i64::from(peer.start_seq)
    };
    if !(is_rst || ack == 0 && d > TOO_LARGE_SEQ_DELTA) && d > 0 {
        peer.update_ack(ack);
    }
    rel
}

/// What an Expire timer reads of its connection (Zeek's TCP_Analyzer::ExpireTimer). The
/// tracker keeps a copy beside its table, brought up to date after every packet and timer
/// of the connection, so that the timer, which mostly only re-arms itself, need not read
/// the connection: reading it cost a cache miss or two a timer (`Tracker::run_timers`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpireView {
    /// The connection's timer generation: an Expire timer armed with another is stale.
    pub timer_gen: u32,
    pub is_active: bool,
    /// Its timers were cancelled (a close): an Expire timer re-arms no more.
    pub cancelled: bool,
    pub last_zts: i64,
    /// How the connection ends when an Expire timer finds it idle past the linger time.
    pub idle_end: Option<Cause>,
}

/// What an Expire timer that fires does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpireStep {
    Nothing,
    End(Cause),
    /// Re-armed for this time.
    Rearm(i64),
}

impl ExpireView {
    /// The step of an Expire timer of this connection that fires at capture time `now`.
    pub fn step(&self, now: i64, to: &Timeouts) -> ExpireStep {
        if !self.is_active {
            return ExpireStep::Nothing;
        }
        if self.last_zts.saturating_add(to.tcp_connection_linger) < now {
            if let Some(cause) = self.idle_end {
                return ExpireStep::End(cause);
            }
        }
        if self.cancelled {
            return ExpireStep::Nothing;
        }
        ExpireStep::Rearm(now.saturating_add(to.tcp_session_timer))
    }
}

/// Why a connection left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Idle,
    Closed,
    Evicted,
    End,
    Reuse,
}
