"""What `sniff` keeps of the connections that end, from the core's columns (cli/live.py): the
per-port table folded a block at a time (pipeline/run.py ``ColumnBlocks``), and the
dashboard's last connections made objects only when it is drawn. Both must equal what the
connections as objects give, whatever sizes the batches come in (a live capture's are small
and uneven). The capture is the benchmark generator's, small: hundreds of connections of
every kind."""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from portlens.analysis.ports import PortTable
from portlens.cli.live import RECENT, _Latest
from portlens.pipeline.run import COLUMN_BLOCK, ColumnBlocks, Options, Pipeline, Source
from portlens.track.model import Connection, EndReason

BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("portlens_bench_script", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    out = tmp_path_factory.mktemp("sniff") / "bench-20k.pcap"
    bench.generate(20_000, out, seed=5)
    return out


def _batches(path: Path) -> list[dict[str, Any]]:
    """The ended connections of each batch, as the core hands them to sniff."""
    blocks: list[dict[str, Any]] = []
    Pipeline(Source.of(str(path)), Options()).track(lambda c: None, on_columns=blocks.append,
                                                    column_block=1)
    return [b for b in blocks if len(b["uid"])]


def _pieces(blocks: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The blocks cut at random places into pieces of 1 to 16 rows."""
    rng = random.Random(seed)
    out = []
    for cols in blocks:
        n, start = len(cols["uid"]), 0
        while start < n:
            end = min(n, start + rng.randint(1, 16))
            out.append({k: v[start:end] for k, v in cols.items()})
            start = end
    return out


def _objects(path: Path) -> list[Connection]:
    return list(Pipeline(Source.of(str(path)), Options()).connections())


def _folding(table: PortTable) -> ColumnBlocks:
    """How sniff folds its ended connections into its per-port table."""
    return ColumnBlocks(table.add_columns, COLUMN_BLOCK)


def test_the_folded_table_is_the_objects_table(capture: Path) -> None:
    conns = _objects(capture)
    assert len(conns) > 2 * RECENT
    pieces = _pieces(_batches(capture), seed=1)
    assert len(pieces) > 50
    expected = PortTable().update(conns).records()
    table = PortTable()
    folding = _folding(table)
    for cols in pieces:
        folding.add(cols)
    folding.flush()
    assert table.records() == expected
    # Nothing is left to fold, and a table read midway is the one of the rows added so far.
    folding.flush()
    assert table.records() == expected
    half = len(pieces) // 2
    table = PortTable()
    folding = _folding(table)
    for cols in pieces[:half]:
        folding.add(cols)
    folding.flush()
    rows = sum(len(c["uid"]) for c in pieces[:half])
    assert table.records() == PortTable().update(conns[:rows]).records()


def test_blocks_are_folded_when_they_reach_a_column_block(capture: Path) -> None:
    table = PortTable()
    folding = _folding(table)
    cols = _batches(capture)[0]
    one = {k: v[:1] for k, v in cols.items()}
    for _ in range(COLUMN_BLOCK - 1):
        folding.add(one)
    assert not table.records()  # still waiting
    folding.add(one)
    assert table.records()  # folded at COLUMN_BLOCK rows, before anyone asked


def test_the_latest_are_the_last_connections_that_ended(capture: Path) -> None:
    uids = [c.uid for c in _objects(capture)]
    latest = _Latest()
    seen = 0
    for cols in _pieces(_batches(capture), seed=2):
        latest.add(cols)
        seen += len(cols["uid"])
        shown = latest.connections()
        assert [c.uid for c in shown] == uids[max(0, seen - RECENT):seen]
    assert seen == len(uids)


def test_wall_clock_ends_the_same_connections_as_objects(capture: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A live capture's clock also moves with real time (``track(wall_clock=True)``), so idle
    connections end while no packet comes: the columns path ends the same ones, the same way,
    as the objects path. The clock is made to tick after every batch, at a time an hour past
    the capture, so every connection open then ends by a timeout."""
    import itertools

    from portlens.report.conns import record
    from portlens.track.objects import connections

    now = max(c.last_ns for c in _objects(capture)) + 3600 * 10**9
    monkeypatch.setattr(time, "time_ns", lambda: now)

    def ticking() -> None:
        ticks = itertools.count(0, 1.0)
        monkeypatch.setattr(time, "monotonic", lambda: next(ticks))

    ticking()
    objects: list[Connection] = []
    Pipeline(Source.of(str(capture)), Options()).track(objects.append, wall_clock=True)
    ticking()
    blocks: list[dict[str, Any]] = []
    Pipeline(Source.of(str(capture)), Options()).track(lambda c: None, on_columns=blocks.append,
                                                       column_block=1, wall_clock=True)
    from_columns = [c for cols in blocks for c in connections(cols)]
    def untransitioned(c: Connection) -> dict[str, Any]:  # the objects' own, not the rows'
        return {k: v for k, v in record(c).items() if k != "transitions"}

    assert [untransitioned(c) for c in from_columns] == [untransitioned(c) for c in objects]
    # the ticks did end connections early: their end reasons say so
    assert {c.end_reason for c in objects} - {EndReason.END_OF_CAPTURE}
