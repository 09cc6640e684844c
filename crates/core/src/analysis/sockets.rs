//! `portlens sockets`' fold: ended connections -> the listening sockets they showed, with who
//! each answered, and every TCP or UDP connection's two ends.
//!
//! The rules are `portlens.analysis.sockets`' (`SocketTable.add`, `listening_sides`,
//! `Listener.add`, `ListenerRows`); this is their fold over the tracker's own rows
//! (`ConnBatch`), as `portlens.analysis.columns.add_socket_columns` folds the columns handed
//! to Python with NumPy. The listeners come out in the table's order with their peers ranked,
//! and the ends in blocks, each address and state as a code into the block's texts, so that
//! Python writes the tables without a string, nor NumPy, a connection
//! (tests/test_socket_fold.py holds both folds to the same output).

use std::cmp::Reverse;

use hashbrown::HashMap;

use crate::conn_log::push_addr;
use crate::track::columns::{ConnBatch, NONE_U8};
use crate::track::ids::Uid;
use crate::track::zeek::ConnState;
use crate::track::FlowHasher;

/// Each RFC 9293 state (`STATE_NAMES` order) as `ss` spells it
/// (`portlens.track.states.SS_NAMES`), then the no-state of a UDP socket.
pub const SS_NAMES: [&str; 12] = [
    "CLOSED",
    "LISTEN",
    "SYN-SENT",
    "SYN-RECV",
    "ESTAB",
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "CLOSE-WAIT",
    "CLOSING",
    "LAST-ACK",
    "TIME-WAIT",
    "",
];
/// UDP's code in `SS_NAMES`: no state on the wire.
pub const NO_STATE: u8 = 11;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// A listening socket: protocol (TCP, else UDP), address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ListenerKey {
    tcp: bool,
    addr: [u8; 16],
    port: u16,
}

/// One peer of a listener: the connections it answered from that address, and their times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFigures {
    pub conns: u64,
    pub first_ns: i64,
    pub last_ns: i64,
}

/// A peer's address as a code into `ListenerRows::texts`, and its figures.
type CodedPeer = (u32, PeerFigures);

/// Distinct addresses as text, each numbered in the order it was first met.
struct AddrTexts {
    codes: HashMap<[u8; 16], u32, FlowHasher>,
    texts: Vec<String>,
}

impl AddrTexts {
    fn new() -> Self {
        AddrTexts {
            codes: HashMap::with_hasher(FlowHasher::new()),
            texts: Vec::new(),
        }
    }

    /// The address's number, its text made the first time.
    fn code(&mut self, a: &[u8; 16]) -> u32 {
        let texts = &mut self.texts;
        *self.codes.entry(*a).or_insert_with(|| {
            let mut s = String::new();
            push_addr(&mut s, a);
            texts.push(s);
            u32::try_from(texts.len() - 1).unwrap_or(u32::MAX)
        })
    }
}

/// A connection's two sockets (`SocketTable.add`'s two `Socket`s).
#[derive(Debug, Clone, Copy)]
struct End {
    tcp: bool,
    /// `SS_NAMES` codes.
    orig_state: u8,
    resp_state: u8,
    orig_p: u16,
    resp_p: u16,
    orig_h: [u8; 16],
    resp_h: [u8; 16],
    uid: Uid,
}

/// The listeners in the table's order (TCP first, then by port, then by address as text),
/// each one's peers ranked (most connections first, then by address as text) in
/// `peer_addr[peer_start[i]..peer_start[i + 1]]`: `ListenerRows`' fields, with the addresses
/// as codes into `texts` (a capture's few thousand hosts are tens of thousands of peers).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListenerRows {
    pub texts: Vec<String>,
    pub tcp: Vec<bool>,
    pub addr: Vec<u32>,
    pub port: Vec<u16>,
    pub conns: Vec<u64>,
    pub first_ns: Vec<i64>,
    pub last_ns: Vec<i64>,
    pub peer_start: Vec<usize>,
    pub peer_addr: Vec<u32>,
    pub peer_conns: Vec<u64>,
}

/// Connections' ends, a row each (`ConnectionEnds`' fields): addresses are codes into `addrs`,
/// the block's distinct addresses as text, and states codes into `SS_NAMES`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EndRows {
    pub addrs: Vec<String>,
    pub tcp: Vec<u8>,
    pub orig_state: Vec<u16>,
    pub resp_state: Vec<u16>,
    pub orig_h: Vec<u32>,
    pub orig_p: Vec<u16>,
    pub resp_h: Vec<u32>,
    pub resp_p: Vec<u16>,
    /// The uids as Zeek writes them, `C` and 17 characters each, one after another.
    pub uids: String,
}

impl EndRows {
    pub fn len(&self) -> usize {
        self.tcp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty()
    }
}

/// The listeners and connection ends folded so far; without `ends`, the listeners only
/// (`sockets --listening`).
#[derive(Debug)]
pub struct SocketFold {
    with_ends: bool,
    listeners: HashMap<ListenerKey, HashMap<[u8; 16], PeerFigures, FlowHasher>, FlowHasher>,
    ends: Vec<End>,
}

impl SocketFold {
    pub fn new(with_ends: bool) -> Self {
        SocketFold {
            with_ends,
            listeners: HashMap::with_hasher(FlowHasher::new()),
            ends: Vec::new(),
        }
    }

    /// `SocketTable.add` of every row of `b`: the listening sides it showed (a SYN answered
    /// with a SYN-ACK, `h` or `H` in TCP's history; a UDP datagram answered, conn_state SF),
    /// and the two ends of each TCP or UDP connection.
    pub fn add(&mut self, b: &ConnBatch) {
        for i in 0..b.len() {
            let proto = b.proto[i];
            if proto != TCP && proto != UDP {
                continue;
            }
            let tcp = proto == TCP;
            let (first, last) = (b.ts_ns[i], b.ts_ns[i].max(b.last_ns[i]));
            let history = b.history[i].as_bytes();
            let (orig_h, resp_h) = (b.orig_h[i], b.resp_h[i]);
            let resp_listens = if tcp {
                history.contains(&b'h')
            } else {
                b.conn_state[i] == ConnState::SF as u8
            };
            if resp_listens {
                self.answered(tcp, resp_h, b.resp_p[i], orig_h, first, last);
            }
            if tcp && history.contains(&b'H') {
                self.answered(tcp, orig_h, b.orig_p[i], resp_h, first, last);
            }
            if self.with_ends {
                let state = |s: u8| if tcp && s != NONE_U8 { s } else { NO_STATE };
                self.ends.push(End {
                    tcp,
                    orig_state: state(b.orig_state[i]),
                    resp_state: state(b.resp_state[i]),
                    orig_p: b.orig_p[i],
                    resp_p: b.resp_p[i],
                    orig_h,
                    resp_h,
                    uid: b.uid[i],
                });
            }
        }
    }

    fn answered(
        &mut self,
        tcp: bool,
        addr: [u8; 16],
        port: u16,
        peer: [u8; 16],
        first: i64,
        last: i64,
    ) {
        let peers = self
            .listeners
            .entry(ListenerKey { tcp, addr, port })
            .or_insert_with(|| HashMap::with_hasher(FlowHasher::new()));
        peers
            .entry(peer)
            .and_modify(|f| {
                f.conns += 1;
                f.first_ns = f.first_ns.min(first);
                f.last_ns = f.last_ns.max(last);
            })
            .or_insert(PeerFigures {
                conns: 1,
                first_ns: first,
                last_ns: last,
            });
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Connections whose ends are kept.
    pub fn end_count(&self) -> usize {
        self.ends.len()
    }

    /// The listeners folded so far, in the table's order.
    pub fn listener_rows(&self) -> ListenerRows {
        // Each listener with its address's code, and its peers with theirs.
        let mut addrs = AddrTexts::new();
        let mut listeners: Vec<(ListenerKey, u32, Vec<CodedPeer>)> = Vec::new();
        for (key, peers) in &self.listeners {
            let addr = addrs.code(&key.addr);
            let peers = peers.iter().map(|(p, f)| (addrs.code(p), *f));
            listeners.push((*key, addr, peers.collect()));
        }
        let mut out = ListenerRows {
            texts: addrs.texts,
            peer_start: vec![0],
            ..ListenerRows::default()
        };
        let texts = &out.texts;
        listeners.sort_unstable_by(|(a, at, _), (b, bt, _)| {
            (!a.tcp, a.port, &texts[*at as usize]).cmp(&(!b.tcp, b.port, &texts[*bt as usize]))
        });
        for (key, addr, mut peers) in listeners {
            peers.sort_unstable_by(|(a, af), (b, bf)| {
                (Reverse(af.conns), &texts[*a as usize])
                    .cmp(&(Reverse(bf.conns), &texts[*b as usize]))
            });
            out.tcp.push(key.tcp);
            out.addr.push(addr);
            out.port.push(key.port);
            out.conns.push(peers.iter().map(|(_, f)| f.conns).sum());
            out.first_ns
                .push(peers.iter().map(|(_, f)| f.first_ns).min().unwrap_or(0));
            out.last_ns
                .push(peers.iter().map(|(_, f)| f.last_ns).max().unwrap_or(0));
            out.peer_addr.extend(peers.iter().map(|(p, _)| *p));
            out.peer_conns.extend(peers.iter().map(|(_, f)| f.conns));
            out.peer_start.push(out.peer_addr.len());
        }
        out
    }

    /// The ends of connections `start..stop` (clamped), in the order they ended.
    pub fn end_rows(&self, start: usize, stop: usize) -> EndRows {
        let stop = stop.min(self.ends.len());
        let ends = self.ends.get(start.min(stop)..stop).unwrap_or_default();
        let mut addrs = AddrTexts::new();
        let mut out = EndRows {
            uids: String::with_capacity(ends.len().saturating_mul(18)),
            ..EndRows::default()
        };
        for e in ends {
            out.tcp.push(u8::from(e.tcp));
            out.orig_state.push(u16::from(e.orig_state));
            out.resp_state.push(u16::from(e.resp_state));
            out.orig_h.push(addrs.code(&e.orig_h));
            out.orig_p.push(e.orig_p);
            out.resp_h.push(addrs.code(&e.resp_h));
            out.resp_p.push(e.resp_p);
            out.uids.push('C');
            out.uids.extend(e.uid.iter().map(|&c| char::from(c)));
        }
        out.addrs = addrs.texts;
        out
    }

    /// Forget the listeners (they were handed over as rows).
    pub fn clear_listeners(&mut self) {
        self.listeners.clear();
    }

    /// Forget the connections' ends (they were handed over).
    pub fn clear_ends(&mut self) {
        self.ends.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::v4_mapped;

    struct Row {
        proto: u8,
        orig: [u8; 4],
        orig_p: u16,
        resp: [u8; 4],
        resp_p: u16,
        history: &'static str,
        conn_state: ConnState,
        states: (u8, u8),
        ts: (i64, i64),
    }

    fn batch(rows: &[Row]) -> ConnBatch {
        let mut b = ConnBatch::default();
        for (k, r) in rows.iter().enumerate() {
            let mut uid = [b'a'; 17];
            uid[16] = b'0' + u8::try_from(k).expect("a few rows");
            b.uid.push(uid);
            b.proto.push(r.proto);
            b.orig_h.push(v4_mapped(r.orig));
            b.orig_p.push(r.orig_p);
            b.resp_h.push(v4_mapped(r.resp));
            b.resp_p.push(r.resp_p);
            b.history.push(r.history.to_string());
            b.conn_state.push(r.conn_state as u8);
            b.orig_state.push(r.states.0);
            b.resp_state.push(r.states.1);
            b.ts_ns.push(r.ts.0);
            b.last_ns.push(r.ts.1);
        }
        b
    }

    const CLIENT: [u8; 4] = [10, 0, 0, 9];
    const OTHER: [u8; 4] = [10, 0, 0, 10];
    const SERVER: [u8; 4] = [10, 0, 0, 2];
    const ESTAB: u8 = 4;
    const SYN_SENT: u8 = 2;

    fn tcp(orig: [u8; 4], resp: [u8; 4], resp_p: u16, history: &'static str, ts: i64) -> Row {
        Row {
            proto: 6,
            orig,
            orig_p: 40000,
            resp,
            resp_p,
            history,
            conn_state: ConnState::SF,
            states: (ESTAB, SYN_SENT),
            ts: (ts, ts + 5),
        }
    }

    #[test]
    fn listeners_as_socket_table_add_in_the_tables_order() {
        // Expected values: SocketTable.add (portlens.analysis.sockets) of the same
        // connections, worked out by hand: a SYN answered (h) makes the responder a listener,
        // H the originator; a UDP datagram answered (SF) the responder; a refused SYN (no h)
        // and an unanswered datagram (S0) none.
        let udp = |conn_state, ts| Row {
            proto: 17,
            orig: CLIENT,
            orig_p: 5353,
            resp: SERVER,
            resp_p: 53,
            history: "Dd",
            conn_state,
            states: (NONE_U8, NONE_U8),
            ts: (ts, ts),
        };
        let b = batch(&[
            tcp(CLIENT, SERVER, 80, "ShAdaFf", 100),
            tcp(OTHER, SERVER, 80, "ShAdaFf", 50),
            tcp(OTHER, SERVER, 80, "ShR", 300),
            tcp(CLIENT, SERVER, 22, "Sr", 10), // refused: no listener
            Row {
                // the originator answered a SYN: it listens
                orig: SERVER,
                orig_p: 22,
                resp: CLIENT,
                resp_p: 40000,
                ..tcp(SERVER, CLIENT, 22, "HSa", 20)
            },
            udp(ConnState::SF, 7),
            udp(ConnState::S0, 8),
        ]);
        let mut fold = SocketFold::new(true);
        fold.add(&b);
        let rows = fold.listener_rows();
        assert_eq!(rows.tcp, [true, true, false]);
        let text = |codes: &[u32]| -> Vec<&str> {
            codes
                .iter()
                .map(|&c| rows.texts[c as usize].as_str())
                .collect()
        };
        assert_eq!(text(&rows.addr), ["10.0.0.2", "10.0.0.2", "10.0.0.2"]);
        assert_eq!(rows.port, [22, 80, 53]);
        assert_eq!(rows.conns, [1, 3, 1]);
        assert_eq!(rows.first_ns, [20, 50, 7]);
        assert_eq!(rows.last_ns, [25, 305, 7]);
        // Port 80's peers: most connections first.
        assert_eq!(rows.peer_start, [0, 1, 3, 4]);
        assert_eq!(
            text(&rows.peer_addr),
            ["10.0.0.9", "10.0.0.10", "10.0.0.9", "10.0.0.9"]
        );
        assert_eq!(rows.texts.len(), 3); // each address once
        assert_eq!(rows.peer_conns, [1, 2, 1, 1]);
        assert_eq!(fold.listener_count(), 3);
        fold.clear_listeners();
        assert_eq!(fold.listener_rows().peer_start, [0]);
    }

    #[test]
    fn ends_of_tcp_and_udp_connections_with_codes_into_the_blocks_texts() {
        let mut icmp = tcp(CLIENT, SERVER, 0, "", 1);
        icmp.proto = 1;
        let mut udp = tcp(OTHER, SERVER, 53, "Dd", 2);
        udp.proto = 17;
        udp.states = (NONE_U8, NONE_U8);
        let b = batch(&[tcp(CLIENT, SERVER, 80, "ShAdaFf", 0), icmp, udp]);
        let mut fold = SocketFold::new(true);
        fold.add(&b);
        assert_eq!(fold.end_count(), 2); // not the ICMP one
        let ends = fold.end_rows(0, 10);
        assert_eq!(ends.addrs, ["10.0.0.9", "10.0.0.2", "10.0.0.10"]);
        assert_eq!(ends.tcp, [1, 0]);
        assert_eq!(ends.orig_state, [u16::from(ESTAB), u16::from(NO_STATE)]);
        assert_eq!(ends.resp_state, [u16::from(SYN_SENT), u16::from(NO_STATE)]);
        assert_eq!((ends.orig_h, ends.resp_h), (vec![0, 2], vec![1, 1]));
        assert_eq!(
            (ends.orig_p, ends.resp_p),
            (vec![40000, 40000], vec![80, 53])
        );
        assert_eq!(ends.uids, "Caaaaaaaaaaaaaaaa0Caaaaaaaaaaaaaaaa2");
        assert_eq!(SS_NAMES[usize::from(ESTAB)], "ESTAB");
        // A block's codes index its own texts.
        let second = fold.end_rows(1, 2);
        assert_eq!(second.addrs, ["10.0.0.10", "10.0.0.2"]);
        assert_eq!((second.orig_h, second.resp_h), (vec![0], vec![1]));
        assert!(fold.end_rows(5, 9).is_empty());
        // --listening keeps no ends (the listeners: port 80's, and the UDP one that answered).
        let mut listening = SocketFold::new(false);
        listening.add(&b);
        assert_eq!((listening.end_count(), listening.listener_count()), (0, 2));
    }
}
