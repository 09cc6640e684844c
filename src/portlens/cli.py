"""The command line. Nothing else in portlens knows about argv, stdout or exit codes.

Exit status: 0 results, 1 nothing found, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from portlens import __version__

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_ERROR = 2

EPILOG_PACKETS = """examples:
  portlens packets capture.pcap                one line per frame, tcpdump -nn -q style
  portlens packets -c 20 --json a.pcapng       the first 20 frames as JSON lines
  portlens packets --stats big.pcap.gz         what the file holds (capinfos + protocol mix)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portlens",
        description="Packet-level analyzer of TCP/UDP ports, sockets and connections.",
    )
    parser.add_argument("--version", action="version", version=f"portlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("packets", help="decode frames: one line (or JSON object) per frame",
                       epilog=EPILOG_PACKETS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng files (gzip ok)")
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--json", action="store_true", help="JSON lines, one object per frame")
    p.add_argument("--stats", action="store_true",
                   help="no frames: a summary of the files (with --json: one JSON object)")
    p.add_argument("--reference", action="store_true",
                   help="use the slow per-packet reference decoder (for cross-checking)")
    p.set_defaults(func=cmd_packets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `portlens packets big.pcap | head`
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def error(message: str) -> None:
    print(f"portlens: {message}", file=sys.stderr)


def cmd_packets(args: argparse.Namespace) -> int:
    from portlens.analysis.capture_stats import CaptureStats
    from portlens.decode import decode_capture
    from portlens.report import packets as report
    from portlens.sources.files import CaptureError

    out: TextIO = sys.stdout
    stats = CaptureStats()
    status = EXIT_OK
    remaining = args.count if args.count is not None else -1
    for path in args.files:
        if remaining == 0:
            break
        try:
            for batch in decode_capture(path, reference=args.reference):
                if remaining >= 0:
                    batch = batch.take(slice(0, remaining))
                    remaining -= len(batch)
                if args.stats:
                    stats.add(batch)
                elif args.json:
                    out.write("".join(json.dumps(report.record(r)) + "\n"
                                      for r in report.iter_rows(batch)))
                else:
                    out.write("".join(report.line(r) + "\n" for r in report.iter_rows(batch)))
                if remaining == 0:
                    break
        except CaptureError as exc:
            error(str(exc))
            status = EXIT_ERROR
        except OSError as exc:
            error(f"{path}: {exc.strerror or exc}")
            status = EXIT_ERROR
    if args.stats:
        if args.json:
            out.write(json.dumps(stats.to_dict()) + "\n")
        else:
            _print_stats(stats, args.files)
    out.flush()
    if status == EXIT_OK and stats.frames == 0 and args.stats:
        return EXIT_NOTHING
    return status


def _print_stats(stats: object, files: Sequence[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from portlens.analysis.capture_stats import CaptureStats
    from portlens.report.packets import stats_rows

    assert isinstance(stats, CaptureStats)
    table = Table(title=", ".join(files), show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for what, value in stats_rows(stats):
        table.add_row(what, value)
    Console().print(table)
