"""What the HTML report embeds: the `--json` records of each report, plus the few series only
the page draws (rates, RTT samples, ladders), as one JSON object.

The numbers are the other reports' own: the port rows, scans and totals are `ports --json`'s
objects (report/ports.py ``json_records``), the handshake rows `handshakes --json`'s, the top
talkers `hosts --json`'s and `convs --json`'s, the capture summary `packets --stats --json`'s;
nothing is recomputed for the page. Connections are many (tens of thousands on a big capture),
so they are embedded by column, with `conns --json`'s names and values, text columns as a
dictionary plus codes and times as nanoseconds after ``base_ns`` (JavaScript numbers hold
integers exactly only up to 2^53, an epoch in nanoseconds is larger).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from portlens import __version__
from portlens.analysis.conn_rows import ConnRows
from portlens.analysis.ladder import Ladder
from portlens.analysis.ports import OUTCOMES, PortTable
from portlens.analysis.rates import PacketRates, starts_per_bin
from portlens.analysis.report_input import ReportInput
from portlens.decode.fields import endpoint_text
from portlens.report.clock import Clock
from portlens.report.html.pack import Ints
from portlens.report.ladder import _fold_line, _seconds, _visible, render
from portlens.report.ports import json_records
from portlens.track.rust import NONE64

TOP_TALKERS = 100
"""Hosts and conversations listed (the charts show the first 15); `hosts --json` has all."""
RATE_PORTS = 8
"""Server ports with a series of their own in the rate charts (by packets); the rest is other."""
RTT_PORTS = 12
"""Server ports whose handshake RTT distributions are drawn: those with the most handshakes
among the ports with an RTT at all (a scan's thousand unanswered ports have none)."""
RTT_SAMPLE = 1000
"""RTTs kept per port and side for the box plots: every one up to this many, beyond that this
many at evenly spaced ranks of the sorted values (min and max included), which keeps the
distribution's shape and quartiles to within 1/RTT_SAMPLE of rank."""

CONN_FIELDS = ("ts_ns", "uid", "proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
               "port_service", "duration_ns", "orig_bytes", "resp_bytes", "conn_state",
               "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts",
               "resp_ip_bytes", "orig_state", "resp_state", "end_reason", "icmp_type",
               "icmp_code", "tunnel_parents", "outcome")
"""The connections table's columns: `conns --json`'s names and values (``outcome`` is the
`ports` report's outcome of the connection). The handshake's RTTs are in the handshakes
section (`handshakes --conns` lists them per connection): 600 kB more on the benchmark
capture's page for a column that `--json` has anyway."""
TEXT_FIELDS = frozenset({"uid", "proto", "id.orig_h", "id.resp_h", "port_service", "conn_state",
                         "history", "orig_state", "resp_state", "end_reason", "tunnel_parents",
                         "outcome"})


def _columns(conns: ConnRows) -> dict[str, Any]:
    """``conns --json``'s value of each column (report/conns.py record), column by column:
    the numbers as (values, null mask) arrays (pack.py ``Ints``: a Python int a row took most
    of a big capture's page making), the texts and the ICMP columns as lists."""
    def ints(name: str) -> Ints:
        values = conns.numbers(name)
        return values, np.zeros(len(values), dtype=bool)

    proto = conns.texts("proto")
    untimed = conns.numbers("duration_ns") <= 0  # report/zeek.py has_duration
    icmp = [p == "icmp" for p in proto]
    return {
        "ts_ns": ints("ts_ns"), "uid": conns.texts("uid"),
        "proto": proto, "id.orig_h": conns.texts("orig_h"),
        "id.orig_p": ints("orig_p"), "id.resp_h": conns.texts("resp_h"),
        "id.resp_p": ints("resp_p"),
        "port_service": [s or None for s in conns.texts("service")],
        "duration_ns": ints("duration_ns"),
        "orig_bytes": (np.where(untimed, 0, conns.numbers("orig_bytes")), untimed),
        "resp_bytes": (np.where(untimed, 0, conns.numbers("resp_bytes")), untimed),
        "conn_state": conns.texts("conn_state"),
        "missed_bytes": ints("missed_bytes"), "history": conns.texts("history"),
        "orig_pkts": ints("orig_pkts"), "orig_ip_bytes": ints("orig_ip_bytes"),
        "resp_pkts": ints("resp_pkts"), "resp_ip_bytes": ints("resp_ip_bytes"),
        "orig_state": conns.texts("orig_state"), "resp_state": conns.texts("resp_state"),
        "end_reason": conns.texts("end_reason"),
        "icmp_type": [p if i else None for p, i in zip(conns.numbers("orig_p").tolist(), icmp,
                                                       strict=True)],
        "icmp_code": [c if i else None for c, i in zip(conns.texts("icmp_code"), icmp,
                                                      strict=True)],
        "tunnel_parents": conns.texts("tunnel_parents"),
        "outcome": conns.texts("outcome"),
    }


def conn_columns(conns: ConnRows) -> dict[str, Any]:
    """The connections by column (module doc): ``{"n", "base_ns", "fields", "cols"}``, each
    text column ``{"dict": [...], "codes": [...]}`` (code -1: null), each number column
    pack.py's ``Ints``."""
    base = int(conns.numbers("ts_ns").min()) if len(conns) else 0
    cols: dict[str, Any] = {}
    for name, values in _columns(conns).items():
        if name == "ts_ns":
            cols[name] = (values[0] - base, values[1])
        elif name in TEXT_FIELDS:
            codes: dict[str, int] = {}
            cols[name] = {"codes": [-1 if v is None else codes.setdefault(v, len(codes))
                                    for v in values],
                          "dict": list(codes)}
        else:
            cols[name] = values
    return {"n": len(conns), "base_ns": str(base), "fields": list(CONN_FIELDS), "cols": cols}


def ladder_record(ladder: Ladder) -> dict[str, Any]:
    """One ladder as the page draws it: `portlens ladder`'s header, rows and closing lines
    (report/ladder.py, UTC), a row per segment or fold, the same folding."""
    lines = render(ladder, clock=Clock(utc=True))
    c = ladder.conn
    rows: list[list[Any]] = []
    hidden_steps = []
    visible = _visible(ladder, False)
    for step, show in zip(ladder.steps, visible, strict=True):
        if not show:
            hidden_steps.append(step)
            continue
        if hidden_steps:
            rows.append(["fold", _fold_line(hidden_steps).strip()])
            hidden_steps = []
        text = step.label + "".join(f" ({m})" for m in step.marks)
        rows.append(["seg", _seconds(step.ts_ns - c.ts_ns), step.frame, int(step.from_orig),
                     text, str(step.orig_state or ""), str(step.resp_state or "")])
    if hidden_steps:
        rows.append(["fold", _fold_line(hidden_steps).strip()])
    if c.proto == "icmp":  # as render(): ICMP has no ports
        client, server = c.orig_h, c.resp_h
    else:
        client, server = endpoint_text(c.orig_h, c.orig_p), endpoint_text(c.resp_h, c.resp_p)
    return {"title": lines[0], "started": lines[1], "client": f"client {client}",
            "server": f"server {server}",
            "initial": [str(ladder.orig_initial or ""), str(ladder.resp_initial or "")],
            "rows": rows, "verdict": lines[-2], "end": lines[-1], "segments": len(ladder.steps)}


def _spread(values: list[int]) -> list[int]:
    """At most RTT_SAMPLE of ``values``, at evenly spaced ranks of the sorted values."""
    if len(values) <= RTT_SAMPLE:
        return sorted(values)
    ordered = np.sort(np.asarray(values, dtype=np.int64))
    ranks = np.linspace(0, len(ordered) - 1, RTT_SAMPLE).round().astype(np.int64)
    return ordered[ranks].tolist()  # type: ignore[no-any-return]


def rtt_samples(conns: ConnRows, ports: Sequence[int]) -> dict[str, Any]:
    """Server-side (SYN -> SYN-ACK) and client-side (SYN-ACK -> ACK) RTTs of the handshakes
    of ``ports``, per port (handshakes --conns' server_rtt_ns and client_rtt_ns; none but for
    TCP)."""
    resp_p = conns.numbers("resp_p")
    server: dict[int, list[int]] = {}
    client: dict[int, list[int]] = {}
    for side, rtts in ((server, conns.numbers("server_rtt_ns")),
                       (client, conns.numbers("client_rtt_ns"))):
        for p in ports:
            side[p] = rtts[(resp_p == p) & (rtts != NONE64)].tolist()
    return {str(p): {"server": _spread(server[p]), "client": _spread(client[p]),
                     "server_count": len(server[p]), "client_count": len(client[p])}
            for p in ports}


def rate_series(rates: PacketRates, ports: PortTable, conns: ConnRows) -> dict[str, Any]:
    """Packets per bin (all, per top port, other) and new connections per bin (per top port,
    other), the top ports being those of the most packets."""
    top = [r for r in ports.sorted("packets") if r.proto in ("tcp", "udp")][:RATE_PORTS]
    series = rates.series([(r.proto, r.port) for r in top])
    start, bin_s, nbins = series["start_s"], int(series["bin_s"]), len(series["all"])
    keys = {(r.proto, r.port): f"{r.port}/{r.proto}" for r in top}
    ts, resp_p = conns.numbers("ts_ns"), conns.numbers("resp_p")
    names = {"tcp": 1, "udp": 2}
    proto = np.fromiter((names.get(p, 0) for p in conns.texts("proto")), np.int64, len(conns))
    other = np.ones(len(conns), dtype=bool)
    starts: dict[str, np.ndarray] = {}
    for (p, port), name in keys.items():
        rows = (resp_p == port) & (proto == names[p])
        other &= ~rows
        starts[name] = ts[rows]
    starts["other"] = ts[other]
    new = {name: starts_per_bin(t, int(start), bin_s, nbins) if start is not None else []
           for name, t in starts.items()}
    series["new_conns"] = new
    return series


def payload(r: ReportInput) -> dict[str, Any]:
    """The page's data (module doc)."""
    clock = Clock("date", utc=True)
    stats = r.stats.to_dict()
    if r.files:
        stats["files"] = r.files
    hosts = r.talkers.endpoints("bytes", TOP_TALKERS)
    convs = r.talkers.conversations("bytes", TOP_TALKERS)
    handshakes = r.handshakes.records()
    hs_ports = [rec["port"] for rec in sorted(
        handshakes, key=lambda rec: (-rec["handshakes"], rec["port"]))
        if rec["server_rtt_count"] or rec["client_rtt_count"]][:RTT_PORTS]
    return {
        "meta": {
            "version": __version__, "sources": r.sources,
            "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "first": clock.text(r.stats.first_ns) if r.stats.first_ns is not None else None,
            "last": clock.text(r.stats.last_ns) if r.stats.last_ns is not None else None,
            "conns": len(r.conns), "ladders": len(r.ladders), "ladder_limit": r.ladder_limit,
            "outcomes": list(OUTCOMES), "live": r.live, "errors": r.errors,
            "warnings": r.warnings,
            "missed_bytes": int(r.conns.numbers("missed_bytes").sum()),
            "conns_missed": int((r.conns.numbers("missed_bytes") != 0).sum())},
        "stats": stats,
        "ports": json_records(r.ports),
        "handshakes": handshakes,
        "hosts": [e.record() for e in hosts], "hosts_total": r.talkers.endpoint_count(),
        "convs": [c.record() for c in convs],
        "convs_total": r.talkers.conversation_count(),
        "rates": rate_series(r.rates, r.ports, r.conns),
        "rtts": rtt_samples(r.conns, hs_ports),
        "conns": conn_columns(r.conns),
        "ladders": {uid: ladder_record(lad) for uid, lad in r.ladders.items()},
    }
