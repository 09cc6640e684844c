"""`portlens hosts` and `portlens convs`: top talkers as tables, JSON lines or CSV.

Tables round (1.2 k packets, 3.4 MB); JSON and CSV carry the exact values of
Endpoint.record() and Conversation.record() (fields in docs/formats.md).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Any, TextIO

from portlens.analysis.talkers import Conversation, Endpoint
from portlens.report import human
from portlens.report.clock import Clock
from portlens.report.tables import Column, Screen, TableWriter

CONV_COLUMNS = ("address A", "address B", "pkts A>B", "bytes A>B", "pkts B>A", "bytes B>A",
                "pkts", "bytes", "start", "duration")
CONV_DROP = ("start", "duration", "pkts A>B", "pkts B>A", "pkts")
HOST_COLUMNS = ("address", "pkts", "bytes", "tx pkts", "tx bytes", "rx pkts", "rx bytes",
                "peers", "start")
HOST_DROP = ("start", "peers", "tx pkts", "rx pkts")
NUMBERS = frozenset({"pkts A>B", "bytes A>B", "pkts B>A", "bytes B>A", "pkts", "bytes",
                     "duration", "tx pkts", "tx bytes", "rx pkts", "rx bytes", "peers"})


def conv_cells(c: Conversation, clock: Clock) -> dict[str, str]:
    return {"address A": c.a, "address B": c.b,
            "pkts A>B": human.count(c.pkts_ab), "bytes A>B": human.size(c.bytes_ab),
            "pkts B>A": human.count(c.pkts_ba), "bytes B>A": human.size(c.bytes_ba),
            "pkts": human.count(c.pkts), "bytes": human.size(c.bytes),
            "start": clock.text(c.first_ns), "duration": human.duration(c.duration_ns)}


def host_cells(e: Endpoint, clock: Clock) -> dict[str, str]:
    return {"address": e.addr, "pkts": human.count(e.pkts), "bytes": human.size(e.bytes),
            "tx pkts": human.count(e.tx_pkts), "tx bytes": human.size(e.tx_bytes),
            "rx pkts": human.count(e.rx_pkts), "rx bytes": human.size(e.rx_bytes),
            "peers": human.count(e.peers), "start": clock.text(e.first_ns)}


def rows_of(cells: Sequence[dict[str, str]], columns: Sequence[str]) -> list[tuple[str, ...]]:
    return [tuple(row[c] for c in columns) for row in cells]


def columns_for(columns: Sequence[str], clock: Clock) -> tuple[str, ...]:
    """No start column with -t (no times)."""
    return tuple(c for c in columns if c != "start" or clock.style != "none")


def print_table(screen: Screen, columns: Sequence[str], rows: Sequence[Sequence[str]],
                drop_order: Sequence[str], title: str) -> list[str]:
    """The table on stdout (report/tables.py); returns the columns left out to fit."""
    writer = TableWriter(screen, [Column(c, right=c in NUMBERS) for c in columns],
                         title=title, drop_order=drop_order)
    for row in rows:
        writer.add(row)
    return writer.close()


def write_json(records: Sequence[dict[str, Any]], out: TextIO) -> None:
    for rec in records:
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")


def write_csv(records: Sequence[dict[str, Any]], fields: Sequence[str], out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(fields)
    for rec in records:
        w.writerow([rec[name] for name in fields])


CONV_FIELDS = ("a", "b", "ip_version", "pkts_ab", "bytes_ab", "pkts_ba", "bytes_ba", "pkts",
               "bytes", "first_ts_ns", "last_ts_ns", "duration_ns")
HOST_FIELDS = ("addr", "ip_version", "pkts", "bytes", "tx_pkts", "tx_bytes", "rx_pkts",
               "rx_bytes", "peers", "first_ts_ns", "last_ts_ns")
