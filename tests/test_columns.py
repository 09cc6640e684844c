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
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.analysis import sockets as sockets_module
from portlens.analysis.columns import (
    HANDSHAKE_COLUMNS,
    PORT_COLUMNS,
    SOCKET_COLUMNS,
    ProbeRows,
    _count_rows,
)
from portlens.analysis.handshakes import HandshakeTable
from portlens.analysis.ports import OUTCOMES, SCAN_MIN_PORTS, PortTable, Probe
from portlens.analysis.sketch import EXACT_MAX, Sketch
from portlens.analysis.sockets import SocketTable
from portlens.pipeline import run
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.report.conns import json_line, zeek_lines, zeek_row
from portlens.report.sockets import (
    csv_row,
    ends_columns,
    listener_cells,
    listener_columns,
    socket_cells,
    socket_csv_rows,
    socket_json_lines,
)
from portlens.track.model import Connection
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


def reference_tables(path: Path) -> Tables:
    t = Tables(PortTable(), PortTable(all_ports=True), HandshakeTable(), HandshakeTable(),
               SocketTable(), SocketTable())

    def sink(c: Connection) -> None:
        t.ports.add(c)
        t.all_ports.add(c)
        t.handshakes.add(c)
        if c.resp_p == 80:
            t.handshakes_80.add(c)
        t.sockets.add(c)
        t.listeners.add(c)
        t.zeek.append("\t".join(zeek_row(c)) + "\n")

    pipeline = Pipeline(Source.of(path), Options(reference=True))
    pipeline.track(sink)
    t.listeners.sockets = []
    t.not_counted = pipeline.not_counted
    return t


def only(cols: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    return {name: cols[name] for name in names}


def column_tables(path: Path) -> Tables:
    t = Tables(PortTable(), PortTable(all_ports=True), HandshakeTable(), HandshakeTable(),
               SocketTable(), SocketTable())
    blocks = []

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

    def sink(c: Connection) -> None:
        raise AssertionError("the Rust tracker in one process hands over columns")

    pipeline = Pipeline(Source.of(path), Options())
    pipeline.track(sink, on_columns=columns)
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
    if ref.not_counted != fast.not_counted:
        out.append(f"not_counted: {ref.not_counted} != {fast.not_counted}")
    return out


def scan_records(table: PortTable) -> list[dict[str, Any]]:
    return [p.record() for p in table.scans()]


def check(path: Path) -> Tables:
    ref, fast = reference_tables(path), column_tables(path)
    # Before ``differences`` reads ``probes`` and ``sockets``, which make every pair's Probe and
    # every Socket: the columns' scans() makes only the scans' (ProbeRows), and is what `ports`
    # runs.
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


# --- ProbeRows against Probe.add ------------------------------------------------------------


def _probe_connections(seed: int, n: int) -> list[tuple[int, int, int, int, int]]:
    """(kind, orig, resp, port, outcome) rows over few hosts and ports, so that pairs land on
    both sides of SCAN_MIN_PORTS and ports repeat with different outcomes."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        orig, resp = rng.randrange(4), rng.randrange(4)
        kind = rng.choice((0, 0, 0, 1))
        port = rng.randrange(40) if orig < 2 else rng.randrange(1000, 1004)
        out.append((kind, orig, resp, port, rng.randrange(len(OUTCOMES))))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_probe_rows_equal_probes(seed: int) -> None:
    """Blocks of rows (with their own address lists, in any order) into ProbeRows give the
    Probes Probe.add gives, and exactly the pairs with SCAN_MIN_PORTS failed ports as scans."""
    conns = _probe_connections(seed, 2000)
    addrs = ["10.0.0.1", "10.0.0.2", "fe80::1", "192.168.1.9"]
    ref: dict[tuple[str, str, str], Probe] = {}
    for kind, orig, resp, port, o in conns:
        key = (("tcp", "udp")[kind], addrs[orig], addrs[resp])
        c = Connection(uid="C", ts_ns=0, proto=key[0], orig_h=key[1], orig_p=1, resp_h=key[2],
                       resp_p=port)
        ref.setdefault(key, Probe(*key)).add(c, OUTCOMES[o])
    rows = ProbeRows()
    rows._COMPACT_ROWS = 50  # merge blocks along the way too
    rng = random.Random(seed)
    for start in range(0, len(conns), 97):
        block = conns[start:start + 97]
        local = addrs[:]
        rng.shuffle(local)  # each block numbers its addresses its own way
        where = {a: i for i, a in enumerate(local)}
        cols = [np.array(c, np.int64) for c in zip(*block, strict=True)]
        to_local = np.array([where[a] for a in addrs], np.int64)
        rows.add(cols[0], to_local[cols[1]], to_local[cols[2]], local, cols[3], cols[4])
    expected = sorted((p.record() for p in ref.values() if p.is_scan), key=repr)
    assert expected and len(expected) < len(ref)  # scans and pairs that are not
    assert sorted((p.record() for p in rows.scans(SCAN_MIN_PORTS)), key=repr) == expected
    assert rows.probes() == ref


def test_probe_rows_threshold_counts_distinct_failed_ports() -> None:
    """Fourteen failed ports, each tried many times and also answered, is no scan; the
    fifteenth makes one. Reset or mid-stream attempts are not failures."""
    unanswered, refused = OUTCOMES.index("unanswered"), OUTCOMES.index("refused")
    reset, mid = OUTCOMES.index("reset"), OUTCOMES.index("mid_stream")
    ports = [p for p in range(14) for _ in range(3)]
    n = len(ports)
    rows = ProbeRows()

    def add(port: list[int], outcome: list[int]) -> None:
        k = len(port)
        rows.add(np.zeros(k, np.int64), np.zeros(k, np.int64), np.ones(k, np.int64),
                 ["10.0.0.1", "10.0.0.2"], np.array(port, np.int64),
                 np.array(outcome, np.int64))

    add(ports, [unanswered, refused, reset] * (n // 3))
    add([100, 101], [reset, mid])
    assert rows.scans(SCAN_MIN_PORTS) == []
    add([13, 14], [refused, unanswered])
    (scan,) = rows.scans(SCAN_MIN_PORTS)
    assert scan.record() == {
        "proto": "tcp", "orig_h": "10.0.0.1", "resp_h": "10.0.0.2", "ports": 17,
        "failed_ports": 15, "answered_ports": [*range(14), 100],
        "attempts": n + 4, **{o: 0 for o in OUTCOMES},
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


@pytest.mark.parametrize("hosts", [5, 2**21])
def test_count_rows_sorts_and_counts(hosts: int) -> None:
    """_count_rows (one sort key while the host indices fit one, a lexsort past that) sorts
    by the five key columns and adds the counts of equal rows."""
    rng = random.Random(hosts)
    rows = [(rng.randrange(2), rng.randrange(hosts) if rng.random() < 0.5 else rng.randrange(3),
             rng.randrange(3), rng.choice((0, 80, 65535)), rng.randrange(8), rng.randrange(1, 4))
            for _ in range(500)]
    expected: dict[tuple[int, ...], int] = {}
    for *key, n in rows:
        expected[tuple(key)] = expected.get(tuple(key), 0) + n
    got = _count_rows(np.array(rows, np.int64))
    assert [tuple(r) for r in got.tolist()] == [(*k, n) for k, n in sorted(expected.items())]


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

    from portlens.decode.packets import V4_MAPPED_PREFIX, addr_text

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
    from portlens.decode.packets import V4_MAPPED_PREFIX, addr_text

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
