//! `portlens._core.table_lines(columns, widths, right, sep)`: rows given as columns of str,
//! padded into fixed-width lines by portlens_core::table (report/tables.py `_write_chunk`).

use portlens_core::table::{printable_ascii, push_row, Align};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

/// The lines of the rows (each with its newline), or None when a cell is not printable ASCII:
/// the caller then lays those rows out itself (its layout cleans and measures such text).
#[pyfunction]
pub fn table_lines(
    columns: Vec<Bound<'_, PyList>>,
    widths: Vec<usize>,
    right: Vec<bool>,
    sep: &str,
) -> PyResult<Option<String>> {
    if widths.len() != columns.len() || right.len() != columns.len() {
        return Err(PyValueError::new_err(
            "one width and one alignment a column",
        ));
    }
    let n = columns.first().map_or(0, |c| c.len());
    if columns.iter().any(|c| c.len() != n) {
        return Err(PyValueError::new_err("columns of different lengths"));
    }
    let aligns: Vec<Align> = widths
        .iter()
        .zip(&right)
        .map(|(&width, &right)| Align { width, right })
        .collect();
    let k = columns.len();
    let mut cells: Vec<Bound<'_, PyString>> = Vec::with_capacity(n.saturating_mul(k));
    for row in 0..n {
        for column in &columns {
            cells.push(column.get_item(row)?.cast_into::<PyString>()?);
        }
    }
    let mut texts: Vec<&str> = Vec::with_capacity(cells.len());
    for cell in &cells {
        let text = cell.to_str()?;
        if !printable_ascii(text) {
            return Ok(None);
        }
        texts.push(text);
    }
    let mut out = String::with_capacity(texts.iter().map(|t| t.len() + 2).sum());
    for row in texts.chunks(k.max(1)) {
        push_row(&mut out, row, &aligns, sep);
    }
    Ok(Some(out))
}
