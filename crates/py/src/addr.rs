//! `portlens._core.addr_texts(column)`: n×16 address rows as text, as
//! `portlens.decode.packets.addr_text` writes them (IPv4-mapped as a dotted quad, IPv6 as
//! Python's `ipaddress` does), by the formatter the conn.log writer uses. The aggregates name
//! every distinct address of a block, and `ipaddress` took ten microseconds for each.
//! `addr_codes(columns)`: the distinct addresses of such columns, and each row's index.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use portlens_core::conn_log::push_addr;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The rows of an n×16 address column (any strides).
pub(crate) fn addresses(column: &PyReadonlyArray2<'_, u8>) -> PyResult<Vec<[u8; 16]>> {
    let a = column.as_array();
    if a.ncols() != 16 {
        return Err(PyValueError::new_err("not 16-byte addresses"));
    }
    Ok(a.rows()
        .into_iter()
        .map(|row| std::array::from_fn(|i| row[i]))
        .collect())
}

pub(crate) fn text(a: &[u8; 16]) -> String {
    let mut text = String::with_capacity(15);
    push_addr(&mut text, a);
    text
}

#[pyfunction]
pub fn addr_texts(column: PyReadonlyArray2<'_, u8>) -> PyResult<Vec<String>> {
    Ok(addresses(&column)?.iter().map(text).collect())
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
    let rows = columns
        .iter()
        .map(addresses)
        .collect::<PyResult<Vec<_>>>()?;
    let (distinct, codes) = py.detach(|| {
        let slices: Vec<&[[u8; 16]]> = rows.iter().map(Vec::as_slice).collect();
        portlens_core::addr_codes::distinct(&slices)
    });
    Ok((
        distinct.iter().map(text).collect(),
        codes.into_iter().map(|c| c.into_pyarray(py)).collect(),
    ))
}
