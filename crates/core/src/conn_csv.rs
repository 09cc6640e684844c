//! `conns --csv` rows, written straight from the tracker's connection columns.
//!
//! The text is exactly what `csv.writer(out, lineterminator="\n")` writes for
//! `portlens.report.conns.csv_row(c)` (tests/test_conn_json.py compares both on every
//! capture): conn.log's fields as `zeek_row` has them with its `-` made empty, then the
//! times in nanoseconds, the endpoints' states, why it ended, the handshake's outcome and
//! round-trip times (empty when absent or zero, as `x or ""` makes them), the
//! retransmissions (TCP), completeness and the port's service name. A field holding the
//! delimiter, the quote or a newline is quoted, its quotes doubled (QUOTE_MINIMAL); a
//! carriage return too where the Python in use quotes it (newer versions do).

use std::fmt::Write;

use crate::conn_json::RecordRow;
use crate::conn_log::{push_addr, push_seconds};
use crate::text::{push_int, push_uint};

/// How a CSV field is quoted: whether a lone `\r` asks for quotes, as it does from some
/// Python version on (with `lineterminator="\n"`, 3.11 writes it bare).
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvDialect {
    pub quote_cr: bool,
}

/// Appends `row`'s CSV line (with its newline) to `out`; `scratch` is reused from row to row.
pub fn push_row(out: &mut String, row: &RecordRow<'_>, dialect: CsvDialect, scratch: &mut String) {
    let c = &row.conn;
    let has_duration = c.duration_ns > 0;
    // conn.log's fields (zeek_row), each made empty where it is "-".
    let mut zeek = |out: &mut String, text: &dyn Fn(&mut String)| {
        scratch.clear();
        text(scratch);
        if scratch != "-" {
            push_field(out, scratch, dialect);
        }
        out.push(',');
    };
    zeek(out, &|s| push_seconds(s, c.ts_ns));
    zeek(out, &|s| s.push_str(c.uid));
    zeek(out, &|s| push_addr(s, c.orig_h));
    zeek(out, &|s| push_int(s, c.orig_p));
    zeek(out, &|s| push_addr(s, c.resp_h));
    zeek(out, &|s| push_int(s, c.resp_p));
    zeek(out, &|s| s.push_str(c.proto));
    zeek(out, &|_| {}); // service: unset
    if has_duration {
        zeek(out, &|s| push_seconds(s, c.duration_ns));
        zeek(out, &|s| push_uint(s, c.orig_bytes));
        zeek(out, &|s| push_uint(s, c.resp_bytes));
    } else {
        out.push_str(",,,");
    }
    zeek(out, &|s| s.push_str(c.conn_state));
    out.push_str(",,"); // local_orig, local_resp: unset
    zeek(out, &|s| push_uint(s, c.missed_bytes));
    zeek(out, &|s| s.push_str(c.history));
    zeek(out, &|s| push_uint(s, c.orig_pkts));
    zeek(out, &|s| push_uint(s, c.orig_ip_bytes));
    zeek(out, &|s| push_uint(s, c.resp_pkts));
    zeek(out, &|s| push_uint(s, c.resp_ip_bytes));
    zeek(out, &|s| {
        for (i, p) in c.tunnel_parents.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(p);
        }
    });
    zeek(out, &|s| push_int(s, c.ip_proto));
    zeek(out, &|s| s.push_str(c.community_id));
    push_int(out, c.ts_ns);
    out.push(',');
    push_int(out, c.duration_ns);
    out.push(',');
    let (orig_state, resp_state) = row.states.unwrap_or(("", ""));
    push_field(out, orig_state, dialect);
    out.push(',');
    push_field(out, resp_state, dialect);
    out.push(',');
    push_field(out, row.end_reason, dialect);
    out.push(',');
    let hs = row.handshake.as_ref();
    push_field(out, hs.map_or("", |h| h.outcome), dialect);
    out.push(',');
    let rtt = |a: Option<i64>, b: Option<i64>| Some(i128::from(b?) - i128::from(a?));
    // `rtt or ""`: an absent or zero round-trip time is empty.
    for ns in [
        hs.and_then(|h| rtt(h.syn_ns, h.syn_ack_ns)),
        hs.and_then(|h| rtt(h.syn_ack_ns, h.ack_ns)),
    ] {
        if let Some(ns) = ns.filter(|&ns| ns != 0) {
            let _ = write!(out, "{ns}");
        }
        out.push(',');
    }
    if let Some((_, counts)) = row.analysis {
        // TcpAnalysis's first counter, retransmissions
        if let Some(n) = counts.first() {
            push_int(out, *n);
        }
    }
    out.push(',');
    push_int(out, row.completeness);
    out.push(',');
    push_field(out, row.port_service, dialect);
    out.push('\n');
}

/// `s` as one CSV field (QUOTE_MINIMAL, `"` doubled inside quotes).
fn push_field(out: &mut String, s: &str, dialect: CsvDialect) {
    let quote = s
        .chars()
        .any(|c| matches!(c, ',' | '"' | '\n') || (c == '\r' && dialect.quote_cr));
    if !quote {
        out.push_str(s);
        return;
    }
    out.push('"');
    for ch in s.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(s: &str, quote_cr: bool) -> String {
        let mut out = String::new();
        push_field(&mut out, s, CsvDialect { quote_cr });
        out
    }

    #[test]
    fn rows_as_csv_row_and_csv_writer_write_them() {
        // Expected values: csv.writer(out, lineterminator="\n") of csv_row's values for the
        // same fields, in Python 3.11.
        use crate::conn_json::fixtures;
        let (mut out, mut scratch) = (String::new(), String::new());
        for row in [fixtures::tcp(), fixtures::icmp()] {
            push_row(&mut out, &row, CsvDialect::default(), &mut scratch);
        }
        assert_eq!(
            out,
            "1700000000.123456,Cabc,10.0.0.1,40000,2001:db8::1,443,tcp,,0.000050,10,20,SF,,,0,\
             ShADadFf,3,300,4,400,\"Cp1,Cp2\",6,1:x=,1700000000123456789,50000,TIME-WAIT,\
             CLOSED,fin,established,200,,1,31,https\n\
             0.000000,Ci,::,8,::1,0,icmp,,,,,OTH,,,0,,1,48,0,0,,58,,0,0,,,idle,,,,,0,\n"
        );
    }

    #[test]
    fn fields_as_python_csv_writes_them() {
        // Python 3.11: csv.writer(out, lineterminator="\n").writerow([s])
        assert_eq!(field("SF", false), "SF");
        assert_eq!(field("", false), "");
        assert_eq!(field("a,b", false), "\"a,b\"");
        assert_eq!(field("a\"b", false), "\"a\"\"b\"");
        assert_eq!(field("a\nb", false), "\"a\nb\"");
        assert_eq!(field("a\rb", false), "a\rb");
        assert_eq!(field("a\rb", true), "\"a\rb\"");
        assert_eq!(field(" x\té", false), " x\té");
    }
}
