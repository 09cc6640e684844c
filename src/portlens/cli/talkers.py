"""`portlens hosts` and `portlens convs`: top talkers per IP address and per address pair,
tshark's -z endpoints,ip and -z conv,ip (IPv4 and IPv6 together)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
                b = b.take(slice(0, remaining))
                remaining -= len(b)
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

    if not _check(args):
        return 2
    times = clock(args)
    table, status = _table(args)
    assert isinstance(table, TalkerTable)
    rows = table.endpoints(args.sort, args.top)
    records = [e.record() for e in rows]
    if args.format == "json":
        report.write_json(records, sys.stdout)
    elif args.format == "csv":
        report.write_csv(records, report.HOST_FIELDS, sys.stdout)
    elif rows:
        columns = report.columns_for(report.HOST_COLUMNS, times)
        cells = [report.host_cells(e, times) for e in rows]
        where = screen(args)
        left = report.print_table(where, columns, report.rows_of(cells, columns),
                                  report.HOST_DROP, "hosts (IP endpoints)")
        _footer(where, f"{len(rows)} of {len(table.endpoints())} hosts" if args.top else
                f"{len(rows)} host{'' if len(rows) == 1 else 's'}", left,
                times.zone_label(min(e.first_ns for e in rows)))
    sys.stdout.flush()
    return exit_status(status, rows)


def cmd_convs(args: argparse.Namespace) -> int:
    from portlens.analysis.talkers import TalkerTable
    from portlens.report import talkers as report

    if not _check(args):
        return 2
    times = clock(args)
    table, status = _table(args)
    assert isinstance(table, TalkerTable)
    rows = table.conversations(args.sort, args.top)
    records = [c.record() for c in rows]
    if args.format == "json":
        report.write_json(records, sys.stdout)
    elif args.format == "csv":
        report.write_csv(records, report.CONV_FIELDS, sys.stdout)
    elif rows:
        columns = report.columns_for(report.CONV_COLUMNS, times)
        cells = [report.conv_cells(c, times) for c in rows]
        where = screen(args)
        left = report.print_table(where, columns, report.rows_of(cells, columns),
                                  report.CONV_DROP, "conversations (A: the first to send)")
        _footer(where, f"{len(rows)} of {len(table.conversations())} conversations" if args.top else
                f"{len(rows)} conversation{'' if len(rows) == 1 else 's'}", left,
                times.zone_label(min(c.first_ns for c in rows)))
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
