//! `portlens._core.conn_json_lines(cols, port_service)`: a block of the tracker's connection
//! columns, with the transitions `Tracker.ended_transitions` grouped under its rows, as
//! `conns --json` lines, formatted by portlens_core::conn_json.

use numpy::PyReadonlyArray2;
use portlens_core::conn_json::{
    push_record, ConnJsonRow, JsonHandshake, JsonOptions, JsonTransition,
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
    kinds: Vec<Vec<u8>>,
}

impl OptionColumns {
    fn read(cols: &Bound<'_, PyDict>, prefix: &str) -> PyResult<Self> {
        let kinds: PyReadonlyArray2<'_, u8> = item(cols, &format!("{prefix}.kinds"))?.extract()?;
        let o = OptionColumns {
            present: numbers(cols, &format!("{prefix}.present"))?,
            mss: numbers(cols, &format!("{prefix}.mss"))?,
            wscale: numbers(cols, &format!("{prefix}.wscale"))?,
            sack_perm: numbers(cols, &format!("{prefix}.sack_perm"))?,
            timestamps: numbers(cols, &format!("{prefix}.timestamps"))?,
            kinds_len: numbers(cols, &format!("{prefix}.kinds_len"))?,
            kinds: kinds
                .as_array()
                .rows()
                .into_iter()
                .map(|r| r.iter().copied().collect())
                .collect(),
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
                o.kinds.len(),
            ],
        )?;
        Ok(o)
    }

    fn row(&self, i: usize) -> Option<JsonOptions<'_>> {
        if !self.present[i] {
            return None;
        }
        let kinds = &self.kinds[i];
        Some(JsonOptions {
            mss: (self.mss[i] >= 0).then_some(self.mss[i]),
            wscale: (self.wscale[i] >= 0).then_some(self.wscale[i]),
            sack_perm: self.sack_perm[i],
            timestamps: self.timestamps[i],
            kinds: &kinds[..usize::from(self.kinds_len[i]).min(kinds.len())],
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
    let c = LogColumns::read(cols)?;
    let n = c.len();
    let service: Vec<Bound<'_, PyString>> = port_service
        .iter()
        .map(|v| Ok(v.cast_into::<PyString>()?))
        .collect::<PyResult<_>>()?;
    let ip_version: Vec<u8> = numbers(cols, "ip_version")?;
    let vlan: Vec<i32> = numbers(cols, "vlan")?;
    let orig_state = optional_texts(cols, "orig_state")?;
    let resp_state = optional_texts(cols, "resp_state")?;
    let end_reason = texts(cols, "end_reason")?;
    let completeness: Vec<u8> = numbers(cols, "completeness")?;
    let first_frame: Vec<i64> = numbers(cols, "first_frame")?;
    let last_frame: Vec<i64> = numbers(cols, "last_frame")?;
    let icmp_errors = item(cols, "icmp_errors")?.cast_into::<PyList>()?;
    let icmp_code: Vec<i32> = numbers(cols, "icmp_code")?;
    let outcome = optional_texts(cols, "handshake.outcome")?;
    let syn_ns: Vec<i64> = numbers(cols, "handshake.syn_ns")?;
    let syn_ack_ns: Vec<i64> = numbers(cols, "handshake.syn_ack_ns")?;
    let ack_ns: Vec<i64> = numbers(cols, "handshake.ack_ns")?;
    let syn_rtx: Vec<u32> = numbers(cols, "handshake.syn_retransmits")?;
    let syn_ack_rtx: Vec<u32> = numbers(cols, "handshake.syn_ack_retransmits")?;
    let client = OptionColumns::read(cols, "handshake.client_options")?;
    let server = OptionColumns::read(cols, "handshake.server_options")?;
    let analysis: Vec<Vec<u32>> = ANALYSIS_NAMES
        .iter()
        .map(|name| numbers(cols, &format!("analysis.{name}")))
        .collect::<PyResult<_>>()?;
    let transitions = TransitionColumns::read(cols)?;
    let mut lengths = vec![
        service.len(),
        ip_version.len(),
        vlan.len(),
        orig_state.len(),
        resp_state.len(),
        end_reason.len(),
        completeness.len(),
        first_frame.len(),
        last_frame.len(),
        icmp_errors.len(),
        icmp_code.len(),
        outcome.len(),
        syn_ns.len(),
        syn_ack_ns.len(),
        ack_ns.len(),
        syn_rtx.len(),
        syn_ack_rtx.len(),
        client.present.len(),
        server.present.len(),
        transitions.offsets.len() - 1,
    ];
    lengths.extend(analysis.iter().map(Vec::len));
    same_length(n, &lengths)?;

    let rows = rows(n, start, stop);
    let mut out = String::with_capacity(rows.len().saturating_mul(700));
    let mut parent_texts = Vec::new();
    let mut errors: Vec<(i64, i64)> = Vec::new();
    let mut kept = Vec::new();
    let mut counts = [0u32; ANALYSIS_NAMES.len()];
    for i in rows {
        c.parents(i, &mut parent_texts)?;
        let parent_strs: Vec<&str> = parent_texts
            .iter()
            .map(|p| p.to_str())
            .collect::<PyResult<_>>()?;
        let conn = c.row(i, &parent_strs)?;
        errors.clear();
        for e in icmp_errors.get_item(i)?.cast_into::<PyTuple>()?.iter() {
            errors.push(e.extract()?);
        }
        transitions.row(i, &mut kept)?;
        let proto = conn.proto;
        let tcp = proto == "tcp";
        let (states, hs_outcome) = if tcp {
            (
                Some((required(&orig_state[i])?, required(&resp_state[i])?)),
                Some(required(&outcome[i])?),
            )
        } else {
            (None, None)
        };
        let absent = |v: i64| (v != NONE64).then_some(v);
        let handshake = hs_outcome.map(|outcome| JsonHandshake {
            outcome,
            syn_ns: absent(syn_ns[i]),
            syn_ack_ns: absent(syn_ack_ns[i]),
            ack_ns: absent(ack_ns[i]),
            syn_retransmits: syn_rtx[i],
            syn_ack_retransmits: syn_ack_rtx[i],
            client_options: client.row(i),
            server_options: server.row(i),
        });
        for (k, column) in analysis.iter().enumerate() {
            counts[k] = column[i];
        }
        push_record(
            &mut out,
            &ConnJsonRow {
                port_service: service[i].to_str()?,
                ip_version: ip_version[i],
                vlan: (vlan[i] != NONE32).then_some(vlan[i]),
                states,
                end_reason: end_reason[i].to_str()?,
                completeness: completeness[i],
                first_frame: first_frame[i],
                last_frame: last_frame[i],
                icmp_errors: &errors,
                icmp: (proto == "icmp")
                    .then_some((icmp_code[i] != NONE32).then_some(i64::from(icmp_code[i]))),
                handshake,
                analysis: tcp.then_some((&ANALYSIS_NAMES[..], &counts[..])),
                transitions: &kept,
                conn,
            },
        );
    }
    Ok(out)
}
