//! Zeek's conn.log lines as text, written straight from the tracker's connection columns.
//!
//! `portlens conns --format zeek` spent a sixth of its time formatting tens of thousands of
//! lines in Python; here one line costs a few hundred instructions. The text is exactly
//! `portlens.report.conns.zeek_row`'s (tests/test_columns.py compares both on every capture):
//! Zeek's time format (seconds and 6 decimals, the microseconds truncated as Zeek reads
//! them), `-` for unset fields, duration and byte counts only when the duration is positive,
//! addresses as Python's `ipaddress` writes them (IPv4-mapped ones as a dotted quad).

use std::ops::Range;

use crate::text::{push_hex, push_int, push_padded, push_uint};
use crate::track::columns::{proto_name, ConnBatch};
use crate::track::ids::write_uid;
use crate::track::zeek::CONN_STATE_NAMES;

/// The IPv4-mapped prefix of the 16-byte address columns (::ffff:0:0/96).
const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];

/// One connection's conn.log fields, borrowed from the columns.
pub struct ConnLogRow<'a> {
    pub ts_ns: i64,
    pub uid: &'a str,
    pub orig_h: &'a [u8; 16],
    pub orig_p: u16,
    pub resp_h: &'a [u8; 16],
    pub resp_p: u16,
    pub proto: &'a str,
    pub duration_ns: i64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub conn_state: &'a str,
    pub missed_bytes: u64,
    pub history: &'a str,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub tunnel_parents: &'a [&'a str],
    pub ip_proto: u8,
    pub community_id: &'a str,
}

/// Appends `row`'s conn.log line (with its newline) to `out`.
pub fn push_line(out: &mut String, row: &ConnLogRow<'_>) {
    push_seconds(out, row.ts_ns);
    out.push('\t');
    out.push_str(row.uid);
    out.push('\t');
    push_addr(out, row.orig_h);
    out.push('\t');
    push_int(out, row.orig_p);
    out.push('\t');
    push_addr(out, row.resp_h);
    out.push('\t');
    push_int(out, row.resp_p);
    out.push('\t');
    out.push_str(row.proto);
    out.push_str("\t-\t");
    if row.duration_ns > 0 {
        push_seconds(out, row.duration_ns);
        out.push('\t');
        push_uint(out, row.orig_bytes);
        out.push('\t');
        push_uint(out, row.resp_bytes);
    } else {
        out.push_str("-\t-\t-");
    }
    out.push('\t');
    out.push_str(row.conn_state);
    out.push_str("\t-\t-\t");
    push_uint(out, row.missed_bytes);
    out.push('\t');
    push_or_unset(out, row.history);
    for n in [
        row.orig_pkts,
        row.orig_ip_bytes,
        row.resp_pkts,
        row.resp_ip_bytes,
    ] {
        out.push('\t');
        push_uint(out, n);
    }
    out.push('\t');
    if row.tunnel_parents.is_empty() {
        out.push('-');
    } else {
        for (i, p) in row.tunnel_parents.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(p);
        }
    }
    out.push('\t');
    push_int(out, row.ip_proto);
    out.push('\t');
    push_or_unset(out, row.community_id);
    out.push('\n');
}

/// The conn.log lines of the rows `rows` of a tracker's ended connections (clamped to its
/// rows), straight from the tracker's columns: `conns --format zeek` of the compiled tracker
/// in its own process makes no Python object a row. The names are the ones the binding gives
/// the columns `portlens._core.conn_log_lines` reads, so both ways write the same bytes
/// (tests/test_conn_log_text.py compares them on every capture).
pub fn push_batch(out: &mut String, b: &ConnBatch, rows: Range<usize>) {
    let rows = rows.start.min(b.len())..rows.end.min(b.len());
    push_rows(out, rows.map(|i| (b, i)));
}

/// The conn.log lines of `rows`, each a row of one of several batches (the shards' rows
/// that ended, in one tracker's order: `Ended::rows`), as `push_batch` writes them.
pub fn push_rows<'b>(out: &mut String, rows: impl Iterator<Item = (&'b ConnBatch, usize)>) {
    let (mut uid, mut parents) = (String::with_capacity(18), Vec::<String>::new());
    for (b, i) in rows {
        write_uid(&mut uid, &b.uid[i]);
        let row_parents = &b.tunnel_parents[i];
        parents.resize_with(row_parents.len(), String::new);
        for (text, p) in parents.iter_mut().zip(row_parents) {
            write_uid(text, p);
        }
        let parent_strs: Vec<&str> = parents.iter().map(String::as_str).collect();
        let state = usize::from(b.conn_state[i]);
        push_line(
            out,
            &ConnLogRow {
                ts_ns: b.ts_ns[i],
                uid: &uid,
                orig_h: &b.orig_h[i],
                orig_p: b.orig_p[i],
                resp_h: &b.resp_h[i],
                resp_p: b.resp_p[i],
                proto: proto_name(b.proto[i]),
                duration_ns: b.duration_ns[i],
                orig_bytes: b.orig_bytes[i],
                resp_bytes: b.resp_bytes[i],
                conn_state: CONN_STATE_NAMES.get(state).copied().unwrap_or("-"),
                missed_bytes: b.missed_bytes[i],
                history: &b.history[i],
                orig_pkts: b.orig_pkts[i],
                orig_ip_bytes: b.orig_ip_bytes[i],
                resp_pkts: b.resp_pkts[i],
                resp_ip_bytes: b.resp_ip_bytes[i],
                tunnel_parents: &parent_strs,
                ip_proto: b.proto[i],
                community_id: &b.community_id[i],
            },
        );
    }
}

fn push_or_unset(out: &mut String, s: &str) {
    out.push_str(if s.is_empty() { "-" } else { s });
}

/// Nanoseconds as Zeek's seconds: whole microseconds (floored, as Python's `//`), then
/// `seconds.micros` with 6 digits.
pub fn push_seconds(out: &mut String, ns: i64) {
    let us = ns.div_euclid(1000);
    push_int(out, us.div_euclid(1_000_000));
    out.push('.');
    push_padded(out, us.rem_euclid(1_000_000), 6);
}

/// A 16-byte address column value as text: IPv4-mapped as a dotted quad, else IPv6 in
/// Python's `ipaddress` form (RFC 5952: lower-case hex, the first longest run of two or more
/// zero groups as `::`).
pub fn push_addr(out: &mut String, a: &[u8; 16]) {
    if a[..12] == V4_MAPPED {
        push_v4(out, a);
    } else {
        push_v6(out, a);
    }
}

/// The last four bytes of a 16-byte address column value as a dotted quad.
pub fn push_v4(out: &mut String, a: &[u8; 16]) {
    // by hand: `write!` of four numbers cost more than the rest of a packet's line
    for (k, &b) in a[12..].iter().enumerate() {
        if k > 0 {
            out.push('.');
        }
        if b >= 100 {
            out.push(char::from(b'0' + b / 100));
        }
        if b >= 10 {
            out.push(char::from(b'0' + b / 10 % 10));
        }
        out.push(char::from(b'0' + b % 10));
    }
}

/// A 16-byte address as IPv6 text, as Python 3.11's `ipaddress.IPv6Address` writes it: an
/// IPv4-mapped one in hex too (`::ffff:102:304`).
pub fn push_v6(out: &mut String, a: &[u8; 16]) {
    let groups: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]));
    let (mut best_at, mut best_len) = (0usize, 0usize);
    let mut i = 0;
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best_at, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    let hex = |out: &mut String, from: usize, to: usize| {
        for (k, g) in groups[from..to].iter().enumerate() {
            if k > 0 {
                out.push(':');
            }
            push_hex(out, *g);
        }
    };
    if best_len > 1 {
        hex(out, 0, best_at);
        out.push_str("::");
        hex(out, best_at + best_len, 8);
    } else {
        hex(out, 0, 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: [u8; 16]) -> String {
        let mut s = String::new();
        push_addr(&mut s, &a);
        s
    }

    fn v6(groups: [u16; 8]) -> [u8; 16] {
        let mut a = [0u8; 16];
        for (i, g) in groups.iter().enumerate() {
            a[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
        }
        a
    }

    #[test]
    fn addresses_as_python_writes_them() {
        // Expected values: str(ipaddress.ip_address(...)) in Python 3.11.
        let mut m = [0u8; 16];
        m[10..].copy_from_slice(&[0xFF, 0xFF, 192, 168, 0, 1]);
        assert_eq!(addr(m), "192.168.0.1");
        assert_eq!(addr([0; 16]), "::");
        assert_eq!(addr(v6([0, 0, 0, 0, 0, 0, 0, 1])), "::1");
        assert_eq!(addr(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0])), "2001:db8::");
        assert_eq!(
            addr(v6([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1])),
            "2001:db8:0:1::1"
        );
        assert_eq!(addr(v6([0x2001, 0, 0, 1, 0, 0, 1, 1])), "2001::1:0:0:1:1");
        assert_eq!(
            addr(v6([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1])),
            "2001:db8:0:1:1:1:1:1"
        );
        assert_eq!(
            addr(v6([0xfe80, 0, 0, 0, 0x20c, 0x29ff, 0xfe, 0xABCD])),
            "fe80::20c:29ff:fe:abcd"
        );
        // IPv4-compatible (not mapped): hex, as Python writes it
        assert_eq!(addr(v6([0, 0, 0, 0, 0, 0, 0x102, 0x304])), "::102:304");
    }

    #[test]
    fn a_batch_row_is_the_line_of_its_fields() {
        // Expected: zeek_row (portlens.report.conns) of the same connection, by hand.
        let mut a = [0u8; 16];
        a[10..].copy_from_slice(&[0xFF, 0xFF, 10, 0, 0, 1]);
        let mut b = ConnBatch::default();
        b.uid.push(*b"AbCdEfGhIjKlMnOpQ");
        b.ts_ns.push(1_700_000_000_123_456_789);
        b.orig_h.push(a);
        b.orig_p.push(40_000);
        b.resp_h.push(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]));
        b.resp_p.push(443);
        b.proto.push(6);
        b.duration_ns.push(1_500_000);
        b.orig_bytes.push(10);
        b.resp_bytes.push(20);
        b.conn_state.push(0);
        b.missed_bytes.push(0);
        b.history.push("ShADadFf".into());
        b.orig_pkts.push(5);
        b.orig_ip_bytes.push(300);
        b.resp_pkts.push(4);
        b.resp_ip_bytes.push(250);
        b.tunnel_parents
            .push(vec![*b"ZZZZZZZZZZZZZZZZZ", *b"YYYYYYYYYYYYYYYYY"]);
        b.community_id.push("1:abc=".into());
        let mut out = String::new();
        push_batch(&mut out, &b, 0..5);
        assert_eq!(
            out,
            format!(
                "1700000000.123456\tCAbCdEfGhIjKlMnOpQ\t10.0.0.1\t40000\t2001:db8::1\t443\ttcp\t-\t\
                 0.001500\t10\t20\t{}\t-\t-\t0\tShADadFf\t5\t300\t4\t250\t\
                 CZZZZZZZZZZZZZZZZZ,CYYYYYYYYYYYYYYYYY\t6\t1:abc=\n",
                CONN_STATE_NAMES[0]
            )
        );
        out.clear();
        push_batch(&mut out, &b, 1..1);
        assert!(out.is_empty());
    }

    #[test]
    fn seconds_floor_like_python() {
        let mut s = String::new();
        push_seconds(&mut s, 1_234_567_891_999);
        s.push(' ');
        push_seconds(&mut s, -1);
        s.push(' ');
        push_seconds(&mut s, 0);
        // Python: f"{u // 1_000_000}.{u % 1_000_000:06d}" with u = ns // 1000
        assert_eq!(s, "1234.567891 -1.999999 0.000000");
    }
}
