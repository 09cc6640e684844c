"""`portlens packets`: frames one per line, as JSON, or a summary of the files (--stats)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from portlens.cli.args import filter_arg, live_args
from portlens.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOTHING,
    EXIT_OK,
    error,
    interrupted_note,
    screen,
    source_batches,
)
from portlens.cli.times import ZoneNote, clock, time_args
from portlens.report.clock import Clock

EPILOG_PACKETS = """examples:
  portlens packets capture.pcap                one line per frame, tcpdump -nn -q style
  portlens packets -c 20 --json a.pcapng       the first 20 frames as JSON lines
  portlens packets -tttt --utc a.pcap          date and time in UTC, as tcpdump -tttt
  portlens packets --stats big.pcap.gz         what the file holds (capinfos + protocol mix)
"""


def add_packets_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("packets", help="decode frames: one line (or JSON object) per frame",
                       epilog=EPILOG_PACKETS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE", help="pcap or pcapng files (gzip ok)")
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--json", action="store_true", help="JSON lines, one object per frame")
    p.add_argument("--stats", action="store_true",
                   help="no frames: a summary of the files (with --json: one JSON object)")
    p.add_argument("--reference", action="store_true",
                   help="use the slow per-packet reference decoder (for cross-checking)")
    filter_arg(p)
    time_args(p)
    live_args(p, count=False)
    p.set_defaults(func=cmd_packets)


def cmd_packets(args: argparse.Namespace) -> int:
    from portlens.analysis.capture_stats import CaptureStats
    from portlens.decode import decode_capture
    from portlens.decode.packets import PacketBatch
    from portlens.report import packets as report
    from portlens.sources.files import CaptureError

    out: TextIO = sys.stdout
    stats = CaptureStats()
    status = EXIT_OK
    remaining = args.count if args.count is not None else -1
    times = clock(args)
    zone_note = ZoneNote(times)

    def show(batch: PacketBatch) -> None:
        if args.stats:
            stats.add(batch)
        elif args.json:
            out.write("".join(json.dumps(report.record(r)) + "\n"
                              for r in report.iter_rows(batch)))
        else:
            if len(batch):
                zone_note(int(batch.ts_ns[0]))
            out.write("".join(report.line(r, times) + "\n" for r in report.iter_rows(batch)))
        out.flush()

    if args.interface:  # live: the session applies -f and -c
        live_status = [EXIT_OK]
        for batch in source_batches(args, live_status):
            assert isinstance(batch, PacketBatch)
            show(batch)
        if args.stats:
            _print_stats(args, stats, [args.interface], times) if not args.json else out.write(
                json.dumps(stats.to_dict()) + "\n")
        return live_status[0]
    from collections import Counter

    from portlens.analysis.capture_stats import count_not_decoded

    args.not_decoded = Counter()
    try:
        for path in args.files:
            if remaining == 0:
                break
            try:
                for batch in decode_capture(path, reference=args.reference):
                    count_not_decoded(args.not_decoded, batch)
                    if args.packet_filter is not None:
                        batch = args.packet_filter.select(batch)
                    if remaining >= 0:
                        batch = batch.take(slice(0, remaining))
                        remaining -= len(batch)
                    show(batch)
                    if remaining == 0:
                        break
            except CaptureError as exc:
                error(str(exc))
                status = EXIT_ERROR
            except BrokenPipeError:  # the reader is gone: no use reading the other files
                raise
            except OSError as exc:
                error(f"{path}: {exc.strerror or exc}")
                status = EXIT_ERROR
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        interrupted_note()
    if args.stats:
        if args.json:
            out.write(json.dumps(stats.to_dict()) + "\n")
        else:
            _print_stats(args, stats, args.files, times)
    out.flush()
    if status == EXIT_OK and stats.frames == 0 and args.stats:
        return EXIT_NOTHING
    return status


def _print_stats(args: argparse.Namespace, stats: object, files: Sequence[str],
                 times: Clock) -> None:
    from portlens.analysis.capture_stats import CaptureStats
    from portlens.report.packets import stats_rows
    from portlens.report.tables import Column, TableWriter

    assert isinstance(stats, CaptureStats)
    writer = TableWriter(screen(args), [Column("what"), Column("value", fold=True)],
                         title=", ".join(files), header=False)
    for what, value in stats_rows(stats, times):
        writer.add((what, value))
    writer.close()
