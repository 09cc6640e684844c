"""`portlens hosts` and `portlens convs`: top talkers per IP address and per address pair,
tshark's -z endpoints,ip and -z conv,ip (IPv4 and IPv6 together)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from portlens.cli.args import source_args
from portlens.cli.common import (
    EXIT_OK,
    error,
    exit_status,
    screen,
    source_batches,
    wide_arg,
)
from portlens.cli.times import clock, time_args

if TYPE_CHECKING:
    from portlens.report.clock import Clock
    from portlens.report.tables import Screen

EPILOG_HOSTS = """examples:
  portlens hosts capture.pcap                    every IP address: packets and bytes sent/received
  portlens hosts --top 10 a.pcap                 the ten that moved the most bytes
  portlens hosts --json a.pcap                   exact numbers, JSON lines
"""

EPILOG_CONVS = """examples:
  portlens convs capture.pcap                    every address pair, both directions
  portlens convs --sort packets --top 5 a.pcap   the five busiest by packets
  portlens convs -f 'not port 22' --csv a.pcap   CSV, exact numbers
"""


def add_talker_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, summary, epilog, func in (
            ("hosts", "top talkers per IP address (tshark -z endpoints,ip)", EPILOG_HOSTS,
             cmd_hosts),
            ("convs", "top talkers per IP address pair (tshark -z conv,ip)", EPILOG_CONVS,
             cmd_convs)):
        p = sub.add_parser(name, help=summary, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        source_args(p)
        p.add_argument("--json", dest="format", action="store_const", const="json",
                       default="table", help="JSON lines, exact numbers")
        p.add_argument("--csv", dest="format", action="store_const", const="csv",
                       help="CSV, exact numbers")
        p.add_argument("--sort", choices=("bytes", "packets", "start", "address"),
                       default="bytes", help="row order (default: most bytes first)")
        p.add_argument("--top", type=int, metavar="N", help="only the first N rows")
        time_args(p)
        wide_arg(p)
        p.set_defaults(func=func)


def _table(args: argparse.Namespace) -> tuple[object, int]:
    """Every IP frame of the source (-f filtered; -c counts frames on files too)."""
    import numpy as np

    from portlens.analysis.talkers import TalkerTable
    from portlens.decode.packets import PacketBatch

    status = [EXIT_OK]
    table = TalkerTable()
    remaining = args.count if args.count is not None and not args.interface else None

    def batches() -> Iterator[PacketBatch]:
        nonlocal remaining
        for b in source_batches(args, status):
            assert isinstance(b, PacketBatch)
            if remaining is not None:
                # a frame's rows (an A-MSDU's subframes) are adjacent: count where frames start
                starts = np.flatnonzero(np.r_[True, (b.frame[1:] != b.frame[:-1])
                                              | (b.ts_ns[1:] != b.ts_ns[:-1])][: len(b)])
                if starts.size > remaining:
                    b = b.take(slice(0, int(starts[remaining])))
                remaining -= min(int(starts.size), remaining)
            yield b
            if remaining == 0:
                return

    table.update(batches())
    return table, status[0]


def _check(args: argparse.Namespace) -> bool:
    if args.top is not None and args.top < 1:
        error("--top must be at least 1")
        return False
    return True


def cmd_hosts(args: argparse.Namespace) -> int:
    from portlens.analysis.talkers import TalkerTable
    from portlens.report import talkers as report

    return _listing(args, TalkerTable.endpoints, report.HOST_FIELDS, report.HOST_COLUMNS,
                    report.host_cells, report.HOST_DROP, "hosts (IP endpoints)", "host")


def cmd_convs(args: argparse.Namespace) -> int:
    from portlens.analysis.talkers import TalkerTable
    from portlens.report import talkers as report

    return _listing(args, TalkerTable.conversations, report.CONV_FIELDS, report.CONV_COLUMNS,
                    report.conv_cells, report.CONV_DROP, "conversations (A: the first to send)",
                    "conversation")


def _listing(args: argparse.Namespace, rows_of: Callable[..., list[Any]],
             fields: Sequence[str], columns: Sequence[str],
             cells_of: Callable[[Any, Clock], dict[str, str]], drop: Sequence[str],
             title: str, noun: str) -> int:
    """`hosts` and `convs` alike: the rows ``rows_of`` takes from the table, as JSON, CSV or
    a table titled ``title`` with a footer counting ``noun``s."""
    from portlens.analysis.talkers import TalkerTable
    from portlens.report import talkers as report

    if not _check(args):
        return 2
    times = clock(args)
    table, status = _table(args)
    assert isinstance(table, TalkerTable)
    rows = rows_of(table, args.sort, args.top)
    records = [r.record() for r in rows]
    if args.format == "json":
        report.write_json(records, sys.stdout)
    elif args.format == "csv":
        report.write_csv(records, fields, sys.stdout)
    elif rows:
        shown = report.columns_for(columns, times)
        cells = [cells_of(r, times) for r in rows]
        where = screen(args)
        left = report.print_table(where, shown, report.rows_of(cells, shown), drop, title)
        _footer(where, f"{len(rows)} of {len(rows_of(table))} {noun}s" if args.top else
                f"{len(rows)} {noun}{'' if len(rows) == 1 else 's'}", left,
                times.zone_label(min(r.first_ns for r in rows)))
    sys.stdout.flush()
    return exit_status(status, rows)


def _footer(where: Screen, count: str, left_out: list[str], zone: str | None) -> None:
    from portlens.report.tables import left_out_text

    note = count
    if zone and "start" not in left_out:
        note += f"; start {zone}"
    if left_out:
        note += f" ({left_out_text(left_out, where.width)})"
    where.note(note)
