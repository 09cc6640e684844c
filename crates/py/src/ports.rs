//! `portlens._core.PortFold`: `ports`' per-port table folded in the core
//! (`portlens_core::analysis::ports`) from blocks of the tracker's columns, the dicts
//! `Tracker.feed` hands over. `PortTable.add_columns` feeds it; `PortTable` turns what it
//! takes into its PortSummaries and Probes when they are read.

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2};
use portlens_core::analysis::ports::{self, ConnColumns, PortSummary, Probe};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::addr;

#[pyclass(module = "portlens._core", name = "PortFold")]
pub struct PortFold {
    inner: ports::PortFold,
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
        let states = strings(cols, "conn_state")?;
        let histories = strings(cols, "history")?;
        let state: Vec<&str> = states.iter().map(|s| s.to_str()).collect::<PyResult<_>>()?;
        let history: Vec<&str> = histories
            .iter()
            .map(|s| s.to_str())
            .collect::<PyResult<_>>()?;
        let ip_version = numbers::<u8>(cols, "ip_version")?;
        let ip_proto = numbers::<u8>(cols, "ip_proto")?;
        let orig_h = addresses(cols, "id.orig_h")?;
        let orig_p = numbers::<u16>(cols, "id.orig_p")?;
        let resp_h = addresses(cols, "id.resp_h")?;
        let resp_p = numbers::<u16>(cols, "id.resp_p")?;
        let icmp_code = numbers::<i32>(cols, "icmp_code")?;
        let icmp_errors = errors(cols)?;
        let ts_ns = numbers::<i64>(cols, "ts_ns")?;
        let last_ns = numbers::<i64>(cols, "last_ns")?;
        let orig_pkts = numbers::<u64>(cols, "orig_pkts")?;
        let resp_pkts = numbers::<u64>(cols, "resp_pkts")?;
        let orig_bytes = numbers::<u64>(cols, "orig_bytes")?;
        let resp_bytes = numbers::<u64>(cols, "resp_bytes")?;
        let orig_ip_bytes = numbers::<u64>(cols, "orig_ip_bytes")?;
        let resp_ip_bytes = numbers::<u64>(cols, "resp_ip_bytes")?;
        let retransmissions = numbers::<u32>(cols, "analysis.retransmissions")?;
        let syn_ns = numbers::<i64>(cols, "handshake.syn_ns")?;
        let syn_ack_ns = numbers::<i64>(cols, "handshake.syn_ack_ns")?;
        let ack_ns = numbers::<i64>(cols, "handshake.ack_ns")?;
        let c = ConnColumns {
            ip_version: &ip_version,
            ip_proto: &ip_proto,
            orig_h: &orig_h,
            orig_p: &orig_p,
            resp_h: &resp_h,
            resp_p: &resp_p,
            icmp_code: &icmp_code,
            conn_state: &state,
            history: &history,
            icmp_errors: &icmp_errors,
            ts_ns: &ts_ns,
            last_ns: &last_ns,
            orig_pkts: &orig_pkts,
            resp_pkts: &resp_pkts,
            orig_bytes: &orig_bytes,
            resp_bytes: &resp_bytes,
            orig_ip_bytes: &orig_ip_bytes,
            resp_ip_bytes: &resp_ip_bytes,
            retransmissions: &retransmissions,
            syn_ns: &syn_ns,
            syn_ack_ns: &syn_ack_ns,
            ack_ns: &ack_ns,
        };
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
