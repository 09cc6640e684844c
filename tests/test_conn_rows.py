"""The HTML report's connection columns (analysis/conn_rows.py) folded from the Rust tracker's
column blocks against the same taken from Connection objects (the path of --workers and of the
reference tracker), and the ladders' picks by column against the round robin over Connection
objects they replace: every value of every row equal, on every bundled capture and every
capture of the public corpus (the bundled ones also in blocks of a few rows)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.analysis.conn_rows import NUMBERS, TEXTS, ConnRows
from portlens.analysis.ladders import PICK_ORDER, pick, pick_rows
from portlens.analysis.ports import outcome
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track.config import TrackerConfig
from portlens.track.model import Connection
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES

pytest.importorskip("portlens._core", reason="the Rust core is not built")

OPTIONS = Options(tracker=TrackerConfig(keep_transitions=False))
"""As `portlens report` tracks: the ladders replay their connections' transitions."""


def by_columns(path: Path, block: int | None = None, keep: int | None = None) -> ConnRows:
    rows = ConnRows(keep=keep)

    def sink(c: Connection) -> None:
        raise AssertionError("the Rust tracker in one process hands over columns")

    Pipeline(Source.of(path), OPTIONS).track(sink, on_columns=rows.add_columns,
                                               column_block=block)
    return rows


def round_robin(conns: Sequence[Connection], limit: int) -> list[Connection]:
    """The picks as they were made before pick_rows: groups of Connection objects, and
    queues served in turn."""
    if limit <= 0:
        return []
    if len(conns) <= limit:
        return list(conns)
    by_outcome: dict[int, dict[tuple[str, int], list[Connection]]] = defaultdict(
        lambda: defaultdict(list))
    for c in conns:
        o = outcome(c)
        rank = PICK_ORDER.index(o) if o in PICK_ORDER else len(PICK_ORDER)
        by_outcome[rank][(c.proto, c.resp_p)].append(c)

    def turns(queues: list[list[Connection]]) -> list[Connection]:
        out: list[Connection] = []
        depth = 0
        while row := [q[depth] for q in queues if depth < len(q)]:
            out.extend(row)
            depth += 1
        return out

    return turns([turns([sorted(g, key=lambda c: c.ts_ns) for _, g in sorted(groups.items())])
                  for _, groups in sorted(by_outcome.items())])[:limit]


def check(path: Path, blocks: Sequence[int | None] = (None,)) -> None:
    conns = list(Pipeline(Source.of(path), OPTIONS).connections())
    objects = ConnRows().update(conns)
    assert len(objects) == len(conns)
    for block in blocks:
        columns = by_columns(path, block)
        assert len(columns) == len(conns), (path.name, block)
        for name in NUMBERS:
            assert columns.numbers(name).tolist() == objects.numbers(name).tolist(), name
        for name in TEXTS:
            assert columns.texts(name) == objects.texts(name), name
        assert columns.connections(list(range(len(conns)))) == conns
        assert columns.connections([]) == []
    for keep in (0, 1, 3, 40):
        for block in blocks:
            check_kept(path, block, keep, conns, objects)
    limits: list[int] = sorted({0, 1, 3, 40, 250, max(len(conns) - 1, 0), len(conns)})
    for limit in limits:
        want = [c.uid for c in round_robin(conns, limit)]
        assert [c.uid for c in pick(conns, limit)] == want, limit
        rows = pick_rows(objects.texts("outcome"), objects.texts("proto"),
                         objects.numbers("resp_p"), objects.numbers("ts_ns"), limit)
        assert [conns[i].uid for i in rows] == want, limit


def check_kept(path: Path, block: int | None, keep: int, conns: list[Connection],
               objects: ConnRows) -> None:
    """``ConnRows(keep=K)`` holds the Connections of exactly the rows among the K earliest
    (start, then row) of their (outcome, proto, server port) group, every row the ladders'
    pick of K can take among them; the others raise."""
    few = by_columns(path, block, keep)
    groups: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for i, c in enumerate(conns):
        groups[(outcome(c), c.proto, c.resp_p)].append((c.ts_ns, i))
    want = {i for g in groups.values() for _, i in sorted(g)[:keep]}
    kept = set()
    for i, c in enumerate(conns):
        try:
            got = few.connections([i])
        except ValueError as exc:
            assert "was not kept" in str(exc)
            continue
        assert got == [c]
        kept.add(i)
    assert kept == want, (path.name, block, keep)
    rows = pick_rows(objects.texts("outcome"), objects.texts("proto"),
                     objects.numbers("resp_p"), objects.numbers("ts_ns"), keep)
    assert set(rows) <= kept
    assert few.connections(rows) == [conns[i] for i in rows]


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_bundled_capture(path: Path) -> None:
    check(path, blocks=(None, 1, 5))


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_capture(path: Path) -> None:
    check(path)


def test_one_kind_of_input() -> None:
    """Objects and column blocks do not mix (the rows would not be one order)."""
    path = OWN_CAPTURES[0]
    rows = by_columns(path)
    conns: list[Any] = list(Pipeline(Source.of(path), OPTIONS).connections())
    with pytest.raises(ValueError, match="not both"):
        rows.add(conns[0])
    objects = ConnRows().update(conns[:1])
    blocks: list[dict[str, Any]] = []
    Pipeline(Source.of(path), OPTIONS).track(lambda c: None, on_columns=blocks.append)
    with pytest.raises(ValueError, match="not both"):
        objects.add_columns(blocks[0])
    assert np.array_equal(objects.numbers("ts_ns"), [conns[0].ts_ns])
