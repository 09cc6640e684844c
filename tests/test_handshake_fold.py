"""`handshakes` of the compiled tracker in its own process: the core folds each batch's ended
rows straight into the table's fold (``RustTracker.ended_into``, crates/core/src/analysis/
handshakes.rs), where before NumPy folded the columns handed to Python
(``HandshakeTable.add_columns``, which tests/test_columns.py holds equal to the reference's
objects). Both give the same table on every capture, with one tracker and with flow shards in
threads, checksums kept and dropped, every port or some."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portlens.analysis.handshakes import HANDSHAKE_COLUMNS, HandshakeTable
from tests.core_folds import fail, pipeline, track_both_ways
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES
from tests.fresh_cli import run_fresh


def rendered(table: HandshakeTable) -> str:
    """Every figure of the table (the sketches' quantiles, counts and extremes; the options'
    counters and fingerprints), and the sketches' state."""
    rows = [(r.record(), r.server_rtt.exact, r.client_rtt.exact,
             sorted(r.server_rtt.buckets.items()), sorted(r.client_rtt.buckets.items()))
            for r in table.sorted()]
    return json.dumps(rows, sort_keys=True)


def both_ways(path: Path, workers: int, drop: bool, ports: frozenset[int]) -> tuple[str, str]:
    from_columns, folded = HandshakeTable(), HandshakeTable()
    track_both_ways(path, workers, drop, lambda cols: from_columns.add_columns(cols, ports),
                    HANDSHAKE_COLUMNS, lambda: folded.core_fold(ports))
    return rendered(from_columns), rendered(folded)


def check(path: Path) -> None:
    for workers in (1, 2):
        for drop in (False, True):
            for ports in (frozenset(), frozenset({80, 443})):
                from_columns, folded = both_ways(path, workers, drop, ports)
                assert folded == from_columns, (workers, drop, sorted(ports))


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_the_core_folds_the_tables_of_the_columns_on_bundled_captures(path: Path) -> None:
    check(path)


@pytest.mark.parametrize("path", corpus_params())
def test_the_core_folds_the_tables_of_the_columns_on_public_captures(path: Path) -> None:
    check(path)


def test_the_comparison_sees_rtts_options_and_outcomes() -> None:
    """Not only empty tables: ports with both round-trip times, options on both sides, and
    more than one outcome."""
    tables = [json.loads(both_ways(p, 1, False, frozenset())[1]) for p in OWN_CAPTURES]
    records = [row[0] for table in tables for row in table]
    assert any(r["server_rtt_count"] and r["client_rtt_count"] for r in records)
    assert any(r["client_options"]["fingerprints"] and r["server_options"]["mss"]
               for r in records)
    assert {k for r in records for k in ("refused", "unanswered", "completed") if r[k]} == {
        "refused", "unanswered", "completed"}


def test_many_round_trip_times_go_to_buckets_alike(generated_20k: Path) -> None:
    """Past EXACT_MAX values a port's sketch is buckets: 20,000 packets of the benchmark's mix
    fold to the same buckets both ways, with one and two threads."""
    for workers in (1, 2):
        from_columns, folded = both_ways(generated_20k, workers, False, frozenset())
        assert folded == from_columns
        assert any(row[1] is None for row in json.loads(folded))  # bucketed


def test_handshakes_of_a_file_imports_no_numpy() -> None:
    """`handshakes FILE` never imports NumPy (its import was a tenth of the command) and
    prints the table of the columns' way."""
    path = Path(__file__).resolve().parent.parent / "captures" / "scenario-refused.pcap"
    status, modules, stdout = run_fresh(["handshakes", "--json", str(path)])
    assert status == 0
    assert "portlens._core" in modules and "numpy" not in modules
    table = HandshakeTable()
    pipeline(path).track(fail, on_columns=table.add_columns, column_names=HANDSHAKE_COLUMNS)
    assert [json.loads(line) for line in stdout.splitlines()] == table.records()
