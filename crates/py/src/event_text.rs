//! `portlens._core.event_lines(cols, style, seconds, texts, first_ns, previous_ns)` and
//! `event_records(cols)`: a batch of transitions as `Tracker.transitions` gives it (a dict of
//! columns) written as `portlens events` prints it, by portlens_core::event_text.

use portlens_core::event_text::{push_event_lines, push_event_records, EventColumns, EventError};
use portlens_core::packet_text::{Clock, Style};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::conn_log::{addresses, as_strs, numbers, texts};

/// The columns, read once for all their rows.
struct Read<'py> {
    ts_ns: Vec<i64>,
    frame: Vec<i64>,
    uid: Vec<Bound<'py, PyString>>,
    orig_h: Vec<[u8; 16]>,
    orig_p: Vec<u16>,
    resp_h: Vec<[u8; 16]>,
    resp_p: Vec<u16>,
    endpoint: Vec<Bound<'py, PyString>>,
    event: Vec<Bound<'py, PyString>>,
    from: Vec<Bound<'py, PyString>>,
    to: Vec<Bound<'py, PyString>>,
    flags: Vec<u16>,
    seq: Vec<u32>,
    ack: Vec<u32>,
    payload: Vec<i64>,
}

impl<'py> Read<'py> {
    fn of(cols: &Bound<'py, PyDict>) -> PyResult<Self> {
        Ok(Read {
            ts_ns: numbers(cols, "ts_ns")?,
            frame: numbers(cols, "frame")?,
            uid: texts(cols, "uid")?,
            orig_h: addresses(cols, "id.orig_h")?,
            orig_p: numbers(cols, "id.orig_p")?,
            resp_h: addresses(cols, "id.resp_h")?,
            resp_p: numbers(cols, "id.resp_p")?,
            endpoint: texts(cols, "endpoint")?,
            event: texts(cols, "event")?,
            from: texts(cols, "from")?,
            to: texts(cols, "to")?,
            flags: numbers(cols, "flags")?,
            seq: numbers(cols, "seq")?,
            ack: numbers(cols, "ack")?,
            payload: numbers(cols, "payload")?,
        })
    }

    /// The batch's texts as str, and `write` given the columns.
    fn with<T>(&self, write: impl FnOnce(&EventColumns<'_>) -> T) -> PyResult<T> {
        let (uid, endpoint) = (as_strs(&self.uid)?, as_strs(&self.endpoint)?);
        let (event, from, to) = (
            as_strs(&self.event)?,
            as_strs(&self.from)?,
            as_strs(&self.to)?,
        );
        Ok(write(&EventColumns {
            ts_ns: &self.ts_ns,
            frame: &self.frame,
            uid: &uid,
            orig_h: &self.orig_h,
            orig_p: &self.orig_p,
            resp_h: &self.resp_h,
            resp_p: &self.resp_p,
            endpoint: &endpoint,
            event: &event,
            from: &from,
            to: &to,
            flags: &self.flags,
            seq: &self.seq,
            ack: &self.ack,
            payload: &self.payload,
        }))
    }
}

fn error(e: EventError) -> PyErr {
    PyValueError::new_err(match e {
        EventError::Shape => "columns of different lengths".to_string(),
        EventError::NoSecond { row } => format!("row {row}: no text for its second"),
    })
}

/// Every transition's line (`report.conns.event_line`) and its newline; then the clock's
/// first and previous times, which the caller's `Clock` carries on (report/clock.py).
#[pyfunction]
#[pyo3(signature = (cols, style, seconds, second_texts, first_ns, previous_ns))]
pub fn event_lines(
    cols: &Bound<'_, PyDict>,
    style: &str,
    seconds: Vec<i64>,
    second_texts: Vec<String>,
    first_ns: Option<i64>,
    previous_ns: Option<i64>,
) -> PyResult<(String, Option<i64>, Option<i64>)> {
    let style = Style::of_name(style)
        .ok_or_else(|| PyValueError::new_err(format!("unknown time style {style:?}")))?;
    let mut clock = Clock {
        style,
        seconds: &seconds,
        second_texts: &second_texts,
        first_ns,
        previous_ns,
    };
    let mut out = String::new();
    Read::of(cols)?
        .with(|t| push_event_lines(&mut out, t, &mut clock))?
        .map_err(error)?;
    Ok((out, clock.first_ns, clock.previous_ns))
}

/// Every transition's JSON object (`json_line(transition_record(t))`) and its newline.
#[pyfunction]
pub fn event_records(cols: &Bound<'_, PyDict>) -> PyResult<String> {
    let mut out = String::new();
    Read::of(cols)?
        .with(|t| push_event_records(&mut out, t))?
        .map_err(error)?;
    Ok(out)
}
