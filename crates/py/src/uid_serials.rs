//! `portlens._core.uid_offsets(...)`: the HTML report's uids as offsets of their serials from
//! their ranks (report/html/pack.py `uid_serials`), found by portlens_core::uid_serials.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use portlens_core::uid_serials::{serial_offsets, UidKey, UidRow};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::conn_log::{address_rows, as_strs, str_list};
use crate::track::slice;

/// Each row's serial offset and the rows whose uid no serial within `window` makes (kept as
/// text), in rank order. A row has a key where `keyed` says so: its first time `ts`, its IP
/// protocol and both (address, port) ends.
#[pyfunction]
#[pyo3(signature = (ranks, uids, keyed, ts, proto, orig_h, orig_p, resp_h, resp_p, window))]
#[allow(clippy::too_many_arguments)]
pub fn uid_offsets<'py>(
    py: Python<'py>,
    ranks: PyReadonlyArray1<'py, i64>,
    uids: &Bound<'py, PyList>,
    keyed: PyReadonlyArray1<'py, bool>,
    ts: PyReadonlyArray1<'py, i64>,
    proto: PyReadonlyArray1<'py, u8>,
    orig_h: PyReadonlyArray2<'py, u8>,
    orig_p: PyReadonlyArray1<'py, u16>,
    resp_h: PyReadonlyArray2<'py, u8>,
    resp_p: PyReadonlyArray1<'py, u16>,
    window: i64,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Vec<usize>)> {
    let strings = str_list(uids)?;
    let texts = as_strs(&strings)?;
    let (ranks, keyed, ts) = (
        slice(&ranks, "ranks")?,
        slice(&keyed, "keyed")?,
        slice(&ts, "ts")?,
    );
    let proto = slice(&proto, "proto")?;
    let (orig_p, resp_p) = (slice(&orig_p, "orig_p")?, slice(&resp_p, "resp_p")?);
    let (orig_h, resp_h) = (
        address_rows(&orig_h, "orig_h")?,
        address_rows(&resp_h, "resp_h")?,
    );
    let n = texts.len();
    let lengths = [
        ranks.len(),
        keyed.len(),
        ts.len(),
        proto.len(),
        orig_h.len(),
        orig_p.len(),
        resp_h.len(),
        resp_p.len(),
    ];
    if lengths.iter().any(|&m| m != n) {
        return Err(PyValueError::new_err("columns of different lengths"));
    }
    let rows: Vec<UidRow<'_>> = (0..n)
        .map(|i| UidRow {
            rank: ranks[i],
            uid: texts[i],
            key: keyed[i].then_some(UidKey {
                ts: ts[i],
                proto: proto[i],
                orig: (orig_h[i], orig_p[i]),
                resp: (resp_h[i], resp_p[i]),
            }),
        })
        .collect();
    let found = serial_offsets(&rows, window)
        .map_err(|_| PyValueError::new_err("ranks: not each row's place in one order"))?;
    Ok((found.offsets.into_pyarray(py), found.explicit))
}
