"""`portlens sniff` (live dashboard, then the per-port report) and `portlens interfaces`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import RenderableType

    from portlens.analysis.ports import PortTable
    from portlens.pipeline import Tracker
    from portlens.track.model import Connection

from portlens.cli.args import tracking_parser
from portlens.cli.common import (
    EXIT_ERROR,
    EXIT_NOTHING,
    EXIT_OK,
    error,
    evicted_note,
    exit_status,
    live_summary,
    reading,
    screen,
    sniff_writes_json,
    stderr_console,
    wide_arg,
)
from portlens.cli.times import time_args

EPILOG_SNIFF = """examples:
  portlens sniff -i eth0                          live dashboard; Ctrl-C prints the report
  portlens sniff -i any -f 'tcp port 443' -w tls.pcap
  portlens sniff -i lo --duration 30 --json > conns.jsonl   connections as they end
  portlens ports -i eth0 -c 10000                 any report works on -i too
"""


def add_live_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = tracking_parser(sub, "sniff", "capture live: a dashboard, then the per-port report",
                        EPILOG_SNIFF)
    p.add_argument("--json", action="store_true",
                   help="no dashboard: connections as JSON lines as they end (the default when "
                        "standard output is not a terminal)")
    time_args(p, styles=False)
    wide_arg(p)
    p.set_defaults(func=cmd_sniff)

    p = sub.add_parser("interfaces", help="network interfaces to capture on")
    p.add_argument("--json", action="store_true", help="JSON lines")
    wide_arg(p)
    p.set_defaults(func=cmd_interfaces)


def cmd_sniff(args: argparse.Namespace) -> int:
    """Live capture: a dashboard while it runs (or JSON lines when piped), the per-port report
    at the end, the same as `portlens ports` on the -w file afterwards."""
    import time

    from portlens.analysis.columns import PORT_COLUMNS
    from portlens.analysis.ports import PortTable
    from portlens.pipeline.run import COLUMN_BLOCK, ColumnBlocks
    from portlens.report import conns as conns_report
    from portlens.report import ports as ports_report

    if not args.interface:
        error("sniff needs -i IFACE (`portlens interfaces` lists them)")
        return EXIT_ERROR
    ended = PortTable()
    recent: deque[Connection] = deque(maxlen=RECENT)  # --reference: objects as they end
    latest = _Latest()  # the core's tracker: columns, made objects when the dashboard shows
    as_json = sniff_writes_json(args)
    out: TextIO = sys.stdout

    missed = _Missed()

    def take(c: Connection) -> None:
        """A connection that ended, where the tracker gives objects (--reference)."""
        ended.add(c)
        recent.append(c)
        if c.proto == "tcp":
            missed.gap += c.missed_bytes
            missed.total += c.orig_bytes + c.resp_bytes
        if as_json:
            out.write(conns_report.json_line(conns_report.record(c)) + "\n")

    folded = ColumnBlocks(ended.add_columns, COLUMN_BLOCK, PORT_COLUMNS)  # only what it reads

    def take_columns(cols: dict[str, Any]) -> None:
        """The connections a batch ended, as the core's columns: no object a connection
        (they end at up to tens of thousands a second), but for the dashboard's last few."""
        if not len(cols["uid"]):
            return
        folded.add(cols)
        tcp = cols["ip_proto"] == 6
        missed.gap += int(cols["missed_bytes"][tcp].sum())
        missed.total += int(cols["orig_bytes"][tcp].sum() + cols["resp_bytes"][tcp].sum())
        if as_json:
            conns_report.write_json_columns(cols, out)
        else:
            latest.add(cols)

    status = [EXIT_OK]
    live = None
    if not as_json:
        from rich.live import Live

        live = Live(refresh_per_second=2, transient=True, console=stderr_console())
        live.start()
    last_view = 0.0

    def after_batch(tracker: Tracker) -> None:
        nonlocal last_view
        if as_json:
            out.flush()
        now = time.monotonic()
        if live is not None and now - last_view >= 0.5:
            last_view = now
            folded.flush()
            live.update(_dashboard(args, tracker, ended, list(recent) + latest.connections()))

    with reading(args, status) as pipeline:
        try:
            args.pipeline = pipeline
            pipeline.track(take, on_batch=after_batch, wall_clock=True,
                           on_columns=take_columns, column_block=1)
        except KeyboardInterrupt:
            # A Ctrl-C after the capture ended (the backlog was analysed before it came) cuts
            # the output of the last connections short, never the closing line below.
            status[0] = EXIT_OK
        finally:
            if live is not None:
                live.stop()
            folded.flush()
            evicted_note(pipeline.evicted, pipeline.options.tracker.max_flows)
        if pipeline.live_session is not None:
            live_summary(pipeline.live_session, status)
    if missed.total:
        print(f"capture loss estimate: {100 * missed.gap / missed.total:.3f}% of "
              f"{missed.total:,} TCP payload bytes were acknowledged but never seen "
              f"(Zeek's missed_bytes, per connection in `conns`)", file=sys.stderr)
    if not as_json and len(ended):
        ports_report.print_table(screen(args), ended, "conns", None)
    out.flush()
    return exit_status(status[0], len(ended))


RECENT = 64
"""Ended connections the dashboard keeps to show."""


class _Latest:
    """The last RECENT connections that ended, as the blocks of columns that hold them; made
    objects only when the dashboard is drawn (twice a second), not as each batch ends."""

    def __init__(self) -> None:
        self._blocks: deque[dict[str, Any]] = deque()
        self._rows = 0

    def add(self, cols: dict[str, Any]) -> None:
        self._blocks.append(cols)
        self._rows += len(cols["uid"])
        while self._rows - len(self._blocks[0]["uid"]) >= RECENT:
            self._rows -= len(self._blocks.popleft()["uid"])

    def connections(self) -> list[Connection]:
        """The last RECENT, oldest first, without their transitions (not shown)."""
        from portlens.track.objects import connections

        out: list[Connection] = []
        for cols in self._blocks:
            out.extend(connections({k: v for k, v in cols.items()
                                    if not k.startswith("transitions.")}))
        return out[-RECENT:]


@dataclasses.dataclass
class _Missed:
    """Bytes acknowledged but never captured, against all TCP payload bytes."""

    gap: int = 0
    total: int = 0


def _dashboard(args: argparse.Namespace, tracker: Tracker, ended: PortTable,
               recent: Sequence[Connection]) -> RenderableType:
    import time

    from portlens.analysis.ports import PortTable
    from portlens.capture import LiveSession
    from portlens.report.clock import Clock
    from portlens.report.live import Rates, dashboard

    session = args.pipeline.live_session
    assert isinstance(session, LiveSession)
    c = session.counters
    elapsed = max(time.monotonic() - c.started, 1e-9)
    stats = session.kernel_stats()
    open_conns = tracker.open_connections(limit=200)
    rates = Rates(args.interface, elapsed, c.packets, c.bytes, c.packets / elapsed,
                  c.bytes / elapsed, stats.received, stats.dropped, session.capture.ring_full,
                  c.buffer_dropped, c.backlog_bytes, c.spooled_bytes, c.behind_s,
                  Clock(utc=args.utc).stamp(c.started_ns, whole=True))
    return dashboard(rates, ended + PortTable().update(open_conns), open_conns,
                     recent, wide=args.wide)


def cmd_interfaces(args: argparse.Namespace) -> int:
    from portlens.sources.interfaces import list_interfaces

    found = list_interfaces(include_any=True)
    if args.json:
        for i in found:
            print(json.dumps(i.as_dict()))
    else:
        from portlens.report.tables import Column, TableWriter, left_out_text

        where = screen(args)
        writer = TableWriter(where, [Column("interface"), Column("index", right=True),
                                     Column("state"), Column("link type"),
                                     Column("mtu", right=True),
                                     Column("addresses", fold=True)],
                             drop_order=("mtu", "index", "link type"))
        for i in found:
            writer.add((i.name, str(i.index), "UP" if i.up else "DOWN", i.link_type, str(i.mtu),
                        ", ".join(i.addresses) or "-"))
        left_out = writer.close()
        if left_out:
            where.note(f"({left_out_text(left_out, where.width)})")
    return EXIT_OK if found else EXIT_NOTHING
