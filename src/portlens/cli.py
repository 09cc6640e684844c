"""The command line. Nothing else in portlens knows about argv, stdout or exit codes.

Exit status: 0 results, 1 nothing found, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
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

    p = sub.add_parser("conns", help="connections, Zeek conn.log style (+ RFC 9293 states)",
                       epilog=EPILOG_CONNS, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    p.add_argument("--format", choices=("table", "json", "csv", "zeek"), default="table",
                   help="output format (default: a table)")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="same as --format json")
    p.add_argument("--csv", dest="format", action="store_const", const="csv",
                   help="same as --format csv")
    p.add_argument("--port", type=int, action="append", metavar="P",
                   help="only connections with this port on either side (repeatable)")
    p.add_argument("--host", action="append", metavar="ADDR",
                   help="only connections with this address on either side (repeatable)")
    p.add_argument("--state", action="append", metavar="CONN_STATE",
                   help="only this Zeek conn_state, e.g. SF, REJ, S0 (repeatable)")
    p.add_argument("--proto", choices=("tcp", "udp", "icmp"), action="append",
                   help="only this protocol (repeatable)")
    p.set_defaults(func=cmd_conns)

    p = sub.add_parser("events", help="the stream of TCP state transitions (conntrack -E style)",
                       epilog=EPILOG_EVENTS, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_events)
    return parser


EPILOG_CONNS = """examples:
  portlens conns capture.pcap                    a table of connections
  portlens conns --format zeek a.pcap > conn.log Zeek's conn.log (zeek-cut reads it)
  portlens conns --json --state REJ a.pcap       refused connections as JSON lines
  portlens conns --checksums drop a.pcap         like Zeek without -C
"""

EPILOG_EVENTS = """examples:
  portlens events capture.pcap                   every endpoint state change, in time order
  portlens events --json capture.pcap | jq .     the same as JSON lines
"""


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="pcap or pcapng files (gzip ok), read as one stream in order")


def _tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checksums", choices=("keep", "drop"), default="keep",
                   help="keep: count packets with bad checksums and flag them (like zeek -C, "
                        "the default); drop: ignore them as Zeek does by default (history c/C)")
    p.add_argument("--timeout", action="append", default=[], metavar="NAME=SECONDS",
                   help="change a timeout: tcp_inactivity, udp_inactivity, icmp_inactivity, "
                        "tcp_attempt, tcp_close, tcp_reset, tcp_partial_close (repeatable)")
    p.add_argument("--max-flows", type=int, default=1_000_000, metavar="N",
                   help="open flows kept at most; the longest idle beyond are evicted")
    p.add_argument("--vlan-key", action="store_true",
                   help="make the VLAN id part of the flow key")


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


def _tracker_config(args: argparse.Namespace) -> object:
    from portlens.track.timeouts import Timeouts
    from portlens.track.tracker import TrackerConfig

    seconds = {}
    for item in args.timeout:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--timeout wants NAME=SECONDS, got {item!r}")
        try:
            seconds[name] = float(value)
        except ValueError:
            raise UsageError(f"--timeout {name}: {value!r} is not a number") from None
    try:
        timeouts = Timeouts().with_seconds(**seconds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.max_flows < 1:
        raise UsageError("--max-flows must be at least 1")
    return TrackerConfig(timeouts=timeouts, drop_bad_checksums=args.checksums == "drop",
                         max_flows=args.max_flows, vlan_in_key=args.vlan_key)


class UsageError(Exception):
    """A command-line mistake: one line, exit status 2."""


def _read_batches(files: Sequence[str], status: list[int]) -> Iterator[object]:
    """Decoded batches of all files in order; input errors are reported and remembered."""
    from portlens.decode import decode_capture
    from portlens.sources.files import CaptureError

    for path in files:
        try:
            yield from decode_capture(path)
        except CaptureError as exc:
            error(str(exc))
            status[0] = EXIT_ERROR
        except OSError as exc:
            error(f"{path}: {exc.strerror or exc}")
            status[0] = EXIT_ERROR


def _conn_filter(args: argparse.Namespace) -> Callable[[object], bool]:
    ports = set(args.port or ())
    hosts = set(args.host or ())
    states = {s.upper() for s in (args.state or ())}
    protos = set(args.proto or ())

    def keep(c: object) -> bool:
        from portlens.track.model import Connection

        assert isinstance(c, Connection)
        if ports and c.orig_p not in ports and c.resp_p not in ports:
            return False
        if hosts and c.orig_h not in hosts and c.resp_h not in hosts:
            return False
        if states and c.conn_state not in states:
            return False
        return not (protos and c.proto not in protos)

    return keep


def cmd_conns(args: argparse.Namespace) -> int:
    from portlens.decode.packets import PacketBatch
    from portlens.report import conns as report
    from portlens.track.model import Connection
    from portlens.track.tracker import Tracker, TrackerConfig

    try:
        config = _tracker_config(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_ERROR
    assert isinstance(config, TrackerConfig)
    status = [EXIT_OK]
    tracker = Tracker(config)
    keep = _conn_filter(args)
    out: TextIO = sys.stdout
    found = 0
    table: list[Connection] = []
    zeek = report.ZeekWriter(out) if args.format == "zeek" else None
    if args.format == "csv":
        report.write_csv([], out)

    def emit(conns: list[Connection]) -> None:
        nonlocal found
        for c in conns:
            if not keep(c):
                continue
            found += 1
            if zeek is not None:
                zeek.write(c)
            elif args.format == "json":
                out.write(report.json_line(report.record(c)) + "\n")
            elif args.format == "csv":
                report.write_csv([c], out, header=False)
            else:
                table.append(c)

    try:
        for batch in _read_batches(args.files, status):
            assert isinstance(batch, PacketBatch)
            emit(tracker.feed(batch))
    finally:
        emit(tracker.finish())
        if zeek is not None:
            zeek.close()
        if args.format == "table":
            _print_table(table, report.TABLE_COLUMNS, report.table_rows(
                sorted(table, key=lambda c: c.ts_ns)))
        out.flush()
    if status[0] != EXIT_OK:
        return status[0]
    return EXIT_OK if found else EXIT_NOTHING


def cmd_events(args: argparse.Namespace) -> int:
    from portlens.decode.packets import PacketBatch
    from portlens.report import conns as report
    from portlens.track.model import Transition
    from portlens.track.tracker import Tracker, TrackerConfig

    try:
        config = _tracker_config(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_ERROR
    assert isinstance(config, TrackerConfig)
    out: TextIO = sys.stdout
    count = 0

    def on_transition(t: Transition) -> None:
        nonlocal count
        count += 1
        if args.json:
            out.write(report.json_line(report.transition_record(t)) + "\n")
        else:
            out.write(report.event_line(t) + "\n")

    status = [EXIT_OK]
    tracker = Tracker(config, on_transition=on_transition)
    for batch in _read_batches(args.files, status):
        assert isinstance(batch, PacketBatch)
        tracker.feed(batch)
    tracker.finish()
    out.flush()
    if status[0] != EXIT_OK:
        return status[0]
    return EXIT_OK if count else EXIT_NOTHING


def _print_table(items: Sequence[object], columns: Sequence[str],
                 rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    Console(stderr=True).print(f"{len(items)} connections", style="dim")
