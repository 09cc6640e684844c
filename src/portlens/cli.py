"""The command line. Nothing else in portlens knows about argv, stdout or exit codes.

Exit status: 0 results, 1 nothing found, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from portlens import __version__

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from portlens.capture import LiveSession
    from portlens.track.tracker import TrackerConfig

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
    parser.add_argument("--no-color", action="store_true",
                        help="no colour, even on a terminal (colour is only used on terminals)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("packets", help="decode frames: one line (or JSON object) per frame",
                       epilog=EPILOG_PACKETS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", metavar="FILE", help="pcap or pcapng files (gzip ok)")
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--json", action="store_true", help="JSON lines, one object per frame")
    p.add_argument("--stats", action="store_true",
                   help="no frames: a summary of the files (with --json: one JSON object)")
    p.add_argument("--reference", action="store_true",
                   help="use the slow per-packet reference decoder (for cross-checking)")
    _filter_arg(p)
    _live_args(p, count=False)
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

    p = sub.add_parser("sniff", help="capture live: a dashboard, then the per-port report",
                       epilog=EPILOG_SNIFF, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    p.add_argument("--json", action="store_true",
                   help="no dashboard: connections as JSON lines as they end (the default when "
                        "standard output is not a terminal)")
    p.set_defaults(func=cmd_sniff)

    p = sub.add_parser("interfaces", help="network interfaces to capture on")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_interfaces)

    p = sub.add_parser("events", help="the stream of TCP state transitions (conntrack -E style)",
                       epilog=EPILOG_EVENTS, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_events)
    _report_parsers(sub)
    return parser


EPILOG_SNIFF = """examples:
  portlens sniff -i eth0                          live dashboard; Ctrl-C prints the report
  portlens sniff -i any -f 'tcp port 443' -w tls.pcap
  portlens sniff -i lo --duration 30 --json > conns.jsonl   connections as they end
  portlens ports -i eth0 -c 10000                 any report works on -i too
"""

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
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="pcap or pcapng files (gzip ok), read as one stream in order")
    _filter_arg(p)
    _live_args(p)


def _live_args(p: argparse.ArgumentParser, *, count: bool = True) -> None:
    live = p.add_argument_group("live capture (instead of files; needs root or CAP_NET_RAW)")
    live.add_argument("-i", "--interface", metavar="IFACE",
                      help="capture on this interface ('any' for all); see `portlens "
                           "interfaces`; Ctrl-C ends the capture and prints the report")
    if count:
        live.add_argument("-c", "--count", type=int, metavar="N",
                          help="stop after N packets (after filtering)")
    live.add_argument("--duration", type=float, metavar="SECONDS",
                      help="stop after this many seconds")
    live.add_argument("-s", "--snaplen", type=int, default=262144, metavar="BYTES",
                      help="bytes kept of each packet (default 262144)")
    live.add_argument("-w", "--write", metavar="FILE",
                      help="also write the packets analysed to FILE (pcap; mode 0600)")
    live.add_argument("--pcapng", action="store_true", help="write -w as pcapng")
    live.add_argument("--backend", choices=("auto", "ring", "recv", "scapy"), default="auto",
                      help="ring: TPACKET_V3 memory-mapped ring (default); recv: one system "
                           "call per packet; scapy: portable fallback")
    live.add_argument("-Z", "--user", metavar="USER",
                      help="drop root privileges to USER once the capture socket is open")
    live.add_argument("-B", "--kernel-buffer", type=int, default=128, metavar="MB",
                      help="the kernel's capture ring (default 128 MB): it must hold what "
                           "arrives while the analysis pauses")
    live.add_argument("--buffer", type=int, default=512, metavar="MB",
                      help="packets captured but not yet analysed may wait in this much "
                           "memory (default 512): bursts faster than the analysis are kept")
    live.add_argument("--spool", type=int, default=8192, metavar="MB",
                      help="past --buffer, up to this much more waits on disk in an unlinked "
                           "temporary file (default 8192; 0: drop instead): the analysis "
                           "falls behind but nothing is lost")
    live.add_argument("--spool-dir", metavar="DIR",
                      help="where the spool file lives (default: $TMPDIR or /tmp)")


def _filter_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", metavar="EXPR", default="",
                   help="tcpdump-syntax filter on the innermost layer, e.g. 'tcp port 443', "
                        "'host 10.0.0.1 and not port 22' (docs/filters.md)")


def _check_source(args: argparse.Namespace) -> None:
    """Files or an interface, not both, not neither (for the commands that read packets)."""
    if not hasattr(args, "files"):
        return
    live = getattr(args, "interface", None)
    if live and args.files:
        raise UsageError("give capture files or -i IFACE, not both")
    if not live and not args.files and getattr(args, "command", "") != "sniff":
        raise UsageError("no capture file given (or -i IFACE to capture live)")
    if live and getattr(args, "workers", 1) > 1:
        raise UsageError("--workers is for files; a live capture is tracked in one process")
    if not live:
        for name in ("write", "duration", "user"):
            if getattr(args, name, None):
                raise UsageError(f"--{name} is for live capture (-i IFACE)")


def _packet_filter(args: argparse.Namespace) -> object:
    """The compiled -f filter (None when absent); a bad expression is a usage error."""
    from portlens.filter import FilterError, compile_filter

    try:
        pf = compile_filter(getattr(args, "filter", "") or "")
    except FilterError as exc:
        raise UsageError(str(exc)) from None
    return None if pf.matches_all else pf


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
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="track with N processes (flows sharded by host pair; output rows of "
                        "different workers interleave)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = _default_command(parser, sys.argv[1:] if argv is None else list(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    if args.no_color:
        import os

        os.environ["NO_COLOR"] = "1"  # rich reads it for every console it creates
    _tune_gc()
    try:
        args.packet_filter = _packet_filter(args)
        _check_source(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_ERROR
    from portlens.sources.live import LiveCaptureError

    try:
        return int(args.func(args))
    except UsageError as exc:
        error(str(exc))
        return EXIT_ERROR
    except LiveCaptureError as exc:
        error(str(exc))
        return EXIT_ERROR
    except OSError as exc:  # -w FILE that cannot be written, and the like
        error(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `portlens packets big.pcap | head`
        _silence_stdout()
        return EXIT_OK


def _tune_gc() -> None:
    """Tracking makes many small objects and no reference cycles (connections break theirs
    when reported), so the cycle collector has little to find: run it less often, and never
    over the objects of start-up (about 10 % faster, and shorter pauses in live capture)."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def error(message: str) -> None:
    print(f"portlens: {message}", file=sys.stderr)


def _exit_status(status: int, found: object) -> int:
    """grep's convention: an error's status wins; otherwise 1 when nothing matched, so scripts
    can tell an empty answer from a failed run."""
    if status != EXIT_OK:
        return status
    return EXIT_OK if found else EXIT_NOTHING


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

    def show(batch: PacketBatch) -> None:
        if args.stats:
            stats.add(batch)
        elif args.json:
            out.write("".join(json.dumps(report.record(r)) + "\n"
                              for r in report.iter_rows(batch)))
        else:
            out.write("".join(report.line(r) + "\n" for r in report.iter_rows(batch)))
        out.flush()

    if args.interface:  # live: the session applies -f and -c
        live_status = [EXIT_OK]
        for batch in _batches(args, live_status):
            assert isinstance(batch, PacketBatch)
            show(batch)
        if args.stats:
            _print_stats(stats, [args.interface]) if not args.json else out.write(
                json.dumps(stats.to_dict()) + "\n")
        return live_status[0]
    for path in args.files:
        if remaining == 0:
            break
        try:
            for batch in decode_capture(path, reference=args.reference):
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


def _tracker_config(args: argparse.Namespace) -> TrackerConfig:
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
    # Transition lists are printed only by `conns --json` and drawn by `ladder`; building them
    # for every connection costs time the other outputs need not pay.
    transitions = args.command == "ladder" or (
        args.command in ("conns", "sniff") and getattr(args, "format", "json") == "json")
    return TrackerConfig(timeouts=timeouts, drop_bad_checksums=args.checksums == "drop",
                         max_flows=args.max_flows, vlan_in_key=args.vlan_key,
                         keep_transitions=transitions)


class UsageError(Exception):
    """A command-line mistake: one line, exit status 2."""


def _batches(args: argparse.Namespace, status: list[int]) -> Iterator[object]:
    """The decoded (and -f filtered) batches of the command's source: files or -i."""
    if getattr(args, "interface", None):
        session = _live_session(args)
        args.live_session = session
        yield from session.batches()
        _live_summary(session)
    else:
        yield from _read_batches(args.files, status, args.packet_filter)


def _live_session(args: argparse.Namespace) -> LiveSession:
    from pathlib import Path

    from portlens.capture import LiveOptions, LiveSession

    options = LiveOptions(
        interface=args.interface, snaplen=args.snaplen, kernel_filter=args.filter or None,
        count=getattr(args, "count", None), duration=args.duration,
        write=Path(args.write) if args.write else None, pcapng=args.pcapng,
        backend=args.backend, user=args.user, buffer_bytes=max(args.buffer, 1) << 20,
        spool_bytes=max(args.spool, 0) << 20, spool_dir=args.spool_dir,
        ring_mb=max(args.kernel_buffer, 2))
    return LiveSession(options, args.packet_filter)


def _live_summary(session: LiveSession) -> None:
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


def _read_batches(files: Sequence[str], status: list[int],
                  packet_filter: object = None) -> Iterator[object]:
    """Decoded batches of all files in order, filtered by -f; input errors are reported and
    remembered in status."""
    from portlens.decode import decode_capture
    from portlens.decode.packets import PacketBatch
    from portlens.filter import PacketFilter
    from portlens.sources.files import CaptureError

    if isinstance(packet_filter, PacketFilter):
        for batch in _read_batches(files, status):
            assert isinstance(batch, PacketBatch)
            yield packet_filter.select(batch)
        return

    for path in files:
        with _progress(path) as progress:
            try:
                yield from decode_capture(path, progress=progress)
            except CaptureError as exc:
                error(str(exc))
                status[0] = EXIT_ERROR
            except OSError as exc:
                error(f"{path}: {exc.strerror or exc}")
                status[0] = EXIT_ERROR


PROGRESS_MIN_BYTES = 8 << 20
"""Files smaller than this read too fast for a progress bar to help."""


@contextlib.contextmanager
def _progress(path: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while reading a large file, only when stderr is a terminal."""
    import os

    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    if size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
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

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
                  console=_stderr_console()) as bar:
        task = bar.add_task(os.path.basename(path), total=size)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or size)

        yield update


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


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
    from portlens.track.tracker import Tracker

    config = _tracker_config(args)
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
        if args.workers > 1:
            from portlens.parallel import track_files

            errors: list[str] = []
            emit(list(track_files(args.files, config, args.workers, errors, args.filter)))
            for message in errors:
                error(message)
                status[0] = EXIT_ERROR
        else:
            for batch in _batches(args, status):
                assert isinstance(batch, PacketBatch)
                emit(tracker.feed(batch))
    finally:
        emit(tracker.finish())
        if zeek is not None:
            zeek.close()
        if args.format == "table" and table:
            from portlens.report.tables import print_fitting

            print_fitting(report.TABLE_COLUMNS, report.table_rows(
                sorted(table, key=lambda c: c.ts_ns)), drop_order=report.DROP_ORDER)
            noun = "connection" if len(table) == 1 else "connections"
            _stderr_console().print(f"{len(table)} {noun}", style="dim")
        out.flush()
    return _exit_status(status[0], found)


def cmd_events(args: argparse.Namespace) -> int:
    from portlens.decode.packets import PacketBatch
    from portlens.report import conns as report
    from portlens.track.model import Transition
    from portlens.track.tracker import Tracker

    config = _tracker_config(args)
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
    for batch in _batches(args, status):
        assert isinstance(batch, PacketBatch)
        tracker.feed(batch)
    tracker.finish()
    out.flush()
    return _exit_status(status[0], count)


# --- ports, handshakes, sockets, ladder ---------------------------------------------------------

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
  portlens ladder capture.pcap --conn UID --full every segment, nothing folded
"""


def _report_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def output_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", dest="format", action="store_const", const="json",
                       default="table", help="JSON lines, exact numbers")
        p.add_argument("--csv", dest="format", action="store_const", const="csv",
                       help="CSV, exact numbers")

    p = sub.add_parser("ports", help="per-port summary: outcomes, traffic, clients, RTT "
                       "(the default command)", epilog=EPILOG_PORTS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    output_args(p)
    p.add_argument("--sort", choices=("conns", "bytes", "packets", "port"), default="conns",
                   help="row order (default: most connections first)")
    p.add_argument("--top", type=int, metavar="N", help="only the first N rows")
    p.add_argument("--all-ports", action="store_true",
                   help="also give client (originator) ports rows")
    p.set_defaults(func=cmd_ports)

    p = sub.add_parser("handshakes", help="TCP handshakes per server port (or per connection)",
                       epilog=EPILOG_HANDSHAKES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    output_args(p)
    p.add_argument("--port", type=int, action="append", metavar="P",
                   help="only this server port (repeatable)")
    p.add_argument("--conns", action="store_true", help="one row per connection")
    p.set_defaults(func=cmd_handshakes)

    p = sub.add_parser("sockets", help="observed listening sockets and connection ends, ss style",
                       epilog=EPILOG_SOCKETS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    output_args(p)
    p.add_argument("--listening", action="store_true", help="only the listening sockets")
    p.set_defaults(func=cmd_sockets)

    p = sub.add_parser("ladder", help="one connection as a sequence diagram with both states",
                       epilog=EPILOG_LADDER, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_args(p)
    _tracking_args(p)
    p.add_argument("--conn", required=True, metavar="UID",
                   help="the connection's uid (as `portlens conns` shows it)")
    p.add_argument("--full", action="store_true", help="every segment (long ones fold)")
    p.set_defaults(func=cmd_ladder)


GLOBAL_FLAGS = ("--no-color",)


def _default_command(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`portlens FILE...` means `portlens ports FILE...`."""
    import os

    commands: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    lead = 0  # global options stay before the command
    while lead < len(argv) and argv[lead] in GLOBAL_FLAGS:
        lead += 1
    rest = argv[lead:]
    if not rest or rest[0] in commands or rest[0] in ("-h", "--help", "--version"):
        return argv
    if rest[0].startswith("-") or os.path.exists(rest[0]) or "." in rest[0] or (
            os.sep in rest[0]):
        return [*argv[:lead], "ports", *rest]  # options or files first: the default report
    return argv


def _each_connection(args: argparse.Namespace, sink: Callable[[object], None],
                     not_counted: Counter[str] | None = None) -> int:
    """Track the source, handing each connection to ``sink``; the exit status of the reading.
    ``not_counted`` receives the tracker's count of frames in no connection, by why."""
    from portlens.decode.packets import PacketBatch
    from portlens.track.tracker import Tracker

    config = _tracker_config(args)
    status = [EXIT_OK]
    if getattr(args, "workers", 1) > 1:
        from portlens.parallel import track_files

        errors: list[str] = []
        for c in track_files(args.files, config, args.workers, errors, args.filter,
                             not_counted):
            sink(c)
        for message in errors:
            error(message)
            status[0] = EXIT_ERROR
        return status[0]
    tracker = Tracker(config)
    for batch in _batches(args, status):
        assert isinstance(batch, PacketBatch)
        for c in tracker.feed(batch):
            sink(c)
    for c in tracker.finish():
        sink(c)
    if not_counted is not None:
        not_counted.update(tracker.not_counted)
    return status[0]


def cmd_ports(args: argparse.Namespace) -> int:
    from portlens.analysis.ports import PortTable
    from portlens.report import ports as report

    if args.top is not None and args.top < 1:
        error("--top must be at least 1")
        return EXIT_ERROR
    table = PortTable(all_ports=args.all_ports)
    status = _each_connection(args, table.add, table.not_counted)  # type: ignore[arg-type]
    if args.format == "json":
        report.write_json(table, sys.stdout, args.sort, args.top)
    elif args.format == "csv":
        report.write_csv(table, sys.stdout, args.sort, args.top)
    elif len(table):
        report.print_table(table, args.sort, args.top)
    sys.stdout.flush()
    return _exit_status(status, len(table))


def cmd_handshakes(args: argparse.Namespace) -> int:
    from typing import Any

    from portlens.analysis.handshakes import HandshakeTable, connection_record
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

    status = _each_connection(args, sink)
    if args.conns:
        per_conn.sort(key=lambda r: int(r["ts_ns"]))
    records = per_conn if args.conns else table.records()
    if args.format == "json":
        report.write_json(records, sys.stdout)
    elif args.format == "csv":
        report.write_csv(records, sys.stdout)
    elif records and args.conns:
        report.print_conns(records)
    elif records:
        report.print_table(table)
    sys.stdout.flush()
    return _exit_status(status, records)


def cmd_sockets(args: argparse.Namespace) -> int:
    from portlens.analysis.sockets import SocketTable
    from portlens.report import sockets as report

    table = SocketTable()
    status = _each_connection(args, table.add)  # type: ignore[arg-type]
    if args.listening:
        table.sockets = []
    found = len(table.listeners) + len(table.sockets)
    if args.format == "json":
        report.write_json(table, sys.stdout)
    elif args.format == "csv":
        report.write_csv(table, sys.stdout)
    elif found:
        report.print_tables(table)
    sys.stdout.flush()
    return _exit_status(status, found)


def cmd_ladder(args: argparse.Namespace) -> int:
    from portlens.analysis.ladder import ladder
    from portlens.decode.packets import PacketBatch
    from portlens.report.ladder import text
    from portlens.track.model import Connection

    found: list[Connection] = []

    def sink(c: object) -> None:
        assert isinstance(c, Connection)
        if c.uid == args.conn:
            found.append(c)

    status = _each_connection(args, sink)
    config = _tracker_config(args)
    if not found:
        error(f"no connection with uid {args.conn} (`portlens conns` lists them)")
        return _exit_status(status, False)
    batches = (b for b in _batches(args, [EXIT_OK])
               if isinstance(b, PacketBatch))
    sys.stdout.write(text(ladder(found[0], batches, config), full=args.full))
    sys.stdout.flush()
    return status


def cmd_sniff(args: argparse.Namespace) -> int:
    """Live capture: a dashboard while it runs (or JSON lines when piped), the per-port report
    at the end, the same as `portlens ports` on the -w file afterwards."""
    import time
    from collections import deque

    from portlens.analysis.ports import PortTable
    from portlens.decode.packets import PacketBatch
    from portlens.report import conns as conns_report
    from portlens.report import ports as ports_report
    from portlens.track.model import Connection
    from portlens.track.tracker import Tracker

    if not args.interface:
        error("sniff needs -i IFACE (`portlens interfaces` lists them)")
        return EXIT_ERROR
    config = _tracker_config(args)
    tracker = Tracker(config)
    ended = PortTable()
    recent: deque[Connection] = deque(maxlen=64)
    as_json = args.json or not sys.stdout.isatty()
    out: TextIO = sys.stdout

    missed = _Missed()

    def take(conns: list[Connection]) -> None:
        for c in conns:
            ended.add(c)
            recent.append(c)
            if c.proto == "tcp":
                missed.gap += c.missed_bytes
                missed.total += c.orig_bytes + c.resp_bytes
            if as_json:
                out.write(conns_report.json_line(conns_report.record(c)) + "\n")
        if as_json and conns:
            out.flush()

    status = [EXIT_OK]
    live = None
    if not as_json:
        from rich.live import Live

        live = Live(refresh_per_second=2, transient=True, console=_stderr_console())
        live.start()
    last_view = last_tick = 0.0
    try:
        for batch in _batches(args, status):
            assert isinstance(batch, PacketBatch)
            take(tracker.feed(batch))
            now = time.monotonic()
            if now - last_tick >= 0.1:  # the wall clock ends idle connections; 10 times a second
                last_tick = now
                take(tracker.advance(time.time_ns()))
            if live is not None and now - last_view >= 0.5:
                last_view = now
                live.update(_dashboard(args, tracker, ended, list(recent)))
    finally:
        if live is not None:
            live.stop()
        take(tracker.finish())
    if missed.total:
        print(f"capture loss estimate: {100 * missed.gap / missed.total:.3f}% of "
              f"{missed.total:,} TCP payload bytes were acknowledged but never seen "
              f"(Zeek's missed_bytes, per connection in `conns`)", file=sys.stderr)
    if not as_json and len(ended):
        ports_report.print_table(ended, "conns", None)
    out.flush()
    return _exit_status(status[0], len(ended))


@dataclasses.dataclass
class _Missed:
    """Bytes acknowledged but never captured, against all TCP payload bytes."""

    gap: int = 0
    total: int = 0


def _dashboard(args: argparse.Namespace, tracker: object, ended: object,
               recent: list[object]) -> RenderableType:
    import time

    from portlens.analysis.ports import PortTable
    from portlens.capture import LiveSession
    from portlens.report.live import Rates, dashboard
    from portlens.track.tracker import Tracker

    assert isinstance(tracker, Tracker) and isinstance(ended, PortTable)
    session = getattr(args, "live_session", None)
    assert isinstance(session, LiveSession)
    c = session.counters
    elapsed = max(time.monotonic() - c.started, 1e-9)
    stats = session.kernel_stats()
    open_conns = tracker.open_connections(limit=200)
    rates = Rates(args.interface, elapsed, c.packets, c.bytes, c.packets / elapsed,
                  c.bytes / elapsed, stats.received, stats.dropped, session.capture.ring_full,
                  c.buffer_dropped, c.backlog_bytes, c.spooled_bytes, c.behind_s)
    return dashboard(rates, ended + PortTable().update(open_conns), open_conns,
                     recent)  # type: ignore[arg-type]


def cmd_interfaces(args: argparse.Namespace) -> int:
    from portlens.sources.interfaces import list_interfaces

    found = list_interfaces(include_any=True)
    if args.json:
        for i in found:
            print(json.dumps(i.as_dict()))
    else:
        rows = [(i.name, str(i.index), "UP" if i.up else "DOWN", i.link_type, str(i.mtu),
                 " ".join(i.addresses) or "-") for i in found]
        _print_rich_rows(("interface", "index", "state", "link type", "mtu", "addresses"),
                         rows)
    return EXIT_OK if found else EXIT_NOTHING


def _print_rich_rows(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
