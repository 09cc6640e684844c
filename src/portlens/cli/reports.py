"""The reports built on connections: `ports` (the default command), `handshakes`, `sockets`
and `ladder`."""

from __future__ import annotations

import argparse
import sys
from functools import partial

from portlens.cli.args import tracking_parser
from portlens.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    each_connection,
    error,
    exit_status,
    interrupted_note,
    reading,
    screen,
    tracker_config,
    wide_arg,
)
from portlens.cli.times import time_args

EPILOG_PORTS = """examples:
  portlens ports capture.pcap                    one row per server port (also: portlens FILE)
  portlens ports --sort bytes --top 10 a.pcap    the ten ports that moved the most bytes
  portlens ports --all-ports a.pcap              client (originator) ports get rows too
  portlens ports --json a.pcap b.pcap.gz         exact numbers, JSON lines, totals last
"""


EPILOG_HANDSHAKES = """examples:
  portlens handshakes capture.pcap               SYNs, answers, RTTs and options per port
  portlens handshakes --port 443 --conns a.pcap  every handshake to port 443
"""


EPILOG_SOCKETS = """examples:
  portlens sockets capture.pcap                  listening sockets and every connection's ends
  portlens sockets --listening --json a.pcap     only the listeners, as JSON lines
"""


EPILOG_LADDER = """examples:
  portlens conns capture.pcap                    find the uid of a connection
  portlens ladder capture.pcap --conn CExxtitmB3KDOVDJlg
  portlens ladder capture.pcap --conn CExx       a uid's start is enough when unique
  portlens ladder capture.pcap --conn 10.0.0.1:1234-10.0.0.2:80
  portlens ladder capture.pcap --conn UID --full every segment, nothing folded
"""


def add_report_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def output_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", dest="format", action="store_const", const="json",
                       default="table", help="JSON lines, exact numbers")
        p.add_argument("--csv", dest="format", action="store_const", const="csv",
                       help="CSV, exact numbers")
        wide_arg(p)

    p = tracking_parser(sub, "ports", "per-port summary: outcomes, traffic, clients, RTT "
                        "(the default command)", EPILOG_PORTS)
    output_args(p)
    p.add_argument("--sort", choices=("conns", "bytes", "packets", "port"), default="conns",
                   help="row order (default: most connections first)")
    p.add_argument("--top", type=int, metavar="N", help="only the first N rows")
    p.add_argument("--all-ports", action="store_true",
                   help="also give client (originator) ports rows")
    p.set_defaults(func=cmd_ports)

    p = tracking_parser(sub, "handshakes", "TCP handshakes per server port (or per connection)",
                        EPILOG_HANDSHAKES)
    output_args(p)
    p.add_argument("--port", type=int, action="append", metavar="P",
                   help="only this server port (repeatable)")
    p.add_argument("--conns", action="store_true", help="one row per connection")
    p.set_defaults(func=cmd_handshakes)

    p = tracking_parser(sub, "sockets", "observed listening sockets and connection ends, ss style",
                        EPILOG_SOCKETS)
    output_args(p)
    p.add_argument("--listening", action="store_true", help="only the listening sockets")
    p.set_defaults(func=cmd_sockets)

    p = tracking_parser(sub, "ladder", "one connection as a sequence diagram with both states",
                        EPILOG_LADDER)
    p.add_argument("--conn", required=True, metavar="UID|5-TUPLE",
                   help="the connection: its uid as `portlens conns` shows it, or the start of "
                        "it, or its 5-tuple either way round: 10.0.0.1:1234-10.0.0.2:80, "
                        "[fe80::1]:1234-[fe80::2]:80, or tcpdump's '10.0.0.1.1234 > "
                        "10.0.0.2.80' (optionally after 'tcp ' or 'udp ')")
    p.add_argument("--full", action="store_true", help="every segment (long ones fold)")
    time_args(p, styles=False)
    p.set_defaults(func=cmd_ladder)


def cmd_ports(args: argparse.Namespace) -> int:
    from portlens.analysis.ports import PORT_COLUMNS, PortTable
    from portlens.report import ports as report

    if args.top is not None and args.top < 1:
        error("--top must be at least 1")
        return EXIT_ERROR
    table = PortTable(all_ports=args.all_ports)
    status = each_connection(args, table.add, table.not_counted,  # type: ignore[arg-type]
                             on_columns=table.add_columns, column_names=PORT_COLUMNS,
                             core_fold=table.core_fold)
    if args.format == "json":
        report.write_json(table, sys.stdout, args.sort, args.top)
    elif args.format == "csv":
        report.write_csv(table, sys.stdout, args.sort, args.top)
    elif len(table):
        report.print_table(screen(args), table, args.sort, args.top)
    sys.stdout.flush()
    return exit_status(status, len(table))


def cmd_handshakes(args: argparse.Namespace) -> int:
    from typing import Any

    from portlens.analysis.handshakes import HANDSHAKE_COLUMNS, HandshakeTable, connection_record
    from portlens.report import handshakes as report
    from portlens.track.model import Connection

    ports = set(args.port or ())
    table = HandshakeTable()
    per_conn: list[dict[str, Any]] = []

    def sink(c: object) -> None:
        assert isinstance(c, Connection)
        if ports and c.resp_p not in ports:
            return
        if args.conns:
            rec = connection_record(c)
            if rec is not None:
                per_conn.append(rec)
        else:
            table.add(c)

    def columns(cols: dict[str, Any]) -> None:
        table.add_columns(cols, frozenset(ports))

    status = each_connection(args, sink, on_columns=None if args.conns else columns,
                             column_names=HANDSHAKE_COLUMNS,
                             core_fold=None if args.conns else partial(table.core_fold, ports))
    if args.conns:
        per_conn.sort(key=lambda r: int(r["ts_ns"]))
    records = per_conn if args.conns else table.records()
    if args.format == "json":
        report.write_json(records, sys.stdout)
    elif args.format == "csv":
        report.write_csv(records, sys.stdout)
    elif records and args.conns:
        report.print_conns(screen(args), records)
    elif records:
        report.print_table(screen(args), table)
    sys.stdout.flush()
    return exit_status(status, records)


def cmd_sockets(args: argparse.Namespace) -> int:
    from typing import Any

    from portlens.analysis.sockets import SOCKET_COLUMNS, SocketTable
    from portlens.report import sockets as report

    table = SocketTable()

    def columns(cols: dict[str, Any]) -> None:
        table.add_columns(cols, sockets=not args.listening)

    status = each_connection(args, table.add, on_columns=columns,  # type: ignore[arg-type]
                             column_names=SOCKET_COLUMNS,
                             core_fold=partial(table.core_fold, not args.listening))
    if args.listening:
        table.sockets = []
    found = table.listener_count() + table.socket_count()
    if args.format == "json":
        report.write_json(table, sys.stdout)
    elif args.format == "csv":
        report.write_csv(table, sys.stdout)
    elif found:
        report.print_tables(screen(args), table)
    sys.stdout.flush()
    return exit_status(status, found)


def cmd_ladder(args: argparse.Namespace) -> int:
    from portlens.analysis.ladder import (
        CANDIDATES_SHOWN,
        SelectorError,
        choose,
        ladder,
        parse_selector,
    )
    from portlens.report.clock import Clock
    from portlens.report.ladder import text
    from portlens.track.model import Connection

    try:
        selector = parse_selector(args.conn)
    except SelectorError as exc:
        error(str(exc))
        return EXIT_ERROR
    found: list[Connection] = []
    matches = 0

    def sink(c: Connection) -> None:
        nonlocal matches
        if selector.matches(c):
            matches += 1
            if len(found) <= CANDIDATES_SHOWN:  # enough to list; `--conn C` matches them all
                found.append(c)

    status = [EXIT_OK]
    with reading(args, status) as pipeline:
        finder = pipeline.first_pass()  # finds the connection; writes nothing
        try:
            finder.track(sink)
        except KeyboardInterrupt:
            interrupted_note()
            return EXIT_INTERRUPTED
        pipeline.not_decoded = finder.not_decoded
        try:
            conn = choose(selector, sorted(found, key=lambda c: c.ts_ns), args.conn, matches)
        except SelectorError as exc:
            error(str(exc))
            return exit_status(status[0], False) if not found else EXIT_ERROR
        pipeline.select_connection(conn)  # the second pass reads (and -w writes) its packets
        drawn = ladder(conn, pipeline.packets(), tracker_config(args))
    sys.stdout.write(text(drawn, full=args.full, clock=Clock(utc=args.utc)))
    sys.stdout.flush()
    return status[0]
