//! The tracker's inputs and outputs as columns: `Packets` borrows the decoder's PacketBatch
//! columns (numpy arrays held by Python, read without a copy); `ConnBatch` and
//! `TransitionBatch` are what comes out, one row per connection or transition, under the
//! names of `--json` (docs/formats.md).

use super::flow::Flow;
use super::ids::{community_id, Uid};
use super::rfc::{Event, TcpState};
use super::tcp::{Cause, Segment, TcpConn};
use super::zeek::{size, tcp_conn_state, udp_conn_state, ConnState};
use super::{icmp_ports, ColumnError, SynOptions};
use crate::decode::Columns;

/// Borrowed PacketBatch columns (src/portlens/decode/packets.py), one row per frame (and
/// the more rows some frames give, `sub`): what the tracker reads, and what `packet_text`
/// writes `portlens packets`' lines from.
/// Addresses are 16 bytes a row (IPv4-mapped for IPv4), option kinds 40.
#[derive(Debug, Clone, Copy)]
pub struct Packets<'a> {
    pub frame: &'a [i64],
    /// Which of its frame's rows: `decode::columns::SUB_FRAME`, `SUB_CARRIER`, `SUB_MSDU`+.
    pub sub: &'a [u8],
    pub ts_ns: &'a [i64],
    pub wirelen: &'a [u32],
    pub caplen: &'a [u32],
    pub linktype: &'a [u16],
    pub interface: &'a [u16],
    pub vlan: &'a [i32],
    pub ethertype: &'a [u16],
    pub ppp_proto: &'a [u16],
    pub ip_version: &'a [u8],
    pub src: &'a [u8],
    pub dst: &'a [u8],
    pub proto: &'a [u8],
    pub ip_len: &'a [u32],
    /// The innermost IPv4 header's total length was 0 (TSO): Zeek's *_ip_bytes add 0.
    pub ip_len_zero: &'a [bool],
    pub frag: &'a [u8],
    pub l4: &'a [u8],
    pub sport: &'a [u16],
    pub dport: &'a [u16],
    pub payload: &'a [i32],
    pub tcp_flags: &'a [u16],
    pub seq: &'a [u32],
    pub ack: &'a [u32],
    pub win: &'a [u16],
    pub mss: &'a [i32],
    pub wscale: &'a [i16],
    pub sack_perm: &'a [bool],
    pub has_ts: &'a [bool],
    pub tsval: &'a [u32],
    pub opt_count: &'a [u8],
    pub opt_kinds: &'a [u8],
    pub udp_len: &'a [u16],
    /// A DNS header's QR bit / a standard NTP message's mode, -1 if none (decode/app.rs).
    pub dns_qr: &'a [i16],
    pub ntp_mode: &'a [i16],
    pub icmp_type: &'a [i16],
    pub icmp_code: &'a [i16],
    pub q_valid: &'a [bool],
    pub q_src: &'a [u8],
    pub q_dst: &'a [u8],
    pub q_proto: &'a [u8],
    pub q_sport: &'a [u16],
    pub q_dport: &'a [u16],
    pub tunnel_depth: &'a [u8],
    pub tunnel: &'a [u32],
    pub out_src: &'a [u8],
    pub out_dst: &'a [u8],
    pub out_proto: &'a [u8],
    pub out_sport: &'a [u16],
    pub out_dport: &'a [u16],
    pub out_ip_len: &'a [u32],
    /// Two or more tunnels deep: the layer that carries the innermost tunnel.
    pub car_src: &'a [u8],
    pub car_dst: &'a [u8],
    pub car_proto: &'a [u8],
    pub car_sport: &'a [u16],
    pub car_dport: &'a [u16],
    pub car_ip_len: &'a [u32],
    pub truncated: &'a [bool],
    pub ip_csum: &'a [u8],
    pub l4_csum: &'a [u8],
    pub malformed: &'a [u8],
}

impl<'a> Packets<'a> {
    /// The decoder's columns, read where they are (a run that decodes and tracks in the
    /// core, `crate::run`, hands them over without a copy or a trip through Python).
    pub fn of(c: &'a Columns) -> Self {
        Packets {
            frame: &c.frame,
            sub: &c.sub,
            ts_ns: &c.ts_ns,
            wirelen: &c.wirelen,
            caplen: &c.caplen,
            linktype: &c.linktype,
            interface: &c.interface,
            vlan: &c.vlan,
            ethertype: &c.ethertype,
            ppp_proto: &c.ppp_proto,
            ip_version: &c.ip_version,
            src: &c.src,
            dst: &c.dst,
            proto: &c.proto,
            ip_len: &c.ip_len,
            ip_len_zero: &c.ip_len_zero,
            frag: &c.frag,
            l4: &c.l4,
            sport: &c.sport,
            dport: &c.dport,
            payload: &c.payload,
            tcp_flags: &c.tcp_flags,
            seq: &c.seq,
            ack: &c.ack,
            win: &c.win,
            mss: &c.mss,
            wscale: &c.wscale,
            sack_perm: &c.sack_perm,
            has_ts: &c.has_ts,
            tsval: &c.tsval,
            opt_count: &c.opt_count,
            opt_kinds: &c.opt_kinds,
            udp_len: &c.udp_len,
            dns_qr: &c.dns_qr,
            ntp_mode: &c.ntp_mode,
            icmp_type: &c.icmp_type,
            icmp_code: &c.icmp_code,
            q_valid: &c.q_valid,
            q_src: &c.q_src,
            q_dst: &c.q_dst,
            q_proto: &c.q_proto,
            q_sport: &c.q_sport,
            q_dport: &c.q_dport,
            tunnel_depth: &c.tunnel_depth,
            tunnel: &c.tunnel,
            out_src: &c.out_src,
            out_dst: &c.out_dst,
            out_proto: &c.out_proto,
            out_sport: &c.out_sport,
            out_dport: &c.out_dport,
            out_ip_len: &c.out_ip_len,
            car_src: &c.car_src,
            car_dst: &c.car_dst,
            car_proto: &c.car_proto,
            car_sport: &c.car_sport,
            car_dport: &c.car_dport,
            car_ip_len: &c.car_ip_len,
            truncated: &c.truncated,
            ip_csum: &c.ip_csum,
            l4_csum: &c.l4_csum,
            malformed: &c.malformed,
        }
    }
}

pub const OPT_KINDS_MAX: usize = 40;

impl Packets<'_> {
    /// The number of rows, after checking that every column has it.
    pub fn check(&self) -> Result<usize, ColumnError> {
        let n = self.frame.len();
        let lens: [(&str, usize, usize); 61] = [
            ("frame", self.frame.len(), 1),
            ("ts_ns", self.ts_ns.len(), 1),
            ("wirelen", self.wirelen.len(), 1),
            ("caplen", self.caplen.len(), 1),
            ("linktype", self.linktype.len(), 1),
            ("interface", self.interface.len(), 1),
            ("vlan", self.vlan.len(), 1),
            ("ethertype", self.ethertype.len(), 1),
            ("ppp_proto", self.ppp_proto.len(), 1),
            ("ip_version", self.ip_version.len(), 1),
            ("src", self.src.len(), 16),
            ("dst", self.dst.len(), 16),
            ("proto", self.proto.len(), 1),
            ("ip_len", self.ip_len.len(), 1),
            ("ip_len_zero", self.ip_len_zero.len(), 1),
            ("frag", self.frag.len(), 1),
            ("l4", self.l4.len(), 1),
            ("sport", self.sport.len(), 1),
            ("dport", self.dport.len(), 1),
            ("payload", self.payload.len(), 1),
            ("tcp_flags", self.tcp_flags.len(), 1),
            ("seq", self.seq.len(), 1),
            ("ack", self.ack.len(), 1),
            ("win", self.win.len(), 1),
            ("mss", self.mss.len(), 1),
            ("wscale", self.wscale.len(), 1),
            ("sack_perm", self.sack_perm.len(), 1),
            ("has_ts", self.has_ts.len(), 1),
            ("tsval", self.tsval.len(), 1),
            ("opt_count", self.opt_count.len(), 1),
            ("opt_kinds", self.opt_kinds.len(), OPT_KINDS_MAX),
            ("udp_len", self.udp_len.len(), 1),
            ("dns_qr", self.dns_qr.len(), 1),
            ("ntp_mode", self.ntp_mode.len(), 1),
            ("icmp_type", self.icmp_type.len(), 1),
            ("icmp_code", self.icmp_code.len(), 1),
            ("q_valid", self.q_valid.len(), 1),
            ("q_src", self.q_src.len(), 16),
            ("q_dst", self.q_dst.len(), 16),
            ("q_proto", self.q_proto.len(), 1),
            ("q_sport", self.q_sport.len(), 1),
            ("q_dport", self.q_dport.len(), 1),
            ("sub", self.sub.len(), 1),
            ("tunnel_depth", self.tunnel_depth.len(), 1),
            ("tunnel", self.tunnel.len(), 1),
            ("out_src", self.out_src.len(), 16),
            ("out_dst", self.out_dst.len(), 16),
            ("out_proto", self.out_proto.len(), 1),
            ("out_sport", self.out_sport.len(), 1),
            ("out_dport", self.out_dport.len(), 1),
            ("out_ip_len", self.out_ip_len.len(), 1),
            ("car_src", self.car_src.len(), 16),
            ("car_dst", self.car_dst.len(), 16),
            ("car_proto", self.car_proto.len(), 1),
            ("car_sport", self.car_sport.len(), 1),
            ("car_dport", self.car_dport.len(), 1),
            ("car_ip_len", self.car_ip_len.len(), 1),
            ("truncated", self.truncated.len(), 1),
            ("ip_csum", self.ip_csum.len(), 1),
            ("l4_csum", self.l4_csum.len(), 1),
            ("malformed", self.malformed.len(), 1),
        ];
        for (name, len, width) in lens {
            if n.checked_mul(width) != Some(len) {
                return Err(ColumnError(format!(
                    "column {name} has {len} values, expected {n} rows of {width}"
                )));
            }
        }
        Ok(n)
    }

    /// The IP bytes a packet adds to its connection: 0 for a TSO header (total length 0).
    pub fn counted_ip_len(&self, i: usize) -> u32 {
        if self.ip_len_zero[i] {
            0
        } else {
            self.ip_len[i]
        }
    }

    pub fn addr(&self, col: &[u8], i: usize) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&col[16 * i..16 * i + 16]);
        out
    }

    pub fn syn_options(&self, i: usize) -> SynOptions {
        let n = usize::from(self.opt_count[i]).min(OPT_KINDS_MAX);
        let mut kinds = [0u8; 40];
        kinds[..n].copy_from_slice(&self.opt_kinds[OPT_KINDS_MAX * i..OPT_KINDS_MAX * i + n]);
        SynOptions {
            mss: self.mss[i],
            wscale: self.wscale[i],
            sack_perm: self.sack_perm[i],
            timestamps: self.has_ts[i],
            kinds_len: n as u8,
            kinds,
        }
    }
}

/// End reasons in END_REASON_NAMES order.
pub const END_REASON_NAMES: [&str; 5] = ["fin", "rst", "idle", "end-of-capture", "evicted"];

fn end_reason(cause: Cause, fin: bool, rst: bool) -> u8 {
    if rst {
        1
    } else if fin {
        0
    } else {
        match cause {
            Cause::Evicted => 4,
            Cause::End => 3,
            _ => 2,
        }
    }
}

/// Rows a `ConnBatch` keeps room for after `take` (a few MB at most).
const RESERVE_ROWS: usize = 4096;

/// Absent optional times and states.
pub const NONE_I64: i64 = i64::MIN;
pub const NONE_U8: u8 = u8::MAX;

/// Calls `$m!` with every ConnBatch column, for what is done to each alike.
macro_rules! conn_columns {
    ($m:ident) => {
        $m!(
            uid,
            serial,
            ts_ns,
            orig_h,
            orig_p,
            resp_h,
            resp_p,
            proto,
            duration_ns,
            orig_bytes,
            resp_bytes,
            conn_state,
            missed_bytes,
            history,
            orig_pkts,
            orig_ip_bytes,
            resp_pkts,
            resp_ip_bytes,
            tunnel_parents,
            community_id,
            ip_version,
            vlan,
            orig_state,
            resp_state,
            end_reason,
            completeness,
            first_frame,
            last_frame,
            last_ns,
            icmp_errors,
            orig_host,
            handshake_outcome,
            syn_ns,
            syn_ack_ns,
            ack_ns,
            syn_retransmits,
            syn_ack_retransmits,
            client_options,
            server_options,
            analysis,
            icmp_code,
            end_frame,
            end_phase
        )
    };
}

/// A connection's `proto` as conn.log and `--json` name it, from its IP protocol number
/// (`ConnBatch::proto`): ICMPv6 is `icmp` too, as in Zeek.
pub fn proto_name(ip_proto: u8) -> &'static str {
    match ip_proto {
        6 => "tcp",
        17 => "udp",
        1 | 58 => "icmp",
        _ => "unknown_transport",
    }
}

/// Ended connections as columns (docs/formats.md names; addresses 16 bytes a row, codes into
/// the *_NAMES tables). Per-connection lists (tunnel parents, ICMP errors, handshake options)
/// are kept as small vectors, empty for almost every row.
#[derive(Debug, Default)]
pub struct ConnBatch {
    pub uid: Vec<Uid>,
    pub serial: Vec<u64>,
    pub ts_ns: Vec<i64>,
    pub orig_h: Vec<[u8; 16]>,
    pub orig_p: Vec<u16>,
    pub resp_h: Vec<[u8; 16]>,
    pub resp_p: Vec<u16>,
    /// IP protocol number (6, 17, 1, 58, or an unknown_transport flow's protocol).
    pub proto: Vec<u8>,
    pub duration_ns: Vec<i64>,
    pub orig_bytes: Vec<u64>,
    pub resp_bytes: Vec<u64>,
    pub conn_state: Vec<u8>,
    pub missed_bytes: Vec<u64>,
    pub history: Vec<String>,
    pub orig_pkts: Vec<u64>,
    pub orig_ip_bytes: Vec<u64>,
    pub resp_pkts: Vec<u64>,
    pub resp_ip_bytes: Vec<u64>,
    pub tunnel_parents: Vec<Vec<Uid>>,
    pub community_id: Vec<String>,
    pub ip_version: Vec<u8>,
    pub vlan: Vec<i32>,
    pub orig_state: Vec<u8>,
    pub resp_state: Vec<u8>,
    pub end_reason: Vec<u8>,
    pub completeness: Vec<u8>,
    pub first_frame: Vec<i64>,
    pub last_frame: Vec<i64>,
    pub last_ns: Vec<i64>,
    pub icmp_errors: Vec<Vec<(i16, i16)>>,
    /// Which host index (as in TransitionBatch.host) is the originator at the end.
    pub orig_host: Vec<u8>,
    pub handshake_outcome: Vec<u8>,
    pub syn_ns: Vec<i64>,
    pub syn_ack_ns: Vec<i64>,
    pub ack_ns: Vec<i64>,
    pub syn_retransmits: Vec<u32>,
    pub syn_ack_retransmits: Vec<u32>,
    pub client_options: Vec<Option<Box<SynOptions>>>,
    pub server_options: Vec<Option<Box<SynOptions>>>,
    /// Sequence analysis counts, in rfc::ANALYSIS_NAMES order (zeros for UDP and ICMP).
    pub analysis: Vec<[u32; 11]>,
    /// ICMP flows: the code of the originator's first message (i32::MIN for other flows).
    pub icmp_code: Vec<i32>,
    /// Where each row ended (`EndAt`): its frame, and the phase (`END_*`).
    pub end_frame: Vec<i64>,
    pub end_phase: Vec<u8>,
}

/// Where a connection ended, in the order of one tracker reading every packet: the timers
/// that run before frame `frame` arrives, that frame itself, the clock moved without a packet
/// after it (live), or the end of the capture. A tracker emits connections in the order of
/// (`EndAt`, serial), so the rows of flow shards tracked apart (each with the clock of every
/// packet: `Tracker::feed_shard`) merge into the rows of one run by (`EndAt`, creation order),
/// the end of capture last whatever each shard's last frame (src/portlens/pipeline/shards.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndAt {
    pub frame: i64,
    pub phase: u8,
}

/// `EndAt::phase`: timers that fired before the frame arrived.
pub const END_TIMERS: u8 = 0;
/// The frame itself ended it (a FIN/RST close with no delay, a reused tuple, an eviction).
pub const END_PACKET: u8 = 1;
/// The clock moved without a packet after the frame (`advance`, a live capture).
pub const END_CLOCK: u8 = 2;
/// The end of the capture (`finish`), after every frame; `frame` is the tracker's last.
pub const END_CAPTURE: u8 = 3;

impl ConnBatch {
    pub fn len(&self) -> usize {
        self.uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uid.is_empty()
    }

    /// The rows so far; the batch left behind has room for as many (up to RESERVE_ROWS), so
    /// that the next one does not grow its 43 columns from nothing again.
    pub fn take(&mut self) -> ConnBatch {
        let rows = self.len().min(RESERVE_ROWS);
        let out = std::mem::take(self);
        self.reserve(rows);
        out
    }

    fn reserve(&mut self, rows: usize) {
        macro_rules! reserve {
            ($($col:ident),*) => { $(self.$col.reserve(rows);)* };
        }
        conn_columns!(reserve);
    }

    /// Appends `other`'s rows.
    pub fn append(&mut self, mut other: ConnBatch) {
        macro_rules! append {
            ($($col:ident),*) => { $(self.$col.append(&mut other.$col);)* };
        }
        conn_columns!(append);
    }

    /// The rows `order` names, in that order (each at most once).
    pub fn select(mut self, order: &[usize]) -> ConnBatch {
        let mut out = ConnBatch::default();
        macro_rules! select {
            ($($col:ident),*) => {
                $(out.$col = order.iter().map(|&i| std::mem::take(&mut self.$col[i])).collect();)*
            };
        }
        conn_columns!(select);
        out
    }

    /// Where the row just pushed ended (every push_tcp or push_flow is followed by one).
    pub fn push_end(&mut self, at: EndAt) {
        self.end_frame.push(at.frame);
        self.end_phase.push(at.phase);
    }

    fn push_common(&mut self, c: &super::Common, o: usize) {
        let r = 1 - o;
        self.uid.push(c.uid);
        self.serial.push(c.serial);
        self.ts_ns.push(c.first_ts);
        self.orig_h.push(c.addr[o]);
        self.orig_p.push(c.port[o]);
        self.resp_h.push(c.addr[r]);
        self.resp_p.push(c.port[r]);
        self.proto.push(c.proto);
        self.duration_ns
            .push(c.last_zts.saturating_sub(c.start_zts()));
        self.history.push(c.history.as_str().to_owned());
        self.orig_pkts.push(c.pkts[o]);
        self.orig_ip_bytes.push(c.ip_bytes[o]);
        self.resp_pkts.push(c.pkts[r]);
        self.resp_ip_bytes.push(c.ip_bytes[r]);
        let (mut parents, errors) = match &c.extra {
            Some(x) => (x.parents.clone(), x.icmp_errors.clone()),
            None => (Vec::new(), Vec::new()),
        };
        parents.sort_unstable();
        self.tunnel_parents.push(parents);
        self.icmp_errors.push(errors);
        self.ip_version.push(c.ip_version);
        self.vlan.push(c.vlan);
        self.first_frame.push(c.first_frame);
        self.last_frame.push(c.last_frame);
        self.last_ns.push(c.last_ts);
        self.orig_host.push(c.orig);
    }

    pub fn push_tcp(&mut self, conn: &TcpConn, cause: Cause) {
        let c = &conn.c;
        let o = usize::from(c.orig);
        let r = 1 - o;
        self.push_common(c, o);
        let (oe, re) = (&conn.ep[o], &conn.ep[r]);
        self.orig_bytes.push(size(oe, re));
        self.resp_bytes.push(size(re, oe));
        self.conn_state
            .push(tcp_conn_state(oe, re, c.history.as_bytes()) as u8);
        self.missed_bytes.push(conn.missed);
        self.community_id.push(community_id(
            &c.addr[o], &c.addr[r], 6, c.port[o], c.port[r], false,
        ));
        let obs = &conn.obs;
        self.orig_state.push(obs.hosts[o].rfc as u8);
        self.resp_state.push(obs.hosts[r].rfc as u8);
        self.end_reason
            .push(end_reason(cause, obs.fin_hosts == 2, obs.saw_rst));
        self.completeness.push(obs.completeness);
        // The handshake's server: the host that did not send the first SYN. (Without a SYN
        // the outcome is decided before the server is looked at.)
        let server = match obs.client {
            Some(client) => 1 - usize::from(client),
            None => o,
        };
        let outcome = obs.outcome(
            conn.ep[server].state == super::zeek::ZState::Reset,
            conn.ep[server].rst_cnt,
        );
        self.handshake_outcome.push(outcome as u8);
        let hs = &obs.hs;
        self.syn_ns.push(hs.syn_ns.unwrap_or(NONE_I64));
        self.syn_ack_ns.push(hs.syn_ack_ns.unwrap_or(NONE_I64));
        self.ack_ns.push(hs.ack_ns.unwrap_or(NONE_I64));
        self.syn_retransmits.push(hs.syn_retransmits);
        self.syn_ack_retransmits.push(hs.syn_ack_retransmits);
        self.client_options.push(hs.client_options.clone());
        self.server_options.push(hs.server_options.clone());
        self.analysis.push(obs.analysis);
        self.icmp_code.push(i32::MIN);
    }

    pub fn push_flow(&mut self, flow: &Flow, cause: Cause) {
        let c = &flow.c;
        let o = usize::from(c.orig);
        let r = 1 - o;
        self.push_common(c, o);
        self.orig_bytes.push(flow.bytes[o]);
        self.resp_bytes.push(flow.bytes[r]);
        let udp = c.proto == 17;
        self.conn_state.push(if udp {
            udp_conn_state(flow.active[o], flow.active[r]) as u8
        } else {
            ConnState::Oth as u8
        });
        self.missed_bytes.push(0);
        let icmp = matches!(c.proto, 1 | 58);
        let one_way = icmp && icmp_ports(c.port[o], c.port[r], c.proto == 58).2;
        self.community_id.push(community_id(
            &c.addr[o], &c.addr[r], c.proto, c.port[o], c.port[r], one_way,
        ));
        self.orig_state.push(NONE_U8);
        self.resp_state.push(NONE_U8);
        self.end_reason.push(end_reason(cause, false, false));
        self.completeness.push(0);
        self.handshake_outcome.push(NONE_U8);
        self.syn_ns.push(NONE_I64);
        self.syn_ack_ns.push(NONE_I64);
        self.ack_ns.push(NONE_I64);
        self.syn_retransmits.push(0);
        self.syn_ack_retransmits.push(0);
        self.client_options.push(None);
        self.server_options.push(None);
        self.analysis.push([0; 11]);
        self.icmp_code.push(if icmp {
            i32::from(flow.icmp_code)
        } else {
            i32::MIN
        });
    }
}

/// RFC 9293 transitions as they happen (not kept per connection), in event order.
#[derive(Debug, Default)]
pub struct TransitionBatch {
    pub uid: Vec<Uid>,
    /// The connection's serial number (ConnBatch.serial), to join without the uid text.
    pub serial: Vec<u64>,
    pub ts_ns: Vec<i64>,
    pub frame: Vec<i64>,
    /// The host that changed state: 0 = the sender of the connection's first packet.
    pub host: Vec<u8>,
    /// Its role when the transition happened: 0 originator, 1 responder.
    pub endpoint: Vec<u8>,
    pub event: Vec<u8>,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub flags: Vec<u16>,
    pub seq: Vec<u32>,
    pub ack: Vec<u32>,
    pub payload: Vec<i64>,
    /// Zeek's id when the transition happened (roles can flip later).
    pub orig_h: Vec<[u8; 16]>,
    pub orig_p: Vec<u16>,
    pub resp_h: Vec<[u8; 16]>,
    pub resp_p: Vec<u16>,
}

/// A connection's sockets by host, and which host is the originator now.
#[derive(Debug, Clone, Copy)]
pub struct Sockets<'a> {
    pub addr: &'a [[u8; 16]; 2],
    pub port: &'a [u16; 2],
    pub orig: u8,
}

impl TransitionBatch {
    pub fn len(&self) -> usize {
        self.uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uid.is_empty()
    }

    /// Appends `other`'s rows.
    pub fn append(&mut self, mut other: TransitionBatch) {
        macro_rules! append {
            ($($col:ident),*) => { $(self.$col.append(&mut other.$col);)* };
        }
        append!(
            uid, serial, ts_ns, frame, host, endpoint, event, from, to, flags, seq, ack, payload,
            orig_h, orig_p, resp_h, resp_p
        );
    }

    /// The transitions so far; the batch left behind has room for as many (up to
    /// RESERVE_ROWS), as `ConnBatch::take`: a batch's 300 transitions grew 17 columns from
    /// nothing, 9 allocations each.
    pub fn take(&mut self) -> TransitionBatch {
        let rows = self.len().min(RESERVE_ROWS);
        let out = std::mem::take(self);
        macro_rules! reserve {
            ($($col:ident),*) => { $(self.$col.reserve(rows);)* };
        }
        reserve!(
            uid, serial, ts_ns, frame, host, endpoint, event, from, to, flags, seq, ack, payload,
            orig_h, orig_p, resp_h, resp_p
        );
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        uid: Uid,
        serial: u64,
        s: &Segment,
        host: u8,
        responder: bool,
        event: Event,
        old: TcpState,
        new: TcpState,
        sockets: Sockets<'_>,
    ) {
        let o = usize::from(sockets.orig);
        self.orig_h.push(sockets.addr[o]);
        self.orig_p.push(sockets.port[o]);
        self.resp_h.push(sockets.addr[1 - o]);
        self.resp_p.push(sockets.port[1 - o]);
        self.uid.push(uid);
        self.serial.push(serial);
        self.ts_ns.push(s.ts);
        self.frame.push(s.frame);
        self.host.push(host);
        self.endpoint.push(u8::from(responder));
        self.event.push(event as u8);
        self.from.push(old as u8);
        self.to.push(new as u8);
        self.flags.push(s.flags);
        self.seq.push(s.seq);
        self.ack.push(s.ack);
        self.payload.push(s.payload);
    }
}
