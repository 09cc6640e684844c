//! `portlens._core.Tracker`: the Rust tracker over PacketBatch columns.
//!
//! `feed(batch)` reads the batch's numpy columns in place (no copy), tracks them with the GIL
//! released, and returns the connections that ended as a dict of columns (docs/formats.md
//! names; addresses as n×16 uint8 arrays, absent integers as the column type's minimum).
//! `transitions()` drains the RFC 9293 transitions seen so far, as columns too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use numpy::Element;
use numpy::{
    IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use portlens_core::analysis::ports::{BatchTexts, ConnColumns};
use portlens_core::conn_log;
use portlens_core::track::columns::{proto_name, END_REASON_NAMES, OPT_KINDS_MAX};
use portlens_core::track::ids::{write_uid, Uid};
use portlens_core::track::kept::{EndedTransitions, KeptTransitions};
use portlens_core::track::rfc::{ANALYSIS_NAMES, EVENT_NAMES, OUTCOME_NAMES, STATE_NAMES};
use portlens_core::track::shards::{Ended, Shards};
use portlens_core::track::zeek::CONN_STATE_NAMES;
use portlens_core::track::ShardRows;
use portlens_core::track::{
    self as core, ConnBatch, Net, Packets, SynOptions, Timeouts, TransitionBatch,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::decoded::DecodedFile;
use crate::handshakes::HandshakeFold;
use crate::ports::PortFold;
use crate::sockets::SocketFold;

/// The names `Timeouts` takes, each required (nanoseconds of capture time; only
/// tcp_partial_close may be None, for off).
const TIMEOUT_NAMES: [&str; 12] = [
    "tcp_inactivity",
    "udp_inactivity",
    "icmp_inactivity",
    "unknown_ip_inactivity",
    "tcp_attempt",
    "tcp_close",
    "tcp_reset",
    "tcp_partial_close",
    "tcp_syn_timeout",
    "tcp_connection_linger",
    "tcp_session_timer",
    "dns_session_timeout",
];

fn timeouts_from(map: &HashMap<String, Option<i64>>) -> PyResult<Timeouts> {
    for name in map.keys() {
        if !TIMEOUT_NAMES.contains(&name.as_str()) {
            return Err(PyValueError::new_err(format!(
                "unknown timeout {name:?}; known: {}",
                TIMEOUT_NAMES.join(", ")
            )));
        }
    }
    let optional = |name: &str| -> PyResult<Option<i64>> {
        let value = map
            .get(name)
            .copied()
            .ok_or_else(|| PyValueError::new_err(format!("timeout {name:?} missing")))?;
        if value.is_some_and(|v| v < 0) {
            return Err(PyValueError::new_err(format!(
                "timeout {name:?} is negative"
            )));
        }
        Ok(value)
    };
    let get = |name: &str| -> PyResult<i64> {
        optional(name)?.ok_or_else(|| PyValueError::new_err(format!("timeout {name:?} is None")))
    };
    Ok(Timeouts {
        tcp_inactivity: get("tcp_inactivity")?,
        udp_inactivity: get("udp_inactivity")?,
        icmp_inactivity: get("icmp_inactivity")?,
        unknown_ip_inactivity: get("unknown_ip_inactivity")?,
        tcp_attempt: get("tcp_attempt")?,
        tcp_close: get("tcp_close")?,
        tcp_reset: get("tcp_reset")?,
        tcp_partial_close: optional("tcp_partial_close")?,
        tcp_syn_timeout: get("tcp_syn_timeout")?,
        tcp_connection_linger: get("tcp_connection_linger")?,
        tcp_session_timer: get("tcp_session_timer")?,
        dns_session_timeout: get("dns_session_timeout")?,
    })
}

/// A PacketBatch's columns (its NumPy arrays, borrowed), read once for the tracker's `feed`
/// and for `packet_lines`: [`Packets`] over them.
pub(crate) struct BatchColumns<'py> {
    frame: PyReadonlyArray1<'py, i64>,
    ts_ns: PyReadonlyArray1<'py, i64>,
    vlan: PyReadonlyArray1<'py, i32>,
    ip_version: PyReadonlyArray1<'py, u8>,
    src: PyReadonlyArray2<'py, u8>,
    dst: PyReadonlyArray2<'py, u8>,
    proto: PyReadonlyArray1<'py, u8>,
    ip_len: PyReadonlyArray1<'py, u32>,
    ip_len_zero: PyReadonlyArray1<'py, bool>,
    frag: PyReadonlyArray1<'py, u8>,
    l4: PyReadonlyArray1<'py, u8>,
    sport: PyReadonlyArray1<'py, u16>,
    dport: PyReadonlyArray1<'py, u16>,
    payload: PyReadonlyArray1<'py, i32>,
    tcp_flags: PyReadonlyArray1<'py, u16>,
    seq: PyReadonlyArray1<'py, u32>,
    ack: PyReadonlyArray1<'py, u32>,
    win: PyReadonlyArray1<'py, u16>,
    mss: PyReadonlyArray1<'py, i32>,
    wscale: PyReadonlyArray1<'py, i16>,
    sack_perm: PyReadonlyArray1<'py, bool>,
    has_ts: PyReadonlyArray1<'py, bool>,
    opt_count: PyReadonlyArray1<'py, u8>,
    opt_kinds: PyReadonlyArray2<'py, u8>,
    udp_len: PyReadonlyArray1<'py, u16>,
    dns_qr: PyReadonlyArray1<'py, i16>,
    ntp_mode: PyReadonlyArray1<'py, i16>,
    icmp_type: PyReadonlyArray1<'py, i16>,
    icmp_code: PyReadonlyArray1<'py, i16>,
    q_valid: PyReadonlyArray1<'py, bool>,
    q_src: PyReadonlyArray2<'py, u8>,
    q_dst: PyReadonlyArray2<'py, u8>,
    q_proto: PyReadonlyArray1<'py, u8>,
    q_sport: PyReadonlyArray1<'py, u16>,
    q_dport: PyReadonlyArray1<'py, u16>,
    sub: PyReadonlyArray1<'py, u8>,
    tunnel_depth: PyReadonlyArray1<'py, u8>,
    tunnel: PyReadonlyArray1<'py, u32>,
    out_src: PyReadonlyArray2<'py, u8>,
    out_dst: PyReadonlyArray2<'py, u8>,
    out_proto: PyReadonlyArray1<'py, u8>,
    out_sport: PyReadonlyArray1<'py, u16>,
    out_dport: PyReadonlyArray1<'py, u16>,
    out_ip_len: PyReadonlyArray1<'py, u32>,
    car_src: PyReadonlyArray2<'py, u8>,
    car_dst: PyReadonlyArray2<'py, u8>,
    car_proto: PyReadonlyArray1<'py, u8>,
    car_sport: PyReadonlyArray1<'py, u16>,
    car_dport: PyReadonlyArray1<'py, u16>,
    car_ip_len: PyReadonlyArray1<'py, u32>,
    truncated: PyReadonlyArray1<'py, bool>,
    ip_csum: PyReadonlyArray1<'py, u8>,
    l4_csum: PyReadonlyArray1<'py, u8>,
    malformed: PyReadonlyArray1<'py, u8>,
    wirelen: PyReadonlyArray1<'py, u32>,
    caplen: PyReadonlyArray1<'py, u32>,
    linktype: PyReadonlyArray1<'py, u16>,
    interface: PyReadonlyArray1<'py, u16>,
    ethertype: PyReadonlyArray1<'py, u16>,
    ppp_proto: PyReadonlyArray1<'py, u16>,
    tsval: PyReadonlyArray1<'py, u32>,
}

impl<'py> BatchColumns<'py> {
    pub(crate) fn of(batch: &Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(BatchColumns {
            frame: col1(batch, "frame")?,
            ts_ns: col1(batch, "ts_ns")?,
            vlan: col1(batch, "vlan")?,
            ip_version: col1(batch, "ip_version")?,
            src: col2(batch, "src")?,
            dst: col2(batch, "dst")?,
            proto: col1(batch, "proto")?,
            ip_len: col1(batch, "ip_len")?,
            ip_len_zero: col1(batch, "ip_len_zero")?,
            frag: col1(batch, "frag")?,
            l4: col1(batch, "l4")?,
            sport: col1(batch, "sport")?,
            dport: col1(batch, "dport")?,
            payload: col1(batch, "payload")?,
            tcp_flags: col1(batch, "tcp_flags")?,
            seq: col1(batch, "seq")?,
            ack: col1(batch, "ack")?,
            win: col1(batch, "win")?,
            mss: col1(batch, "mss")?,
            wscale: col1(batch, "wscale")?,
            sack_perm: col1(batch, "sack_perm")?,
            has_ts: col1(batch, "has_ts")?,
            opt_count: col1(batch, "opt_count")?,
            opt_kinds: col2(batch, "opt_kinds")?,
            udp_len: col1(batch, "udp_len")?,
            dns_qr: col1(batch, "dns_qr")?,
            ntp_mode: col1(batch, "ntp_mode")?,
            icmp_type: col1(batch, "icmp_type")?,
            icmp_code: col1(batch, "icmp_code")?,
            q_valid: col1(batch, "q_valid")?,
            q_src: col2(batch, "q_src")?,
            q_dst: col2(batch, "q_dst")?,
            q_proto: col1(batch, "q_proto")?,
            q_sport: col1(batch, "q_sport")?,
            q_dport: col1(batch, "q_dport")?,
            sub: col1(batch, "sub")?,
            tunnel_depth: col1(batch, "tunnel_depth")?,
            tunnel: col1(batch, "tunnel")?,
            out_src: col2(batch, "out_src")?,
            out_dst: col2(batch, "out_dst")?,
            out_proto: col1(batch, "out_proto")?,
            out_sport: col1(batch, "out_sport")?,
            out_dport: col1(batch, "out_dport")?,
            out_ip_len: col1(batch, "out_ip_len")?,
            car_src: col2(batch, "car_src")?,
            car_dst: col2(batch, "car_dst")?,
            car_proto: col1(batch, "car_proto")?,
            car_sport: col1(batch, "car_sport")?,
            car_dport: col1(batch, "car_dport")?,
            car_ip_len: col1(batch, "car_ip_len")?,
            truncated: col1(batch, "truncated")?,
            ip_csum: col1(batch, "ip_csum")?,
            l4_csum: col1(batch, "l4_csum")?,
            malformed: col1(batch, "malformed")?,
            wirelen: col1(batch, "wirelen")?,
            caplen: col1(batch, "caplen")?,
            linktype: col1(batch, "linktype")?,
            interface: col1(batch, "interface")?,
            ethertype: col1(batch, "ethertype")?,
            ppp_proto: col1(batch, "ppp_proto")?,
            tsval: col1(batch, "tsval")?,
        })
    }

    pub(crate) fn packets(&self) -> PyResult<Packets<'_>> {
        if self
            .opt_kinds
            .shape()
            .get(1)
            .copied()
            .unwrap_or(OPT_KINDS_MAX)
            != OPT_KINDS_MAX
        {
            return Err(PyValueError::new_err("column opt_kinds must be n×40"));
        }
        Ok(Packets {
            frame: slice(&self.frame, "frame")?,
            ts_ns: slice(&self.ts_ns, "ts_ns")?,
            vlan: slice(&self.vlan, "vlan")?,
            ip_version: slice(&self.ip_version, "ip_version")?,
            src: slice2(&self.src, "src")?,
            dst: slice2(&self.dst, "dst")?,
            proto: slice(&self.proto, "proto")?,
            ip_len: slice(&self.ip_len, "ip_len")?,
            ip_len_zero: slice(&self.ip_len_zero, "ip_len_zero")?,
            frag: slice(&self.frag, "frag")?,
            l4: slice(&self.l4, "l4")?,
            sport: slice(&self.sport, "sport")?,
            dport: slice(&self.dport, "dport")?,
            payload: slice(&self.payload, "payload")?,
            tcp_flags: slice(&self.tcp_flags, "tcp_flags")?,
            seq: slice(&self.seq, "seq")?,
            ack: slice(&self.ack, "ack")?,
            win: slice(&self.win, "win")?,
            mss: slice(&self.mss, "mss")?,
            wscale: slice(&self.wscale, "wscale")?,
            sack_perm: slice(&self.sack_perm, "sack_perm")?,
            has_ts: slice(&self.has_ts, "has_ts")?,
            opt_count: slice(&self.opt_count, "opt_count")?,
            opt_kinds: slice2(&self.opt_kinds, "opt_kinds")?,
            udp_len: slice(&self.udp_len, "udp_len")?,
            dns_qr: slice(&self.dns_qr, "dns_qr")?,
            ntp_mode: slice(&self.ntp_mode, "ntp_mode")?,
            icmp_type: slice(&self.icmp_type, "icmp_type")?,
            icmp_code: slice(&self.icmp_code, "icmp_code")?,
            q_valid: slice(&self.q_valid, "q_valid")?,
            q_src: slice2(&self.q_src, "q_src")?,
            q_dst: slice2(&self.q_dst, "q_dst")?,
            q_proto: slice(&self.q_proto, "q_proto")?,
            q_sport: slice(&self.q_sport, "q_sport")?,
            q_dport: slice(&self.q_dport, "q_dport")?,
            sub: slice(&self.sub, "sub")?,
            tunnel_depth: slice(&self.tunnel_depth, "tunnel_depth")?,
            tunnel: slice(&self.tunnel, "tunnel")?,
            out_src: slice2(&self.out_src, "out_src")?,
            out_dst: slice2(&self.out_dst, "out_dst")?,
            out_proto: slice(&self.out_proto, "out_proto")?,
            out_sport: slice(&self.out_sport, "out_sport")?,
            out_dport: slice(&self.out_dport, "out_dport")?,
            out_ip_len: slice(&self.out_ip_len, "out_ip_len")?,
            car_src: slice2(&self.car_src, "car_src")?,
            car_dst: slice2(&self.car_dst, "car_dst")?,
            car_proto: slice(&self.car_proto, "car_proto")?,
            car_sport: slice(&self.car_sport, "car_sport")?,
            car_dport: slice(&self.car_dport, "car_dport")?,
            car_ip_len: slice(&self.car_ip_len, "car_ip_len")?,
            truncated: slice(&self.truncated, "truncated")?,
            ip_csum: slice(&self.ip_csum, "ip_csum")?,
            l4_csum: slice(&self.l4_csum, "l4_csum")?,
            malformed: slice(&self.malformed, "malformed")?,
            wirelen: slice(&self.wirelen, "wirelen")?,
            caplen: slice(&self.caplen, "caplen")?,
            linktype: slice(&self.linktype, "linktype")?,
            interface: slice(&self.interface, "interface")?,
            ethertype: slice(&self.ethertype, "ethertype")?,
            ppp_proto: slice(&self.ppp_proto, "ppp_proto")?,
            tsval: slice(&self.tsval, "tsval")?,
        })
    }
}

#[pyclass(module = "portlens._core", name = "Tracker")]
pub struct Tracker {
    /// One tracker, or (`threads` > 1) flow shards tracked in threads with one tracker's rows.
    inner: Shards,
    /// Open connections' transitions, for `ended_transitions`.
    kept: KeptTransitions,
    /// How the connections that end are handed over (`feed`, `advance`, `finish`).
    form: Form,
}

/// The connections that end, as a dict of columns (only those kept), as their conn.log
/// lines (`ended_as_conn_log`): `(text, rows)`, or folded into a `PortFold`, a
/// `HandshakeFold` or a `SocketFold` (`ended_into_ports`, `ended_into_handshakes`,
/// `ended_into_sockets`): their number. All but the first make no Python object, nor NumPy
/// array, a connection (`conns --format zeek`, `ports`, `handshakes`, `sockets`).
enum Form {
    Columns(Keep),
    ConnLog,
    Ports(Py<PortFold>),
    Handshakes(Py<HandshakeFold>),
    Sockets(Py<SocketFold>),
}

impl Form {
    /// The rows that ended, in the form asked for. Only conn.log lines are written row by
    /// row from the shards' parts; the others take them as one batch.
    fn hand_over<'py>(&self, py: Python<'py>, ended: Ended) -> PyResult<Bound<'py, PyAny>> {
        let rows = ended.len();
        match self {
            Form::Columns(keep) => {
                let ended = py.detach(|| ended.merged());
                Ok(conn_dict(py, ended, keep)?.into_any())
            }
            Form::ConnLog => {
                let text = py.detach(|| {
                    let mut text = String::with_capacity(rows.saturating_mul(160));
                    conn_log::push_rows(&mut text, ended.rows());
                    text
                });
                Ok((text, rows).into_pyobject(py)?.into_any())
            }
            Form::Ports(fold) => {
                let mut fold = fold.borrow_mut(py);
                let inner = &mut fold.inner;
                py.detach(|| {
                    let ended = ended.merged();
                    let texts = BatchTexts::of(&ended);
                    inner.add(&ConnColumns::of_batch(&ended, &texts))
                })
                .map_err(PyValueError::new_err)?;
                Ok(rows.into_pyobject(py)?.into_any())
            }
            Form::Handshakes(fold) => {
                let mut fold = fold.borrow_mut(py);
                let inner = &mut fold.inner;
                py.detach(|| inner.add(&ended.merged()));
                Ok(rows.into_pyobject(py)?.into_any())
            }
            Form::Sockets(fold) => {
                let mut fold = fold.borrow_mut(py);
                let inner = &mut fold.inner;
                py.detach(|| inner.add(&ended.merged()));
                Ok(rows.into_pyobject(py)?.into_any())
            }
        }
    }
}

fn col1<'py, T: Element>(
    batch: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    batch
        .getattr(name)?
        .extract::<PyReadonlyArray1<'py, T>>()
        .map_err(|e| PyValueError::new_err(format!("column {name}: {e}")))
}

fn col2<'py>(batch: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray2<'py, u8>> {
    batch
        .getattr(name)?
        .extract::<PyReadonlyArray2<'py, u8>>()
        .map_err(|e| PyValueError::new_err(format!("column {name}: {e}")))
}

pub(crate) fn slice<'a, T: Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    name: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("column {name} is not contiguous")))
}

fn slice2<'a>(a: &'a PyReadonlyArray2<'_, u8>, name: &str) -> PyResult<&'a [u8]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("column {name} is not contiguous")))
}

fn uid_text(u: &Uid) -> String {
    let mut s = String::with_capacity(18);
    write_uid(&mut s, u);
    s
}

/// A handshake's options (client's or server's) as columns under `prefix`: `present` (False
/// when no SYN or SYN-ACK was seen), `mss` (-1 absent), `wscale` (-1 absent), `sack_perm`,
/// `timestamps`, `kinds` (n×40 uint8, the first `kinds_len` valid).
fn options_columns<'py>(
    py: Python<'py>,
    d: &Bound<'py, PyDict>,
    prefix: &str,
    opts: &[Option<Box<SynOptions>>],
    keep: &Keep,
) -> PyResult<()> {
    if !keep.any_under(prefix) {
        return Ok(());
    }
    let n = opts.len();
    let none = SynOptions::default();
    fn or<'a>(o: &'a Option<Box<SynOptions>>, none: &'a SynOptions) -> &'a SynOptions {
        o.as_deref().unwrap_or(none)
    }
    let get = |o| or(o, &none);
    let present: Vec<bool> = opts.iter().map(Option::is_some).collect();
    let mss: Vec<i32> = opts.iter().map(|o| get(o).mss).collect();
    let wscale: Vec<i16> = opts.iter().map(|o| get(o).wscale).collect();
    let sack: Vec<bool> = opts.iter().map(|o| get(o).sack_perm).collect();
    let ts: Vec<bool> = opts.iter().map(|o| get(o).timestamps).collect();
    let kinds_len: Vec<u8> = opts.iter().map(|o| get(o).kinds_len).collect();
    let kinds: Vec<u8> = opts.iter().flat_map(|o| get(o).kinds).collect();
    // One side's options go together: a caller that reads one reads them all
    // (analysis/columns.py `_fold_options`), so they are not asked for one by one.
    d.set_item(format!("{prefix}.present"), present.into_pyarray(py))?;
    d.set_item(format!("{prefix}.mss"), mss.into_pyarray(py))?;
    d.set_item(format!("{prefix}.wscale"), wscale.into_pyarray(py))?;
    d.set_item(format!("{prefix}.sack_perm"), sack.into_pyarray(py))?;
    d.set_item(format!("{prefix}.timestamps"), ts.into_pyarray(py))?;
    d.set_item(format!("{prefix}.kinds_len"), kinds_len.into_pyarray(py))?;
    d.set_item(
        format!("{prefix}.kinds"),
        kinds.into_pyarray(py).reshape([n, OPT_KINDS_MAX])?,
    )?;
    Ok(())
}

/// Which connection columns a dict holds: all of them, or those a caller named
/// (`Tracker.keep_columns`), so that an aggregate that reads a dozen columns is not handed a
/// hundred, nor a Python string a row for the uids and community ids it never reads.
struct Keep(Option<HashSet<String>>);

impl Keep {
    const ALL: Keep = Keep(None);

    fn has(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|names| names.contains(name))
    }

    /// Whether any column named `prefix.…` is kept.
    fn any_under(&self, prefix: &str) -> bool {
        self.0.as_ref().is_none_or(|names| {
            names
                .iter()
                .any(|n| n.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')))
        })
    }
}

/// Text columns whose values repeat (histories): one Python string per distinct value.
fn deduped<'py>(py: Python<'py>, values: &[String]) -> PyResult<Bound<'py, PyList>> {
    let mut seen: HashMap<&str, Bound<'py, PyString>> = HashMap::new();
    let items: Vec<Bound<'py, PyString>> = values
        .iter()
        .map(|v| {
            seen.entry(v.as_str())
                .or_insert_with(|| PyString::new(py, v))
                .clone()
        })
        .collect();
    PyList::new(py, items)
}

/// Python strings for a table of names, made once per call and shared by every row.
fn names<'py>(py: Python<'py>, table: &[&str]) -> Vec<Bound<'py, PyString>> {
    table.iter().map(|n| PyString::intern(py, n)).collect()
}

fn coded<'py>(py: Python<'py>, codes: &[u8], table: &[&str]) -> PyResult<Bound<'py, PyList>> {
    let names = names(py, table);
    let items: Vec<Option<Bound<'py, PyString>>> = codes
        .iter()
        .map(|&c| names.get(usize::from(c)).cloned())
        .collect();
    PyList::new(py, items)
}

fn addrs<'py>(py: Python<'py>, v: Vec<[u8; 16]>) -> PyResult<Bound<'py, PyAny>> {
    let n = v.len();
    let flat: Vec<u8> = v.into_flattened();
    Ok(flat.into_pyarray(py).reshape([n, 16])?.into_any())
}

/// One tuple a row, of `items(row)`: the empty tuple (almost every row's, for tunnel parents
/// and ICMP errors) is a single shared object.
fn tuples<'py, 'a, T, I>(
    py: Python<'py>,
    rows: &'a [T],
    items: impl Fn(&'a T) -> I,
) -> PyResult<Bound<'py, PyList>>
where
    I: ExactSizeIterator,
    I::Item: IntoPyObject<'py>,
{
    let tuples: Vec<Bound<'py, PyTuple>> = rows
        .iter()
        .map(|row| PyTuple::new(py, items(row)))
        .collect::<PyResult<_>>()?;
    PyList::new(py, tuples)
}

fn conn_dict<'py>(py: Python<'py>, b: ConnBatch, keep: &Keep) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let n = b.len();
    // A column is made only when kept: `value` is not evaluated otherwise.
    macro_rules! put {
        ($name:literal, $value:expr) => {
            if keep.has($name) {
                d.set_item($name, $value)?;
            }
        };
    }
    put!("uid", PyList::new(py, b.uid.iter().map(uid_text))?);
    put!("serial", b.serial.into_pyarray(py));
    put!("ts_ns", b.ts_ns.into_pyarray(py));
    put!("id.orig_h", addrs(py, b.orig_h)?);
    put!("id.orig_p", b.orig_p.into_pyarray(py));
    put!("id.resp_h", addrs(py, b.resp_h)?);
    put!("id.resp_p", b.resp_p.into_pyarray(py));
    if keep.has("proto") {
        // One string object per name, shared by the rows (as `coded` does).
        let mut named: Vec<Option<Bound<'py, PyString>>> = vec![None; 256];
        let proto_names: Vec<Bound<'py, PyString>> = b
            .proto
            .iter()
            .map(|&p| {
                named[usize::from(p)]
                    .get_or_insert_with(|| PyString::intern(py, proto_name(p)))
                    .clone()
            })
            .collect();
        d.set_item("proto", PyList::new(py, proto_names)?)?;
    }
    put!("ip_proto", b.proto.into_pyarray(py));
    put!("duration_ns", b.duration_ns.into_pyarray(py));
    put!("orig_bytes", b.orig_bytes.into_pyarray(py));
    put!("resp_bytes", b.resp_bytes.into_pyarray(py));
    put!("conn_state", coded(py, &b.conn_state, &CONN_STATE_NAMES)?);
    put!("missed_bytes", b.missed_bytes.into_pyarray(py));
    put!("history", deduped(py, &b.history)?);
    put!("orig_pkts", b.orig_pkts.into_pyarray(py));
    put!("orig_ip_bytes", b.orig_ip_bytes.into_pyarray(py));
    put!("resp_pkts", b.resp_pkts.into_pyarray(py));
    put!("resp_ip_bytes", b.resp_ip_bytes.into_pyarray(py));
    put!(
        "tunnel_parents",
        tuples(py, &b.tunnel_parents, |p| p.iter().map(uid_text))?
    );
    put!("community_id", PyList::new(py, &b.community_id)?);
    put!("ip_version", b.ip_version.into_pyarray(py));
    put!("vlan", b.vlan.into_pyarray(py));
    put!("orig_state", coded(py, &b.orig_state, &STATE_NAMES)?);
    put!("resp_state", coded(py, &b.resp_state, &STATE_NAMES)?);
    put!("end_reason", coded(py, &b.end_reason, &END_REASON_NAMES)?);
    put!("completeness", b.completeness.into_pyarray(py));
    put!("first_frame", b.first_frame.into_pyarray(py));
    put!("last_frame", b.last_frame.into_pyarray(py));
    put!("last_ns", b.last_ns.into_pyarray(py));
    put!("end_frame", b.end_frame.into_pyarray(py));
    put!("end_phase", b.end_phase.into_pyarray(py));
    put!(
        "icmp_errors",
        tuples(py, &b.icmp_errors, |e| e.iter().copied())?
    );
    put!("orig_host", b.orig_host.into_pyarray(py));
    put!("icmp_code", b.icmp_code.into_pyarray(py));
    put!(
        "handshake.outcome",
        coded(py, &b.handshake_outcome, &OUTCOME_NAMES)?
    );
    put!("handshake.syn_ns", b.syn_ns.into_pyarray(py));
    put!("handshake.syn_ack_ns", b.syn_ack_ns.into_pyarray(py));
    put!("handshake.ack_ns", b.ack_ns.into_pyarray(py));
    put!(
        "handshake.syn_retransmits",
        b.syn_retransmits.into_pyarray(py)
    );
    put!(
        "handshake.syn_ack_retransmits",
        b.syn_ack_retransmits.into_pyarray(py)
    );
    let opts = [
        ("handshake.client_options", &b.client_options),
        ("handshake.server_options", &b.server_options),
    ];
    for (prefix, side) in opts {
        options_columns(py, &d, prefix, side, keep)?;
    }
    if keep.any_under("analysis") {
        let flat: Vec<u32> = b.analysis.into_flattened();
        let analysis = flat.into_pyarray(py).reshape([n, ANALYSIS_NAMES.len()])?;
        for (k, name) in ANALYSIS_NAMES.iter().enumerate() {
            let name = format!("analysis.{name}");
            if keep.has(&name) {
                let column = analysis.call_method1("__getitem__", ((py.Ellipsis(), k),))?;
                d.set_item(name, column)?;
            }
        }
    }
    Ok(d)
}

fn transitions_dict<'py>(py: Python<'py>, t: TransitionBatch) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("uid", PyList::new(py, t.uid.iter().map(uid_text))?)?;
    d.set_item("serial", t.serial.into_pyarray(py))?;
    d.set_item("ts_ns", t.ts_ns.into_pyarray(py))?;
    d.set_item("frame", t.frame.into_pyarray(py))?;
    d.set_item("host", t.host.into_pyarray(py))?;
    d.set_item("endpoint", coded(py, &t.endpoint, &["orig", "resp"])?)?;
    d.set_item("event", coded(py, &t.event, &EVENT_NAMES)?)?;
    d.set_item("from", coded(py, &t.from, &STATE_NAMES)?)?;
    d.set_item("to", coded(py, &t.to, &STATE_NAMES)?)?;
    d.set_item("flags", t.flags.into_pyarray(py))?;
    d.set_item("seq", t.seq.into_pyarray(py))?;
    d.set_item("ack", t.ack.into_pyarray(py))?;
    d.set_item("payload", t.payload.into_pyarray(py))?;
    d.set_item("id.orig_h", addrs(py, t.orig_h)?)?;
    d.set_item("id.orig_p", t.orig_p.into_pyarray(py))?;
    d.set_item("id.resp_h", addrs(py, t.resp_h)?)?;
    d.set_item("id.resp_p", t.resp_p.into_pyarray(py))?;
    Ok(d)
}

fn ended_dict<'py>(py: Python<'py>, t: EndedTransitions) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("transitions.count", t.count.into_pyarray(py))?;
    d.set_item("transitions.ts_ns", t.ts_ns.into_pyarray(py))?;
    d.set_item("transitions.frame", t.frame.into_pyarray(py))?;
    d.set_item("transitions.endpoint", t.endpoint.into_pyarray(py))?;
    d.set_item("transitions.event", t.event.into_pyarray(py))?;
    d.set_item("transitions.from", t.from.into_pyarray(py))?;
    d.set_item("transitions.to", t.to.into_pyarray(py))?;
    d.set_item("transitions.flags", t.flags.into_pyarray(py))?;
    d.set_item("transitions.seq", t.seq.into_pyarray(py))?;
    d.set_item("transitions.ack", t.ack.into_pyarray(py))?;
    d.set_item("transitions.payload", t.payload.into_pyarray(py))?;
    Ok(d)
}

#[pymethods]
impl Tracker {
    /// `timeouts`: every name of TIMEOUT_NAMES in ns; `likely_server_ports`: (IP protocol,
    /// port) pairs; `ignore_checksum_nets`: (16-byte network address, prefix length in the
    /// 16-byte form, is IPv4).
    #[new]
    #[pyo3(signature = (*, timeouts, drop_bad_checksums=false, likely_server_ports=Vec::new(),
                        report_gaps_for_partial=false, dns_timeout=true, ntp_analyzer=true,
                        max_flows=core::DEFAULT_MAX_FLOWS,
                        vlan_in_key=false, keep_transitions=true,
                        ignore_checksum_nets=Vec::new(), threads=1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        timeouts: HashMap<String, Option<i64>>,
        drop_bad_checksums: bool,
        likely_server_ports: Vec<(u8, u16)>,
        report_gaps_for_partial: bool,
        dns_timeout: bool,
        ntp_analyzer: bool,
        max_flows: usize,
        vlan_in_key: bool,
        keep_transitions: bool,
        ignore_checksum_nets: Vec<(Vec<u8>, u8, bool)>,
        threads: usize,
    ) -> PyResult<Self> {
        if threads == 0 {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        let mut nets = Vec::new();
        for (addr, prefix, v4) in ignore_checksum_nets {
            let addr: [u8; 16] = addr
                .try_into()
                .map_err(|_| PyValueError::new_err("a network address must be 16 bytes"))?;
            nets.push(Net { addr, prefix, v4 });
        }
        let config = core::Config {
            timeouts: timeouts_from(&timeouts)?,
            drop_bad_checksums,
            likely_server_ports,
            report_gaps_for_partial,
            dns_timeout,
            ntp_analyzer,
            max_flows,
            vlan_in_key,
            keep_transitions,
            ignore_checksum_nets: nets,
        };
        Ok(Tracker {
            inner: Shards::new(config, threads),
            kept: KeptTransitions::default(),
            form: Form::Columns(Keep::ALL),
        })
    }

    /// Track one PacketBatch (any object with its columns); returns the connections that
    /// ended during it, as columns. With `mine` (a bool per row), a tracker of one flow shard:
    /// only those rows are tracked, the others move the clock; `quoted` (default `mine`): the
    /// rows whose ICMP error's quoted flow is the shard's (`Tracker::feed_shard`).
    #[pyo3(signature = (batch, mine=None, quoted=None))]
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
        mine: Option<PyReadonlyArray1<'py, bool>>,
        quoted: Option<PyReadonlyArray1<'py, bool>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mine = match &mine {
            Some(m) => Some(slice(m, "mine")?),
            None => None,
        };
        let quoted = match &quoted {
            Some(q) => Some(slice(q, "quoted")?),
            None => None,
        };
        let columns = BatchColumns::of(batch)?;
        let p = columns.packets()?;
        let inner = &mut self.inner;
        let ended = match mine {
            None => py.detach(|| inner.feed(&p).map(|()| inner.take_ended_parts())),
            Some(mine) => {
                let Some(one) = inner.single() else {
                    return Err(PyValueError::new_err(
                        "mine is for a tracker of one shard (threads=1)",
                    ));
                };
                let quoted = quoted.unwrap_or(mine);
                let shard = ShardRows { mine, quoted };
                py.detach(|| {
                    one.feed_shard(&p, Some(shard))
                        .map(|()| Ended::from(one.ended.take()))
                })
            }
        }
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.form.hand_over(py, ended)
    }

    /// Tracks the batch `file.hold()` took (a `DecodedFile`: columns the core decoded and
    /// never handed to Python), all its rows or only `rows` (indices, in order: what a
    /// selection kept), hands it back to `file`, and returns the connections that ended, as
    /// `feed` does.
    #[pyo3(signature = (file, rows=None))]
    fn feed_held<'py>(
        &mut self,
        py: Python<'py>,
        file: &DecodedFile,
        rows: Option<PyReadonlyArray1<'py, i64>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rows = rows
            .map(|r| {
                r.as_array()
                    .iter()
                    .map(|&i| usize::try_from(i))
                    .collect::<Result<Vec<usize>, _>>()
            })
            .transpose()
            .map_err(|_| PyValueError::new_err("rows: a negative row"))?;
        let Some(batch) = file.take_held() else {
            return Err(PyValueError::new_err(
                "no batch held: DecodedFile.hold() first",
            ));
        };
        // The next batches come split, and the thread may track the second shard.
        let hand = self.inner.split_spec().map(|spec| {
            let f = file.file();
            f.split_for(spec);
            Arc::clone(f.hand())
        });
        let inner = &mut self.inner;
        let (fed, batch) = py.detach(|| {
            let fed = match (&rows, &hand) {
                (None, Some(hand)) => {
                    let shared = Arc::new(batch);
                    let fed = inner.feed_helped(&shared, hand);
                    // The job let go of it when it gave the shard back.
                    return (Some(fed), Arc::into_inner(shared));
                }
                (None, None) => {
                    Some(inner.feed_split(&Packets::of(&batch.columns), Some(&batch.split)))
                }
                (Some(rows), _) => batch
                    .columns
                    .take_rows(rows)
                    .map(|kept| inner.feed(&Packets::of(&kept))),
            };
            (fed, Some(batch))
        });
        if let Some(hand) = &hand {
            hand.ring(); // room for the thread's next batch
        }
        if let Some(batch) = batch {
            file.give_back(batch);
        }
        match fed {
            None => Err(PyValueError::new_err("rows: a row past the batch")),
            Some(Err(e)) => Err(PyValueError::new_err(e.to_string())),
            Some(Ok(())) => self.form.hand_over(py, self.inner.take_ended_parts()),
        }
    }

    /// The columns of the connections that end from now on: only `names` (None: all). The
    /// open connections of a live view keep every column.
    #[pyo3(signature = (names=None))]
    fn keep_columns(&mut self, names: Option<HashSet<String>>) {
        self.form = Form::Columns(Keep(names));
    }

    /// The connections that end from now on as their conn.log lines, and how many: `(text,
    /// rows)` where the others give columns (`portlens._core.conn_log_lines` of those columns
    /// is the same text).
    fn ended_as_conn_log(&mut self) {
        self.form = Form::ConnLog;
    }

    /// The connections that end from now on folded into `fold` (`PortFold.add` of their
    /// columns), where the others give columns: each call gives their number.
    fn ended_into_ports(&mut self, fold: Py<PortFold>) {
        self.form = Form::Ports(fold);
    }

    /// The connections that end from now on folded into `fold` (`HandshakeTable.add` of
    /// each), where the others give columns: each call gives their number.
    fn ended_into_handshakes(&mut self, fold: Py<HandshakeFold>) {
        self.form = Form::Handshakes(fold);
    }

    /// The connections that end from now on folded into `fold` (`SocketTable.add` of each),
    /// where the others give columns: each call gives their number.
    fn ended_into_sockets(&mut self, fold: Py<SocketFold>) {
        self.form = Form::Sockets(fold);
    }

    /// A shard's tracker (`feed` with `mine`): the first frames of the connections created
    /// since the last call, in creation order.
    fn created<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.take_created().into_pyarray(py)
    }

    /// Moves the clock without a packet (live capture): returns the connections that ended.
    fn advance<'py>(&mut self, py: Python<'py>, ts_ns: i64) -> PyResult<Bound<'py, PyAny>> {
        let inner = &mut self.inner;
        let ended = py.detach(|| {
            inner.advance(ts_ns);
            inner.take_ended_parts()
        });
        self.form.hand_over(py, ended)
    }

    /// End of capture: every open connection ends; returns them. With `limit`, only the
    /// `limit` oldest of those still open (call again until `open_flows` is 0): a caller
    /// takes a flood's 200,000 open flows a part at a time instead of in one block.
    #[pyo3(signature = (limit=None))]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inner = &mut self.inner;
        let ended = py.detach(|| {
            match limit {
                Some(limit) => inner.finish_part(limit),
                None => inner.finish(),
            }
            inner.take_ended_parts()
        });
        self.form.hand_over(py, ended)
    }

    /// Up to `limit` open connections as they stand (most recently active first), as the
    /// columns of ended ones; they stay open. For live views.
    #[pyo3(signature = (limit=None))]
    fn open_connections<'py>(
        &self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inner = &self.inner;
        let open = py.detach(|| inner.open_connections(limit));
        conn_dict(py, open, &Keep::ALL)
    }

    /// The transitions of the ended connections `serial` (a block's `serial` column) whose
    /// originators are `orig_host` (its `orig_host`), as columns to add to the block:
    /// `transitions.count` (per row) and the transitions row after row (`ts_ns`, `frame`,
    /// `endpoint` by the final roles, `event`, `from`, `to`, `flags`, `seq`, `ack`,
    /// `payload`). The transitions of connections still open wait here until they end: a
    /// caller of this method does not call `transitions()`, which would take them first.
    fn ended_transitions<'py>(
        &mut self,
        py: Python<'py>,
        serial: PyReadonlyArray1<'py, u64>,
        orig_host: PyReadonlyArray1<'py, u8>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let serial = slice(&serial, "serial")?;
        let orig_host = slice(&orig_host, "orig_host")?;
        if serial.len() != orig_host.len() {
            return Err(PyValueError::new_err(
                "serial and orig_host of different lengths",
            ));
        }
        self.kept.add(&self.inner.take_transitions());
        ended_dict(py, self.kept.take_ended(serial, orig_host))
    }

    /// Open connections whose transitions wait for `ended_transitions`.
    #[getter]
    fn kept_connections(&self) -> usize {
        self.kept.connections()
    }

    /// The RFC 9293 transitions since the last call, in the order they happened.
    fn transitions<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        transitions_dict(py, self.inner.take_transitions())
    }

    #[getter]
    fn packets_tracked(&self) -> u64 {
        self.inner.packets_tracked()
    }

    #[getter]
    fn packets_skipped(&self) -> u64 {
        self.inner.packets_skipped()
    }

    #[getter]
    fn evicted(&self) -> u64 {
        self.inner.evicted()
    }

    #[getter]
    fn open_flows(&self) -> usize {
        self.inner.open_flows()
    }

    /// Frames in no connection, by why: {("malformed", code) | ("not IP", 0) |
    /// ("IPv4 total length 0", 0) | ("bad IPv4 checksum", 0) | ("IP protocol", number): count}.
    fn not_counted<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let nc = &self.inner.not_counted();
        let d = PyDict::new(py);
        for (code, &n) in nc.malformed.iter().enumerate() {
            if n > 0 {
                d.set_item(("malformed", code), n)?;
            }
        }
        if nc.not_ip > 0 {
            d.set_item(("not IP", 0), nc.not_ip)?;
        }
        if nc.ip_len_zero > 0 {
            d.set_item(("IPv4 total length 0", 0), nc.ip_len_zero)?;
        }
        if nc.bad_ip_checksum > 0 {
            d.set_item(("bad IPv4 checksum", 0), nc.bad_ip_checksum)?;
        }
        for (proto, &n) in nc.ip_proto.iter().enumerate() {
            if n > 0 {
                d.set_item(("IP protocol", proto), n)?;
            }
        }
        Ok(d)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tracker>()
}
