"""`portlens conns` (one row per connection, Zeek conn.log style) and `portlens events` (the
stream of TCP state transitions)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, cast

from portlens.cli.args import tracking_parser
from portlens.cli.common import (
    EXIT_OK,
    each_connection,
    evicted_note,
    exit_status,
    live_summary,
    reading,
    screen,
    wide_arg,
)
from portlens.cli.times import ZoneNote, clock, time_args

if TYPE_CHECKING:
    from portlens.track.model import Connection

EPILOG_CONNS = """examples:
  portlens conns capture.pcap                    a table of connections
  portlens conns --format zeek a.pcap > conn.log Zeek's conn.log (zeek-cut reads it)
  portlens conns --json --state REJ a.pcap       refused connections as JSON lines
  portlens conns --checksums drop a.pcap         like Zeek without -C
  portlens conns --uid CNtLJebA4PlGyo1HBf a.pcap one connection (a uid's start works too)
  portlens conns -tttt --utc a.pcap              start times with the date, in UTC
"""


EPILOG_EVENTS = """examples:
  portlens events capture.pcap                   every endpoint state change, in time order
  portlens events --json capture.pcap | jq .     the same as JSON lines
"""


def add_conns_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = tracking_parser(sub, "conns", "connections, Zeek conn.log style (+ RFC 9293 states)",
                        EPILOG_CONNS)
    p.add_argument("--format", choices=("table", "json", "csv", "zeek"), default="table",
                   help="output format (default: a table)")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    p.add_argument("--csv", dest="format", action="store_const", const="csv",
                   help="same as --format csv")
    p.add_argument("--port", type=int, action="append", metavar="P",
                   help="only connections with this port on either side (repeatable)")
    p.add_argument("--host", action="append", metavar="ADDR",
                   help="only connections with this address, or an address in this prefix "
                        "(10.0.0.0/8), on either side (repeatable)")
    p.add_argument("--state", action="append", metavar="CONN_STATE",
                   help="only this Zeek conn_state, e.g. SF, REJ, S0 (repeatable)")
    p.add_argument("--proto", choices=("tcp", "udp", "icmp", "unknown_transport"),
                   action="append",
                   help="only this protocol (repeatable; unknown_transport: IP protocols "
                        "without ports, OSPF, SCTP ...)")
    p.add_argument("--uid", action="append", metavar="UID",
                   help="only the connection with this uid, or the uids starting so "
                        "(repeatable)")
    p.add_argument("--parquet", metavar="DIR",
                   help="write the connections as a Parquet dataset in the new directory DIR, "
                        "partitioned by day and protocol (pandas.read_parquet(DIR) reads it), "
                        "instead of printing them")
    time_args(p)
    wide_arg(p)
    p.set_defaults(func=cmd_conns)


def add_events_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = tracking_parser(sub, "events", "the stream of TCP state transitions (conntrack -E style)",
                        EPILOG_EVENTS)
    p.add_argument("--json", action="store_true", help="JSON lines")
    time_args(p)
    p.set_defaults(func=cmd_events)


def _conn_filter(args: argparse.Namespace) -> Callable[[object], bool]:
    import ipaddress
    from functools import lru_cache

    from portlens.cli.args import host_network

    ports = set(args.port or ())
    nets = getattr(args, "host_nets", None) or [host_network(h) for h in args.host or ()]
    states = {s.upper() for s in (args.state or ())}
    protos = set(args.proto or ())
    uids = tuple(args.uid or ())

    @lru_cache(maxsize=65536)
    def in_nets(addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip.version == n.version and ip in n for n in nets)

    def keep(c: object) -> bool:
        from portlens.track.model import Connection

        assert isinstance(c, Connection)
        if ports and c.orig_p not in ports and c.resp_p not in ports:
            return False
        if nets and not in_nets(c.orig_h) and not in_nets(c.resp_h):
            return False
        if states and c.conn_state not in states:
            return False
        if uids and not c.uid.startswith(uids):
            return False
        return not (protos and c.proto not in protos)

    return keep


def cmd_conns(args: argparse.Namespace) -> int:
    from portlens.report.zeek import ZEEK_COLUMNS, ZeekWriter

    keep = _conn_filter(args)
    out: TextIO = sys.stdout
    found = 0
    if args.parquet:
        return _conns_parquet(args, keep)
    # conn.log's lines come written by the core, or from report/zeek.py: the other formats'
    # writers, and the model they read, are not imported for it (10 ms of its start-up)
    zeek = ZeekWriter(out) if args.format == "zeek" else None
    if zeek is None:
        from portlens.report import conns as report
    table = report.ConnsTable(screen(args), clock(args)) if args.format == "table" else None
    if args.format == "csv":
        report.write_csv([], out)

    def emit(c: object) -> None:
        nonlocal found
        c = cast("Connection", c)  # the reference tracker's
        if not keep(c):
            return
        found += 1
        if zeek is not None:
            zeek.write(c)
        elif table is not None:
            table.add(c)
        elif args.format == "json":
            out.write(report.json_line(report.record(c)) + "\n")
        else:
            report.write_csv([c], out, header=False)

    def emit_columns(cols: dict[str, Any]) -> None:
        nonlocal found
        found += len(cols["uid"])
        if zeek is not None:
            zeek.write_columns(cols)
        elif table is not None:
            table.add_columns(cols)
        elif args.format == "json":
            report.write_json_columns(cols, out)
        else:
            report.write_csv_columns(cols, out)

    def emit_conn_log(text: str, rows: int) -> None:
        nonlocal found
        found += rows
        out.write(text)

    # The table, conn.log, JSON or CSV lines of every connection straight from the tracker's
    # columns (no filter to apply to Connections), each batch's as it ends: the output streams
    # as before.
    unfiltered = not (args.port or args.host or getattr(args, "host_nets", None)
                      or args.state or args.proto or args.uid)
    columns = unfiltered and args.format in ("zeek", "json", "csv", "table")
    names = (ZEEK_COLUMNS if zeek is not None
             else report.TABLE_SOURCE_COLUMNS if table is not None else None)
    status = each_connection(args, emit, on_columns=emit_columns if columns else None,
                             column_block=1, column_names=names,
                             on_conn_log=emit_conn_log if columns and zeek else None)
    if zeek is not None:
        zeek.close()
    if table is not None:
        table.close()
    out.flush()
    return exit_status(status, found)


def _conns_parquet(args: argparse.Namespace, keep: Callable[[object], bool]) -> int:
    from portlens.cli.common import UsageError, error
    from portlens.report.parquet import ParquetError, ParquetWriter
    from portlens.track.model import Connection

    if args.format != "table":
        raise UsageError(f"--parquet writes the rows to a dataset; --{args.format} prints "
                         "them: give one of the two")
    try:
        writer = ParquetWriter(args.parquet)
    except ParquetError as exc:
        raise UsageError(str(exc)) from None

    def emit(c: object) -> None:
        assert isinstance(c, Connection)
        if keep(c):
            writer.add(c)

    status = each_connection(args, emit)
    writer.close()
    n = writer.written
    error(f"{n:,} connection{'' if n == 1 else 's'} written to {args.parquet} (Parquet, "
          "partitioned by day and proto)")
    return exit_status(status, n)


def cmd_events(args: argparse.Namespace) -> int:
    from portlens.report import conns as report
    from portlens.track.model import Transition, TransitionStream

    out: TextIO = sys.stdout
    times = clock(args)
    zone_note = ZoneNote(times)

    class Events(TransitionStream):
        """Each transition's line, from the compiled tracker's columns a batch at a time
        (or from a Transition, the reference tracker's)."""

        count = 0

        def __call__(self, t: Transition) -> None:
            self.count += 1
            if args.json:
                out.write(report.json_line(report.transition_record(t)) + "\n")
            else:
                zone_note(t.ts_ns)
                out.write(report.event_line(t, times) + "\n")

        def columns(self, cols: dict[str, Any]) -> None:
            self.count += len(cols["uid"])
            if args.json:
                out.write(report.event_json_lines(cols))
            else:
                zone_note(int(cols["ts_ns"][0]))
                out.write(report.event_lines(cols, times))

    on_transition = Events()
    status = [EXIT_OK]
    with reading(args, status) as pipeline:
        # Only the transitions are printed: the connections that end are not made (their
        # uids only, where the tracker hands them over as columns).
        pipeline.track(lambda _c: None, on_transition, on_columns=lambda _cols: None,
                       column_block=1, column_names=("uid",))
        if pipeline.live_session is not None:
            live_summary(pipeline.live_session, status)
    out.flush()
    evicted_note(pipeline.evicted, pipeline.options.tracker.max_flows)
    return exit_status(status[0], on_transition.count)
