"""Connections for people and programs: a rich table, JSON lines, CSV, and the transition
stream (`portlens events`); Zeek's conn.log TSV is report/zeek.py's."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache, partial
from typing import Any, TextIO

from portlens.analysis.icmp import conn_message, message_text
from portlens.decode.fields import endpoint_text, host_text
from portlens.report import human
from portlens.report.clock import STAMPED, Clock
from portlens.report.packets import flags_text
from portlens.report.tables import (
    CodedCells,
    Column,
    DurationCells,
    PairCells,
    Screen,
    StampCells,
    TableWriter,
    left_out_text,
)
from portlens.report.zeek import ZEEK_FIELDS, ZEEK_LINES_AT_ONCE, has_duration, ip_proto, zeek_row
from portlens.services import proto_name
from portlens.track.model import UNKNOWN_TRANSPORT, Connection, TcpOptions, Transition
from portlens.track.states import SS_NAMES


def _options(o: TcpOptions | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"mss": o.mss, "wscale": o.wscale, "sack_perm": o.sack_perm,
            "timestamps": o.timestamps, "kinds": list(o.kinds)}


def transition_record(t: Transition) -> dict[str, Any]:
    out: dict[str, Any] = {"ts_ns": t.ts_ns, "frame": t.frame, "uid": t.uid}
    if t.conn_id is not None:  # streamed (`events`): the 5-tuple, Zeek's names
        out.update(zip(("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"), t.conn_id,
                       strict=True))
        out["proto"] = "tcp"
    out.update({"endpoint": str(t.endpoint), "event": str(t.event), "from": str(t.old),
                "to": str(t.new), "flags": t.segment.flags,
                "flags_text": flags_text(t.segment.flags), "seq": t.segment.seq,
                "ack": t.segment.ack, "payload": t.segment.payload})
    return out


def record(c: Connection) -> dict[str, Any]:
    """One connection as a JSON object (fields in docs/formats.md)."""
    d = has_duration(c)
    out: dict[str, Any] = {
        "ts": c.ts_ns // 1000 / 1e6, "ts_ns": c.ts_ns, "uid": c.uid,
        "id.orig_h": c.orig_h, "id.orig_p": c.orig_p, "id.resp_h": c.resp_h,
        "id.resp_p": c.resp_p, "proto": c.proto, "ip_proto": ip_proto(c), "service": None,
        "port_service": c.service or None,
        "duration": (c.duration_ns // 1000) / 1e6 if d else None, "duration_ns": c.duration_ns,
        "orig_bytes": c.orig_bytes if d else None, "resp_bytes": c.resp_bytes if d else None,
        "conn_state": c.conn_state, "missed_bytes": c.missed_bytes, "history": c.history,
        "orig_pkts": c.orig_pkts, "orig_ip_bytes": c.orig_ip_bytes, "resp_pkts": c.resp_pkts,
        "resp_ip_bytes": c.resp_ip_bytes, "tunnel_parents": c.tunnel_parents,
        "community_id": c.community_id, "ip_version": c.ip_version, "vlan": c.vlan,
        "orig_state": str(c.orig_state) if c.orig_state else None,
        "resp_state": str(c.resp_state) if c.resp_state else None,
        "end_reason": str(c.end_reason), "completeness": c.completeness,
        "first_frame": c.first_frame, "last_frame": c.last_frame,
        "icmp_errors": [list(e) for e in c.icmp_errors],
        "icmp_type": c.orig_p if c.proto == "icmp" else None,
        "icmp_code": c.icmp_code if c.proto == "icmp" else None,
    }
    if c.handshake is not None:
        hs = c.handshake
        out["handshake"] = {
            "outcome": str(hs.outcome), "syn_ns": hs.syn_ns, "syn_ack_ns": hs.syn_ack_ns,
            "ack_ns": hs.ack_ns, "syn_retransmits": hs.syn_retransmits,
            "syn_ack_retransmits": hs.syn_ack_retransmits, "server_rtt_ns": hs.server_rtt_ns,
            "client_rtt_ns": hs.client_rtt_ns, "client_options": _options(hs.client_options),
            "server_options": _options(hs.server_options)}
    if c.analysis is not None:
        out["analysis"] = {name: getattr(c.analysis, name)
                           for name in c.analysis.__dataclass_fields__}
    out["transitions"] = [transition_record(t) for t in c.transitions]
    return out


CSV_FIELDS = (*ZEEK_FIELDS, "ts_ns", "duration_ns", "orig_state", "resp_state", "end_reason",
              "handshake_outcome", "server_rtt_ns", "client_rtt_ns", "retransmissions",
              "completeness", "port_service")


JSON_LINES_AT_ONCE = 2048
"""Rows formatted into one string (with their transitions, a few kB a row)."""

def port_services(cols: dict[str, Any]) -> list[str]:
    """Each row's ``Connection.service`` for a block of the tracker's columns, as
    ``track.objects.connections`` gives it."""
    from portlens.track.objects import port_services as services

    return services(cols["proto"], cols["id.resp_p"].tolist())


def json_lines(cols: dict[str, Any], start: int = 0, stop: int | None = None,
               services: list[str] | None = None) -> str:
    """``json_line(record(c))`` of the connections ``start:stop`` of a block of the Rust
    tracker's columns holding their transitions (``transitions.*``: RustTracker with
    transitions kept), each with its newline, without making the Connections: the same text
    (tests/test_conn_json.py compares them on every capture), written by the core
    (crates/core/src/conn_json.rs), where the objects, dicts and ``json.dumps`` were nine
    tenths of `conns --json`. ``services``: ``port_services(cols)``, if already known."""
    import portlens._core as core

    return str(core.conn_json_lines(cols, port_services(cols) if services is None
                                    else services, start, stop))


def write_json_columns(cols: dict[str, Any], out: TextIO) -> None:
    """The JSON lines of every connection of a block of the tracker's columns."""
    services = port_services(cols)
    for start in range(0, len(services), JSON_LINES_AT_ONCE):
        out.write(json_lines(cols, start, start + JSON_LINES_AT_ONCE, services))


def csv_row(c: Connection) -> list[object]:
    hs = c.handshake
    row: list[object] = [*zeek_row(c)]
    row = [("" if v == "-" else v) for v in row]
    row += [c.ts_ns, c.duration_ns, c.orig_state or "", c.resp_state or "", c.end_reason,
            hs.outcome if hs else "", (hs.server_rtt_ns if hs else None) or "",
            (hs.client_rtt_ns if hs else None) or "",
            c.analysis.retransmissions if c.analysis else "", c.completeness, c.service]
    return row


def write_csv(conns: Iterable[Connection], out: TextIO, *, header: bool = True) -> None:
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(CSV_FIELDS)
    for c in conns:
        w.writerow(csv_row(c))


@lru_cache(maxsize=1)
def csv_quotes_cr() -> bool:
    """Whether this Python's csv.writer quotes a field holding a carriage return (with
    ``lineterminator="\n"``, 3.11 does not, later versions do): the core writes as it does."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(["\r"])
    return text.getvalue().startswith('"')


def csv_lines(cols: dict[str, Any], start: int = 0, stop: int | None = None,
              services: list[str] | None = None) -> str:
    """``write_csv`` of the connections ``start:stop`` of a block of the Rust tracker's
    columns, without the header and without making the Connections: the same text
    (tests/test_conn_json.py), written by the core (crates/core/src/conn_csv.rs).
    ``services``: ``port_services(cols)``, if already known."""
    import portlens._core as core

    return str(core.conn_csv_lines(cols, port_services(cols) if services is None
                                   else services, start, stop, quote_cr=csv_quotes_cr()))


def write_csv_columns(cols: dict[str, Any], out: TextIO) -> None:
    """The CSV rows of every connection of a block of the tracker's columns."""
    services = port_services(cols)
    for start in range(0, len(services), ZEEK_LINES_AT_ONCE):  # CSV rows are conn.log's size
        out.write(csv_lines(cols, start, start + ZEEK_LINES_AT_ONCE, services))


def ends_text(c: Connection) -> tuple[str, str]:
    """The originator's and responder's cells: address:port, or for ICMP (which has no
    ports) the addresses, the responder's with the message: '10.0.0.2 (echo-request 8/0)';
    an IP protocol without ports likewise with its name: '224.0.0.5 (ospf)'."""
    if c.proto == "icmp":
        return c.orig_h, f"{c.resp_h} ({conn_message(c)})"
    if c.proto == UNKNOWN_TRANSPORT:
        return c.orig_h, f"{c.resp_h} ({proto_name(ip_proto(c))})"
    return endpoint_text(c.orig_h, c.orig_p), endpoint_text(c.resp_h, c.resp_p)


def _end_text(c: Connection) -> str:
    return _end_cell(str(c.end_reason), c.icmp_errors, v6=c.ip_version == 6)


def _end_cell(reason: str, errors: Iterable[tuple[int, int]], *, v6: bool) -> str:
    """The end column: why the connection ended, and each kind of ICMP error that quoted
    it: 'end-of-capture (icmp dest-unreachable 3/3)'."""
    kinds = ", ".join(f"icmp {message_text(t, code, v6=v6)}" for t, code in dict.fromkeys(errors))
    return f"{reason} ({kinds})" if kinds else reason


TABLE_COLUMNS = (Column("start"), Column("proto"), Column("originator"), Column("responder"),
                 Column("state"), Column("history"), Column("duration", right=True),
                 Column("pkts o/r", right=True), Column("bytes o/r", right=True),
                 Column("service"), Column("end"), Column("TCP states o/r"), Column("uid"))
"""The table's columns; rows come in the order connections end, as in --json and Zeek's
conn.log, so that the table streams (`start` says when each began)."""
DROP_ORDER = ("TCP states o/r", "end", "service", "start", "bytes o/r", "pkts o/r", "duration",
              "history", "uid")
"""Left out first on a narrow terminal (--wide brings them back). The uid goes last: at 80
columns it stays beside the addresses, since `ladder --conn UID` sends users here for it. The
proto, the addresses and the state are never left out."""


def table_columns(clock: Clock) -> tuple[Column, ...]:
    """The table's columns: no start column with -t (no times)."""
    return tuple(c for c in TABLE_COLUMNS if c.name != "start" or clock.style != "none")


def table_cells(c: Connection, columns: tuple[Column, ...] = TABLE_COLUMNS,
                clock: Clock | None = None) -> tuple[str, ...]:
    """One connection's row of the table; ``start`` is the first packet's time as ``clock``
    says (tcpdump's styles; UTC time of day without one)."""
    states = (f"{SS_NAMES[c.orig_state]}/{SS_NAMES[c.resp_state]}"
              if c.orig_state and c.resp_state else "-")
    orig, resp = ends_text(c)
    cells = (c.proto, orig, resp, c.conn_state, c.history or "-", human.duration(c.duration_ns),
             f"{c.orig_pkts}/{c.resp_pkts}",
             f"{human.size(c.orig_bytes)}/{human.size(c.resp_bytes)}", c.service or "-",
             _end_text(c), states, c.uid)
    if columns[0].name != "start":
        return cells
    return ((clock or Clock(utc=True)).text(c.ts_ns), *cells)


TABLE_SOURCE_COLUMNS = frozenset({
    "uid", "ts_ns", "proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "ip_version",
    "ip_proto", "icmp_code", "conn_state", "history", "duration_ns", "orig_pkts", "resp_pkts",
    "orig_bytes", "resp_bytes", "end_reason", "icmp_errors", "orig_state", "resp_state"})
"""The columns ``table_columns_of`` reads: all the table asks the tracker for."""


def table_columns_of(cols: dict[str, Any], columns: tuple[Column, ...] = TABLE_COLUMNS,
                     clock: Clock | None = None) -> list[Sequence[str]]:
    """``table_cells`` of every connection of a block of the tracker's columns, as columns
    (``TableWriter.add_columns``), without making the Connections: the same text
    (tests/test_columns.py compares them on every capture). The default output of `conns`
    made a Connection a row for this, which took longer than all the tracking; then a
    Python string a cell, half as long. Now the columns of numbers (times, durations,
    counts, sizes) and of repeated texts (endpoints, services, TCP states) go to the core as
    numbers and codes (tables.CoreCells), which writes their text."""
    import numpy as np

    from portlens.analysis.columns import addresses
    from portlens.track.objects import _STATES
    from portlens.track.rust import NO_CODE

    proto: list[str] = cols["proto"]
    n = len(proto)
    texts, (orig_codes, resp_codes) = addresses(cols["id.orig_h"], cols["id.resp_h"])
    hosts = list(map(host_text, texts))
    orig_p = cols["id.orig_p"].astype(np.int64)
    resp_p = cols["id.resp_p"].astype(np.int64)
    ends = [orig_codes.astype(np.int64), orig_p.copy(), resp_codes.astype(np.int64),
            resp_p.copy()]
    # what ends_text and port_services go by: the protocol's name
    port_kind = np.fromiter((_PORTED.get(p, -1) for p in proto), np.int64, n)
    unported = np.flatnonzero(port_kind < 0).tolist()
    if unported:  # as ends_text: the address alone, the responder's with what it said
        version = cols["ip_version"]
        extra: dict[str, int] = {}
        for i in unported:
            if proto[i] == "icmp":
                code = int(cols["icmp_code"][i])
                what = message_text(int(orig_p[i]), None if code == NO_CODE else code,
                                    v6=version[i] == 6)
            else:
                what = proto_name(int(cols["ip_proto"][i]))
            for codes, text in ((ends[0], texts[ends[0][i]]),
                                (ends[2], f"{texts[ends[2][i]]} ({what})")):
                codes[i] = extra.setdefault(text, len(hosts) + len(extra))
            ends[1][i] = ends[3][i] = -1
        hosts.extend(extra)
    orig, resp = CodedCells(hosts, ends[0], ends[1]), CodedCells(hosts, ends[2], ends[3])
    by_name: dict[str, Sequence[str]] = {
        "proto": proto, "originator": orig, "responder": resp, "state": cols["conn_state"],
        "history": [h or "-" for h in cols["history"]],
        "duration": DurationCells(cols["duration_ns"]),
        "pkts o/r": PairCells(cols["orig_pkts"].astype(np.int64),
                              cols["resp_pkts"].astype(np.int64)),
        "bytes o/r": PairCells(cols["orig_bytes"].astype(np.int64),
                               cols["resp_bytes"].astype(np.int64), size=True),
        "service": _service_cells(port_kind, resp_p),
        "end": _end_cells(cols),
        "TCP states o/r": _state_cells(cols["orig_state"], cols["resp_state"], _STATES, n),
        "uid": cols["uid"]}
    if columns[0].name == "start":
        clock = clock or Clock(utc=True)
        ts = cols["ts_ns"]
        by_name["start"] = (StampCells(clock, ts) if clock.style in STAMPED
                            else list(map(clock.text, ts.tolist())))
    return [by_name[c.name] for c in columns]


def _service_cells(port_kind: Any, resp_p: Any) -> CodedCells:
    """Each row's service: the name of its responder's TCP or UDP port (``port_kind`` 0 or
    1, -1 for other protocols: '-'), looked up once a distinct (protocol, port)."""
    import numpy as np

    from portlens.track.objects import _service

    key = np.where(port_kind >= 0, port_kind * 65536 + resp_p, -1)
    distinct, codes = np.unique(key, return_inverse=True)
    names = [(_service(_PORT_KINDS[k >> 16], k & 0xFFFF) if k >= 0 else "") or "-"
             for k in distinct.tolist()]
    return CodedCells(names, codes.astype(np.int64).reshape(-1))


def _end_cells(cols: dict[str, Any]) -> list[str]:
    """Each row's end: its reason, with the ICMP errors that quoted it."""
    from portlens.track.objects import _END_REASONS

    names = {value: str(reason) for value, reason in _END_REASONS.items()}
    end = [names[r] for r in cols["end_reason"]]
    version = cols["ip_version"]
    for i, errors in enumerate(cols["icmp_errors"]):
        if errors:
            end[i] = _end_cell(end[i], errors, v6=version[i] == 6)
    return end


def _state_cells(orig_state: list[str | None], resp_state: list[str | None],
                 states: dict[str, Any], n: int) -> CodedCells:
    """Each row's TCP states as `ss` names them, 'ESTAB/ESTAB'; '-' for other protocols (no
    state): one text a distinct pair."""
    import numpy as np

    pairs: dict[tuple[str | None, str | None], int] = {}
    codes = np.fromiter((pairs.setdefault(pair, len(pairs))
                         for pair in zip(orig_state, resp_state, strict=True)), np.int64, n)
    texts = [f"{SS_NAMES[states[o]]}/{SS_NAMES[states[r]]}" if o and r else "-"
             for o, r in pairs]
    return CodedCells(texts, codes)


_PORT_KINDS = ("tcp", "udp")
_PORTED = {name: k for k, name in enumerate(_PORT_KINDS)}
"""The protocols whose connections have ports, numbered for ``_service_cells``."""


def table_rows(conns: Iterable[Connection], columns: tuple[Column, ...] = TABLE_COLUMNS,
               clock: Clock | None = None) -> list[tuple[str, ...]]:
    clock = clock or Clock(utc=True)
    return [table_cells(c, columns, clock) for c in conns]


class ConnsTable:
    """The connections table, written row by row as connections end."""

    def __init__(self, screen: Screen, clock: Clock) -> None:
        self.columns = table_columns(clock)
        self.writer = TableWriter(screen, self.columns, drop_order=DROP_ORDER)
        self.screen = screen
        self.clock = clock
        self.first_ns: int | None = None

    def add(self, c: Connection) -> None:
        if self.first_ns is None:
            self.first_ns = c.ts_ns
        self.writer.add(table_cells(c, self.columns, self.clock))

    def add_columns(self, cols: dict[str, Any]) -> None:
        """``add`` of every connection of a block of the tracker's columns."""
        if not len(cols["uid"]):
            return
        if self.first_ns is None:
            self.first_ns = int(cols["ts_ns"][0])
        self.writer.add_columns(table_columns_of(cols, self.columns, self.clock))

    def close(self) -> None:
        """Write what is pending, then the count (and the start column's time zone)."""
        left_out = self.writer.close()
        n = self.writer.rows
        if not n or self.first_ns is None:
            return
        text = f"{n} connection{'' if n == 1 else 's'}"
        zone = self.clock.zone_label(self.first_ns)
        if zone and "start" not in left_out:
            text += f"; start {zone}"
        if left_out:
            text += f" ({left_out_text(left_out, self.screen.width)})"
        self.screen.note(text)


_EVENT_TUPLE = "tcp src={} dst={} sport={} dport={}"
"""A streamed transition's connection, conntrack -E style: the original direction's tuple."""
_EVENT_MOVE = "{} {}: {} -> {} [flags 0x{:03x} seq {} ack {} len {}] frame {}"
"""Which endpoint moved from which state to which, and the segment that made it."""


def event_line(t: Transition, clock: Clock | None = None) -> str:
    """One transition, conntrack -E style: the original direction's tuple as src= dst=
    sport= dport=, then which endpoint moved from which state to which, and why."""
    when = (clock or Clock(utc=True)).text(t.ts_ns)
    parts = [when] if when else []
    parts.append(t.uid)
    if t.conn_id is not None:
        orig_h, orig_p, resp_h, resp_p = t.conn_id
        parts.append(_EVENT_TUPLE.format(orig_h, resp_h, orig_p, resp_p))
    s = t.segment
    parts.append(_EVENT_MOVE.format(t.endpoint, t.event, t.old, t.new, s.flags, s.seq, s.ack,
                                    s.payload, t.frame))
    return " ".join(parts)


def event_lines(t: dict[str, Any], clock: Clock | None = None) -> str:
    """``event_line`` and a newline of every transition of a batch of the compiled tracker's
    columns (``TransitionStream.columns``), without making the Transitions: the same text
    (tests/test_columns.py compares them on every capture), written by the core
    (crates/core/src/event_text.rs), where a format call and a clock text a line took twice
    as long as the tracking."""
    import numpy as np

    import portlens._core as core

    return (clock or Clock(utc=True)).core_lines(
        lambda: np.unique(t["ts_ns"] // 10**9), partial(core.event_lines, t))


def event_json_lines(t: dict[str, Any]) -> str:
    """``json_line(transition_record(t))`` and a newline of every transition of a batch of the
    compiled tracker's columns: the same text (tests/test_columns.py), written by the core."""
    import portlens._core as core

    text: str = core.event_records(t)
    return text


def json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))

