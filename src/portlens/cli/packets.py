"""`portlens packets`: frames one per line, as JSON, or a summary of the files (--stats)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TextIO

from portlens.cli.args import filter_arg, live_args, window_args
from portlens.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOTHING,
    EXIT_OK,
    error,
    exit_status,
    interrupted_note,
    live_summary,
    reading,
    screen,
)
from portlens.cli.times import ZoneNote, clock, time_args
from portlens.report.clock import Clock

EPILOG_PACKETS = """examples:
  portlens packets capture.pcap                one line per frame, tcpdump -nn -q style
  portlens packets -c 20 --json a.pcapng       the first 20 frames as JSON lines
  portlens packets -tttt --utc a.pcap          date and time in UTC, as tcpdump -tttt
  portlens packets --stats big.pcap.gz         what the file holds (capinfos + protocol mix)
  portlens packets -f 'port 443' a.pcap -w tls.pcap   write the selected packets
  portlens packets --conn UID a.pcap -w one.pcap      export one connection
  portlens packets --start 2024-05-01T12:00Z --end 2024-05-01T12:05Z a.pcap -w five-min.pcap
"""


def add_packets_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("packets", help="decode frames: one line (or JSON object) per frame",
                       epilog=EPILOG_PACKETS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="pcap or pcapng files (gzip ok) or directories of them, read as one "
                        "stream in time order")
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--json", action="store_true", help="JSON lines, one object per frame")
    p.add_argument("--stats", action="store_true",
                   help="no frames: a summary of the files (with --json: one JSON object)")
    p.add_argument("--reference", action="store_true",
                   help="use the slow per-packet reference decoder (for cross-checking)")
    p.add_argument("--conn", metavar="UID",
                   help="only the packets of this connection (uid as `portlens conns` shows "
                        "it); with -w, export it to a capture file")
    filter_arg(p)
    window_args(p)
    time_args(p)
    live_args(p, count=False)
    p.set_defaults(func=cmd_packets)


def cmd_packets(args: argparse.Namespace) -> int:
    from portlens.analysis.capture_stats import CaptureStats
    from portlens.pipeline import ConnectionNotFoundError

    out: TextIO = sys.stdout
    stats = CaptureStats()
    status = [EXIT_OK]
    shown = [False]  # a frame listed: exit status 0, else 1 (nothing found), as every report
    times = clock(args)
    zone_note = ZoneNote(times)

    def show(lines: Callable[[Clock], str], records: Callable[[], str]) -> None:
        """One batch's text (the core's writers of a PacketBatch or of a held batch)."""
        if args.json:
            text = records()
        else:
            text = lines(times)
            if times.first_ns is not None:
                zone_note(times.first_ns)  # once, before the first line
        out.write(text)
        out.flush()
        shown[0] = shown[0] or bool(text)

    with reading(args, status) as pipeline:
        try:
            if args.stats:
                pipeline.count_stats(stats)
            elif (held := pipeline.held()) is not None:  # where the core decoded them
                from portlens.report import packets as report

                with contextlib.closing(held):
                    for file, rows in held:
                        show(partial(report.held_lines, file, rows=rows),
                             partial(report.held_records, file, rows))
            else:
                from portlens.report import packets as report

                for batch in pipeline.packets():
                    show(partial(report.lines, batch), partial(report.records, batch))
        except ConnectionNotFoundError as exc:
            error(str(exc))
            return EXIT_NOTHING if status[0] == EXIT_OK else status[0]
        except KeyboardInterrupt:
            status[0] = EXIT_INTERRUPTED
            interrupted_note()
        if pipeline.live_session is not None:
            live_summary(pipeline.live_session, status)
    files = pipeline.files
    if args.stats:
        if args.json:
            record = stats.to_dict()
            if not args.interface:
                record["files"] = [f.record() for f in files]
                if any(f.frames_cut for f in files):
                    record["frames_cut"] = sum(f.frames_cut for f in files)
            out.write(json.dumps(record) + "\n")
        else:
            _print_stats(args, stats, [args.interface] if args.interface else args.files,
                         times, sum(f.frames_cut for f in files))
            if len(files) > 1:
                _print_files(args, files, times)
    out.flush()
    return exit_status(status[0], stats.frames > 0 if args.stats else shown[0])


def _print_files(args: argparse.Namespace, files: Sequence[object], times: Clock) -> None:
    """One row per file (capinfos' numbers), in the order they were named."""
    from portlens.report.capture_stats import file_rows
    from portlens.report.tables import Column, TableWriter, left_out_text

    names, rows = file_rows(files, times)
    where = screen(args)
    numbers = ("frames", "bytes", "time backwards")
    writer = TableWriter(where, [Column(n, right=n in numbers) for n in names],
                         title="files", drop_order=("format", "link type", "last frame"))
    for row in rows:
        writer.add(row)
    left_out = writer.close()
    if left_out:
        where.note(left_out_text(left_out, where.width))


def _print_stats(args: argparse.Namespace, stats: object, files: Sequence[str],
                 times: Clock, cut: int = 0) -> None:
    from portlens.analysis.capture_stats import CaptureStats
    from portlens.report.capture_stats import stats_rows
    from portlens.report.tables import Column, TableWriter

    assert isinstance(stats, CaptureStats)
    writer = TableWriter(screen(args), [Column("what"), Column("value", fold=True)],
                         title=", ".join(files), header=False)
    for what, value in stats_rows(stats, times):
        writer.add((what, value))
    if cut:  # said only when it happened: no capture libpcap writes has such frames
        writer.add(("cut at the 256 KiB frame cap", f"{cut:,}"))
    writer.close()
