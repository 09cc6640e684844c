//! `portlens._core.conn_log_lines(cols)`: a block of the tracker's connection columns (the
//! dict `Tracker` hands back, as `portlens.track.rust` and `--workers` pass it on) as
//! conn.log text, formatted by portlens_core::conn_log.

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2};
use portlens_core::conn_log::{push_line, ConnLogRow};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

fn item<'py>(cols: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    cols.get_item(key)?
        .ok_or_else(|| PyKeyError::new_err(key.to_string()))
}

fn numbers<'py, T: Element>(
    cols: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    item(cols, key)?.extract()
}

/// A list of str column, borrowed.
fn texts<'py>(cols: &Bound<'py, PyDict>, key: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
    let list = item(cols, key)?.cast_into::<PyList>()?;
    list.iter()
        .map(|v| Ok(v.cast_into::<PyString>()?))
        .collect()
}

fn addresses<'py>(cols: &Bound<'py, PyDict>, key: &str) -> PyResult<Vec<[u8; 16]>> {
    let a: PyReadonlyArray2<'py, u8> = item(cols, key)?.extract()?;
    let a = a.as_array();
    if a.ncols() != 16 {
        return Err(PyValueError::new_err(format!(
            "{key}: not 16-byte addresses"
        )));
    }
    Ok(a.rows()
        .into_iter()
        .map(|r| std::array::from_fn(|i| r[i]))
        .collect())
}

/// The conn.log lines of the connections `start..stop` of `cols` (default: every one), each
/// with its newline. A caller writing a large block asks for a part at a time, so that the
/// text of 200,000 rows (a flood's `finish`) is never held at once.
#[pyfunction]
#[pyo3(signature = (cols, start = 0, stop = None))]
pub fn conn_log_lines(
    cols: &Bound<'_, PyDict>,
    start: usize,
    stop: Option<usize>,
) -> PyResult<String> {
    let uid = texts(cols, "uid")?;
    let n = uid.len();
    let ts_ns = numbers::<i64>(cols, "ts_ns")?;
    let orig_h = addresses(cols, "id.orig_h")?;
    let orig_p = numbers::<u16>(cols, "id.orig_p")?;
    let resp_h = addresses(cols, "id.resp_h")?;
    let resp_p = numbers::<u16>(cols, "id.resp_p")?;
    let proto = texts(cols, "proto")?;
    let duration_ns = numbers::<i64>(cols, "duration_ns")?;
    let orig_bytes = numbers::<u64>(cols, "orig_bytes")?;
    let resp_bytes = numbers::<u64>(cols, "resp_bytes")?;
    let conn_state = texts(cols, "conn_state")?;
    let missed_bytes = numbers::<u64>(cols, "missed_bytes")?;
    let history = texts(cols, "history")?;
    let orig_pkts = numbers::<u64>(cols, "orig_pkts")?;
    let orig_ip_bytes = numbers::<u64>(cols, "orig_ip_bytes")?;
    let resp_pkts = numbers::<u64>(cols, "resp_pkts")?;
    let resp_ip_bytes = numbers::<u64>(cols, "resp_ip_bytes")?;
    let parents = item(cols, "tunnel_parents")?.cast_into::<PyList>()?;
    let ip_proto = numbers::<u8>(cols, "ip_proto")?;
    let community_id = texts(cols, "community_id")?;
    let (ts_ns, orig_p, resp_p, duration_ns) = (
        ts_ns.as_slice()?,
        orig_p.as_slice()?,
        resp_p.as_slice()?,
        duration_ns.as_slice()?,
    );
    let (orig_bytes, resp_bytes, missed_bytes) = (
        orig_bytes.as_slice()?,
        resp_bytes.as_slice()?,
        missed_bytes.as_slice()?,
    );
    let (orig_pkts, orig_ip_bytes, resp_pkts, resp_ip_bytes, ip_proto) = (
        orig_pkts.as_slice()?,
        orig_ip_bytes.as_slice()?,
        resp_pkts.as_slice()?,
        resp_ip_bytes.as_slice()?,
        ip_proto.as_slice()?,
    );
    let lengths = [
        ts_ns.len(),
        orig_h.len(),
        orig_p.len(),
        resp_h.len(),
        resp_p.len(),
        proto.len(),
        duration_ns.len(),
        orig_bytes.len(),
        resp_bytes.len(),
        conn_state.len(),
        missed_bytes.len(),
        history.len(),
        orig_pkts.len(),
        orig_ip_bytes.len(),
        resp_pkts.len(),
        resp_ip_bytes.len(),
        parents.len(),
        ip_proto.len(),
        community_id.len(),
    ];
    if lengths.iter().any(|&l| l != n) {
        return Err(PyValueError::new_err("columns of different lengths"));
    }
    let stop = stop.unwrap_or(n).min(n);
    let rows = start.min(stop)..stop;
    let mut out = String::with_capacity(rows.len().saturating_mul(160));
    let mut parent_texts: Vec<Bound<'_, PyString>> = Vec::new();
    for i in rows {
        parent_texts.clear();
        for p in parents.get_item(i)?.cast_into::<PyTuple>()?.iter() {
            parent_texts.push(p.cast_into::<PyString>()?);
        }
        let parent_strs: Vec<&str> = parent_texts
            .iter()
            .map(|p| p.to_str())
            .collect::<PyResult<_>>()?;
        push_line(
            &mut out,
            &ConnLogRow {
                ts_ns: ts_ns[i],
                uid: uid[i].to_str()?,
                orig_h: &orig_h[i],
                orig_p: orig_p[i],
                resp_h: &resp_h[i],
                resp_p: resp_p[i],
                proto: proto[i].to_str()?,
                duration_ns: duration_ns[i],
                orig_bytes: orig_bytes[i],
                resp_bytes: resp_bytes[i],
                conn_state: conn_state[i].to_str()?,
                missed_bytes: missed_bytes[i],
                history: history[i].to_str()?,
                orig_pkts: orig_pkts[i],
                orig_ip_bytes: orig_ip_bytes[i],
                resp_pkts: resp_pkts[i],
                resp_ip_bytes: resp_ip_bytes[i],
                tunnel_parents: &parent_strs,
                ip_proto: ip_proto[i],
                community_id: community_id[i].to_str()?,
            },
        );
    }
    Ok(out)
}
