"""`ports` of the compiled tracker in its own process: the core folds each batch's ended rows
straight into the table's fold (``RustTracker.ended_into``, crates/core/src/analysis/ports.rs
``ConnColumns::of_batch``), where before it folded the columns handed to Python
(``PortTable.add_columns``, which tests/test_columns.py holds equal to the reference's
objects). Both give the same table, hosts and scans on every capture, with one tracker and
with flow shards in threads, checksums kept and dropped, every port or the servers'."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from portlens.analysis.ports import PORT_COLUMNS, PortTable
from portlens.report import ports as report
from tests.core_folds import fail, pipeline, track_both_ways
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES
from tests.fresh_cli import run_fresh


def rendered(table: PortTable) -> str:
    """Every figure a user sees of the table: its JSON (hosts counted), the hosts' names,
    the scans."""
    out = io.StringIO()
    report.write_json(table, out)
    for row in table.sorted():
        out.write(f"{row.proto} {row.port} {sorted(row.clients)} {sorted(row.servers)}\n")
    for line in report.scan_lines(table):
        out.write(line + "\n")
    return out.getvalue()


def both_ways(path: Path, workers: int, drop: bool, all_ports: bool) -> tuple[str, str]:
    from_columns, folded = PortTable(all_ports=all_ports), PortTable(all_ports=all_ports)
    by_columns, by_core = track_both_ways(path, workers, drop, from_columns.add_columns,
                                          PORT_COLUMNS, folded.core_fold)
    from_columns.not_counted.update(by_columns.not_counted)
    folded.not_counted.update(by_core.not_counted)
    return rendered(from_columns), rendered(folded)


def check(path: Path) -> None:
    for workers in (1, 2):
        for drop in (False, True):
            for all_ports in (False, True):
                from_columns, folded = both_ways(path, workers, drop, all_ports)
                assert folded == from_columns, (workers, drop, all_ports)


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_the_core_folds_the_tables_of_the_columns_on_bundled_captures(path: Path) -> None:
    check(path)


@pytest.mark.parametrize("path", corpus_params())
def test_the_core_folds_the_tables_of_the_columns_on_public_captures(path: Path) -> None:
    check(path)


def test_the_comparison_sees_tables_hosts_and_scans() -> None:
    """Not only empty tables: rows of every kind, hosts, and a scan (tests/test_columns.py
    crafts one for the same rules)."""
    text = "".join(both_ways(p, 1, False, True)[1] for p in OWN_CAPTURES)
    for kind in ('"proto":"tcp"', '"proto":"udp"', '"proto":"icmp"', '"proto":"icmp6"'):
        assert kind in text
    assert "['" in text


def test_ports_of_a_file_imports_no_numpy() -> None:
    """`ports FILE` never imports NumPy (its import was a tenth of the command) and prints
    the table of the columns' way."""
    path = Path(__file__).resolve().parent.parent / "captures" / "tunnels.pcap"
    status, modules, stdout = run_fresh(["ports", "--json", str(path)])
    assert status == 0
    assert "portlens._core" in modules and "numpy" not in modules
    table = PortTable()
    run = pipeline(path)
    run.track(fail, on_columns=table.add_columns, column_names=PORT_COLUMNS)
    table.not_counted.update(run.not_counted)
    out = io.StringIO()
    report.write_json(table, out)
    assert stdout == out.getvalue()
