//! `portlens._core.addr_texts(column)`: n×16 address rows as text, as
//! `portlens.decode.packets.addr_text` writes them (IPv4-mapped as a dotted quad, IPv6 as
//! Python's `ipaddress` does), by the formatter the conn.log writer uses. The aggregates name
//! every distinct address of a block, and `ipaddress` took ten microseconds for each.

use numpy::PyReadonlyArray2;
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
