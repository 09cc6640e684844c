"""`sockets` of the compiled tracker in its own process: the core folds each batch's ended rows
straight into the table's fold (``RustTracker.ended_into``, crates/core/src/analysis/
sockets.rs), where before NumPy folded the columns handed to Python
(``SocketTable.add_columns``, which tests/test_columns.py holds equal to the reference's
objects). Both give the same tables, JSON and CSV on every capture, with one tracker and with
flow shards in threads, checksums kept and dropped, with the connections' sockets and
without (``--listening``)."""

from __future__ import annotations

import io
import pickle
from itertools import pairwise
from pathlib import Path

import pytest

from portlens.analysis import sockets as socket_module
from portlens.analysis.sockets import SOCKET_COLUMNS, SocketTable
from portlens.report import sockets as report
from portlens.report.tables import Screen
from tests.core_folds import fail, pipeline, track_both_ways
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES
from tests.fresh_cli import run_fresh


def outputs(table: SocketTable) -> tuple[str, str, str, int, int]:
    """What `sockets` prints: its tables (every column), its JSON lines and CSV, and the
    counts under the tables."""
    text, err = io.StringIO(), io.StringIO()
    report.print_tables(Screen(text, err), table)
    as_json, as_csv = io.StringIO(), io.StringIO()
    report.write_json(table, as_json)
    report.write_csv(table, as_csv)
    return (text.getvalue() + err.getvalue(), as_json.getvalue(), as_csv.getvalue(),
            table.listener_count(), table.socket_count())


def both_ways(path: Path, workers: int, drop: bool, sockets: bool
              ) -> tuple[SocketTable, SocketTable]:
    from_columns, folded = SocketTable(), SocketTable()
    track_both_ways(path, workers, drop,
                    lambda cols: from_columns.add_columns(cols, sockets=sockets),
                    SOCKET_COLUMNS, lambda: folded.core_fold(sockets))
    return from_columns, folded


def check(path: Path) -> None:
    for workers in (1, 2):
        for drop in (False, True):
            for sockets in (True, False):
                from_columns, folded = both_ways(path, workers, drop, sockets)
                assert outputs(folded) == outputs(from_columns), (workers, drop, sockets)
    # The objects the API gives (the fold's rows made Listeners and Sockets), and a table
    # pickled for another process, are the columns' too.
    from_columns, folded = both_ways(path, 1, False, True)
    copy = pickle.loads(pickle.dumps(folded))
    assert copy.records() == folded.records() == from_columns.records()
    assert copy.socket_records() == folded.socket_records() == from_columns.socket_records()
    assert folded.listeners == from_columns.listeners
    assert outputs(folded) == outputs(from_columns)  # read again, after the fold was taken


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_the_core_folds_the_tables_of_the_columns_on_bundled_captures(path: Path) -> None:
    check(path)


@pytest.mark.parametrize("path", corpus_params())
def test_the_core_folds_the_tables_of_the_columns_on_public_captures(path: Path) -> None:
    check(path)


def test_the_comparison_sees_both_protocols_and_states() -> None:
    """Not only empty tables: TCP and UDP listeners, and sockets in several states."""
    tables = [both_ways(p, 1, False, True)[1] for p in OWN_CAPTURES]
    listeners = [r for t in tables for r in t.records()]
    assert {r["proto"] for r in listeners} == {"tcp", "udp"}
    states = {r["state"] for t in tables for r in t.socket_records()}
    assert {"ESTAB", "TIME-WAIT", "SYN-SENT", None} <= states


def test_many_connections_come_in_blocks_alike(generated_20k: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 packets of the benchmark's mix, with one and two threads, whose listeners have
    several peers, some answered more than once; and blocks of ends smaller than the
    connections, so that the table is written from several."""
    for workers in (1, 2):
        from_columns, folded = both_ways(generated_20k, workers, False, True)
        assert outputs(folded) == outputs(from_columns)
    listeners = folded.listener_rows()
    assert any(b - a > 1 for a, b in pairwise(listeners.peer_start))
    assert max(listeners.peer_conns) > 1
    monkeypatch.setattr(socket_module, "END_BLOCK", 100)
    blocks = folded.connection_ends()
    assert blocks is not None and len(list(blocks)) > 2
    assert outputs(folded) == outputs(from_columns)


def test_sockets_of_a_file_imports_no_numpy() -> None:
    """`sockets FILE` never imports NumPy (its import was a tenth of the command) and prints
    what the columns' way prints."""
    path = Path(__file__).resolve().parent.parent / "captures" / "scenario-refused.pcap"
    for args in (["--json"], []):
        status, modules, stdout = run_fresh(["sockets", *args, str(path)])
        assert status == 0
        assert "portlens._core" in modules and "numpy" not in modules
        table = SocketTable()
        pipeline(path).track(fail, on_columns=table.add_columns, column_names=SOCKET_COLUMNS)
        out = io.StringIO()
        if args:
            report.write_json(table, out)
        else:
            report.print_tables(Screen(out, io.StringIO()), table)
        assert stdout == out.getvalue()
