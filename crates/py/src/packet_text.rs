//! `portlens._core.packet_lines(batch, names, ...)` and `packet_records(batch, names)`: a
//! batch's packet rows as the lines (or JSON objects) of `portlens packets`, written by
//! portlens_core::packet_text; `PacketNames` holds the words the Python side gives once
//! (report/packets.py `lines`, `records`).

use numpy::PyReadonlyArray1;
use portlens_core::packet_text::{push_lines, push_records, Clock, Names, Style};
use portlens_core::track::Packets;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::track::{slice, BatchColumns};

/// The names of IP protocols (256), ICMP and ICMPv6 types (256 each), tunnels (16, by 4-bit
/// code), malformed reasons (256, by code) and checksum statuses (4).
#[pyclass(module = "portlens._core", name = "PacketNames", frozen)]
pub struct PacketNames {
    pub(crate) inner: Names,
}

fn table<const N: usize>(what: &str, names: Vec<String>) -> PyResult<[String; N]> {
    let got = names.len();
    names
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{what}: {N} names wanted, {got} given")))
}

#[pymethods]
impl PacketNames {
    #[new]
    fn new(
        proto: Vec<String>,
        icmp4: Vec<String>,
        icmp6: Vec<String>,
        tunnel: Vec<String>,
        malformed: Vec<String>,
        checksum: Vec<String>,
    ) -> PyResult<Self> {
        Ok(PacketNames {
            inner: Names {
                proto: table("proto", proto)?,
                icmp4: table("icmp4", icmp4)?,
                icmp6: table("icmp6", icmp6)?,
                tunnel: table("tunnel", tunnel)?,
                malformed: table("malformed", malformed)?,
                checksum: table("checksum", checksum)?,
            },
        })
    }
}

/// The lines of `batch`'s packets (a PacketBatch; a middle carrier's row is none), each with
/// its newline; `style` is a report/clock.py style, `seconds` the batch's distinct seconds,
/// ascending, and `second_texts` their text (time and date styles). Returns the text and the
/// first and previous times to carry to the next batch.
#[pyfunction]
#[pyo3(signature = (batch, names, style, seconds, second_texts, first_ns, previous_ns))]
#[allow(clippy::too_many_arguments)] // a clock's state, flat: no Python object per call
pub fn packet_lines<'py>(
    py: Python<'py>,
    batch: &Bound<'py, PyAny>,
    names: &PacketNames,
    style: &str,
    seconds: PyReadonlyArray1<'py, i64>,
    second_texts: Vec<String>,
    first_ns: Option<i64>,
    previous_ns: Option<i64>,
) -> PyResult<(String, Option<i64>, Option<i64>)> {
    let columns = BatchColumns::of(batch)?;
    let clock = ClockState {
        style,
        seconds: slice(&seconds, "seconds")?,
        second_texts: &second_texts,
        first_ns,
        previous_ns,
    };
    lines(py, &columns.packets()?, None, names, clock)
}

/// What a Python `Clock` hands over for a batch's lines.
pub(crate) struct ClockState<'a> {
    pub style: &'a str,
    pub seconds: &'a [i64],
    pub second_texts: &'a [String],
    pub first_ns: Option<i64>,
    pub previous_ns: Option<i64>,
}

/// `rows`' lines, and the clock's first and previous times after them (the GIL released).
pub(crate) fn lines(
    py: Python<'_>,
    rows: &Packets<'_>,
    picked: Option<&[i64]>,
    names: &PacketNames,
    c: ClockState<'_>,
) -> PyResult<(String, Option<i64>, Option<i64>)> {
    let style = Style::of_name(c.style)
        .ok_or_else(|| PyValueError::new_err(format!("unknown time style {:?}", c.style)))?;
    let mut clock = Clock {
        style,
        seconds: c.seconds,
        second_texts: c.second_texts,
        first_ns: c.first_ns,
        previous_ns: c.previous_ns,
    };
    let names = &names.inner;
    let mut out = String::new();
    py.detach(|| push_lines(rows, picked, names, &mut clock, &mut out))
        .map_err(|e| PyValueError::new_err(e.0))?;
    Ok((out, clock.first_ns, clock.previous_ns))
}

/// The JSON objects of `batch`'s packets, one a line (report/packets.py `record`).
#[pyfunction]
pub fn packet_records<'py>(
    py: Python<'py>,
    batch: &Bound<'py, PyAny>,
    names: &PacketNames,
) -> PyResult<String> {
    let columns = BatchColumns::of(batch)?;
    records(py, &columns.packets()?, None, names)
}

/// `rows`' JSON objects (the GIL released).
pub(crate) fn records(
    py: Python<'_>,
    rows: &Packets<'_>,
    picked: Option<&[i64]>,
    names: &PacketNames,
) -> PyResult<String> {
    let names = &names.inner;
    let mut out = String::new();
    py.detach(|| push_records(rows, picked, names, &mut out))
        .map_err(|e| PyValueError::new_err(e.0))?;
    Ok(out)
}
