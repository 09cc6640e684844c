//! `portlens._core.conn_log_lines(cols)`: a block of the tracker's connection columns (the
//! dict `Tracker` hands back, as `portlens.track.rust` and `--workers` pass it on) as
//! conn.log text, formatted by portlens_core::conn_log.

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2};
use portlens_core::conn_log::{push_line, ConnLogRow};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

pub fn item<'py>(cols: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    cols.get_item(key)?
        .ok_or_else(|| PyKeyError::new_err(key.to_string()))
}

/// A numeric column, copied (a block's few columns cost less to copy than a line to write).
pub fn numbers<T: Element + Copy>(cols: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<T>> {
    let a: PyReadonlyArray1<'_, T> = item(cols, key)?.extract()?;
    // A column can be a strided view (the analysis counters are columns of one n×11 array);
    // the tracker's own are contiguous, copied as a slice (through ndarray's iterator, element
    // by element, they took 1.8 times the instructions).
    Ok(match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    })
}

/// A list of str column, borrowed.
pub fn texts<'py>(cols: &Bound<'py, PyDict>, key: &str) -> PyResult<Vec<Bound<'py, PyString>>> {
    str_list(&item(cols, key)?.cast_into::<PyList>()?)
}

/// A list's items, each a str (else a TypeError).
pub fn str_list<'py>(list: &Bound<'py, PyList>) -> PyResult<Vec<Bound<'py, PyString>>> {
    list.iter()
        .map(|v| Ok(v.cast_into::<PyString>()?))
        .collect()
}

/// Borrowed strs' text, for a writer of the core.
pub fn as_strs<'a>(strings: &'a [Bound<'_, PyString>]) -> PyResult<Vec<&'a str>> {
    strings.iter().map(|s| s.to_str()).collect()
}

pub fn addresses<'py>(cols: &Bound<'py, PyDict>, key: &str) -> PyResult<Vec<[u8; 16]>> {
    address_rows(&item(cols, key)?.extract()?, key)
}

/// An n×16 array of addresses (the 16-byte column form), copied: at once when contiguous (the
/// tracker's are), else row by row.
pub fn address_rows(a: &PyReadonlyArray2<'_, u8>, name: &str) -> PyResult<Vec<[u8; 16]>> {
    let a = a.as_array();
    if a.ncols() != 16 {
        return Err(PyValueError::new_err(format!(
            "{name}: not 16-byte addresses"
        )));
    }
    if let Some(flat) = a.as_slice() {
        return Ok(flat
            .chunks_exact(16)
            .filter_map(|r| r.try_into().ok())
            .collect());
    }
    Ok(a.rows()
        .into_iter()
        .map(|r| std::array::from_fn(|i| r[i]))
        .collect())
}

/// `Err` unless every length is `n`.
pub fn same_length(n: usize, lengths: &[usize]) -> PyResult<()> {
    if lengths.iter().any(|&l| l != n) {
        return Err(PyValueError::new_err("columns of different lengths"));
    }
    Ok(())
}

/// The conn.log columns of a block, read once for all its rows.
pub struct LogColumns<'py> {
    pub uid: Vec<Bound<'py, PyString>>,
    ts_ns: Vec<i64>,
    orig_h: Vec<[u8; 16]>,
    orig_p: Vec<u16>,
    resp_h: Vec<[u8; 16]>,
    resp_p: Vec<u16>,
    pub proto: Vec<Bound<'py, PyString>>,
    duration_ns: Vec<i64>,
    orig_bytes: Vec<u64>,
    resp_bytes: Vec<u64>,
    conn_state: Vec<Bound<'py, PyString>>,
    missed_bytes: Vec<u64>,
    history: Vec<Bound<'py, PyString>>,
    orig_pkts: Vec<u64>,
    orig_ip_bytes: Vec<u64>,
    resp_pkts: Vec<u64>,
    resp_ip_bytes: Vec<u64>,
    parents: Bound<'py, PyList>,
    ip_proto: Vec<u8>,
    community_id: Vec<Bound<'py, PyString>>,
}

impl<'py> LogColumns<'py> {
    pub fn read(cols: &Bound<'py, PyDict>) -> PyResult<Self> {
        let c = LogColumns {
            uid: texts(cols, "uid")?,
            ts_ns: numbers(cols, "ts_ns")?,
            orig_h: addresses(cols, "id.orig_h")?,
            orig_p: numbers(cols, "id.orig_p")?,
            resp_h: addresses(cols, "id.resp_h")?,
            resp_p: numbers(cols, "id.resp_p")?,
            proto: texts(cols, "proto")?,
            duration_ns: numbers(cols, "duration_ns")?,
            orig_bytes: numbers(cols, "orig_bytes")?,
            resp_bytes: numbers(cols, "resp_bytes")?,
            conn_state: texts(cols, "conn_state")?,
            missed_bytes: numbers(cols, "missed_bytes")?,
            history: texts(cols, "history")?,
            orig_pkts: numbers(cols, "orig_pkts")?,
            orig_ip_bytes: numbers(cols, "orig_ip_bytes")?,
            resp_pkts: numbers(cols, "resp_pkts")?,
            resp_ip_bytes: numbers(cols, "resp_ip_bytes")?,
            parents: item(cols, "tunnel_parents")?.cast_into::<PyList>()?,
            ip_proto: numbers(cols, "ip_proto")?,
            community_id: texts(cols, "community_id")?,
        };
        same_length(
            c.len(),
            &[
                c.ts_ns.len(),
                c.orig_h.len(),
                c.orig_p.len(),
                c.resp_h.len(),
                c.resp_p.len(),
                c.proto.len(),
                c.duration_ns.len(),
                c.orig_bytes.len(),
                c.resp_bytes.len(),
                c.conn_state.len(),
                c.missed_bytes.len(),
                c.history.len(),
                c.orig_pkts.len(),
                c.orig_ip_bytes.len(),
                c.resp_pkts.len(),
                c.resp_ip_bytes.len(),
                c.parents.len(),
                c.ip_proto.len(),
                c.community_id.len(),
            ],
        )?;
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.uid.len()
    }

    /// Row `i`'s tunnel parents, into `texts` (reused from row to row).
    pub fn parents(&self, i: usize, texts: &mut Vec<Bound<'py, PyString>>) -> PyResult<()> {
        texts.clear();
        for p in self.parents.get_item(i)?.cast_into::<PyTuple>()?.iter() {
            texts.push(p.cast_into::<PyString>()?);
        }
        Ok(())
    }

    /// Row `i`, with its tunnel parents' text.
    pub fn row<'a>(&'a self, i: usize, parents: &'a [&'a str]) -> PyResult<ConnLogRow<'a>> {
        Ok(ConnLogRow {
            ts_ns: self.ts_ns[i],
            uid: self.uid[i].to_str()?,
            orig_h: &self.orig_h[i],
            orig_p: self.orig_p[i],
            resp_h: &self.resp_h[i],
            resp_p: self.resp_p[i],
            proto: self.proto[i].to_str()?,
            duration_ns: self.duration_ns[i],
            orig_bytes: self.orig_bytes[i],
            resp_bytes: self.resp_bytes[i],
            conn_state: self.conn_state[i].to_str()?,
            missed_bytes: self.missed_bytes[i],
            history: self.history[i].to_str()?,
            orig_pkts: self.orig_pkts[i],
            orig_ip_bytes: self.orig_ip_bytes[i],
            resp_pkts: self.resp_pkts[i],
            resp_ip_bytes: self.resp_ip_bytes[i],
            tunnel_parents: parents,
            ip_proto: self.ip_proto[i],
            community_id: self.community_id[i].to_str()?,
        })
    }
}

/// `start..stop` of `n` rows, clamped (default: every row).
pub fn rows(n: usize, start: usize, stop: Option<usize>) -> std::ops::Range<usize> {
    let stop = stop.unwrap_or(n).min(n);
    start.min(stop)..stop
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
    let c = LogColumns::read(cols)?;
    let rows = rows(c.len(), start, stop);
    let mut out = String::with_capacity(rows.len().saturating_mul(160));
    let mut parent_texts = Vec::new();
    for i in rows {
        c.parents(i, &mut parent_texts)?;
        let parent_strs: Vec<&str> = parent_texts
            .iter()
            .map(|p| p.to_str())
            .collect::<PyResult<_>>()?;
        push_line(&mut out, &c.row(i, &parent_strs)?);
    }
    Ok(out)
}
