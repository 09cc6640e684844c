"""`portlens handshakes`: per server port (or, with --conns, per connection) as a table, JSON
lines or CSV. Tables round (10.3 ms, 1.2 k); JSON and CSV are exact (docs/formats.md)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from portlens.analysis.handshakes import HandshakeSummary, HandshakeTable, OptionMix, most_common
from portlens.analysis.sketch import Sketch
from portlens.decode.fields import endpoint_text
from portlens.report import human
from portlens.report.ports import csv_value, rtt_text
from portlens.report.tables import Column, Screen, TableWriter, left_out_text

COLUMNS = ("port", "service", "SYNs", "SYN-ACKs", "outcomes", "server rtt p50/p95/max",
           "client rtt p50/p95/max")
"""Per server port. SYNs shows retransmissions in parentheses: '14 (1 rexmit)'."""
OPTION_COLUMNS = ("port", "side", "offers", "fingerprints", "mss", "wscale", "sack", "ts")
CONN_COLUMNS = ("uid", "client", "server", "outcome", "rexmit", "rtt server/client",
                "client options", "server options")
OUTCOME_ORDER = ("completed", "refused", "unanswered", "half_open", "reset")


def _rtts(sk: Sketch) -> str:
    return rtt_text(sk)


def _top(c: Counter[Any], n: int = 3) -> str:
    total = sum(c.values())
    parts = [f"{k} {v}/{total}" if len(c) > 1 else str(k) for k, v in most_common(c)[:n]]
    return ", ".join(parts) + (f", +{len(c) - n} more" if len(c) > n else "")


def outcomes_text(rec: dict[str, Any]) -> str:
    parts = sorted(((rec[o], i, o) for i, o in enumerate(OUTCOME_ORDER)),
                   key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{human.count(n)} {o.replace('_', '-')}" for n, _, o in parts if n) or "-"


def row_cells(r: HandshakeSummary) -> tuple[str, ...]:
    rec = r.record()
    syns = human.count(r.syns) + (f" ({human.count(r.syn_retransmits)} rexmit)"
                                  if r.syn_retransmits else "")
    acks = human.count(r.syn_acks) + (f" ({human.count(r.syn_ack_retransmits)} rexmit)"
                                      if r.syn_ack_retransmits else "")
    return (f"{r.port}/tcp", r.service or "-", syns, acks, outcomes_text(rec),
            _rtts(r.server_rtt), _rtts(r.client_rtt))


def table_rows(table: HandshakeTable) -> list[tuple[str, ...]]:
    return [row_cells(r) for r in table.sorted()]


def option_cells(port: int, side: str, mix: OptionMix) -> tuple[str, ...]:
    fps = Counter({k or "(none)": v for k, v in mix.fingerprints.items()})
    return (f"{port}/tcp", side, human.count(mix.offers), _top(fps),
            _top(mix.mss) if mix.mss else "-", _top(mix.wscale) if mix.wscale else "-",
            f"{mix.sack_perm}/{mix.offers}", f"{mix.timestamps}/{mix.offers}")


def option_rows(table: HandshakeTable) -> list[tuple[str, ...]]:
    rows = []
    for r in table.sorted():
        for side, mix in (("client", r.client_options), ("server", r.server_options)):
            if mix.offers:
                rows.append(option_cells(r.port, side, mix))
    return rows


def _options_short(o: dict[str, Any] | None) -> str:
    if o is None:
        return "-"
    parts = [o["fingerprint"] or "(none)"]
    if o["mss"] is not None or o["wscale"] is not None:
        parts.append(f"{o['mss'] if o['mss'] is not None else '-'}/"
                     f"{o['wscale'] if o['wscale'] is not None else '-'}")
    return " ".join(parts)


def conn_cells(rec: dict[str, Any]) -> tuple[str, ...]:
    return (rec["uid"], endpoint_text(rec["orig_h"], rec["orig_p"]),
            endpoint_text(rec["resp_h"], rec["resp_p"]), rec["outcome"],
            str(rec["syn_retransmits"]),
            f"{human.duration(rec['server_rtt_ns'])}/{human.duration(rec['client_rtt_ns'])}",
            _options_short(rec["client_options"]),
            _options_short(rec["server_options"]))


HEADERS = {"server rtt p50/p95/max": "server rtt\np50/p95/max",
           "client rtt p50/p95/max": "client rtt\np50/p95/max"}
RIGHT = frozenset({"SYNs", "SYN-ACKs", "server rtt p50/p95/max", "client rtt p50/p95/max",
                   "offers", "sack", "ts", "rexmit", "rtt server/client"})
FOLD = frozenset({"outcomes", "fingerprints"})
DROP_ORDER = ("client rtt p50/p95/max", "service")
OPTION_DROP_ORDER = ("ts", "sack", "wscale", "mss")
CONN_DROP_ORDER = ("server options", "client options", "rtt server/client", "rexmit")
"""Columns left out first when a table does not fit the terminal (--wide keeps them; JSON/CSV
have every field); the others always stay."""


def columns(names: tuple[str, ...]) -> list[Column]:
    return [Column(n, HEADERS.get(n, ""), right=n in RIGHT, fold=n in FOLD) for n in names]


def print_rows(screen: Screen, names: tuple[str, ...], rows: list[tuple[str, ...]],
               drop_order: tuple[str, ...], title: str | None = None) -> list[str]:
    """One table; the names of the columns left out."""
    writer = TableWriter(screen, columns(names), title=title, drop_order=drop_order)
    for row in rows:
        writer.add(row)
    return writer.close()


def _note(screen: Screen, text: str, left_out: list[str]) -> None:
    if left_out:
        text += f" ({left_out_text(list(dict.fromkeys(left_out)), screen.width)})"
    screen.note(text)


def print_table(screen: Screen, table: HandshakeTable) -> None:
    left_out = print_rows(screen, COLUMNS, table_rows(table), DROP_ORDER,
                          "handshakes per server port")
    options = option_rows(table)
    if options:
        screen.out.write("\n")
    left_out += print_rows(screen, OPTION_COLUMNS, options, OPTION_DROP_ORDER,
                           "options offered (p0f-style order: mss,nop,ws,sok,ts; "
                           "mss/wscale: value n/offers)")
    _note(screen, f"{len(table)} server ports", left_out)


def print_conns(screen: Screen, records: Iterable[dict[str, Any]]) -> None:
    writer = TableWriter(screen, columns(CONN_COLUMNS), drop_order=CONN_DROP_ORDER)
    for rec in records:
        writer.add(conn_cells(rec))
    left_out = writer.close()
    _note(screen, f"{writer.rows} handshakes (options: fingerprint mss/wscale)", left_out)


def write_json(records: list[dict[str, Any]], out: TextIO) -> None:
    for rec in records:
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")


def flatten(rec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested option mixes as dotted CSV columns (client_options.mss ...)."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if isinstance(v, dict) and k.endswith("options"):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def write_csv(records: list[dict[str, Any]], out: TextIO) -> None:
    rows = [flatten(r) for r in records]
    if not rows:
        return
    names: list[str] = []
    for r in rows:
        names.extend(k for k in r if k not in names)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    for r in rows:
        w.writerow([csv_value(r.get(k)) for k in names])
