//! Each open connection's transitions, kept until it ends, then handed over with it.
//!
//! The tracker streams transitions as they happen (`TransitionBatch`), while a connection's
//! row comes out only when it ends; `conns --json` prints a connection with its transitions.
//! Python kept them as a tuple per transition in a dict by serial; here they wait as a few
//! plain numbers each, and come out as columns grouped by connection, in the order of the
//! ended rows, so a block of rows carries its own transitions and nothing else: what is held
//! is the open connections' transitions, never the capture's.

use std::collections::HashMap;

use super::columns::TransitionBatch;

/// One transition of a connection, without what the connection's row says (uid, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    ts_ns: i64,
    frame: i64,
    host: u8,
    event: u8,
    from: u8,
    to: u8,
    flags: u16,
    seq: u32,
    ack: u32,
    payload: i64,
}

/// The transitions of open connections, by serial.
#[derive(Debug, Default)]
pub struct KeptTransitions {
    by_serial: HashMap<u64, Vec<Kept>>,
}

/// The transitions of a block of ended rows: `count[i]` rows for row `i`, one after the
/// other in row order, each connection's in the order they happened. `endpoint` is the role
/// (0 originator, 1 responder) of the host that moved, as the connection ended: roles can
/// flip after a transition, and the reports name the endpoint by the final roles.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EndedTransitions {
    pub count: Vec<u32>,
    pub ts_ns: Vec<i64>,
    pub frame: Vec<i64>,
    pub endpoint: Vec<u8>,
    pub event: Vec<u8>,
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub flags: Vec<u16>,
    pub seq: Vec<u32>,
    pub ack: Vec<u32>,
    pub payload: Vec<i64>,
}

impl KeptTransitions {
    /// Keeps `t`'s transitions (a tracker's stream since its last take) under their
    /// connections.
    pub fn add(&mut self, t: &TransitionBatch) {
        for i in 0..t.len() {
            self.by_serial.entry(t.serial[i]).or_default().push(Kept {
                ts_ns: t.ts_ns[i],
                frame: t.frame[i],
                host: t.host[i],
                event: t.event[i],
                from: t.from[i],
                to: t.to[i],
                flags: t.flags[i],
                seq: t.seq[i],
                ack: t.ack[i],
                payload: t.payload[i],
            });
        }
    }

    /// Takes the transitions of the ended connections `serial`, whose originators are the
    /// hosts `orig_host` (ConnBatch's columns), and forgets them.
    pub fn take_ended(&mut self, serial: &[u64], orig_host: &[u8]) -> EndedTransitions {
        let mut out = EndedTransitions::default();
        for (s, &o) in serial.iter().zip(orig_host) {
            let kept = self.by_serial.remove(s).unwrap_or_default();
            // A connection's transitions are counted in u32: four billion state changes of
            // one connection would take more segments than any capture holds.
            out.count
                .push(u32::try_from(kept.len()).unwrap_or(u32::MAX));
            for k in kept {
                out.ts_ns.push(k.ts_ns);
                out.frame.push(k.frame);
                out.endpoint.push(u8::from(k.host != o));
                out.event.push(k.event);
                out.from.push(k.from);
                out.to.push(k.to);
                out.flags.push(k.flags);
                out.seq.push(k.seq);
                out.ack.push(k.ack);
                out.payload.push(k.payload);
            }
        }
        out
    }

    /// Open connections with transitions kept.
    pub fn connections(&self) -> usize {
        self.by_serial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[(u64, i64, u8)]) -> TransitionBatch {
        let mut t = TransitionBatch::default();
        for &(serial, ts, host) in rows {
            t.uid.push([b'x'; 17]);
            t.serial.push(serial);
            t.ts_ns.push(ts);
            t.frame.push(ts * 10);
            t.host.push(host);
            t.endpoint.push(host);
            t.event.push(1);
            t.from.push(2);
            t.to.push(3);
            t.flags.push(0x12);
            t.seq.push(7);
            t.ack.push(8);
            t.payload.push(9);
            t.orig_h.push([0; 16]);
            t.orig_p.push(1);
            t.resp_h.push([0; 16]);
            t.resp_p.push(2);
        }
        t
    }

    #[test]
    fn grouped_by_ended_row_in_order() {
        let mut k = KeptTransitions::default();
        k.add(&stream(&[(1, 10, 0), (2, 11, 0), (1, 12, 1)]));
        k.add(&stream(&[(3, 13, 0), (1, 14, 0)]));
        // Row order: serial 3, then 9 (none kept), then 1 whose originator is host 1 now.
        let e = k.take_ended(&[3, 9, 1], &[0, 0, 1]);
        assert_eq!(e.count, [1, 0, 3]);
        assert_eq!(e.ts_ns, [13, 10, 12, 14]);
        assert_eq!(e.frame, [130, 100, 120, 140]);
        assert_eq!(e.endpoint, [0, 1, 0, 1]);
        assert_eq!(k.connections(), 1, "serial 2 is still open");
        let again = k.take_ended(&[1], &[0]);
        assert_eq!(again.count, [0], "taken once");
    }
}
