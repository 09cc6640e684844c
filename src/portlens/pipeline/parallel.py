"""Tracking on several cores: shard flows by host pair, one process per shard.

Each worker runs the same pipeline over the same files (reading, merging, decoding and
selecting every packet: decoding is the cheaper half of the work, and sending decoded batches
between processes would cost more than it saves) and tracks only the flows of its shard
(track.tracker.shard_of), so every connection is seen whole by exactly one worker, and -c, the
time window and the filter select the same packets in all of them; the other shards' packets
move its clock, so its connections end where they end in one process. Worker 0 alone writes
-w and reports per-file counts.

Connections stream back to the parent as they end, with each batch's progress (the first
frames of the connections created, the last frame tracked); pipeline/shards.py
``ShardMerge`` gives them the uids and the order of a one-process run as soon as every
worker has passed the frame they ended at, so rows come while the workers run and the parent
holds only those in flight.

A worker that dies (killed, out of memory) is started again on its shard: a worker's output
is a function of the files, so the new one sends again what its predecessor had sent, and it
skips that (as many connections, created frames and messages as came), and nothing is lost or
counted twice. Each worker writes to a pipe of its own, so one that dies in the middle of a
message leaves the others' intact.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from portlens.track.config import shard_config
from portlens.track.model import Connection

if TYPE_CHECKING:
    from portlens.decode.packets import PacketBatch
    from portlens.pipeline.run import Options, Pipeline, Source
    from portlens.pipeline.stages import Tracker

_CHUNK = 256
"""Connections sent per message."""
RESTARTS = 2
"""How many times a shard is started again after its worker died, before the run fails."""


@dataclass
class _Skip:
    """What a restarted worker's predecessor had sent already (the new one sends the rest)."""

    conns: int = 0
    created: int = 0
    notes: int = 0


def _worker(source: Source, options: Options, conn: Connection | None, k: int, n: int,
            out: Pipe, skip: _Skip) -> None:
    from portlens.pipeline.run import Pipeline

    # Ctrl-C reaches every process of the terminal's group: the parent alone handles it (it
    # reports what came back and ends the workers), so a worker prints no traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sent = _Skip()

    def note(kind: str, message: str) -> None:
        sent.notes += 1
        if sent.notes > skip.notes:
            out.send((kind, message))

    def send_error(message: str) -> None:
        note("error", message)

    def send_warning(message: str) -> None:
        if k == 0:
            note("warning", message)

    # The workers keep every core busy already: a read-ahead thread in each would only take
    # turns with them (more CPU, no sooner done).
    options = replace(options, workers=1, tracker=shard_config(options.tracker, k, n),
                      write=options.write if k == 0 else None, read_ahead=False)
    pipeline = Pipeline(source, options, on_error=send_error, on_warning=send_warning)
    pipeline.resolved(conn)
    pending: list[Connection] = []
    last_frame = [-1]

    def sink(c: Connection) -> None:
        sent.conns += 1
        if sent.conns > skip.conns:
            pending.append(c)
            if len(pending) >= _CHUNK:
                flush()

    def flush() -> None:
        if pending:
            out.send(("conns", pending[:]))
            pending.clear()

    def seen(batch: PacketBatch) -> None:
        if len(batch):
            last_frame[0] = int(batch.frame[-1])

    def batch_done(tracker: Tracker) -> None:
        flush()
        created = tracker.created_frames()
        start = max(0, skip.created - sent.created)
        sent.created += len(created)
        out.send(("progress", (created[start:].tolist(), last_frame[0])))

    try:
        pipeline.track(sink, on_batch=batch_done, on_packets=seen)
        flush()
        out.send(("finished", (dict(pipeline.not_counted), pipeline.evicted,
                               pipeline.files if k == 0 else None,
                               dict(pipeline.not_decoded) if k == 0 else None)))
    except Exception as exc:
        note("error", str(exc))
        out.send(("failed", None))
    finally:
        out.close()


class _Shard:
    """The parent's side of one worker."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.proc: Any = None
        self.pipe: Pipe | None = None
        self.got = _Skip()
        self.starts = 0
        self.finished = False


def track_sharded(pipeline: Pipeline) -> Iterator[Connection]:
    """Connections of the pipeline's files, tracked by ``options.workers`` processes, with
    the uids and in the order of one process, as soon as every worker has passed where they
    ended. Input errors and warnings reach the pipeline's handlers once each;
    ``pipeline.not_counted``, ``pipeline.evicted`` and ``pipeline.files`` are those of the
    whole run."""
    from portlens.pipeline.shards import ShardJoinError, ShardMerge

    workers = pipeline.options.workers
    ctx = mp.get_context("fork")
    options = pipeline.options
    conn = pipeline.connection() if options.conn is not None else None  # found once, here
    shards = [_Shard(k) for k in range(workers)]

    def start(s: _Shard) -> None:
        reader, writer = ctx.Pipe(duplex=False)
        s.proc = ctx.Process(target=_worker, args=(pipeline.source, options, conn, s.k,
                                                   workers, writer, replace(s.got)),
                             daemon=True)
        s.proc.start()
        writer.close()  # the worker's end: EOF here when it is gone
        s.pipe = reader
        s.starts += 1

    merge = ShardMerge(workers)
    not_counted: Counter[str] = Counter()
    evicted = 0
    joining = True
    for s in shards:
        start(s)
    try:
        while not all(s.finished for s in shards):
            live = {s.pipe: s for s in shards if not s.finished and s.pipe is not None}
            for ready in wait(list(live)):
                s = live[ready]  # type: ignore[index]
                assert s.pipe is not None
                message: Any
                try:
                    message = s.pipe.recv()
                except (EOFError, OSError):
                    message = ("died", None)
                kind, payload = message
                if kind == "conns":
                    s.got.conns += len(payload)
                    merge.add(s.k, payload)
                elif kind == "progress":
                    created, frame = payload
                    s.got.created += len(created)
                    merge.progress(s.k, created, frame)
                elif kind in ("error", "warning"):
                    s.got.notes += 1
                    (pipeline.error if kind == "error" else pipeline.warning)(str(payload))
                elif kind == "finished":
                    counts, shard_evicted, files, not_decoded = payload
                    not_counted.update(counts)
                    evicted += int(shard_evicted)
                    if files is not None:
                        pipeline.files = files
                        pipeline.not_decoded = Counter(not_decoded)
                    s.finished = True
                    merge.finish(s.k)
                elif kind == "failed":  # an input or output error, said already
                    s.finished = True
                    merge.finish(s.k)
                else:  # died
                    s.proc.join()
                    if s.starts > RESTARTS:
                        # Given up: the other shards' rows still come, this one's are
                        # missing, and the run says so (exit status 2).
                        pipeline.error(f"--workers: the worker of shard {s.k} of {workers} "
                                       f"died {s.starts} times (exit status "
                                       f"{s.proc.exitcode}); its connections are missing")
                        s.finished = True
                        merge.finish(s.k)
                    else:
                        start(s)
            if joining:
                try:
                    yield from merge.ready()
                except ShardJoinError as exc:
                    pipeline.error(f"{exc}; the rows keep the shards' own uids")
                    joining = False
            if not joining:
                yield from merge.rest()
    except KeyboardInterrupt:
        # Ctrl-C: the rows in flight are handed over as they are (the workers' progress
        # cannot place them any more: these uids are the shards' own).
        yield from merge.rest()
        raise
    finally:
        # Also on Ctrl-C: the workers end, and the counts are those that came back.
        pipeline.not_counted = not_counted
        pipeline.evicted = evicted
        for s in shards:
            if s.proc is not None and s.proc.is_alive():
                s.proc.terminate()
            if s.proc is not None:
                s.proc.join()
            if s.pipe is not None:
                s.pipe.close()
    if joining:
        yield from merge.ready()
    yield from merge.rest()
