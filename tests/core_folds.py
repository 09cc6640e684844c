"""A capture tracked by the compiled tracker in this process, its ended rows handed over as
columns or kept in the core (conn.log lines, a table's fold): what the tests that hold the
core's ways to the columns' (test_conn_log_text, test_port_fold, test_handshake_fold,
test_socket_fold) run."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track.config import TrackerConfig


def fail(_c: object) -> None:
    """The sink of Connections, which these runs never reach."""
    raise AssertionError("the Rust tracker in one process hands its rows over as columns, or "
                         "keeps them in the core")


def pipeline(path: Path, workers: int = 1, drop: bool = False) -> Pipeline:
    """``path`` read with ``workers`` flow shards in threads, keeping no transitions (as the
    reports do), bad checksums dropped with ``drop``."""
    config = TrackerConfig(keep_transitions=False, drop_bad_checksums=drop)
    return Pipeline(Source.of(path), Options(tracker=config, workers=workers))


def track_both_ways(path: Path, workers: int, drop: bool,
                    on_columns: Callable[[dict[str, Any]], None],
                    column_names: Collection[str],
                    core_fold: Callable[[], Any]) -> tuple[Pipeline, Pipeline]:
    """``path`` tracked twice: its ended rows as columns to ``on_columns``, then folded by the
    core into what ``core_fold`` makes, which must be made once (else the columns' way was
    taken). The two pipelines, for their counts."""
    made: list[object] = []

    def fold() -> object:
        made.append(core_fold())
        return made[-1]

    by_columns, by_core = pipeline(path, workers, drop), pipeline(path, workers, drop)
    by_columns.track(fail, on_columns=on_columns, column_names=column_names)
    by_core.track(fail, core_fold=fold)
    assert len(made) == 1  # the core folded: the columns' way was not taken
    return by_columns, by_core
