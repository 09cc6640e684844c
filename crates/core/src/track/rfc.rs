//! The RFC 9293 observer (track/states.py and the observer half of track/tcp.py): both
//! endpoints' states as a passive observer infers them, every transition, the handshake
//! record and Wireshark-style sequence analysis, which Zeek does not give.
//!
//! Every segment is an event for both endpoints: "sent" for its source and "received" for
//! its destination. One table (`next_state`, a `match` over (state, event)) gives the next
//! state; pairs not in it leave the state as it is.

use super::columns::Sockets;
use super::ranges::Coverage;
use super::tcp::{Segment, ACK, FIN, RST, SYN};
use super::zeek::seq_delta;
use super::{SynOptions, TimerCtx};

/// RFC 9293 §3.3.2 states, in the order of STATE_NAMES.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpState {
    Closed = 0,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

pub const STATE_NAMES: [&str; 11] = [
    "CLOSED",
    "LISTEN",
    "SYN-SENT",
    "SYN-RECEIVED",
    "ESTABLISHED",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "CLOSE-WAIT",
    "CLOSING",
    "LAST-ACK",
    "TIME-WAIT",
];

/// What an endpoint did or had done to it, as seen in one segment (EVENT_NAMES order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    SndSyn = 0,
    RcvSyn,
    SndSynAck,
    RcvSynAck,
    RcvAckOfSyn,
    SndFin,
    /// A FIN that does not acknowledge the peer's FIN, sent before that FIN arrived.
    SndFinCrossed,
    RcvFin,
    RcvAckOfFin,
    SndRst,
    RcvRst,
}

pub const EVENT_NAMES: [&str; 11] = [
    "send SYN",
    "receive SYN",
    "send SYN-ACK",
    "receive SYN-ACK",
    "receive ACK of its SYN",
    "send FIN",
    "send FIN crossing the peer's",
    "receive FIN",
    "receive ACK of its FIN",
    "send RST",
    "receive RST",
];

/// The transition table: the state after `event`, or None when the pair is not in it.
pub fn next_state(state: TcpState, event: Event) -> Option<TcpState> {
    use Event::*;
    use TcpState::*;
    Some(match (state, event) {
        // Opening (RFC 9293 §3.5). A responder is presumed LISTENing until it shows otherwise.
        (Closed | Listen, SndSyn) => SynSent,
        (Listen | Closed, SndSynAck) => SynReceived,
        (SynSent, RcvSynAck) => Established,
        (SynSent, RcvSyn) => SynReceived, // simultaneous open
        (SynReceived, RcvAckOfSyn) => Established,
        (SynReceived, RcvSynAck) => Established, // simultaneous open, the peer's SYN-ACK
        // Closing (§3.6).
        (SynReceived | Established, SndFin) => FinWait1,
        (Established, RcvFin) => CloseWait,
        (FinWait1, RcvAckOfFin) => FinWait2,
        (FinWait1, RcvFin) => Closing, // simultaneous close
        (FinWait2, RcvFin) => TimeWait,
        (CloseWait, SndFin) => LastAck,
        (CloseWait, SndFinCrossed) => Closing,
        (Established, SndFinCrossed) => FinWait1,
        (Closing, RcvAckOfFin) => TimeWait,
        (LastAck, RcvAckOfFin) => Closed,
        // Reset (§3.10.7): any synchronized or opening state goes to CLOSED.
        (Closed, SndRst | RcvRst) => return None,
        (_, SndRst | RcvRst) => Closed,
        _ => return None,
    })
}

/// How a TCP handshake ended (OUTCOME_NAMES order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Established = 0,
    Refused,
    Unanswered,
    Reset,
    HalfOpen,
    MidStream,
}

pub const OUTCOME_NAMES: [&str; 6] = [
    "established",
    "refused",
    "unanswered",
    "reset",
    "half-open",
    "mid-stream",
];

/// Wireshark/tcptrace sequence analysis, counted over both directions (ANALYSIS_NAMES order).
pub const ANALYSIS_NAMES: [&str; 11] = [
    "retransmissions",
    "fast_retransmissions",
    "spurious_retransmissions",
    "out_of_order",
    "lost_segments",
    "dup_acks",
    "zero_windows",
    "zero_window_probes",
    "keep_alives",
    "window_full",
    "window_updates",
];
/// `retransmissions`, the first of ANALYSIS_NAMES (`ports` reads it).
pub const RETX: usize = 0;
const FAST_RETX: usize = 1;
const SPURIOUS: usize = 2;
const OOO: usize = 3;
const LOST: usize = 4;
const DUP_ACKS: usize = 5;
const ZERO_WIN: usize = 6;
const ZW_PROBES: usize = 7;
const KEEP_ALIVES: usize = 8;
const WIN_FULL: usize = 9;
const WIN_UPDATES: usize = 10;

/// One side as the observer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub rfc: TcpState,
    pub isn: Option<u32>,
    /// Sequence number of this host's FIN.
    pub fin_abs: Option<u32>,
    /// One past the highest sequence number this host sent.
    pub high: Option<u32>,
    /// Sequence ranges sent, relative to isn (merged), for retransmission analysis.
    pub seen: Coverage,
    pub last_ack: Option<u32>,
    pub last_win: Option<u16>,
    pub window_zero: bool,
    pub wscale: Option<i16>,
    pub dup_acks: u32,
}

impl Host {
    fn new(rfc: TcpState) -> Self {
        Host {
            rfc,
            isn: None,
            fin_abs: None,
            high: None,
            seen: Coverage::default(),
            last_ack: None,
            last_win: None,
            window_zero: false,
            wscale: None,
            dup_acks: 0,
        }
    }
}

/// The handshake record. Options are kept as the row-independent values of a SYN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handshake {
    pub syn_ns: Option<i64>,
    pub syn_ack_ns: Option<i64>,
    pub ack_ns: Option<i64>,
    pub syn_retransmits: u32,
    pub syn_ack_retransmits: u32,
    pub client_options: Option<Box<SynOptions>>,
    pub server_options: Option<Box<SynOptions>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observer {
    pub hosts: [Host; 2],
    pub saw_syn: bool,
    pub saw_syn_ack: bool,
    pub saw_rst: bool,
    pub fin_hosts: u8,
    pub completeness: u8,
    /// The host that sent the first SYN (the handshake's client).
    pub client: Option<u8>,
    pub last_syn_ts: Option<i64>,
    pub hs: Handshake,
    pub analysis: [u32; 11],
}

impl Observer {
    /// The observer's starting states (docs/tracking.md): a SYN opens from CLOSED towards a
    /// LISTENing peer; a first SYN-ACK implies a SYN we missed; anything else is a connection
    /// picked up mid-stream, both sides ESTABLISHED. Host 0 sent the first packet.
    pub fn new(first_flags: u16) -> Self {
        let (a, b) = match first_flags & (SYN | ACK) {
            SYN => (TcpState::Closed, TcpState::Listen),
            x if x == SYN | ACK => (TcpState::Listen, TcpState::SynSent),
            _ => (TcpState::Established, TcpState::Established),
        };
        Observer {
            hosts: [Host::new(a), Host::new(b)],
            saw_syn: false,
            saw_syn_ack: false,
            saw_rst: false,
            fin_hosts: 0,
            completeness: 0,
            client: None,
            last_syn_ts: None,
            hs: Handshake::default(),
            analysis: [0; 11],
        }
    }

    fn transition(
        &mut self,
        s: &Segment,
        h: usize,
        at: Sockets<'_>,
        event: Event,
        t: &mut TimerCtx,
    ) {
        let old = self.hosts[h].rfc;
        let Some(new) = next_state(old, event) else {
            return;
        };
        if new == old {
            return;
        }
        t.transition(s, h as u8, event, old, new, at);
        self.hosts[h].rfc = new;
    }

    pub fn observe(
        &mut self,
        s: &Segment,
        h: usize,
        at: Sockets<'_>,
        opts: &SynOptions,
        t: &mut TimerCtx,
    ) {
        let p = 1 - h;
        let flags = s.flags;
        if flags & SYN != 0 {
            if flags & ACK != 0 {
                self.completeness |= 2;
                if !self.saw_syn_ack {
                    self.saw_syn_ack = true;
                    self.hs.syn_ack_ns = Some(s.ts);
                    self.hs.server_options = Some(Box::new(opts.clone()));
                    if let Some(ts) = self.last_syn_ts {
                        self.hs.syn_ns = Some(ts);
                    }
                } else if self.hosts[h].isn == Some(s.seq) {
                    self.hs.syn_ack_retransmits += 1;
                }
                self.hosts[h].isn = Some(s.seq);
                self.hosts[h].wscale = opts.wscale();
                self.transition(s, h, at, Event::SndSynAck, t);
                self.transition(s, p, at, Event::RcvSynAck, t);
            } else {
                self.completeness |= 1;
                if !self.saw_syn {
                    self.saw_syn = true;
                    self.client = Some(h as u8);
                    self.hs.client_options = Some(Box::new(opts.clone()));
                    self.hs.syn_ns = Some(s.ts);
                } else if self.hosts[h].isn == Some(s.seq) {
                    self.hs.syn_retransmits += 1;
                }
                if !self.saw_syn_ack {
                    self.last_syn_ts = Some(s.ts);
                }
                self.hosts[h].isn = Some(s.seq);
                self.hosts[h].wscale = opts.wscale();
                self.transition(s, h, at, Event::SndSyn, t);
                self.transition(s, p, at, Event::RcvSyn, t);
            }
        }
        if flags & ACK != 0 {
            let peer = &self.hosts[p];
            let acks_syn = peer.rfc == TcpState::SynReceived
                && flags & SYN == 0
                && peer.isn.is_some_and(|isn| seq_delta(s.ack, isn) >= 1)
                && peer.high.is_none_or(|high| seq_delta(s.ack, high) <= 0);
            if acks_syn {
                if self.hs.ack_ns.is_none() && self.client == Some(h as u8) {
                    self.hs.ack_ns = Some(s.ts);
                }
                self.completeness |= 4;
                self.transition(s, p, at, Event::RcvAckOfSyn, t);
            } else if self.saw_syn_ack && flags & SYN == 0 {
                self.completeness |= 4;
            }
            if self.hosts[p]
                .fin_abs
                .is_some_and(|fin| seq_delta(s.ack, fin) >= 1)
            {
                self.transition(s, p, at, Event::RcvAckOfFin, t);
            }
        }
        if s.payload > 0 && flags & RST == 0 {
            self.completeness |= 8;
        }
        self.analyse(s, h);
        if flags & FIN != 0 {
            self.completeness |= 16;
            if self.hosts[h].fin_abs.is_none() {
                self.fin_hosts += 1;
            }
            self.hosts[h].fin_abs = Some(
                s.seq
                    .wrapping_add(s.payload as u32)
                    .wrapping_add(u32::from(flags & SYN != 0)),
            );
            let crossed = self.hosts[p]
                .fin_abs
                .is_some_and(|fin| !(flags & ACK != 0 && seq_delta(s.ack, fin) >= 1));
            let ev = if crossed {
                Event::SndFinCrossed
            } else {
                Event::SndFin
            };
            self.transition(s, h, at, ev, t);
            self.transition(s, p, at, Event::RcvFin, t);
        }
        if flags & RST != 0 {
            self.completeness |= 32;
            self.saw_rst = true;
            self.transition(s, h, at, Event::SndRst, t);
            self.transition(s, p, at, Event::RcvRst, t);
        }
    }

    /// Wireshark's tcp.analysis flags, counted (per segment, as Wireshark marks them).
    fn analyse(&mut self, s: &Segment, h: usize) {
        let p = 1 - h;
        let flags = s.flags;
        let control = flags & (SYN | FIN | RST);
        let mut seg: i64 = s.payload + i64::from(flags & (SYN | FIN) != 0);
        let a = &mut self.analysis;
        if s.win == 0 && control == 0 {
            a[ZERO_WIN] += 1;
        }
        let [h0, h1] = &mut self.hosts;
        let (host, peer) = if h == 0 { (h0, &*h1) } else { (h1, &*h0) };
        let _ = p;
        let isn = *host.isn.get_or_insert(s.seq.wrapping_sub(1)); // mid-stream: a SYN before
        let rel = i64::from(s.seq.wrapping_sub(isn));
        if let Some(high) = host.high {
            let nxt = i64::from(high.wrapping_sub(isn));
            if seg <= 1 && control == 0 && rel == (nxt - 1) & 0xFFFF_FFFF {
                a[KEEP_ALIVES] += 1;
                seg = 0;
            } else if seg != 0
                && flags & SYN == 0
                && peer.window_zero
                && rel == nxt
                && s.payload <= 1
            {
                a[ZW_PROBES] += 1;
            } else if seg != 0 {
                let end = rel + seg;
                if end <= nxt {
                    if host.seen.covers(rel, end) {
                        a[RETX] += 1;
                        if peer.dup_acks >= 2 && peer.last_ack == Some(s.seq) {
                            a[FAST_RETX] += 1;
                        } else if let Some(pla) = peer.last_ack {
                            if seq_delta(pla, s.seq.wrapping_add(seg as u32)) >= 0 {
                                a[SPURIOUS] += 1;
                            }
                        }
                    } else {
                        a[OOO] += 1;
                    }
                } else if rel > nxt {
                    a[LOST] += 1;
                }
            }
        }
        if seg != 0 {
            host.seen.add(rel, rel + seg);
            let end_abs = s.seq.wrapping_add(seg as u32);
            if host.high.is_none_or(|high| seq_delta(end_abs, high) > 0) {
                host.high = Some(end_abs);
            }
        } else if host.high.is_none() {
            host.high = Some(s.seq);
        }
        if flags & ACK != 0 {
            let pure = s.payload == 0 && control == 0;
            // Wireshark: a duplicate ACK has no data, the same ACK and the same non-zero window.
            if pure
                && s.win != 0
                && host.last_ack == Some(s.ack)
                && host.last_win == Some(s.win)
                && peer.high.is_some_and(|high| seq_delta(high, s.ack) > 0)
            {
                a[DUP_ACKS] += 1;
                host.dup_acks += 1;
            } else if pure
                && host.last_ack == Some(s.ack)
                && host.last_win.is_some_and(|w| w != s.win)
            {
                a[WIN_UPDATES] += 1;
            }
            if host.last_ack != Some(s.ack) {
                host.dup_acks = 0;
            }
            host.last_ack = Some(s.ack);
        }
        if s.payload != 0 && control == 0 {
            if let (Some(pla), Some(plw)) = (peer.last_ack, peer.last_win) {
                let scale = match (peer.wscale, host.wscale) {
                    (Some(ws), Some(_)) => ws,
                    _ => 0,
                };
                let window_end = window_end(pla, plw, scale);
                if s.seq.wrapping_add(s.payload as u32) == window_end && plw != 0 {
                    a[WIN_FULL] += 1;
                }
            }
        }
        host.last_win = Some(s.win);
        host.window_zero = s.win == 0 && flags & RST == 0;
    }

    pub fn outcome(&self, server_reset: bool, server_rst_cnt: u32) -> Outcome {
        if !self.saw_syn && !self.saw_syn_ack {
            return Outcome::MidStream;
        }
        if self.completeness & 4 != 0 || self.hs.ack_ns.is_some() {
            return Outcome::Established;
        }
        if self.saw_syn_ack {
            return if self.saw_rst {
                Outcome::Reset
            } else {
                Outcome::HalfOpen
            };
        }
        if server_reset || (self.saw_rst && server_rst_cnt > 0) {
            return Outcome::Refused;
        }
        Outcome::Unanswered
    }
}

/// (peer.last_ack + (last_win << scale)) mod 2^32, as Python computes it with big integers.
fn window_end(last_ack: u32, win: u16, scale: i16) -> u32 {
    let shifted: u64 = if (0..=47).contains(&scale) {
        u64::from(win) << scale
    } else if scale < 0 {
        // Python raises on a negative shift; the decoder gives -1 only for "absent", which
        // never reaches here (absent is None).
        u64::from(win)
    } else {
        0 // shifts of 48 and more: the low 32 bits are zero
    };
    last_ack.wrapping_add(shifted as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_leaves_closed_alone_and_closes_the_rest() {
        assert_eq!(next_state(TcpState::Closed, Event::RcvRst), None);
        assert_eq!(
            next_state(TcpState::TimeWait, Event::SndRst),
            Some(TcpState::Closed)
        );
        assert_eq!(next_state(TcpState::Established, Event::RcvSyn), None);
    }
}
