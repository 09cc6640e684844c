//! `portlens._core.conn_json_lines(cols, port_service)`: a block of the tracker's connection
//! columns, with the transitions `Tracker.ended_transitions` grouped under its rows, as
//! `conns --json` lines, formatted by portlens_core::conn_json; `conn_csv_lines`, the same
//! block (no transitions needed) as `conns --csv` rows (portlens_core::conn_csv).

use numpy::PyReadonlyArray2;
use portlens_core::conn_csv::{push_row, CsvDialect};
use portlens_core::conn_json::{
    push_record, JsonHandshake, JsonOptions, JsonTransition, RecordRow,
};
use portlens_core::track::rfc::{ANALYSIS_NAMES, EVENT_NAMES, STATE_NAMES};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::conn_log::{item, numbers, rows, same_length, texts, LogColumns};

/// `Tracker`'s "absent" values: i64 and i32 minimums.
const NONE64: i64 = i64::MIN;
const NONE32: i32 = i32::MIN;
const ENDPOINT_NAMES: [&str; 2] = ["orig", "resp"];

/// A coded name (`STATE_NAMES`, `EVENT_NAMES` ...), or an error for a code past the table.
fn name(table: &'static [&'static str], code: u8) -> PyResult<&'static str> {
    table
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| PyValueError::new_err(format!("code {code} names nothing")))
}

/// A TCP row's state or outcome name (coded: None only past the table).
fn required<'a>(v: &'a Option<Bound<'_, PyString>>) -> PyResult<&'a str> {
    match v {
        Some(s) => s.to_str(),
        None => Err(PyValueError::new_err("a TCP row without its states")),
    }
}

/// A list column of str or None.
fn optional_texts<'py>(
    cols: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<Vec<Option<Bound<'py, PyString>>>> {
    let list = item(cols, key)?.cast_into::<PyList>()?;
    list.iter()
        .map(|v| {
            if v.is_none() {
                Ok(None)
            } else {
                Ok(Some(v.cast_into::<PyString>()?))
            }
        })
        .collect()
}

/// A handshake's options columns under `prefix` (`Tracker`'s `options_columns`).
struct OptionColumns {
    present: Vec<bool>,
    mss: Vec<i32>,
    wscale: Vec<i16>,
    sack_perm: Vec<bool>,
    timestamps: Vec<bool>,
    kinds_len: Vec<u8>,
    /// The n×width option kinds, row after row.
    kinds: Vec<u8>,
    width: usize,
}

impl OptionColumns {
    fn read(cols: &Bound<'_, PyDict>, prefix: &str) -> PyResult<Self> {
        let kinds: PyReadonlyArray2<'_, u8> = item(cols, &format!("{prefix}.kinds"))?.extract()?;
        let kinds = kinds.as_array();
        let (rows, width) = kinds.dim();
        let o = OptionColumns {
            present: numbers(cols, &format!("{prefix}.present"))?,
            mss: numbers(cols, &format!("{prefix}.mss"))?,
            wscale: numbers(cols, &format!("{prefix}.wscale"))?,
            sack_perm: numbers(cols, &format!("{prefix}.sack_perm"))?,
            timestamps: numbers(cols, &format!("{prefix}.timestamps"))?,
            kinds_len: numbers(cols, &format!("{prefix}.kinds_len"))?,
            kinds: kinds.iter().copied().collect(),
            width,
        };
        let n = o.present.len();
        same_length(
            n,
            &[
                o.mss.len(),
                o.wscale.len(),
                o.sack_perm.len(),
                o.timestamps.len(),
                o.kinds_len.len(),
                rows,
            ],
        )?;
        Ok(o)
    }

    fn row(&self, i: usize) -> Option<JsonOptions<'_>> {
        if !self.present[i] {
            return None;
        }
        let at = i * self.width;
        let kinds = &self.kinds[at..at + usize::from(self.kinds_len[i]).min(self.width)];
        Some(JsonOptions {
            mss: (self.mss[i] >= 0).then_some(self.mss[i]),
            wscale: (self.wscale[i] >= 0).then_some(self.wscale[i]),
            sack_perm: self.sack_perm[i],
            timestamps: self.timestamps[i],
            kinds,
        })
    }
}

/// The transition columns `Tracker.ended_transitions` adds to a block (`transitions.*`).
struct TransitionColumns {
    /// Where each row's transitions start, and the end of the last row's.
    offsets: Vec<usize>,
    ts_ns: Vec<i64>,
    frame: Vec<i64>,
    endpoint: Vec<u8>,
    event: Vec<u8>,
    from: Vec<u8>,
    to: Vec<u8>,
    flags: Vec<u16>,
    seq: Vec<u32>,
    ack: Vec<u32>,
    payload: Vec<i64>,
}

impl TransitionColumns {
    fn read(cols: &Bound<'_, PyDict>) -> PyResult<Self> {
        let count: Vec<u32> = numbers(cols, "transitions.count")?;
        let mut offsets = Vec::with_capacity(count.len() + 1);
        let mut at = 0usize;
        offsets.push(at);
        for c in count {
            at = at
                .checked_add(c as usize)
                .ok_or_else(|| PyValueError::new_err("transitions.count overflows"))?;
            offsets.push(at);
        }
        let t = TransitionColumns {
            offsets,
            ts_ns: numbers(cols, "transitions.ts_ns")?,
            frame: numbers(cols, "transitions.frame")?,
            endpoint: numbers(cols, "transitions.endpoint")?,
            event: numbers(cols, "transitions.event")?,
            from: numbers(cols, "transitions.from")?,
            to: numbers(cols, "transitions.to")?,
            flags: numbers(cols, "transitions.flags")?,
            seq: numbers(cols, "transitions.seq")?,
            ack: numbers(cols, "transitions.ack")?,
            payload: numbers(cols, "transitions.payload")?,
        };
        let m = t.ts_ns.len();
        if t.offsets.last() != Some(&m) {
            return Err(PyValueError::new_err(
                "transitions.count does not add up to the transitions",
            ));
        }
        same_length(
            m,
            &[
                t.frame.len(),
                t.endpoint.len(),
                t.event.len(),
                t.from.len(),
                t.to.len(),
                t.flags.len(),
                t.seq.len(),
                t.ack.len(),
                t.payload.len(),
            ],
        )?;
        Ok(t)
    }

    /// Row `i`'s transitions, into `out`.
    fn row(&self, i: usize, out: &mut Vec<JsonTransition<'static>>) -> PyResult<()> {
        out.clear();
        for j in self.offsets[i]..self.offsets[i + 1] {
            out.push(JsonTransition {
                ts_ns: self.ts_ns[j],
                frame: self.frame[j],
                endpoint: name(&ENDPOINT_NAMES, self.endpoint[j])?,
                event: name(&EVENT_NAMES, self.event[j])?,
                from: name(&STATE_NAMES, self.from[j])?,
                to: name(&STATE_NAMES, self.to[j])?,
                flags: self.flags[j],
                seq: self.seq[j],
                ack: self.ack[j],
                payload: self.payload[j],
            });
        }
        Ok(())
    }
}

/// A block's columns of `report.conns.record` but the transitions, read once for its rows.
struct RecordColumns<'py> {
    log: LogColumns<'py>,
    service: Vec<Bound<'py, PyString>>,
    ip_version: Vec<u8>,
    vlan: Vec<i32>,
    orig_state: Vec<Option<Bound<'py, PyString>>>,
    resp_state: Vec<Option<Bound<'py, PyString>>>,
    end_reason: Vec<Bound<'py, PyString>>,
    completeness: Vec<u8>,
    first_frame: Vec<i64>,
    last_frame: Vec<i64>,
    icmp_errors: Bound<'py, PyList>,
    icmp_code: Vec<i32>,
    outcome: Vec<Option<Bound<'py, PyString>>>,
    syn_ns: Vec<i64>,
    syn_ack_ns: Vec<i64>,
    ack_ns: Vec<i64>,
    syn_rtx: Vec<u32>,
    syn_ack_rtx: Vec<u32>,
    client: OptionColumns,
    server: OptionColumns,
    analysis: Vec<Vec<u32>>,
}

impl<'py> RecordColumns<'py> {
    fn read(cols: &Bound<'py, PyDict>, port_service: &Bound<'py, PyList>) -> PyResult<Self> {
        let c = RecordColumns {
            log: LogColumns::read(cols)?,
            service: port_service
                .iter()
                .map(|v| Ok(v.cast_into::<PyString>()?))
                .collect::<PyResult<_>>()?,
            ip_version: numbers(cols, "ip_version")?,
            vlan: numbers(cols, "vlan")?,
            orig_state: optional_texts(cols, "orig_state")?,
            resp_state: optional_texts(cols, "resp_state")?,
            end_reason: texts(cols, "end_reason")?,
            completeness: numbers(cols, "completeness")?,
            first_frame: numbers(cols, "first_frame")?,
            last_frame: numbers(cols, "last_frame")?,
            icmp_errors: item(cols, "icmp_errors")?.cast_into::<PyList>()?,
            icmp_code: numbers(cols, "icmp_code")?,
            outcome: optional_texts(cols, "handshake.outcome")?,
            syn_ns: numbers(cols, "handshake.syn_ns")?,
            syn_ack_ns: numbers(cols, "handshake.syn_ack_ns")?,
            ack_ns: numbers(cols, "handshake.ack_ns")?,
            syn_rtx: numbers(cols, "handshake.syn_retransmits")?,
            syn_ack_rtx: numbers(cols, "handshake.syn_ack_retransmits")?,
            client: OptionColumns::read(cols, "handshake.client_options")?,
            server: OptionColumns::read(cols, "handshake.server_options")?,
            analysis: ANALYSIS_NAMES
                .iter()
                .map(|name| numbers(cols, &format!("analysis.{name}")))
                .collect::<PyResult<_>>()?,
        };
        let mut lengths = vec![
            c.service.len(),
            c.ip_version.len(),
            c.vlan.len(),
            c.orig_state.len(),
            c.resp_state.len(),
            c.end_reason.len(),
            c.completeness.len(),
            c.first_frame.len(),
            c.last_frame.len(),
            c.icmp_errors.len(),
            c.icmp_code.len(),
            c.outcome.len(),
            c.syn_ns.len(),
            c.syn_ack_ns.len(),
            c.ack_ns.len(),
            c.syn_rtx.len(),
            c.syn_ack_rtx.len(),
            c.client.present.len(),
            c.server.present.len(),
        ];
        lengths.extend(c.analysis.iter().map(Vec::len));
        same_length(c.len(), &lengths)?;
        Ok(c)
    }

    fn len(&self) -> usize {
        self.log.len()
    }

    /// Calls `write` with each row of `rows` (and its transitions, if `transitions`).
    fn each(
        &self,
        rows: std::ops::Range<usize>,
        transitions: Option<&TransitionColumns>,
        mut write: impl FnMut(&RecordRow<'_>),
    ) -> PyResult<()> {
        let mut parent_texts = Vec::new();
        let mut errors: Vec<(i64, i64)> = Vec::new();
        let mut kept = Vec::new();
        let mut counts = [0u32; ANALYSIS_NAMES.len()];
        for i in rows {
            self.log.parents(i, &mut parent_texts)?;
            let parent_strs: Vec<&str> = parent_texts
                .iter()
                .map(|p| p.to_str())
                .collect::<PyResult<_>>()?;
            let conn = self.log.row(i, &parent_strs)?;
            errors.clear();
            for e in self.icmp_errors.get_item(i)?.cast_into::<PyTuple>()?.iter() {
                errors.push(e.extract()?);
            }
            match transitions {
                Some(t) => t.row(i, &mut kept)?,
                None => kept.clear(),
            }
            let proto = conn.proto;
            let tcp = proto == "tcp";
            let (states, hs_outcome) = if tcp {
                (
                    Some((
                        required(&self.orig_state[i])?,
                        required(&self.resp_state[i])?,
                    )),
                    Some(required(&self.outcome[i])?),
                )
            } else {
                (None, None)
            };
            let absent = |v: i64| (v != NONE64).then_some(v);
            let handshake = hs_outcome.map(|outcome| JsonHandshake {
                outcome,
                syn_ns: absent(self.syn_ns[i]),
                syn_ack_ns: absent(self.syn_ack_ns[i]),
                ack_ns: absent(self.ack_ns[i]),
                syn_retransmits: self.syn_rtx[i],
                syn_ack_retransmits: self.syn_ack_rtx[i],
                client_options: self.client.row(i),
                server_options: self.server.row(i),
            });
            for (k, column) in self.analysis.iter().enumerate() {
                counts[k] = column[i];
            }
            let code = self.icmp_code[i];
            write(&RecordRow {
                port_service: self.service[i].to_str()?,
                ip_version: self.ip_version[i],
                vlan: (self.vlan[i] != NONE32).then_some(self.vlan[i]),
                states,
                end_reason: self.end_reason[i].to_str()?,
                completeness: self.completeness[i],
                first_frame: self.first_frame[i],
                last_frame: self.last_frame[i],
                icmp_errors: &errors,
                icmp: (proto == "icmp").then_some((code != NONE32).then_some(i64::from(code))),
                handshake,
                analysis: tcp.then_some((&ANALYSIS_NAMES[..], &counts[..])),
                transitions: &kept,
                conn,
            });
        }
        Ok(())
    }
}

/// The `--json` lines of the connections `start..stop` of `cols` (default: every one), each
/// with its newline; `port_service` is each row's responder port's service name
/// (services.py's, which Python looks up). `cols` holds the transitions of its rows
/// (`transitions.*`, from `Tracker.ended_transitions`).
#[pyfunction]
#[pyo3(signature = (cols, port_service, start = 0, stop = None))]
pub fn conn_json_lines(
    cols: &Bound<'_, PyDict>,
    port_service: &Bound<'_, PyList>,
    start: usize,
    stop: Option<usize>,
) -> PyResult<String> {
    let c = RecordColumns::read(cols, port_service)?;
    let transitions = TransitionColumns::read(cols)?;
    same_length(c.len(), &[transitions.offsets.len() - 1])?;
    let rows = rows(c.len(), start, stop);
    let mut out = String::with_capacity(rows.len().saturating_mul(700));
    c.each(rows, Some(&transitions), |row| push_record(&mut out, row))?;
    Ok(out)
}

/// The `--csv` rows (`report.conns.csv_row`, as `csv.writer` writes them) of the connections
/// `start..stop` of `cols`, each with its newline; `port_service` as for `conn_json_lines`;
/// `quote_cr`: whether the Python in use quotes a field holding a carriage return.
#[pyfunction]
#[pyo3(signature = (cols, port_service, start = 0, stop = None, *, quote_cr = false))]
pub fn conn_csv_lines(
    cols: &Bound<'_, PyDict>,
    port_service: &Bound<'_, PyList>,
    start: usize,
    stop: Option<usize>,
    quote_cr: bool,
) -> PyResult<String> {
    let c = RecordColumns::read(cols, port_service)?;
    let rows = rows(c.len(), start, stop);
    let mut out = String::with_capacity(rows.len().saturating_mul(250));
    let mut scratch = String::new();
    let dialect = CsvDialect { quote_cr };
    c.each(rows, None, |row| {
        push_row(&mut out, row, dialect, &mut scratch)
    })?;
    Ok(out)
}
