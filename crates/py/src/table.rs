//! `portlens._core.table_lines(columns, widths, right, sep)`: rows given as columns, padded
//! into fixed-width lines by portlens_core::table (report/tables.py `_write_chunk`).

use numpy::PyReadonlyArray1;
use portlens_core::table::{lines, Align, Cells, TableError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

/// A column as Python gives it: a list of str, or (texts, codes, port or None) with int64
/// arrays (report/tables.py `CodedCells`).
enum Column<'py> {
    Text(Vec<Bound<'py, PyString>>),
    Coded {
        texts: Vec<Bound<'py, PyString>>,
        codes: PyReadonlyArray1<'py, i64>,
        port: Option<PyReadonlyArray1<'py, i64>>,
    },
}

fn strings<'py>(list: &Bound<'py, PyList>) -> PyResult<Vec<Bound<'py, PyString>>> {
    list.iter()
        .map(|x| x.cast_into::<PyString>().map_err(PyErr::from))
        .collect()
}

fn column<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Column<'py>> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Ok(Column::Text(strings(list)?));
    }
    let tuple = obj.cast::<PyTuple>()?;
    let (texts, codes, port): (Bound<'py, PyList>, PyReadonlyArray1<'py, i64>, Option<_>) =
        tuple.extract()?;
    Ok(Column::Coded {
        texts: strings(&texts)?,
        codes,
        port,
    })
}

fn texts<'a>(strings: &'a [Bound<'_, PyString>]) -> PyResult<Vec<&'a str>> {
    strings.iter().map(|s| s.to_str()).collect()
}

/// The lines of the rows (each with its newline), or None when a cell is not printable ASCII:
/// the caller then lays those rows out itself (its layout cleans and measures such text).
#[pyfunction]
pub fn table_lines(
    columns: Vec<Bound<'_, PyAny>>,
    widths: Vec<usize>,
    right: Vec<bool>,
    sep: &str,
) -> PyResult<Option<String>> {
    if widths.len() != columns.len() || right.len() != columns.len() {
        return Err(PyValueError::new_err(
            "one width and one alignment a column",
        ));
    }
    let aligns: Vec<Align> = widths
        .iter()
        .zip(&right)
        .map(|(&width, &right)| Align { width, right })
        .collect();
    let given: Vec<Column<'_>> = columns.iter().map(column).collect::<PyResult<_>>()?;
    let mut cells = Vec::with_capacity(given.len());
    for c in &given {
        cells.push(match c {
            Column::Text(strings) => Cells::Text(texts(strings)?),
            Column::Coded {
                texts: strings,
                codes,
                port,
            } => Cells::Coded {
                texts: texts(strings)?,
                codes: codes.as_slice()?,
                port: port.as_ref().map(|p| p.as_slice()).transpose()?,
            },
        });
    }
    lines(&cells, &aligns, sep).map_err(|e| {
        PyValueError::new_err(match e {
            TableError::Shape => "columns of different lengths".to_string(),
            TableError::Code { column, row } => {
                format!("column {column}, row {row}: no text of that code")
            }
        })
    })
}
