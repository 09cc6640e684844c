"""`portlens ports`: the per-port summary as a table, JSON lines or CSV.

Tables round numbers for reading (1.2 k, 3.4 MB); JSON and CSV carry the exact values of
PortSummary.record() (fields in docs/formats.md). The totals come last, apart from the port
rows: a bold row in the table, a ``"type": "summary"`` object (totals under ``total``) in JSON
lines; CSV has the port rows only.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from portlens.analysis.ports import OUTCOMES, PortSummary, PortTable, Probe
from portlens.analysis.sketch import Sketch
from portlens.report import human
from portlens.report.tables import Column, Screen, TableWriter, clean, left_out_text

OUTCOME_WORDS = {o: o.replace("_", "-") for o in OUTCOMES}
COLUMNS = ("port", "service", "conns", "outcomes", "guessed", "pkts c>s/s>c", "bytes c>s/s>c",
           "hosts c/s", "rtt p50/p95/max", "retx")
"""Every column the table can have; guessed is left out when it is 0 in every row, so the
table reads at a glance on an ordinary terminal."""
TEXT_COLUMNS = frozenset({"port", "service", "outcomes"})
OPTIONAL = frozenset({"guessed"})


def port_label(r: PortSummary) -> str:
    """'443/tcp', '53/udp', '5353/udp (client)'; ICMP rows are messages, never ports:
    'icmp 8/0' (type/code; the service column names it); an IP protocol without ports is
    'ip 89' (the service column says ospf)."""
    if r.proto == "all":
        return "all"
    if r.is_icmp:
        return f"{r.proto} {r.port}" + ("" if r.icmp_code is None else f"/{r.icmp_code}")
    if r.is_ip:
        return f"ip {r.port}"  # an IP protocol without ports; the service column names it
    label = f"{r.port}/{r.proto}"
    return label + " (client)" if r.role == "client" else label


def rtt_text(sk: Sketch) -> str:
    """p50/p95/max in the unit of the largest: 12/30/41 ms."""
    if not sk.count or sk.max is None:
        return "-"
    values = [sk.quantile(0.5) or 0, sk.quantile(0.95) or 0, sk.max]
    unit = human.duration(sk.max).split(" ")[-1]
    scale = dict(human.DURATION_UNITS)[unit]
    return "/".join(_short(v / scale) for v in values) + f" {unit}"


def _short(x: float) -> str:
    return f"{x:.0f}" if x >= 9.95 else f"{x:.1f}"


def outcomes_text(r: PortSummary) -> str:
    """The non-zero outcomes, biggest first: '5 completed, 6 refused'."""
    parts = sorted(((r.outcomes.get(o, 0), i, o) for i, o in enumerate(OUTCOMES)),
                   key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{human.count(n)} {OUTCOME_WORDS[o]}" for n, _, o in parts if n) or "-"


def all_cells(r: PortSummary) -> dict[str, str]:
    cells = {"port": port_label(r), "service": r.service or "-", "conns": human.count(r.conns)}
    cells["outcomes"] = outcomes_text(r)
    cells.update({
        "guessed": human.count(r.guessed),
        "pkts c>s/s>c": f"{human.count(r.pkts_c2s)}/{human.count(r.pkts_s2c)}",
        "bytes c>s/s>c": f"{human.size(r.bytes_c2s)}/{human.size(r.bytes_s2c)}",
        "hosts c/s": f"{human.count(len(r.clients))}/{human.count(len(r.servers))}",
        "rtt p50/p95/max": rtt_text(r.rtt), "retx": human.percent(r.retransmission_rate)})
    return cells


def table_rows(table: PortTable, by: str = "conns", top: int | None = None
               ) -> tuple[list[str], list[tuple[str, ...]]]:
    """The table's columns and cells: rows, then the totals row last."""
    summaries = [*table.sorted(by, top), table.total]
    cells = [all_cells(r) for r in summaries]
    columns = [c for c in COLUMNS if c not in OPTIONAL or any(row[c] != "0" for row in cells)]
    return columns, [tuple(row[c] for c in columns) for row in cells]


HEADERS = {"pkts c>s/s>c": "pkts\nc>s/s>c", "bytes c>s/s>c": "bytes\nc>s/s>c",
           "hosts c/s": "hosts\nc/s", "rtt p50/p95/max": "handshake rtt\np50/p95/max"}
"""Two-line headers where the name is wider than the numbers under it."""


DROP_ORDER = ("hosts c/s", "retx", "pkts c>s/s>c", "guessed", "rtt p50/p95/max", "bytes c>s/s>c")
"""Columns given up, in this order, when the terminal is too narrow for all (--wide keeps
them); port, service, conns and outcomes always stay."""
OUTCOMES_WIDTH = 24
"""The outcomes column folds; columns are left out until it can be this wide."""


SCAN_PORTS_SHOWN = 10
"""The answered ports a scan line lists before saying how many more."""
SCANS_SHOWN = 10


def scan_line(p: Probe) -> str:
    """One host probing many ports of another, in one line:
    '172.16.0.8 → 64.13.134.52: 1000 ports, 1986 unanswered, 5 refused, 3 half-open;
    answered on 22, 53, 80'."""
    first = [o for o in ("unanswered", "refused") if p.outcomes.get(o)]
    rest = sorted((o for o in OUTCOMES if o not in first and p.outcomes.get(o)),
                  key=lambda o: (-p.outcomes[o], OUTCOMES.index(o)))
    counts = ", ".join(f"{p.outcomes[o]} {OUTCOME_WORDS[o]}" for o in [*first, *rest])
    ports = "ports" if p.proto == "tcp" else f"{p.proto} ports"
    line = f"{p.orig_h} → {p.resp_h}: {len(p.ports)} {ports}, {counts}"
    answered = sorted(p.answered_ports)
    if answered:
        shown = ", ".join(str(port) for port in answered[:SCAN_PORTS_SHOWN])
        more = len(answered) - SCAN_PORTS_SHOWN
        line += f"; answered on {shown}" + (f" and {more} more" if more > 0 else "")
    return line


def scan_lines(table: PortTable) -> list[str]:
    """The scan summary under the table: a line per scan, at most SCANS_SHOWN."""
    scans = table.scans()
    lines = [scan_line(p) for p in scans[:SCANS_SHOWN]]
    if len(scans) > SCANS_SHOWN:
        lines.append(f"... and {len(scans) - SCANS_SHOWN} more scans (--json lists them all)")
    return lines


def table_columns(names: Sequence[str]) -> list[Column]:
    return [Column(name, HEADERS.get(name, ""), right=name not in TEXT_COLUMNS,
                   fold=name == "outcomes") for name in names]


def print_table(screen: Screen, table: PortTable, by: str = "conns", top: int | None = None,
                title: str | None = None) -> None:
    columns, rows = table_rows(table, by, top)
    writer = TableWriter(screen, table_columns(columns), title=title, drop_order=DROP_ORDER,
                         fold_width=OUTCOMES_WIDTH)
    for row in rows[:-1]:
        writer.add(row)
    writer.add(rows[-1], total=True)
    left_out = writer.close()
    for line in scan_lines(table):
        screen.out.write(clean(line) + "\n")
    ports = len(rows) - 1
    note = f"{ports} of {len(table)} ports" if ports < len(table) else f"{len(table)} ports"
    note += f", {table.total.conns} connections"
    if left_out:
        note += f" ({left_out_text(left_out, screen.width)})"
    if table.not_counted:
        note += "; not counted: " + not_counted_text(table.not_counted)
    screen.note(note)


def not_counted_text(counts: Counter[str]) -> str:
    """'4 not IP, 21 malformed (ipv4-total-length-invalid 2, ...)': the footer's last part."""
    malformed = {k.removeprefix("malformed: "): n for k, n in counts.most_common()
                 if k.startswith("malformed: ")}
    parts = [f"{n:,} {why}" for why, n in counts.most_common()
             if not why.startswith("malformed: ")]
    if malformed:
        detail = ", ".join(f"{why} {n:,}" for why, n in malformed.items())
        parts.append(f"{sum(malformed.values()):,} malformed ({detail})")
    return ", ".join(parts)


def json_records(table: PortTable, by: str = "conns", top: int | None = None
                 ) -> list[dict[str, Any]]:
    """The port rows, the scan summaries (``"type": "scan"``), then one ``"type": "summary"``
    object whose totals sit under ``total``, so that no selection over the port rows' fields
    (``jq 'select(.conns > 9)'``) meets them."""
    out = [{"type": "port", **rec} for rec in table.records(by, top)]
    out.extend({"type": "scan", **p.record()} for p in table.scans())
    out.append({"type": "summary", "ports": len(table), "total": table.total.record(),
                "not_counted": dict(table.not_counted.most_common())})
    return out


def write_json(table: PortTable, out: TextIO, by: str = "conns", top: int | None = None) -> None:
    for rec in json_records(table, by, top):
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")


CSV_FIELDS = ("proto", "port", "icmp_type", "icmp_code", "service", "class", "role", "conns",
              "server_conns", "client_conns", *OUTCOMES, "conn_states", "guessed", "pkts_c2s",
              "pkts_s2c", "bytes_c2s", "bytes_s2c", "ip_bytes_c2s", "ip_bytes_s2c", "clients",
              "servers",
              "rtt_count", "rtt_p50_ns", "rtt_p95_ns", "rtt_max_ns", "rtt_exact",
              "retransmissions", "tcp_pkts", "retransmission_rate", "first_ts_ns", "last_ts_ns",
              "ip_proto")
"""One row per port, nothing else: the totals are in `--json`'s summary object and the table."""


def csv_value(value: object) -> object:
    """CSV cells: empty for None, 'SF:3 REJ:1' for a count map, booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return value


def write_csv(table: PortTable, out: TextIO, by: str = "conns", top: int | None = None) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for rec in table.records(by, top):
        w.writerow([csv_value(rec.get(name)) for name in CSV_FIELDS])
