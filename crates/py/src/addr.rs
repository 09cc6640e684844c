//! `portlens._core.addr_texts(column)`: n×16 address rows as text, as
//! `portlens.decode.packets.addr_text` writes them (IPv4-mapped as a dotted quad, IPv6 as
//! Python's `ipaddress` does), by the formatter the conn.log writer uses. The aggregates name
//! every distinct address of a block, and `ipaddress` took ten microseconds for each.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use portlens_core::conn_log::push_addr;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

#[pyfunction]
pub fn addr_texts(column: PyReadonlyArray2<'_, u8>) -> PyResult<Vec<String>> {
    let a = column.as_array();
    if a.ncols() != 16 {
        return Err(PyValueError::new_err("not 16-byte addresses"));
    }
    let mut out = Vec::with_capacity(a.nrows());
    for row in a.rows() {
        let bytes: [u8; 16] = std::array::from_fn(|i| row[i]);
        let mut text = String::with_capacity(15);
        push_addr(&mut text, &bytes);
        out.push(text);
    }
    Ok(out)
}

/// The distinct addresses as text, and each column's codes.
type Codes<'py> = (Vec<String>, Vec<Bound<'py, PyArray1<i64>>>);

/// `portlens._core.addr_codes(columns)`: the distinct addresses of n×16 address columns as
/// text, and each column's rows as indices into them (`portlens_core::addr_codes`).
#[pyfunction]
pub fn addr_codes<'py>(
    py: Python<'py>,
    columns: Vec<PyReadonlyArray2<'py, u8>>,
) -> PyResult<Codes<'py>> {
    let mut rows: Vec<Vec<[u8; 16]>> = Vec::with_capacity(columns.len());
    for column in &columns {
        let a = column.as_array();
        if a.ncols() != 16 {
            return Err(PyValueError::new_err("not 16-byte addresses"));
        }
        rows.push(
            a.rows()
                .into_iter()
                .map(|row| std::array::from_fn(|i| row[i]))
                .collect(),
        );
    }
    let (distinct, codes) = py.detach(|| {
        let slices: Vec<&[[u8; 16]]> = rows.iter().map(Vec::as_slice).collect();
        portlens_core::addr_codes::distinct(&slices)
    });
    let texts = distinct
        .iter()
        .map(|a| {
            let mut text = String::with_capacity(15);
            push_addr(&mut text, a);
            text
        })
        .collect();
    Ok((
        texts,
        codes.into_iter().map(|c| c.into_pyarray(py)).collect(),
    ))
}
