"""Zeek's conn.log TSV: its header and footer, and its lines, from the reference tracker's
Connections or the compiled tracker's columns. Apart from report/conns.py, so that
`conns --format zeek`, whose lines the core writes, imports nothing else of the reports."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from portlens.track.model import Connection

ZEEK_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto", "community_id")
ZEEK_TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
              "count", "count", "string", "bool", "bool", "count", "string", "count", "count",
              "count", "count", "set[string]", "count", "string")

IP_PROTO = {"tcp": 6, "udp": 17}


def _zeek_seconds(ns: int) -> str:
    """Seconds with 6 decimals, from microseconds as Zeek reads them (truncating, not rounding)."""
    us = ns // 1000
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def has_duration(c: Connection) -> bool:
    """Zeek writes duration and byte counts only when the duration is positive."""
    return c.duration_ns > 0


def ip_proto(c: Connection) -> int:
    if c.ip_proto is not None:
        return c.ip_proto
    if c.proto == "icmp":
        return 58 if c.ip_version == 6 else 1
    return IP_PROTO.get(c.proto, 0)


def zeek_row(c: Connection) -> list[str]:
    """conn.log's columns. ``service`` stays unset: Zeek fills it only when a protocol
    analyzer confirmed the protocol, and Zeek users read it so; portlens analyzes no
    application protocol (the port's name is ``port_service`` in JSON and CSV)."""
    d = has_duration(c)
    return [
        _zeek_seconds(c.ts_ns), c.uid, c.orig_h, str(c.orig_p), c.resp_h, str(c.resp_p),
        c.proto, "-", _zeek_seconds(c.duration_ns) if d else "-",
        str(c.orig_bytes) if d else "-", str(c.resp_bytes) if d else "-", c.conn_state, "-", "-",
        str(c.missed_bytes), c.history or "-", str(c.orig_pkts), str(c.orig_ip_bytes),
        str(c.resp_pkts), str(c.resp_ip_bytes), ",".join(c.tunnel_parents) or "-",
        str(ip_proto(c)), c.community_id or "-",
    ]


ZEEK_LINES_AT_ONCE = 8192
"""Rows formatted into one string: a flood's 200,000 open flows end in one block."""


ZEEK_COLUMNS = frozenset({
    "uid", "ts_ns", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "duration_ns",
    "orig_bytes", "resp_bytes", "conn_state", "missed_bytes", "history", "orig_pkts",
    "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto", "community_id"})
"""The columns ``zeek_lines`` reads (crates/py/src/conn_log.rs ``LogColumns``): all a
`conns --format zeek` asks the tracker for."""


def zeek_lines(cols: dict[str, Any], start: int = 0, stop: int | None = None) -> str:
    """``zeek_row`` of the connections ``start:stop`` of a block of the Rust tracker's
    columns (track/rust.py), as conn.log lines, without making the Connections: the same
    text (tests/test_columns.py compares them on every capture), written by the core
    (crates/core/src/conn_log.rs), where Python's formatting was a sixth of ``conns``."""
    import portlens._core as core

    return str(core.conn_log_lines(cols, start, stop))


class ZeekWriter:
    """conn.log in Zeek's TSV format, which zeek-cut and Zeek's readers accept."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        now = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
        out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                  "#unset_field\t-\n#path\tconn\n")
        out.write(f"#open\t{now}\n")
        out.write("#fields\t" + "\t".join(ZEEK_FIELDS) + "\n")
        out.write("#types\t" + "\t".join(ZEEK_TYPES) + "\n")

    def write(self, c: Connection) -> None:
        self.out.write("\t".join(zeek_row(c)) + "\n")

    def write_columns(self, cols: dict[str, Any]) -> None:
        """``write`` of every connection of a block of the tracker's columns."""
        n = len(cols["uid"])
        for start in range(0, n, ZEEK_LINES_AT_ONCE):
            self.out.write(zeek_lines(cols, start, start + ZEEK_LINES_AT_ONCE))

    def close(self) -> None:
        now = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
        self.out.write(f"#close\t{now}\n")
