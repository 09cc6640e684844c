"""--workers on the compiled tracker: flow shards tracked in threads of one process
(crates/core/src/track/shards.rs) give one tracker's connections, field by field, transitions
included, in its order, on every public capture; and how many threads a command uses by
default."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

import portlens
from portlens.cli.common import cpu_count, workers
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track.config import TrackerConfig
from tests.corpus import corpus_params


@pytest.mark.parametrize("path", corpus_params())
def test_threads_give_one_trackers_connections(path: Path) -> None:
    one = portlens.open(str(path)).connections()
    for n in (2, 3):
        got = portlens.open(str(path), workers=n).connections()
        assert len(got) == len(one)
        for a, b in zip(got, one, strict=True):
            assert a == b, f"{n} threads: {a.uid} differs from one tracker's {b.uid}"


def test_threads_share_out_the_flow_cap(tmp_path: Path) -> None:
    """A cap of 2 shared by 2 threads: one open flow a shard; every flow is still reported,
    evictions counted over both."""
    from tests.test_cli import SAMPLE

    config = TrackerConfig(max_flows=2)
    one = Pipeline(Source.of(SAMPLE), Options(tracker=config))
    two = Pipeline(Source.of(SAMPLE), Options(tracker=config, workers=2))
    assert (one.threads, two.threads, two.sharded) == (1, 2, False)
    rows_one, rows_two = list(one.connections()), list(two.connections())
    assert sum(c.orig_pkts + c.resp_pkts for c in rows_two) == sum(
        c.orig_pkts + c.resp_pkts for c in rows_one)
    assert one.evicted > 0 and two.evicted > 0
    wide = Pipeline(Source.of(SAMPLE), Options(workers=2))
    assert list(wide.connections()) != rows_two and wide.evicted == 0


def _args(command: str, given: int | None = None, **more: object) -> argparse.Namespace:
    return argparse.Namespace(command=command, workers=given, **more)


def test_default_workers_are_every_cpu_but_the_reading_one() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert cpu_count() == cpus
    assert workers(_args("conns")) == max(1, cpus - 1)
    assert workers(_args("conns", 3)) == 3
    assert workers(_args("events")) == 1
    assert workers(_args("ladder")) == 1
    assert workers(_args("conns", reference=True)) == 1
    assert workers(_args("conns", 2, reference=True)) == 2


def test_a_live_capture_and_the_reference_track_in_one_thread() -> None:
    from tests.test_cli import SAMPLE

    ref = Pipeline(Source.of(SAMPLE), Options(workers=2, reference=True))
    assert (ref.threads, ref.sharded) == (1, True)  # worker processes
    dask = Pipeline(Source.of(SAMPLE), Options(workers=2, dask="local"))
    assert (dask.threads, dask.sharded) == (1, True)
