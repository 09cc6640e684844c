//! `portlens._core.table_lines(columns, widths, right, sep)`: rows given as columns, padded
//! into fixed-width lines by portlens_core::table (report/tables.py `_write_chunk`).

use numpy::PyReadonlyArray1;
use portlens_core::packet_text::{Clock, Style};
use portlens_core::table::{lines, Align, Cells, TableError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::conn_log::{as_strs, str_list};

/// A column as Python gives it (report/tables.py `_core_column`): a list of str, or a tuple
/// named by its first item, with int64 arrays: ("coded", texts, codes, port or None)
/// (`CodedCells`), ("fixed", joined texts, width, codes) (`FixedCells`), ("duration", ns)
/// (`DurationCells`), ("pair", a, b, size) (`PairCells`), ("stamp", style, seconds, their
/// texts, ts) (`StampCells`).
enum Column<'py> {
    Text(Vec<Bound<'py, PyString>>),
    Coded {
        texts: Vec<Bound<'py, PyString>>,
        codes: Ints<'py>,
        port: Option<Ints<'py>>,
    },
    Fixed {
        joined: Bound<'py, PyString>,
        width: usize,
        codes: Ints<'py>,
    },
    Duration(PyReadonlyArray1<'py, i64>),
    Pair {
        a: PyReadonlyArray1<'py, i64>,
        b: PyReadonlyArray1<'py, i64>,
        size: bool,
    },
    Stamp {
        style: Style,
        seconds: PyReadonlyArray1<'py, i64>,
        texts: Vec<String>,
        ts: PyReadonlyArray1<'py, i64>,
    },
}

/// A coded column's numbers: an int64 array, or the bytes of an `array.array('q')` (what
/// `sockets` hands over where it needs no NumPy).
enum Ints<'py> {
    Array(PyReadonlyArray1<'py, i64>),
    Bytes(Vec<i64>),
}

impl<'py> FromPyObject<'_, 'py> for Ints<'py> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(bytes) = obj.cast::<PyBytes>() {
            let bytes = bytes.as_bytes();
            if bytes.len() % 8 != 0 {
                return Err(PyValueError::new_err(
                    "int64 bytes of a length not a multiple of 8",
                ));
            }
            return Ok(Ints::Bytes(
                bytes
                    .chunks_exact(8)
                    .map(|b| i64::from_ne_bytes(b.try_into().unwrap_or_default()))
                    .collect(),
            ));
        }
        Ok(Ints::Array(obj.extract()?))
    }
}

impl Ints<'_> {
    fn as_slice(&self) -> PyResult<&[i64]> {
        match self {
            Ints::Array(a) => Ok(a.as_slice()?),
            Ints::Bytes(v) => Ok(v),
        }
    }
}

fn column<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Column<'py>> {
    if let Ok(list) = obj.cast::<PyList>() {
        return Ok(Column::Text(str_list(list)?));
    }
    let tuple = obj.cast::<PyTuple>()?;
    let kind: String = tuple.get_item(0)?.extract()?;
    let rest = tuple.get_slice(1, tuple.len());
    Ok(match kind.as_str() {
        "coded" => {
            let (texts, codes, port): (Bound<'py, PyList>, _, _) = rest.extract()?;
            Column::Coded {
                texts: str_list(&texts)?,
                codes,
                port,
            }
        }
        "fixed" => {
            let (joined, width, codes) = rest.extract()?;
            Column::Fixed {
                joined,
                width,
                codes,
            }
        }
        "duration" => {
            let (ns,) = rest.extract()?;
            Column::Duration(ns)
        }
        "pair" => {
            let (a, b, size) = rest.extract()?;
            Column::Pair { a, b, size }
        }
        "stamp" => {
            let (style, seconds, texts, ts): (String, _, _, _) = rest.extract()?;
            let style = Style::of_name(&style)
                .filter(|s| matches!(s, Style::Epoch | Style::Time | Style::Date))
                .ok_or_else(|| PyValueError::new_err(format!("no stamps in style {style:?}")))?;
            Column::Stamp {
                style,
                seconds,
                texts,
                ts,
            }
        }
        _ => return Err(PyValueError::new_err(format!("no column kind {kind:?}"))),
    })
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
            Column::Text(strings) => Cells::Text(as_strs(strings)?),
            Column::Coded {
                texts: strings,
                codes,
                port,
            } => Cells::Coded {
                texts: as_strs(strings)?,
                codes: codes.as_slice()?,
                port: port.as_ref().map(|p| p.as_slice()).transpose()?,
            },
            Column::Fixed {
                joined,
                width,
                codes,
            } => Cells::Fixed {
                joined: joined.to_str()?,
                width: *width,
                codes: codes.as_slice()?,
            },
            Column::Duration(ns) => Cells::Duration(ns.as_slice()?),
            Column::Pair { a, b, size } => Cells::Pair {
                a: a.as_slice()?,
                b: b.as_slice()?,
                size: *size,
            },
            Column::Stamp {
                style,
                seconds,
                texts,
                ts,
            } => Cells::Stamp {
                clock: Clock {
                    style: *style,
                    seconds: seconds.as_slice()?,
                    second_texts: texts,
                    first_ns: None,
                    previous_ns: None,
                },
                ts: ts.as_slice()?,
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
