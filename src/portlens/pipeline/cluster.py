"""Tracking on a Dask cluster (``--dask ADDRESS``, ``--dask local``): flow shards as tasks.

Partitioning is by the symmetric hash of the host pair, as for ``--workers``
(pipeline/parallel.py): the capture set is cut into as many shards as the cluster has worker
threads; each shard is one task that runs the whole pipeline over every file (read, merge,
decode, select) and tracks only its own flows (``TrackerConfig.shard``; the other flows'
packets move its clock), so every connection is seen whole by one task and ends where it
ends in one process, and the result is exact: pipeline/shards.py ``join_shards`` gives the
connections the uids and the order of one process. A task's result comes back whole when it
is done, so the rows come when every task is (``--workers`` streams them instead). The
price is that every task reads and decodes every file (docs/scale.md measures it); the files
must be at the same path on every worker (a shared file system). Cutting by time instead
would read each byte once but needs a stitching merge of connections open across the cuts,
whose TCP state at the cut is not known to the later part: not exact, so not done.

A task is pure (files in, connections out) and its result is only taken when it completes,
so when a worker dies the scheduler runs its task again on another worker (Dask's
``allowed-failures``) and nothing is lost or counted twice. Tasks report progress (files
read, packets, bytes) as worker events, about twice a second, which the client turns into
``ClusterProgress`` for the terminal.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from portlens.track.config import shard_config
from portlens.track.model import Connection

if TYPE_CHECKING:
    from portlens.pipeline.run import Options, Pipeline, Source
    from portlens.sources.filestats import FileStats

PROGRESS_SECONDS = 0.5
"""How often a task reports its progress."""
POLL_SECONDS = 0.25
"""How often the client looks at the tasks (and redraws the progress line)."""
WORKERS_SECONDS = 2.0
"""How often it asks the scheduler how many workers there are (a round trip)."""


class ClusterError(RuntimeError):
    """The cluster cannot be reached or started, or a task failed for good (one line)."""


@dataclass
class ShardResult:
    """What one shard task hands back."""

    shard: int
    connections: list[Connection]
    not_counted: dict[str, int]
    evicted: int
    errors: list[str]
    warnings: list[str]
    files: list[FileStats] = field(default_factory=list)
    not_decoded: dict[int, int] = field(default_factory=dict)
    packets: int = 0
    worker: str = ""


@dataclass
class ClusterProgress:
    """The cluster's run so far, summed over the shard tasks."""

    shards: int
    shards_done: int = 0
    files: int = 0
    files_read: int = 0
    """Files read to their end, summed over shards (every shard reads every file)."""
    packets: int = 0
    """Packets decoded, summed over shards (each packet is decoded once per shard)."""
    elapsed: float = 0.0
    restarted: int = 0
    """Shard tasks seen starting again after their worker died (a task whose worker died
    before its first report is rerun all the same, but not seen here)."""
    workers: int = 0

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """One status line for a terminal."""
        files = self.files * self.shards
        text = (f"dask: {self.shards_done}/{self.shards} shards on {self.workers} workers, "
                f"files {self.files_read}/{files} read, {self.packets:,} packets, "
                f"{self.packets_per_second:,.0f} packets/s")
        if self.restarted:
            text += f", {self.restarted} restarted after a worker died"
        return text


def _run_shard(source: Source, options: Options, conn: Connection | None, k: int, n: int,
               topic: str) -> ShardResult:
    """One shard on a worker: the pipeline over every file, tracking only shard k of n."""
    from distributed import get_worker

    from portlens.pipeline.run import Pipeline

    worker = get_worker()
    errors: list[str] = []
    warnings: list[str] = []
    state = {"packets": 0, "files": 0, "last": 0.0}

    def report(force: bool = False) -> None:
        now = time.monotonic()
        if force or now - state["last"] >= PROGRESS_SECONDS:
            state["last"] = now
            worker.log_event(topic, {"shard": k, "packets": state["packets"],
                                     "files": state["files"], "worker": worker.address})

    def decoded(batch: Any) -> None:
        state["packets"] += len(batch)
        report()

    def file_done(_stats: FileStats) -> None:
        state["files"] += 1
        report()

    options = replace(options, workers=1, dask=None,
                      tracker=shard_config(options.tracker, k, n), write=None)
    pipeline = Pipeline(source, options, on_error=errors.append, on_warning=warnings.append,
                        on_decoded=decoded, on_file_done=file_done)
    pipeline.resolved(conn)
    report(force=True)  # started (again, after a worker died: the restart is seen)
    # The command line's collector settings (cli._tune_gc): tracking makes many small objects
    # and no cycles, and with the default thresholds, every full collection walking the
    # worker's own objects too, a worker spent about as long collecting as tracking
    # (measured: docs/scale.md).
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)
    try:
        conns = list(pipeline.connections())
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    report(force=True)
    return ShardResult(k, conns, dict(pipeline.not_counted), pipeline.evicted, errors, warnings,
                       pipeline.files if k == 0 else [],
                       dict(pipeline.not_decoded) if k == 0 else {}, int(state["packets"]),
                       worker.address)


def _client(address: str, workers: int) -> tuple[Any, Any]:
    """A client of the scheduler at ``address``, or of a new LocalCluster of ``workers``
    processes (one thread each: tracking holds the GIL) for "local"."""
    try:
        import distributed
    except ImportError:
        raise ClusterError("--dask needs dask.distributed: pip install 'portlens[cluster]'"
                           ) from None
    if address == "local":
        import dask

        new_cluster: Any = distributed.LocalCluster
        # The workers' statistical profiler samples every thread's stack every 10 ms: on a
        # task that is Python from end to end it cost a third of the CPU (docs/scale.md). The
        # nannies hand this configuration to the worker processes they start.
        # The scheduler's HTTP server moves off 8787 when another cluster holds it and says
        # so in a UserWarning: a traceback-like note on the user's terminal for nothing.
        # Its workers' logs are not the user's either: on a loaded machine a worker's last
        # heartbeat can meet the closing scheduler, and it logged that as an ERROR with a
        # traceback after a run that went well (seen in docs/scale.md's benchmark). A task
        # that fails reaches the client through its future, and ends the run in one line.
        with dask.config.set({"distributed.worker.profile.enabled": False}), \
                warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Port .* is already in use",
                                    category=UserWarning)
            cluster = new_cluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.CRITICAL)
        new_client: Any = distributed.Client
        return new_client(cluster), cluster
    try:
        new_client = distributed.Client
        return new_client(address, timeout="10s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"--dask {address}: cannot reach the scheduler ({exc})") from None


def _workers(client: Any) -> dict[str, Any]:
    """The scheduler's view of its workers (a call to the scheduler: not in a tight loop)."""
    workers: dict[str, Any] = client.scheduler_info().get("workers", {})
    return workers


def track_on_dask(pipeline: Pipeline) -> Iterator[Connection]:
    """Connections of the pipeline's files, tracked by shard tasks on the Dask cluster that
    ``options.dask`` names; errors, warnings, ``not_counted``, ``evicted``, ``files`` and
    ``not_decoded`` are those of the whole run, as with ``--workers``."""
    from portlens.pipeline.shards import joined

    options = pipeline.options
    assert options.dask is not None
    conn = pipeline.connection() if options.conn is not None else None  # found once, here
    client, cluster = _client(options.dask, max(options.workers, 1))
    topic = f"portlens-progress-{uuid.uuid4().hex}"
    progress = ClusterProgress(shards=0, files=len(pipeline.source.files))
    lock = threading.Lock()
    seen: dict[int, dict[str, Any]] = {}
    starts: Counter[int] = Counter()
    start = time.monotonic()

    def on_event(event: Any) -> None:
        _, msg = event if isinstance(event, tuple) else (None, event)
        with lock:
            k = int(msg["shard"])
            before = seen.get(k)
            if before is None or msg["packets"] < before["packets"] or (
                    msg["worker"] != before["worker"]):
                starts[k] += 1  # a (re)start: the shard counts from zero again
            seen[k] = msg

    try:
        workers = _workers(client)
        # One shard per worker thread (at least one).
        n = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        progress.shards = n
        progress.workers = len(workers)
        asked = time.monotonic()
        client.subscribe_topic(topic, on_event)
        futures = [client.submit(_run_shard, pipeline.source, options, conn, k, n, topic,
                                 key=f"portlens-shard-{k}-of-{n}-{topic[-8:]}", pure=False)
                   for k in range(n)]
        results: dict[int, ShardResult] = {}
        waiting = set(futures)
        while waiting:
            done = [f for f in waiting if f.done()]
            for f in done:
                waiting.discard(f)
                try:
                    r: ShardResult = f.result()
                except Exception as exc:  # KilledWorker after too many deaths, a bug
                    raise ClusterError(f"--dask: a shard failed: {type(exc).__name__}: {exc}"
                                       ) from None
                results[r.shard] = r
            with lock:
                progress.shards_done = len(results)
                progress.packets = sum(m["packets"] for m in seen.values())
                progress.files_read = sum(m["files"] for m in seen.values())
                progress.restarted = sum(max(c - 1, 0) for c in starts.values())
            now = time.monotonic()
            progress.elapsed = now - start
            if now - asked >= WORKERS_SECONDS:
                progress.workers = len(_workers(client))
                asked = now
            if pipeline.on_cluster is not None:
                pipeline.on_cluster(progress)
            if waiting:
                time.sleep(POLL_SECONDS)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    ordered = [results[k] for k in range(n)]
    not_counted: Counter[str] = Counter()
    for r in ordered:
        for message in r.errors:
            pipeline.error(message)
        for message in r.warnings:
            pipeline.warning(message)
        not_counted.update(r.not_counted)
    pipeline.not_counted = not_counted
    pipeline.evicted = sum(r.evicted for r in ordered)
    pipeline.files = ordered[0].files
    pipeline.not_decoded = Counter(ordered[0].not_decoded)
    yield from joined([r.connections for r in ordered], pipeline.error)
