"""conn.log lines written by the core from the tracker's own rows (``Tracker.ended_as_conn_log``,
crates/core/src/conn_log.rs ``push_batch``: what `conns --format zeek` prints) against the
lines it writes from the columns handed to Python (``conn_log_lines``, which
tests/test_columns.py holds equal to the reference's ``zeek_row`` on every capture): the same
bytes, in the same batches, on every capture, with one tracker and with flow shards in threads,
checksums kept and dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portlens.pipeline.run import Options, Pipeline, Source
from portlens.report.zeek import ZEEK_COLUMNS, zeek_lines
from portlens.track.config import TrackerConfig
from tests.core_folds import fail, pipeline
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES
from tests.fresh_cli import run_fresh

Blocks = list[tuple[str, int]]


def both_ways(path: Path, workers: int, drop: bool) -> tuple[Blocks, Blocks]:
    """Each batch's ended connections as conn.log text, from the columns and from the core's
    rows (empty batches left out both ways)."""
    from_columns: Blocks = []
    from_rows: Blocks = []

    def columns(cols: dict[str, Any]) -> None:
        from_columns.append((zeek_lines(cols), len(cols["uid"])))

    pipeline(path, workers, drop).track(fail, on_columns=columns, column_block=1,
                                        column_names=ZEEK_COLUMNS)
    pipeline(path, workers, drop).track(
        fail, on_conn_log=lambda text, rows: from_rows.append((text, rows)))
    return from_columns, from_rows


def check(path: Path) -> None:
    for workers in (1, 2):
        for drop in (False, True):
            from_columns, from_rows = both_ways(path, workers, drop)
            assert from_rows == from_columns, (workers, drop)
            assert all(rows == text.count("\n") > 0 for text, rows in from_rows)


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_lines_from_the_rows_are_those_from_the_columns_on_bundled_captures(path: Path) -> None:
    check(path)


@pytest.mark.parametrize("path", corpus_params())
def test_lines_from_the_rows_are_those_from_the_columns_on_public_captures(path: Path) -> None:
    check(path)


def test_the_comparison_sees_tunnels_icmp_and_both_families() -> None:
    """The bundled captures give rows with tunnel parents, ICMP, IPv6 and unknown_transport
    flows, each column's special cases, so that the equality above is not of easy rows only."""
    text = "".join(t for path in OWN_CAPTURES for t, _ in both_ways(path, 1, False)[1])
    rows = [line.split("\t") for line in text.splitlines()]
    assert any(r[20] != "-" for r in rows)  # tunnel_parents
    assert {r[6] for r in rows} >= {"tcp", "udp", "icmp", "unknown_transport"}
    assert any(":" in r[2] for r in rows) and any("." in r[2] for r in rows)
    assert any(r[8] == "-" for r in rows) and any(r[8] != "-" for r in rows)  # duration


def test_transitions_kept_for_the_rows_go_with_columns() -> None:
    """`conns --json` keeps each row's transitions: they come with columns, never lines."""
    from portlens.track.rust import RustTracker

    with pytest.raises(ValueError, match="transitions kept"):
        RustTracker(TrackerConfig(keep_transitions=True)).ended_as_conn_log()
    blocks: list[dict[str, Any]] = []
    path = OWN_CAPTURES[0]
    Pipeline(Source.of(path), Options()).track(
        fail, on_columns=blocks.append, column_block=1,
        on_conn_log=lambda _t, _n: pytest.fail("lines with transitions kept"))
    assert blocks


@pytest.mark.parametrize("workers", ["1", "2"])
def test_conn_log_of_a_file_imports_no_numpy(workers: str) -> None:
    """`conns --format zeek FILE` (the core reads, decodes, tracks and writes the lines) never
    imports NumPy: its import was a tenth of the command on the 2M-packet benchmark capture
    (docs/benchmarks.md, nineteenth session). The lines are those of the columns' path."""
    path = Path(__file__).resolve().parent.parent / "captures" / "tunnels.pcap"
    status, modules, stdout = run_fresh(["conns", "--format", "zeek", "--workers", workers,
                                         str(path)])
    assert status == 0
    assert "portlens._core" in modules and "numpy" not in modules
    lines = [line + "\n" for line in stdout.splitlines() if not line.startswith("#")]
    from_columns, _ = both_ways(path, int(workers), drop=False)
    assert "".join(lines) == "".join(text for text, _ in from_columns)
