//! `portlens._core.HandshakeFold`: `handshakes`' per-port table folded in the core
//! (`portlens_core::analysis::handshakes`) from the tracker's own rows
//! (`Tracker.ended_into_handshakes`). `HandshakeTable` turns what it takes into its
//! HandshakeSummaries when they are read.

use portlens_core::analysis::handshakes::{self, HandshakeRow, OptionFold};
use portlens_core::track::rfc::OUTCOME_NAMES;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

#[pyclass(module = "portlens._core", name = "HandshakeFold")]
pub struct HandshakeFold {
    /// Folded into by the tracker's binding (`Tracker.ended_into_handshakes`).
    pub(crate) inner: handshakes::HandshakeFold,
}

fn options<'py>(py: Python<'py>, o: OptionFold) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("offers", o.offers)?;
    d.set_item("sack_perm", o.sack_perm)?;
    d.set_item("timestamps", o.timestamps)?;
    d.set_item("mss", o.mss.into_iter().collect::<Vec<_>>())?;
    d.set_item("wscale", o.wscale.into_iter().collect::<Vec<_>>())?;
    let kinds: Vec<(Bound<'py, PyBytes>, u64)> = o
        .kinds
        .into_iter()
        .map(|(k, n)| (PyBytes::new(py, &k), n))
        .collect();
    d.set_item("kinds", kinds)?;
    Ok(d)
}

fn row<'py>(py: Python<'py>, r: HandshakeRow) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("handshakes", r.handshakes)?;
    d.set_item("syns", r.syns)?;
    d.set_item("syn_retransmits", r.syn_retransmits)?;
    d.set_item("syn_acks", r.syn_acks)?;
    d.set_item("syn_ack_retransmits", r.syn_ack_retransmits)?;
    let outcomes: Vec<(&str, u64)> = OUTCOME_NAMES
        .iter()
        .zip(r.outcomes)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| (*name, n))
        .collect();
    d.set_item("outcomes", outcomes)?;
    d.set_item("server_rtt", r.server_rtt)?;
    d.set_item("client_rtt", r.client_rtt)?;
    d.set_item("client_options", options(py, r.client_options)?)?;
    d.set_item("server_options", options(py, r.server_options)?)?;
    Ok(d)
}

#[pymethods]
impl HandshakeFold {
    /// Only the handshakes to `ports`, if any (`handshakes --port`).
    #[new]
    #[pyo3(signature = (ports=Vec::new()))]
    fn new(ports: Vec<u16>) -> Self {
        HandshakeFold {
            inner: handshakes::HandshakeFold::new(ports),
        }
    }

    /// What was folded since the last call: (port, figures) per port; figures: a dict of
    /// HandshakeSummary's counts, `outcomes` as (name, count), the round-trip times in the
    /// order the connections ended, and each side's options (`mss`, `wscale` as (value,
    /// count), `kinds` as (option kinds, count)).
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<(u16, Bound<'py, PyDict>)>> {
        self.inner
            .take()
            .into_iter()
            .map(|(port, r)| Ok((port, row(py, r)?)))
            .collect()
    }
}
