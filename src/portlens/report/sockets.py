"""`portlens sockets`: observed listening sockets and every connection's two sockets, in `ss`
vocabulary, as tables, JSON lines or CSV (fields in docs/formats.md)."""

from __future__ import annotations

import csv
import json
import json.encoder
from array import array
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any, TextIO

from portlens.analysis.sockets import (
    UID_LEN,
    ConnectionEnds,
    Listener,
    ListenerRows,
    Socket,
    SocketTable,
)
from portlens.decode.fields import endpoint_text, host_text
from portlens.report import human
from portlens.report.conns import json_line
from portlens.report.ports import csv_value
from portlens.report.tables import (
    CodedCells,
    Column,
    FixedCells,
    Screen,
    TableWriter,
    left_out_text,
)

LISTEN_COLUMNS = ("netid", "state", "local address:port", "conns", "peers", "peer addresses")
SOCKET_COLUMNS = ("netid", "state", "local address:port", "peer address:port", "uid")
PEERS_SHOWN = 5


def peer_text(addr: str, conns: int) -> str:
    return f"{addr} ({conns})" if conns > 1 else addr


def peers_text(listener: Listener, shown: int = PEERS_SHOWN) -> str:
    if len(listener.peers) == 1:  # most listeners of a big capture: no sort, no join
        return peer_text(*next(iter(listener.peers.items())))
    ranked = listener.ranked_peers()
    text = ", ".join(peer_text(addr, n) for addr, n in ranked[:shown])
    return text + (f", ... {len(ranked) - shown} more" if len(ranked) > shown else "")


def listener_cells(s: Listener) -> tuple[str, ...]:
    """One listener's row: the definition ``listener_columns`` follows for all at once
    (tests/test_columns.py holds them equal)."""
    return (s.proto, s.state, endpoint_text(s.addr, s.port), human.count(s.conns),
            human.count(len(s.peers)), peers_text(s))


def listener_columns(rows: ListenerRows, shown: int = PEERS_SHOWN) -> list[list[str]]:
    """``listener_cells`` of every listener, as the table's columns."""
    starts, addrs, conns = rows.peer_start, rows.peer_addr, rows.peer_conns
    peers = []
    for start, end in pairwise(starts):
        if end - start == 1:  # most listeners of a big capture
            peers.append(peer_text(addrs[start], conns[start]))
            continue
        top = min(end, start + shown)
        text = ", ".join(map(peer_text, addrs[start:top], conns[start:top]))
        peers.append(text + (f", ... {end - top} more" if end > top else ""))
    return [rows.proto, ["LISTEN" if p == "tcp" else "UNCONN" for p in rows.proto],
            list(map(endpoint_text, rows.addr, rows.port)), list(map(human.count, rows.conns)),
            [human.count(end - start) for start, end in pairwise(starts)],
            peers]


def state_cell(state: str) -> str:
    """A socket's state as the table shows it: '-' for UDP, which has none on the wire."""
    return state or "-"


def socket_cells(s: Socket) -> tuple[str, ...]:
    return (s.proto, state_cell(s.state), endpoint_text(s.local_addr, s.local_port),
            endpoint_text(s.peer_addr, s.peer_port), s.uid)


def int64s(values: array[int]) -> array[int]:
    """The numbers as an ``array`` of type code q (the core's blocks are already)."""
    return values if values.typecode == "q" else array("q", values)


def ends_columns(ends: ConnectionEnds) -> list[Sequence[str]]:
    """The sockets table's columns (``socket_cells``) of connections' two sockets each, the
    originator's line first, as codes into the block's texts: the core writes the lines, and
    no endpoint's text is made a row (tables.CodedCells), nor a NumPy array, nor a uid
    (tables.FixedCells)."""
    n = len(ends)

    def both(orig: array[int], resp: array[int]) -> array[int]:
        out = array("q", bytes(16 * n))
        out[0::2], out[1::2] = int64s(orig), int64s(resp)
        return out

    hosts = list(map(host_text, ends.addrs))
    index = array("q", range(n))  # each connection's uid, on both its lines
    local_h, local_p = both(ends.orig_h, ends.resp_h), both(ends.orig_p, ends.resp_p)
    peer_h, peer_p = both(ends.resp_h, ends.orig_h), both(ends.resp_p, ends.orig_p)
    return [CodedCells(["udp", "tcp"], both(ends.tcp, ends.tcp)),
            CodedCells(list(map(state_cell, ends.states)), both(ends.orig_state, ends.resp_state)),
            CodedCells(hosts, local_h, local_p), CodedCells(hosts, peer_h, peer_p),
            FixedCells(ends.uids, UID_LEN, both(index, index))]


LISTEN_RIGHT = frozenset({"conns", "peers"})
LISTEN_DROP_ORDER = ("peer addresses",)
SOCKET_DROP_ORDER = ("uid",)
"""Left out when the terminal is too narrow (--wide keeps them); the sockets themselves and
their states always stay."""


def print_tables(screen: Screen, table: SocketTable) -> None:
    listen = TableWriter(
        screen, [Column(n, right=n in LISTEN_RIGHT, fold=n == "peer addresses")
                 for n in LISTEN_COLUMNS],
        title="listening (answered a SYN or a datagram)", drop_order=LISTEN_DROP_ORDER)
    listeners = table.listener_rows()
    listen.add_columns(listener_columns(listeners))
    left_out = listen.close()
    count = table.socket_count()
    if count:
        if len(listeners):
            screen.out.write("\n")
        sockets = TableWriter(screen, [Column(n) for n in SOCKET_COLUMNS],
                              title="connections (state at the end of the capture)",
                              drop_order=SOCKET_DROP_ORDER)
        blocks = table.connection_ends()
        if blocks is None:
            sockets.add_rows(map(socket_cells, table.sockets))
        else:
            for ends in blocks:
                sockets.add_columns(ends_columns(ends))
        left_out += sockets.close()
    note = f"{len(listeners)} listening sockets, {count} connection sockets"
    if left_out:
        note += f" ({left_out_text(left_out, screen.width)})"
    screen.note(note)


def json_records(table: SocketTable) -> list[dict[str, Any]]:
    return ([{"type": "listen", **r} for r in table.records()]
            + [{"type": "socket", **r} for r in table.socket_records()])


def socket_json_lines(ends: ConnectionEnds) -> list[str]:
    """``json_line`` and a newline of each socket record of a block (``{"type": "socket",
    **record}``, two a connection, as ``ConnectionEnds.sockets`` orders them), made from its
    columns: each distinct text encoded once, as ``json.dumps`` encodes it, no dict a row."""
    text = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii)
    proto, orig_state, resp_state, orig_h, orig_p, resp_h, resp_p = ends.rows(
        (text("tcp"), text("udp")), list(map(text, ends.addrs)),
        [text(s) if s else "null" for s in ends.states])  # Socket.record: '' -> None
    out = []
    for p, uid, sa, sb, a, ap, b, bp in zip(proto, map(text, ends.uid), orig_state,
                                             resp_state, orig_h, orig_p, resp_h, resp_p,
                                             strict=True):
        head = f'{{"type":"socket","proto":{p},"state":'
        out.append(f'{head}{sa},"local_addr":{a},"local_port":{ap},"peer_addr":{b},'
                   f'"peer_port":{bp},"uid":{uid},"side":"orig"}}\n')
        out.append(f'{head}{sb},"local_addr":{b},"local_port":{bp},"peer_addr":{a},'
                   f'"peer_port":{ap},"uid":{uid},"side":"resp"}}\n')
    return out


def write_json(table: SocketTable, out: TextIO) -> None:
    for rec in table.records():
        out.write(json_line({"type": "listen", **rec}) + "\n")
    blocks = table.connection_ends()
    if blocks is None:
        for s in table.sockets:
            out.write(json_line({"type": "socket", **s.record()}) + "\n")
        return
    for ends in blocks:
        out.write("".join(socket_json_lines(ends)))


CSV_FIELDS = ("type", "proto", "state", "local_addr", "local_port", "peer_addr", "peer_port",
              "uid", "side", "conns", "peers", "peer_addrs", "first_ts_ns", "last_ts_ns")


def csv_row(rec: dict[str, Any]) -> list[object]:
    peers = rec.get("peer_addrs")
    if peers is not None:
        rec = {**rec, "peer_addrs": json_line(peers)}
    return [csv_value(rec.get(name)) for name in CSV_FIELDS]


def socket_csv_rows(ends: ConnectionEnds) -> Iterator[tuple[object, ...]]:
    """``csv_row`` of each socket record of a block, made from its columns."""
    proto, orig_state, resp_state, orig_h, orig_p, resp_h, resp_p = ends.rows()
    none = ("",) * (len(CSV_FIELDS) - CSV_FIELDS.index("conns"))  # a listener's fields
    for p, uid, sa, sb, a, ap, b, bp in zip(proto, ends.uid, orig_state, resp_state, orig_h,
                                             orig_p, resp_h, resp_p, strict=True):
        yield ("socket", p, sa, a, ap, b, bp, uid, "orig", *none)
        yield ("socket", p, sb, b, bp, a, ap, uid, "resp", *none)


def write_csv(table: SocketTable, out: TextIO) -> None:
    """One CSV for both kinds of row; ``type`` tells them apart (listen / socket).
    ``peer_addrs`` is a JSON object (address -> connections), since an IPv6 address holds the
    colons an ``addr:count`` list would need."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for rec in table.records():
        w.writerow(csv_row({"type": "listen", **rec}))
    blocks = table.connection_ends()
    if blocks is None:
        w.writerows(csv_row({"type": "socket", **s.record()}) for s in table.sockets)
        return
    for ends in blocks:
        w.writerows(socket_csv_rows(ends))
