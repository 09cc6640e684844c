"""The one wiring: source -> decode -> select -> (write) -> track -> connections.

The command line, the Python API (``portlens.open``), the worker processes of a sharded run
and live capture all read packets through a :class:`Pipeline`, so they select, number, count
and track packets the same way. Reports are built from what it hands out (decoded batches,
connections, transitions); nothing here formats anything.

Problems with the input are not raised mid-stream: each is one line handed to ``on_error``
(and kept in ``errors``) after the good frames before it were processed, so a damaged file
among many still gives everything that could be read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from portlens.sources.filestats import FileStats
from portlens.track.config import TrackerConfig

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from portlens.analysis.capture_stats import CaptureStats
    from portlens.capture import LiveOptions, LiveSession
    from portlens.decode.packets import PacketBatch
    from portlens.filter import PacketFilter
    from portlens.pipeline.cluster import ClusterProgress
    from portlens.pipeline.select import Selection
    from portlens.pipeline.stages import Tracker
    from portlens.sources.frames import FrameBatch
    from portlens.sources.writer import PcapngWriter, PcapWriter
    from portlens.track.model import Connection, Transition

# The stages are imported where they are used (docs/benchmarks.md): `packets --stats` of one
# file is a loop of calls into the compiled core and needs none of them, nor numpy, and the
# imports of the rest were half of its start-up.

LINKTYPE_ETHERNET = 1
_Ended = TypeVar("_Ended")
"""What a tracker hands out for a batch: its ended connections as columns or objects."""
DEFAULT_SNAPLEN = 262144
"""sources.writer.DEFAULT_SNAPLEN (tests/test_pipeline.py holds them equal)."""
COLUMN_BLOCK = 16384
"""Ended connections handed to ``track(on_columns=...)`` at once: an aggregate's cost is a few
array operations per block and group, so blocks of a hundred rows (what one batch ends) would
cost more than the rows themselves; 16k rows of columns are about 10 MB."""


class ConnectionNotFoundError(LookupError):
    """--conn UID names no connection of the source."""


class WriteError(ValueError):
    """-w cannot hold what was selected (one line)."""


@dataclass(frozen=True)
class Source:
    """Where packets come from: capture files (read as one stream in time order) or a live
    interface."""

    files: tuple[str, ...] = ()
    live: LiveOptions | None = None

    @classmethod
    def of(cls, source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
           *, interface: str | None = None) -> Source:
        """Files, directories (their captures) or, with ``interface``, a live capture.

        A single string is one path (never iterated character by character); a string that
        names no file but a network interface (``lo``, ``eth0``, ``any``) is that interface.
        """
        from portlens.capture import LiveOptions

        if interface is not None:
            if source is not None:
                raise ValueError("give capture files or an interface, not both")
            return cls(live=LiveOptions(interface=interface))
        if source is None:
            raise ValueError("no source: give a capture file, a directory or interface=")
        if isinstance(source, (str, os.PathLike)):
            text = os.fspath(source)
            if not os.path.exists(text) and _is_interface(text):
                return cls(live=LiveOptions(interface=text))
            source = [text]
        from portlens.sources.merge import capture_paths

        return cls(files=tuple(capture_paths(list(source))))

    @property
    def is_live(self) -> bool:
        return self.live is not None


def _is_interface(name: str) -> bool:
    return name == "any" or (os.sep not in name and os.path.isdir(f"/sys/class/net/{name}"))


@dataclass
class Options:
    """What a run selects and how it tracks (the command line's -f, -c, --start, --end,
    --conn, -w, tracking options, --workers)."""

    filter: str | PacketFilter | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    count: int | None = None
    conn: str | None = None
    """Keep only the packets of the connection with this uid (found by a first pass)."""
    write: str | os.PathLike[str] | None = None
    """Write the selected frames here (pcap, or pcapng with ``pcapng``)."""
    pcapng: bool = False
    snaplen: int = DEFAULT_SNAPLEN
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    workers: int = 1
    dask: str | None = None
    """Track on a Dask cluster: a scheduler address, or "local" for a LocalCluster of
    ``workers`` processes (pipeline/cluster.py)."""
    reference: bool = False
    """Decode and track with the Python reference implementations (for cross-checking)."""
    checksums: bool | None = None
    """Verify checksums while decoding: True, False, or None for "where they are read":
    packets() verifies them (they are printed), tracking only when the tracker drops bad ones
    (docs/decoding.md, *Checksums*)."""
    read_ahead: bool = True
    """Read and decode files in a thread of their own ahead of the caller (pipeline/ahead).
    The HTML report turns it off: its own work on each batch holds the GIL, so the two
    threads took turns, for 0.5 CPU s more and no gain in time (docs/benchmarks.md)."""
    frames: npt.NDArray[np.int64] | None = None
    """Decode only the frames with these numbers (sorted; one capture file, where frame
    numbers name frames), reading past the others: the HTML report's ladders pass, which
    knows from its first pass which frames it needs (pipeline/report.py)."""
    chunk_bytes: int = 2 << 20
    """Bytes read per batch. A batch's decoded columns, and the connections it ends, are held
    at once, for each batch in flight (the one tracked and those read ahead: pipeline/ahead):
    2 MiB of 64-byte SYNs past --max-flows ends 30,000 connections a batch. Each batch costs
    its steps through Python (about 0.2 ms), which the tracker's thread waits for: on the
    benchmark capture 2 MiB took that thread's Python from 0.37-0.49 to 0.27-0.39 CPU s, 4 MiB
    to 0.23-0.28, but a 1M SYN flood's `conns` peaks at 181 MB with 2 MiB (143 with 1 MiB)
    and 276 MB with 4 MiB, too near issue 11's 300 (docs/benchmarks.md)."""


class Pipeline:
    """One run over a source. Iterate :meth:`packets` or :meth:`connections` (or call
    :meth:`track`); file sources can be iterated again (each pass re-reads the files)."""

    def __init__(self, source: Source, options: Options | None = None, *,
                 on_error: Callable[[str], None] | None = None,
                 on_warning: Callable[[str], None] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 on_decoded: Callable[[PacketBatch], None] | None = None,
                 on_file_done: Callable[[FileStats], None] | None = None,
                 on_cluster: Callable[[ClusterProgress], None] | None = None) -> None:
        self.source = source
        self.options = options or Options()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.files: list[FileStats] = []
        """Per-file counts of the last pass over the files."""
        self.not_counted: Counter[str] = Counter()
        """Frames in no connection, by why (the last tracking pass)."""
        self.evicted = 0
        """Flows the last tracking pass evicted past the flow cap (all workers)."""
        self.not_decoded: Counter[int] = Counter()
        """Frames of link types portlens does not decode, by link type (all frames read,
        before selection; the last pass over the files)."""
        self.fragment_counters: dict[str, int] = {}
        """The fragment reassembler's counters after the last pass over the files."""
        self.live_session: LiveSession | None = None
        self._on_error = on_error
        self._on_warning = on_warning
        self._progress = progress
        self._on_decoded = on_decoded
        """Sees every decoded batch before selection (counts of the whole input)."""
        self._on_file_done = on_file_done
        self.on_cluster = on_cluster
        """Progress of a --dask run (pipeline/cluster.py), about twice a second."""
        f = self.options.filter
        if isinstance(f, str):
            from portlens.filter import compile_filter

            f = compile_filter(f)
        self.packet_filter = f
        if self.packet_filter is not None and self.packet_filter.matches_all:
            self.packet_filter = None
        self._conn: Connection | None = None

    # -- problems ------------------------------------------------------------------------------

    def error(self, message: str) -> None:
        if message in self.errors:
            return
        self.errors.append(message)
        if self._on_error is not None:
            self._on_error(message)

    def warning(self, message: str) -> None:
        if message in self.warnings:
            return
        self.warnings.append(message)
        if self._on_warning is not None:
            self._on_warning(message)

    # -- packets -------------------------------------------------------------------------------

    def selection(self) -> Selection:
        from portlens.pipeline.select import Selection

        o = self.options
        return Selection(self.packet_filter, o.start_ns, o.end_ns, o.count, self._connection())

    def connection(self) -> Connection:
        """The connection ``options.conn`` names, found by a first tracking pass; raises
        ConnectionNotFoundError when no connection has that uid."""
        conn = self._connection()
        if conn is None:
            raise ConnectionNotFoundError("no connection uid given")
        return conn

    def resolved(self, conn: Connection | None) -> None:
        """The connection ``options.conn`` names, found elsewhere (by a parent process)."""
        self._conn = conn

    def select_connection(self, conn: Connection) -> None:
        """From now on, only the packets of ``conn`` (found by the caller's own pass)."""
        self.options = replace(self.options, conn=conn.uid)
        self._conn = conn

    def first_pass(self) -> Pipeline:
        """The same source and selection, without --conn and writing nothing: the pass that
        finds a connection before its packets are read. Its problems are this pipeline's."""
        return Pipeline(self.source, replace(self.options, conn=None, write=None),
                        on_error=self.error, on_warning=self.warning)

    def _connection(self) -> Connection | None:
        uid = self.options.conn
        if uid is None:
            return None
        if self._conn is None:
            inner = self.first_pass()
            inner.options = replace(inner.options, workers=1, dask=None, count=None)
            self._conn = inner.find_connection(uid)
            self.not_decoded = inner.not_decoded  # what was read, should no more pass follow
            if self._conn is None:
                raise ConnectionNotFoundError(
                    f"no connection with uid {uid} (`portlens conns` lists them)")
        return self._conn

    def frames(self) -> Generator[FrameBatch, None, None]:
        """The source's frames: the files merged in time order."""
        from portlens.sources.merge import merged_frames

        self.files = []
        yield from merged_frames(self.source.files, self.error, self.files, self._progress,
                                 self.options.chunk_bytes, self._on_file_done)
        for f in self.files:
            for warning in (f.backwards_warning(), f.cut_warning()):
                if warning is not None:
                    self.warning(warning)

    def _checksums(self, tracking: bool) -> bool:
        wanted = self.options.checksums
        if wanted is not None:
            return wanted
        return self.options.tracker.drop_bad_checksums if tracking else True

    def batches(self, *, tracking: bool = False) -> Iterator[tuple[FrameBatch, PacketBatch]]:
        """Selected frames and their decoded packets (row for row, but for frames that give
        more rows than one: column sub); -w gets them as they go.
        ``tracking``: for the tracker, which reads checksums only to drop bad ones."""
        from portlens.analysis.capture_stats import count_not_decoded
        from portlens.pipeline.select import Selector
        from portlens.pipeline.stages import new_decoder

        if self.source.is_live:
            raise ValueError("a live source gives packets(), not frames")
        selector = Selector(self.selection())
        decoder = new_decoder(reference=self.options.reference,
                              checksums=self._checksums(tracking))
        self.not_decoded = Counter()
        writer = (_Writer(self.options, self.error) if self.options.write is not None
                  else None)
        source = self.frames()
        only = self.options.frames

        def decoded() -> Generator[tuple[FrameBatch, PacketBatch], None, None]:
            try:
                for frames in source:
                    if only is not None:
                        taken = _only_frames(frames, only)
                        if taken is None:
                            return  # past the last frame asked for
                        frames = taken
                    yield frames, decoder.decode(frames)
            finally:
                source.close()  # the files are closed even when -c stops the reading early

        # Python's decoder (reference) would only contend for the GIL
        if self.options.reference or not self.options.read_ahead:
            pairs: Any = decoded()
        else:
            from portlens.pipeline.ahead import Ahead

            pairs = Ahead(decoded())
        try:
            for frames, packets in pairs:
                count_not_decoded(self.not_decoded, packets)
                if self._on_decoded is not None:
                    self._on_decoded(packets)
                rows = selector.rows(packets)
                if rows is not None:
                    import numpy as np  # not on the `packets --stats` path

                    frames = frames.take(rows if len(packets) == len(frames)
                                         else np.unique(packets.frame_index()[rows]))
                    packets = packets.take(rows)
                if writer is not None:
                    writer.write(frames)
                yield frames, packets
                del frames, packets  # the chunk is not kept alive while the next is read
                if selector.done:
                    break
        finally:
            pairs.close()  # the reading stops and the files are closed before this goes on
            self.fragment_counters = dict(decoder.fragment_counters)
            if writer is not None:
                writer.close(self.files)

    def packets(self, *, tracking: bool = False) -> Iterator[PacketBatch]:
        """Decoded, selected batches in capture order (``tracking``: see batches)."""
        if self.source.is_live:
            yield from self._live_packets(tracking)
            return
        for pair in self.batches(tracking=tracking):
            yield pair[1]
            del pair

    # -- the summary of `packets --stats` -------------------------------------------------------

    def count_stats(self, stats: CaptureStats) -> None:
        """Add the source's `packets --stats` summary (of what the selection keeps) to
        ``stats``, which holds what was counted when Ctrl-C interrupts.

        Capture files read whole (no selection, no -w, not --reference) are read, decoded
        and counted by the compiled core, one call per batch and nothing else in Python (one
        file: ``_scan``; several, merged in time order: ``_scan_files``); otherwise the
        selected batches are counted as they come (``CaptureStats.add``)."""
        if self._whole() and len(self.source.files) == 1:
            self._scan(self.source.files[0], stats)
            return
        if self._whole() and self._on_file_done is None:
            self._scan_files(stats)
            return
        try:
            for batch in self.packets():
                stats.add(batch)
        finally:
            stats.add_fragment_counters(self.fragment_counters)

    def held(self) -> Generator[tuple[Any, np.ndarray | None], None, None] | None:
        """The capture files' batches, each held in turn where the core decoded it: the
        ``portlens._core.DecodedFile`` (``_decoded``) after each ``hold``, and the rows a
        filter or a time window keeps (int64 row numbers; None: every row), for a writer of
        the core to read (`portlens packets`' lines: report/packets.py ``held_lines``), so
        that no batch becomes NumPy arrays (a selection reads the few columns it needs, as
        the tracker's does: ``_ended_in_core``). Only for files read whole but for a
        selection (``_whole``), and ahead; else None, and ``packets()`` gives the batches."""
        if not (self.reads_in_core() and self.options.read_ahead):
            return None
        selection = self.selection()
        select = None if selection.everything else _selector_rows(selection)
        return self._decoded(partial(_held, select=select), tracking=False)

    def _whole(self, *, selecting: bool = False) -> bool:
        """Capture files, every frame read, decoded by the core, and nothing else looking at
        their batches: no selection, no -w, no --reference, no ``on_decoded``. The core can
        then read and decode the batches and use them without handing them to Python
        (``packets --stats`` of one file: ``_scan``; tracking: ``_ended_in_core``).
        ``selecting``: a filter and a time window allowed too, which read every batch to its
        end (the tracker then takes the rows they keep: ``Tracker.feed_held``); a count or a
        connection stops or looks elsewhere, and stays on the general path."""
        o = self.options
        selected = selecting or (self.packet_filter is None and o.start_ns is None
                                 and o.end_ns is None)
        return (bool(self.source.files) and not any("\0" in f for f in self.source.files)
                and selected and o.count is None and o.conn is None and o.write is None
                and o.frames is None and not o.reference and self._on_decoded is None)

    def _scan(self, path: str, stats: CaptureStats) -> None:
        """One file through ``portlens._core.PacketScan`` (crates/core/src/scan.rs)."""
        import importlib

        from portlens.sources.linktypes import SUPPORTED

        core = importlib.import_module("portlens._core")
        fs = FileStats(path)
        self.files = [fs]
        self.not_decoded = Counter()
        try:
            # The core reads ahead in a thread of its own while each step decodes and counts.
            scan = core.PacketScan(path, name=path, checksums=self._checksums(False),
                                   supported=sorted(SUPPORTED), read_ahead=True)
        except core.CaptureError as exc:
            fs.error = str(exc)
            self.error(str(exc))
            return
        fs.format, fs.compression = scan.format, scan.compression
        interfaces = scan.interfaces()
        if interfaces:
            fs.linktype = interfaces[0][1]
        try:
            while scan.step():
                if self._progress is not None:
                    self._progress(scan.bytes_read, scan.total_bytes)
        except core.CaptureError as exc:
            fs.error = str(exc)
            self.error(str(exc))
        finally:  # also on Ctrl-C: what was counted is reported
            scan.close()
            counts = scan.counts()
            self.fragment_counters = dict(scan.fragment_counters)
            self._add_counted(stats, counts)
            _file_counts(fs, counts)
            fs.frames_cut = int(scan.frames_cut)
        for warning in (fs.backwards_warning(), fs.cut_warning()):
            if warning is not None:
                self.warning(warning)

    def _scan_files(self, stats: CaptureStats) -> None:
        """Several files read whole through ``portlens._core.DecodedFile.merged``: merged in
        time order by a thread of the core, decoded and counted by this one a batch a call
        (crates/core/src/decoded.rs), nothing else in Python."""
        with contextlib.closing(self._decoded(_step, stats=stats)) as steps:
            for _ in steps:
                pass

    def _add_counted(self, stats: CaptureStats, counts: dict[str, Any]) -> None:
        """The core's counts (``PacketScan.counts``), with the fragment counters, added to
        ``stats`` in place (the caller holds it)."""
        from portlens.analysis.capture_stats import CaptureStats

        counted = CaptureStats.from_counts(counts)
        counted.add_fragment_counters(self.fragment_counters)
        for name in counted.__dataclass_fields__:
            setattr(stats, name, getattr(stats + counted, name))
        self.not_decoded = Counter(counted.not_decoded)

    def _live_packets(self, tracking: bool) -> Iterator[PacketBatch]:
        from portlens.capture import LiveSession
        from portlens.pipeline.select import Selection, Selector

        o = self.options
        assert self.source.live is not None
        if o.conn is not None:
            raise ValueError("--conn needs a capture file (a live capture is read once)")
        live = replace(self.source.live, count=o.count,
                       write=Path(o.write) if o.write is not None else None,
                       pcapng=o.pcapng, snaplen=o.snaplen,
                       checksums=self._checksums(tracking))
        session = LiveSession(live, self.packet_filter)
        self.live_session = session
        window = Selector(Selection(start_ns=o.start_ns, end_ns=o.end_ns))
        for batch in session.batches():
            rows = window.rows(batch)
            yield batch if rows is None else batch.take(rows)

    # -- connections ---------------------------------------------------------------------------

    def tracker(self, on_transition: Callable[[Transition], None] | None = None) -> Tracker:
        from portlens.pipeline.stages import new_tracker

        config = self.options.tracker
        if on_transition is None and self.threads > 1:
            # a transition stream comes in one tracker's order from one tracker only
            config = replace(config, threads=self.threads)
        return new_tracker(config, on_transition, reference=self.options.reference)

    def track(self, sink: Callable[[Connection], None],
              on_transition: Callable[[Transition], None] | None = None, *,
              on_batch: Callable[[Tracker], None] | None = None,
              on_packets: Callable[[PacketBatch], None] | None = None,
              wall_clock: bool = False,
              on_columns: Callable[[dict[str, Any]], None] | None = None,
              column_block: int | None = None,
              column_names: Collection[str] | None = None,
              on_conn_log: Callable[[str, int], None] | None = None,
              core_fold: Callable[[], Any] | None = None) -> None:
        """Hand each connection to ``sink`` as it ends. Interrupted (Ctrl-C, a closed pipe),
        the connections still open are handed over all the same, as at the end of the
        capture, so a streaming output ends with every connection seen.

        ``on_batch(tracker)`` runs after every batch (a live view reads the open connections
        there). With ``wall_clock`` (a live capture's dashboard), the clock also moves with
        real time, ten times a second, so idle connections end while no packet arrives.
        ``on_packets(batch)`` sees each selected batch before the tracker does, so a report
        that needs packets as well as connections (`portlens report`) reads the source once.

        ``on_columns``: where the tracker can (the Rust tracker, in this process), the ended
        connections go there instead of to ``sink``, as the core's columns (track/rust.py)
        in blocks of at least ``column_block`` rows (default COLUMN_BLOCK), so that an
        aggregate folds them with a few array operations a block (analysis/columns.py) and
        no Connection is made; a streaming output takes 1, each batch's as it ends. With
        ``column_names``, a block joined from batches holds only those columns (and ``uid``):
        what the aggregate reads.

        ``on_conn_log``: where the tracker can (the Rust tracker, in this process, keeping no
        transitions for the rows), each batch's ended connections go there as their conn.log
        lines and how many, written by the core, instead of to ``on_columns`` or ``sink``:
        `conns --format zeek` then makes no Python object a connection, and never imports
        NumPy for them. ``core_fold`` (made when taken: a ``portlens._core.PortFold``,
        ``HandshakeFold`` or ``SocketFold``): likewise, the core folds each batch's ended
        connections into it (`ports`, `handshakes`, `sockets`)."""
        in_core = on_conn_log is not None or core_fold is not None
        if (on_columns is not None or in_core) and not self.sharded:
            tracker = self.tracker(on_transition)
            if in_core and on_transition is None and self._track_in_core(
                    tracker, on_conn_log, core_fold, on_batch, on_packets, wall_clock):
                return
            if on_columns is not None and getattr(tracker, "columnar", False):
                self._track_columns(tracker, on_columns, on_batch, on_packets,
                                    COLUMN_BLOCK if column_block is None else column_block,
                                    column_names, wall_clock)
                return
        if self.sharded:
            if on_transition is not None or on_batch is not None or on_packets is not None:
                raise ValueError("transitions, packets and live views are followed in one "
                                 "process")
            for c in self._sharded():
                sink(c)
            return
        tracker = self.tracker(on_transition)

        def each(connections: Iterable[Connection]) -> None:
            for c in connections:
                sink(c)

        self._track_batches(tracker, each, columns=False, on_batch=on_batch,
                            on_packets=on_packets, wall_clock=wall_clock)

    def _track_in_core(self, tracker: Any, on_conn_log: Callable[[str, int], None] | None,
                       core_fold: Callable[[], Any] | None,
                       on_batch: Callable[[Tracker], None] | None,
                       on_packets: Callable[[PacketBatch], None] | None,
                       wall_clock: bool) -> bool:
        """track() with the ended connections as conn.log lines, or folded into
        ``core_fold``, by the core, where ``tracker`` can (a RustTracker keeping no
        transitions for its rows); False where it cannot."""
        if not getattr(tracker, "columnar", False) or tracker.config.keep_transitions:
            return False
        hand_over: Callable[[Any], None]
        if on_conn_log is not None:
            tracker.ended_as_conn_log()

            def hand_over(block: tuple[str, int]) -> None:
                if block[1]:
                    on_conn_log(*block)
        else:
            assert core_fold is not None
            tracker.ended_into(core_fold())

            def hand_over(_rows: int) -> None:
                pass
        self._track_batches(tracker, hand_over, columns=True, on_batch=on_batch,
                            on_packets=on_packets, wall_clock=wall_clock)
        return True

    def _track_columns(self, tracker: Any, on_columns: Callable[[dict[str, Any]], None],
                       on_batch: Callable[[Tracker], None] | None,
                       on_packets: Callable[[PacketBatch], None] | None,
                       block_rows: int, names: Collection[str] | None = None,
                       wall_clock: bool = False) -> None:
        """track() with the ended connections as column blocks (a RustTracker)."""
        if names is not None:
            tracker.keep_columns(names)
        blocks = ColumnBlocks(on_columns, block_rows, names)
        self._track_batches(tracker, blocks.add, columns=True, on_batch=on_batch,
                            on_packets=on_packets, wall_clock=wall_clock, flush=blocks.flush)

    def _track_batches(self, tracker: Any, hand_over: Callable[[Any], None], *, columns: bool,
                       on_batch: Callable[[Tracker], None] | None,
                       on_packets: Callable[[PacketBatch], None] | None,
                       wall_clock: bool, flush: Callable[[], None] | None = None) -> None:
        """``track``'s loop: each batch's ended connections (Connections, or with ``columns``
        the core's columns) to ``hand_over``, then at the end those still open and ``flush``;
        a Ctrl-C while a file is read is held back until a batch's were handed over
        (_HeldInterrupt)."""
        feed: Callable[[PacketBatch], Any] = (
            tracker.feed_columns if columns else lambda batch: self._feed(tracker, batch))
        advance = tracker.advance_columns if columns else tracker.advance
        last_tick = 0.0
        end = _HeldInterrupt()
        if not self.source.is_live:
            end.hold()
        try:
            in_core = self._ended_in_core(tracker, on_packets, wall_clock, columns=columns)
            if in_core is not None:
                with contextlib.closing(in_core) as ended:
                    for batch_ended in ended:
                        hand_over(batch_ended)
                        if on_batch is not None:
                            on_batch(tracker)
                        end.check()
                return
            for batch in self.packets(tracking=True):
                if on_packets is not None:
                    on_packets(batch)
                hand_over(feed(batch))
                if wall_clock and time.monotonic() - last_tick >= 0.1:
                    last_tick = time.monotonic()
                    hand_over(advance(time.time_ns()))
                if on_batch is not None:
                    on_batch(tracker)
                end.check()
        finally:
            # first, before any call lets Python act on a Ctrl-C (_HeldInterrupt)
            installed = signal.signal(signal.SIGINT, end) if end.main_thread else None
            try:
                for ended_at_end in (tracker.finish_columns() if columns
                                     else (tracker.finish(),)):
                    hand_over(ended_at_end)
                if flush is not None:
                    flush()
                self.not_counted = Counter(tracker.not_counted)
                self.evicted = tracker.evicted
            finally:
                end.restore(installed)

    def reads_in_core(self) -> bool:
        """Whether a thread of the core would read and decode this run's batches for the
        compiled tracker (``_ended_in_core``): capture files read whole (``_whole``: a filter
        and a time window allowed), several only when nobody follows them file by file
        (``on_file_done``)."""
        files = self.source.files
        return self._whole(selecting=True) and (len(files) == 1 or self._on_file_done is None)

    def _ended_in_core(self, tracker: Any, on_packets: Callable[[PacketBatch], None] | None,
                       wall_clock: bool, *, columns: bool
                       ) -> Generator[Any, None, None] | None:
        """Each batch's ended connections, as the tracker's columns (``columns``) or
        Connections, when a thread of the core reads and decodes the batches and the compiled
        tracker takes them where they are, never NumPy arrays (``reads_in_core``), with the
        compiled tracker of this process. ``on_packets`` (the HTML report's counts) reads each
        batch the core holds, its selected rows, as a PacketBatch (``HeldBatch``: only the
        columns it reads come over) before the tracker takes it. Else None: ``packets()``
        and the tracker's ``feed``."""
        if not (self.reads_in_core() and self.options.read_ahead and not wall_clock
                and getattr(tracker, "decodes_in_core", False)):
            return None
        feed: Callable[..., Any] = (tracker.feed_decoded if columns
                                    else tracker.feed_decoded_connections)
        selection = self.selection()
        select = None if selection.everything else _selector_rows(selection)
        if on_packets is None:
            return self._decoded(feed if select is None else partial(feed, select=select))

        def seen(batch: PacketBatch) -> Any:
            """The rows of ``batch`` to track (None: all), once ``on_packets`` saw them."""
            rows = None if select is None else select(batch)
            on_packets(batch if rows is None else batch.take(rows))
            return rows

        return self._decoded(partial(feed, select=seen))

    def _decoded(self, feed: Callable[[Any], _Ended | None], *,
                 stats: CaptureStats | None = None,
                 tracking: bool | None = None) -> Generator[_Ended, None, None]:
        """What ``feed(file)`` gives for each batch of the capture files read whole, read and
        decoded ahead by a thread of the core (``portlens._core.DecodedFile``,
        crates/core/src/decoded.rs; several files merged in time order there,
        crates/core/src/capture/merge.rs, as sources/merge.py merges them), until it gives
        None at the end. The files' statistics, problems, frames not decoded, fragment
        counters and progress are the ones ``frames()`` and ``batches()`` give.

        ``stats`` (`packets --stats` of several files): the batches are counted instead, by
        ``feed`` (``_step``), and what was counted is added to ``stats`` at the end, also on
        Ctrl-C. ``tracking``: for the tracker (checksums as ``batches``' ``tracking``; by
        default, unless counting)."""
        import importlib

        from portlens.sources.files import MIN_CHUNK_BYTES
        from portlens.sources.linktypes import SUPPORTED

        core = importlib.import_module("portlens._core")
        paths = self.source.files
        self.files = [FileStats(p) for p in paths]
        self.not_decoded = Counter()
        chunk = max(self.options.chunk_bytes, MIN_CHUNK_BYTES)
        tracking = stats is None if tracking is None else tracking
        checksums, supported = self._checksums(tracking=tracking), sorted(SUPPORTED)
        if len(paths) > 1:
            file = core.DecodedFile.merged(list(paths), chunk, checksums=checksums,
                                           supported=supported, count=stats is not None)
        else:
            assert stats is None, "one file is counted by _scan"
            try:
                file = core.DecodedFile(paths[0], chunk, paths[0], checksums=checksums,
                                        supported=supported)
            except core.CaptureError as exc:  # a file never opened is never done with
                self.files[0].error = str(exc)
                self.error(str(exc))
                self.fragment_counters = dict(core.Decoder().fragment_counters)  # none decoded
                return
            self.files[0].format = "pcapng" if file.format == "pcapng" else "pcap"
            self.files[0].compression = file.compression
        read_to_end = False
        try:
            while True:
                ended = feed(file)
                for problem in file.take_problems():  # several files: one that failed
                    self.error(problem)
                if ended is None:
                    break
                if self._progress is not None:
                    self._progress(file.bytes_read, file.total_bytes)
                yield ended
            read_to_end = True
        except core.CaptureError as exc:  # one file's last problem (several: a panic's)
            read_to_end = True
            if len(paths) == 1:
                self.files[0].error = str(exc)
            self.error(str(exc))
        finally:  # also on Ctrl-C: the files' figures as of the last batch tracked
            file.close()
            for problem in file.take_problems():
                self.error(problem)
            self._file_reports(file, read_to_end)
            if stats is not None:
                self._add_counted(stats, file.capture_counts())

    def _file_reports(self, file: Any, read_to_end: bool) -> None:
        """The FileStats of what ``_decoded`` read (``file``, closed), frames not decoded,
        the fragment counters, and the files' warnings."""
        counts = file.counts()
        reports = file.reports()
        if reports is None:  # one file: its counts as of the last batch tracked
            fs = self.files[0]
            _file_counts(fs, counts)
            interfaces = file.interfaces()
            if interfaces:
                fs.linktype = interfaces[0][1]
            fs.frames_cut = int(file.frames_cut)
            if read_to_end and self._on_file_done is not None:
                self._on_file_done(fs)
        else:
            for fs, report in zip(self.files, reports, strict=True):
                _file_counts(fs, report)
                fs.format = report["format"] or ""
                fs.compression, fs.linktype = report["compression"], report["linktype"]
                fs.frames_cut, fs.error = report["frames_cut"], report["error"]
        self.not_decoded = Counter(counts["not_decoded"])
        self.fragment_counters = dict(file.fragment_counters)
        for fs in self.files:
            for warning in (fs.backwards_warning(), fs.cut_warning()):
                if warning is not None:
                    self.warning(warning)

    def connections(self, on_transition: Callable[[Transition], None] | None = None
                    ) -> Iterator[Connection]:
        """The connections as they end, then those open at the end of the capture."""
        if self.sharded:
            yield from self._sharded()
            return
        tracker = self.tracker(on_transition)
        in_core = self._ended_in_core(tracker, None, False, columns=False)
        if in_core is not None:
            with contextlib.closing(in_core) as ended:
                for batch_ended in ended:
                    yield from batch_ended
        else:
            for batch in self.packets(tracking=True):
                yield from self._feed(tracker, batch)
        yield from tracker.finish()
        self.not_counted = Counter(tracker.not_counted)
        self.evicted = tracker.evicted

    def _feed(self, tracker: Tracker, batch: PacketBatch) -> Iterable[Connection]:
        """The connections that end with ``batch`` (a tracker of one shard tracks only its
        own packets, and its clock follows every packet: track/tracker.py ``feed``)."""
        return tracker.feed(batch)

    @property
    def sharded(self) -> bool:
        """Tracked in shards elsewhere: a Dask cluster, or worker processes (--workers with
        the Python reference tracker; the compiled one tracks shards in threads: ``threads``)."""
        o = self.options
        return not self.source.is_live and (
            o.dask is not None or (o.workers > 1 and o.reference))

    @property
    def threads(self) -> int:
        """Threads of flow shards in this process's tracker (--workers), files or live."""
        o = self.options
        if o.dask is not None or o.reference:
            return 1
        return max(1, o.workers)

    def _sharded(self) -> Iterator[Connection]:
        if self.options.dask is not None:
            from portlens.pipeline.cluster import track_on_dask

            return track_on_dask(self)
        from portlens.pipeline.parallel import track_sharded

        return track_sharded(self)

    def find_connection(self, uid: str) -> Connection | None:
        for c in self.connections():
            if c.uid == uid:
                return c
        return None


class ColumnBlocks:
    """The tracker's column batches joined into blocks of at least ``rows`` rows, each handed
    to ``on_block`` (holding only the columns ``names``, and ``uid``, if given, from the
    moment a batch waits): an aggregate's fold costs a few dozen array operations whatever a
    block's size, and a batch ends a few rows (a live capture's, hundreds a second, fewer
    still). ``flush`` hands over what is waiting."""

    def __init__(self, on_block: Callable[[dict[str, Any]], None], rows: int,
                 names: Collection[str] | None = None) -> None:
        self._on_block = on_block
        self._block_rows = rows
        self._names = None if names is None else {*names, "uid"}
        self._parts: list[dict[str, Any]] = []
        self._rows = 0

    def add(self, cols: dict[str, Any]) -> None:
        if len(cols["uid"]):
            if self._names is not None:
                cols = {name: cols[name] for name in self._names}
            self._parts.append(cols)
            self._rows += len(cols["uid"])
            if self._rows >= self._block_rows:
                self.flush()

    def flush(self) -> None:
        if self._parts:
            from portlens.track.rust import concat_columns

            whole = concat_columns(self._parts)
            self._parts, self._rows = [], 0
            self._on_block(whole)


class _HeldInterrupt:
    """Holds a Ctrl-C back while a file is tracked, and delivers it where nothing is lost:
    after a batch's connections were handed over (``check``, once a batch), and after the
    capture's end was (``restore``).

    Python raises KeyboardInterrupt at its next check for pending signals, which comes as a
    call returns: most often as the compiled tracker returns a batch's ended connections,
    which were then never handed over (measured: 60-200 connections missing from the output
    of a Ctrl-C in `conns` on the benchmark capture, in both the core's and Python's
    reading), and in the middle of a write to a pipe, whose rest the io module drops. A
    KeyboardInterrupt while the open connections were ended at the capture's end lost every
    row not handed over yet (`ports` said "what was read so far is reported" and printed
    nothing). The end is bounded: at most --max-flows open connections.

    ``hold`` installs it for the reading of a file, whose batches come every few
    milliseconds; a live capture's session takes Ctrl-C itself (capture.py), and what
    remains is its end. There, ``track``'s ``finally`` installs it with its first call, a C
    call: Python runs a signal's handler at its next check for pending signals, after a call
    returns, and takes the handler in place then, so a Ctrl-C that came as the reading ended
    reaches this one (a Python method would be entered, and the signal acted on, first). Only
    in the main thread, where Python runs signal handlers."""

    def __init__(self) -> None:
        self.main_thread = threading.current_thread() is threading.main_thread()
        self.caught = False
        self._held = False
        self._previous: Any = None

    def __call__(self, signum: int, frame: object) -> None:
        self.caught = True

    def hold(self) -> None:
        """Holds Ctrl-C back from now on, until ``restore``."""
        if self.main_thread and not self._held:
            self._previous = signal.signal(signal.SIGINT, self)
            self._held = True

    def check(self) -> None:
        """Delivers a Ctrl-C held back: a KeyboardInterrupt now, between two batches."""
        if self.caught:
            self.caught = False
            raise KeyboardInterrupt

    def restore(self, installed: Any) -> None:
        """Puts the handler that was in place before back (``installed``: what the
        ``finally``'s own installation replaced), and raises the signal held back, for it."""
        if not self.main_thread:
            return
        previous = self._previous if self._held else installed
        self._held = False
        signal.signal(signal.SIGINT,
                      signal.default_int_handler if previous is None else previous)
        if self.caught:
            self.caught = False
            signal.raise_signal(signal.SIGINT)


def _held(file: Any, select: Callable[[Any], Any] | None) -> tuple[Any, Any] | None:
    """``DecodedFile.hold`` as a feed of ``Pipeline._decoded``: the file holding its next
    batch and the rows ``select`` keeps of it (None: all), None at the end."""
    if file.hold() is None:
        return None
    if select is None:
        return file, None
    from portlens.decode.rust import HeldBatch

    rows = select(HeldBatch(file))
    if rows is None:
        return file, None
    import numpy as np  # a selection's path only

    return file, np.asarray(rows, dtype=np.int64)


def _selector_rows(selection: Any) -> Callable[[Any], Any]:
    from portlens.pipeline.select import Selector

    return Selector(selection).rows


def _step(file: Any) -> bool | None:
    """``DecodedFile.step`` as a feed of ``Pipeline._decoded``: True for a batch counted, None
    at the end."""
    return True if file.step() else None


def _file_counts(fs: FileStats, counts: dict[str, Any]) -> None:
    """A file's figures counted by the core (``PacketScan.counts``, ``DecodedFile.counts``)
    into its FileStats, as sources.merge counts them."""
    fs.frames, fs.wire_bytes = counts["frames"], counts["wire_bytes"]
    fs.first_ns, fs.last_ns = counts["first_ns"], counts["last_ns"]
    fs.backwards = counts["backwards"]
    fs.largest_step_back_ns = counts["largest_step_back_ns"]
    fs.first_backwards_frame = counts["first_backwards_frame"]


def _only_frames(frames: FrameBatch, only: npt.NDArray[np.int64]) -> FrameBatch | None:
    """The frames of ``frames`` numbered in ``only`` (sorted), or None past its last."""
    import numpy as np

    if not len(only) or (len(frames) and frames.frame[0] > only[-1]):
        return None
    at = np.minimum(np.searchsorted(only, frames.frame), len(only) - 1)
    return frames.take(np.flatnonzero(only[at] == frames.frame))


class _Writer:
    """-w on capture files: the selected frames, in pcap (one link type) or pcapng.

    A file that cannot be written (a full disk, /dev/full, EIO) is one input error naming it
    (``on_error``: the command then exits 2), and writing stops there; the report is still
    made, from every selected frame: the analysis does not depend on the copy."""

    def __init__(self, options: Options, on_error: Callable[[str], None]) -> None:
        assert options.write is not None
        self.path = options.write
        self.pcapng = options.pcapng
        self.snaplen = options.snaplen
        self.out: PcapWriter | PcapngWriter | None = None
        self.interfaces: dict[int, int] = {}
        """pcapng: link type -> interface id in the output."""
        self.on_error = on_error
        self.written = 0
        self.failed = False

    def _failed(self, exc: OSError) -> None:
        self.failed = True
        if self.out is not None:
            with contextlib.suppress(OSError):
                self.out.close()  # the descriptor is closed even when the flush fails
        self.on_error(f"-w {os.fspath(self.path)}: {exc.strerror or exc} after "
                      f"{self.written} packets (the report covers every packet read)")

    def _open(self, linktype: int) -> None:
        from portlens.sources.writer import PcapngWriter, PcapWriter

        if self.pcapng:
            self.out = PcapngWriter(self.path)
        else:
            self.out = PcapWriter(self.path, linktype, snaplen=self.snaplen)

    def write(self, frames: FrameBatch) -> None:
        if not len(frames) or self.failed:
            return
        try:
            self._write(frames)
        except OSError as exc:
            self._failed(exc)
            return
        self.written += len(frames)

    def _write(self, frames: FrameBatch) -> None:
        import numpy as np

        from portlens.sources.writer import PcapngWriter

        if self.out is None:
            self._open(int(frames.linktype[0]))
        if isinstance(self.out, PcapngWriter):
            ids = []
            for lt in frames.linktype.tolist():
                if lt not in self.interfaces:
                    self.interfaces[lt] = self.out.add_interface(lt, snaplen=self.snaplen)
                ids.append(self.interfaces[lt])
            self.out.write_batch(replace(frames, interface=np.asarray(ids, dtype=np.uint16)))
        else:
            assert self.out is not None
            if (frames.linktype != self.out.linktype).any():
                other = sorted({int(x) for x in frames.linktype} - {self.out.linktype})
                raise WriteError(f"-w {os.fspath(self.path)}: frames of link type "
                                 f"{other[0]} after frames of link type {self.out.linktype}; "
                                 "a pcap file holds one (--pcapng holds several)")
            self.out.write_batch(frames)
        self.out.flush()

    def close(self, files: list[FileStats]) -> None:
        if self.failed:
            return
        try:
            if self.out is None:  # nothing selected: still a valid, empty capture
                linktype = next((f.linktype for f in files if f.linktype is not None),
                                LINKTYPE_ETHERNET)
                self._open(linktype)
            assert self.out is not None
            self.out.close()
        except OSError as exc:
            self._failed(exc)
