//! `portlens handshakes`' fold: ended connections -> one summary per TCP server port.
//!
//! The rules are `portlens.analysis.handshakes`' (`HandshakeTable.add`,
//! `HandshakeSummary.add`, `OptionMix.add`); this is their fold over the tracker's own rows
//! (`ConnBatch`), as `portlens.analysis.columns.add_handshake_columns` folds the columns
//! handed to Python with NumPy. The figures that add up are added here; the round-trip times
//! are kept in row order, and the option kinds as bytes, for Python's sketches and
//! fingerprints, so that both folds give the same table (tests/test_handshake_fold.py).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::track::columns::{ConnBatch, NONE_I64};
use crate::track::rfc::OUTCOME_NAMES;
use crate::track::SynOptions;

/// What one side (clients or servers) offered in the handshakes of a port.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OptionFold {
    /// SYNs (or SYN-ACKs) whose options were seen.
    pub offers: u64,
    pub sack_perm: u64,
    pub timestamps: u64,
    /// MSS and window-scale values offered, with their counts (absent ones not counted).
    pub mss: BTreeMap<i32, u64>,
    pub wscale: BTreeMap<i16, u64>,
    /// The option kinds in order, as the SYN carried them, with their counts.
    pub kinds: BTreeMap<Vec<u8>, u64>,
}

impl OptionFold {
    fn add(&mut self, o: &SynOptions) {
        self.offers += 1;
        self.sack_perm += u64::from(o.sack_perm);
        self.timestamps += u64::from(o.timestamps);
        if o.mss >= 0 {
            *self.mss.entry(o.mss).or_default() += 1;
        }
        if o.wscale >= 0 {
            *self.wscale.entry(o.wscale).or_default() += 1;
        }
        let len = usize::from(o.kinds_len).min(o.kinds.len());
        *self.kinds.entry(o.kinds[..len].to_vec()).or_default() += 1;
    }
}

/// One server port's handshakes (`HandshakeSummary`'s figures).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HandshakeRow {
    /// Connections with a SYN or a SYN-ACK seen.
    pub handshakes: u64,
    /// SYN segments: first SYNs and their retransmissions.
    pub syns: u64,
    pub syn_retransmits: u64,
    pub syn_acks: u64,
    pub syn_ack_retransmits: u64,
    /// By OUTCOME_NAMES code.
    pub outcomes: [u64; OUTCOME_NAMES.len()],
    /// SYN -> SYN-ACK and SYN-ACK -> ACK, ns, in the order the connections ended.
    pub server_rtt: Vec<i64>,
    pub client_rtt: Vec<i64>,
    pub client_options: OptionFold,
    pub server_options: OptionFold,
}

/// The summaries of the ports folded so far; only `ports` if any (`handshakes --port`).
#[derive(Debug, Default)]
pub struct HandshakeFold {
    rows: HashMap<u16, HandshakeRow>,
    ports: HashSet<u16>,
}

impl HandshakeFold {
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Self {
        HandshakeFold {
            rows: HashMap::new(),
            ports: ports.into_iter().collect(),
        }
    }

    /// `HandshakeTable.add` of every row of `b`: the TCP connections with a SYN or a SYN-ACK.
    pub fn add(&mut self, b: &ConnBatch) {
        for i in 0..b.len() {
            let (syn, syn_ack, ack) = (b.syn_ns[i], b.syn_ack_ns[i], b.ack_ns[i]);
            let (has_syn, has_syn_ack) = (syn != NONE_I64, syn_ack != NONE_I64);
            let port = b.resp_p[i];
            if b.proto[i] != 6
                || !(has_syn || has_syn_ack)
                || !(self.ports.is_empty() || self.ports.contains(&port))
            {
                continue;
            }
            let row = self.rows.entry(port).or_default();
            let (syn_rtx, syn_ack_rtx) = (b.syn_retransmits[i], b.syn_ack_retransmits[i]);
            row.handshakes += 1;
            if has_syn {
                row.syns += 1 + u64::from(syn_rtx);
            }
            row.syn_retransmits += u64::from(syn_rtx);
            row.syn_acks += u64::from(has_syn_ack);
            row.syn_ack_retransmits += u64::from(syn_ack_rtx);
            if let Some(n) = row.outcomes.get_mut(usize::from(b.handshake_outcome[i])) {
                *n += 1;
            }
            if has_syn && has_syn_ack {
                row.server_rtt.push(syn_ack.saturating_sub(syn));
            }
            if has_syn_ack && ack != NONE_I64 {
                row.client_rtt.push(ack.saturating_sub(syn_ack));
            }
            if let Some(o) = &b.client_options[i] {
                row.client_options.add(o);
            }
            if let Some(o) = &b.server_options[i] {
                row.server_options.add(o);
            }
        }
    }

    /// What was folded since the last call, by port (in no particular order).
    pub fn take(&mut self) -> Vec<(u16, HandshakeRow)> {
        std::mem::take(&mut self.rows).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::rfc::Outcome;

    /// A batch of `rows`: (proto, server port, SYN, SYN-ACK, ACK times, SYN and SYN-ACK
    /// retransmissions, outcome, client's options).
    #[allow(clippy::type_complexity)]
    fn batch(
        rows: &[(
            u8,
            u16,
            i64,
            i64,
            i64,
            u32,
            u32,
            Outcome,
            Option<SynOptions>,
        )],
    ) -> ConnBatch {
        let mut b = ConnBatch::default();
        for (proto, port, syn, syn_ack, ack, syn_rtx, syn_ack_rtx, outcome, opts) in
            rows.iter().cloned()
        {
            b.uid.push([b'A'; 17]);
            b.proto.push(proto);
            b.resp_p.push(port);
            b.syn_ns.push(syn);
            b.syn_ack_ns.push(syn_ack);
            b.ack_ns.push(ack);
            b.syn_retransmits.push(syn_rtx);
            b.syn_ack_retransmits.push(syn_ack_rtx);
            b.handshake_outcome.push(outcome as u8);
            b.client_options.push(opts.map(Box::new));
            b.server_options.push(None);
        }
        b
    }

    fn offered(mss: i32, kinds: &[u8]) -> SynOptions {
        let mut o = SynOptions {
            mss,
            sack_perm: true,
            kinds_len: u8::try_from(kinds.len()).expect("at most 40 kinds"),
            ..SynOptions::default()
        };
        o.kinds[..kinds.len()].copy_from_slice(kinds);
        o
    }

    #[test]
    fn handshakes_fold_by_server_port_as_handshake_table_add() {
        // Expected values: HandshakeSummary.add (portlens.analysis.handshakes) of the same
        // connections, worked out by hand.
        let none = NONE_I64;
        let o = offered(1460, &[2, 1, 3]);
        let b = batch(&[
            (
                6,
                80,
                1_000,
                3_000,
                3_500,
                0,
                0,
                Outcome::Established,
                Some(o.clone()),
            ),
            (
                6,
                80,
                10_000,
                16_000,
                none,
                2,
                1,
                Outcome::Established,
                Some(o),
            ),
            (6, 80, 20_000, none, none, 3, 0, Outcome::Unanswered, None),
            (6, 443, none, 5_000, none, 0, 0, Outcome::Refused, None),
            (6, 22, none, none, none, 0, 0, Outcome::Established, None), // no handshake
            (17, 53, 1, 2, 3, 0, 0, Outcome::Established, None),         // not TCP
        ]);
        let mut fold = HandshakeFold::new([]);
        fold.add(&b);
        let mut rows = fold.take();
        rows.sort_by_key(|(port, _)| *port);
        let ports: Vec<u16> = rows.iter().map(|(p, _)| *p).collect();
        assert_eq!(ports, [80, 443]);
        let http = &rows[0].1;
        assert_eq!(
            (http.handshakes, http.syns, http.syn_retransmits),
            (3, 1 + 3 + 4, 5)
        );
        assert_eq!((http.syn_acks, http.syn_ack_retransmits), (2, 1));
        assert_eq!(http.outcomes[Outcome::Established as usize], 2);
        assert_eq!(http.outcomes[Outcome::Unanswered as usize], 1);
        assert_eq!(http.server_rtt, [2_000, 6_000]);
        assert_eq!(http.client_rtt, [500]);
        let c = &http.client_options;
        assert_eq!((c.offers, c.sack_perm, c.timestamps), (2, 2, 0));
        assert_eq!(c.mss.get(&1460), Some(&2));
        assert!(c.wscale.is_empty());
        assert_eq!(c.kinds.get(&vec![2, 1, 3]), Some(&2));
        let https = &rows[1].1;
        assert_eq!((https.handshakes, https.syns, https.syn_acks), (1, 0, 1));
        assert_eq!(https.outcomes[Outcome::Refused as usize], 1);
        assert!(https.server_rtt.is_empty() && https.client_rtt.is_empty());
        assert!(fold.take().is_empty(), "taken: the fold starts again");
    }

    #[test]
    fn only_the_ports_asked_for() {
        let b = batch(&[
            (6, 80, 1, 2, 3, 0, 0, Outcome::Established, None),
            (6, 443, 1, 2, 3, 0, 0, Outcome::Established, None),
        ]);
        let mut fold = HandshakeFold::new([443]);
        fold.add(&b);
        let ports: Vec<u16> = fold.take().iter().map(|(p, _)| *p).collect();
        assert_eq!(ports, [443]);
    }
}
