"""Tracking on several cores: shard flows by host pair, one process per shard.

Each worker runs the same pipeline over the same files (reading, merging, decoding and
selecting every packet: decoding is the cheaper half of the work, and sending decoded batches
between processes would cost more than it saves) and tracks only the flows of its shard
(track.tracker.shard_of), so every connection is seen whole by exactly one worker, and -c, the
time window and the filter select the same packets in all of them. Worker 0 alone writes -w
and reports per-file counts. Connections stream back to the parent as they end; once every
worker is done, pipeline/shards.py gives them the uids of a one-process run and the order of
their creation (a shard's tracker numbers only its own connections, and a uid includes that
number), so the result does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from portlens.track.model import Connection

if TYPE_CHECKING:
    from portlens.pipeline.run import Options, Pipeline, Source

_CHUNK = 256
"""Connections sent per message."""


def _worker(source: Source, options: Options, conn: Connection | None, k: int, n: int,
            queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from portlens.pipeline.run import Pipeline

    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it (it
    # reports what came back and ends the workers), so a worker prints no traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def send_error(message: str) -> None:
        queue.put(("error", message))

    def send_warning(message: str) -> None:
        if k == 0:
            queue.put(("warning", message))

    options = replace(options, workers=1, tracker=replace(options.tracker, shard=(k, n)),
                      write=options.write if k == 0 else None)
    pipeline = Pipeline(source, options, on_error=send_error, on_warning=send_warning)
    pipeline.resolved(conn)
    pending: list[Connection] = []
    try:
        for c in pipeline.connections():
            pending.append(c)
            if len(pending) >= _CHUNK:
                queue.put(("conns", (k, pending)))
                pending = []
        if pending:
            queue.put(("conns", (k, pending)))
        queue.put(("not_counted", dict(pipeline.not_counted)))
        queue.put(("evicted", pipeline.evicted))
        if k == 0:  # every worker reads every frame: one speaks for the files
            queue.put(("files", pipeline.files))
            queue.put(("not_decoded", dict(pipeline.not_decoded)))
    except Exception as exc:
        queue.put(("error", str(exc)))
    finally:
        queue.put(("done", None))


def track_sharded(pipeline: Pipeline) -> Iterator[Connection]:
    """Connections of the pipeline's files, tracked by ``options.workers`` processes. Input
    errors and warnings reach the pipeline's handlers once each; ``pipeline.not_counted``,
    ``pipeline.evicted`` and ``pipeline.files`` are those of the whole run. The connections
    come when every worker is done, with the uids of one process, in creation order."""
    from collections import Counter

    from portlens.pipeline.shards import joined

    workers = pipeline.options.workers
    ctx = mp.get_context("fork")
    queue = ctx.Queue(maxsize=4 * workers)
    options = pipeline.options
    conn = pipeline.connection() if options.conn is not None else None  # found once, here
    procs = [ctx.Process(target=_worker, args=(pipeline.source, options, conn, k, workers,
                                               queue), daemon=True)
             for k in range(workers)]
    for p in procs:
        p.start()
    done = 0
    not_counted: Counter[str] = Counter()
    evicted = 0
    shards: list[list[Connection]] = [[] for _ in range(workers)]
    interrupted = False
    try:
        while done < workers:
            kind, payload = queue.get()
            if kind == "done":
                done += 1
            elif kind == "not_counted":
                not_counted.update(payload)
            elif kind == "evicted":
                evicted += int(payload)
            elif kind == "error":
                pipeline.error(str(payload))
            elif kind == "warning":
                pipeline.warning(str(payload))
            elif kind == "files":
                pipeline.files = payload
            elif kind == "not_decoded":
                pipeline.not_decoded = Counter(payload)
            else:
                k, conns = payload
                shards[k].extend(conns)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pipeline.not_counted = not_counted
        pipeline.evicted = evicted
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if interrupted:
        # Ctrl-C: what came back is handed over as it is (the rest of the shards is missing,
        # so their numbering cannot be joined: these uids are the shards' own).
        for part in shards:
            yield from part
        raise KeyboardInterrupt
    yield from joined(shards, pipeline.error)
