//! `portlens packets`' lines, one per packet, written straight from the decoded columns.
//!
//! The listing is what tcpdump users compare portlens with first, and per-packet Python made
//! it three to four times slower than `tcpdump -n -r` (9 µs a line). Here a line costs a few
//! hundred instructions, and the listing is eight times faster than tcpdump's. The text is
//! exactly `portlens.report.packets.line`'s (and the JSON `record`'s), which stay the
//! reference (tests/test_packet_text.py compares them on every capture, in every time style).
//!
//! What words mean stays in Python, written once: the caller hands over the names of IP
//! protocols, ICMP types, tunnels, malformed reasons and checksum statuses as tables
//! ([`Names`]), and the text of each second the batch's times fall in ([`Clock`]): local
//! time, as Python's calendar gives it. The core only puts them together.

use std::fmt::Write;

use crate::conn_json::{push_flags_text, push_str};
use crate::conn_log::{push_v4, push_v6};
use crate::decode::columns::{CSUM_BAD, CSUM_NONE, FRAG_COMPLETE, FRAG_PART, SUB_CARRIER};
use crate::text::{push_int, push_padded};
use crate::track::columns::OPT_KINDS_MAX;
use crate::track::Packets;

/// Row `i`'s option kinds, the first `opt_count` (at most `OPT_KINDS_MAX`).
fn opt_kinds<'a>(r: &Packets<'a>, i: usize) -> &'a [u8] {
    let count = usize::from(r.opt_count[i]).min(OPT_KINDS_MAX);
    let start = i * OPT_KINDS_MAX;
    r.opt_kinds.get(start..start + count).unwrap_or_default()
}

/// The words of a line, as the Python side names things: `services.proto_name` of every IP
/// protocol number, `analysis.icmp.icmp_name` of every ICMP and ICMPv6 type,
/// `decode.tunnels.TUNNEL_NAMES` by 4-bit code, `decode.malformed.reason_label` by code,
/// `decode.packets.CSUM_NAMES` by checksum status.
#[derive(Debug, Clone)]
pub struct Names {
    pub proto: [String; 256],
    pub icmp4: [String; 256],
    pub icmp6: [String; 256],
    pub tunnel: [String; 16],
    pub malformed: [String; 256],
    pub checksum: [String; 4],
}

/// `icmp_name` of a type outside 0..=255 (none is decoded; the column's -1 is "no type").
const UNNAMED_ICMP: &str = "type";

/// tcpdump's `-t` styles (report/clock.py `STYLES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Time of day (default).
    Time,
    /// `-t`: no time.
    None,
    /// `-tt`: seconds since 1970.
    Epoch,
    /// `-ttt`: since the previous line.
    Delta,
    /// `-tttt`: date and time of day.
    Date,
    /// `-ttttt`: since the first line.
    Since,
}

impl Style {
    pub fn of_name(name: &str) -> Option<Self> {
        Some(match name {
            "time" => Style::Time,
            "none" => Style::None,
            "epoch" => Style::Epoch,
            "delta" => Style::Delta,
            "date" => Style::Date,
            "since" => Style::Since,
            _ => return None,
        })
    }
}

/// The times of one output stream: report/clock.py `Clock`, with the text of each second
/// the batch's times fall in given by the caller (the zone's calendar is Python's).
#[derive(Debug, Clone)]
pub struct Clock<'a> {
    pub style: Style,
    /// The distinct seconds (`ts_ns` floored to seconds) of the batch, ascending, and their
    /// text (`Time` and `Date` only; the other styles need none).
    pub seconds: &'a [i64],
    pub second_texts: &'a [String],
    /// The first and the previous time shown in this output, carried from batch to batch.
    pub first_ns: Option<i64>,
    pub previous_ns: Option<i64>,
}

const NS: i64 = 1_000_000_000;

impl Clock<'_> {
    /// Appends one line's time (nothing for `None`) and moves the previous time on; false
    /// when a second's text is missing.
    pub fn push(&mut self, out: &mut String, ts_ns: i64) -> bool {
        let first = *self.first_ns.get_or_insert(ts_ns);
        let previous = self.previous_ns.unwrap_or(ts_ns);
        self.previous_ns = Some(ts_ns);
        match self.style {
            Style::None => true,
            Style::Delta => {
                push_span(out, i128::from(ts_ns) - i128::from(previous));
                true
            }
            Style::Since => {
                push_span(out, i128::from(ts_ns) - i128::from(first));
                true
            }
            Style::Epoch | Style::Time | Style::Date => self.push_stamp(out, ts_ns),
        }
    }

    /// Appends a time in a style that depends on no other line (epoch, time of day, date);
    /// false for the others, and when a second's text is missing.
    pub fn push_stamp(&self, out: &mut String, ts_ns: i64) -> bool {
        let (seconds, ns) = (ts_ns.div_euclid(NS), ts_ns.rem_euclid(NS));
        match self.style {
            Style::Epoch => push_int(out, seconds),
            Style::Time | Style::Date => {
                let Ok(k) = self.seconds.binary_search(&seconds) else {
                    return false;
                };
                let Some(text) = self.second_texts.get(k) else {
                    return false;
                };
                out.push_str(text);
            }
            Style::None | Style::Delta | Style::Since => return false,
        }
        out.push('.');
        push_fraction(out, ns);
        true
    }
}

/// clock.py `fraction`: microseconds, or nanoseconds when they matter.
fn push_fraction(out: &mut String, ns: i64) {
    if ns % 1000 == 0 {
        push_padded(out, ns / 1000, 6);
    } else {
        push_padded(out, ns, 9);
    }
}

/// clock.py `span_text`: a signed interval, ' 00:00:00.010250' or '-00:00:01.500000'.
/// (i128: the difference of two i64 times does not fit an i64.)
fn push_span(out: &mut String, ns: i128) {
    out.push(if ns < 0 { '-' } else { ' ' });
    let abs = ns.unsigned_abs();
    let (seconds, rest) = (abs / 1_000_000_000, abs % 1_000_000_000);
    let (hours, seconds) = (seconds / 3600, seconds % 3600);
    let _ = write!(out, "{hours:02}:{:02}:{:02}.", seconds / 60, seconds % 60);
    // rest < 10^9
    push_fraction(out, rest as i64);
}

/// tcpdump's flag letters (report/packets.py `TCP_FLAG_LETTERS`); ACK is a '.' after them.
const TCP_FLAG_LETTERS: [(u16, char); 8] = [
    (0x02, 'S'),
    (0x01, 'F'),
    (0x04, 'R'),
    (0x08, 'P'),
    (0x20, 'U'),
    (0x40, 'E'),
    (0x80, 'W'),
    (0x100, 'N'),
];
const ACK: u16 = 0x10;

/// An address as `addr_text(raw, version)` writes it, and `:port` after it when given (an
/// IPv6 one in brackets, RFC 5952 §6).
fn push_endpoint(out: &mut String, a: &[u8; 16], version: u8, port: Option<u16>) {
    let v6 = version != 4;
    if v6 && port.is_some() {
        out.push('[');
    }
    if v6 {
        push_v6(out, a);
    } else {
        push_v4(out, a);
    }
    if let Some(port) = port {
        if v6 {
            out.push(']');
        }
        out.push(':');
        push_int(out, port);
    }
}

/// A line is refused: a column of another length, or a second without its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError(pub String);

/// The rows that are packets (not a middle carrier's), once the columns are checked.
/// `picked`: only these rows, in this order (a selection's: `-f`, `--start`, `--end`).
fn packets<'r>(
    rows: &'r Packets<'_>,
    picked: Option<&'r [i64]>,
) -> Result<Box<dyn Iterator<Item = usize> + 'r>, LineError> {
    let n = rows.check().map_err(|e| LineError(e.0))?;
    let not_carrier = move |&i: &usize| rows.sub[i] != SUB_CARRIER;
    let Some(picked) = picked else {
        return Ok(Box::new((0..n).filter(not_carrier)));
    };
    if let Some(&bad) = picked
        .iter()
        .find(|&&i| usize::try_from(i).map_or(true, |i| i >= n))
    {
        return Err(LineError(format!("row {bad} picked of {n}")));
    }
    // in range: checked above
    Ok(Box::new(
        picked.iter().map(|&i| i as usize).filter(not_carrier),
    ))
}

/// Appends every packet's line (or the `picked` rows'), each with its newline, to `out`
/// (report/packets.py `line`).
pub fn push_lines(
    rows: &Packets<'_>,
    picked: Option<&[i64]>,
    names: &Names,
    clock: &mut Clock<'_>,
    out: &mut String,
) -> Result<(), LineError> {
    for i in packets(rows, picked)? {
        push_line(rows, i, names, clock, out)?;
        out.push('\n');
    }
    Ok(())
}

fn push_line(
    r: &Packets<'_>,
    i: usize,
    names: &Names,
    clock: &mut Clock<'_>,
    out: &mut String,
) -> Result<(), LineError> {
    let start = out.len();
    if !clock.push(out, r.ts_ns[i]) {
        return Err(LineError(format!(
            "no text for the second of {} ns",
            r.ts_ns[i]
        )));
    }
    // Parts are joined by one space; an empty time is no part.
    let sep = |out: &mut String| {
        if out.len() > start {
            out.push(' ');
        }
    };
    let version = r.ip_version[i];
    let l4 = r.l4[i];
    if version != 0 {
        let frag = r.frag[i];
        let depth = r.tunnel_depth[i];
        if depth > 0 {
            sep(out);
            out.push('[');
            for k in 0..u32::from(depth) {
                if k > 0 {
                    out.push('/');
                }
                out.push_str(tunnel_name(names, r.tunnel[i], k));
            }
            out.push(']');
        }
        sep(out);
        out.push_str(if version == 4 { "IP " } else { "IP6 " });
        let (sport, dport) = if has_ports(r, i) {
            (Some(r.sport[i]), Some(r.dport[i]))
        } else {
            (None, None)
        };
        push_endpoint(out, &r.addr(r.src, i), version, sport);
        out.push_str(" > ");
        push_endpoint(out, &r.addr(r.dst, i), version, dport);
        out.push(':');
        match l4 {
            6 => {
                let flags = r.tcp_flags[i];
                out.push_str(" tcp [");
                for (bit, letter) in TCP_FLAG_LETTERS {
                    if flags & bit != 0 {
                        out.push(letter);
                    }
                }
                if flags & ACK != 0 {
                    out.push('.');
                }
                out.push_str("] seq ");
                push_int(out, r.seq[i]);
                if flags & ACK != 0 {
                    out.push_str(" ack ");
                    push_int(out, r.ack[i]);
                }
                out.push_str(" win ");
                push_int(out, r.win[i]);
                out.push_str(" len ");
                push_int(out, r.payload[i]);
            }
            17 => {
                out.push_str(" udp ");
                push_int(out, r.payload[i]);
            }
            1 | 58 => {
                let (t, code) = (r.icmp_type[i], r.icmp_code[i]);
                let table = if l4 == 58 { &names.icmp6 } else { &names.icmp4 };
                let name = u8::try_from(t).map_or(UNNAMED_ICMP, |t| &table[usize::from(t)]);
                out.push(' ');
                out.push_str(&names.proto[usize::from(l4)]);
                out.push(' ');
                out.push_str(name);
                out.push(' ');
                push_int(out, t);
                if code >= 0 {
                    out.push('/');
                    push_int(out, code);
                }
            }
            _ => {
                out.push(' ');
                out.push_str(&names.proto[usize::from(r.proto[i])]);
                out.push(' ');
                push_int(out, r.ip_len[i]);
            }
        }
        if frag == FRAG_PART {
            out.push_str(" (fragment)");
        } else if frag == FRAG_COMPLETE {
            out.push_str(" (reassembled)");
        }
    } else {
        sep(out);
        if r.ppp_proto[i] != 0 {
            let _ = write!(out, "PPP 0x{:04x} length ", r.ppp_proto[i]);
        } else if r.ethertype[i] != 0 {
            let _ = write!(out, "ethertype 0x{:04x} length ", r.ethertype[i]);
        } else {
            out.push_str("linktype ");
            push_int(out, r.linktype[i]);
            out.push_str(" length ");
        }
        push_int(out, r.wirelen[i]);
    }
    if r.truncated[i] {
        out.push_str(" [truncated]");
    }
    if r.malformed[i] != 0 {
        out.push_str(" [malformed: ");
        out.push_str(&names.malformed[usize::from(r.malformed[i])]);
        out.push(']');
    }
    let bad_ip = r.ip_csum[i] == CSUM_BAD;
    let bad_l4 = r.l4_csum[i] == CSUM_BAD;
    if bad_ip || bad_l4 {
        out.push_str(" [bad ");
        if bad_ip {
            out.push_str("ip");
        }
        if bad_ip && bad_l4 {
            out.push('+');
        }
        if bad_l4 {
            out.push_str(&names.proto[usize::from(l4)]);
        }
        out.push_str(" checksum]");
    }
    Ok(())
}

/// Whether a packet's ports are shown: TCP and UDP, and a fragment that carries them.
fn has_ports(r: &Packets<'_>, i: usize) -> bool {
    matches!(r.l4[i], 6 | 17) || (r.frag[i] == FRAG_PART && (r.sport[i] != 0 || r.dport[i] != 0))
}

/// The name of tunnel layer `k` (outermost first) of a row's packed tunnel codes.
fn tunnel_name(names: &Names, packed: u32, k: u32) -> &str {
    let code = packed.checked_shr(4 * k).unwrap_or(0) & 0xF;
    &names.tunnel[code as usize]
}

/// `, "key": v`: an item after a record's first.
fn key_int(out: &mut String, key: &str, v: impl Into<i64>) {
    key_of(out, key);
    push_int(out, v);
}

fn key_of(out: &mut String, key: &str) {
    out.push_str(", \"");
    out.push_str(key);
    out.push_str("\": ");
}

/// Appends every row's JSON object, each with its newline, to `out`: `json.dumps` of
/// report/packets.py `record` (its key order, `", "` and `": "` between items).
pub fn push_records(
    rows: &Packets<'_>,
    picked: Option<&[i64]>,
    names: &Names,
    out: &mut String,
) -> Result<(), LineError> {
    for i in packets(rows, picked)? {
        push_record(rows, i, names, out);
        out.push('\n');
    }
    Ok(())
}

fn push_record(r: &Packets<'_>, i: usize, names: &Names, out: &mut String) {
    out.push_str("{\"frame\": ");
    push_int(out, r.frame[i]);
    key_int(out, "ts_ns", r.ts_ns[i]);
    key_int(out, "len", r.wirelen[i]);
    key_int(out, "caplen", r.caplen[i]);
    key_int(out, "linktype", r.linktype[i]);
    key_int(out, "interface", r.interface[i]);
    if r.vlan[i] >= 0 {
        key_int(out, "vlan", r.vlan[i]);
    }
    let version = r.ip_version[i];
    let l4 = r.l4[i];
    if version != 0 {
        let proto = r.proto[i];
        key_int(out, "ipv", version);
        key_of(out, "proto");
        if matches!(proto, 6 | 17 | 1 | 58) {
            push_str(out, &names.proto[usize::from(proto)]);
        } else {
            push_int(out, proto);
        }
        // addresses need no escaping: digits, hex letters, dots and colons
        for (key, flat) in [("src", r.src), ("dst", r.dst)] {
            let a = &r.addr(flat, i);
            key_of(out, key);
            out.push('"');
            if version == 4 {
                push_v4(out, a);
            } else {
                push_v6(out, a);
            }
            out.push('"');
        }
        key_int(out, "ip_len", r.ip_len[i]);
        if has_ports(r, i) {
            key_int(out, "sport", r.sport[i]);
            key_int(out, "dport", r.dport[i]);
        }
        if l4 == 6 {
            let flags = r.tcp_flags[i];
            key_int(out, "flags", flags);
            key_of(out, "flags_text");
            out.push('"');
            push_flags_text(out, flags);
            out.push('"');
            key_int(out, "seq", r.seq[i]);
            key_int(out, "ack", r.ack[i]);
            key_int(out, "win", r.win[i]);
            if r.mss[i] >= 0 {
                key_int(out, "mss", r.mss[i]);
            }
            if r.wscale[i] >= 0 {
                key_int(out, "wscale", r.wscale[i]);
            }
            if r.sack_perm[i] {
                out.push_str(", \"sack_perm\": true");
            }
            if r.has_ts[i] {
                key_int(out, "tsval", r.tsval[i]);
            }
            let kinds = opt_kinds(r, i);
            if !kinds.is_empty() {
                key_of(out, "opts");
                out.push('[');
                for (k, &kind) in kinds.iter().enumerate() {
                    if k > 0 {
                        out.push_str(", ");
                    }
                    push_int(out, kind);
                }
                out.push(']');
            }
        }
        if matches!(l4, 1 | 58) {
            key_int(out, "icmp_type", r.icmp_type[i]);
            key_int(out, "icmp_code", r.icmp_code[i]);
            if r.q_valid[i] {
                out.push_str(", \"quoted\": {\"proto\": ");
                push_int(out, r.q_proto[i]);
                key_int(out, "sport", r.q_sport[i]);
                key_int(out, "dport", r.q_dport[i]);
                out.push('}');
            }
        }
        if l4 != 0 && r.payload[i] >= 0 {
            key_int(out, "payload", r.payload[i]);
        }
        let depth = r.tunnel_depth[i];
        if depth > 0 {
            key_of(out, "tunnel");
            out.push('[');
            for k in 0..u32::from(depth) {
                if k > 0 {
                    out.push_str(", ");
                }
                push_str(out, tunnel_name(names, r.tunnel[i], k));
            }
            out.push(']');
        }
        let frag = r.frag[i];
        if frag == FRAG_PART {
            out.push_str(", \"frag\": \"part\"");
        } else if frag == FRAG_COMPLETE {
            out.push_str(", \"frag\": \"complete\"");
        }
    } else if r.ppp_proto[i] != 0 {
        let _ = write!(out, ", \"ppp_proto\": \"0x{:04x}\"", r.ppp_proto[i]);
    } else if r.ethertype[i] != 0 {
        let _ = write!(out, ", \"ethertype\": \"0x{:04x}\"", r.ethertype[i]);
    }
    out.push_str(if r.truncated[i] {
        ", \"truncated\": true"
    } else {
        ", \"truncated\": false"
    });
    let (ip_csum, l4_csum) = (r.ip_csum[i], r.l4_csum[i]);
    if ip_csum != CSUM_NONE || l4_csum != CSUM_NONE {
        out.push_str(", \"checksum\": {");
        if ip_csum != CSUM_NONE {
            out.push_str("\"ip\": ");
            push_str(out, checksum_name(names, ip_csum));
        }
        if l4_csum != CSUM_NONE {
            if ip_csum != CSUM_NONE {
                out.push_str(", ");
            }
            let named = if l4 != 0 { l4 } else { r.proto[i] };
            push_str(out, &names.proto[usize::from(named)]);
            out.push_str(": ");
            push_str(out, checksum_name(names, l4_csum));
        }
        out.push('}');
    }
    if r.malformed[i] != 0 {
        key_of(out, "malformed");
        push_str(out, &names.malformed[usize::from(r.malformed[i])]);
    }
    out.push('}');
}

/// A checksum status's name; the decoder writes no other status than the four named.
fn checksum_name(names: &Names, status: u8) -> &str {
    names
        .checksum
        .get(usize::from(status))
        .map_or("?", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::columns::{Columns, Row};
    use crate::testing::v4;

    fn names() -> Names {
        let mut proto: [String; 256] = std::array::from_fn(|p| p.to_string());
        proto[1] = "icmp".into();
        proto[6] = "tcp".into();
        proto[17] = "udp".into();
        proto[58] = "icmp6".into();
        let mut icmp4: [String; 256] = std::array::from_fn(|_| "type".to_string());
        icmp4[8] = "echo-request".into();
        Names {
            proto,
            icmp4,
            icmp6: std::array::from_fn(|_| "type".to_string()),
            tunnel: std::array::from_fn(|c| format!("t{c}")),
            malformed: std::array::from_fn(|c| format!("reason-{c}")),
            checksum: ["-", "good", "bad", "unverified"].map(String::from),
        }
    }

    /// One packet's columns: the decoder's absent values, a 60-byte Ethernet frame numbered
    /// 7, then `f`'s.
    fn columns_of(f: impl FnOnce(&mut Row)) -> Columns {
        let mut row = Row {
            frame: 7,
            wirelen: 60,
            caplen: 60,
            linktype: 1,
            ..Row::default()
        };
        f(&mut row);
        let mut cols = Columns::with_capacity(1);
        cols.push(&row);
        cols
    }

    /// The line of one packet (`columns_of`) in `style`, its second named "12:00:00".
    fn one_line(style: Style, f: impl FnOnce(&mut Row)) -> String {
        let cols = columns_of(f);
        let texts = ["12:00:00".to_string()];
        let mut clock = Clock {
            style,
            seconds: &[cols.ts_ns[0].div_euclid(NS)],
            second_texts: &texts,
            first_ns: None,
            previous_ns: None,
        };
        let mut out = String::new();
        push_lines(&Packets::of(&cols), None, &names(), &mut clock, &mut out).expect("writes");
        out
    }

    /// A clock of `-t`: no time, so no second's text.
    fn no_time() -> Clock<'static> {
        Clock {
            style: Style::None,
            seconds: &[],
            second_texts: &[],
            first_ns: None,
            previous_ns: None,
        }
    }

    fn one_record(f: impl FnOnce(&mut Row)) -> String {
        let mut out = String::new();
        push_records(&Packets::of(&columns_of(f)), None, &names(), &mut out).expect("writes");
        out
    }

    fn tcp(r: &mut Row) {
        r.ts_ns = 1_700_000_000_010_250_000;
        r.ip_version = 4;
        r.src = v4([10, 0, 0, 1]);
        r.dst = v4([10, 0, 0, 2]);
        (r.proto, r.l4, r.sport, r.dport, r.ip_len) = (6, 6, 40000, 443, 44);
        (r.tcp_flags, r.seq, r.ack, r.win, r.payload) = (0x12, 7, 9, 512, 0);
    }

    #[test]
    fn a_tcp_line_as_report_packets_writes_it() {
        assert_eq!(
            one_line(Style::Time, tcp),
            "12:00:00.010250 IP 10.0.0.1:40000 > 10.0.0.2:443: tcp [S.] seq 7 ack 9 win 512 len 0\n"
        );
        assert_eq!(
            one_line(Style::None, tcp),
            "IP 10.0.0.1:40000 > 10.0.0.2:443: tcp [S.] seq 7 ack 9 win 512 len 0\n"
        );
        assert_eq!(
            one_line(Style::Epoch, |r| {
                tcp(r);
                r.ts_ns += 1;
            }),
            "1700000000.010250001 IP 10.0.0.1:40000 > 10.0.0.2:443: tcp [S.] seq 7 ack 9 win 512 len 0\n"
        );
    }

    #[test]
    fn ipv6_ports_in_brackets_and_bad_checksums_joined() {
        let line = one_line(Style::Delta, |r| {
            tcp(r);
            r.ip_version = 6;
            r.src = [0; 16];
            r.dst = [0; 16];
            r.dst[15] = 1;
            r.tcp_flags = 0x02;
            (r.ip_csum, r.l4_csum) = (CSUM_BAD, CSUM_BAD);
        });
        assert_eq!(
            line,
            " 00:00:00.000000 IP6 [::]:40000 > [::1]:443: tcp [S] seq 7 win 512 len 0 [bad ip+tcp checksum]\n"
        );
    }

    #[test]
    fn icmp_tunnels_fragments_and_other_frames() {
        let line = one_line(Style::None, |r| {
            r.ip_version = 4;
            (r.proto, r.l4, r.icmp_type, r.icmp_code) = (1, 1, 8, 0);
            (r.tunnel_depth, r.tunnel) = (2, 0x21);
        });
        assert_eq!(
            line,
            "[t1/t2] IP 0.0.0.0 > 0.0.0.0: icmp echo-request 8/0\n"
        );
        let line = one_line(Style::None, |r| {
            r.ip_version = 4;
            (r.proto, r.ip_len, r.frag, r.sport, r.dport) = (17, 1500, FRAG_PART, 53, 0);
        });
        assert_eq!(line, "IP 0.0.0.0:53 > 0.0.0.0:0: udp 1500 (fragment)\n");
        let line = one_line(Style::None, |r| {
            r.ethertype = 0x0806;
        });
        assert_eq!(line, "ethertype 0x0806 length 60\n");
    }

    #[test]
    fn records_as_json_dumps_writes_them() {
        let record = one_record(|r| {
            tcp(r);
            r.vlan = 10;
            (r.mss, r.wscale, r.sack_perm) = (1460, 7, true);
            r.opt_count = 3;
            r.opt_kinds[..3].copy_from_slice(&[2, 4, 3]);
            (r.ip_csum, r.l4_csum) = (1, 2);
        });
        assert_eq!(
            record,
            "{\"frame\": 7, \"ts_ns\": 1700000000010250000, \"len\": 60, \"caplen\": 60, \
             \"linktype\": 1, \"interface\": 0, \"vlan\": 10, \"ipv\": 4, \"proto\": \"tcp\", \
             \"src\": \"10.0.0.1\", \"dst\": \"10.0.0.2\", \"ip_len\": 44, \"sport\": 40000, \
             \"dport\": 443, \"flags\": 18, \"flags_text\": \"SA\", \"seq\": 7, \"ack\": 9, \
             \"win\": 512, \"mss\": 1460, \"wscale\": 7, \"sack_perm\": true, \
             \"opts\": [2, 4, 3], \"payload\": 0, \"truncated\": false, \
             \"checksum\": {\"ip\": \"good\", \"tcp\": \"bad\"}}\n"
        );
        let record = one_record(|r| r.ethertype = 0x0806);
        assert_eq!(
            record,
            "{\"frame\": 7, \"ts_ns\": 0, \"len\": 60, \"caplen\": 60, \"linktype\": 1, \
             \"interface\": 0, \"ethertype\": \"0x0806\", \"truncated\": false}\n"
        );
    }

    #[test]
    fn spans_and_missing_seconds() {
        let mut out = String::new();
        push_span(&mut out, -1_500_000_000);
        push_span(&mut out, 360_000 * i128::from(NS) + 1);
        assert_eq!(out, "-00:00:01.500000 100:00:00.000000001");
        let cols = columns_of(|r| r.ts_ns = 5 * NS);
        let texts = ["x".to_string()];
        let mut clock = Clock {
            style: Style::Time,
            seconds: &[4],
            second_texts: &texts,
            first_ns: None,
            previous_ns: None,
        };
        let got = push_lines(
            &Packets::of(&cols),
            None,
            &names(),
            &mut clock,
            &mut String::new(),
        );
        assert!(got.is_err(), "a second without its text is refused");
    }

    #[test]
    fn a_middle_carriers_row_is_no_line() {
        let mut cols = Columns::with_capacity(2);
        let mut packet = Row {
            ethertype: 0x0806,
            ..Row::default()
        };
        cols.push(&packet);
        packet.sub = SUB_CARRIER;
        cols.push(&packet);
        let mut clock = no_time();
        let mut out = String::new();
        push_lines(&Packets::of(&cols), None, &names(), &mut clock, &mut out).expect("writes");
        assert_eq!(out, "ethertype 0x0806 length 0\n");
        out.clear();
        push_records(&Packets::of(&cols), None, &names(), &mut out).expect("writes");
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn picked_rows_only_in_their_order() {
        let mut cols = Columns::with_capacity(3);
        for ethertype in [1, 2, 3] {
            cols.push(&Row {
                ethertype,
                ..Row::default()
            });
        }
        let mut out = String::new();
        let mut clock = no_time();
        let rows = Packets::of(&cols);
        push_lines(&rows, Some(&[2, 0]), &names(), &mut clock, &mut out).expect("writes");
        assert_eq!(
            out,
            "ethertype 0x0003 length 0\nethertype 0x0001 length 0\n"
        );
        let refused = push_records(&rows, Some(&[3]), &names(), &mut String::new());
        assert_eq!(refused, Err(LineError("row 3 picked of 3".into())));
    }

    #[test]
    fn uneven_columns_are_refused_by_name() {
        let cols = columns_of(|_| {});
        let mut rows = Packets::of(&cols);
        rows.ts_ns = &[0, 1];
        let refused = push_records(&rows, None, &names(), &mut String::new());
        let message = "column ts_ns has 2 values, expected 1 rows of 1";
        assert_eq!(refused, Err(LineError(message.into())));
        let mut rows = Packets::of(&cols);
        rows.dst = &cols.dst[..15];
        let refused = push_records(&rows, None, &names(), &mut String::new());
        let message = "column dst has 15 values, expected 1 rows of 16";
        assert_eq!(refused, Err(LineError(message.into())));
    }
}
