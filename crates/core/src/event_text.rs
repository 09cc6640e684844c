//! `portlens events`: each RFC 9293 transition as a line, conntrack -E style, or as a JSON
//! object (report/conns.py `event_line`, `transition_record`). The benchmark capture makes
//! 348,000 of them; written in Python, a format call and a clock text each, they cost twice
//! as long as all the tracking that made them.

use std::fmt::Write;

use crate::conn_json::{push_flags_text, push_str};
use crate::conn_log::push_addr;
use crate::packet_text::Clock;
use crate::text::push_int;

/// A batch of transitions as columns (`Tracker.transitions`), each as long as `ts_ns`; the
/// texts of a row's uid, endpoint, event and states are given as they are shown.
pub struct EventColumns<'a> {
    pub ts_ns: &'a [i64],
    pub frame: &'a [i64],
    pub uid: &'a [&'a str],
    pub orig_h: &'a [[u8; 16]],
    pub orig_p: &'a [u16],
    pub resp_h: &'a [[u8; 16]],
    pub resp_p: &'a [u16],
    pub endpoint: &'a [&'a str],
    pub event: &'a [&'a str],
    pub from: &'a [&'a str],
    pub to: &'a [&'a str],
    pub flags: &'a [u16],
    pub seq: &'a [u32],
    pub ack: &'a [u32],
    pub payload: &'a [i64],
}

/// Why nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// A column of another length than `ts_ns`.
    Shape,
    /// A row's time in a second whose text the clock was not given.
    NoSecond { row: usize },
}

impl EventColumns<'_> {
    fn rows(&self) -> Result<usize, EventError> {
        let n = self.ts_ns.len();
        let lengths = [
            self.frame.len(),
            self.uid.len(),
            self.orig_h.len(),
            self.orig_p.len(),
            self.resp_h.len(),
            self.resp_p.len(),
            self.endpoint.len(),
            self.event.len(),
            self.from.len(),
            self.to.len(),
            self.flags.len(),
            self.seq.len(),
            self.ack.len(),
            self.payload.len(),
        ];
        if lengths.iter().any(|&m| m != n) {
            return Err(EventError::Shape);
        }
        Ok(n)
    }
}

/// Appends every transition's line and its newline: its time as `clock` shows it (none with
/// `-t`), the uid, the connection's tuple, then which endpoint moved from which state to
/// which, and the segment that moved it. `clock` carries its times on, as for the packets.
pub fn push_event_lines(
    out: &mut String,
    t: &EventColumns<'_>,
    clock: &mut Clock<'_>,
) -> Result<(), EventError> {
    let n = t.rows()?;
    out.reserve(n.saturating_mul(200));
    for i in 0..n {
        let start = out.len();
        if !clock.push(out, t.ts_ns[i]) {
            return Err(EventError::NoSecond { row: i });
        }
        if out.len() > start {
            out.push(' ');
        }
        out.push_str(t.uid[i]);
        out.push_str(" tcp src=");
        push_addr(out, &t.orig_h[i]);
        out.push_str(" dst=");
        push_addr(out, &t.resp_h[i]);
        out.push_str(" sport=");
        push_int(out, t.orig_p[i]);
        out.push_str(" dport=");
        push_int(out, t.resp_p[i]);
        out.push(' ');
        out.push_str(t.endpoint[i]);
        out.push(' ');
        out.push_str(t.event[i]);
        out.push_str(": ");
        out.push_str(t.from[i]);
        out.push_str(" -> ");
        out.push_str(t.to[i]);
        let _ = write!(out, " [flags 0x{:03x} seq ", t.flags[i]);
        push_int(out, t.seq[i]);
        out.push_str(" ack ");
        push_int(out, t.ack[i]);
        out.push_str(" len ");
        push_int(out, t.payload[i]);
        out.push_str("] frame ");
        push_int(out, t.frame[i]);
        out.push('\n');
    }
    Ok(())
}

/// Appends every transition's JSON object and its newline, keys in `transition_record`'s
/// order, texts escaped as `json.dumps` escapes them.
pub fn push_event_records(out: &mut String, t: &EventColumns<'_>) -> Result<(), EventError> {
    let n = t.rows()?;
    out.reserve(n.saturating_mul(330));
    for i in 0..n {
        out.push_str("{\"ts_ns\":");
        push_int(out, t.ts_ns[i]);
        out.push_str(",\"frame\":");
        push_int(out, t.frame[i]);
        out.push_str(",\"uid\":");
        push_str(out, t.uid[i]);
        out.push_str(",\"id.orig_h\":\"");
        push_addr(out, &t.orig_h[i]);
        out.push_str("\",\"id.orig_p\":");
        push_int(out, t.orig_p[i]);
        out.push_str(",\"id.resp_h\":\"");
        push_addr(out, &t.resp_h[i]);
        out.push_str("\",\"id.resp_p\":");
        push_int(out, t.resp_p[i]);
        out.push_str(",\"proto\":\"tcp\",\"endpoint\":");
        push_str(out, t.endpoint[i]);
        out.push_str(",\"event\":");
        push_str(out, t.event[i]);
        out.push_str(",\"from\":");
        push_str(out, t.from[i]);
        out.push_str(",\"to\":");
        push_str(out, t.to[i]);
        out.push_str(",\"flags\":");
        push_int(out, t.flags[i]);
        out.push_str(",\"flags_text\":\"");
        push_flags_text(out, t.flags[i]);
        out.push_str("\",\"seq\":");
        push_int(out, t.seq[i]);
        out.push_str(",\"ack\":");
        push_int(out, t.ack[i]);
        out.push_str(",\"payload\":");
        push_int(out, t.payload[i]);
        out.push_str("}\n");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet_text::Style;

    fn v4(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = 10;
        a[15] = last;
        a
    }

    #[test]
    fn lines_and_records_as_the_python_writers_write_them() {
        let (o, r) = ([v4(1)], [v4(2)]);
        let t = EventColumns {
            ts_ns: &[1_700_000_000_000_001_000],
            frame: &[7],
            uid: &["CabC"],
            orig_h: &o,
            orig_p: &[40000],
            resp_h: &r,
            resp_p: &[80],
            endpoint: &["orig"],
            event: &["send SYN"],
            from: &["CLOSED"],
            to: &["SYN-SENT"],
            flags: &[0x12],
            seq: &[4_000_000_000],
            ack: &[0],
            payload: &[-1],
        };
        let texts = ["22:13:20".to_string()];
        let mut clock = Clock {
            style: Style::Time,
            seconds: &[1_700_000_000],
            second_texts: &texts,
            first_ns: None,
            previous_ns: None,
        };
        let mut out = String::new();
        push_event_lines(&mut out, &t, &mut clock).unwrap();
        assert_eq!(
            out,
            "22:13:20.000001 CabC tcp src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 orig \
             send SYN: CLOSED -> SYN-SENT [flags 0x012 seq 4000000000 ack 0 len -1] frame 7\n"
        );
        assert_eq!(clock.previous_ns, Some(1_700_000_000_000_001_000));
        let mut none = Clock {
            style: Style::None,
            ..clock.clone()
        };
        out.clear();
        push_event_lines(&mut out, &t, &mut none).unwrap();
        assert!(out.starts_with("CabC tcp src="));
        let mut lost = Clock {
            seconds: &[],
            ..clock
        };
        assert_eq!(
            push_event_lines(&mut out, &t, &mut lost),
            Err(EventError::NoSecond { row: 0 })
        );
        out.clear();
        push_event_records(&mut out, &t).unwrap();
        assert_eq!(
            out,
            "{\"ts_ns\":1700000000000001000,\"frame\":7,\"uid\":\"CabC\",\
             \"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":40000,\"id.resp_h\":\"10.0.0.2\",\
             \"id.resp_p\":80,\"proto\":\"tcp\",\"endpoint\":\"orig\",\"event\":\"send SYN\",\
             \"from\":\"CLOSED\",\"to\":\"SYN-SENT\",\"flags\":18,\"flags_text\":\"SA\",\
             \"seq\":4000000000,\"ack\":0,\"payload\":-1}\n"
        );
        let short = EventColumns { frame: &[], ..t };
        assert_eq!(push_event_records(&mut out, &short), Err(EventError::Shape));
    }
}
