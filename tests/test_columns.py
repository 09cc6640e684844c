"""The aggregates folded from the Rust tracker's columns (analysis/columns.py, what `ports`,
`handshakes` and `sockets` run) and conn.log written from them (`conns --format zeek`)
against the same made the reference way: the Python decoder and tracker (``reference=True``),
then ``PortTable.add``, ``HandshakeTable.add``, ``SocketTable.add`` and ``zeek_row`` on each
Connection. Every field of every row (counters, the sets of hosts, the RTT sketches with their
exact values, option mixes, scan probes, listeners and their peers, the list of connection
sockets in order, every conn.log line) must be equal, on every bundled capture and every
capture of the public corpus; the bundled ones also in blocks of a few rows, so that rows fold
into summaries that earlier blocks made (and sketches go from exact to buckets across blocks).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.analysis import sockets as sockets_module
from portlens.analysis.columns import HANDSHAKE_COLUMNS, PORT_COLUMNS, SOCKET_COLUMNS
from portlens.analysis.handshakes import HandshakeTable
from portlens.analysis.ports import OUTCOMES, SCAN_MIN_PORTS, FoldHosts, PortTable
from portlens.analysis.sketch import EXACT_MAX, Sketch
from portlens.analysis.sockets import SocketTable
from portlens.pipeline import run
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.report.clock import Clock
from portlens.report.conns import (
    TABLE_SOURCE_COLUMNS,
    event_json_lines,
    event_line,
    event_lines,
    json_line,
    table_cells,
    table_columns,
    table_columns_of,
    transition_record,
)
from portlens.report.sockets import (
    csv_row,
    ends_columns,
    listener_cells,
    listener_columns,
    socket_cells,
    socket_csv_rows,
    socket_json_lines,
)
from portlens.report.tables import Column
from portlens.report.zeek import zeek_lines, zeek_row
from portlens.track.model import (
    UNKNOWN_TRANSPORT,
    Connection,
    Handshake,
    TcpAnalysis,
    Transition,
    TransitionStream,
)
from portlens.track.rust import NO_CODE, NONE64
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES

pytest.importorskip("portlens._core", reason="the Rust core is not built")

EXAMPLES = 4


@dataclasses.dataclass
class Tables:
    ports: PortTable
    all_ports: PortTable
    handshakes: HandshakeTable
    handshakes_80: HandshakeTable
    sockets: SocketTable
    listeners: SocketTable
    not_counted: Any = None
    zeek: list[str] = dataclasses.field(default_factory=list)
    """conn.log lines (`conns --format zeek`)."""
    table: list[tuple[str, ...]] = dataclasses.field(default_factory=list)
    """The cells of `conns`' table, with every time style (``TABLE_CLOCKS``)."""
    events: list[str] = dataclasses.field(default_factory=list)
    """`events`' lines with every time style, then its JSON lines."""


TABLE_CLOCKS = ("time", "date", "epoch", "delta", "since", "none")
"""`conns -t`'s styles (report/clock.py STYLES): the table's start column in each."""


def _table_clocks() -> list[tuple[tuple[Column, ...], Clock]]:
    return [(table_columns(clock), clock) for clock in (Clock(style, utc=True)
                                                       for style in TABLE_CLOCKS)]


def reference_tables(path: Path) -> Tables:
    t = Tables(PortTable(), PortTable(all_ports=True), HandshakeTable(), HandshakeTable(),
               SocketTable(), SocketTable())

    clocks = _table_clocks()

    def sink(c: Connection) -> None:
        t.table.extend(table_cells(c, columns, clock) for columns, clock in clocks)
        t.ports.add(c)
        t.all_ports.add(c)
        t.handshakes.add(c)
        if c.resp_p == 80:
            t.handshakes_80.add(c)
        t.sockets.add(c)
        t.listeners.add(c)
        t.zeek.append("\t".join(zeek_row(c)) + "\n")

    event_clocks = [Clock(style, utc=True) for style in TABLE_CLOCKS]

    def on_transition(e: Transition) -> None:
        t.events.extend(event_line(e, clock) + "\n" for clock in event_clocks)
        t.events.append(json_line(transition_record(e)) + "\n")

    pipeline = Pipeline(Source.of(path), Options(reference=True))
    pipeline.track(sink, on_transition)
    t.listeners.sockets = []
    t.not_counted = pipeline.not_counted
    return t


def assert_core_writes_the_cells(cells: list[Any]) -> None:
    """The lines the core writes from the columns as ``table_columns_of`` gives them (codes,
    durations, counts, sizes and times as numbers) are those of their cells' Python text."""
    import portlens._core as core

    from portlens.report.tables import SEP, _core_column

    widths, right = [12] * len(cells), [k % 2 == 1 for k in range(len(cells))]
    fast = core.table_lines([_core_column(c) for c in cells], widths, right, SEP)
    slow = core.table_lines([list(c) for c in cells], widths, right, SEP)
    assert fast == slow
    assert fast is not None or any(not s.isascii() for c in cells for s in c if "µ" not in s)


def only(cols: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    return {name: cols[name] for name in names}


def column_tables(path: Path) -> Tables:
    t = Tables(PortTable(), PortTable(all_ports=True), HandshakeTable(), HandshakeTable(),
               SocketTable(), SocketTable())
    blocks = []
    clocks = _table_clocks()

    def columns(cols: dict[str, Any]) -> None:
        blocks.append(len(cols["uid"]))
        # Each fold given only the columns it says it reads (what `ports`, `handshakes` and
        # `sockets` join blocks of): one it reads and did not list is a KeyError here.
        ports, sockets = only(cols, PORT_COLUMNS), only(cols, SOCKET_COLUMNS)
        handshakes = only(cols, HANDSHAKE_COLUMNS)
        t.ports.add_columns(ports)
        t.all_ports.add_columns(ports)
        t.handshakes.add_columns(handshakes)
        t.handshakes_80.add_columns(handshakes, frozenset({80}))
        t.sockets.add_columns(sockets)
        t.listeners.add_columns(sockets, sockets=False)
        t.zeek.append(zeek_lines(cols))
        made = [table_columns_of(only(cols, TABLE_SOURCE_COLUMNS), columns, clock)
                for columns, clock in clocks]
        tables = [list(zip(*cells, strict=True)) for cells in made]
        t.table.extend(row for rows in zip(*tables, strict=True) for row in rows)
        for cells in made:
            assert_core_writes_the_cells(cells)

    def sink(c: Connection) -> None:
        raise AssertionError("the Rust tracker in one process hands over columns")

    event_clocks = [Clock(style, utc=True) for style in TABLE_CLOCKS]

    class Events(TransitionStream):
        def __call__(self, e: Transition) -> None:
            raise AssertionError("the Rust tracker hands transitions over as columns")

        def columns(self, cols: dict[str, Any]) -> None:
            texts = [event_lines(cols, clock).splitlines(keepends=True)
                     for clock in event_clocks]
            texts.append(event_json_lines(cols).splitlines(keepends=True))
            t.events.extend(line for lines in zip(*texts, strict=True) for line in lines)

    pipeline = Pipeline(Source.of(path), Options())
    pipeline.track(sink, Events(), on_columns=columns)
    assert all(n > 0 for n in blocks)
    t.not_counted = pipeline.not_counted
    return t


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def differences(ref: Tables, fast: Tables) -> list[str]:
    """'table key field: reference != columns' for every differing field."""
    out: list[str] = []

    def rows(name: str, a: dict[Any, Any], b: dict[Any, Any]) -> None:
        for key in sorted(a.keys() | b.keys(), key=repr):
            x, y = a.get(key), b.get(key)
            if x is None or y is None:
                out.append(f"{name} {key}: only in {'columns' if x is None else 'reference'}")
                continue
            for f, value in _fields(x).items():
                if value != getattr(y, f):
                    out.append(f"{name} {key} {f}: {value!r} != {getattr(y, f)!r}")

    for name in ("ports", "all_ports"):
        a, b = getattr(ref, name), getattr(fast, name)
        rows(name, a.rows, b.rows)
        rows(f"{name} total", {"all": a.total}, {"all": b.total})
        rows(f"{name} probes", a.probes, b.probes)
    for name in ("handshakes", "handshakes_80"):
        rows(name, getattr(ref, name).rows, getattr(fast, name).rows)
    for name in ("sockets", "listeners"):
        a, b = getattr(ref, name), getattr(fast, name)
        rows(f"{name} listeners", a.listeners, b.listeners)
        if a.sockets != b.sockets:
            pairs = enumerate(zip(a.sockets, b.sockets, strict=False))
            diff = [f"{i}: {x} != {y}" for i, (x, y) in pairs if x != y]
            out.append(f"{name} sockets: {len(a.sockets)} vs {len(b.sockets)}; "
                       + "; ".join(diff[:EXAMPLES]))
    ref_zeek, fast_zeek = "".join(ref.zeek).splitlines(), "".join(fast.zeek).splitlines()
    if ref_zeek != fast_zeek:
        diff = [f"{x!r} != {y!r}" for x, y in zip(ref_zeek, fast_zeek, strict=False) if x != y]
        out.append(f"conn.log: {len(ref_zeek)} vs {len(fast_zeek)} lines; "
                   + "; ".join(diff[:EXAMPLES]))
    if ref.table != fast.table:
        diff = [f"{x!r} != {y!r}" for x, y in zip(ref.table, fast.table, strict=False) if x != y]
        out.append(f"conns table: {len(ref.table)} vs {len(fast.table)} rows; "
                   + "; ".join(diff[:EXAMPLES]))
    if ref.events != fast.events:
        diff = [f"{x!r} != {y!r}" for x, y in zip(ref.events, fast.events, strict=False)
                if x != y]
        out.append(f"events: {len(ref.events)} vs {len(fast.events)} lines; "
                   + "; ".join(diff[:EXAMPLES]))
    if ref.not_counted != fast.not_counted:
        out.append(f"not_counted: {ref.not_counted} != {fast.not_counted}")
    return out


def scan_records(table: PortTable) -> list[dict[str, Any]]:
    return [p.record() for p in table.scans()]


def check(path: Path) -> Tables:
    ref, fast = reference_tables(path), column_tables(path)
    # Before ``differences`` reads ``probes`` and ``sockets``, which make every pair's Probe and
    # every Socket: the columns' scans() makes only the scans' (the core's fold), and is what
    # `ports` runs.
    for name in ("ports", "all_ports"):
        assert scan_records(getattr(fast, name)) == scan_records(getattr(ref, name)), name
    # Likewise the sockets table's lines, written from the columns (no Socket made).
    blocks = fast.sockets.connection_ends()
    assert blocks is not None
    assert [row for ends in blocks for row in zip(*ends_columns(ends), strict=True)] == list(
        map(socket_cells, ref.sockets.sockets))
    assert fast.sockets.socket_count() == len(ref.sockets.sockets)
    # And their JSON lines and CSV rows, from the columns (no Socket, no record dict made).
    records = [{"type": "socket", **s.record()} for s in ref.sockets.sockets]
    assert [line for ends in blocks for line in socket_json_lines(ends)] == [
        json_line(r) + "\n" for r in records]
    assert [list(row) for ends in blocks for row in socket_csv_rows(ends)] == list(
        map(csv_row, records))
    # And the listeners' table, from the columns' folded rows (no Listener made): before
    # ``differences`` asks for the Listeners, which then become the table's.
    for name in ("sockets", "listeners"):
        table = getattr(fast, name)
        assert table.listener_count() == len(getattr(ref, name).listeners)
        assert list(zip(*listener_columns(table.listener_rows()), strict=True)) == list(
            map(listener_cells, getattr(ref, name).sorted_listeners())), name
    diff = differences(ref, fast)
    assert not diff, f"{path.name}: {len(diff)} differences\n" + "\n".join(diff[:40])
    return ref


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_columns_equal_reference_on_bundled_captures(path: Path) -> None:
    check(path)


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_columns_equal_reference_in_small_blocks(path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "COLUMN_BLOCK", 3)
    monkeypatch.setattr(sockets_module, "FOLD_ROWS", 2)  # listeners folded every few blocks
    check(path)


@pytest.mark.parametrize("path", corpus_params())
def test_columns_equal_reference_on_public_captures(path: Path) -> None:
    check(path)


def test_the_comparison_sees_every_table() -> None:
    """The captures compared hold what each table counts, so equal tables say something:
    ports of every kind, handshakes with options on both sides, listeners, scans, sketches
    past their exact values."""
    seen = {"kinds": set(), "options": 0, "listeners": 0, "scans": 0, "bucketed": 0,
            "sockets": 0}
    for path in OWN_CAPTURES:
        t = reference_tables(path)
        seen["kinds"] |= {r.proto for r in t.all_ports.rows.values()}
        seen["options"] += sum(r.client_options.offers and r.server_options.offers
                               for r in t.handshakes.rows.values())
        seen["listeners"] += len(t.sockets.listeners)
        seen["scans"] += len(t.ports.scans())
        seen["sockets"] += len(t.sockets.sockets)
    assert seen["kinds"] >= {"tcp", "udp", "icmp", "icmp6", "ip"}
    assert seen["options"] and seen["listeners"] and seen["sockets"]


def test_public_scans_are_compared() -> None:
    """The public corpus holds a scan (ndpi-synscan), so check()'s scan comparison sees one."""
    paths = [p.values[0] for p in corpus_params() if "synscan" in str(p.values[0])]
    if not paths:
        pytest.skip("the public corpus is not here")
    scans = column_tables(paths[0]).ports.scans()
    assert scans and all(len(p.failed_ports) >= SCAN_MIN_PORTS for p in scans)


def _listener_table(path: Path, *, objects: int, columns: int) -> SocketTable:
    """The listeners of ``path`` added ``objects`` times by Connection, then ``columns``
    times by column block."""
    table = SocketTable()
    for _ in range(objects):
        Pipeline(Source.of(path), Options(reference=True)).track(table.add)
    for _ in range(columns):
        Pipeline(Source.of(path), Options()).track(
            table.add, on_columns=lambda cols: table.add_columns(cols, sockets=False))
    return table


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_listeners_of_objects_and_columns_add_up(path: Path) -> None:
    """One table given the same connections twice, as objects and as columns (the API may
    mix them), or twice as columns, holds the listeners of the objects' twice: the columns'
    folded rows merge with Listeners, and fold with rows already folded."""
    twice = _listener_table(path, objects=2, columns=0)
    for objects, columns in ((1, 1), (0, 2)):
        table = _listener_table(path, objects=objects, columns=columns)
        assert list(zip(*listener_columns(table.listener_rows()), strict=True)) == list(
            map(listener_cells, twice.sorted_listeners()))
        assert table.listener_count() == len(twice.listeners)
        assert table.records() == twice.records()


# --- the core's port fold against PortTable.add ------------------------------------------

_TCP_ENDS = [("SF", "ShAdDaFf"), ("S1", "ShAD"), ("REJ", "Sr"), ("S0", "S"), ("RSTO", "ShAR"),
             ("S1", "Sh"), ("OTH", "DA"), ("SH", "SF"), ("RSTOS0", "SR"), ("S3", "^hADF"),
             ("RSTR", "ShADr"), ("RSTRH", "Hr"), ("SHR", "hr"), ("S2", "ShADF"), ("S1", "ShD")]
"""(conn_state, history) pairs giving every TCP outcome, flips and guesses among them."""
_UDP_ENDS = [("SF", "Dd"), ("S0", "D"), ("SHR", "d"), ("OTH", ""), ("SF", "^dD")]
_HOSTS = ["10.0.0.1", "10.0.0.2", "fe80::1", "192.168.1.9"]


def _random_connections(seed: int, n: int) -> list[Connection]:
    """Connections of every kind over few hosts and ports, so that pairs land on both sides
    of SCAN_MIN_PORTS, ports repeat with different outcomes and RTT sketches pass their exact
    values."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        proto = rng.choice(("tcp", "tcp", "tcp", "udp", "icmp", UNKNOWN_TRANSPORT))
        orig, resp = rng.choice(_HOSTS), rng.choice(_HOSTS)
        v6 = ":" in orig
        port = rng.randrange(40) if orig in _HOSTS[:2] else rng.randrange(1000, 1004)
        c = Connection(uid=f"C{i}", ts_ns=rng.randrange(10**6), proto=proto, orig_h=orig,
                       orig_p=rng.choice((5000, 5001, port)), resp_h=resp, resp_p=port,
                       ip_version=6 if v6 else 4, orig_pkts=rng.randrange(4),
                       resp_pkts=rng.randrange(3), orig_bytes=rng.randrange(10**4),
                       resp_bytes=rng.randrange(10**9), orig_ip_bytes=rng.randrange(10**4),
                       resp_ip_bytes=rng.randrange(10**4))
        c.last_ns = c.ts_ns + rng.randrange(-5, 10**5)
        if proto == "tcp":
            c.conn_state, c.history = rng.choice(_TCP_ENDS)
            c.analysis = TcpAnalysis(retransmissions=rng.randrange(3))
            times = [None if rng.random() < 0.1 else rng.randrange(10**6) for _ in range(3)]
            c.handshake = Handshake(*times)
        elif proto == "udp":
            c.conn_state, c.history = rng.choice(_UDP_ENDS)
            c.icmp_errors = rng.choice(([], [(3, 3)], [(1, 4)], [(11, 0), (3, 1)]))
        elif proto == "icmp":
            c.conn_state, c.history = "OTH", ""
            c.orig_p = rng.choice((8, 0, 3, 13, 128, 129, 135, 200))
            c.icmp_code = rng.choice((None, 0, 3))
        else:
            c.conn_state, c.ip_proto = "OTH", rng.choice((89, 132))
        out.append(c)
    return out


def _address(text: str) -> bytes:
    a = ipaddress.ip_address(text)
    return (a.ipv4_mapped or a).packed if a.version == 6 else (
        ipaddress.IPv6Address(f"::ffff:{a}").packed)


def port_columns(conns: list[Connection]) -> dict[str, Any]:
    """PORT_COLUMNS of ``conns``, with the dtypes of the tracker's (track/rust.py)."""
    def ints(name: str, values: Any, dtype: Any) -> None:
        cols[name] = np.array(list(values), dtype)

    cols: dict[str, Any] = {}
    ints("ip_version", (c.ip_version for c in conns), np.uint8)
    ints("ip_proto", ({"tcp": 6, "udp": 17}.get(c.proto, 58 if c.ip_version == 6 else 1)
                      if c.proto != UNKNOWN_TRANSPORT else c.ip_proto for c in conns), np.uint8)
    for side in ("orig", "resp"):
        cols[f"id.{side}_h"] = np.frombuffer(
            b"".join(_address(getattr(c, f"{side}_h")) for c in conns), np.uint8).reshape(-1, 16)
        ints(f"id.{side}_p", (getattr(c, f"{side}_p") for c in conns), np.uint16)
    ints("icmp_code", (NO_CODE if c.icmp_code is None else c.icmp_code for c in conns), np.int32)
    cols["icmp_errors"] = [tuple(c.icmp_errors) for c in conns]
    cols["conn_state"] = [c.conn_state for c in conns]
    cols["history"] = [c.history for c in conns]
    for name in ("ts_ns", "last_ns"):
        ints(name, (getattr(c, name) for c in conns), np.int64)
    for name in ("orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "orig_ip_bytes",
                 "resp_ip_bytes"):
        ints(name, (getattr(c, name) for c in conns), np.uint64)
    ints("analysis.retransmissions",
         (c.analysis.retransmissions if c.analysis else 0 for c in conns), np.uint32)
    for name in ("syn_ns", "syn_ack_ns", "ack_ns"):
        ints(f"handshake.{name}", (NONE64 if c.handshake is None or getattr(c.handshake, name)
                                   is None else getattr(c.handshake, name) for c in conns),
             np.int64)
    assert cols.keys() == PORT_COLUMNS
    return cols


def _port_differences(a: PortTable, b: PortTable) -> list[str]:
    t = Tables(a, b, HandshakeTable(), HandshakeTable(), SocketTable(), SocketTable())
    u = Tables(b, a, HandshakeTable(), HandshakeTable(), SocketTable(), SocketTable())
    return [d for d in differences(t, u) if not d.startswith("all_ports")]


@pytest.mark.parametrize("all_ports", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_port_fold_equals_port_table_add(seed: int, all_ports: bool) -> None:
    """Blocks of columns folded in the core give the PortTable that PortTable.add of each
    Connection gives: every field of every row, the footer, every probe and the scans."""
    conns = _random_connections(seed, 3000)
    ref, fast = PortTable(all_ports=all_ports), PortTable(all_ports=all_ports)
    for c in conns:
        ref.add(c)
    for start in range(0, len(conns), 97):
        fast.add_columns(port_columns(conns[start:start + 97]))
    scans = scan_records(ref)
    assert scans and len(scans) < len(ref.probes)  # scans and pairs that are not
    assert scan_records(fast) == scans  # before `probes` takes every pair's
    assert {r.proto for r in ref.rows.values()} == {"tcp", "udp", "icmp", "icmp6", "ip"}
    assert not ref.total.rtt.is_exact and any(not r.rtt.is_exact for r in ref.rows.values())
    assert _port_differences(ref, fast) == []


def test_port_fold_figures_join_as_they_are_read() -> None:
    """Rows read between blocks (a live view) and the fold's later figures add up; a table
    with a fold pickles, and merges with ``+``."""
    conns = _random_connections(7, 600)
    ref, fast = PortTable(), PortTable()
    for c in conns:
        ref.add(c)
    for start in range(0, len(conns), 50):
        fast.add_columns(port_columns(conns[start:start + 50]))
        assert fast.total.conns == start + len(conns[start:start + 50])
        fast.scans()
    assert _port_differences(ref, fast) == []
    again = PortTable()
    again.add_columns(port_columns(conns))
    assert _port_differences(ref, pickle.loads(pickle.dumps(again))) == []
    double = PortTable()
    for c in conns + conns:
        double.add(c)
    both = fast + again  # a Sketch's sum keeps its exact values sorted: compare the records
    assert both.records("port") == double.records("port") and len(both.records()) > 5
    assert both.total.record() == double.total.record()
    assert both.probes == double.probes
    # A folded table and one of objects (the live view's sum): the hosts stay the fold's, and
    # no Probe is made until the sum's probes are asked for.
    some = PortTable().update(conns[:40] + _random_connections(8, 40))
    folded = PortTable()
    folded.add_columns(port_columns(conns))
    live = folded + some
    objects = PortTable().update(conns + conns[:40] + _random_connections(8, 40))
    assert isinstance(live.total.clients, FoldHosts)
    assert live.records("port") == objects.records("port")
    assert set(live.total.clients) == set(objects.total.clients)
    assert not folded._probes
    assert live.probes == objects.probes and folded._probes
    assert scan_records(live) == scan_records(objects)


def test_port_fold_rows_take_connections_as_objects_too() -> None:
    """Connections added as objects to rows the fold made (and the other way round) count
    with the fold's: their hosts join the fold's (FoldHosts), as two tables of objects."""
    conns = _random_connections(3, 800)
    twice, mixed = PortTable(), PortTable()
    for c in conns[:100]:
        mixed.add(c)  # rows made by objects first, then the fold's figures join them
    mixed.add_columns(port_columns(conns))
    for c in conns[100:]:
        mixed.add(c)
    for c in conns + conns:
        twice.add(c)
    assert _port_differences(twice, mixed) == []
    assert isinstance(mixed.total.clients, FoldHosts)
    assert len(mixed.total.clients) == len(set(mixed.total.clients)) == len(twice.total.clients)


def test_port_fold_refuses_bad_columns() -> None:
    cols = port_columns(_random_connections(1, 10))
    table = PortTable()
    with pytest.raises(ValueError, match="history"):
        table.add_columns({**cols, "history": cols["history"][:-1]})
    with pytest.raises(ValueError, match="no column ts_ns"):
        table.add_columns({k: v for k, v in cols.items() if k != "ts_ns"})
    with pytest.raises(ValueError, match="orig_pkts"):
        table.add_columns({**cols, "orig_pkts": cols["orig_pkts"].astype(np.int8)})


def test_scan_threshold_counts_distinct_failed_ports() -> None:
    """Fourteen failed ports, each tried many times and also answered, is no scan; the
    fifteenth makes one. Reset or mid-stream attempts are not failures."""
    ends = {"unanswered": ("S0", "S"), "refused": ("REJ", "Sr"), "reset": ("RSTO", "ShAR"),
            "mid_stream": ("OTH", "DA")}

    def conns(tries: list[tuple[int, str]]) -> list[Connection]:
        return [Connection(uid="C", ts_ns=0, proto="tcp", orig_h="10.0.0.1", orig_p=5,
                           resp_h="10.0.0.2", resp_p=port, conn_state=ends[o][0],
                           history=ends[o][1]) for port, o in tries]

    table = PortTable()
    table.add_columns(port_columns(conns(
        [(p, o) for p in range(14) for o in ("unanswered", "refused", "reset")])))
    table.add_columns(port_columns(conns([(100, "reset"), (101, "mid_stream")])))
    assert table.scans() == []
    table.add_columns(port_columns(conns([(13, "refused"), (14, "unanswered")])))
    (scan,) = table.scans()
    assert scan.record() == {
        "proto": "tcp", "orig_h": "10.0.0.1", "resp_h": "10.0.0.2", "ports": 17,
        "failed_ports": 15, "answered_ports": [*range(14), 100],
        "attempts": 46, **{o: 0 for o in OUTCOMES},
        "unanswered": 15, "refused": 15, "reset": 15, "mid_stream": 1}


def test_add_many_is_add_in_turn() -> None:
    values = [(i * 7919) % 1000 * 10**4 for i in range(EXACT_MAX * 3)]
    for cut in (0, 1, EXACT_MAX - 1, EXACT_MAX, EXACT_MAX + 1, 2 * EXACT_MAX):
        one, many = Sketch(), Sketch()
        for v in values:
            one.add(v)
        many.add_many(values[:cut])
        many.add_many(values[cut:])
        assert one == many
        assert many.exact is None and many.quantile(0.5) == one.quantile(0.5)


def test_sockets_keep_their_order_across_columns_and_objects() -> None:
    """A connection added as an object after column blocks lists its sockets after theirs;
    ``sockets = []`` (`--listening`) empties both."""
    path = next(p for p in OWN_CAPTURES if column_tables(p).sockets.socket_count())
    ref, fast = reference_tables(path), column_tables(path)
    c = Connection(uid="Cextra", ts_ns=1, orig_h="10.9.9.9", orig_p=5, resp_h="10.9.9.8",
                   resp_p=6, proto="udp")
    ref.sockets.add(c)
    fast.sockets.add(c)
    assert fast.sockets.connection_ends() is None  # the table is written from the Sockets
    assert fast.sockets.sockets == ref.sockets.sockets
    assert fast.sockets.sockets[-1].uid == "Cextra"
    fast = column_tables(path)
    fast.sockets.sockets = []
    assert fast.sockets.socket_count() == 0 and fast.sockets.sockets == []


def test_scans_of_columns_and_objects_together() -> None:
    """Connections added as objects to a table that holds columns count with them: every
    connection of a scan capture added both ways is each connection twice."""
    paths = [p.values[0] for p in corpus_params() if "synscan" in str(p.values[0])]
    if not paths:
        pytest.skip("the public corpus is not here")
    conns: list[Connection] = []
    Pipeline(Source.of(paths[0]), Options(reference=True)).track(conns.append)
    mixed, twice = column_tables(paths[0]).ports, PortTable()
    for c in conns:
        mixed.add(c)
        twice.add(c)
        twice.add(c)
    assert scan_records(mixed) == scan_records(twice) and scan_records(twice)
    assert mixed.probes == twice.probes


def test_core_address_text_is_addr_text() -> None:
    """``_core.addr_texts`` (the conn.log writer's formatter) names every address as
    ``addr_text`` does: IPv4-mapped as a dotted quad, IPv6 in ``ipaddress``'s RFC 5952 form
    (the first longest run of zero groups as ``::``, none for a single zero group), on random
    addresses with runs of zero groups, IPv4-compatible and mapped ones."""
    import portlens._core as core

    from portlens.decode.fields import V4_MAPPED_PREFIX, addr_text

    rng = random.Random(5)
    rows = [bytes(16), bytes(15) + b"\x01", V4_MAPPED_PREFIX + bytes(4),
            bytes(12) + b"\x01\x02\x03\x04"]
    for i in range(20000):
        groups = [rng.choice([0, 0, 1, 0xFFFF, rng.randrange(1 << 16)]) for _ in range(8)]
        raw = b"".join(g.to_bytes(2, "big") for g in groups)
        if i % 5 == 0:
            raw = V4_MAPPED_PREFIX + raw[12:]
        rows.append(raw)
    column = np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 16)
    assert core.addr_texts(column) == [addr_text(r) for r in rows]
    assert core.addr_texts(column[::3]) == [addr_text(r) for r in rows[::3]]  # a strided view
    with pytest.raises(ValueError, match="16-byte"):
        core.addr_texts(np.zeros((2, 4), np.uint8))


def test_addresses_are_distinct_texts_and_row_codes() -> None:
    """``addresses`` (the core's hash table) gives each distinct address once, as
    ``addr_text`` names it, in the order numpy's sort of the rows' two 8-byte words gave
    before it (so the aggregates' groups come as before), and every row the index of its
    own: on random IPv4-mapped and IPv6 addresses that repeat across two columns, one of
    them a strided view."""
    from portlens.analysis.columns import addresses
    from portlens.decode.fields import V4_MAPPED_PREFIX, addr_text

    rng = np.random.default_rng(7)
    pool = rng.integers(0, 256, (500, 16), dtype=np.uint8)
    pool[::2, :12] = np.frombuffer(V4_MAPPED_PREFIX, np.uint8)
    a = pool[rng.integers(0, 100, 3000)]
    b = pool[rng.integers(0, 500, 6000)][::2]
    texts, (code_a, code_b) = addresses(a, b)
    both = np.concatenate([a, b])
    words = both.view(np.uint64).reshape(-1, 2)
    order = np.lexsort((words[:, 1], words[:, 0]))
    first = np.r_[True, (words[order][1:] != words[order][:-1]).any(axis=1)]
    assert texts == [addr_text(bytes(r)) for r in both[order[first]]]
    assert len(set(texts)) == len(texts)
    assert [texts[i] for i in code_a.tolist()] == [addr_text(bytes(r)) for r in a]
    assert [texts[i] for i in code_b.tolist()] == [addr_text(bytes(r)) for r in b]
    assert addresses(a[:0], b[:0])[0] == []
    with pytest.raises(ValueError, match="16-byte"):
        addresses(np.zeros((2, 4), np.uint8))


def test_listener_folds_grow_with_what_was_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct listener and peer pairs that never merge (a resolver's many clients) are
    folded ever less often: the rows waiting grow with the rows folded, so a capture of
    millions of pairs is not sorted again every FOLD_ROWS; and the fold loses none."""
    from portlens.analysis import columns as columns_module
    from portlens.analysis.sockets import ListenerPeers

    folds: list[int] = []
    fold = columns_module.fold_listener_peers

    def counted(parts: list[ListenerPeers]) -> ListenerPeers:
        folds.append(sum(map(len, parts)))
        return fold(parts)

    monkeypatch.setattr(columns_module, "fold_listener_peers", counted)
    monkeypatch.setattr(sockets_module, "FOLD_ROWS", 4)
    table = SocketTable()
    n = 1000
    for i in range(n):
        addr = np.zeros((1, 16), np.uint8)
        peer = np.frombuffer(i.to_bytes(16, "big"), np.uint8).reshape(1, 16)
        one = np.ones(1, np.int64)
        table.add_listener_peers(ListenerPeers(np.ones(1, bool), addr, 53 * one, peer, one,
                                               i * one, i * one))
    assert len(folds) <= 9  # 4, 8, 16, ... 512 rows folded: log2(n / 4) + 1 folds
    assert table.listener_count() == 1
    (listener,) = table.listeners.values()
    assert (listener.conns, len(listener.peers), listener.first_ns, listener.last_ns) == (
        n, n, 0, n - 1)
