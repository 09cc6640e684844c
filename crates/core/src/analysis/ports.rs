//! `portlens ports`' fold: ended connections -> one summary per (protocol, server port), the
//! totals, and what each host tried on each other (the scan summary's input).
//!
//! The rules are `portlens.analysis.ports`' (`PortSummary.add`, `outcome`, `guessed`,
//! `Probe.add`, `PortTable.add`); this is their fold over the tracker's columns. It keeps a
//! host as a 4-byte number of a table of the distinct addresses, where Python kept a text
//! in a set per port: a SYN flood from a million sources held 570 MB in `ports` that way,
//! and the per-block NumPy steps that replaced the objects set the pace of the whole command.

use std::hash::BuildHasher;

use hashbrown::{hash_table, HashMap, HashSet, HashTable};

use crate::track::columns::ConnBatch;
use crate::track::rfc::RETX;
use crate::track::zeek::CONN_STATE_NAMES;
use crate::track::FlowHasher;

/// A row's kind, the proto of its per-port row (`portlens.analysis.ports.KIND_NAMES`).
pub const TCP: u8 = 0;
pub const UDP: u8 = 1;
pub const ICMP: u8 = 2;
/// ICMP over IPv6: its type numbers mean other things than ICMPv4's.
pub const ICMP6: u8 = 3;
/// An IP protocol with no ports (Zeek's unknown_transport): one row per protocol number.
pub const IP: u8 = 4;

/// `portlens.analysis.ports.OUTCOMES`, in its order: an outcome is an index into it.
pub const OUTCOMES: [&str; 8] = [
    "completed",
    "open",
    "refused",
    "unanswered",
    "reset",
    "half_open",
    "mid_stream",
    "one_way",
];
const COMPLETED: u8 = 0;
const OPEN: u8 = 1;
const REFUSED: u8 = 2;
const UNANSWERED: u8 = 3;
const RESET: u8 = 4;
const HALF_OPEN: u8 = 5;
const MID_STREAM: u8 = 6;
const ONE_WAY: u8 = 7;

/// ICMP messages that ask for an answer, and answers that only follow a request
/// (`portlens.analysis.icmp`: REQUESTS4, REQUESTS6, REPLIES4, REPLIES6).
const REQUESTS4: [u16; 5] = [8, 10, 13, 15, 17];
const REQUESTS6: [u16; 6] = [128, 130, 133, 135, 139, 144];
const REPLIES4: [u16; 4] = [0, 14, 16, 18];
const REPLIES6: [u16; 3] = [129, 140, 145];

/// The tracker's "no value" of an i64 column (`NONE64`) and of `icmp_code` (`NO_CODE`).
pub const NONE64: i64 = i64::MIN;
pub const NO_CODE: i32 = i32::MIN;

/// The columns the fold reads, one row per ended connection, under the names of `--json`
/// (`PORT_COLUMNS` in portlens.analysis.columns). Addresses are 16 bytes (IPv4-mapped).
#[derive(Debug, Clone, Copy)]
pub struct ConnColumns<'a> {
    pub ip_version: &'a [u8],
    pub ip_proto: &'a [u8],
    pub orig_h: &'a [[u8; 16]],
    pub orig_p: &'a [u16],
    pub resp_h: &'a [[u8; 16]],
    pub resp_p: &'a [u16],
    /// ICMP flows: the code of the originator's first message, `NO_CODE` if none.
    pub icmp_code: &'a [i32],
    pub conn_state: &'a [&'a str],
    pub history: &'a [&'a str],
    /// The (type, code) of each ICMP error that quoted the flow.
    pub icmp_errors: &'a [Vec<(i16, i16)>],
    pub ts_ns: &'a [i64],
    pub last_ns: &'a [i64],
    pub orig_pkts: &'a [u64],
    pub resp_pkts: &'a [u64],
    pub orig_bytes: &'a [u64],
    pub resp_bytes: &'a [u64],
    pub orig_ip_bytes: &'a [u64],
    pub resp_ip_bytes: &'a [u64],
    /// `analysis.retransmissions`.
    pub retransmissions: &'a [u32],
    /// `handshake.syn_ns`, `syn_ack_ns`, `ack_ns`; `NONE64` where not seen.
    pub syn_ns: &'a [i64],
    pub syn_ack_ns: &'a [i64],
    pub ack_ns: &'a [i64],
}

impl ConnColumns<'_> {
    pub fn len(&self) -> usize {
        self.ip_version.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses columns of unequal lengths, naming the first that differs.
    fn check(&self) -> Result<(), String> {
        match self.uneven() {
            Some(name) => Err(format!("column {name} has not as many rows as ip_version")),
            None => Ok(()),
        }
    }

    /// The name of the first column whose length is not the first one's.
    fn uneven(&self) -> Option<&'static str> {
        let n = self.len();
        let lengths = [
            ("ip_proto", self.ip_proto.len()),
            ("id.orig_h", self.orig_h.len()),
            ("id.orig_p", self.orig_p.len()),
            ("id.resp_h", self.resp_h.len()),
            ("id.resp_p", self.resp_p.len()),
            ("icmp_code", self.icmp_code.len()),
            ("conn_state", self.conn_state.len()),
            ("history", self.history.len()),
            ("icmp_errors", self.icmp_errors.len()),
            ("ts_ns", self.ts_ns.len()),
            ("last_ns", self.last_ns.len()),
            ("orig_pkts", self.orig_pkts.len()),
            ("resp_pkts", self.resp_pkts.len()),
            ("orig_bytes", self.orig_bytes.len()),
            ("resp_bytes", self.resp_bytes.len()),
            ("orig_ip_bytes", self.orig_ip_bytes.len()),
            ("resp_ip_bytes", self.resp_ip_bytes.len()),
            ("analysis.retransmissions", self.retransmissions.len()),
            ("handshake.syn_ns", self.syn_ns.len()),
            ("handshake.syn_ack_ns", self.syn_ack_ns.len()),
            ("handshake.ack_ns", self.ack_ns.len()),
        ];
        lengths
            .iter()
            .find(|(_, len)| *len != n)
            .map(|(name, _)| *name)
    }
}

/// What the fold reads of a tracker's ended rows (`ConnBatch`) in another form there: the
/// conn_state and history texts, and the retransmission counts out of the analysis rows.
pub struct BatchTexts<'a> {
    conn_state: Vec<&'static str>,
    history: Vec<&'a str>,
    retransmissions: Vec<u32>,
}

impl<'a> BatchTexts<'a> {
    pub fn of(b: &'a ConnBatch) -> Self {
        BatchTexts {
            conn_state: b
                .conn_state
                .iter()
                .map(|&c| CONN_STATE_NAMES.get(usize::from(c)).copied().unwrap_or(""))
                .collect(),
            history: b.history.iter().map(String::as_str).collect(),
            retransmissions: b.analysis.iter().map(|a| a[RETX]).collect(),
        }
    }
}

impl<'a> ConnColumns<'a> {
    /// The columns of a tracker's ended rows where they are (`ports` of the compiled tracker
    /// in its own process folds them without a trip through Python): those the binding hands
    /// Python under the same names, so both folds are the same (tests/test_port_fold.py).
    pub fn of_batch(b: &'a ConnBatch, t: &'a BatchTexts<'a>) -> Self {
        ConnColumns {
            ip_version: &b.ip_version,
            ip_proto: &b.proto,
            orig_h: &b.orig_h,
            orig_p: &b.orig_p,
            resp_h: &b.resp_h,
            resp_p: &b.resp_p,
            icmp_code: &b.icmp_code,
            conn_state: &t.conn_state,
            history: &t.history,
            icmp_errors: &b.icmp_errors,
            ts_ns: &b.ts_ns,
            last_ns: &b.last_ns,
            orig_pkts: &b.orig_pkts,
            resp_pkts: &b.resp_pkts,
            orig_bytes: &b.orig_bytes,
            resp_bytes: &b.resp_bytes,
            orig_ip_bytes: &b.orig_ip_bytes,
            resp_ip_bytes: &b.resp_ip_bytes,
            retransmissions: &t.retransmissions,
            syn_ns: &b.syn_ns,
            syn_ack_ns: &b.syn_ack_ns,
            ack_ns: &b.ack_ns,
        }
    }
}

/// A per-port row's key: kind, port (ICMP: the message type; IP: the protocol number) and
/// the ICMP code (-1: none, and for every other kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub kind: u8,
    pub port: u16,
    pub code: i32,
}

/// `portlens.analysis.ports.PortSummary`'s figures that add up (all but the hosts):
/// conn_states counts by the fold's state number.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PortSummary {
    pub conns: u64,
    pub server_conns: u64,
    pub client_conns: u64,
    pub outcomes: [u64; 8],
    pub conn_states: Vec<u64>,
    pub guessed: u64,
    pub pkts_c2s: u64,
    pub pkts_s2c: u64,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    pub ip_bytes_c2s: u64,
    pub ip_bytes_s2c: u64,
    /// Handshake round-trip times in the order the connections came: the Python Sketch
    /// takes them (`add_many`), so its exact values keep their order.
    pub rtts: Vec<i64>,
    pub retransmissions: u64,
    pub tcp_pkts: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
}

impl PortSummary {
    fn add(&mut self, r: &Row, client_side: bool) {
        self.conns += 1;
        if client_side {
            self.client_conns += 1;
        } else {
            self.server_conns += 1;
        }
        self.outcomes[usize::from(r.outcome)] += 1;
        let state = usize::from(r.state);
        if self.conn_states.len() <= state {
            self.conn_states.resize(state + 1, 0);
        }
        self.conn_states[state] += 1;
        self.guessed += u64::from(r.guessed);
        self.pkts_c2s = self.pkts_c2s.saturating_add(r.orig_pkts);
        self.pkts_s2c = self.pkts_s2c.saturating_add(r.resp_pkts);
        self.bytes_c2s = self.bytes_c2s.saturating_add(r.orig_bytes);
        self.bytes_s2c = self.bytes_s2c.saturating_add(r.resp_bytes);
        self.ip_bytes_c2s = self.ip_bytes_c2s.saturating_add(r.orig_ip_bytes);
        self.ip_bytes_s2c = self.ip_bytes_s2c.saturating_add(r.resp_ip_bytes);
        if let Some(rtt) = r.rtt {
            self.rtts.push(rtt);
        }
        self.retransmissions = self.retransmissions.saturating_add(r.retransmissions);
        self.tcp_pkts = self.tcp_pkts.saturating_add(r.tcp_pkts);
        self.first_ns = Some(self.first_ns.map_or(r.ts_ns, |f| f.min(r.ts_ns)));
        self.last_ns = Some(self.last_ns.map_or(r.last_ns, |l| l.max(r.last_ns)));
    }
}

/// The distinct originators and responders of a per-port row, as numbers of the fold's
/// `Hosts`: kept for the fold's life, since a distinct count does not add up as the other
/// figures do (`take` leaves them).
#[derive(Debug, Default, Clone)]
pub struct HostSets {
    pub clients: HashSet<u32, FlowHasher>,
    pub servers: HashSet<u32, FlowHasher>,
}

/// A per-port row of the fold.
#[derive(Debug, Default)]
struct PortRow {
    figures: PortSummary,
    hosts: HostSets,
}

impl PortRow {
    fn add(&mut self, r: &Row, client_side: bool) {
        self.figures.add(r, client_side);
        self.hosts.clients.insert(r.orig);
        self.hosts.servers.insert(r.resp);
    }
}

/// What one host tried on another over TCP or UDP (`portlens.analysis.ports.Probe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub kind: u8,
    pub orig: u32,
    pub resp: u32,
    /// Every port tried, ascending.
    pub ports: Vec<u16>,
    /// Ports with at least one refused or unanswered attempt.
    pub failed_ports: Vec<u16>,
    /// Ports that answered (any outcome but refused, unanswered and mid_stream).
    pub answered_ports: Vec<u16>,
    pub outcomes: [u64; 8],
}

/// The distinct addresses seen, numbered in order of first sight. The table holds only the
/// numbers (4 bytes a host, not 20), and finds an address by hashing the one it numbers.
#[derive(Debug, Default)]
pub struct Hosts {
    number: HashTable<u32>,
    hasher: FlowHasher,
    addrs: Vec<[u8; 16]>,
}

impl Hosts {
    fn number(&mut self, a: &[u8; 16]) -> u32 {
        let Hosts {
            number,
            hasher,
            addrs,
        } = self;
        let hash = hasher.hash_one(a);
        let entry = number.entry(
            hash,
            |&n| addrs[n as usize] == *a,
            |&n| hasher.hash_one(addrs[n as usize]),
        );
        match entry {
            hash_table::Entry::Occupied(e) => *e.get(),
            hash_table::Entry::Vacant(e) => {
                let n = u32::try_from(addrs.len()).expect("fewer than 2^32 distinct addresses");
                addrs.push(*a);
                e.insert(n);
                n
            }
        }
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

/// Attempts of one host on another's port with one outcome, counted: a u128 each, the key
/// (kind, originator, responder, port, outcome: 86 bits) above the count (42 bits), so that
/// sorting the rows orders them by key and equal keys lie side by side. A flood of a million
/// sources is a million such rows: 16 MB, where a hash map took 50.
#[derive(Debug, Default)]
struct Attempts {
    rows: Vec<u128>,
    /// Rows sorted and merged by the last `compact`: past twice as many, it runs again.
    compacted: usize,
}

const COUNT_BITS: u32 = 42;
const COUNT_MASK: u128 = (1 << COUNT_BITS) - 1;

impl Attempts {
    fn add(&mut self, kind: u8, orig: u32, resp: u32, port: u16, outcome: u8) {
        let key = (u128::from(kind) << 83)
            | (u128::from(orig) << 51)
            | (u128::from(resp) << 19)
            | (u128::from(port) << 3)
            | u128::from(outcome);
        self.rows.push((key << COUNT_BITS) | 1);
        if self.rows.len() >= (2 * self.compacted).max(1 << 16) {
            self.compact();
        }
    }

    /// Sorted, each key once with its attempts added (at most 2^42 - 1: no capture holds more
    /// connections).
    fn compact(&mut self) {
        self.rows.sort_unstable();
        let mut merged: usize = 0;
        for i in 0..self.rows.len() {
            let row = self.rows[i];
            if merged > 0 && self.rows[merged - 1] >> COUNT_BITS == row >> COUNT_BITS {
                let sum =
                    ((self.rows[merged - 1] & COUNT_MASK) + (row & COUNT_MASK)).min(COUNT_MASK);
                self.rows[merged - 1] = (self.rows[merged - 1] & !COUNT_MASK) | sum;
            } else {
                self.rows[merged] = row;
                merged += 1;
            }
        }
        self.rows.truncate(merged);
        self.compacted = merged;
    }

    /// (kind, orig, resp, port, outcome, count) of each key, in key order.
    fn counted(&mut self) -> impl Iterator<Item = (u8, u32, u32, u16, u8, u64)> + '_ {
        self.compact();
        self.rows.iter().map(|&row| {
            let key = row >> COUNT_BITS;
            let field = |shift: u32, bits: u32| (key >> shift) & ((1 << bits) - 1);
            let count = u64::try_from(row & COUNT_MASK).expect("42 bits");
            #[allow(clippy::cast_possible_truncation)] // each field masked to its width
            (
                field(83, 3) as u8,
                field(51, 32) as u32,
                field(19, 32) as u32,
                field(3, 16) as u16,
                field(0, 3) as u8,
                count,
            )
        })
    }
}

/// The per-port table of `portlens ports` as connections end (`PortTable.add_columns`).
#[derive(Debug)]
pub struct PortFold {
    /// Originator ports get rows of their own too (`--all-ports`).
    all_ports: bool,
    rows: HashMap<PortKey, PortRow, FlowHasher>,
    total: PortRow,
    hosts: Hosts,
    /// conn_state names in order of first sight: a summary's `conn_states` index them.
    states: Vec<String>,
    attempts: Attempts,
}

/// The figures folded since the last `take`.
#[derive(Debug)]
pub struct Taken {
    /// By key, ascending: the rows that counted connections since.
    pub rows: Vec<(PortKey, PortSummary)>,
    pub total: PortSummary,
}

/// What the fold reads of one row.
struct Row {
    outcome: u8,
    state: u8,
    guessed: bool,
    orig: u32,
    resp: u32,
    rtt: Option<i64>,
    orig_pkts: u64,
    resp_pkts: u64,
    orig_bytes: u64,
    resp_bytes: u64,
    orig_ip_bytes: u64,
    resp_ip_bytes: u64,
    retransmissions: u64,
    tcp_pkts: u64,
    ts_ns: i64,
    /// The later of last_ns and ts_ns.
    last_ns: i64,
}

/// The letters of a history the outcome rules read.
#[derive(Default, Clone, Copy)]
struct Letters {
    syn: bool,      // S
    syn_resp: bool, // s
    syn_ack: bool,  // H or h
    ack: bool,      // A
    data: bool,     // D
    flipped: bool,  // ^
}

impl Letters {
    fn of(history: &str) -> Self {
        let mut l = Letters::default();
        for c in history.bytes() {
            match c {
                b'S' => l.syn = true,
                b's' => l.syn_resp = true,
                b'H' | b'h' => l.syn_ack = true,
                b'A' => l.ack = true,
                b'D' => l.data = true,
                b'^' => l.flipped = true,
                _ => {}
            }
        }
        l
    }
}

fn kind_of(ip_proto: u8, ip_version: u8) -> u8 {
    match ip_proto {
        6 => TCP,
        17 => UDP,
        1 | 58 if ip_version == 6 => ICMP6,
        1 | 58 => ICMP,
        _ => IP,
    }
}

/// `portlens.analysis.ports.outcome` of one row.
fn outcome(c: &ConnColumns, i: usize, kind: u8, letters: Letters) -> u8 {
    let state = c.conn_state[i];
    match kind {
        TCP => {
            if state == "REJ" {
                REFUSED
            } else if !(letters.syn || letters.syn_resp || letters.syn_ack) {
                MID_STREAM
            } else if matches!(state, "S0" | "SH" | "RSTOS0") {
                UNANSWERED
            } else if matches!(state, "RSTO" | "RSTR" | "RSTRH") {
                RESET
            } else if letters.syn_ack && !letters.ack && !letters.data {
                HALF_OPEN
            } else if state == "SF" {
                COMPLETED
            } else {
                OPEN
            }
        }
        UDP => {
            let unreachable = if c.ip_version[i] == 6 { 1 } else { 3 };
            if c.icmp_errors[i].iter().any(|&(t, _)| t == unreachable) {
                return REFUSED;
            }
            match state {
                "SF" => COMPLETED,
                "S0" => UNANSWERED,
                "SHR" => MID_STREAM,
                _ => OPEN,
            }
        }
        ICMP | ICMP6 => {
            let t = c.orig_p[i];
            let (requests, replies): (&[u16], &[u16]) = if kind == ICMP6 {
                (&REQUESTS6, &REPLIES6)
            } else {
                (&REQUESTS4, &REPLIES4)
            };
            if requests.contains(&t) {
                if c.resp_pkts[i] > 0 {
                    COMPLETED
                } else {
                    UNANSWERED
                }
            } else if replies.contains(&t) {
                MID_STREAM
            } else {
                ONE_WAY
            }
        }
        _ => {
            if c.resp_pkts[i] > 0 {
                COMPLETED
            } else {
                ONE_WAY
            }
        }
    }
}

/// Each row's outcome (an index into [`OUTCOMES`]); columns of unequal lengths are refused,
/// with the first such column's name.
pub fn outcomes(c: &ConnColumns) -> Result<Vec<u8>, String> {
    c.check()?;
    Ok((0..c.len())
        .map(|i| {
            let kind = kind_of(c.ip_proto[i], c.ip_version[i]);
            outcome(c, i, kind, Letters::of(c.history[i]))
        })
        .collect())
}

impl PortFold {
    pub fn new(all_ports: bool) -> Self {
        PortFold {
            all_ports,
            rows: HashMap::with_hasher(FlowHasher::new()),
            total: PortRow::default(),
            hosts: Hosts::default(),
            states: Vec::new(),
            attempts: Attempts::default(),
        }
    }

    /// The number of a conn_state name; None past 256 distinct names (Zeek has 13).
    fn state_number(&mut self, name: &str) -> Option<u8> {
        if let Some(n) = self.states.iter().position(|s| s == name) {
            return u8::try_from(n).ok();
        }
        let n = u8::try_from(self.states.len()).ok()?;
        self.states.push(name.to_owned());
        Some(n)
    }

    /// `PortTable.add` of every row. Columns of unequal lengths are refused, with the first
    /// such column's name.
    pub fn add(&mut self, c: &ConnColumns) -> Result<(), String> {
        c.check()?;
        for i in 0..c.len() {
            let kind = kind_of(c.ip_proto[i], c.ip_version[i]);
            let letters = Letters::of(c.history[i]);
            let tcp = kind == TCP;
            let has_rtt =
                tcp && c.syn_ns[i] != NONE64 && c.syn_ack_ns[i] != NONE64 && c.ack_ns[i] != NONE64;
            let row = Row {
                outcome: outcome(c, i, kind, letters),
                state: self
                    .state_number(c.conn_state[i])
                    .ok_or("more than 256 distinct conn_state values")?,
                guessed: letters.flipped || (tcp && !letters.syn && !letters.syn_resp),
                orig: self.hosts.number(&c.orig_h[i]),
                resp: self.hosts.number(&c.resp_h[i]),
                rtt: has_rtt.then(|| c.ack_ns[i].wrapping_sub(c.syn_ns[i])),
                orig_pkts: c.orig_pkts[i],
                resp_pkts: c.resp_pkts[i],
                orig_bytes: c.orig_bytes[i],
                resp_bytes: c.resp_bytes[i],
                orig_ip_bytes: c.orig_ip_bytes[i],
                resp_ip_bytes: c.resp_ip_bytes[i],
                retransmissions: if tcp {
                    u64::from(c.retransmissions[i])
                } else {
                    0
                },
                tcp_pkts: if tcp {
                    c.orig_pkts[i] + c.resp_pkts[i]
                } else {
                    0
                },
                ts_ns: c.ts_ns[i],
                last_ns: c.last_ns[i].max(c.ts_ns[i]),
            };
            let ported = kind == TCP || kind == UDP;
            let key = match kind {
                TCP | UDP => PortKey {
                    kind,
                    port: c.resp_p[i],
                    code: -1,
                },
                ICMP | ICMP6 => PortKey {
                    kind,
                    port: c.orig_p[i],
                    code: if c.icmp_code[i] == NO_CODE {
                        -1
                    } else {
                        c.icmp_code[i]
                    },
                },
                _ => PortKey {
                    kind,
                    port: u16::from(c.ip_proto[i]),
                    code: -1,
                },
            };
            self.rows.entry(key).or_default().add(&row, false);
            if self.all_ports && ported && c.orig_p[i] != c.resp_p[i] {
                let client = PortKey {
                    kind,
                    port: c.orig_p[i],
                    code: -1,
                };
                self.rows.entry(client).or_default().add(&row, true);
            }
            self.total.add(&row, false);
            if ported {
                self.attempts
                    .add(kind, row.orig, row.resp, c.resp_p[i], row.outcome);
            }
        }
        Ok(())
    }

    /// The figures folded since the last call, which start again from nothing; the hosts
    /// and the probes stay.
    pub fn take(&mut self) -> Taken {
        let mut rows: Vec<(PortKey, PortSummary)> = self
            .rows
            .iter_mut()
            .filter(|(_, row)| row.figures.conns > 0)
            .map(|(key, row)| (*key, std::mem::take(&mut row.figures)))
            .collect();
        rows.sort_unstable_by_key(|(key, _)| *key);
        let total = std::mem::take(&mut self.total.figures);
        Taken { rows, total }
    }

    /// How many distinct clients (or servers) a row has (None: the totals).
    pub fn host_count(&self, key: Option<PortKey>, clients: bool) -> usize {
        self.hosts_of(key, clients).map_or(0, HashSet::len)
    }

    /// The numbers of a row's distinct clients (or servers), ascending: the addresses' table
    /// front to back.
    pub fn host_numbers(&self, key: Option<PortKey>, clients: bool) -> Vec<u32> {
        let mut numbers: Vec<u32> = self
            .hosts_of(key, clients)
            .map_or_else(Vec::new, |set| set.iter().copied().collect());
        numbers.sort_unstable();
        numbers
    }

    fn hosts_of(&self, key: Option<PortKey>, clients: bool) -> Option<&HashSet<u32, FlowHasher>> {
        let sets = match key {
            None => &self.total.hosts,
            Some(key) => &self.rows.get(&key)?.hosts,
        };
        Some(if clients {
            &sets.clients
        } else {
            &sets.servers
        })
    }

    /// A host's address by its number.
    pub fn address(&self, number: u32) -> Option<&[u8; 16]> {
        self.hosts.addrs.get(number as usize)
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// conn_state names, as a summary's `conn_states` number them.
    pub fn states(&self) -> &[String] {
        &self.states
    }

    /// The probes of the host pairs with at least `min_failed` failed ports (refused or
    /// unanswered), by (kind, originator, responder); `take_all` gives every pair's and
    /// forgets them.
    pub fn probes(&mut self, min_failed: usize, take_all: bool) -> Vec<Probe> {
        let attempts: Vec<_> = self.attempts.counted().collect();
        if take_all {
            self.attempts = Attempts::default();
        }
        let failed = |o: u8| o == REFUSED || o == UNANSWERED;
        let mut out = Vec::new();
        for pair in attempts.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
            // Ports ascend within a pair: a port repeats only next to itself.
            let ports_where = |keep: &dyn Fn(u8) -> bool| {
                let mut ports: Vec<u16> = pair.iter().filter(|a| keep(a.4)).map(|a| a.3).collect();
                ports.dedup();
                ports
            };
            let failed_ports = ports_where(&failed);
            if failed_ports.len() < min_failed {
                continue;
            }
            let mut outcomes = [0; 8];
            for a in pair {
                outcomes[usize::from(a.4)] += a.5;
            }
            out.push(Probe {
                kind: pair[0].0,
                orig: pair[0].1,
                resp: pair[0].2,
                ports: ports_where(&|_| true),
                failed_ports,
                answered_ports: ports_where(&|o| !failed(o) && o != MID_STREAM),
                outcomes,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> [u8; 16] {
        let mut a = [0; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = 10;
        a[15] = last;
        a
    }

    struct Conns {
        orig_h: Vec<[u8; 16]>,
        orig_p: Vec<u16>,
        resp_p: Vec<u16>,
        state: Vec<&'static str>,
        history: Vec<&'static str>,
    }

    impl Conns {
        fn fold(&self, fold: &mut PortFold) -> Result<(), String> {
            let n = self.orig_h.len();
            let server = vec![v4(200); n];
            let zeros = vec![0_u64; n];
            let ts: Vec<i64> = (0..n as i64).collect();
            let none = vec![NONE64; n];
            let errors = vec![Vec::new(); n];
            fold.add(&ConnColumns {
                ip_version: &vec![4; n],
                ip_proto: &vec![6; n],
                orig_h: &self.orig_h,
                orig_p: &self.orig_p,
                resp_h: &server,
                resp_p: &self.resp_p,
                icmp_code: &vec![NO_CODE; n],
                conn_state: &self.state,
                history: &self.history,
                icmp_errors: &errors,
                ts_ns: &ts,
                last_ns: &ts,
                orig_pkts: &vec![1; n],
                resp_pkts: &zeros,
                orig_bytes: &zeros,
                resp_bytes: &zeros,
                orig_ip_bytes: &vec![40; n],
                resp_ip_bytes: &zeros,
                retransmissions: &vec![0; n],
                syn_ns: &none,
                syn_ack_ns: &none,
                ack_ns: &none,
            })
        }
    }

    #[test]
    fn a_port_counts_its_outcomes_and_distinct_clients() {
        let mut fold = PortFold::new(false);
        let conns = Conns {
            orig_h: vec![v4(1), v4(2), v4(1)],
            orig_p: vec![1000, 1001, 1002],
            resp_p: vec![80, 80, 443],
            state: vec!["S0", "REJ", "SF"],
            history: vec!["S", "Sr", "ShAdDaFf"],
        };
        conns.fold(&mut fold).unwrap();
        let taken = fold.take();
        let keys: Vec<u16> = taken.rows.iter().map(|(k, _)| k.port).collect();
        assert_eq!(keys, vec![80, 443]);
        let http = &taken.rows[0].1;
        assert_eq!(http.conns, 2);
        let key = taken.rows[0].0;
        assert_eq!(fold.host_count(Some(key), true), 2);
        assert_eq!(http.outcomes[usize::from(UNANSWERED)], 1);
        assert_eq!(http.outcomes[usize::from(REFUSED)], 1);
        assert_eq!(taken.total.conns, 3);
        assert_eq!(fold.host_count(None, true), 2);
        assert_eq!(fold.host_count(None, false), 1);
        assert_eq!(taken.total.first_ns, Some(0));
        assert_eq!(taken.total.last_ns, Some(2));
        assert_eq!(fold.states(), ["S0", "REJ", "SF"]);
        // Taken: the next take starts from nothing, the hosts stay.
        assert!(fold.take().rows.is_empty());
        assert_eq!(fold.hosts().len(), 3);
        assert_eq!(fold.host_count(Some(key), true), 2);
    }

    #[test]
    fn a_scan_is_a_pair_with_enough_failed_ports() {
        let mut fold = PortFold::new(false);
        let n = 20;
        let conns = Conns {
            orig_h: vec![v4(1); n],
            orig_p: vec![5000; n],
            resp_p: (1..=n as u16).collect(),
            state: (0..n).map(|i| if i < 15 { "REJ" } else { "SF" }).collect(),
            history: (0..n)
                .map(|i| if i < 15 { "Sr" } else { "ShAdDaFf" })
                .collect(),
        };
        conns.fold(&mut fold).unwrap();
        let scans = fold.probes(15, false);
        assert_eq!(scans.len(), 1);
        assert_eq!(scans[0].ports.len(), 20);
        assert_eq!(scans[0].failed_ports.len(), 15);
        assert_eq!(scans[0].answered_ports, (16..=20).collect::<Vec<u16>>());
        assert!(fold.probes(16, false).is_empty());
        assert_eq!(fold.probes(0, true).len(), 1);
        assert!(fold.probes(0, true).is_empty(), "taken");
    }

    #[test]
    fn attempts_are_counted_across_compactions() {
        let mut attempts = Attempts::default();
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..300_000_u32 {
            let key = (
                u8::try_from(i % 2).unwrap(),
                i % 1000,
                u32::MAX - i % 7,
                u16::try_from(i % 65_536).unwrap(),
                u8::try_from(i % 8).unwrap(),
            );
            attempts.add(key.0, key.1, key.2, key.3, key.4);
            *expected.entry(key).or_insert(0_u64) += 1;
        }
        assert!(attempts.compacted > 0, "compacted along the way");
        let got: Vec<_> = attempts.counted().collect();
        let want: Vec<_> = expected
            .into_iter()
            .map(|((k, o, r, p, x), n)| (k, o, r, p, x, n))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn past_256_conn_states_the_block_is_refused() {
        let mut fold = PortFold::new(false);
        let names: Vec<&'static str> = (0..257)
            .map(|i| &*Box::leak(format!("X{i}").into_boxed_str()))
            .collect();
        let conns = Conns {
            orig_h: vec![v4(1); names.len()],
            orig_p: vec![1; names.len()],
            resp_p: vec![80; names.len()],
            state: names,
            history: vec!["S"; 257],
        };
        let e = conns.fold(&mut fold).unwrap_err();
        assert!(e.contains("conn_state"), "{e}");
    }

    #[test]
    fn uneven_columns_are_refused_by_name() {
        let mut fold = PortFold::new(false);
        let mut conns = Conns {
            orig_h: vec![v4(1)],
            orig_p: vec![1],
            resp_p: vec![80],
            state: vec!["S0"],
            history: vec!["S"],
        };
        conns.history.push("S");
        let e = conns.fold(&mut fold).unwrap_err();
        assert!(e.contains("history"), "{e}");
    }
}
