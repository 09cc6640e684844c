//! `portlens._core.packet_lines(batch, names, ...)` and `packet_records(batch, names)`: a
//! batch's packet rows as the lines (or JSON objects) of `portlens packets`, written by
//! portlens_core::packet_text; `PacketNames` holds the words the Python side gives once
//! (report/packets.py `lines`, `records`).

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use portlens_core::packet_text::{push_lines, push_records, Clock, Names, PacketRows, Style};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::track::{col1, col2, slice, slice2};

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

/// A batch's columns, borrowed from its arrays for as long as this lives.
struct Held<'py> {
    sub: PyReadonlyArray1<'py, u8>,
    frame: PyReadonlyArray1<'py, i64>,
    ts_ns: PyReadonlyArray1<'py, i64>,
    wirelen: PyReadonlyArray1<'py, u32>,
    caplen: PyReadonlyArray1<'py, u32>,
    linktype: PyReadonlyArray1<'py, u16>,
    interface: PyReadonlyArray1<'py, u16>,
    vlan: PyReadonlyArray1<'py, i32>,
    ethertype: PyReadonlyArray1<'py, u16>,
    ppp_proto: PyReadonlyArray1<'py, u16>,
    ip_version: PyReadonlyArray1<'py, u8>,
    src: PyReadonlyArray2<'py, u8>,
    dst: PyReadonlyArray2<'py, u8>,
    proto: PyReadonlyArray1<'py, u8>,
    ip_len: PyReadonlyArray1<'py, u32>,
    frag: PyReadonlyArray1<'py, u8>,
    l4: PyReadonlyArray1<'py, u8>,
    sport: PyReadonlyArray1<'py, u16>,
    dport: PyReadonlyArray1<'py, u16>,
    payload: PyReadonlyArray1<'py, i32>,
    tcp_flags: PyReadonlyArray1<'py, u16>,
    seq: PyReadonlyArray1<'py, u32>,
    ack: PyReadonlyArray1<'py, u32>,
    win: PyReadonlyArray1<'py, u16>,
    mss: PyReadonlyArray1<'py, i32>,
    wscale: PyReadonlyArray1<'py, i16>,
    sack_perm: PyReadonlyArray1<'py, bool>,
    has_ts: PyReadonlyArray1<'py, bool>,
    tsval: PyReadonlyArray1<'py, u32>,
    opt_count: PyReadonlyArray1<'py, u8>,
    opt_kinds: PyReadonlyArray2<'py, u8>,
    icmp_type: PyReadonlyArray1<'py, i16>,
    icmp_code: PyReadonlyArray1<'py, i16>,
    q_valid: PyReadonlyArray1<'py, bool>,
    q_proto: PyReadonlyArray1<'py, u8>,
    q_sport: PyReadonlyArray1<'py, u16>,
    q_dport: PyReadonlyArray1<'py, u16>,
    tunnel_depth: PyReadonlyArray1<'py, u8>,
    tunnel: PyReadonlyArray1<'py, u32>,
    truncated: PyReadonlyArray1<'py, bool>,
    ip_csum: PyReadonlyArray1<'py, u8>,
    l4_csum: PyReadonlyArray1<'py, u8>,
    malformed: PyReadonlyArray1<'py, u8>,
}

impl<'py> Held<'py> {
    fn of(batch: &Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(Held {
            sub: col1(batch, "sub")?,
            frame: col1(batch, "frame")?,
            ts_ns: col1(batch, "ts_ns")?,
            wirelen: col1(batch, "wirelen")?,
            caplen: col1(batch, "caplen")?,
            linktype: col1(batch, "linktype")?,
            interface: col1(batch, "interface")?,
            vlan: col1(batch, "vlan")?,
            ethertype: col1(batch, "ethertype")?,
            ppp_proto: col1(batch, "ppp_proto")?,
            ip_version: col1(batch, "ip_version")?,
            src: col2(batch, "src")?,
            dst: col2(batch, "dst")?,
            proto: col1(batch, "proto")?,
            ip_len: col1(batch, "ip_len")?,
            frag: col1(batch, "frag")?,
            l4: col1(batch, "l4")?,
            sport: col1(batch, "sport")?,
            dport: col1(batch, "dport")?,
            payload: col1(batch, "payload")?,
            tcp_flags: col1(batch, "tcp_flags")?,
            seq: col1(batch, "seq")?,
            ack: col1(batch, "ack")?,
            win: col1(batch, "win")?,
            mss: col1(batch, "mss")?,
            wscale: col1(batch, "wscale")?,
            sack_perm: col1(batch, "sack_perm")?,
            has_ts: col1(batch, "has_ts")?,
            tsval: col1(batch, "tsval")?,
            opt_count: col1(batch, "opt_count")?,
            opt_kinds: col2(batch, "opt_kinds")?,
            icmp_type: col1(batch, "icmp_type")?,
            icmp_code: col1(batch, "icmp_code")?,
            q_valid: col1(batch, "q_valid")?,
            q_proto: col1(batch, "q_proto")?,
            q_sport: col1(batch, "q_sport")?,
            q_dport: col1(batch, "q_dport")?,
            tunnel_depth: col1(batch, "tunnel_depth")?,
            tunnel: col1(batch, "tunnel")?,
            truncated: col1(batch, "truncated")?,
            ip_csum: col1(batch, "ip_csum")?,
            l4_csum: col1(batch, "l4_csum")?,
            malformed: col1(batch, "malformed")?,
        })
    }

    fn rows(&self) -> PyResult<PacketRows<'_>> {
        Ok(PacketRows {
            sub: slice(&self.sub, "sub")?,
            frame: slice(&self.frame, "frame")?,
            ts_ns: slice(&self.ts_ns, "ts_ns")?,
            wirelen: slice(&self.wirelen, "wirelen")?,
            caplen: slice(&self.caplen, "caplen")?,
            linktype: slice(&self.linktype, "linktype")?,
            interface: slice(&self.interface, "interface")?,
            vlan: slice(&self.vlan, "vlan")?,
            ethertype: slice(&self.ethertype, "ethertype")?,
            ppp_proto: slice(&self.ppp_proto, "ppp_proto")?,
            ip_version: slice(&self.ip_version, "ip_version")?,
            src: slice2(&self.src, "src")?,
            dst: slice2(&self.dst, "dst")?,
            proto: slice(&self.proto, "proto")?,
            ip_len: slice(&self.ip_len, "ip_len")?,
            frag: slice(&self.frag, "frag")?,
            l4: slice(&self.l4, "l4")?,
            sport: slice(&self.sport, "sport")?,
            dport: slice(&self.dport, "dport")?,
            payload: slice(&self.payload, "payload")?,
            tcp_flags: slice(&self.tcp_flags, "tcp_flags")?,
            seq: slice(&self.seq, "seq")?,
            ack: slice(&self.ack, "ack")?,
            win: slice(&self.win, "win")?,
            mss: slice(&self.mss, "mss")?,
            wscale: slice(&self.wscale, "wscale")?,
            sack_perm: slice(&self.sack_perm, "sack_perm")?,
            has_ts: slice(&self.has_ts, "has_ts")?,
            tsval: slice(&self.tsval, "tsval")?,
            opt_count: slice(&self.opt_count, "opt_count")?,
            opt_kinds: slice2(&self.opt_kinds, "opt_kinds")?,
            icmp_type: slice(&self.icmp_type, "icmp_type")?,
            icmp_code: slice(&self.icmp_code, "icmp_code")?,
            q_valid: slice(&self.q_valid, "q_valid")?,
            q_proto: slice(&self.q_proto, "q_proto")?,
            q_sport: slice(&self.q_sport, "q_sport")?,
            q_dport: slice(&self.q_dport, "q_dport")?,
            tunnel_depth: slice(&self.tunnel_depth, "tunnel_depth")?,
            tunnel: slice(&self.tunnel, "tunnel")?,
            truncated: slice(&self.truncated, "truncated")?,
            ip_csum: slice(&self.ip_csum, "ip_csum")?,
            l4_csum: slice(&self.l4_csum, "l4_csum")?,
            malformed: slice(&self.malformed, "malformed")?,
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
    let held = Held::of(batch)?;
    let clock = ClockState {
        style,
        seconds: slice(&seconds, "seconds")?,
        second_texts: &second_texts,
        first_ns,
        previous_ns,
    };
    lines(py, &held.rows()?, None, names, clock)
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
    rows: &PacketRows<'_>,
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
    let held = Held::of(batch)?;
    records(py, &held.rows()?, None, names)
}

/// `rows`' JSON objects (the GIL released).
pub(crate) fn records(
    py: Python<'_>,
    rows: &PacketRows<'_>,
    picked: Option<&[i64]>,
    names: &PacketNames,
) -> PyResult<String> {
    let names = &names.inner;
    let mut out = String::new();
    py.detach(|| push_records(rows, picked, names, &mut out))
        .map_err(|e| PyValueError::new_err(e.0))?;
    Ok(out)
}
