"""What every command uses: exit statuses, one-line errors, the pipeline of the command's
source (files with a progress bar, or a live session) and selection, the tracker's
configuration from the arguments, and where tables go (a terminal, fitted, or anything else,
in full)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from portlens.capture import LiveOptions, LiveSession
    from portlens.pipeline import Options, Pipeline, Source
    from portlens.report.tables import Screen
    from portlens.track.config import TrackerConfig

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report SIGINT (128 + 2), after printing what was done."""


class UsageError(Exception):
    """A command-line mistake: one line, exit status 2."""


def error(message: str) -> None:
    print(f"portlens: {message}", file=sys.stderr)


def exit_status(status: int, found: object) -> int:
    """grep's convention: an error's status wins; otherwise 1 when nothing matched, so scripts
    can tell an empty answer from a failed run."""
    if status != EXIT_OK:
        return status
    return EXIT_OK if found else EXIT_NOTHING


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    from portlens.cli.args import parse_timeouts
    from portlens.track.config import TrackerConfig

    timeouts = parse_timeouts(args.timeout)
    if args.max_flows < 1:
        raise UsageError("--max-flows must be at least 1")
    # Transition lists are printed only by `conns --json` (and sniff's JSON lines) and drawn
    # by `ladder`; building them for every connection costs time the other outputs need not
    # pay, sniff's dashboard included.
    transitions = args.command == "ladder" or (
        args.command == "conns" and args.format == "json") or (
        args.command == "sniff" and sniff_writes_json(args))
    return TrackerConfig(timeouts=timeouts, drop_bad_checksums=args.checksums == "drop",
                         max_flows=args.max_flows, vlan_in_key=args.vlan_key,
                         keep_transitions=transitions)


def sniff_writes_json(args: argparse.Namespace) -> bool:
    """`sniff` writes JSON lines with --json, or whenever its output is not a terminal;
    otherwise it shows its dashboard."""
    return bool(args.json) or not sys.stdout.isatty()


def workers(args: argparse.Namespace) -> int:
    """--workers, or by default every CPU this process may use: one reads and decodes ahead
    (pipeline/ahead.py), the others each track a shard of the flows in a thread of this
    process (at least one). The reference tracker (--reference) would run processes, and
    `events` and `ladder` follow transitions in one tracker: one, unless asked (`events`
    refuses more)."""
    given = getattr(args, "workers", None)
    if given is not None:
        return int(given)
    if getattr(args, "reference", False) or getattr(args, "command", "") in ("events",
                                                                              "ladder"):
        return 1
    return max(1, cpu_count() - 1)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, as taskset and cgroups set it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def wants_checksums(args: argparse.Namespace) -> bool:
    """Whether the command reads the checksum columns, so the decoder must verify them:
    `packets` prints them (and counts bad ones with --stats), `ladder` marks bad ones, and the
    tracker drops bad ones with --checksums drop, and `report` counts them as `packets --stats`
    does. With `keep` the tracker never reads them (docs/decoding.md, *Checksums*)."""
    if getattr(args, "command", "") in ("packets", "ladder", "report"):
        return True
    return getattr(args, "checksums", "keep") == "drop"


def source_batches(args: argparse.Namespace, status: list[int]) -> Iterator[object]:
    """The decoded, selected batches of the command's source (files or -i), through the
    pipeline; the live capture's closing line after them."""
    with reading(args, status) as pipeline:
        yield from pipeline.packets()
        if pipeline.live_session is not None:
            live_summary(pipeline.live_session, status)


@contextlib.contextmanager
def reading(args: argparse.Namespace, status: list[int]) -> Iterator[Pipeline]:
    """The pipeline of the command's source and selection; its input errors and warnings are
    printed as they come (one line each), errors also setting ``status`` to 2."""
    from portlens.pipeline import Pipeline, WriteError

    def on_error(message: str) -> None:
        error(message)
        status[0] = EXIT_ERROR

    source, options = pipeline_setup(args)
    with progress_bar(source.files, show_progress(args)) as progress:
        status_line = ClusterStatus() if options.dask is not None else None
        pipeline = Pipeline(source, options, on_error=on_error, on_warning=error,
                            progress=progress, on_cluster=status_line)
        try:
            yield pipeline
        except WriteError as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:
            # A ClusterError can only come from a --dask run, which imported the module that
            # defines it; other runs need not import it (and the tracker model with it).
            cluster = sys.modules.get("portlens.pipeline.cluster")
            if cluster is not None and isinstance(exc, cluster.ClusterError):
                raise UsageError(str(exc)) from None
            raise
        finally:
            if status_line is not None:
                status_line.close()
            # Frames of link types not decoded, for main()'s one line each: counted on the
            # first reading only (ladder reads twice).
            if not hasattr(args, "not_decoded"):
                args.not_decoded = pipeline.not_decoded


class ClusterStatus:
    """A --dask run's progress on stderr, one line redrawn in place: only on a terminal
    (a log gets the errors, not the progress), and the last state stays when it is done."""

    def __init__(self) -> None:
        self.shown = False
        self.last = ""

    def __call__(self, progress: object) -> None:
        if not sys.stderr.isatty():
            return
        line = progress.line()  # type: ignore[attr-defined]
        if line != self.last:
            self.last = line
            self.shown = True
            print(f"\r\x1b[K{line}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


def pipeline_setup(args: argparse.Namespace) -> tuple[Source, Options]:
    """The command line's source (files, directories or -i) and selection as pipeline terms."""
    from portlens.pipeline import Options, Source
    from portlens.track.config import TrackerConfig

    interface = getattr(args, "interface", None)
    if interface:
        source = Source(live=live_options(args))
    else:
        files = []
        for path in args.files:
            if not os.path.isdir(path):
                files.append(path)
                continue
            from portlens.sources.merge import scan_directory

            scan = scan_directory(path)
            if not scan.files:
                raise UsageError(f"{path}: no capture files in this directory"
                                 + (f" ({scan.skipped} other files)" if scan.skipped else ""))
            error(scan.note())  # which files are read, on stderr like every note
            files.extend(scan.files)
        source = Source(files=tuple(files))
    window = {}
    for name in ("start", "end"):
        text = getattr(args, name, None)
        if text is not None:
            from portlens.pipeline import parse_time

            try:
                window[name] = parse_time(text)
            except ValueError as exc:
                raise UsageError(f"--{name}: {exc}") from None
    if "start" in window and "end" in window and window["start"] >= window["end"]:
        raise UsageError(f"--start {args.start} is not before --end {args.end}: "
                         "the window holds nothing")
    count = getattr(args, "count", None)
    write = getattr(args, "write", None)
    options = Options(
        filter=getattr(args, "packet_filter", None), start_ns=window.get("start"),
        end_ns=window.get("end"), count=count,
        # ladder's --conn also takes a uid prefix or a 5-tuple: it finds the connection itself
        conn=getattr(args, "conn", None) if args.command != "ladder" else None,
        write=write or None, pcapng=getattr(args, "pcapng", False),
        snaplen=getattr(args, "snaplen", 262144),
        tracker=tracker_config(args) if hasattr(args, "timeout") else TrackerConfig(),
        workers=workers(args), dask=getattr(args, "dask", None),
        reference=getattr(args, "reference", False),
        checksums=wants_checksums(args))
    return source, options


def live_options(args: argparse.Namespace) -> LiveOptions:
    from pathlib import Path

    from portlens.capture import LiveOptions

    return LiveOptions(
        interface=args.interface, snaplen=args.snaplen, kernel_filter=args.filter or None,
        count=getattr(args, "count", None), duration=args.duration,
        write=Path(args.write) if args.write else None, pcapng=args.pcapng,
        backend=args.backend, user=args.user, buffer_bytes=max(args.buffer, 1) << 20,
        spool_bytes=max(args.spool, 0) << 20, spool_dir=args.spool_dir,
        ring_mb=max(args.kernel_buffer, 2), checksums=wants_checksums(args))


def live_summary(session: LiveSession, status: list[int]) -> None:
    """tcpdump's closing line: what was captured, analysed, written and dropped, every count
    taken when the capture stopped (the socket closes then; the analysis of what waits may
    go on long after). When -w lost packets, its error follows on a line of its own and
    ``status`` becomes EXIT_ERROR.

    The counts add up: received by filter = captured + dropped by kernel + those that
    arrived between the stop and the socket's close (said when there are any);
    captured = analysed + dropped by portlens + given up by a second Ctrl-C (+ those a
    user-space filter, -c or --start/--end left out)."""
    c = session.counters
    head = f"{c.captured} packets captured, {c.packets} analysed"
    if session.options.write is not None:
        head += f", {c.written} written to {session.options.write}"
    lines = [head]
    lines.append(f"{c.dropped} dropped by kernel"
                 + (f" (ring full {c.ring_full} times)" if c.ring_full else "")
                 + f", {c.buffer_dropped} dropped by portlens (buffer full)")
    if c.abandoned:
        lines.append(f"{c.abandoned} captured but not analysed (second Ctrl-C)")
    if c.spilled:
        lines.append(f"{c.spilled} waited on disk before analysis")
    if c.spool_error:
        lines.append(f"spool stopped taking packets: {c.spool_error}")
    lines.append(f"{c.received} received by filter"
                 + (f" ({c.late} after the stop, not captured)" if c.late else ""))
    print("; ".join(lines), file=sys.stderr)
    if c.write_error:
        error(c.write_error)
        status[0] = EXIT_ERROR


PROGRESS_MIN_BYTES = 8 << 20
"""Files smaller than this read too fast for a progress bar to help."""
STREAMING = frozenset({"conns", "events", "packets"})
"""Commands whose output comes while the file is read: on a terminal it shows the progress
itself, and a bar on the same screen would be drawn through it."""


def stdout_is_terminal() -> bool:
    """Whether tables are for a person (fitted to the terminal) or for a pipe or file (every
    column in full). Tests replace it to see what a terminal would show."""
    return sys.stdout.isatty()


def _styles_allowed() -> bool:
    import os

    return os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ


def show_progress(args: argparse.Namespace) -> bool:
    if not sys.stderr.isatty():
        return False
    return not (stdout_is_terminal() and getattr(args, "command", "") in STREAMING)


def screen(args: argparse.Namespace | None = None) -> Screen:
    """Where the command's tables go. On a terminal: fitted to its width (COLUMNS wins, as
    everywhere), unless --wide; anywhere else: every column in full, no styles."""
    import shutil

    from portlens.report.tables import FIRST_WAIT, Screen

    terminal = stdout_is_terminal()
    width = None
    if terminal and not getattr(args, "wide", False):
        width = max(shutil.get_terminal_size().columns, 20)
    return Screen(sys.stdout, sys.stderr, width=width, style=terminal and _styles_allowed(),
                  err_style=sys.stderr.isatty() and _styles_allowed(),
                  first_wait=FIRST_WAIT if getattr(args, "interface", None) else None)


def wide_arg(p: argparse.ArgumentParser) -> None:
    """--wide, for the commands that print tables."""
    p.add_argument("--wide", action="store_true",
                   help="on a terminal, every column even when the lines are then wider than "
                        "it (columns are left out to fit otherwise, and a note says which); "
                        "piped output always has every column")


@contextlib.contextmanager
def progress_bar(paths: Sequence[str], show: bool = True
                 ) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while reading large files, only when stderr is a terminal.
    It never takes over stdout (rich's default), so the output goes where it was sent, and
    the file name is shown as text, not read as markup."""
    size = 0
    for path in paths:
        with contextlib.suppress(OSError):
            size += os.path.getsize(path)
    if not show or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                   DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   transient=True, console=stderr_console(), redirect_stdout=False,
                   redirect_stderr=False)
    label = os.path.basename(paths[0]) + (f" (+{len(paths) - 1} files)"
                                          if len(paths) > 1 else "")
    task = bar.add_task(label, total=size)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or size)

    bar.start()
    try:
        yield update
    finally:
        # Stopped however the reading ends (Ctrl-C included), so the terminal is left clean
        # and the bar's refresh thread is gone before anything else is printed.
        with contextlib.suppress(Exception):
            bar.stop()


def stderr_console() -> Console:
    """The rich console of the live view and the progress bar: no markup, no emoji codes,
    no highlighting, whatever text reaches it."""
    from rich.console import Console

    return Console(stderr=True, markup=False, emoji=False, highlight=False)


def each_connection(args: argparse.Namespace, sink: Callable[[object], None],
                    not_counted: Counter[str] | None = None, *,
                    on_columns: Callable[[dict[str, Any]], None] | None = None,
                    column_block: int | None = None,
                    column_names: Collection[str] | None = None,
                    on_conn_log: Callable[[str, int], None] | None = None,
                    core_fold: Callable[[], Any] | None = None) -> int:
    """Track the source, handing each connection to ``sink``; the exit status of the reading.
    ``not_counted`` receives the tracker's count of frames in no connection, by why.
    ``on_columns``: where the tracker can, the connections go there instead, as blocks of
    columns (``Pipeline.track``), for reports that only aggregate them, in blocks of
    ``column_block`` rows or more (default: ``COLUMN_BLOCK``; 1: each batch's as it ends),
    holding only ``column_names`` if given; ``on_conn_log``, where the tracker can, the
    conn.log lines of each batch's connections and how many, or ``core_fold``, where the
    tracker can, the core's fold of `ports`, `handshakes` or `sockets` (``Pipeline.track``).

    Interrupted by Ctrl-C, the connections still open are handed over all the same, as at the
    end of the capture, and the status is EXIT_INTERRUPTED: the command then prints what was
    done (a streaming output ends with every connection seen, a report covers the packets read).
    A closed pipe (BrokenPipeError) ends the command: nobody reads the rest."""
    status = [EXIT_OK]
    with reading(args, status) as pipeline:
        try:
            try:
                pipeline.track(sink, on_columns=on_columns, column_block=column_block,
                               column_names=column_names, on_conn_log=on_conn_log,
                               core_fold=core_fold)
            except KeyboardInterrupt:
                status[0] = EXIT_INTERRUPTED
        finally:
            if not_counted is not None:
                not_counted.update(pipeline.not_counted)
            evicted_note(pipeline.evicted, pipeline.options.tracker.max_flows)
        if pipeline.live_session is not None:
            live_summary(pipeline.live_session, status)
    if status[0] == EXIT_INTERRUPTED:
        interrupted_note()
    return status[0]


def interrupted_note() -> None:
    print("portlens: interrupted; what was read so far is reported", file=sys.stderr)


def evicted_note(evicted: int, max_flows: int) -> None:
    """Say when --max-flows cut connections short (their end_reason is ``evicted``)."""
    if evicted:
        error(f"{evicted:,} flow{'s' if evicted != 1 else ''} evicted because more than "
              f"--max-flows {max_flows:,} were open at once; later packets of an evicted flow "
              f"start a new one")


def not_decoded_note(args: argparse.Namespace) -> None:
    """One line per link type portlens read but could not decode, once per command."""
    from portlens.analysis.capture_stats import not_decoded_lines

    for line in not_decoded_lines(getattr(args, "not_decoded", None) or Counter()):
        error(line)
