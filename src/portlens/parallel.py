"""Tracking on several cores: shard flows by host pair, one process per shard.

Each worker reads and decodes the files itself (decoding is the cheaper half of the work, and
sending decoded batches between processes would cost more than it saves) and tracks only the
flows of its shard (track.tracker.shard_of), so every connection is seen whole by exactly one
worker. Connections stream back to the parent as they end; rows of different workers
interleave, each worker's rows stay in its own removal order.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from portlens.analysis.capture_stats import count_not_decoded
from portlens.decode import decode_capture, first_packets
from portlens.decode.packets import PacketBatch
from portlens.filter import compile_filter
from portlens.sources.files import CaptureError
from portlens.track.model import Connection
from portlens.track.tracker import Tracker, TrackerConfig

_CHUNK = 256
"""Connections sent per message."""


def _selected(paths: Sequence[str], queue: mp.Queue, filter_expr: str,  # type: ignore[type-arg]
              not_decoded: Counter[int], checksums: bool) -> Iterator[PacketBatch]:
    """The -f selected batches of the files in order; input errors go to the parent.
    ``checksums``: verify them (the tracker reads them only to drop bad ones)."""
    packet_filter = compile_filter(filter_expr)
    for path in paths:
        try:
            for batch in decode_capture(path, checksums=checksums):
                count_not_decoded(not_decoded, batch)
                yield packet_filter.select(batch)
        except CaptureError as exc:
            queue.put(("error", str(exc)))
        except OSError as exc:
            queue.put(("error", f"{path}: {exc.strerror or exc}"))


def _worker(paths: Sequence[str], config: TrackerConfig, k: int, n: int,
            queue: mp.Queue, filter_expr: str,  # type: ignore[type-arg]
            count: int | None = None) -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it (it
    # reports what came back and ends the workers), so a worker prints no traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tracker = Tracker(replace(config, shard=(k, n)))
    pending: list[Connection] = []
    # Every worker reads the same packets, so each stopping after the first `count` (-c)
    # gives the shards of exactly those packets.
    not_decoded: Counter[int] = Counter()
    batches = _selected(paths, queue, filter_expr, not_decoded, config.drop_bad_checksums)
    if count is not None:
        batches = first_packets(batches, count)
    try:
        for batch in batches:
            pending += tracker.feed(batch)
            if len(pending) >= _CHUNK:
                queue.put(("conns", pending))
                pending = []
        pending += tracker.finish()
        if pending:
            queue.put(("conns", pending))
        queue.put(("not_counted", dict(tracker.not_counted)))
        queue.put(("totals", {"evicted": tracker.evicted}))
        if k == 0:  # every worker reads every frame: one says what it could not decode
            queue.put(("not_decoded", dict(not_decoded)))
    finally:
        queue.put(("done", None))


def track_files(paths: Sequence[str | Path], config: TrackerConfig, workers: int,
                errors: list[str], filter_expr: str = "",
                not_counted: Counter[str] | None = None, *, count: int | None = None,
                totals: Counter[str] | None = None, not_decoded: Counter[int] | None = None
                ) -> Iterator[Connection]:
    """Connections of the files, tracked by ``workers`` processes. Input errors (each reported
    once) are appended to ``errors``; what was read before them is still tracked. ``totals``
    receives the workers' summed counters (``evicted``), ``not_decoded`` the frames of link
    types not decoded, by link type."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue(maxsize=4 * workers)
    procs = [ctx.Process(target=_worker, args=([str(p) for p in paths], config, k, workers,
                                               queue, filter_expr, count), daemon=True)
             for k in range(workers)]
    for p in procs:
        p.start()
    done = 0
    try:
        while done < workers:
            kind, payload = queue.get()
            if kind == "done":
                done += 1
            elif kind == "not_counted":
                if not_counted is not None:
                    not_counted.update(payload)
            elif kind == "totals":
                if totals is not None:
                    totals.update(payload)
            elif kind == "not_decoded":
                if not_decoded is not None:
                    not_decoded.update(payload)
            elif kind == "error":
                if payload not in errors:
                    errors.append(str(payload))
            else:
                yield from payload
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
