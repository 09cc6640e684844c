"""What every command uses: exit statuses, one-line errors, the source of packets (files with a
progress bar, or a live session), the tracker's configuration from the arguments, and where
tables go (a terminal, fitted, or anything else, in full)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from portlens.capture import LiveSession
    from portlens.report.tables import Screen
    from portlens.track.tracker import TrackerConfig

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
    from portlens.track.tracker import TrackerConfig

    timeouts = parse_timeouts(args.timeout)
    if args.max_flows < 1:
        raise UsageError("--max-flows must be at least 1")
    # Transition lists are printed only by `conns --json` and drawn by `ladder`; building them
    # for every connection costs time the other outputs need not pay.
    transitions = args.command == "ladder" or (
        args.command in ("conns", "sniff") and getattr(args, "format", "json") == "json")
    return TrackerConfig(timeouts=timeouts, drop_bad_checksums=args.checksums == "drop",
                         max_flows=args.max_flows, vlan_in_key=args.vlan_key,
                         keep_transitions=transitions)


def wants_checksums(args: argparse.Namespace) -> bool:
    """Whether the command reads the checksum columns, so the decoder must verify them:
    `packets` prints them (and counts bad ones with --stats), `ladder` marks bad ones, and the
    tracker drops bad ones with --checksums drop. With `keep` the tracker never reads them
    (docs/decoding.md, *Checksums*)."""
    if getattr(args, "command", "") in ("packets", "ladder"):
        return True
    return getattr(args, "checksums", "keep") == "drop"


def source_batches(args: argparse.Namespace, status: list[int]) -> Iterator[object]:
    """The decoded (and -f filtered) batches of the command's source: files or -i."""
    if getattr(args, "interface", None):
        session = open_live_session(args)
        args.live_session = session
        yield from session.batches()
        live_summary(session)
    else:
        # Counted on the first read only (ladder reads twice); main() says it once.
        first = not hasattr(args, "not_decoded")
        if first:
            args.not_decoded = Counter()
        batches = read_batches(args.files, status, args.packet_filter,
                               args.not_decoded if first else None,
                               checksums=wants_checksums(args),
                               progress=show_progress(args))
        count = getattr(args, "count", None)
        if count is not None:  # -c N: the first N packets after -f, as tcpdump -r
            from portlens.decode import first_packets
            from portlens.decode.packets import PacketBatch

            batches = first_packets((b for b in batches if isinstance(b, PacketBatch)), count)
        yield from batches


def open_live_session(args: argparse.Namespace) -> LiveSession:
    from pathlib import Path

    from portlens.capture import LiveOptions, LiveSession

    options = LiveOptions(
        interface=args.interface, snaplen=args.snaplen, kernel_filter=args.filter or None,
        count=getattr(args, "count", None), duration=args.duration,
        write=Path(args.write) if args.write else None, pcapng=args.pcapng,
        backend=args.backend, user=args.user, buffer_bytes=max(args.buffer, 1) << 20,
        spool_bytes=max(args.spool, 0) << 20, spool_dir=args.spool_dir,
        ring_mb=max(args.kernel_buffer, 2), checksums=wants_checksums(args))
    return LiveSession(options, args.packet_filter)


def live_summary(session: LiveSession) -> None:
    """tcpdump's closing lines: what was analysed, written and dropped."""
    c = session.counters
    lines = [f"{c.packets} packets analysed"]
    if session.options.write is not None:
        lines.append(f"{c.written} written to {session.options.write}")
    lines.append(f"{c.received} received by filter, {c.dropped} dropped by kernel"
                 + (f" (ring full {c.ring_full} times)" if c.ring_full else "")
                 + f", {c.buffer_dropped} dropped by portlens (buffer full)")
    if c.spilled:
        lines.append(f"{c.spilled} waited on disk before analysis")
    if c.spool_error:
        lines.append(f"spool stopped taking packets: {c.spool_error}")
    if c.abandoned:
        lines.append(f"{c.abandoned} captured but not analysed (second Ctrl-C)")
    print("; ".join(lines), file=sys.stderr)


def read_batches(files: Sequence[str], status: list[int],
                 packet_filter: object = None, not_decoded: Counter[int] | None = None, *,
                 checksums: bool = True, progress: bool = True) -> Iterator[object]:
    """Decoded batches of all files in order, filtered by -f; input errors are reported and
    remembered in status. ``not_decoded`` counts the frames of link types portlens does not
    decode (before -f), by link type. ``checksums``: verify them (see wants_checksums)."""
    from portlens.analysis.capture_stats import count_not_decoded
    from portlens.decode import decode_capture
    from portlens.decode.packets import PacketBatch
    from portlens.filter import PacketFilter
    from portlens.sources.files import CaptureError

    if isinstance(packet_filter, PacketFilter):
        for batch in read_batches(files, status, None, not_decoded, checksums=checksums,
                                  progress=progress):
            assert isinstance(batch, PacketBatch)
            yield packet_filter.select(batch)
        return

    for path in files:
        with progress_bar(path, progress) as update:
            try:
                for batch in decode_capture(path, progress=update, checksums=checksums):
                    if not_decoded is not None:
                        count_not_decoded(not_decoded, batch)
                    yield batch
            except CaptureError as exc:
                error(str(exc))
                status[0] = EXIT_ERROR
            except BrokenPipeError:
                raise
            except OSError as exc:
                error(f"{path}: {exc.strerror or exc}")
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
def progress_bar(path: str, show: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while reading a large file, only when stderr is a terminal.
    It never takes over stdout (rich's default), so the output goes where it was sent, and
    the file name is shown as text, not read as markup."""
    import os

    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
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
    task = bar.add_task(os.path.basename(path), total=size)

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
                    not_counted: Counter[str] | None = None) -> int:
    """Track the source, handing each connection to ``sink``; the exit status of the reading.
    ``not_counted`` receives the tracker's count of frames in no connection, by why.

    Interrupted by Ctrl-C, the connections still open are handed over all the same, as at the
    end of the capture, and the status is EXIT_INTERRUPTED: the command then prints what was
    done (a streaming output ends with every connection seen, a report covers the packets read).
    A closed pipe (BrokenPipeError) ends at once: nobody reads the rest."""
    from portlens.decode.packets import PacketBatch
    from portlens.track.tracker import Tracker

    config = tracker_config(args)
    status = [EXIT_OK]
    if getattr(args, "workers", 1) > 1:
        from portlens.parallel import track_files

        errors: list[str] = []
        totals: Counter[str] = Counter()
        args.not_decoded = Counter()
        try:
            for c in track_files(args.files, config, args.workers, errors, args.filter,
                                 not_counted, count=getattr(args, "count", None),
                                 totals=totals, not_decoded=args.not_decoded):
                sink(c)
        except KeyboardInterrupt:
            status[0] = EXIT_INTERRUPTED
        finally:
            evicted_note(totals["evicted"], config.max_flows)
        for message in errors:
            error(message)
            if status[0] == EXIT_OK:
                status[0] = EXIT_ERROR
        if status[0] == EXIT_INTERRUPTED:
            interrupted_note()
        return status[0]
    tracker = Tracker(config)
    try:
        for batch in source_batches(args, status):
            assert isinstance(batch, PacketBatch)
            for c in tracker.feed(batch):
                sink(c)
    except KeyboardInterrupt:
        status[0] = EXIT_INTERRUPTED
    for c in tracker.finish():
        sink(c)
    if not_counted is not None:
        not_counted.update(tracker.not_counted)
    evicted_note(tracker.evicted, config.max_flows)
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
