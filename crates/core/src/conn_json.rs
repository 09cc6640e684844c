//! `conns --json` lines, written straight from the tracker's connection columns.
//!
//! Making a Python `Connection` (and a `Transition` per state change) for every row, then a
//! dict, then `json.dumps`, was nine tenths of `conns --json`; here a line costs a few
//! hundred instructions a field. The text is exactly what
//! `json_line(record(c))` in `portlens.report.conns` writes (tests/test_conn_json.py compares
//! both on every capture), so Python's JSON is copied to the byte: the keys in `record`'s
//! order, `,` and `:` with no spaces, `null`/`true`/`false`, strings as `json.dumps` with
//! `ensure_ascii` writes them (`\uXXXX` for anything outside printable ASCII), and floats
//! as Python's `repr` (the shortest digits that read back to the same double; an exponent
//! below 1e-4 and from 1e16 on: `1e-06`, `1.5e+16`).

use std::fmt::Write;

use crate::conn_log::{push_addr, ConnLogRow};
use crate::text::{push_int, push_uint};

/// What one side offered in its SYN or SYN-ACK (`report.conns._options`).
#[derive(Debug, Clone, Copy)]
pub struct JsonOptions<'a> {
    pub mss: Option<i32>,
    pub wscale: Option<i16>,
    pub sack_perm: bool,
    pub timestamps: bool,
    pub kinds: &'a [u8],
}

/// A TCP connection's handshake record.
#[derive(Debug, Clone, Copy)]
pub struct JsonHandshake<'a> {
    pub outcome: &'a str,
    pub syn_ns: Option<i64>,
    pub syn_ack_ns: Option<i64>,
    pub ack_ns: Option<i64>,
    pub syn_retransmits: u32,
    pub syn_ack_retransmits: u32,
    pub client_options: Option<JsonOptions<'a>>,
    pub server_options: Option<JsonOptions<'a>>,
}

/// One state change of a connection's endpoint (`report.conns.transition_record` of a
/// transition kept in its connection: no 5-tuple, the connection's uid).
#[derive(Debug, Clone, Copy)]
pub struct JsonTransition<'a> {
    pub ts_ns: i64,
    pub frame: i64,
    pub endpoint: &'a str,
    pub event: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub payload: i64,
}

/// One connection's record (`report.conns.record`): conn.log's fields, then what portlens
/// adds; what `--json` writes, and `--csv` a part of (conn_csv).
pub struct RecordRow<'a> {
    pub conn: ConnLogRow<'a>,
    /// The responder port's service name ('' for none: `null`).
    pub port_service: &'a str,
    pub ip_version: u8,
    pub vlan: Option<i32>,
    /// The endpoints' RFC 9293 states (TCP only).
    pub states: Option<(&'a str, &'a str)>,
    pub end_reason: &'a str,
    pub completeness: u8,
    pub first_frame: i64,
    pub last_frame: i64,
    pub icmp_errors: &'a [(i64, i64)],
    /// ICMP flows: the code of the originator's first message (None: unknown), its type
    /// being `orig_p`; None for other protocols.
    pub icmp: Option<Option<i64>>,
    pub handshake: Option<JsonHandshake<'a>>,
    /// Sequence analysis counters by name, in `TcpAnalysis`'s field order (TCP only).
    pub analysis: Option<(&'a [&'a str], &'a [u32])>,
    pub transitions: &'a [JsonTransition<'a>],
}

/// The letters of `flags_text` (a transition's, a packet's JSON object's), in bit order
/// (`report.packets.FLAG_LETTERS`).
const FLAG_LETTERS: [(u16, char); 9] = [
    (0x01, 'F'),
    (0x02, 'S'),
    (0x04, 'R'),
    (0x08, 'P'),
    (0x10, 'A'),
    (0x20, 'U'),
    (0x40, 'E'),
    (0x80, 'W'),
    (0x100, 'N'),
];

/// Appends `row`'s JSON line (with its newline) to `out`.
pub fn push_record(out: &mut String, row: &RecordRow<'_>) {
    let c = &row.conn;
    let has_duration = c.duration_ns > 0;
    out.push_str("{\"ts\":");
    push_seconds(out, c.ts_ns);
    out.push_str(",\"ts_ns\":");
    push_int(out, c.ts_ns);
    out.push_str(",\"uid\":");
    push_str(out, c.uid);
    out.push_str(",\"id.orig_h\":\"");
    push_addr(out, c.orig_h);
    out.push_str("\",\"id.orig_p\":");
    push_int(out, c.orig_p);
    out.push_str(",\"id.resp_h\":\"");
    push_addr(out, c.resp_h);
    out.push_str("\",\"id.resp_p\":");
    push_int(out, c.resp_p);
    out.push_str(",\"proto\":");
    push_str(out, c.proto);
    out.push_str(",\"ip_proto\":");
    push_int(out, c.ip_proto);
    out.push_str(",\"service\":null,\"port_service\":");
    push_str_or_null(
        out,
        (!row.port_service.is_empty()).then_some(row.port_service),
    );
    out.push_str(",\"duration\":");
    if has_duration {
        push_seconds(out, c.duration_ns);
        out.push_str(",\"duration_ns\":");
        push_int(out, c.duration_ns);
        out.push_str(",\"orig_bytes\":");
        push_uint(out, c.orig_bytes);
        out.push_str(",\"resp_bytes\":");
        push_uint(out, c.resp_bytes);
    } else {
        out.push_str("null,\"duration_ns\":");
        push_int(out, c.duration_ns);
        out.push_str(",\"orig_bytes\":null,\"resp_bytes\":null");
    }
    out.push_str(",\"conn_state\":");
    push_str(out, c.conn_state);
    out.push_str(",\"missed_bytes\":");
    push_uint(out, c.missed_bytes);
    out.push_str(",\"history\":");
    push_str(out, c.history);
    for (key, n) in [
        (",\"orig_pkts\":", c.orig_pkts),
        (",\"orig_ip_bytes\":", c.orig_ip_bytes),
        (",\"resp_pkts\":", c.resp_pkts),
        (",\"resp_ip_bytes\":", c.resp_ip_bytes),
    ] {
        out.push_str(key);
        push_uint(out, n);
    }
    out.push_str(",\"tunnel_parents\":[");
    for (i, p) in c.tunnel_parents.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, p);
    }
    out.push_str("],\"community_id\":");
    push_str(out, c.community_id);
    out.push_str(",\"ip_version\":");
    push_int(out, row.ip_version);
    out.push_str(",\"vlan\":");
    push_int_or_null(out, row.vlan.map(i64::from));
    out.push_str(",\"orig_state\":");
    push_str_or_null(out, row.states.map(|s| s.0));
    out.push_str(",\"resp_state\":");
    push_str_or_null(out, row.states.map(|s| s.1));
    out.push_str(",\"end_reason\":");
    push_str(out, row.end_reason);
    out.push_str(",\"completeness\":");
    push_int(out, row.completeness);
    out.push_str(",\"first_frame\":");
    push_int(out, row.first_frame);
    out.push_str(",\"last_frame\":");
    push_int(out, row.last_frame);
    out.push_str(",\"icmp_errors\":[");
    for (i, (t, code)) in row.icmp_errors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        push_int(out, *t);
        out.push(',');
        push_int(out, *code);
        out.push(']');
    }
    out.push_str("],\"icmp_type\":");
    match row.icmp {
        Some(code) => {
            push_int(out, c.orig_p);
            out.push_str(",\"icmp_code\":");
            push_int_or_null(out, code);
        }
        None => out.push_str("null,\"icmp_code\":null"),
    }
    if let Some(hs) = &row.handshake {
        push_handshake(out, hs);
    }
    if let Some((names, counts)) = row.analysis {
        out.push_str(",\"analysis\":{");
        for (i, (name, n)) in names.iter().zip(counts).enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_str(out, name);
            out.push(':');
            push_int(out, *n);
        }
        out.push('}');
    }
    out.push_str(",\"transitions\":[");
    for (i, t) in row.transitions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_transition(out, t, c.uid);
    }
    out.push_str("]}\n");
}

fn push_handshake(out: &mut String, hs: &JsonHandshake<'_>) {
    out.push_str(",\"handshake\":{\"outcome\":");
    push_str(out, hs.outcome);
    out.push_str(",\"syn_ns\":");
    push_int_or_null(out, hs.syn_ns);
    out.push_str(",\"syn_ack_ns\":");
    push_int_or_null(out, hs.syn_ack_ns);
    out.push_str(",\"ack_ns\":");
    push_int_or_null(out, hs.ack_ns);
    out.push_str(",\"syn_retransmits\":");
    push_int(out, hs.syn_retransmits);
    out.push_str(",\"syn_ack_retransmits\":");
    push_int(out, hs.syn_ack_retransmits);
    out.push_str(",\"server_rtt_ns\":");
    // Differences of i64 as Python's ints: in i128 nothing overflows.
    let diff = |a: Option<i64>, b: Option<i64>| Some(i128::from(b?) - i128::from(a?));
    let push_wide = |out: &mut String, d: Option<i128>| match d.map(i64::try_from) {
        Some(Ok(d)) => push_int(out, d),
        Some(Err(_)) => {
            let _ = write!(out, "{}", d.unwrap_or_default()); // beyond an i64: 584 years
        }
        None => out.push_str("null"),
    };
    push_wide(out, diff(hs.syn_ns, hs.syn_ack_ns));
    out.push_str(",\"client_rtt_ns\":");
    push_wide(out, diff(hs.syn_ack_ns, hs.ack_ns));
    out.push_str(",\"client_options\":");
    push_options(out, hs.client_options.as_ref());
    out.push_str(",\"server_options\":");
    push_options(out, hs.server_options.as_ref());
    out.push('}');
}

fn push_options(out: &mut String, o: Option<&JsonOptions<'_>>) {
    let Some(o) = o else {
        out.push_str("null");
        return;
    };
    out.push_str("{\"mss\":");
    push_int_or_null(out, o.mss.map(i64::from));
    out.push_str(",\"wscale\":");
    push_int_or_null(out, o.wscale.map(i64::from));
    let _ = write!(
        out,
        ",\"sack_perm\":{},\"timestamps\":{},\"kinds\":[",
        o.sack_perm, o.timestamps
    );
    for (i, k) in o.kinds.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_int(out, *k);
    }
    out.push_str("]}");
}

fn push_transition(out: &mut String, t: &JsonTransition<'_>, uid: &str) {
    out.push_str("{\"ts_ns\":");
    push_int(out, t.ts_ns);
    out.push_str(",\"frame\":");
    push_int(out, t.frame);
    out.push_str(",\"uid\":");
    push_str(out, uid);
    out.push_str(",\"endpoint\":");
    push_str(out, t.endpoint);
    out.push_str(",\"event\":");
    push_str(out, t.event);
    out.push_str(",\"from\":");
    push_str(out, t.from);
    out.push_str(",\"to\":");
    push_str(out, t.to);
    out.push_str(",\"flags\":");
    push_int(out, t.flags);
    out.push_str(",\"flags_text\":\"");
    push_flags_text(out, t.flags);
    out.push_str("\",\"seq\":");
    push_int(out, t.seq);
    out.push_str(",\"ack\":");
    push_int(out, t.ack);
    out.push_str(",\"payload\":");
    push_int(out, t.payload);
    out.push('}');
}

fn push_int_or_null(out: &mut String, v: Option<i64>) {
    match v {
        Some(v) => push_int(out, v),
        None => out.push_str("null"),
    }
}

fn push_str_or_null(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

/// TCP flags as `flags_text`'s letters: 'SA' for SYN-ACK, nothing for none.
pub fn push_flags_text(out: &mut String, flags: u16) {
    for (bit, letter) in FLAG_LETTERS {
        if flags & bit != 0 {
            out.push(letter);
        }
    }
}

/// `s` as a JSON string as `json.dumps` writes it with `ensure_ascii` (its default): `\"`,
/// `\\`, the short escapes `\n \r \t \b \f`, and every other character outside `' '..='~'`
/// as `\u` and four lower-case hex digits (two, a surrogate pair, past U+FFFF).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    // Most texts (uids, states, events, addresses) need no escape: copied whole, where a
    // push a character cost most of a JSON line's strings.
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for u in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Nanoseconds as `record`'s seconds: `ns // 1000 / 1e6` in Python (whole microseconds,
/// floored, made a double, divided by a million: both steps rounded as IEEE 754 does, as
/// Rust's `as f64` and `/` do), written as Python's `repr`.
fn push_seconds(out: &mut String, ns: i64) {
    // |ns // 1000| < 2^63 / 1000: as a double it is the nearest one, as Python's int/float.
    push_float(out, ns.div_euclid(1000) as f64 / 1e6);
}

/// A finite double as Python's `repr(x)` (and `json.dumps`) writes it: the shortest digits
/// that read back to `x` (Rust's `{:e}` finds the same ones), in positional notation when the
/// decimal exponent is from -5 to 15 (with `.0` on a whole number), else as `d.ddde±XX` with
/// at least two exponent digits. Non-finite values (no row has one) as `json.dumps` writes
/// them too.
pub fn push_float(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str(if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
        return;
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    // The decimal point's place after the first digit (Python's `decpt`: x = 0.DIGITS × 10^decpt).
    let decpt = exp + 1;
    out.push_str(sign);
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        for _ in 0..decpt - n {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let (int, frac) = digits.split_at(decpt.unsigned_abs() as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

/// Two rows with every kind of field, for this module's tests and conn_csv's.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    static V4: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 1];
    static V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    static ZERO: [u8; 16] = [0; 16];
    static PARENTS: [&str; 2] = ["Cp1", "Cp2"];
    static NAMES: [&str; 2] = ["retransmissions", "dup_acks"];
    static COUNTS: [u32; 2] = [1, 2];
    static TRANSITIONS: [JsonTransition<'static>; 1] = [JsonTransition {
        ts_ns: 100,
        frame: 1,
        endpoint: "orig",
        event: "send SYN",
        from: "CLOSED",
        to: "SYN-SENT",
        flags: 0x1C2,
        seq: u32::MAX,
        ack: 0,
        payload: 0,
    }];

    /// A TCP connection: a duration under 1e-4 s, tunnel parents, a VLAN, an ICMP error,
    /// a handshake without its ACK and a SYN without MSS, two counters, a transition.
    pub(crate) fn tcp() -> RecordRow<'static> {
        RecordRow {
            conn: ConnLogRow {
                ts_ns: 1_700_000_000_123_456_789,
                uid: "Cabc",
                orig_h: &V4,
                orig_p: 40000,
                resp_h: &V6,
                resp_p: 443,
                proto: "tcp",
                duration_ns: 50_000,
                orig_bytes: 10,
                resp_bytes: 20,
                conn_state: "SF",
                missed_bytes: 0,
                history: "ShADadFf",
                orig_pkts: 3,
                orig_ip_bytes: 300,
                resp_pkts: 4,
                resp_ip_bytes: 400,
                tunnel_parents: &PARENTS,
                ip_proto: 6,
                community_id: "1:x=",
            },
            port_service: "https",
            ip_version: 4,
            vlan: Some(7),
            states: Some(("TIME-WAIT", "CLOSED")),
            end_reason: "fin",
            completeness: 31,
            first_frame: 1,
            last_frame: 9,
            icmp_errors: &[(3, 3)],
            icmp: None,
            handshake: Some(JsonHandshake {
                outcome: "established",
                syn_ns: Some(100),
                syn_ack_ns: Some(300),
                ack_ns: None,
                syn_retransmits: 1,
                syn_ack_retransmits: 0,
                client_options: Some(JsonOptions {
                    mss: None,
                    wscale: Some(7),
                    sack_perm: true,
                    timestamps: false,
                    kinds: &[2, 4, 8, 1, 3],
                }),
                server_options: None,
            }),
            analysis: Some((&NAMES, &COUNTS)),
            transitions: &TRANSITIONS,
        }
    }

    /// An ICMPv6 echo request whose code is unknown: no duration, no service, nothing of
    /// TCP's.
    pub(crate) fn icmp() -> RecordRow<'static> {
        RecordRow {
            conn: ConnLogRow {
                ts_ns: 0,
                uid: "Ci",
                orig_h: &ZERO,
                orig_p: 8,
                resp_h: &V6_ONE,
                resp_p: 0,
                proto: "icmp",
                duration_ns: 0,
                orig_bytes: 0,
                resp_bytes: 0,
                conn_state: "OTH",
                missed_bytes: 0,
                history: "",
                orig_pkts: 1,
                orig_ip_bytes: 48,
                resp_pkts: 0,
                resp_ip_bytes: 0,
                tunnel_parents: &[],
                ip_proto: 58,
                community_id: "",
            },
            port_service: "",
            ip_version: 6,
            vlan: None,
            states: None,
            end_reason: "idle",
            completeness: 0,
            first_frame: 2,
            last_frame: 2,
            icmp_errors: &[],
            icmp: Some(None),
            handshake: None,
            analysis: None,
            transitions: &[],
        }
    }

    static V6_ONE: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_as_json_dumps_writes_them() {
        // Expected values: json.dumps(record, separators=(",", ":")) in Python 3.11 of the
        // same fields.
        let mut out = String::new();
        push_record(&mut out, &fixtures::tcp());
        push_record(&mut out, &fixtures::icmp());
        let want = [
            "{\"ts\":1700000000.123456,\"ts_ns\":1700000000123456789,\"uid\":\"Cabc\",\
             \"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":40000,\"id.resp_h\":\"2001:db8::1\",\
             \"id.resp_p\":443,\"proto\":\"tcp\",\"ip_proto\":6,\"service\":null,\
             \"port_service\":\"https\",\"duration\":5e-05,\"duration_ns\":50000,\
             \"orig_bytes\":10,\"resp_bytes\":20,\"conn_state\":\"SF\",\"missed_bytes\":0,\
             \"history\":\"ShADadFf\",\"orig_pkts\":3,\"orig_ip_bytes\":300,\"resp_pkts\":4,\
             \"resp_ip_bytes\":400,\"tunnel_parents\":[\"Cp1\",\"Cp2\"],\
             \"community_id\":\"1:x=\",\"ip_version\":4,\"vlan\":7,\
             \"orig_state\":\"TIME-WAIT\",\"resp_state\":\"CLOSED\",\"end_reason\":\"fin\",\
             \"completeness\":31,\"first_frame\":1,\"last_frame\":9,\"icmp_errors\":[[3,3]],\
             \"icmp_type\":null,\"icmp_code\":null,\"handshake\":{\"outcome\":\"established\",\
             \"syn_ns\":100,\"syn_ack_ns\":300,\"ack_ns\":null,\"syn_retransmits\":1,\
             \"syn_ack_retransmits\":0,\"server_rtt_ns\":200,\"client_rtt_ns\":null,\
             \"client_options\":{\"mss\":null,\"wscale\":7,\"sack_perm\":true,\
             \"timestamps\":false,\"kinds\":[2,4,8,1,3]},\"server_options\":null},\
             \"analysis\":{\"retransmissions\":1,\"dup_acks\":2},\"transitions\":[{\
             \"ts_ns\":100,\"frame\":1,\"uid\":\"Cabc\",\"endpoint\":\"orig\",\
             \"event\":\"send SYN\",\"from\":\"CLOSED\",\"to\":\"SYN-SENT\",\"flags\":450,\
             \"flags_text\":\"SEWN\",\"seq\":4294967295,\"ack\":0,\"payload\":0}]}\n",
            "{\"ts\":0.0,\"ts_ns\":0,\"uid\":\"Ci\",\"id.orig_h\":\"::\",\"id.orig_p\":8,\
             \"id.resp_h\":\"::1\",\"id.resp_p\":0,\"proto\":\"icmp\",\"ip_proto\":58,\
             \"service\":null,\"port_service\":null,\"duration\":null,\"duration_ns\":0,\
             \"orig_bytes\":null,\"resp_bytes\":null,\"conn_state\":\"OTH\",\"missed_bytes\":0,\
             \"history\":\"\",\"orig_pkts\":1,\"orig_ip_bytes\":48,\"resp_pkts\":0,\
             \"resp_ip_bytes\":0,\"tunnel_parents\":[],\"community_id\":\"\",\"ip_version\":6,\
             \"vlan\":null,\"orig_state\":null,\"resp_state\":null,\"end_reason\":\"idle\",\
             \"completeness\":0,\"first_frame\":2,\"last_frame\":2,\"icmp_errors\":[],\
             \"icmp_type\":8,\"icmp_code\":null,\"transitions\":[]}\n",
        ]
        .concat();
        assert_eq!(out, want);
    }

    fn float(x: f64) -> String {
        let mut s = String::new();
        push_float(&mut s, x);
        s
    }

    fn seconds(ns: i64) -> String {
        let mut s = String::new();
        push_seconds(&mut s, ns);
        s
    }

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s);
        out
    }

    #[test]
    fn floats_as_python_repr_writes_them() {
        // Expected values: repr(x) in Python 3.11.
        let cases: [(f64, &str); 22] = [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (0.00012, "0.00012"),
            (1e-5, "1e-05"),
            (5e-5, "5e-05"),
            (1e-6, "1e-06"),
            (1.5e-7, "1.5e-07"),
            (1.234e-300, "1.234e-300"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (123456.789, "123456.789"),
            (1362692526.869344, "1362692526.869344"),
            (0.30000000000000004, "0.30000000000000004"),
            (100.0, "100.0"),
            (-0.001, "-0.001"),
        ];
        for (x, want) in cases {
            assert_eq!(float(x), want, "{x:e}");
        }
    }

    #[test]
    fn seconds_as_record_computes_them() {
        // Python: repr(ns // 1000 / 1e6)
        assert_eq!(seconds(1_362_692_526_869_344_123), "1362692526.869344");
        assert_eq!(seconds(1_000), "1e-06");
        assert_eq!(seconds(999), "0.0");
        assert_eq!(seconds(50_000), "5e-05");
        assert_eq!(seconds(100_000), "0.0001");
        assert_eq!(seconds(1_500_000_000), "1.5");
        assert_eq!(seconds(-1), "-1e-06");
        // 2^53 + 1 microseconds: the integer rounds to a double before the division
        assert_eq!(seconds(9_007_199_254_740_993_000), "9007199254.740992");
    }

    #[test]
    fn strings_as_json_dumps_writes_them() {
        // Expected values: json.dumps(s) in Python 3.11.
        assert_eq!(text("SF"), "\"SF\"");
        assert_eq!(text(""), "\"\"");
        assert_eq!(text("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(text("\n\r\t\u{8}\u{c}"), "\"\\n\\r\\t\\b\\f\"");
        assert_eq!(text("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\\u007f\"");
        assert_eq!(text("é€"), "\"\\u00e9\\u20ac\"");
        assert_eq!(text("\u{1F600}"), "\"\\ud83d\\ude00\"");
        assert_eq!(text("~ /"), "\"~ /\"");
    }
}
