//! `portlens._core.PortFold`: `ports`' per-port table folded in the core
//! (`portlens_core::analysis::ports`) from blocks of the tracker's columns, the dicts
//! `Tracker.feed` hands over. `PortTable.add_columns` feeds it; `PortTable` turns what it
//! takes into its PortSummaries and Probes when they are read.

use numpy::{Element, IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use portlens_core::analysis::ports::{self, ConnColumns, PortSummary, Probe};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::addr;
use crate::conn_log::as_strs;

#[pyclass(module = "portlens._core", name = "PortFold")]
pub struct PortFold {
    /// Also folded into by the tracker's binding (`Tracker.ended_into_ports`).
    pub(crate) inner: ports::PortFold,
}

/// A per-port row's key as Python gives it: (kind, port, code), or None for the totals.
type Key = Option<(u8, u16, i32)>;

fn item<'py>(cols: &Bound<'py, PyDict>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    cols.get_item(name)?
        .ok_or_else(|| PyValueError::new_err(format!("no column {name}")))
}

/// A numeric column, whatever its strides (`analysis.*` columns are views of one 2-D array).
fn numbers<T: Element + Copy>(cols: &Bound<'_, PyDict>, name: &str) -> PyResult<Vec<T>> {
    let a = item(cols, name)?
        .extract::<PyReadonlyArray1<'_, T>>()
        .map_err(|e| PyValueError::new_err(format!("column {name}: {e}")))?;
    Ok(a.as_array().iter().copied().collect())
}

fn addresses(cols: &Bound<'_, PyDict>, name: &str) -> PyResult<Vec<[u8; 16]>> {
    let a = item(cols, name)?
        .extract::<PyReadonlyArray2<'_, u8>>()
        .map_err(|e| PyValueError::new_err(format!("column {name}: {e}")))?;
    addr::addresses(&a)
}

fn strings<'py>(cols: &Bound<'py, PyDict>, name: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
    item(cols, name)?
        .extract()
        .map_err(|e| PyValueError::new_err(format!("column {name}: {e}")))
}

fn errors(cols: &Bound<'_, PyDict>) -> PyResult<Vec<Vec<(i16, i16)>>> {
    let column = item(cols, "icmp_errors")?;
    let rows = column.cast::<PyList>()?;
    rows.iter()
        .map(|row| {
            // Almost every row's is the empty tuple: no vector made for it.
            if row.cast::<PyTuple>().is_ok_and(|t| t.is_empty()) {
                Ok(Vec::new())
            } else {
                row.extract()
            }
        })
        .collect()
}

fn summary<'py>(py: Python<'py>, s: PortSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("conns", s.conns)?;
    d.set_item("server_conns", s.server_conns)?;
    d.set_item("client_conns", s.client_conns)?;
    d.set_item("outcomes", s.outcomes.to_vec())?;
    d.set_item("conn_states", s.conn_states)?;
    d.set_item("guessed", s.guessed)?;
    d.set_item("pkts_c2s", s.pkts_c2s)?;
    d.set_item("pkts_s2c", s.pkts_s2c)?;
    d.set_item("bytes_c2s", s.bytes_c2s)?;
    d.set_item("bytes_s2c", s.bytes_s2c)?;
    d.set_item("ip_bytes_c2s", s.ip_bytes_c2s)?;
    d.set_item("ip_bytes_s2c", s.ip_bytes_s2c)?;
    d.set_item("rtts", s.rtts)?;
    d.set_item("retransmissions", s.retransmissions)?;
    d.set_item("tcp_pkts", s.tcp_pkts)?;
    d.set_item("first_ns", s.first_ns)?;
    d.set_item("last_ns", s.last_ns)?;
    Ok(d)
}

type ProbeTuple = (u8, String, String, Vec<u16>, Vec<u16>, Vec<u16>, Vec<u64>);

impl PortFold {
    fn named(&self, number: u32) -> String {
        addr::text(self.inner.address(number).expect("a number the fold gave"))
    }

    fn probe_tuple(&self, p: Probe) -> ProbeTuple {
        (
            p.kind,
            self.named(p.orig),
            self.named(p.resp),
            p.ports,
            p.failed_ports,
            p.answered_ports,
            p.outcomes.to_vec(),
        )
    }

    fn key(key: Key) -> Option<ports::PortKey> {
        key.map(|(kind, port, code)| ports::PortKey { kind, port, code })
    }
}

/// A block's `PORT_COLUMNS`, read out of its dict (the texts still Python's).
struct Read<'py> {
    states: Vec<Bound<'py, PyString>>,
    histories: Vec<Bound<'py, PyString>>,
    ip_version: Vec<u8>,
    ip_proto: Vec<u8>,
    orig_h: Vec<[u8; 16]>,
    orig_p: Vec<u16>,
    resp_h: Vec<[u8; 16]>,
    resp_p: Vec<u16>,
    icmp_code: Vec<i32>,
    icmp_errors: Vec<Vec<(i16, i16)>>,
    ts_ns: Vec<i64>,
    last_ns: Vec<i64>,
    orig_pkts: Vec<u64>,
    resp_pkts: Vec<u64>,
    orig_bytes: Vec<u64>,
    resp_bytes: Vec<u64>,
    orig_ip_bytes: Vec<u64>,
    resp_ip_bytes: Vec<u64>,
    retransmissions: Vec<u32>,
    syn_ns: Vec<i64>,
    syn_ack_ns: Vec<i64>,
    ack_ns: Vec<i64>,
}

impl<'py> Read<'py> {
    fn of(cols: &Bound<'py, PyDict>) -> PyResult<Self> {
        Ok(Read {
            states: strings(cols, "conn_state")?,
            histories: strings(cols, "history")?,
            ip_version: numbers(cols, "ip_version")?,
            ip_proto: numbers(cols, "ip_proto")?,
            orig_h: addresses(cols, "id.orig_h")?,
            orig_p: numbers(cols, "id.orig_p")?,
            resp_h: addresses(cols, "id.resp_h")?,
            resp_p: numbers(cols, "id.resp_p")?,
            icmp_code: numbers(cols, "icmp_code")?,
            icmp_errors: errors(cols)?,
            ts_ns: numbers(cols, "ts_ns")?,
            last_ns: numbers(cols, "last_ns")?,
            orig_pkts: numbers(cols, "orig_pkts")?,
            resp_pkts: numbers(cols, "resp_pkts")?,
            orig_bytes: numbers(cols, "orig_bytes")?,
            resp_bytes: numbers(cols, "resp_bytes")?,
            orig_ip_bytes: numbers(cols, "orig_ip_bytes")?,
            resp_ip_bytes: numbers(cols, "resp_ip_bytes")?,
            retransmissions: numbers(cols, "analysis.retransmissions")?,
            syn_ns: numbers(cols, "handshake.syn_ns")?,
            syn_ack_ns: numbers(cols, "handshake.syn_ack_ns")?,
            ack_ns: numbers(cols, "handshake.ack_ns")?,
        })
    }

    /// The columns, with the texts of `conn_state` and `history` as `texts` gives them.
    fn columns<'a>(&'a self, state: &'a [&'a str], history: &'a [&'a str]) -> ConnColumns<'a> {
        ConnColumns {
            ip_version: &self.ip_version,
            ip_proto: &self.ip_proto,
            orig_h: &self.orig_h,
            orig_p: &self.orig_p,
            resp_h: &self.resp_h,
            resp_p: &self.resp_p,
            icmp_code: &self.icmp_code,
            conn_state: state,
            history,
            icmp_errors: &self.icmp_errors,
            ts_ns: &self.ts_ns,
            last_ns: &self.last_ns,
            orig_pkts: &self.orig_pkts,
            resp_pkts: &self.resp_pkts,
            orig_bytes: &self.orig_bytes,
            resp_bytes: &self.resp_bytes,
            orig_ip_bytes: &self.orig_ip_bytes,
            resp_ip_bytes: &self.resp_ip_bytes,
            retransmissions: &self.retransmissions,
            syn_ns: &self.syn_ns,
            syn_ack_ns: &self.syn_ack_ns,
            ack_ns: &self.ack_ns,
        }
    }
}

/// `portlens._core.port_outcomes(cols)`: each row's outcome, an index into
/// `portlens.analysis.ports.OUTCOMES`, by the fold's rules (the HTML report's connection
/// table shows it).
#[pyfunction]
pub fn port_outcomes<'py>(
    py: Python<'py>,
    cols: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let read = Read::of(cols)?;
    let (state, history) = (as_strs(&read.states)?, as_strs(&read.histories)?);
    let c = read.columns(&state, &history);
    let outcomes = py
        .detach(|| ports::outcomes(&c))
        .map_err(PyValueError::new_err)?;
    Ok(outcomes.into_pyarray(py))
}

#[pymethods]
impl PortFold {
    #[new]
    #[pyo3(signature = (*, all_ports=false))]
    fn new(all_ports: bool) -> Self {
        PortFold {
            inner: ports::PortFold::new(all_ports),
        }
    }

    /// `PortTable.add` of every row of a dict of the tracker's columns (at least
    /// `PORT_COLUMNS`).
    fn add(&mut self, py: Python<'_>, cols: &Bound<'_, PyDict>) -> PyResult<()> {
        let read = Read::of(cols)?;
        let (state, history) = (as_strs(&read.states)?, as_strs(&read.histories)?);
        let c = read.columns(&state, &history);
        let inner = &mut self.inner;
        py.detach(|| inner.add(&c)).map_err(PyValueError::new_err)
    }

    /// What was folded since the last call: (rows, total, states). rows: (kind, port, code,
    /// figures) by key; figures: a dict of PortSummary's fields that add up (not the hosts:
    /// `host_count`, `hosts`); states: the conn_state names `conn_states` counts by.
    #[allow(clippy::type_complexity)]
    fn take<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<(
        Vec<(u8, u16, i32, Bound<'py, PyDict>)>,
        Bound<'py, PyDict>,
        Vec<String>,
    )> {
        let taken = self.inner.take();
        let rows = taken
            .rows
            .into_iter()
            .map(|(k, s)| Ok((k.kind, k.port, k.code, summary(py, s)?)))
            .collect::<PyResult<_>>()?;
        Ok((
            rows,
            summary(py, taken.total)?,
            self.inner.states().to_vec(),
        ))
    }

    /// How many distinct clients (or servers) a row has: (kind, port, code), None for the
    /// totals.
    #[pyo3(signature = (key, *, clients))]
    fn host_count(&self, key: Key, clients: bool) -> usize {
        self.inner.host_count(Self::key(key), clients)
    }

    /// A row's distinct clients (or servers) as text, in no particular order.
    #[pyo3(signature = (key, *, clients))]
    fn hosts(&self, key: Key, clients: bool) -> Vec<String> {
        let numbers = self.inner.host_numbers(Self::key(key), clients);
        numbers.into_iter().map(|n| self.named(n)).collect()
    }

    /// The host pairs with at least `min_failed` failed ports, as (kind, orig, resp, ports,
    /// failed_ports, answered_ports, outcomes); `take_all`: every pair's, forgotten here.
    #[pyo3(signature = (min_failed, *, take_all=false))]
    fn probes(&mut self, min_failed: usize, take_all: bool) -> Vec<ProbeTuple> {
        let probes = self.inner.probes(min_failed, take_all);
        probes.into_iter().map(|p| self.probe_tuple(p)).collect()
    }
}
