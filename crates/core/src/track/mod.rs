//! Packets -> connections: the flow table, its timers, and the rules that open and close
//! connections (the Rust port of track/tracker.py; docs/zeek-rules.md §1-§3, §12).
//!
//! Packets are processed in capture order. Timers (inactivity, attempt, close delays) run on
//! the capture's clock: before each packet, every timer whose deadline has passed fires, so
//! the same file always gives the same connections. Memory stays bounded: connections leave
//! the table when they end, and a cap on open flows evicts the least recently active.
//!
//! The table is keyed by the canonical 5-tuple (and the VLAN id when configured) through a
//! hash seeded from the operating system's random source (`FlowHasher`), so crafted traffic
//! cannot flood one bucket.

mod carriers;
pub mod columns;
pub mod flow;
pub mod history;
pub mod ids;
pub mod kept;
mod open;
pub mod ranges;
pub mod rfc;
pub mod shards;
pub mod tcp;
pub mod zeek;

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use hashbrown::HashTable;

use carriers::{Crossing, Foreign, Made};
pub use columns::{ConnBatch, EndAt, Packets, TransitionBatch};
use columns::{END_CAPTURE, END_CLOCK, END_PACKET, END_TIMERS};
use flow::{Flow, Hints};
use history::History;
use ids::Uid;
use ranges::SpareBlocks;
use rfc::{Event, TcpState};
use tcp::{Cause, ExpireStep, ExpireView, Segment, TcpConn, ACK, SYN};

const NANOS: i64 = 1_000_000_000;
const FRAG_PART: u8 = 1;
const CSUM_BAD: u8 = 2;
// Which of its frame's rows (column sub, decode/columns.rs).
const SUB_FRAME: u8 = 0;
const SUB_CARRIER: u8 = 1;
const SUB_MSDU: u8 = 2;
/// `Tracker::level` of what a row's tunnels carry.
const INNER: u8 = u8::MAX;
const V4_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
const BROADCAST4: [u8; 16] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];
const DNS_PORTS: [u16; 4] = [53, 137, 5353, 5355];
/// Zeek's NTP analyzer's port (base/protocols/ntp).
const NTP_PORT: u16 = 123;
const NIL: u32 = u32::MAX;
/// Open flows kept by default: a SYN flood of a million sources within a second then stays
/// within 300 MB for the whole run (docs/benchmarks.md), evictions counted.
pub const DEFAULT_MAX_FLOWS: usize = 200_000;

/// Named timeouts in nanoseconds of capture time, as the caller's configuration gives them
/// (Zeek's names; track/timeouts.py and docs/zeek-rules.md list their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A TCP connection past its handshake and idle this long ends; 0: never.
    pub tcp_inactivity: i64,
    /// A UDP flow idle this long ends; 0: never. Also a TCP connection's until its
    /// handshake is over (Zeek's TCPAnalyzer::MakeSessionAdapter).
    pub udp_inactivity: i64,
    pub icmp_inactivity: i64,
    /// A flow of an IP protocol without a transport analyzer (Zeek's unknown_transport)
    /// ends when idle this long (unknown_ip_inactivity_timeout); 0: never.
    pub unknown_ip_inactivity: i64,
    /// A SYN with no answer within this time is logged as an attempt (tcp_attempt_delay);
    /// 0: never.
    pub tcp_attempt: i64,
    /// Once the close is complete, the connection ends this long after its last packet
    /// (tcp_close_delay).
    pub tcp_close: i64,
    /// After a RST that follows a FIN, the connection lingers this long (tcp_reset_delay).
    pub tcp_reset: i64,
    /// An endpoint whose first packet is a FIN ends the connection this long after its last
    /// packet (tcp_partial_close_delay); None: off, as in Zeek without a script for
    /// connection_partial_close.
    pub tcp_partial_close: Option<i64>,
    /// The first expire check after a connection is created (tcp_SYN_timeout).
    pub tcp_syn_timeout: i64,
    /// A half-closed connection idle this long ends when its expire timer fires.
    pub tcp_connection_linger: i64,
    /// The period of the expire timer (tcp_session_timer).
    pub tcp_session_timer: i64,
    /// DNS flows end when idle for this less one second, checked at this period.
    pub dns_session_timeout: i64,
}

impl Default for Timeouts {
    /// Zeek's defaults (scripts/base/init-bare.zeek), as track/timeouts.py has them.
    fn default() -> Self {
        Timeouts {
            tcp_inactivity: 300 * NANOS,
            udp_inactivity: 60 * NANOS,
            icmp_inactivity: 60 * NANOS,
            unknown_ip_inactivity: 60 * NANOS,
            tcp_attempt: 5 * NANOS,
            tcp_close: 5 * NANOS,
            tcp_reset: 5 * NANOS,
            tcp_partial_close: None,
            tcp_syn_timeout: 5 * NANOS,
            tcp_connection_linger: 5 * NANOS,
            tcp_session_timer: 6 * NANOS,
            dns_session_timeout: 10 * NANOS,
        }
    }
}

/// A network whose packets are never checksum-checked (Zeek's ignore_checksums_nets), in the
/// 16-byte column form: IPv4 networks as IPv4-mapped with the prefix length + 96.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: [u8; 16],
    pub prefix: u8,
    pub v4: bool,
}

impl Net {
    fn contains(&self, a: &[u8; 16]) -> bool {
        if (a[..12] == V4_PREFIX) != self.v4 {
            return false;
        }
        let bits = usize::from(self.prefix.min(128));
        let (full, rest) = (bits / 8, bits % 8);
        if a[..full] != self.addr[..full] {
            return false;
        }
        if rest == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == self.addr[full] & mask
    }
}

/// What TrackerConfig says (track/tracker.py).
#[derive(Debug, Clone)]
pub struct Config {
    pub timeouts: Timeouts,
    /// Zeek without -C: packets with bad checksums are not counted (history c/C).
    pub drop_bad_checksums: bool,
    /// (IP protocol, port) pairs Zeek takes for servers when it must guess roles (§3.1).
    pub likely_server_ports: Vec<(u8, u16)>,
    pub report_gaps_for_partial: bool,
    /// Zeek's DNS analyzer is attached to UDP flows whose responder port is a DNS port: it
    /// ends idle ones sooner (dns_session_timeout) and flips one whose first message is a
    /// response from the originator (docs/zeek-rules.md §3.4).
    pub dns_timeout: bool,
    /// Zeek's NTP analyzer is attached to UDP flows whose responder port is 123: it flips one
    /// on a server message from the originator or a client message from the responder.
    pub ntp_analyzer: bool,
    /// Open flows kept at most; beyond it the least recently active is evicted.
    pub max_flows: usize,
    pub vlan_in_key: bool,
    /// Emit RFC 9293 transitions (TransitionBatch); off, none are kept or built.
    pub keep_transitions: bool,
    pub ignore_checksum_nets: Vec<Net>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeouts: Timeouts::default(),
            drop_bad_checksums: false,
            likely_server_ports: Vec::new(),
            report_gaps_for_partial: false,
            dns_timeout: true,
            ntp_analyzer: true,
            max_flows: DEFAULT_MAX_FLOWS,
            vlan_in_key: false,
            keep_transitions: true,
            ignore_checksum_nets: Vec::new(),
        }
    }
}

/// The options a SYN or SYN-ACK offered (mss -1 and wscale -1 when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynOptions {
    pub mss: i32,
    pub wscale: i16,
    pub sack_perm: bool,
    pub timestamps: bool,
    pub kinds_len: u8,
    pub kinds: [u8; 40],
}

impl Default for SynOptions {
    fn default() -> Self {
        SynOptions::none()
    }
}

/// The options of a segment without SYN (none).
static NO_OPTIONS: SynOptions = SynOptions::none();

impl SynOptions {
    const fn none() -> Self {
        SynOptions {
            mss: -1,
            wscale: -1,
            sack_perm: false,
            timestamps: false,
            kinds_len: 0,
            kinds: [0; 40],
        }
    }

    pub fn wscale(&self) -> Option<i16> {
        (self.wscale >= 0).then_some(self.wscale)
    }

    pub fn kinds(&self) -> &[u8] {
        &self.kinds[..usize::from(self.kinds_len.min(40))]
    }
}

/// Who a table entry is: what every entry keeps for the table itself (serial, timer
/// generation, uid) and its sockets. A connection that has sent only its first SYN keeps
/// little more than this (`SynOnly`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub addr: [[u8; 16]; 2],
    pub port: [u16; 2],
    pub proto: u8,
    pub ip_version: u8,
    pub encap_seen: bool,
    /// The VLAN id when it is part of the key, else i32::MIN.
    pub vlan: i32,
    pub timer_gen: u32,
    /// The timer generation it started with: timers of earlier entries of its slot are older.
    pub first_gen: u32,
    pub first_ts: i64,
    pub first_frame: i64,
    pub serial: u64,
    pub uid: Uid,
    pub extra: Option<Box<Extra>>,
}

impl Ident {
    /// Does a timer still apply? Cancelling (a TCP close) stops the analyzer's timers, not
    /// the session's inactivity timer (Zeek: Analyzer::CancelTimers vs
    /// Session::InactivityTimer), which checks the idle time itself when it fires.
    fn armed(&self, t: &Timer) -> bool {
        if t.kind() == TimerKind::Inactivity {
            t.gen >= self.first_gen && t.gen <= self.timer_gen
        } else {
            t.gen == self.timer_gen
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Zeek's time of the first packet (§1.1: microseconds).
    pub fn start_zts(&self) -> i64 {
        zeek_time(self.first_ts)
    }
}

impl Ident {
    /// `key_of(self) == *key`, without building the key.
    fn has_key(&self, key: &Key) -> bool {
        if self.proto != key.proto || self.vlan != key.vlan {
            return false;
        }
        let one_way = matches!(self.proto, 1 | 58)
            && icmp_ports(self.port[0], self.port[1], self.proto == 58).2;
        key.has_sockets(&self.addr, &self.port, !one_way)
    }
}

/// Zeek reads microseconds (§1.1): a capture time in ns, floored to the microsecond.
pub fn zeek_time(ts: i64) -> i64 {
    ts.div_euclid(1000).saturating_mul(1000)
}

/// What the table keeps for every entry, TCP connection or UDP/ICMP flow alike: its `Ident`
/// (reached through Deref) and its activity. Per-host values are indexed by host (0 = the
/// sender of the first packet); `orig` names the originator's index, so a flip of roles
/// moves nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub id: Ident,
    pub orig: u8,
    pub hist_seen: u32,
    pub flips: u32,
    pub last_ts: i64,
    /// Zeek's time (microsecond resolution) of the last packet, for durations and timers.
    pub last_zts: i64,
    pub last_frame: i64,
    pub inactivity: i64,
    pub pkts: [u64; 2],
    pub ip_bytes: [u64; 2],
    pub history: History,
}

impl std::ops::Deref for Common {
    type Target = Ident;

    fn deref(&self) -> &Ident {
        &self.id
    }
}

impl std::ops::DerefMut for Common {
    fn deref_mut(&mut self) -> &mut Ident {
        &mut self.id
    }
}

/// What only some flows need: tunnels and ICMP errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// The encapsulation of the last packet: (kind: 1 UDP carrier, 2 IP tunnel, uid).
    pub encap: Option<(u8, Uid)>,
    pub encap_changes: u8,
    /// uids of the tunnels that carried it (Zeek's tunnel_parents), without duplicates.
    pub parents: Vec<Uid>,
    /// (type, code) of ICMP errors that quoted this flow.
    pub icmp_errors: Vec<(i16, i16)>,
}

impl Common {
    /// Which of the two hosts (0 or 1) sent a packet from `addr`, `port`: the originator if
    /// it is its socket, else the responder.
    fn host_of(&self, addr: &[u8; 16], port: u16) -> usize {
        let o = usize::from(self.orig);
        if self.addr[o] == *addr && self.port[o] == port {
            o
        } else {
            1 - o
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        proto: u8,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
        ts: i64,
        zts: i64,
        frame: i64,
        inactivity: i64,
    ) -> Self {
        Common::from_ident(
            Ident {
                addr: [src, dst],
                port: [sport, dport],
                proto,
                ip_version: 4,
                encap_seen: false,
                vlan: i32::MIN,
                timer_gen: 0,
                first_gen: 0,
                first_ts: ts,
                first_frame: frame,
                serial: 0,
                uid: [0; 17],
                extra: None,
            },
            zts,
            inactivity,
        )
    }

    /// An entry that has seen no packet yet (its first packet is about to be applied).
    fn from_ident(id: Ident, zts: i64, inactivity: i64) -> Self {
        Common {
            orig: 0,
            hist_seen: 0,
            flips: 0,
            last_ts: id.first_ts,
            last_zts: zts,
            last_frame: id.first_frame,
            inactivity,
            pkts: [0; 2],
            ip_bytes: [0; 2],
            history: History::default(),
            id,
        }
    }
}

#[derive(Debug)]
enum Entry {
    Tcp(Box<TcpConn>),
    /// A TCP connection that has sent one plain SYN and nothing else: most of a SYN flood or
    /// a port scan, kept in a tenth of a connection's memory until its next packet.
    Syn(Box<SynOnly>),
    Flow(Box<Flow>),
}

/// A connection ended in the current step, until the step is over (`Tracker::end_step`).
#[derive(Debug)]
enum Ending {
    Tcp(Box<TcpConn>, Cause),
    /// A SYN-only flow and the slot it had.
    Syn(Box<SynOnly>, u32, Cause),
    Flow(Box<Flow>, Cause),
}

impl Entry {
    /// The Ident of a whole connection or flow (a SynOnly keeps its parts compactly).
    fn ident(&self) -> Option<&Ident> {
        match self {
            Entry::Tcp(t) => Some(&t.c.id),
            Entry::Syn(_) => None,
            Entry::Flow(f) => Some(&f.c.id),
        }
    }

    fn ident_mut(&mut self) -> Option<&mut Ident> {
        match self {
            Entry::Tcp(t) => Some(&mut t.c.id),
            Entry::Syn(_) => None,
            Entry::Flow(f) => Some(&mut f.c.id),
        }
    }

    fn key(&self) -> Key {
        match self {
            Entry::Syn(s) => s.key(),
            Entry::Tcp(t) => key_of(&t.c.id),
            Entry::Flow(f) => key_of(&f.c.id),
        }
    }

    /// `self.key() == *key`, without building the key (once per lookup).
    fn has_key(&self, key: &Key) -> bool {
        match self {
            Entry::Syn(s) => {
                key.proto == 6 && s.vlan == key.vlan && key.has_sockets(&s.addr(), &s.port, true)
            }
            Entry::Tcp(t) => t.c.id.has_key(key),
            Entry::Flow(f) => f.c.id.has_key(key),
        }
    }

    fn serial(&self) -> u64 {
        match self {
            Entry::Syn(s) => s.serial,
            Entry::Tcp(t) => t.c.serial,
            Entry::Flow(f) => f.c.serial,
        }
    }

    /// A SynOnly's uid is computed when it expands; its transitions are over by then.
    fn uid(&self) -> Uid {
        self.ident().map_or([0; 17], |c| c.uid)
    }

    fn timer_gen(&self) -> u32 {
        match self {
            Entry::Syn(s) => s.gen,
            Entry::Tcp(t) => t.c.timer_gen,
            Entry::Flow(f) => f.c.timer_gen,
        }
    }

    fn encap_seen(&self) -> bool {
        match self {
            Entry::Syn(s) => s.bits & SynOnly::ENCAP_SEEN != 0,
            Entry::Tcp(t) => t.c.encap_seen,
            Entry::Flow(f) => f.c.encap_seen,
        }
    }

    fn armed(&self, t: &Timer) -> bool {
        match self {
            // Its timers were armed with its one generation (nothing cancelled them).
            Entry::Syn(s) => t.gen == s.gen,
            Entry::Tcp(c) => c.c.armed(t),
            Entry::Flow(f) => f.c.armed(t),
        }
    }
}

/// A SynOnly's addresses: IPv4 ones (IPv4-mapped in the 16-byte form) in 8 bytes.
#[derive(Debug, Clone, PartialEq)]
enum SynAddrs {
    V4([[u8; 4]; 2]),
    Other(Box<[[u8; 16]; 2]>),
}

/// A timer armed while a connection is made, before it is known whether the connection
/// stays a SynOnly: (deadline, kind, timer generation).
type Armed = (i64, TimerKind, u32);

/// All a connection whose only packet so far is a plain SYN (no payload, not dropped for its
/// checksum) needs: applying that SYN to a fresh connection gives back the whole state, so
/// `SynOnly::expand` replays it (muted: its transitions happened already).
///
/// 88 bytes (a whole connection with its boxes is ten times that): the addresses of IPv4
/// in 8 bytes, the options in small fields, no uid (it follows from serial, time and key),
/// and one timer in the heap, not three. Its connection arms up to three timers (inactivity,
/// expire, attempt) one after the other; only the one due first goes into the heap, the
/// others are pushed when it expands (its next packet, or that timer firing) with the
/// deadline and arming order they had: as the heap pops by (deadline, order), they fire
/// exactly when they would have.
#[derive(Debug, Clone, PartialEq)]
pub struct SynOnly {
    addrs: SynAddrs,
    first_ts: i64,
    first_frame: i64,
    serial: u64,
    /// Arming order of its first timer; the others follow it one by one.
    timer_seq: u64,
    port: [u16; 2],
    vlan: i32,
    gen: u32,
    seq: u32,
    ip_len: u32,
    flags: u16,
    win: u16,
    mss: u16,
    wscale: u8,
    /// SACK_PERM, TIMESTAMPS, MSS, WSCALE (present), ENCAP_SEEN, V6; in the top two bits,
    /// which of its timers is in the heap (IN_HEAP_SHIFT).
    bits: u8,
    kinds_len: u8,
    kinds: [u8; SYN_ONLY_KINDS],
}

/// Option kinds a SynOnly keeps inline (Linux sends 5, Windows 6 to 8).
const SYN_ONLY_KINDS: usize = 11;

impl SynOnly {
    const SACK_PERM: u8 = 1;
    const TIMESTAMPS: u8 = 2;
    const MSS: u8 = 4;
    const WSCALE: u8 = 8;
    const ENCAP_SEEN: u8 = 16;
    const V6: u8 = 32;
    /// 88 bytes with the index of its timer in the heap here, not in a byte of its own:
    /// malloc's 96-byte size, not 112.
    const IN_HEAP_SHIFT: u8 = 6;

    /// The compact form of a connection just created by `seg`, if its state is what
    /// replaying `seg` gives; `armed` are the timers it armed, the first of them numbered
    /// `timer_seq`.
    fn compress(
        conn: &TcpConn,
        seg: &Segment,
        opts: &SynOptions,
        check_csum: bool,
        armed: &[Armed],
        timer_seq: u64,
    ) -> Option<SynOnly> {
        let plain_syn = seg.flags & (SYN | ACK | tcp::FIN | tcp::RST) == SYN;
        let id = &conn.c.id;
        if !plain_syn
            || seg.payload != 0
            || (check_csum && seg.csum_bad)
            || conn.c.orig != 0
            || usize::from(opts.kinds_len) > SYN_ONLY_KINDS
            || !(-1..=i32::from(u16::MAX)).contains(&opts.mss)
            || !(-1..=i16::from(u8::MAX)).contains(&opts.wscale)
            || !matches!(id.ip_version, 4 | 6)
            || id.extra.is_some()
            || id.timer_gen != id.first_gen
            || armed.is_empty()
            || armed.len() > 3
            || armed.iter().any(|a| a.2 != id.timer_gen)
        {
            return None;
        }
        let mut kinds = [0u8; SYN_ONLY_KINDS];
        kinds[..usize::from(opts.kinds_len)].copy_from_slice(opts.kinds());
        let [a, b] = id.addr;
        let addrs = match (a.strip_prefix(&V4_PREFIX), b.strip_prefix(&V4_PREFIX)) {
            (Some(x), Some(y)) => SynAddrs::V4([x.try_into().ok()?, y.try_into().ok()?]),
            _ => SynAddrs::Other(Box::new(id.addr)),
        };
        let mut bits = 0;
        for (on, bit) in [
            (opts.sack_perm, Self::SACK_PERM),
            (opts.timestamps, Self::TIMESTAMPS),
            (opts.mss >= 0, Self::MSS),
            (opts.wscale >= 0, Self::WSCALE),
            (id.encap_seen, Self::ENCAP_SEEN),
            (id.ip_version == 6, Self::V6),
        ] {
            if on {
                bits |= bit;
            }
        }
        let first = (0..armed.len())
            .min_by_key(|&i| (armed[i].0, i))
            .unwrap_or(0);
        bits |= (first as u8) << Self::IN_HEAP_SHIFT; // at most 2: armed has 3 or fewer
        Some(SynOnly {
            addrs,
            first_ts: id.first_ts,
            first_frame: id.first_frame,
            serial: id.serial,
            timer_seq,
            port: id.port,
            vlan: id.vlan,
            gen: id.timer_gen,
            seq: seg.seq,
            ip_len: seg.ip_len,
            flags: seg.flags,
            win: seg.win,
            mss: u16::try_from(opts.mss).unwrap_or(0),
            wscale: u8::try_from(opts.wscale).unwrap_or(0),
            bits,
            kinds_len: opts.kinds_len,
            kinds,
        })
    }

    /// Which of `armed` goes into the heap.
    fn first_due(&self) -> usize {
        usize::from(self.bits >> Self::IN_HEAP_SHIFT)
    }

    fn addr(&self) -> [[u8; 16]; 2] {
        match &self.addrs {
            SynAddrs::V4(v) => v.map(|x| {
                let mut a = [0u8; 16];
                a[..12].copy_from_slice(&V4_PREFIX);
                a[12..].copy_from_slice(&x);
                a
            }),
            SynAddrs::Other(a) => **a,
        }
    }

    fn key(&self) -> Key {
        let [a, b] = self.addr();
        let vlan = (self.vlan != i32::MIN).then_some(self.vlan);
        Key::new(6, vlan, (a, self.port[0]), (b, self.port[1]), true)
    }

    /// The full connection, by replaying the SYN with its transitions muted. `resume`: the
    /// connection goes on in the table (in `slot`), so its timers not in the heap go in now;
    /// else it is ending. `uids`: what makes its uid.
    fn expand(
        self,
        config: &Config,
        timers: &mut Timers,
        uids: &mut UidMaker,
        slot: u32,
        resume: bool,
    ) -> TcpConn {
        let ts = self.first_ts;
        let zts = zeek_time(ts);
        let seg = Segment {
            ts,
            zts,
            frame: self.first_frame,
            flags: self.flags,
            seq: self.seq,
            ack: 0,
            payload: 0,
            win: self.win,
            ip_len: self.ip_len,
            captured: true,
            csum_bad: false,
        };
        let mut kinds = [0u8; 40];
        kinds[..SYN_ONLY_KINDS].copy_from_slice(&self.kinds);
        let has = |bit: u8| self.bits & bit != 0;
        let opts = SynOptions {
            mss: if has(Self::MSS) {
                i32::from(self.mss)
            } else {
                -1
            },
            wscale: if has(Self::WSCALE) {
                i16::from(self.wscale)
            } else {
                -1
            },
            sack_perm: has(Self::SACK_PERM),
            timestamps: has(Self::TIMESTAMPS),
            kinds_len: self.kinds_len,
            kinds,
        };
        let mut id = Ident {
            addr: self.addr(),
            port: self.port,
            proto: 6,
            ip_version: if has(Self::V6) { 6 } else { 4 },
            encap_seen: has(Self::ENCAP_SEEN),
            vlan: self.vlan,
            timer_gen: self.gen,
            first_gen: self.gen,
            first_ts: self.first_ts,
            first_frame: self.first_frame,
            serial: self.serial,
            uid: [0; 17],
            extra: None,
        };
        id.uid = uids.flow(self.serial, ts, &key_of(&id));
        let c = Common::from_ident(id, zts, 0);
        let mut conn = TcpConn::new(c, &seg, config.report_gaps_for_partial);
        let mut armed: Vec<Armed> = Vec::new();
        let mut muted = TimerCtx {
            timers,
            slot,
            timeouts: &config.timeouts,
            transitions: None,
            uid: [0; 17],
            serial: 0,
            muted: true,
            record: Some(&mut armed),
            spare: &mut SpareBlocks::default(), // a SYN without payload: no blocks
        };
        conn.arm(&mut muted);
        conn.packet(&seg, 0, config.drop_bad_checksums, &opts, &mut muted);
        if resume {
            let first = self.first_due();
            for (i, &(deadline, kind, gen)) in armed.iter().enumerate() {
                if i != first {
                    timers.push(slot, deadline, self.timer_seq + i as u64, kind, gen);
                }
            }
        }
        conn
    }
}

/// The table key: protocol, VLAN (i32::MIN when not part of the key), and the two sockets in
/// canonical order (one-way ICMP keeps its direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    proto: u8,
    vlan: i32,
    a: [u8; 16],
    pa: u16,
    b: [u8; 16],
    pb: u16,
}

impl Hash for Key {
    /// Four words: each address in one 128-bit write (one multiply of foldhash each), the
    /// rest packed into the hasher's buffer (one more). Inlined: the table hashes a key a
    /// packet, and a call of its own cost 1 % of `conns` once a second table hashed keys too.
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.a));
        state.write_u128(u128::from_ne_bytes(self.b));
        state.write_u64(
            u64::from(self.vlan as u32) | (u64::from(self.pa) << 32) | (u64::from(self.pb) << 48),
        );
        state.write_u8(self.proto);
    }
}

/// The flow table's hasher: foldhash's fast variant, with every seed drawn from the operating
/// system's random source (through std's `RandomState`, whose keys come from it).
///
/// Why not std's SipHash-1-3, which the table used before: it cost about 150 instructions a
/// key, a sixth of the tracker's work on a packet of an open connection; foldhash hashes the
/// key in three multiplies. Why foldhash rather than aHash: without AES instructions enabled
/// at compile time (the wheel is built for any x86-64) aHash falls back to the same kind of
/// folded multiply, and foldhash is one small crate without dependencies (hashbrown's own
/// default). What keeps crafted traffic from flooding a bucket is that the seeds are secret:
/// each multiply mixes the input with a seed, so which keys collide depends on them, and no
/// hash value or table order ever reaches an output (rows leave in creation order, eviction
/// follows activity). foldhash's own random seed comes from address-space layout and the
/// clock, which is why the seeds come from std's here.
#[derive(Debug, Clone, Copy)]
pub struct FlowHasher {
    per_table: u64,
    shared: &'static foldhash::SharedSeed,
}

impl FlowHasher {
    pub fn new() -> Self {
        static SHARED: OnceLock<foldhash::SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(os_random()));
        FlowHasher {
            per_table: os_random(),
            shared,
        }
    }
}

/// A new secret seed, as std's `RandomState::default()`: for the tables that hold one per entry
/// (a host set per port).
impl Default for FlowHasher {
    fn default() -> Self {
        FlowHasher::new()
    }
}

/// 64 bits from the operating system's random source: std's `RandomState` keys SipHash with
/// them (a new one adds 1 to the thread's keys), so its hash of a constant is unpredictable.
fn os_random() -> u64 {
    RandomState::new().hash_one(0x706f_7274_6c65_6e73_u64)
}

impl BuildHasher for FlowHasher {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        foldhash::fast::FoldHasher::with_seed(self.per_table, self.shared)
    }
}

/// The key an entry was inserted under: its first packet's sockets, in canonical order
/// unless it is a one-way ICMP flow (whose "ports" are the type and code).
fn key_of(id: &Ident) -> Key {
    let one_way =
        matches!(id.proto, 1 | 58) && icmp_ports(id.port[0], id.port[1], id.proto == 58).2;
    let vlan = (id.vlan != i32::MIN).then_some(id.vlan);
    Key::new(
        id.proto,
        vlan,
        (id.addr[0], id.port[0]),
        (id.addr[1], id.port[1]),
        !one_way,
    )
}

impl Key {
    fn new(
        proto: u8,
        vlan: Option<i32>,
        s: ([u8; 16], u16),
        d: ([u8; 16], u16),
        ordered: bool,
    ) -> Key {
        let (x, y) = if !ordered || s <= d { (s, d) } else { (d, s) };
        Key {
            proto,
            vlan: vlan.unwrap_or(i32::MIN),
            a: x.0,
            pa: x.1,
            b: y.0,
            pb: y.1,
        }
    }

    fn vlan(&self) -> Option<i32> {
        (self.vlan != i32::MIN).then_some(self.vlan)
    }

    /// Is this key's pair of sockets `addr`/`port` (host 0, host 1) as `Key::new` orders
    /// them? Keys of ordered entries are in canonical order (the smaller socket first), so
    /// the pair is the key's in one order or the other; a one-way ICMP flow's key keeps the
    /// order of its first packet. A key looked up is canonical unless it is a one-way ICMP
    /// message's, whose ports never equal an ordered flow's (`icmp_ports`: its type is none
    /// of the types with a reply), so no canonical check is needed here.
    fn has_sockets(&self, addr: &[[u8; 16]; 2], port: &[u16; 2], ordered: bool) -> bool {
        (port[0] == self.pa && port[1] == self.pb && addr[0] == self.a && addr[1] == self.b)
            || (ordered
                && port[1] == self.pa
                && port[0] == self.pb
                && addr[1] == self.a
                && addr[0] == self.b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum TimerKind {
    Inactivity,
    Attempt,
    Expire,
    Close,
    Reset,
    Dns,
    PartialClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    deadline: i64,
    /// Order of arming (timers due at the same time fire in it) << 8 | the TimerKind.
    seq_kind: u64,
    slot: u32,
    /// The timer generation of the slot's entry when armed. Generations go on rising across
    /// the entries a slot holds, so a timer of an entry that is gone never matches.
    gen: u32,
}

impl Timer {
    fn kind(&self) -> TimerKind {
        match self.seq_kind & 0xff {
            0 => TimerKind::Inactivity,
            1 => TimerKind::Attempt,
            2 => TimerKind::Expire,
            3 => TimerKind::Close,
            4 => TimerKind::Reset,
            5 => TimerKind::Dns,
            _ => TimerKind::PartialClose,
        }
    }
}

#[derive(Debug, Default)]
struct Timers {
    heap: TimerHeap,
    seq: u64,
}

impl Timers {
    fn push(&mut self, slot: u32, deadline: i64, seq: u64, kind: TimerKind, gen: u32) {
        self.heap.push(Timer {
            deadline,
            seq_kind: (seq << 8) | kind as u64,
            slot,
            gen,
        });
    }

    /// Arms a timer now: numbered after every timer armed before it.
    fn arm(&mut self, slot: u32, deadline: i64, kind: TimerKind, gen: u32) {
        self.seq += 1;
        self.push(slot, deadline, self.seq, kind, gen);
    }
}

/// The armed timers, handed out earliest (deadline, arming order) first, as one binary heap of
/// them all would: only the timers of the current second are in a heap (`near`); later ones
/// wait in a wheel of one-second buckets (`wheel`, and `far` beyond its span) and go into the
/// heap when the clock reaches their second. With all of them in one heap (30,000 on the
/// benchmark capture, most for minutes ahead) each pop walked a heap that did not stay in
/// cache: 9 % of `conns`' CPU. (A 4-ary heap took 40 more instructions a packet than std's.)
#[derive(Debug)]
struct TimerHeap {
    /// Every timer of a bucket before `next`.
    near: BinaryHeap<Reverse<Timer>>,
    /// The first bucket (deadline >> BUCKET_SHIFT) not moved into `near` yet.
    next: i64,
    /// Bucket b, for next <= b < next + WHEEL_BUCKETS, at b % WHEEL_BUCKETS.
    wheel: Vec<Vec<Timer>>,
    /// The timers of later buckets.
    far: BinaryHeap<Reverse<Timer>>,
    len: usize,
}

/// A bucket spans 2^30 ns (1.07 s); the wheel 512 of them (9 minutes: Zeek's inactivity and
/// session timeouts fit in it).
const BUCKET_SHIFT: u32 = 30;
const WHEEL_BUCKETS: i64 = 512;

impl Default for TimerHeap {
    fn default() -> Self {
        TimerHeap {
            near: BinaryHeap::new(),
            next: i64::MIN,
            wheel: vec![Vec::new(); WHEEL_BUCKETS as usize],
            far: BinaryHeap::new(),
            len: 0,
        }
    }
}

impl TimerHeap {
    fn len(&self) -> usize {
        self.len
    }

    fn bucket(deadline: i64) -> i64 {
        deadline >> BUCKET_SHIFT
    }

    fn slot(bucket: i64) -> usize {
        bucket.rem_euclid(WHEEL_BUCKETS) as usize
    }

    fn push(&mut self, t: Timer) {
        self.len += 1;
        let b = Self::bucket(t.deadline);
        if b < self.next {
            self.near.push(Reverse(t));
        } else if b.saturating_sub(self.next) < WHEEL_BUCKETS {
            self.wheel[Self::slot(b)].push(t);
        } else {
            self.far.push(Reverse(t));
        }
    }

    /// The earliest timer, if it is due by `now`, taken out.
    fn pop_due(&mut self, now: i64) -> Option<Timer> {
        self.advance(now);
        match self.near.peek() {
            Some(Reverse(t)) if t.deadline <= now => {
                self.len -= 1;
                self.near.pop().map(|Reverse(t)| t)
            }
            _ => None,
        }
    }

    /// Whether a timer is due by `now`.
    fn any_due(&mut self, now: i64) -> bool {
        self.due_by(now).is_some()
    }

    /// The earliest deadline, if a timer is due by `now`.
    fn due_by(&mut self, now: i64) -> Option<i64> {
        self.advance(now);
        self.near
            .peek()
            .map(|Reverse(t)| t.deadline)
            .filter(|&d| d <= now)
    }

    /// Moves the buckets up to `now`'s into `near`, so that it holds every timer due by then.
    fn advance(&mut self, now: i64) {
        let last = Self::bucket(now);
        if last < self.next {
            return;
        }
        // Each bucket once at most (after a jump past the wheel, all of them). A bucket's
        // allocation goes with its timers: a flood's second would otherwise keep its size for
        // good, in each of the 512 buckets it passes.
        let end = last.min(self.next.saturating_add(WHEEL_BUCKETS - 1));
        for b in self.next..=end {
            let bucket = std::mem::take(&mut self.wheel[Self::slot(b)]);
            self.near.extend(bucket.into_iter().map(Reverse));
        }
        self.next = last + 1;
        while let Some(Reverse(t)) = self.far.peek() {
            let b = Self::bucket(t.deadline);
            if b.saturating_sub(self.next) >= WHEEL_BUCKETS {
                break;
            }
            let Some(Reverse(t)) = self.far.pop() else {
                break;
            };
            if b < self.next {
                self.near.push(Reverse(t));
            } else {
                self.wheel[Self::slot(b)].push(t);
            }
        }
    }

    /// Keeps the timers `keep` says.
    fn retain(&mut self, mut keep: impl FnMut(&Timer) -> bool) {
        self.near.retain(|Reverse(t)| keep(t));
        self.far.retain(|Reverse(t)| keep(t));
        for bucket in &mut self.wheel {
            bucket.retain(&mut keep);
        }
        self.len =
            self.near.len() + self.far.len() + self.wheel.iter().map(Vec::len).sum::<usize>();
    }
}

/// What a connection's code may reach while it handles a packet or a timer: the timer heap
/// (for its own slot), the configured timeouts, and the transition stream.
pub struct TimerCtx<'a> {
    timers: &'a mut Timers,
    slot: u32,
    pub timeouts: &'a Timeouts,
    transitions: Option<&'a mut TransitionBatch>,
    uid: Uid,
    serial: u64,
    /// Replaying a SynOnly's SYN: its transitions happened already.
    muted: bool,
    /// Timers go here instead of into the heap (a connection being made, or a SynOnly
    /// replayed): the caller numbers and pushes them.
    record: Option<&'a mut Vec<Armed>>,
    /// Emptied reassembler blocks, for the next flight of data.
    pub spare: &'a mut SpareBlocks,
}

impl TimerCtx<'_> {
    pub fn add(&mut self, c: &Ident, deadline: i64, kind: TimerKind) {
        if let Some(r) = self.record.as_deref_mut() {
            r.push((deadline, kind, c.timer_gen));
            return;
        }
        if self.muted {
            return;
        }
        self.timers.arm(self.slot, deadline, kind, c.timer_gen);
    }

    pub fn transition(
        &mut self,
        s: &Segment,
        host: u8,
        event: Event,
        old: TcpState,
        new: TcpState,
        sockets: columns::Sockets<'_>,
    ) {
        if self.muted {
            return;
        }
        if let Some(out) = self.transitions.as_deref_mut() {
            out.push(
                self.uid,
                self.serial,
                s,
                host,
                host != sockets.orig,
                event,
                old,
                new,
                sockets,
            );
        }
    }
}

/// Counts of frames that belong to no connection, by why (the Python tracker's not_counted).
#[derive(Debug, Clone)]
pub struct NotCounted {
    pub malformed: [u64; 256],
    pub not_ip: u64,
    /// IPv4 total length 0 (TSO), dropped as Zeek without -C drops it.
    pub ip_len_zero: u64,
    pub bad_ip_checksum: u64,
    pub ip_proto: [u64; 256],
}

impl Default for NotCounted {
    fn default() -> Self {
        NotCounted {
            malformed: [0; 256],
            not_ip: 0,
            ip_len_zero: 0,
            bad_ip_checksum: 0,
            ip_proto: [0; 256],
        }
    }
}

impl NotCounted {
    /// Adds another tracker's counts (a flow shard's).
    pub fn add(&mut self, other: &NotCounted) {
        for (a, b) in self.malformed.iter_mut().zip(&other.malformed) {
            *a += b;
        }
        for (a, b) in self.ip_proto.iter_mut().zip(&other.ip_proto) {
            *a += b;
        }
        self.not_ip += other.not_ip;
        self.ip_len_zero += other.ip_len_zero;
        self.bad_ip_checksum += other.bad_ip_checksum;
    }
}

/// Packet columns that do not fit together (lengths differ): the caller's mistake.
#[derive(Debug)]
pub struct ColumnError(pub String);

impl std::error::Error for ColumnError {}

impl std::fmt::Display for ColumnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Feed packet columns in capture order; connections come out as they end.
pub struct Tracker {
    config: Config,
    /// Which rows it counts, from `config`.
    counting: Counting,
    likely_tcp: Box<[u64; 1024]>,
    likely_udp: Box<[u64; 1024]>,
    /// Slot numbers, found by the key their slot holds: 4 bytes an entry, not a second key.
    table: HashTable<u32>,
    hasher: FlowHasher,
    /// The entries; a slot's key is computed from its entry (`key_of`), not stored.
    slots: Vec<Option<Entry>>,
    /// Free slots, each with the timer generation its next entry starts at.
    free: Vec<(u32, u32)>,
    /// The LRU list's links by slot, (previous, next), NIL at either end: beside the slots,
    /// not in the entries, so that moving an entry to the tail touches its neighbours'
    /// links, not their boxed states.
    lru: Vec<(u32, u32)>,
    lru_head: u32,
    lru_tail: u32,
    /// What an Expire timer reads of the TCP connection in each slot (None: another entry,
    /// or none): the timers of most connections fire every tcp_session_timer and only re-arm.
    views: Vec<Option<ExpireView>>,
    live: usize,
    timers: Timers,
    now: i64,
    serial: u64,
    uids: UidMaker,
    /// The encapsulations of the last frame's own row, outermost first: the carriers its
    /// A-MSDU subframes' rows share (`carriers`).
    frame_chain: Vec<Made>,
    /// A shard of `Shards`: the other shards' UDP carriers it has named.
    foreign: Foreign,
    /// The timers of a connection being made (see `tcp`).
    armed: Vec<Armed>,
    spare: SpareBlocks,
    pub ended: ConnBatch,
    /// Connections ended in the current step (`step`): they go to `ended` in serial order
    /// when the step is over (`end_step`), so that the order of a step's rows is the order of
    /// their creation, which flow shards can rebuild (`EndAt`), not that of a timer heap or a
    /// table, which they cannot.
    ending: Vec<(u64, Ending)>,
    step: EndAt,
    /// The connections still to end once the end of the capture has begun (`finish_through`),
    /// as (serial, slot), the oldest last.
    finishing: Option<Vec<(u64, u32)>>,
    /// The last frame counted (by this tracker or, with `feed_shard`, by any shard).
    last_frame: i64,
    /// A shard's tracker (`feed_shard`): the first frame of each connection created, in
    /// creation order, until taken (`take_created`): what ranks its connections among every
    /// shard's while they stream (src/portlens/pipeline/shards.py `ShardMerge`).
    created: Option<Vec<i64>>,
    /// A tracker of one of `Shards`' threads: each connection created in the current batch
    /// (its row, slot, serial, time and key), renamed with one run's serial and uid once
    /// every shard has tracked the batch (shards.rs).
    births: Option<Vec<Birth>>,
    /// `births`: slots whose tunnel parents changed in the current batch (a carrier created
    /// in it is named there by this shard's uid until renamed).
    reparented: Vec<u32>,
    /// The batch row being tracked (`births`).
    row: u32,
    /// The tunnel level of what is being tracked in the row: a carrier's (outermost 0), or
    /// `INNER` (`births`).
    level: u8,
    pub transitions: TransitionBatch,
    pub packets_tracked: u64,
    pub packets_skipped: u64,
    pub evicted: u64,
    pub not_counted: NotCounted,
}

impl Tracker {
    pub fn new(mut config: Config) -> Self {
        let mut likely_tcp = Box::new([0u64; 1024]);
        let mut likely_udp = Box::new([0u64; 1024]);
        for &(proto, port) in &config.likely_server_ports {
            let set = match proto {
                6 => &mut likely_tcp,
                17 => &mut likely_udp,
                _ => continue,
            };
            set[usize::from(port / 64)] |= 1 << (port % 64);
        }
        // A cap of 0 would evict the connection a packet is being applied to.
        config.max_flows = config.max_flows.max(1);
        Tracker {
            counting: Counting::of(&config),
            config,
            likely_tcp,
            likely_udp,
            table: HashTable::new(),
            hasher: FlowHasher::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: Vec::new(),
            lru_head: NIL,
            lru_tail: NIL,
            views: Vec::new(),
            live: 0,
            timers: Timers::default(),
            now: 0,
            serial: 0,
            uids: UidMaker::default(),
            frame_chain: Vec::new(),
            foreign: Foreign::default(),
            armed: Vec::with_capacity(4),
            spare: SpareBlocks::default(),
            ended: ConnBatch::default(),
            ending: Vec::new(),
            step: EndAt {
                frame: 0,
                phase: END_CLOCK,
            },
            finishing: None,
            last_frame: 0,
            created: None,
            births: None,
            reparented: Vec::new(),
            row: 0,
            level: INNER,
            transitions: TransitionBatch::default(),
            packets_tracked: 0,
            packets_skipped: 0,
            evicted: 0,
            not_counted: NotCounted::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Open flows now.
    pub fn open_flows(&self) -> usize {
        self.live
    }

    fn likely(&self, proto: u8, port: u16) -> bool {
        let set = if proto == 6 {
            &self.likely_tcp
        } else {
            &self.likely_udp
        };
        set[usize::from(port / 64)] & (1 << (port % 64)) != 0
    }

    fn lookup(&self, key: &Key) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(self.hasher.hash_one(key), |&s| match &slots[s as usize] {
                Some(e) => {
                    debug_assert_eq!(e.has_key(key), e.key() == *key);
                    e.has_key(key)
                }
                None => false,
            })
            .copied()
    }

    // --- the LRU list -----------------------------------------------------------------------

    fn entry_at(&mut self, slot: u32) -> &mut Entry {
        self.slots[slot as usize]
            .as_mut()
            .expect("a linked slot holds an entry")
    }

    /// Turns a SynOnly entry back into a whole connection (its next packet or timer needs it);
    /// its timers not in the heap go in. Inlined: every packet of a known connection asks.
    #[inline(always)]
    fn expand_at(&mut self, slot: u32) {
        if matches!(self.slots.get(slot as usize), Some(Some(Entry::Syn(_)))) {
            self.expand_syn(slot);
        }
    }

    #[inline(never)]
    fn expand_syn(&mut self, slot: u32) {
        let Some(cell @ Some(Entry::Syn(_))) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if let Some(Entry::Syn(syn)) = cell.take() {
            let conn = syn.expand(&self.config, &mut self.timers, &mut self.uids, slot, true);
            *cell = Some(Entry::Tcp(Box::new(conn)));
        }
        self.note_view(slot);
    }

    fn lru_unlink(&mut self, slot: u32) {
        let (prev, next) = self.lru[slot as usize];
        if prev == NIL {
            self.lru_head = next;
        } else {
            self.lru[prev as usize].1 = next;
        }
        if next == NIL {
            self.lru_tail = prev;
        } else {
            self.lru[next as usize].0 = prev;
        }
    }

    fn lru_push_back(&mut self, slot: u32) {
        let tail = self.lru_tail;
        self.lru[slot as usize] = (tail, NIL);
        if tail == NIL {
            self.lru_head = slot;
        } else {
            self.lru[tail as usize].1 = slot;
        }
        self.lru_tail = slot;
    }

    fn touch(&mut self, slot: u32) {
        if self.lru_tail != slot {
            self.lru_unlink(slot);
            self.lru_push_back(slot);
        }
    }

    // --- timers -------------------------------------------------------------------------------

    fn ctx(&mut self, slot: u32) -> (TimerCtx<'_>, &mut Entry) {
        let keep = self.config.keep_transitions;
        let entry = self.slots[slot as usize]
            .as_mut()
            .expect("a live slot holds an entry");
        let (uid, serial) = (entry.uid(), entry.serial());
        (
            TimerCtx {
                timers: &mut self.timers,
                slot,
                timeouts: &self.config.timeouts,
                transitions: if keep {
                    Some(&mut self.transitions)
                } else {
                    None
                },
                uid,
                serial,
                muted: false,
                record: None,
                spare: &mut self.spare,
            },
            entry,
        )
    }

    fn run_timers(&mut self, now: i64) {
        while let Some(timer) = self.timers.heap.pop_due(now) {
            if timer.kind() == TimerKind::Expire && self.expire_from_view(&timer, now) {
                continue;
            }
            let live = match self.slots.get(timer.slot as usize) {
                Some(Some(e)) => e.armed(&timer),
                _ => false,
            };
            if !live {
                continue;
            }
            // As in Zeek, a timer sees the network time it fires at, not its deadline: after
            // a jump in capture time it fires once, not once per period of the jump.
            self.expand_at(timer.slot);
            let (mut t, entry) = self.ctx(timer.slot);
            let cause = match entry {
                Entry::Tcp(conn) => conn.timer(now, timer.kind(), &mut t),
                Entry::Flow(flow) => flow.timer(now, timer.kind(), &mut t),
                Entry::Syn(_) => None, // expanded above
            };
            match cause {
                Some(cause) => self.remove(timer.slot, cause),
                None => self.note_view(timer.slot),
            }
        }
        if self.timers.heap.len() > 4 * self.live + 4096 {
            self.compact_timers();
        }
    }

    /// An Expire timer done from its connection's view, without reading the connection:
    /// dropped when stale (another generation's, as `armed` drops it) or when it does
    /// nothing, re-armed as `TcpConn::timer` would re-arm it. False when it ends the
    /// connection, or the slot holds no TCP connection: it then fires on the entry.
    fn expire_from_view(&mut self, timer: &Timer, now: i64) -> bool {
        let Some(Some(view)) = self.views.get(timer.slot as usize) else {
            return false;
        };
        if view.timer_gen != timer.gen {
            return true;
        }
        match view.step(now, &self.config.timeouts) {
            ExpireStep::Nothing => true,
            ExpireStep::End(_) => false,
            ExpireStep::Rearm(deadline) => {
                self.timers
                    .arm(timer.slot, deadline, TimerKind::Expire, timer.gen);
                true
            }
        }
    }

    /// Brings the slot's Expire view up to its entry, after anything that may have changed it.
    fn note_view(&mut self, slot: u32) {
        let view = match self.slots.get(slot as usize) {
            Some(Some(Entry::Tcp(conn))) => Some(conn.expire_view()),
            _ => None,
        };
        if let Some(v) = self.views.get_mut(slot as usize) {
            *v = view;
        }
    }

    fn compact_timers(&mut self) {
        let slots = &self.slots;
        self.timers
            .heap
            .retain(|t| match slots.get(t.slot as usize) {
                Some(Some(e)) => e.armed(t),
                _ => false,
            });
    }

    // --- the table ----------------------------------------------------------------------------

    /// `uid`: compute the uid now; else the caller does, unless the entry becomes a SynOnly
    /// (which computes it when it expands).
    fn insert(&mut self, key: Key, mut entry: Entry, ts: i64, version: u8, uid: bool) -> u32 {
        self.serial += 1;
        let serial = self.serial;
        if let Some(created) = &mut self.created {
            created.push(self.last_frame);
        }
        let born = self.births.is_some().then_some((key, ts));
        if let Some(c) = entry.ident_mut() {
            c.serial = serial;
            if uid {
                c.uid = self.uids.flow(serial, ts, &key);
            }
            c.vlan = key.vlan;
            c.ip_version = version;
            debug_assert!(key_of(c) == key, "an entry's key is computed from it");
        }
        let slot = match self.free.pop() {
            Some((s, gen)) => {
                if let Some(c) = entry.ident_mut() {
                    c.timer_gen = gen;
                    c.first_gen = gen;
                }
                self.slots[s as usize] = Some(entry);
                s
            }
            None => {
                self.slots.push(Some(entry));
                self.lru.push((NIL, NIL));
                self.views.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        let hash = hasher.hash_one(key);
        self.table
            .insert_unique(hash, slot, |&s| match &slots[s as usize] {
                Some(e) => hasher.hash_one(e.key()),
                None => 0, // never: the table holds only live slots
            });
        self.lru_push_back(slot);
        self.live += 1;
        if let (Some(births), Some((key, ts))) = (&mut self.births, born) {
            births.push(Birth {
                row: self.row,
                level: self.level,
                slot,
                serial,
                ts,
                key,
            });
        }
        if self.live > self.config.max_flows {
            let victim = self.lru_head;
            self.evicted += 1;
            self.remove(victim, Cause::Evicted);
            // The evicted flows' timers stay in the heap until it is compacted; with no timer
            // due (a flood within seconds), only this keeps the heap to the open flows'.
            if self.timers.heap.len() > 4 * self.live + 4096 {
                self.compact_timers();
            }
        }
        slot
    }

    fn remove(&mut self, slot: u32, cause: Cause) {
        if self.slots.get(slot as usize).is_none_or(|s| s.is_none()) {
            return;
        }
        self.lru_unlink(slot);
        let Some(entry) = self.slots[slot as usize].take() else {
            return;
        };
        self.views[slot as usize] = None;
        let key = entry.key();
        if let Ok(found) = self
            .table
            .find_entry(self.hasher.hash_one(key), |&s| s == slot)
        {
            found.remove();
        }
        self.free.push((slot, entry.timer_gen().wrapping_add(1)));
        self.live -= 1;
        let serial = entry.serial();
        let ending = match entry {
            Entry::Tcp(conn) => Ending::Tcp(conn, cause),
            // Expanded when its row is written: until then (all of a flood's 200,000 at the
            // end of the capture) it keeps its 88 bytes instead of a TcpConn's 768.
            Entry::Syn(syn) => Ending::Syn(syn, slot, cause),
            Entry::Flow(flow) => Ending::Flow(flow, cause),
        };
        self.ending.push((serial, ending));
    }

    /// Ends the current step: its connections go to `ended` in serial (creation) order, and
    /// the next step is `next`. Inlined: it runs twice a packet, and almost always ends
    /// nothing.
    #[inline(always)]
    fn end_step(&mut self, next: EndAt) {
        if !self.ending.is_empty() {
            self.flush_ending();
        }
        self.step = next;
    }

    #[inline(never)]
    fn flush_ending(&mut self) {
        let mut ending = std::mem::take(&mut self.ending);
        ending.sort_unstable_by_key(|(serial, _)| *serial);
        for (_, e) in ending.drain(..) {
            match e {
                Ending::Tcp(conn, cause) => self.ended.push_tcp(&conn, cause),
                Ending::Syn(syn, slot, cause) => {
                    let conn =
                        syn.expand(&self.config, &mut self.timers, &mut self.uids, slot, false);
                    self.ended.push_tcp(&conn, cause);
                }
                Ending::Flow(flow, cause) => self.ended.push_flow(&flow, cause),
            }
            self.ended.push_end(self.step);
        }
        self.ending = ending; // its allocation, for the next step
    }

    /// A shard's tracker: the first frames of the connections created since the last call,
    /// in creation order (empty for a tracker of every flow).
    pub fn take_created(&mut self) -> Vec<i64> {
        self.created
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// End of capture: every open connection ends now, in creation order.
    pub fn finish(&mut self) {
        self.finish_through(u64::MAX);
    }

    /// The end of the capture, a part at a time: ends the open connections created up to
    /// serial `last`, in creation order, and once none is left open, the capture's end.
    /// Their rows are as `finish`'s, but the caller can take them part by part: a flood's
    /// 200,000 open flows ended at once made one block of rows of 165 MB. Nothing else may
    /// happen to the tracker between the parts.
    pub fn finish_through(&mut self, last: u64) {
        let mut open = self.take_finishing();
        while let Some(&(serial, slot)) = open.last() {
            if serial > last {
                break;
            }
            open.pop();
            self.remove(slot, Cause::End);
        }
        if open.is_empty() {
            self.end_step(EndAt {
                frame: self.last_frame,
                phase: END_CLOCK,
            });
        } else {
            self.end_step(self.step); // this part's rows, still at the end of the capture
            self.finishing = Some(open);
        }
    }

    /// The serials of the next `limit` connections the end of the capture ends, oldest first
    /// (beginning it, if it has not begun).
    pub fn finishing_serials(&mut self, limit: usize) -> Vec<u64> {
        let open = self.take_finishing();
        let next = open.iter().rev().take(limit).map(|&(s, _)| s).collect();
        self.finishing = Some(open);
        next
    }

    /// The connections still to end, the end of the capture begun if it was not.
    fn take_finishing(&mut self) -> Vec<(u64, u32)> {
        match self.finishing.take() {
            Some(open) => open,
            None => self.begin_finish(),
        }
    }

    fn begin_finish(&mut self) -> Vec<(u64, u32)> {
        self.end_step(EndAt {
            frame: self.last_frame,
            phase: END_CAPTURE,
        });
        let mut open = Vec::with_capacity(self.live);
        let mut slot = self.lru_head;
        while slot != NIL {
            let Some(Some(entry)) = self.slots.get(slot as usize) else {
                break;
            };
            open.push((entry.serial(), slot));
            slot = self.lru[slot as usize].1;
        }
        open.sort_unstable_by(|a, b| b.cmp(a));
        open
    }

    /// Move the clock to `ts_ns` without a packet: timers due by then fire.
    pub fn advance(&mut self, ts_ns: i64) {
        self.end_step(EndAt {
            frame: self.last_frame,
            phase: END_CLOCK,
        });
        let zts = zeek_time(ts_ns);
        if zts > self.now {
            self.now = zts;
            self.run_timers(zts);
        }
        self.end_step(self.step);
    }

    /// The clock of one counted packet (at Zeek time `zts`): timers due by then fire, before
    /// the packet (frame `frame`) is applied. Run for every packet a tracker of all flows
    /// would count, also by a tracker of one shard for the packets of the others.
    fn clock(&mut self, frame: i64, zts: i64) {
        self.end_step(EndAt {
            frame,
            phase: END_TIMERS,
        });
        self.last_frame = frame;
        // Zeek's clock is the latest packet time so far (it never goes back), and before
        // every packet, also one of the same time or an earlier one, every timer due by
        // that clock fires (RunState.cc dispatch_packet: Advance(network_time)); a delay
        // of 0 is due before the next packet.
        self.now = self.now.max(zts);
        let now = self.now;
        if self.timers.heap.any_due(now) {
            self.run_timers(now);
        }
        self.end_step(EndAt {
            frame,
            phase: END_PACKET,
        });
    }

    // --- the packets ----------------------------------------------------------------------------

    /// Track one batch of packet columns; ended connections accumulate in `self.ended`.
    pub fn feed(&mut self, p: &Packets<'_>) -> Result<(), ColumnError> {
        self.feed_rows(p, None, None, None)
    }

    /// `feed` for a tracker of one flow shard: only the rows where `mine` is true are
    /// tracked; the others (the other shards' packets) move the clock, as they do in a
    /// tracker of every flow, so that timers fire at the same packets, with the same network
    /// time, and the connections end where they end in one run (`EndAt`). The others' rows
    /// are neither tracked nor counted here.
    /// An ICMP error whose quoted flow is the shard's (`shard.quoted`) is attached to that
    /// flow although the message itself is another shard's: a router's error about a flow
    /// between two other hosts.
    pub fn feed_shard(
        &mut self,
        p: &Packets<'_>,
        shard: Option<ShardRows<'_>>,
    ) -> Result<(), ColumnError> {
        if shard.is_some() && self.created.is_none() {
            self.created = Some(Vec::new());
        }
        self.feed_rows(p, shard, None, None)
    }

    /// `feed_shard` without the first frames of what it creates (`Shards` numbers them).
    /// With `crossing` (`Shards`' threads), `shard.mine` are the rows whose inner flow is the
    /// shard's, and a tunnelled row's UDP carriers are each tracked by the shard of their own
    /// host pair, whichever tracks what they carry (carriers.rs); without, a shard tracks all
    /// of its rows, carriers included. With `passing` (`Shards`' threads), only its `visit`
    /// rows are looked at one by one (`Tracker::pass`).
    pub(crate) fn feed_rows(
        &mut self,
        p: &Packets<'_>,
        shard: Option<ShardRows<'_>>,
        crossing: Option<Crossing<'_>>,
        passing: Option<&Passing<'_>>,
    ) -> Result<(), ColumnError> {
        let n = p.check()?;
        if let Some(s) = shard {
            if s.mine.len() != n || s.quoted.len() != n {
                return Err(ColumnError(format!(
                    "column mine has {} rows, the others {n}",
                    s.mine.len()
                )));
            }
        }
        if let Some(o) = passing {
            let past = o.visit.last().is_some_and(|&v| v as usize >= n);
            if o.clock.len() != n || o.last.len() != n || past {
                return Err(ColumnError(format!(
                    "the split is of {} rows, the batch {n}",
                    o.clock.len()
                )));
            }
        }
        let b = Batch {
            p,
            n,
            shard,
            crossing,
            drop: self.config.drop_bad_checksums,
        };
        match passing {
            // The rows to look at one by one; between them, the other shards' plain rows.
            Some(o) => {
                let mut next = 0;
                for &v in o.visit {
                    let i = v as usize;
                    if i > next {
                        self.pass(&b, next..i, o);
                    }
                    self.row(&b, i);
                    next = i + 1;
                }
                if next < n {
                    self.pass(&b, next..n, o);
                }
            }
            None => {
                for i in 0..n {
                    self.row(&b, i);
                }
            }
        }
        if let Some(x) = crossing {
            // A frame's subframes in the next batch would look for this batch's cells.
            for m in &mut self.frame_chain {
                if let Made::Cell { cell, owner, .. } = *m {
                    *m = Made::Known(1, x.carriers.wait(cell, owner));
                }
            }
        }
        self.end_step(self.step);
        if self.timers.heap.len() > 4 * self.live + 4096 {
            self.compact_timers();
        }
        Ok(())
    }

    /// Rows `range` of a batch, each another shard's plain row (`Passing`): a counted one
    /// only moves the clock, and the first whose time a timer is due by runs the timers.
    /// Each shard of n otherwise walked every row, n - 1 in n only to move its clock; now
    /// the clock goes from one such row to the next at once, and after the last to the
    /// latest of their times.
    fn pass(&mut self, b: &Batch<'_>, range: std::ops::Range<usize>, o: &Passing<'_>) {
        let Some(end) = range.end.checked_sub(1) else {
            return;
        };
        self.frame_chain.clear(); // the rows are frames' own (SUB_FRAME)
        if self.foreign.any() {
            // a known foreign carrier's 5-tuple may be among them (`Foreign::forget`)
            for i in range {
                self.row_apart(b, i);
            }
            return;
        }
        let mut start = range.start;
        loop {
            let last = o.last[end] as usize;
            if last == NONE_COUNTED as usize || last < start {
                return; // none of them counted
            }
            let now = self.now.max(o.clock[end]);
            let Some(due) = self.timers.heap.due_by(now) else {
                let frame = b.p.frame[last];
                self.last_frame = frame;
                self.now = now;
                // what the row before them ended is flushed at its own step
                self.end_step(EndAt {
                    frame,
                    phase: END_PACKET,
                });
                return;
            };
            // The first counted row by whose time the timer is due: the rows before it move
            // the clock to no timer, and its own clock (`row`) sets the step and runs them.
            let now = self.now;
            let due_at = |&i: &usize| o.last[i] as usize == i && now.max(o.clock[i]) >= due;
            let Some(i) = (start..=end).find(due_at) else {
                for i in start..range.end {
                    self.row_apart(b, i);
                }
                return;
            };
            self.row_apart(b, i);
            start = i + 1;
            if start > end {
                return;
            }
        }
    }

    /// `row`, not inlined, for `pass`, where a row looked at is the exception: inlined there,
    /// its body made every call of `pass` pay for its registers and stack (278 instructions a
    /// call on the benchmark capture, against 100).
    #[inline(never)]
    fn row_apart(&mut self, b: &Batch<'_>, i: usize) {
        self.row(b, i);
    }

    /// One row of a batch: a packet of this tracker's flows tracked, another shard's only
    /// moving the clock (and naming its tunnel carriers, quoted flows).
    #[inline(always)]
    fn row(&mut self, b: &Batch<'_>, i: usize) {
        let Batch {
            p,
            n,
            shard,
            crossing,
            drop,
        } = *b;
        self.row = i as u32;
        let sub = p.sub[i];
        if sub == SUB_CARRIER {
            return; // a middle carrier, counted with its packet's row before it
        }
        if sub == SUB_FRAME {
            self.frame_chain.clear();
        }
        let theirs = shard.is_some_and(|s| !s.mine[i]);
        let l4 = p.l4[i];
        let depth = p.tunnel_depth[i];
        let Counted {
            used,
            bad_ip,
            unknown,
        } = self.counting.row(p, i, n);
        let src = p.addr(p.src, i);
        if theirs {
            if used {
                let (ts, zts) = (p.ts_ns[i], zeek_time(p.ts_ns[i]));
                self.clock(p.frame[i], zts);
                if depth > 0 && crossing.is_some() {
                    // the carriers of this shard, and the chain the subframes share
                    self.carriers(p, i, n, ts, zts, crossing);
                }
                if l4 == 17 && self.foreign.any() {
                    // another shard's packet of what may be a carrier's 5-tuple
                    let (s, d) = ((src, p.sport[i]), (p.addr(p.dst, i), p.dport[i]));
                    self.foreign.forget(&Key::new(17, None, s, d, true));
                }
                if shard.is_some_and(|s| s.quoted[i]) && quotes_a_flow(p, i) {
                    let vlan = self.config.vlan_in_key.then(|| p.vlan[i]);
                    self.attach_icmp_error(p, i, vlan);
                }
            }
            return;
        }
        if !used {
            self.count_skipped(p, i, bad_ip);
            self.packets_skipped += 1;
            return;
        }
        let ts = p.ts_ns[i];
        let zts = zeek_time(ts);
        self.clock(p.frame[i], zts);
        let encap = if depth > 0 {
            self.carriers(p, i, n, ts, zts, crossing)
                .map(|m| self.resolve(m, crossing))
        } else {
            None
        };
        let dst = p.addr(p.dst, i);
        let vlan = self.config.vlan_in_key.then(|| p.vlan[i]);
        let version = p.ip_version[i];
        if !matches!(l4, 6 | 17 | 1 | 58) {
            // A connection of its own, or (a Teredo bubble) nothing to track inside:
            // counted on its carriers only.
            if unknown {
                let slot = self.unknown(p, i, src, dst, vlan, version, zts);
                self.encapsulation(slot, encap);
            }
            self.packets_tracked += 1;
            return;
        }
        let bad = drop && p.l4_csum[i] == CSUM_BAD && !self.counting.ignored(&src);
        let slot = match l4 {
            6 => self.tcp(p, i, src, dst, vlan, version, zts, bad),
            17 => self.udp(
                src,
                p.sport[i],
                dst,
                p.dport[i],
                ts,
                zts,
                p.frame[i],
                i64::from(p.udp_len[i]) - 8,
                p.counted_ip_len(i),
                bad,
                vlan,
                version,
                Hints {
                    dns_qr: p.dns_qr[i],
                    ntp_mode: p.ntp_mode[i],
                },
            ),
            _ => {
                let slot = self.icmp(p, i, src, dst, vlan, version, zts, bad);
                if quotes_a_flow(p, i) && shard.is_none_or(|s| s.quoted[i]) {
                    self.attach_icmp_error(p, i, vlan);
                }
                slot
            }
        };
        self.encapsulation(slot, encap);
        self.packets_tracked += 1;
    }

    /// Counts the tunnel carriers of row `i`, outermost first (`out_*`, the middle carriers'
    /// rows after it, `car_*`): each UDP carrier is a connection of its own whose parent is
    /// the carrier around it, and the packet's parent is the innermost (Zeek's
    /// EncapsulationStack::Last, §12). An A-MSDU subframe's row shares the carriers crossed
    /// before its 802.11 header with its frame's own row, which counted them: Zeek pops the
    /// encapsulation stack back to that depth for each subframe (IEEE802_11Analyzer).
    /// With `crossing`, only the shard's own UDP carriers are counted; the others are named
    /// by their cells.
    #[inline(always)]
    fn carriers(
        &mut self,
        p: &Packets<'_>,
        i: usize,
        n: usize,
        ts: i64,
        zts: i64,
        crossing: Option<Crossing<'_>>,
    ) -> Option<Made> {
        let depth = usize::from(p.tunnel_depth[i]);
        let sub = p.sub[i];
        let shared = usize::from(sub.saturating_sub(SUB_MSDU));
        let mut middle = middle_carriers(p, i, n);
        let mut encap: Option<Made> = None;
        for level in 0..depth {
            if sub >= SUB_MSDU && level < shared {
                if let Some(&made) = self.frame_chain.get(level) {
                    encap = Some(made);
                    continue;
                }
            }
            let (src, dst, proto, ip_len) = if level == 0 {
                (
                    (p.addr(p.out_src, i), p.out_sport[i]),
                    (p.addr(p.out_dst, i), p.out_dport[i]),
                    p.out_proto[i],
                    p.out_ip_len[i],
                )
            } else if level + 1 == depth {
                (
                    (p.addr(p.car_src, i), p.car_sport[i]),
                    (p.addr(p.car_dst, i), p.car_dport[i]),
                    p.car_proto[i],
                    p.car_ip_len[i],
                )
            } else if let Some(j) = middle.next() {
                (
                    (p.addr(p.src, j), p.sport[j]),
                    (p.addr(p.dst, j), p.dport[j]),
                    p.proto[j],
                    p.ip_len[j],
                )
            } else {
                continue; // its row was not selected
            };
            let made = if proto != 17 {
                // an IP tunnel is no connection, only a tunnel record
                let uid = ids::tunnel_uid(&mut self.uids.scratch, &src.0, &dst.0, p.tunnel[i]);
                Made::Known(2, uid)
            } else {
                let theirs = crossing.and_then(|x| {
                    let owner = x.carriers.owner(&src.0, &dst.0);
                    (owner != x.me).then_some((x, owner))
                });
                match theirs {
                    Some((x, owner)) => self.foreign.name(
                        Key::new(17, None, src, dst, true),
                        (x.carriers.cell(i, level), owner),
                        (self.now, zts),
                        self.config.timeouts.udp_inactivity,
                    ),
                    None => {
                        self.level = level as u8;
                        let (slot, uid) = self.udp_carrier(src, dst, ip_len, ts, zts, p.frame[i]);
                        self.level = INNER;
                        if level > 0 {
                            let parent = encap.map(|m| self.resolve(m, crossing));
                            self.encapsulation(slot, parent);
                        }
                        if let Some(x) = crossing {
                            x.carriers.put(x.me, x.carriers.cell(i, level), uid);
                        }
                        Made::Known(1, uid)
                    }
                }
            };
            encap = Some(made);
            if sub == SUB_FRAME {
                self.frame_chain.push(made);
            }
        }
        encap
    }

    /// The encapsulation a carrier makes for what it carries (the carrier's kind and uid).
    fn resolve(&mut self, made: Made, crossing: Option<Crossing<'_>>) -> (u8, Uid) {
        match made {
            Made::Known(kind, uid) => (kind, uid),
            Made::Cell {
                cell,
                owner,
                pending,
            } => match crossing {
                Some(x) => {
                    let uid = x.carriers.wait(cell, owner);
                    self.foreign.learn(pending, uid);
                    (1, uid)
                }
                None => unreachable!("a carrier of another shard outside Shards"),
            },
        }
    }

    /// Counts a UDP tunnel carrier, a connection of its own as in Zeek; returns its slot and
    /// uid.
    fn udp_carrier(
        &mut self,
        src: ([u8; 16], u16),
        dst: ([u8; 16], u16),
        ip_len: u32,
        ts: i64,
        zts: i64,
        frame: i64,
    ) -> (u32, Uid) {
        let v4 = src.0[..12] == V4_PREFIX;
        let hdr: i64 = if v4 { 20 } else { 40 };
        let slot = self.udp(
            src.0,
            src.1,
            dst.0,
            dst.1,
            ts,
            zts,
            frame,
            i64::from(ip_len) - hdr - 8,
            ip_len,
            false,
            None,
            if v4 { 4 } else { 6 },
            Hints::default(),
        );
        let uid = self
            .slots
            .get(slot as usize)
            .and_then(|s| s.as_ref())
            .map_or([0; 17], Entry::uid);
        (slot, uid)
    }

    /// Why a frame was not counted in any connection (for report footers).
    fn count_skipped(&mut self, p: &Packets<'_>, i: usize, bad_ip: bool) {
        if p.frag[i] == FRAG_PART {
            return; // counted with the datagram it belongs to
        }
        let nc = &mut self.not_counted;
        if p.malformed[i] > 0 {
            nc.malformed[usize::from(p.malformed[i])] += 1;
        } else if p.ip_version[i] == 0 {
            nc.not_ip += 1;
        } else if self.config.drop_bad_checksums && p.ip_len_zero[i] {
            nc.ip_len_zero += 1;
        } else if bad_ip {
            nc.bad_ip_checksum += 1;
        } else {
            nc.ip_proto[usize::from(p.proto[i])] += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        p: &Packets<'_>,
        i: usize,
        src: [u8; 16],
        dst: [u8; 16],
        vlan: Option<i32>,
        version: u8,
        zts: i64,
        bad: bool,
    ) -> u32 {
        let (sport, dport) = (p.sport[i], p.dport[i]);
        let flags = p.tcp_flags[i];
        let key = Key::new(6, vlan, (src, sport), (dst, dport), true);
        let seg = Segment {
            ts: p.ts_ns[i],
            zts,
            frame: p.frame[i],
            flags,
            seq: p.seq[i],
            ack: p.ack[i],
            payload: i64::from(p.payload[i]),
            win: p.win[i],
            ip_len: p.counted_ip_len(i),
            captured: !p.truncated[i],
            csum_bad: bad,
        };
        let syn_opts;
        let opts = if flags & SYN != 0 {
            syn_opts = p.syn_options(i);
            &syn_opts
        } else {
            &NO_OPTIONS
        };
        let mut found = self.lookup(&key);
        if let Some(slot) = found {
            self.touch(slot);
            self.expand_at(slot);
            let reuse = match &self.slots[slot as usize] {
                Some(Entry::Tcp(conn)) => conn.is_reuse(flags, seg.seq),
                _ => false,
            };
            if reuse {
                self.remove(slot, Cause::Reuse);
                found = None;
            }
        }
        if let Some(slot) = found {
            // A packet of a connection the table holds (almost every one): none of the new
            // connection's steps below.
            let check = self.config.drop_bad_checksums;
            let (mut t, entry) = self.ctx(slot);
            if let Entry::Tcp(conn) = entry {
                let h = conn.c.host_of(&src, sport);
                conn.packet(&seg, h, check, opts, &mut t);
            }
            self.note_view(slot);
            return slot;
        }
        // A new connection's timers are held back until its first packet is applied: if it
        // stays a SynOnly, only the one due first goes into the heap.
        let mut armed = std::mem::take(&mut self.armed);
        armed.clear();
        // A plain SYN will likely stay a SynOnly, which computes its uid when it expands: with
        // no transitions to name it, the uid waits.
        let lazy_uid = !self.config.keep_transitions
            && flags & (SYN | ACK | tcp::FIN | tcp::RST) == SYN
            && seg.payload == 0;
        let slot = match found {
            Some(slot) => slot,
            None => {
                let c = Common::new(6, src, sport, dst, dport, seg.ts, zts, seg.frame, 0);
                let conn = TcpConn::new(c, &seg, self.config.report_gaps_for_partial);
                let slot = self.insert(key, Entry::Tcp(Box::new(conn)), seg.ts, version, !lazy_uid);
                let (mut t, entry) = self.ctx(slot);
                t.record = Some(&mut armed);
                if let Entry::Tcp(conn) = entry {
                    conn.arm(&mut t);
                }
                // Not a plain SYN: guess the server by its port (§3.1); a plain SYN never flips.
                let mut flip = false;
                if (flags & SYN == 0 || flags & ACK != 0) && self.likely(6, sport) {
                    flip = if self.likely(6, dport) {
                        flags & SYN == 0 && sport < dport
                    } else {
                        true
                    };
                }
                if flip && dst != BROADCAST4 {
                    if let Some(Entry::Tcp(conn)) = self.slots[slot as usize].as_mut() {
                        conn.flip();
                    }
                }
                slot
            }
        };
        let check = self.config.drop_bad_checksums;
        let new = found.is_none();
        let first_seq = self.timers.seq + 1;
        let (mut t, entry) = self.ctx(slot);
        if new {
            t.record = Some(&mut armed);
        }
        let mut compact = None;
        if let Entry::Tcp(conn) = entry {
            let h = conn.c.host_of(&src, sport);
            conn.packet(&seg, h, check, opts, &mut t);
            if new {
                compact = SynOnly::compress(conn, &seg, opts, check, &armed, first_seq);
            }
        }
        if new {
            // Numbered in the order they were armed, as if pushed one by one.
            self.timers.seq += armed.len() as u64;
            let only = compact.as_ref().map(SynOnly::first_due);
            for (i, &(deadline, kind, gen)) in armed.iter().enumerate() {
                if only.is_none_or(|k| k == i) {
                    self.timers
                        .push(slot, deadline, first_seq + i as u64, kind, gen);
                }
            }
        }
        self.armed = armed;
        if new && lazy_uid && compact.is_none() {
            if let Some(Entry::Tcp(conn)) = self.slots[slot as usize].as_mut() {
                conn.c.id.uid = self.uids.flow(conn.c.serial, seg.ts, &key);
            }
        }
        if let Some(syn) = compact {
            if let Some(entry) = self.slots[slot as usize].as_mut() {
                #[cfg(debug_assertions)]
                if let Entry::Tcp(conn) = entry {
                    let mut scratch = Timers::default();
                    let mut uids = UidMaker {
                        scratch: Vec::new(),
                        provisional_after: self.uids.provisional_after,
                        shard: self.uids.shard,
                    };
                    let mut again =
                        syn.clone()
                            .expand(&self.config, &mut scratch, &mut uids, slot, false);
                    if lazy_uid {
                        again.c.id.uid = conn.c.id.uid; // not computed yet
                    }
                    debug_assert!(
                        again == **conn,
                        "a SynOnly expands to the connection it was"
                    );
                }
                *entry = Entry::Syn(Box::new(syn));
            }
        }
        self.note_view(slot);
        slot
    }

    #[allow(clippy::too_many_arguments)]
    fn udp(
        &mut self,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
        ts: i64,
        zts: i64,
        frame: i64,
        payload: i64,
        ip_len: u32,
        bad: bool,
        vlan: Option<i32>,
        version: u8,
        hints: Hints,
    ) -> u32 {
        let key = Key::new(17, vlan, (src, sport), (dst, dport), true);
        let inactivity = self.config.timeouts.udp_inactivity;
        let at = (ts, zts, frame);
        let (slot, new) = self.flow_slot(key, (src, sport), (dst, dport), at, inactivity, version);
        if new {
            let flip = self.likely(17, sport) && !self.likely(17, dport) && dst != BROADCAST4;
            let dns_timeout = self.config.dns_timeout;
            let dns_period = self.config.timeouts.dns_session_timeout;
            let ntp = self.config.ntp_analyzer;
            let (mut t, entry) = self.ctx(slot);
            if let Entry::Flow(flow) = entry {
                if flip {
                    flow.flip();
                }
                let resp = 1 - usize::from(flow.c.orig);
                if dns_timeout && DNS_PORTS.contains(&flow.c.port[resp]) {
                    flow.dns = true;
                    t.add(&flow.c, zts.saturating_add(dns_period), TimerKind::Dns);
                }
                if ntp && flow.c.port[resp] == NTP_PORT {
                    flow.app |= flow::APP_NTP;
                }
            }
        }
        let check = self.config.drop_bad_checksums;
        if let Some(Entry::Flow(flow)) = self.slots[slot as usize].as_mut() {
            let h = flow.c.host_of(&src, sport);
            flow.packet(h, ts, zts, frame, payload, ip_len, bad, check, true, hints);
        }
        slot
    }

    /// The slot of the UDP, ICMP or unknown-transport flow `key` (a packet from `from` to
    /// `to`, at `at`: its time, Zeek's time and frame): the table's, made the most recently
    /// active, or a new one, `from` its originator, with its inactivity timer (none for an
    /// `inactivity` of 0). True for a new one, whose protocol's first steps are the caller's.
    fn flow_slot(
        &mut self,
        key: Key,
        from: ([u8; 16], u16),
        to: ([u8; 16], u16),
        at: (i64, i64, i64),
        inactivity: i64,
        version: u8,
    ) -> (u32, bool) {
        if let Some(slot) = self.lookup(&key) {
            self.touch(slot);
            return (slot, false);
        }
        let (ts, zts, frame) = at;
        let c = Common::new(
            key.proto, from.0, from.1, to.0, to.1, ts, zts, frame, inactivity,
        );
        let slot = self.insert(key, Entry::Flow(Box::new(Flow::new(c))), ts, version, true);
        let (mut t, entry) = self.ctx(slot);
        if let (true, Some(c)) = (inactivity != 0, entry.ident()) {
            t.add(c, zts.saturating_add(inactivity), TimerKind::Inactivity);
        }
        (slot, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp(
        &mut self,
        p: &Packets<'_>,
        i: usize,
        src: [u8; 16],
        dst: [u8; 16],
        vlan: Option<i32>,
        version: u8,
        zts: i64,
        bad: bool,
    ) -> u32 {
        let l4 = p.l4[i];
        // Type and code are 0..=255 on the wire; a column value outside (-1, absent, never on
        // an ICMP row the decoder made) is clamped, so the key is what `key_of` computes.
        let wire = |v: i16| v.clamp(0, 255) as u16;
        let (oport, rport, one_way) =
            icmp_ports(wire(p.icmp_type[i]), wire(p.icmp_code[i]), l4 == 58);
        let key = Key::new(l4, vlan, (src, oport), (dst, rport), !one_way);
        let ts = p.ts_ns[i];
        let frame = p.frame[i];
        let inactivity = self.config.timeouts.icmp_inactivity;
        let at = (ts, zts, frame);
        let (slot, new) = self.flow_slot(key, (src, oport), (dst, rport), at, inactivity, version);
        let check = self.config.drop_bad_checksums;
        if let Some(Entry::Flow(flow)) = self.slots[slot as usize].as_mut() {
            if new {
                // Its type is orig's port; Zeek's resp_p cannot say the code.
                flow.icmp_code = p.icmp_code[i];
            }
            let h = flow.c.host_of(&src, oport);
            flow.packet(
                h,
                ts,
                zts,
                frame,
                i64::from(p.payload[i]),
                p.counted_ip_len(i),
                bad,
                check,
                !p.truncated[i],
                Hints::default(),
            );
        }
        slot
    }

    /// Zeek's UnknownIPTransportAnalyzer (§11): keyed by the address pair and the protocol
    /// with ports 0, the first packet's sender the originator (no flips), only packets and IP
    /// bytes counted.
    #[allow(clippy::too_many_arguments)]
    fn unknown(
        &mut self,
        p: &Packets<'_>,
        i: usize,
        src: [u8; 16],
        dst: [u8; 16],
        vlan: Option<i32>,
        version: u8,
        zts: i64,
    ) -> u32 {
        let proto = p.proto[i];
        let key = Key::new(proto, vlan, (src, 0), (dst, 0), true);
        let ts = p.ts_ns[i];
        let frame = p.frame[i];
        let inactivity = self.config.timeouts.unknown_ip_inactivity;
        let at = (ts, zts, frame);
        let (slot, _) = self.flow_slot(key, (src, 0), (dst, 0), at, inactivity, version);
        if let Some(Entry::Flow(flow)) = self.slots[slot as usize].as_mut() {
            let h = flow.c.host_of(&src, 0);
            let none = Hints::default();
            flow.packet(
                h,
                ts,
                zts,
                frame,
                0,
                p.counted_ip_len(i),
                false,
                false,
                true,
                none,
            );
        }
        slot
    }

    fn attach_icmp_error(&mut self, p: &Packets<'_>, i: usize, vlan: Option<i32>) {
        let key = Key::new(
            p.q_proto[i],
            vlan,
            (p.addr(p.q_src, i), p.q_sport[i]),
            (p.addr(p.q_dst, i), p.q_dport[i]),
            true,
        );
        if let Some(slot) = self.lookup(&key) {
            self.expand_at(slot); // a SynOnly keeps no extras
            let (t, c) = (p.icmp_type[i], p.icmp_code[i]);
            if let Some(id) = self.entry_at(slot).ident_mut() {
                id.extra().icmp_errors.push((t, c));
            }
        }
    }

    /// tunnel_parents, and Zeek's limit of 5 encapsulation changes ('X', §12). Inlined: on
    /// a packet without tunnel after its connection's first, nothing changes.
    #[inline(always)]
    fn encapsulation(&mut self, slot: u32, encap: Option<(u8, Uid)>) {
        let seen = match self.slots.get(slot as usize) {
            Some(Some(e)) => e.encap_seen(),
            _ => return,
        };
        if !seen || encap.is_some() {
            self.encapsulation_change(slot, seen, encap);
        }
    }

    #[inline(never)]
    fn encapsulation_change(&mut self, slot: u32, seen: bool, encap: Option<(u8, Uid)>) {
        if encap.is_some() {
            self.expand_at(slot); // a SynOnly keeps no tunnel parents
        }
        // A flow shard renames the uids a slot's tunnel parents take in the batch (shards.rs).
        let shard = self.births.is_some();
        let Some(Some(entry)) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if !seen {
            let c = match entry {
                Entry::Syn(s) => {
                    s.bits |= SynOnly::ENCAP_SEEN;
                    return;
                }
                Entry::Tcp(t) => &mut t.c.id,
                Entry::Flow(f) => &mut f.c.id,
            };
            c.encap_seen = true;
            if let Some(e) = encap {
                let x = c.extra();
                x.encap = Some(e);
                x.parents.push(e.1);
                if shard {
                    self.reparented.push(slot);
                }
            }
            return;
        }
        let Some(e) = encap else {
            return;
        };
        let c = match entry {
            Entry::Tcp(t) => &mut t.c,
            Entry::Flow(f) => &mut f.c,
            Entry::Syn(_) => return,
        };
        let current = c.extra.as_ref().and_then(|x| x.encap);
        if current != Some(e) {
            let x = c.id.extra();
            if x.encap_changes < 5 {
                x.encap_changes += 1;
                if !x.parents.contains(&e.1) {
                    x.parents.push(e.1);
                }
            } else if !c.history.contains(b'X') {
                c.history.push(b'X');
            }
            c.id.extra().encap = Some(e);
            if shard {
                self.reparented.push(slot);
            }
        }
    }
}

/// Which rows of a batch a tracker of one flow shard tracks (`Tracker::feed_shard`).
#[derive(Debug, Clone, Copy)]
pub struct ShardRows<'a> {
    /// The rows of the shard's flows; the others only move its clock.
    pub mine: &'a [bool],
    /// The rows whose quoted flow (an ICMP error's) is the shard's.
    pub quoted: &'a [bool],
}

/// What decides whether a tracker of every flow counts a row (and so moves its clock): the
/// same for every shard, so `Shards` works it out once a batch (`SplitPlan`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counting {
    pub drop_bad_checksums: bool,
    pub ignore_checksum_nets: Vec<Net>,
}

impl Counting {
    pub fn of(config: &Config) -> Self {
        Counting {
            drop_bad_checksums: config.drop_bad_checksums,
            ignore_checksum_nets: config.ignore_checksum_nets.clone(),
        }
    }

    fn ignored(&self, src: &[u8; 16]) -> bool {
        self.ignore_checksum_nets.iter().any(|n| n.contains(src))
    }

    /// Whether row `i` is a packet a tracker of every flow counts: `row`'s `used`, the usual
    /// row (untunnelled TCP, UDP or ICMP) without its other cases.
    #[inline(always)]
    fn used(&self, p: &Packets<'_>, i: usize, n: usize) -> bool {
        if p.tunnel_depth[i] > 0 || !matches!(p.l4[i], 6 | 17 | 1 | 58) {
            return self.row(p, i, n).used;
        }
        let used = p.ip_version[i] > 0 && p.frag[i] != FRAG_PART;
        if !self.drop_bad_checksums {
            return used;
        }
        let bad_ip = p.ip_csum[i] == CSUM_BAD && !self.ignored(&p.addr(p.src, i));
        used && !(bad_ip || p.ip_len_zero[i])
    }

    /// Whether row `i` is a packet a tracker of every flow counts, and why not.
    #[inline(always)]
    fn row(&self, p: &Packets<'_>, i: usize, n: usize) -> Counted {
        let drop = self.drop_bad_checksums;
        let l4 = p.l4[i];
        let depth = p.tunnel_depth[i];
        // A tunnelled packet with no transport inside (a Teredo bubble, an inner header
        // cut short) still counts on its carriers' UDP connections (§12); an IP-level
        // carrier (GRE, IP-in-IP) is no connection.
        let udp_carried = depth > 0
            && (p.out_proto[i] == 17
                || (depth > 1 && p.car_proto[i] == 17)
                || middle_carriers(p, i, n).any(|j| p.proto[j] == 17));
        // A packet of an IP protocol without a transport analyzer is Zeek's
        // unknown_transport connection (§11).
        let unknown = !matches!(l4, 6 | 17 | 1 | 58) && unknown_transport(p, i);
        let mut used = p.ip_version[i] > 0
            && (matches!(l4, 6 | 17 | 1 | 58) || udp_carried || unknown)
            && p.frag[i] != FRAG_PART;
        let src = p.addr(p.src, i);
        let bad_ip = drop && p.ip_csum[i] == CSUM_BAD && !self.ignored(&src);
        // Zeek validating checksums also drops an IPv4 header whose total length is 0
        // (TSO), whatever ignore_checksums_nets says (§1).
        used &= !(bad_ip || drop && p.ip_len_zero[i]);
        Counted {
            used,
            bad_ip,
            unknown,
        }
    }
}

/// The batch a tracker's rows are of, with what it was given to track them
/// (`Tracker::feed_rows`).
#[derive(Clone, Copy)]
struct Batch<'a> {
    p: &'a Packets<'a>,
    n: usize,
    shard: Option<ShardRows<'a>>,
    crossing: Option<Crossing<'a>>,
    /// Packets with bad checksums are not counted (`Config::drop_bad_checksums`).
    drop: bool,
}

/// What `Shards` works out once a batch for its shards' trackers (`Tracker::pass`).
#[derive(Debug, Default)]
pub(crate) struct Passing<'a> {
    /// The rows a shard looks at one by one, in order: its own, and of the others' those
    /// that are more than a clock to it (tunnelled, an A-MSDU subframe or middle carrier, an
    /// ICMP error quoting one of its flows).
    pub visit: &'a [u32],
    /// Per row: the latest Zeek time of the counted rows up to it (`i64::MIN`: none), which
    /// is every shard's clock after that row, as each counts the same rows.
    pub clock: &'a [i64],
    /// Per row: the last counted row up to it (`NONE_COUNTED`: none).
    pub last: &'a [u32],
}

/// `Passing::last` of a row with no counted row up to it.
pub(crate) const NONE_COUNTED: u32 = u32::MAX;

/// Whether a tracker of every flow counts a row (`Tracker::counted`).
#[derive(Debug, Clone, Copy)]
struct Counted {
    used: bool,
    /// Dropped for its IPv4 header checksum (counted among the skipped frames' reasons).
    bad_ip: bool,
    /// Zeek's unknown_transport connection (§11).
    unknown: bool,
}

/// A connection created by a tracker of one of `Shards`' threads in the current batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Birth {
    /// The batch row that created it, and its level in the row's tunnels: one run creates
    /// in row order, a row's carriers outermost first, then what they carry.
    pub row: u32,
    pub level: u8,
    pub slot: u32,
    /// Its serial in its shard (the shards' serials go on from one run's count).
    pub serial: u64,
    ts: i64,
    key: Key,
}

/// Row `i` is an ICMP error quoting a TCP or UDP flow, which it is attached to (Zeek's
/// icmp_errors are per connection).
fn quotes_a_flow(p: &Packets<'_>, i: usize) -> bool {
    matches!(p.l4[i], 1 | 58) && p.q_valid[i] && matches!(p.q_proto[i], 6 | 17)
}

/// A flow's uid from its serial, first time and table key.
/// The rows of the middle carriers of row `i` (outermost first): the `SUB_CARRIER` rows
/// right after it.
fn middle_carriers<'p>(p: &'p Packets<'_>, i: usize, n: usize) -> impl Iterator<Item = usize> + 'p {
    (i + 1..n).take_while(move |&j| p.sub[j] == SUB_CARRIER)
}

/// Makes the uids of flows (`flow_uid_of`), with the text's buffer. In a flow shard
/// (`Shards`), a connection born in the batch being tracked is numbered by the shard alone
/// until the batch is done, and `Shards::rename` gives it the run's serial and the uid made
/// from that: until then it holds a stand-in (`provisional_uid`), so the BLAKE2 of its uid
/// is computed once, as in one tracker, not twice.
#[derive(Debug, Default)]
pub(crate) struct UidMaker {
    pub(crate) scratch: Vec<u8>,
    /// A flow shard's serials above this are the current batch's, not yet the run's.
    pub(crate) provisional_after: Option<u64>,
    /// The flow shard's number, in its stand-ins: another shard's carrier may be named by
    /// one (carriers.rs).
    pub(crate) shard: u16,
}

impl UidMaker {
    fn flow(&mut self, serial: u64, ts: i64, key: &Key) -> Uid {
        match self.provisional_after {
            Some(base) if serial > base => provisional_uid(self.shard, serial),
            _ => flow_uid_of(&mut self.scratch, serial, ts, key),
        }
    }
}

/// A flow shard's stand-in uid for its serial: 0xFF is no base-62 digit, so it is never a
/// real uid, and it names the connection until `Shards::rename` (tunnel parents).
pub(crate) fn provisional_uid(shard: u16, serial: u64) -> Uid {
    let mut uid = [0xFF; 17];
    uid[..8].copy_from_slice(&serial.to_le_bytes());
    uid[8..10].copy_from_slice(&shard.to_le_bytes());
    uid
}

/// A stand-in (`provisional_uid`), not a uid.
pub(crate) fn is_provisional(uid: &Uid) -> bool {
    uid[10..] == [0xFF; 7]
}

fn flow_uid_of(scratch: &mut Vec<u8>, serial: u64, ts: i64, key: &Key) -> Uid {
    ids::flow_uid(
        scratch,
        serial,
        ts,
        key.proto,
        key.vlan(),
        (&key.a, key.pa),
        (&key.b, key.pb),
    )
}

/// (orig_p, resp_p, one_way) for an ICMP message, as Zeek fills conn_id.
/// IP protocols whose packets never make an unknown_transport connection (track/tracker.py
/// NO_CONNECTION_PROTOS): the transports Zeek analyzes, the tunnels its IP analyzer hands to the
/// IPTunnel and GRE analyzers, ESP and the IPv6 mobility header (IPAnalyzer::AnalyzePacket
/// stops at them), and IPv6's no-next-header.
pub const NO_CONNECTION_PROTOS: [u8; 10] = [1, 6, 17, 58, 4, 41, 47, 50, 59, 135];

/// Row `i` is a Zeek unknown_transport packet (§11): a whole IP packet of a protocol in none of
/// NO_CONNECTION_PROTOS.
fn unknown_transport(p: &Packets<'_>, i: usize) -> bool {
    p.ip_version[i] > 0
        && p.l4[i] == 0
        && p.malformed[i] == 0
        && !NO_CONNECTION_PROTOS.contains(&p.proto[i])
}

pub fn icmp_ports(icmp_type: u16, code: u16, v6: bool) -> (u16, u16, bool) {
    let counterpart = if v6 {
        match icmp_type {
            128 => Some(129),
            129 => Some(128),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            130 => Some(131),
            131 => Some(130),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            10 => Some(9),
            9 => Some(10),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        }
    };
    match counterpart {
        Some(c) => (icmp_type, c, false),
        None => (icmp_type, code, true),
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Per-flow state today (bytes, 64-bit): a guard so it does not grow unnoticed. Each
    /// entry is a slot (a boxed state, its key computed from it), its LRU links (8 bytes)
    /// and 4 bytes in the hash table; a SynOnly also one timer (docs/benchmarks.md: about 190
    /// bytes an open SYN-only flow in all).
    #[test]
    fn per_flow_state_stays_within_its_current_size() {
        eprintln!(
            "slot {} SynOnly {} Flow {} TcpConn {} Timer {}",
            std::mem::size_of::<Option<Entry>>(),
            std::mem::size_of::<SynOnly>(),
            std::mem::size_of::<Flow>(),
            std::mem::size_of::<TcpConn>(),
            std::mem::size_of::<Timer>(),
        );
        assert!(std::mem::size_of::<Option<Entry>>() <= 16);
        // 88 bytes: malloc gives 96 (104 and 96 bytes, before its LRU links moved beside the
        // slots and its timer's index into `bits`, took 112).
        assert!(std::mem::size_of::<SynOnly>() <= 88);
        assert!(std::mem::size_of::<Flow>() <= 256);
        assert!(std::mem::size_of::<TcpConn>() <= 768);
        assert!(std::mem::size_of::<Timer>() <= 24);
    }
}

#[cfg(test)]
mod timer_tests {
    use super::*;

    /// The wheel hands out the timers one binary heap of them all would, in its order: timers
    /// already due, in this second, in the wheel, past it; clock steps small and huge; timers
    /// dropped by `retain` in between.
    #[test]
    fn the_wheel_pops_what_one_heap_pops() {
        const S: i64 = 1_000_000_000;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..20 {
            let (mut wheel, mut heap) = (TimerHeap::default(), BinaryHeap::new());
            let mut now = 1_700_000_000 * S + round * 123_456_789;
            let (mut popped, mut seq) = (0, 0u64);
            for _ in 0..20_000 {
                match rand(100) {
                    0..=59 => {
                        let ahead = match rand(6) {
                            0 => -(rand(3 * S as u64) as i64),    // due already
                            1 => rand(S as u64) as i64,           // this second
                            2 | 3 => rand(600 * S as u64) as i64, // in the wheel
                            4 => (rand(5) * S as u64) as i64,     // on a bucket's edge
                            _ => rand(5000 * S as u64) as i64,    // past it
                        };
                        seq += 1;
                        let t = Timer {
                            deadline: now.saturating_add(ahead),
                            seq_kind: (seq << 8) | rand(7),
                            slot: rand(50) as u32,
                            gen: rand(4) as u32,
                        };
                        wheel.push(t);
                        heap.push(Reverse(t));
                    }
                    60..=94 => {
                        now += match rand(10) {
                            0 => (rand(3000) * S as u64) as i64, // a jump past the wheel
                            1..=3 => rand(5 * S as u64) as i64,
                            _ => rand(S as u64 / 10) as i64,
                        };
                        assert_eq!(
                            wheel.any_due(now),
                            heap.peek()
                                .is_some_and(|Reverse(t): &Reverse<Timer>| t.deadline <= now)
                        );
                        loop {
                            let expected = match heap.peek() {
                                Some(Reverse(t)) if t.deadline <= now => heap.pop().map(|r| r.0),
                                _ => None,
                            };
                            assert_eq!(wheel.pop_due(now), expected);
                            if expected.is_none() {
                                break;
                            }
                            popped += 1;
                        }
                    }
                    _ => {
                        let gone = rand(50) as u32;
                        wheel.retain(|t| t.slot != gone);
                        heap.retain(|Reverse(t)| t.slot != gone);
                    }
                }
                assert_eq!(wheel.len(), heap.len());
            }
            assert!(popped > 1000, "round {round}: {popped} popped");
        }
    }
}

#[cfg(test)]
mod tracker_tests {
    use super::*;

    /// Packet columns owned by the test, one TCP segment a row.
    #[derive(Default, Clone)]
    struct Rows {
        frame: Vec<i64>,
        ts_ns: Vec<i64>,
        vlan: Vec<i32>,
        ip_version: Vec<u8>,
        src: Vec<u8>,
        dst: Vec<u8>,
        proto: Vec<u8>,
        ip_len: Vec<u32>,
        frag: Vec<u8>,
        sport: Vec<u16>,
        dport: Vec<u16>,
        payload: Vec<i32>,
        tcp_flags: Vec<u16>,
        seq: Vec<u32>,
        ack: Vec<u32>,
        win: Vec<u16>,
        mss: Vec<i32>,
        wscale: Vec<i16>,
        flags_b: Vec<bool>,
        opt_count: Vec<u8>,
        opt_kinds: Vec<u8>,
        u16_zero: Vec<u16>,
        i16_none: Vec<i16>,
        u8_zero: Vec<u8>,
        u32_zero: Vec<u32>,
        addr_zero: Vec<u8>,
        tunnel_depth: Vec<u8>,
        tunnel: Vec<u32>,
        /// The outermost carrier, then the innermost (`out_*`, `car_*`).
        carriers: [CarrierRows; 2],
        /// The frame number before this batch's first.
        first: i64,
    }

    /// The columns of one level of carriers.
    #[derive(Default, Clone)]
    struct CarrierRows {
        src: Vec<u8>,
        dst: Vec<u8>,
        proto: Vec<u8>,
        sport: Vec<u16>,
        dport: Vec<u16>,
        ip_len: Vec<u32>,
    }

    /// A tunnel carrier: from, to, IP protocol (17 UDP, 47 GRE).
    type Carrier = (([u8; 16], u16), ([u8; 16], u16), u8);

    /// 10.0.0.`last`.
    fn v4(last: u8) -> [u8; 16] {
        crate::testing::v4([10, 0, 0, last])
    }

    impl Rows {
        #[allow(clippy::too_many_arguments)]
        fn tcp(
            &mut self,
            ts_us: i64,
            from: ([u8; 16], u16),
            to: ([u8; 16], u16),
            flags: u16,
            seq: u32,
            ack: u32,
            payload: i32,
        ) {
            self.frame.push(self.first + self.frame.len() as i64 + 1);
            self.ts_ns
                .push(1_700_000_000_000_000_000_i64.saturating_add(ts_us.saturating_mul(1000)));
            self.vlan.push(-1);
            self.ip_version.push(4);
            self.src.extend_from_slice(&from.0);
            self.dst.extend_from_slice(&to.0);
            self.proto.push(6);
            self.ip_len.push(40u32.wrapping_add(payload as u32));
            self.frag.push(0);
            self.sport.push(from.1);
            self.dport.push(to.1);
            self.payload.push(payload);
            self.tcp_flags.push(flags);
            self.seq.push(seq);
            self.ack.push(ack);
            self.win.push(65535);
            self.mss.push(if flags & SYN != 0 { 1460 } else { -1 });
            self.wscale.push(if flags & SYN != 0 { 7 } else { -1 });
            self.flags_b.push(false);
            self.opt_count.push(if flags & SYN != 0 { 2 } else { 0 });
            let mut kinds = [0u8; 40];
            kinds[0] = 2;
            kinds[1] = 3;
            self.opt_kinds.extend_from_slice(&kinds);
            self.u16_zero.push(0);
            self.i16_none.push(-1);
            self.u8_zero.push(0);
            self.u32_zero.push(0);
            self.addr_zero.extend_from_slice(&[0u8; 16]);
            self.tunnel_depth.push(0);
            self.tunnel.push(0);
            for c in &mut self.carriers {
                c.src.extend_from_slice(&[0u8; 16]);
                c.dst.extend_from_slice(&[0u8; 16]);
                c.proto.push(0);
                c.sport.push(0);
                c.dport.push(0);
                c.ip_len.push(0);
            }
        }

        /// The last row came through `carriers`, outermost first (one or two).
        fn tunnel_last(&mut self, carriers: &[Carrier]) {
            let (Some(&inner), Some(depth)) = (self.ip_len.last(), self.tunnel_depth.last_mut())
            else {
                return;
            };
            *depth = carriers.len() as u8;
            let mut kinds = 0u32;
            let mut ip_len = inner;
            // innermost first, for the lengths; the second level is `car_*`
            for (level, &(from, to, proto)) in carriers.iter().enumerate().rev() {
                ip_len += if proto == 17 {
                    20 + 8 + 8 + 14
                } else {
                    20 + 4 + 14
                };
                kinds |= if proto == 17 { 1 } else { 2 };
                let c = &mut self.carriers[level];
                let at = c.proto.len() - 1;
                c.src[at * 16..][..16].copy_from_slice(&from.0);
                c.dst[at * 16..][..16].copy_from_slice(&to.0);
                (c.proto[at], c.sport[at], c.dport[at]) = (proto, from.1, to.1);
                c.ip_len[at] = ip_len;
            }
            if let Some(t) = self.tunnel.last_mut() {
                *t = kinds;
            }
        }

        fn packets(&self) -> Packets<'_> {
            Packets {
                frame: &self.frame,
                ts_ns: &self.ts_ns,
                wirelen: &self.ip_len,
                caplen: &self.ip_len,
                linktype: &self.u16_zero,
                interface: &self.u16_zero,
                vlan: &self.vlan,
                ethertype: &self.u16_zero,
                ppp_proto: &self.u16_zero,
                ip_version: &self.ip_version,
                src: &self.src,
                dst: &self.dst,
                proto: &self.proto,
                ip_len: &self.ip_len,
                ip_len_zero: &self.flags_b,
                frag: &self.frag,
                l4: &self.proto,
                sport: &self.sport,
                dport: &self.dport,
                payload: &self.payload,
                tcp_flags: &self.tcp_flags,
                seq: &self.seq,
                ack: &self.ack,
                win: &self.win,
                mss: &self.mss,
                wscale: &self.wscale,
                sack_perm: &self.flags_b,
                has_ts: &self.flags_b,
                tsval: &self.u32_zero,
                opt_count: &self.opt_count,
                opt_kinds: &self.opt_kinds,
                udp_len: &self.u16_zero,
                dns_qr: &self.i16_none,
                ntp_mode: &self.i16_none,
                icmp_type: &self.i16_none,
                icmp_code: &self.i16_none,
                q_valid: &self.flags_b,
                q_src: &self.addr_zero,
                q_dst: &self.addr_zero,
                q_proto: &self.u8_zero,
                q_sport: &self.u16_zero,
                q_dport: &self.u16_zero,
                sub: &self.u8_zero,
                tunnel_depth: &self.tunnel_depth,
                tunnel: &self.tunnel,
                out_src: &self.carriers[0].src,
                out_dst: &self.carriers[0].dst,
                out_proto: &self.carriers[0].proto,
                out_sport: &self.carriers[0].sport,
                out_dport: &self.carriers[0].dport,
                out_ip_len: &self.carriers[0].ip_len,
                car_src: &self.carriers[1].src,
                car_dst: &self.carriers[1].dst,
                car_proto: &self.carriers[1].proto,
                car_sport: &self.carriers[1].sport,
                car_dport: &self.carriers[1].dport,
                car_ip_len: &self.carriers[1].ip_len,
                truncated: &self.flags_b,
                ip_csum: &self.u8_zero,
                l4_csum: &self.u8_zero,
                malformed: &self.u8_zero,
            }
        }
    }

    const FA: u16 = tcp::FIN | ACK;
    const PA: u16 = 0x08 | ACK;

    #[test]
    fn a_shard_ends_its_connections_where_one_tracker_of_everything_does() {
        // Two unanswered SYNs of two host pairs, then, 100 s later, a packet of a third:
        // their attempt timers fire before that packet (frame 3), in creation order.
        let mut r = Rows::default();
        r.tcp(0, (v4(9), 50000), (v4(3), 22), SYN, 7, 0, 0);
        r.tcp(1_000_000, (v4(8), 50001), (v4(4), 22), SYN, 7, 0, 0); // µs
        r.tcp(100_000_000, (v4(7), 50002), (v4(5), 22), SYN, 7, 0, 0);
        let mut one = Tracker::new(Config::default());
        one.feed(&r.packets()).unwrap();
        let b = one.ended.take();
        assert_eq!(b.orig_p, [50000, 50001]);
        assert_eq!(
            (b.end_frame, b.end_phase),
            (vec![3, 3], vec![END_TIMERS; 2])
        );
        // A shard holding the second flow only: the other rows move its clock, so its
        // connection ends at the same place (alone, it would wait for the end of capture).
        let mut shard = Tracker::new(Config::default());
        let mine = [false, true, false];
        shard
            .feed_shard(
                &r.packets(),
                Some(ShardRows {
                    mine: &mine,
                    quoted: &mine,
                }),
            )
            .unwrap();
        let b = shard.ended.take();
        assert_eq!(b.orig_p, [50001]);
        assert_eq!((b.end_frame, b.end_phase), (vec![3], vec![END_TIMERS]));
        assert_eq!((shard.packets_tracked, shard.packets_skipped), (1, 0));
        assert_eq!(shard.take_created(), [2]);
        assert!(one.take_created().is_empty());
        assert!(shard
            .feed_shard(
                &r.packets(),
                Some(ShardRows {
                    mine: &[true],
                    quoted: &[true],
                })
            )
            .is_err_and(|e| e.to_string().contains("column mine has 1 rows")));
        // a split of another batch (`Shards` checks it is the batch's own)
        let (clock, last) = ([i64::MIN], [NONE_COUNTED]);
        let split = Passing {
            visit: &[],
            clock: &clock,
            last: &last,
        };
        let rows = Some(ShardRows {
            mine: &mine,
            quoted: &mine,
        });
        assert!(shard
            .feed_rows(&r.packets(), rows, None, Some(&split))
            .is_err_and(|e| e
                .to_string()
                .contains("the split is of 1 rows, the batch 3")));
        shard.finish();
        assert!(shard.ended.is_empty());
    }

    /// A segment to make: time (µs), from, to, flags, seq, ack, payload length.
    type Seg = (i64, ([u8; 16], u16), ([u8; 16], u16), u16, u32, u32, i32);

    /// Random TCP traffic between a few hosts: handshakes answered, refused and left
    /// unanswered, data, FIN and RST from either side, ports reused, pauses that fire timers.
    fn random_traffic(seed: u64, packets: usize) -> Vec<Seg> {
        let mut rng = Lcg(seed);
        let mut out = Vec::new();
        let mut t = 0i64;
        while out.len() < packets {
            t += if rng.next() % 50 == 0 {
                400_000_000
            } else {
                (rng.next() % 2000) as i64
            };
            let c = (
                v4(1 + (rng.next() % 6) as u8),
                40000 + (rng.next() % 8) as u16,
            );
            let s = (
                v4(100 + (rng.next() % 3) as u8),
                [22, 80, 443][(rng.next() % 3) as usize],
            );
            let (ci, si) = (
                (rng.next() % 1000) as u32 * 1000,
                (rng.next() % 1000) as u32 * 1000,
            );
            out.push((t, c, s, SYN, ci, 0, 0));
            match rng.next() % 6 {
                0 => {}                                                     // unanswered
                1 => out.push((t + 5, s, c, tcp::RST | ACK, 0, ci + 1, 0)), // refused
                _ => {
                    out.push((t + 5, s, c, SYN | ACK, si, ci + 1, 0));
                    out.push((t + 9, c, s, ACK, ci + 1, si + 1, 0));
                    let n = (rng.next() % 40) as u32;
                    out.push((t + 12, c, s, PA, ci + 1, si + 1, n as i32));
                    out.push((t + 15, s, c, PA, si + 1, ci + 1 + n, 100));
                    match rng.next() % 4 {
                        0 => {} // left open
                        1 => out.push((t + 20, s, c, tcp::RST, si + 101, 0, 0)),
                        _ => {
                            out.push((t + 20, c, s, FA, ci + 1 + n, si + 101, 0));
                            out.push((t + 25, s, c, FA, si + 101, ci + 2 + n, 0));
                            out.push((t + 30, c, s, ACK, ci + 2 + n, si + 102, 0));
                        }
                    }
                }
            }
        }
        out.sort_by_key(|p| p.0);
        out
    }

    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// A batch of `Rows` shared with a helping thread, with its split.
    struct HelpedRows {
        rows: Rows,
        split: shards::SplitPlan,
    }

    impl shards::SharedBatch for HelpedRows {
        fn packets(&self) -> Packets<'_> {
            self.rows.packets()
        }

        fn split(&self) -> &shards::SplitPlan {
            &self.split
        }
    }

    /// What a run hands out, as text: every column of every row in order, and each
    /// connection's transitions (the shards' streams interleave differently).
    fn run_text(
        batches: &[Rows],
        mut feed: impl FnMut(&Rows),
        mut take: impl FnMut() -> (ConnBatch, TransitionBatch),
        finish: impl FnOnce() -> (ConnBatch, TransitionBatch),
    ) -> (String, Vec<(u64, String)>) {
        let mut rows = String::new();
        let mut transitions = Vec::new();
        let mut keep = |(c, t): (ConnBatch, TransitionBatch)| {
            rows.push_str(&format!("{c:?}"));
            for i in 0..t.len() {
                transitions.push((
                    t.serial[i],
                    format!(
                        "{:?} {} {} {} {} {} {}",
                        t.uid[i], t.ts_ns[i], t.frame[i], t.host[i], t.event[i], t.from[i], t.to[i]
                    ),
                ));
            }
        };
        for b in batches {
            feed(b);
            keep(take());
        }
        keep(finish());
        transitions.sort_by_key(|(s, _)| *s); // stable: each connection's in its order
        (rows, transitions)
    }

    /// Cuts `traffic` into batches of uneven sizes, so that connections span them; `tunnel`
    /// may wrap each row in carriers.
    fn uneven_batches(traffic: &[Seg], seed: u64, mut tunnel: impl FnMut(&mut Rows)) -> Vec<Rows> {
        let mut batches = Vec::new();
        let mut at = 0usize;
        let mut rng = Lcg(seed * 77);
        while at < traffic.len() {
            let n = (1 + rng.next() % 400) as usize;
            let mut r = Rows {
                first: at as i64,
                ..Rows::default()
            };
            for &(t, from, to, flags, seq, ack, len) in traffic.iter().skip(at).take(n) {
                r.tcp(t, from, to, flags, seq, ack, len);
                tunnel(&mut r);
            }
            at += n;
            batches.push(r);
        }
        batches
    }

    /// After each packet, the Expire view of every slot is what its entry says
    /// (`TcpConn::expire_view` for a TCP connection, None for anything else or nothing):
    /// run_timers reads the view instead of the connection, so a change the view missed would
    /// fire an Expire timer differently from the connection's own rule.
    #[test]
    fn every_slots_expire_view_is_its_entrys_after_each_packet() {
        let mut t = Tracker::new(Config::default());
        let (mut active, mut cancelled) = (0, 0);
        for (k, &(ts, from, to, flags, seq, ack, len)) in random_traffic(7, 3000).iter().enumerate()
        {
            let mut r = Rows {
                first: k as i64,
                ..Rows::default()
            };
            r.tcp(ts, from, to, flags, seq, ack, len);
            t.feed(&r.packets()).unwrap();
            assert_eq!(t.views.len(), t.slots.len());
            for (slot, view) in t.slots.iter().zip(&t.views) {
                let entry = match slot {
                    Some(Entry::Tcp(conn)) => Some(conn.expire_view()),
                    _ => None,
                };
                assert_eq!(*view, entry, "packet {k}");
                if let Some(v) = view {
                    active += usize::from(v.is_active && !v.cancelled);
                    cancelled += usize::from(v.cancelled);
                }
            }
        }
        assert!(active > 1000 && cancelled > 100, "{active} {cancelled}");
        assert!(
            t.ended.len() > 200,
            "timers ended connections along the way"
        );
    }

    /// Flow shards in threads give one tracker's rows and transitions, in its order, with
    /// 1 to 5 shards, the end of the capture at once or in parts (as Python takes it).
    /// Returns one tracker's rows' (tunnel_parents, resp_p, history).
    fn assert_shards_give_one_trackers(
        batches: &[Rows],
        label: &str,
    ) -> Vec<(Vec<Uid>, i32, String)> {
        let config = Config {
            max_flows: 1000,
            ..Config::default()
        };
        let one = std::cell::RefCell::new(Tracker::new(config.clone()));
        let all = std::cell::RefCell::new(Vec::new());
        let keep = |(c, t): (ConnBatch, TransitionBatch)| {
            all.borrow_mut().extend((0..c.len()).map(|i| {
                (
                    c.tunnel_parents[i].clone(),
                    i32::from(c.resp_p[i]),
                    c.history[i].clone(),
                )
            }));
            (c, t)
        };
        let expected = run_text(
            batches,
            |b| one.borrow_mut().feed(&b.packets()).unwrap(),
            || {
                let mut t = one.borrow_mut();
                keep((t.ended.take(), t.transitions.take()))
            },
            || {
                let mut t = one.borrow_mut();
                t.finish();
                keep((t.ended.take(), t.transitions.take()))
            },
        );
        assert!(expected.0.matches("uid").count() > 0);
        // (shards, rows a part of `finish_part`, threads kept for the run, the shards that
        // the batches come split for, as the reading thread splits them: None, not split;
        // the second shard offered to a helping thread (`feed_helped`), which takes every
        // job, or to none, so that this thread tracks it too)
        for (n, part, pool, made_for, help) in [
            (1, Some(3), true, None, None),
            (2, None, true, None, None),
            (2, None, true, Some(2), None),
            (2, None, false, None, None),
            (2, Some(1), true, Some(3), None), // split for others: split again
            (3, Some(7), true, Some(3), None),
            (5, None, true, Some(5), None),
            (5, None, false, None, None),
            (2, None, true, Some(2), Some(true)),
            (2, Some(5), true, Some(2), Some(false)),
            (2, None, true, Some(3), Some(true)), // split for others: not helped
            (3, None, false, Some(3), Some(true)),
        ] {
            let mut shards = shards::Shards::new(config.clone(), n);
            if !pool {
                shards.start_threads_each_batch();
            }
            if help == Some(true) {
                shards.wait_for_help(std::time::Duration::from_secs(60));
            }
            let hand = std::sync::Arc::new(crate::hand::Hand::default());
            let helper = (help == Some(true)).then(|| {
                let hand = std::sync::Arc::clone(&hand);
                std::thread::spawn(move || {
                    let (mut seen, mut ran) = (0, 0);
                    while let crate::hand::Wake::Job(job) = hand.wait(&mut seen) {
                        job();
                        ran += 1;
                    }
                    ran
                })
            });
            let shards = std::cell::RefCell::new(shards);
            let mut plan = shards::SplitPlan::default();
            let spec = made_for.map(|k| shards::SplitSpec {
                shards: k,
                counting: Counting::of(&config),
            });
            let mut offered = 0;
            let got = run_text(
                batches,
                |b| {
                    let p = &b.packets();
                    let made = spec.as_ref().map(|spec| {
                        plan.make(p, spec).unwrap();
                        &plan
                    });
                    let mut s = shards.borrow_mut();
                    match (help, made) {
                        (Some(_), Some(made)) => {
                            let shared = std::sync::Arc::new(HelpedRows {
                                rows: b.clone(),
                                split: made.clone(),
                            });
                            s.feed_helped(&shared, &hand).unwrap();
                            let helped =
                                made_for == Some(n) && b.tunnel_depth.iter().all(|&d| d == 0);
                            offered += usize::from(helped);
                            assert!(
                                std::sync::Arc::into_inner(shared).is_some(),
                                "the batch is the caller's again"
                            );
                        }
                        (_, made) => s.feed_split(p, made).unwrap(),
                    }
                },
                || {
                    let mut s = shards.borrow_mut();
                    // row by row from the parts (conn.log lines) as in the batch merged
                    let parts = s.take_ended_parts();
                    let by_row: Vec<(Uid, i64)> = parts
                        .rows()
                        .map(|(b, i)| (b.uid[i], b.end_frame[i]))
                        .collect();
                    let merged = parts.merged();
                    let uids = merged
                        .uid
                        .iter()
                        .copied()
                        .zip(merged.end_frame.iter().copied());
                    assert_eq!(by_row, uids.collect::<Vec<_>>());
                    (merged, s.take_transitions())
                },
                || {
                    let mut s = shards.borrow_mut();
                    let Some(limit) = part else {
                        s.finish();
                        return (s.take_ended(), s.take_transitions());
                    };
                    let (mut rows, mut transitions) =
                        (ConnBatch::default(), TransitionBatch::default());
                    let mut parts = 0;
                    while parts == 0 || s.open_flows() > 0 {
                        s.finish_part(limit);
                        let ended = s.take_ended();
                        assert!(ended.len() <= limit, "a part of at most {limit} rows");
                        rows.append(ended);
                        transitions.append(s.take_transitions());
                        parts += 1;
                    }
                    assert!(parts > 1 || rows.len() <= limit);
                    (rows, transitions)
                },
            );
            hand.close();
            if let Some(helper) = helper {
                let ran = helper.join().expect("the helper ran its jobs");
                assert_eq!(ran, offered, "{label}: every job offered is taken");
            }
            assert!(
                got.0 == expected.0,
                "{label}, {n} shards ({pool}, split for {made_for:?}, helped {help:?}): the rows differ"
            );
            assert!(
                got.1 == expected.1,
                "{label}, {n} shards: the transitions differ"
            );
            let s = shards.borrow();
            let t = one.borrow();
            assert_eq!(
                (s.packets_tracked(), s.packets_skipped(), s.evicted()),
                (t.packets_tracked, t.packets_skipped, t.evicted)
            );
        }
        all.into_inner()
    }

    #[test]
    fn shards_in_threads_give_one_trackers_rows() {
        for seed in 1..=6u64 {
            let batches = uneven_batches(&random_traffic(seed, 3000), seed, |_| {});
            assert_shards_give_one_trackers(&batches, &format!("seed {seed}"));
        }
    }

    #[test]
    fn a_host_pair_has_one_shard_both_ways_and_the_pairs_spread_evenly() {
        // Clients numbered in a row, as a capture's hosts are, to a few servers, IPv4 and
        // IPv6: the shares of n shards are within a fifth of even.
        let v6 = |k: u16| {
            let mut a = [0u8; 16];
            a[..2].copy_from_slice(&[0x20, 0x01]);
            a[14..].copy_from_slice(&k.to_be_bytes());
            a
        };
        let mut pairs = Vec::new();
        for c in 1..=200u16 {
            for s in 0..5u8 {
                let client = crate::testing::v4([10, 0, (c >> 8) as u8, c as u8]);
                pairs.push((client, crate::testing::v4([192, 168, 1, s])));
                pairs.push((v6(c), v6(0xff00 + u16::from(s))));
            }
        }
        for n in [2, 3, 5, 8] {
            let mut share = vec![0usize; n];
            for (a, b) in &pairs {
                let k = shards::shard_of(a, b, n);
                assert_eq!(k, shards::shard_of(b, a, n));
                share[k] += 1;
            }
            let even = pairs.len() / n;
            assert!(
                share.iter().all(|&s| s.abs_diff(even) * 5 <= even),
                "{n} shards: {share:?}"
            );
        }
    }

    #[test]
    fn a_shard_waits_again_for_a_carrier_that_its_other_packets_may_have_ended() {
        // A TCP flow in VXLAN whose carrier is the other shard's. Between two of its packets
        // 3 s apart, a datagram of the carrier's 5-tuple outside the tunnel, stamped 58 s
        // earlier, moves the carrier's last packet back: its inactivity timer, re-armed at
        // 61 s, ends it, and the next packet makes a new carrier, a second tunnel parent. A
        // shard that took the carrier for the same because the clock is 3 s past the last
        // packet it saw would name the old one.
        let (c, s) = ((v4(1), 40000), (v4(2), 80));
        let inner = shards::shard_of(&c.0, &s.0, 2);
        let vtep = (100u8..)
            .map(|k| (v4(k), v4(k + 100)))
            .find(|(a, b)| shards::shard_of(a, b, 2) != inner)
            .expect("a pair of endpoints in the other shard");
        let vxlan: Carrier = ((vtep.0, 49152), (vtep.1, 4789), 17);
        let (x, y) = ((v4(7), 1000), (v4(8), 2000)); // another flow: only the clock
        let mut r = Rows::default();
        r.tcp(0, c, s, ACK, 1001, 0, 0); // mid-stream: no attempt timer
        r.tunnel_last(&[vxlan]);
        r.tcp(59_000_000, c, s, ACK, 1001, 0, 0);
        r.tunnel_last(&[vxlan]);
        r.tcp(1_000_000, (vtep.0, 49152), (vtep.1, 4789), 0, 0, 0, 0);
        if let (Some(proto), Some(flags)) = (r.proto.last_mut(), r.tcp_flags.last_mut()) {
            (*proto, *flags) = (17, 0); // the datagram outside the tunnel
        }
        r.tcp(60_500_000, x, y, SYN, 1, 0, 0);
        r.tcp(61_500_000, x, y, SYN, 1, 0, 0);
        r.tcp(62_000_000, c, s, ACK, 1001, 0, 0);
        r.tunnel_last(&[vxlan]);
        let rows = assert_shards_give_one_trackers(&[r], "a carrier's other packets");
        let flow = rows.iter().find(|row| row.1 == 80).expect("the TCP flow");
        assert_eq!(flow.0.len(), 2, "two carriers, one after the other");
        assert_eq!(rows.iter().filter(|row| row.1 == 80).count(), 1);
        assert_eq!(rows.iter().filter(|row| row.1 == 4789).count(), 2);
    }

    #[test]
    fn shards_give_one_trackers_rows_when_flows_move_between_tunnels() {
        // The same inner flows come through VXLAN, GRE, and VXLAN in GRE or in VXLAN between
        // many pairs of tunnel endpoints, changing tunnel from packet to packet: the inner
        // flows and the UDP carriers fall in different shards, the carriers' uids cross
        // (tunnel_parents), and past five changes a connection's history takes an 'X'.
        let endpoint = |k: u64| (v4(100 + (k % 13) as u8), 40000 + (k % 5) as u16);
        let vtep = |k: u64| (v4(200 + (k % 11) as u8), 4789);
        for seed in 1..=4u64 {
            let mut rng = Lcg(seed * 991);
            let batches = uneven_batches(&random_traffic(seed, 3000), seed, |r| {
                let (a, b, c) = (rng.next(), rng.next(), rng.next());
                let vxlan: Carrier = (endpoint(a), vtep(b), 17);
                let gre: Carrier = (
                    (v4(150 + (b % 7) as u8), 0),
                    (v4(160 + (c % 3) as u8), 0),
                    47,
                );
                let outer_vxlan: Carrier = (endpoint(c), vtep(a), 17);
                match a % 6 {
                    0 => {}
                    1 | 2 => r.tunnel_last(&[vxlan]),
                    3 => r.tunnel_last(&[gre]),
                    4 => r.tunnel_last(&[gre, vxlan]),
                    _ => r.tunnel_last(&[outer_vxlan, vxlan]),
                }
            });
            let rows = assert_shards_give_one_trackers(&batches, &format!("tunnels, seed {seed}"));
            // What the test is for happened: carriers named as parents, some of them UDP
            // connections, and more than five changes of tunnel.
            let parents = rows.iter().filter(|r| r.0.len() > 1).count();
            let carriers = rows.iter().filter(|r| r.1 == 4789).count();
            let x = rows.iter().filter(|r| r.2.contains('X')).count();
            assert!(
                parents > 10 && carriers > 10 && x > 10,
                "{parents} {carriers} {x}"
            );
        }
    }

    #[test]
    fn a_whole_connection_and_syn_only_flows() {
        let (c, s) = ((v4(1), 40000), (v4(2), 80));
        let mut r = Rows::default();
        r.tcp(0, c, s, SYN, 1000, 0, 0);
        r.tcp(100, s, c, SYN | ACK, 5000, 1001, 0);
        r.tcp(200, c, s, ACK, 1001, 5001, 0);
        r.tcp(300, c, s, PA, 1001, 5001, 10);
        r.tcp(400, s, c, PA, 5001, 1011, 20);
        r.tcp(500, c, s, FA, 1011, 5021, 0);
        r.tcp(600, s, c, FA, 5021, 1012, 0);
        r.tcp(700, c, s, ACK, 1012, 5022, 0);
        // Three SYN-only connections (a scan): kept compact, expanded when they end.
        for k in 0..3u8 {
            r.tcp(
                800 + i64::from(k),
                (v4(9), 50000 + u16::from(k)),
                (v4(3), 22),
                SYN,
                7,
                0,
                0,
            );
        }
        // One of them retransmits its SYN: expanded by its second packet.
        r.tcp(1_000_000, (v4(9), 50001), (v4(3), 22), SYN, 7, 0, 0);
        let mut t = Tracker::new(Config::default());
        t.feed(&r.packets()).unwrap();
        assert_eq!(t.open_flows(), 4);
        t.finish();
        let b = t.ended.take();
        assert_eq!(b.len(), 4);
        let hist: Vec<&str> = b.history.iter().map(String::as_str).collect();
        assert_eq!(hist, ["ShADdFf", "S", "S", "S"]);
        let states: Vec<&str> = b
            .conn_state
            .iter()
            .map(|&c| zeek::CONN_STATE_NAMES[usize::from(c)])
            .collect();
        assert_eq!(states, ["SF", "S0", "S0", "S0"]);
        assert_eq!((b.orig_bytes[0], b.resp_bytes[0]), (10, 20));
        assert_eq!((b.orig_pkts[0], b.resp_pkts[0]), (5, 3));
        // In creation order (finish): the retransmitting one, port 50001, is the second.
        assert_eq!(b.orig_p[1..], [50000, 50001, 50002]);
        assert_eq!(b.orig_pkts[1..], [1, 2, 1]);
        assert_eq!(b.syn_retransmits[1..], [0, 1, 0]);
        let end = EndAt {
            frame: 12,
            phase: END_CAPTURE,
        };
        assert!(b.end_frame.iter().all(|&f| f == end.frame));
        assert!(b.end_phase.iter().all(|&p| p == end.phase));
        assert_eq!(b.end_reason[0], 0); // fin
        assert_eq!(b.orig_state[0], rfc::TcpState::TimeWait as u8);
        assert_eq!(b.resp_state[0], rfc::TcpState::Closed as u8);
        // SYN-SENT for the scanned ones, one transition each (a LISTENing peer stays so when
        // it receives a SYN); 10 for the whole connection (both sides through the handshake
        // and the close, the originator closing first).
        assert_eq!(b.orig_state[1..], [rfc::TcpState::SynSent as u8; 3]);
        assert_eq!(t.transitions.len(), 10 + 3);
    }

    /// A SynOnly keeps one of its three timers in the heap; the others go in when it expands,
    /// and fire as they would have: the SYN-only flows end by tcp_attempt (5 s) as attempts,
    /// the one answered in time goes on.
    #[test]
    fn syn_only_flows_keep_one_timer_until_they_expand() {
        let mut r = Rows::default();
        for k in 0..4u16 {
            r.tcp(i64::from(k), (v4(9), 1000 + k), (v4(3), 80), SYN, 1, 0, 0);
        }
        let mut t = Tracker::new(Config::default());
        t.feed(&r.packets()).unwrap();
        assert_eq!(t.timers.heap.len(), 4);
        let mut r = Rows::default();
        r.tcp(100, (v4(3), 80), (v4(9), 1000), SYN | ACK, 7, 2, 0);
        t.feed(&r.packets()).unwrap();
        // Expanded: its inactivity and expire timers joined the heap, and the SYN-ACK armed
        // the established inactivity timeout.
        assert_eq!(t.timers.heap.len(), 7);
        t.advance(1_700_000_006_000_000_000);
        assert_eq!(t.ended.orig_p, [1001, 1002, 1003]);
        assert_eq!(t.ended.end_reason, [2, 2, 2]); // idle: the attempt timer
        assert_eq!(t.open_flows(), 1);
    }

    /// A connection's Expire timer still in the heap when the connection has ended and a new
    /// one has taken its slot is dropped when it fires: the new connection's view (by slot)
    /// must not re-arm it as the new one's, by the timer generation.
    #[test]
    fn an_ended_connections_expire_timer_is_not_rearmed_for_its_slots_next() {
        let config = Config {
            timeouts: Timeouts {
                tcp_close: NANOS / 10,
                ..Timeouts::default()
            },
            ..Config::default()
        };
        let mut t = Tracker::new(config);
        let (a, b) = ((v4(9), 1000), (v4(9), 1001));
        let server = (v4(3), 80);
        let mut r = Rows::default();
        // A: a handshake, then a RST at 0.5 s; it ends 0.1 s later, when the clock passes it
        r.tcp(0, a, server, SYN, 1, 0, 0);
        r.tcp(1_000, server, a, SYN | ACK, 7, 2, 0);
        r.tcp(2_000, a, server, ACK, 2, 8, 0);
        r.tcp(500_000, a, server, tcp::RST, 2, 0, 0);
        // B from 2 s, in A's slot; a packet at 5.5 s fires A's Expire timer (its start + 5 s),
        // before B's own (7 s)
        r.tcp(2_000_000, b, server, SYN, 1, 0, 0);
        r.tcp(2_001_000, server, b, SYN | ACK, 7, 2, 0);
        r.tcp(2_002_000, b, server, ACK, 2, 8, 0);
        r.tcp(5_500_000, b, server, ACK, 2, 8, 0);
        t.feed(&r.packets()).unwrap();
        assert_eq!(
            (t.ended.orig_p.as_slice(), t.open_flows()),
            ([1000].as_slice(), 1)
        );
        assert_eq!(t.slots.len(), 1, "B took A's slot");
        let mut expire = Vec::new();
        while let Some(timer) = t.timers.heap.pop_due(i64::MAX) {
            if timer.kind() == TimerKind::Expire {
                expire.push(timer.deadline - 1_700_000_000 * NANOS);
            }
        }
        assert_eq!(expire, [7 * NANOS]);
    }

    #[test]
    fn the_flow_cap_evicts_the_least_recently_active() {
        let mut r = Rows::default();
        for k in 0..5u16 {
            r.tcp(i64::from(k), (v4(9), 1000 + k), (v4(3), 80), SYN, 1, 0, 0);
        }
        // The first connection is active again: the second is now the least recent.
        r.tcp(10, (v4(9), 1000), (v4(3), 80), SYN, 1, 0, 0);
        r.tcp(11, (v4(9), 2000), (v4(3), 80), SYN, 1, 0, 0);
        let config = Config {
            max_flows: 5,
            ..Config::default()
        };
        let mut t = Tracker::new(config);
        t.feed(&r.packets()).unwrap();
        assert_eq!(t.evicted, 1);
        assert_eq!(t.ended.orig_p, [1001]);
        assert_eq!(t.ended.end_reason, [4]); // evicted
    }

    /// xorshift64*: deterministic pseudo-random values for the hostile-input test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    /// Arbitrary values in every column the tracker reads (few hosts and ports, so packets
    /// meet in the same flows; extreme sequence numbers, times, lengths and codes): no panic
    /// (debug builds check every arithmetic overflow), and the table stays within its cap.
    #[test]
    fn arbitrary_columns_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..40 {
            let mut r = Rows::default();
            let n = 500;
            for _ in 0..n {
                let a = (
                    v4(rng.pick(&[1, 2, 3])),
                    rng.pick(&[0u16, 53, 80, 443, 3544, 65535]),
                );
                let b = (
                    v4(rng.pick(&[1, 2, 255])),
                    rng.pick(&[0u16, 53, 80, 443, 4789]),
                );
                let flags = (rng.next() & 0xfff) as u16;
                let any = rng.next() as u32;
                let seq = rng.pick(&[0, 1, u32::MAX, u32::MAX - 1, 1 << 31, any]);
                let any = rng.next() as u32;
                let ack = rng.pick(&[0, 1, u32::MAX, seq.wrapping_add(1), any]);
                let payload = rng.pick(&[-1, 0, 1, 1460, 65535, i32::MAX]);
                let ts_us = rng.pick(&[0, 1, 5_000_000, 400_000_000, i64::MAX / 4000]);
                r.tcp(ts_us, a, b, flags, seq, ack, payload);
                let last = r.frame.len() - 1;
                r.proto[last] = rng.pick(&[6, 17, 1, 58, 47, 0]);
                r.ip_version[last] = rng.pick(&[4, 6, 0]);
                r.win[last] = rng.pick(&[0, 1, 65535]);
                r.wscale[last] = rng.pick(&[-1, 0, 14, 255, i16::MAX]);
                r.i16_none[last] = rng.pick(&[-1, 0, 3, 8, 128, 255, i16::MAX, i16::MIN]);
                r.u8_zero[last] = rng.pick(&[0, 1, 2, 6, 17, 255]);
                r.u16_zero[last] = rng.pick(&[0, 7, 8, 65535]);
                r.u32_zero[last] = rng.pick(&[0, 1, u32::MAX]);
                r.flags_b[last] = rng.next() & 1 == 1;
                r.frag[last] = rng.pick(&[0, 1, 2]);
                r.ip_len[last] = rng.pick(&[0, 20, u32::MAX]);
                r.opt_count[last] = rng.pick(&[0, 5, 40, 255]);
                if rng.next() % 8 == 0 {
                    r.ts_ns[last] = rng.pick(&[i64::MIN, i64::MAX, -1, 0]);
                }
            }
            let config = Config {
                drop_bad_checksums: round % 2 == 0,
                keep_transitions: round % 4 < 2,
                max_flows: 1 + round % 7,
                vlan_in_key: round % 3 == 0,
                likely_server_ports: vec![(6, 80), (17, 53), (6, 0)],
                ignore_checksum_nets: vec![Net {
                    addr: v4(0),
                    prefix: 104,
                    v4: true,
                }],
                ..Config::default()
            };
            let max = config.max_flows;
            let mut t = Tracker::new(config);
            let p = r.packets();
            t.feed(&p).unwrap();
            assert!(t.open_flows() <= max);
            t.advance(i64::MAX);
            t.finish();
            assert_eq!(t.open_flows(), 0);
            // a middle carrier's row (sub 1, here any row of u8_zero 1) counts with its packet
            let carriers = p.sub.iter().filter(|&&s| s == SUB_CARRIER).count();
            assert_eq!(t.packets_tracked + t.packets_skipped, (n - carriers) as u64);
        }
    }
}
