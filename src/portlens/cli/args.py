"""The arguments several commands share (sources, live capture, the -f filter, tracking), and
the checks made on them before any command runs."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from portlens.cli.common import UsageError

MAXIMUM_SNAPLEN = 262144
"""tcpdump's largest snapshot length, and what -s 0 means (tcpdump.1: "-s 0 sets it to the
default of 262144")."""
ZEEK_CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                    "SH", "SHR", "OTH")
"""Every conn_state Zeek writes (base/protocols/conn/main.zeek)."""
LIVE_ONLY = ("kernel_buffer", "buffer", "spool", "spool_dir", "backend", "duration", "user")
"""Options of the live capture: given with files, they would do nothing. (-w, --pcapng and -s
apply to files too: they write, and cut, what was selected.)"""
FLAG = {"snaplen": "-s/--snaplen", "kernel_buffer": "-B/--kernel-buffer", "user": "-Z/--user",
        "write": "-w/--write", "count": "-c/--count"}


class Given(argparse.Action):
    """Stores the value like "store" and remembers that the user gave the option, which its
    default value cannot tell (options that cannot apply are refused, not ignored)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        given = set(getattr(namespace, "given", set()))
        given.add(self.dest)
        namespace.given = given


class GivenFlag(argparse.Action):
    """A store_true flag that remembers it was given (see Given)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=False, **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)
        given = set(getattr(namespace, "given", set()))
        given.add(self.dest)
        namespace.given = given


def given(args: argparse.Namespace, name: str) -> bool:
    return name in getattr(args, "given", ())


def flag(name: str) -> str:
    return FLAG.get(name, "--" + name.replace("_", "-"))


def tracking_parser(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                    name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    """A command that tracks connections: files or -i, -f, the tracking options, examples."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    source_args(p)
    tracking_args(p)
    return p


def source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="pcap or pcapng files (gzip ok) or directories of them, read as one "
                        "stream in time order (merged like mergecap)")
    filter_arg(p)
    window_args(p)
    live_args(p)


def window_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", metavar="TIME",
                   help="only packets at or after TIME: epoch seconds or ISO 8601 "
                        "(2024-05-01T12:00:00Z; no zone: local time)")
    p.add_argument("--end", metavar="TIME", help="only packets before TIME (as --start)")


def live_args(p: argparse.ArgumentParser, *, count: bool = True) -> None:
    live = p.add_argument_group("live capture (instead of files; needs root or CAP_NET_RAW)")
    live.add_argument("-i", "--interface", metavar="IFACE",
                      help="capture on this interface ('any' for all); see `portlens "
                           "interfaces`; Ctrl-C ends the capture and prints the report")
    if count:
        live.add_argument("-c", "--count", type=int, metavar="N",
                          help="stop after N packets (after filtering; files too)")
    live.add_argument("--duration", type=float, metavar="SECONDS", action=Given,
                      help="stop after this many seconds")
    live.add_argument("-s", "--snaplen", type=int, default=MAXIMUM_SNAPLEN, metavar="BYTES",
                      action=Given,
                      help="bytes kept of each packet, 1 to 262144 (default; 0 means it too, "
                           "as in tcpdump)")
    live.add_argument("-w", "--write", metavar="FILE", action=Given,
                      help="also write the packets captured to FILE as they are captured, "
                           "ahead of the analysis (pcap; mode 0600; with -c N the first N); on "
                           "files too: what -f, -c, --start/--end (and --conn) selected")
    live.add_argument("--pcapng", action=GivenFlag, help="write -w as pcapng")
    live.add_argument("--backend", choices=("auto", "ring", "recv", "scapy"), default="auto",
                      action=Given,
                      help="ring: TPACKET_V3 memory-mapped ring (default); recv: one system "
                           "call per packet; scapy: portable fallback")
    live.add_argument("-Z", "--user", metavar="USER", action=Given,
                      help="drop root privileges to USER once the capture socket is open")
    live.add_argument("-B", "--kernel-buffer", type=int, default=128, metavar="MB",
                      action=Given,
                      help="the kernel's capture ring (default 128 MB, at least 2, at most "
                           "half the machine's memory): it must hold what arrives while the "
                           "analysis pauses")
    live.add_argument("--buffer", type=int, default=512, metavar="MB", action=Given,
                      help="packets captured but not yet analysed may wait in this much "
                           "memory (default 512): bursts faster than the analysis are kept")
    live.add_argument("--spool", type=int, default=8192, metavar="MB", action=Given,
                      help="past --buffer, up to this much more waits on disk in an unlinked "
                           "temporary file (default 8192; 0: drop instead): the analysis "
                           "falls behind but nothing is lost")
    live.add_argument("--spool-dir", metavar="DIR", action=Given,
                      help="where the spool file lives (default: $TMPDIR or /tmp)")


def filter_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", metavar="EXPR", default="",
                   help="tcpdump-syntax filter on the innermost layer, e.g. 'tcp port 443', "
                        "'host 10.0.0.1 and not port 22' (docs/filters.md)")


def tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checksums", choices=("keep", "drop"), default="keep",
                   help="keep: count packets with bad checksums and flag them (like zeek -C, "
                        "the default); drop: ignore them as Zeek does by default (history c/C)")
    p.add_argument("--timeout", action="append", default=[], metavar="NAME=SECONDS",
                   help="set one of Zeek's timeouts (repeatable; docs/tracking.md): "
                        "tcp_inactivity (300), udp_inactivity (60), icmp_inactivity (60), "
                        "unknown_ip_inactivity (60), tcp_attempt (5), tcp_close (5), "
                        "tcp_reset (5), tcp_partial_close (off); 0 turns an inactivity "
                        "timeout or tcp_attempt off")
    p.add_argument("--max-flows", type=int, default=200_000, metavar="N",
                   help="open flows kept at most; the longest idle beyond are evicted "
                        "(default 200,000)")
    p.add_argument("--vlan-key", action="store_true",
                   help="make the VLAN id part of the flow key")
    p.add_argument("--workers", type=int, default=None, metavar="N", action=Given,
                   help="track files with N threads (flows sharded by host pair; the same "
                        "rows as one thread, in its order). Default: every CPU this process "
                        "may use, one reading and decoding ahead, the others tracking")
    p.add_argument("--reference", action="store_true",
                   help="decode and track with the slow Python reference implementations "
                        "(for cross-checking; --workers then runs processes)")
    p.add_argument("--dask", metavar="ADDRESS", action=Given,
                   help="track on a Dask cluster: a scheduler address (tcp://host:8786; the "
                        "files at the same path on every worker) or `local` for a local "
                        "cluster of --workers processes (docs/scale.md)")


def check_source(args: argparse.Namespace) -> None:
    """Files or an interface, not both, not neither (for the commands that read packets)."""
    if not hasattr(args, "files"):
        return
    live = getattr(args, "interface", None)
    if live and args.files:
        raise UsageError("give capture files or -i IFACE, not both")
    if not live and not args.files and getattr(args, "command", "") != "sniff":
        raise UsageError("no capture file given (or -i IFACE to capture live)")
    if live and getattr(args, "reference", False) and getattr(args, "workers", None) not in (
            None, 1):
        raise UsageError("--reference --workers is for files: its workers are processes that "
                         "each read the files")
    if live and getattr(args, "dask", None):
        raise UsageError("--dask is for files; a live capture is tracked in one process")
    if not live and getattr(args, "command", "") != "sniff":  # sniff says it needs -i
        for name in LIVE_ONLY:
            if given(args, name):
                raise UsageError(f"{flag(name)} is for live capture (-i IFACE)")
        if given(args, "snaplen") and not getattr(args, "write", None):
            raise UsageError("-s/--snaplen with capture files cuts what -w FILE writes; "
                             "give -w FILE too")


def check_options(args: argparse.Namespace) -> None:
    """Values that cannot apply are refused in one line, before anything is read or captured
    (tcpdump's habit: `tcpdump -c 0` says "invalid packet count")."""
    count = getattr(args, "count", None)
    if count is not None and count < 1:
        raise UsageError(f"-c/--count must be at least 1, not {count}")
    duration = getattr(args, "duration", None)
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise UsageError(f"--duration must be a number of seconds above 0, not {duration}")
    if hasattr(args, "snaplen"):
        _check_live(args)
    if hasattr(args, "timeout"):
        parse_timeouts(args.timeout)
        if args.max_flows < 1:
            raise UsageError("--max-flows must be at least 1")
        _check_workers(args)
    for port in getattr(args, "port", None) or ():
        if not 0 <= port <= 65535:
            raise UsageError(f"--port {port}: a port is 0 to 65535")
    for state in getattr(args, "state", None) or ():
        if state.upper() not in ZEEK_CONN_STATES:
            raise UsageError(f"--state {state}: not a Zeek conn_state (one of "
                             f"{', '.join(ZEEK_CONN_STATES)})")
    if getattr(args, "host", None):
        args.host_nets = [host_network(h) for h in args.host]
    if getattr(args, "command", "") == "ladder" and getattr(args, "interface", None):
        raise UsageError("ladder reads its capture twice (find the connection, then draw "
                         "it): give a file (`portlens sniff -i IFACE -w FILE` records one)")
    if getattr(args, "reference", False) and getattr(args, "interface", None):
        raise UsageError("--reference decodes files; a live capture uses the fast decoder")


def _check_live(args: argparse.Namespace) -> None:
    if not 0 <= args.snaplen <= MAXIMUM_SNAPLEN:
        raise UsageError(f"-s/--snaplen {args.snaplen}: must be 0 to {MAXIMUM_SNAPLEN} "
                         f"(0: {MAXIMUM_SNAPLEN}, the whole packet)")
    if args.snaplen == 0:
        args.snaplen = MAXIMUM_SNAPLEN
    if args.pcapng and not args.write:
        raise UsageError("--pcapng is the format of -w FILE; give -w FILE too")
    memory = physical_memory_mb()
    ring = args.kernel_buffer
    if ring < 2:
        raise UsageError(f"-B/--kernel-buffer {ring}: at least 2 MB (the ring is made of "
                         f"1 MB blocks; the kernel fills one while portlens reads another)")
    if given(args, "kernel_buffer") and memory and ring > memory // 2:
        raise UsageError(f"-B/--kernel-buffer {ring}: at most {memory // 2} MB, half of this "
                         f"machine's {memory} MB (the ring is kernel memory that cannot be "
                         f"swapped out)")
    # The kernel sets no limit of its own on a TPACKET_V3 ring (block size times count, both
    # 32-bit): it allocates every block when the socket asks, from memory that is free now.
    # A ring larger than that pushes everything else (other users' programs too) into swap
    # or the OOM killer, so the bound is half of what the kernel says is available now.
    available = available_memory_mb()
    if given(args, "kernel_buffer") and available is not None and ring > available // 2:
        raise UsageError(f"-B/--kernel-buffer {ring}: at most {available // 2} MB now, half "
                         f"of the {available} MB this machine has available (MemAvailable): "
                         f"the kernel allocates the whole ring at once and cannot swap it out")
    if (given(args, "kernel_buffer") and args.backend == "recv" and os.geteuid() != 0
            and (rmem := rmem_max_mb()) is not None and ring > rmem):
        raise UsageError(f"-B/--kernel-buffer {ring}: the recv backend's socket buffer is "
                         f"capped at net.core.rmem_max ({rmem} MB) without root")
    if args.buffer < 1:
        raise UsageError(f"--buffer {args.buffer}: at least 1 MB")
    if (given(args, "buffer") or given(args, "kernel_buffer")) and memory and (
            ring + args.buffer > memory * 3 // 4):
        raise UsageError(f"-B {ring} and --buffer {args.buffer} together: at most "
                         f"{memory * 3 // 4} MB, three quarters of this machine's {memory} MB "
                         f"(the analysis and the system need the rest)")
    if args.spool < 0:
        raise UsageError(f"--spool {args.spool}: 0 (no spool) or more MB")
    if args.spool_dir is not None:
        if args.spool == 0:
            raise UsageError("--spool-dir with --spool 0: there is no spool file")
        if not os.path.isdir(args.spool_dir):
            raise UsageError(f"--spool-dir {args.spool_dir}: not a directory")
    if args.user:
        import pwd

        try:
            pwd.getpwuid(int(args.user)) if args.user.isdigit() else pwd.getpwnam(args.user)
        except KeyError:
            raise UsageError(f"-Z/--user {args.user}: no such user") from None


def _check_workers(args: argparse.Namespace) -> None:
    workers = args.workers  # None: the default, one per CPU (cli/common.py workers)
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}: at least 1")
    if args.command == "events" and workers not in (None, 1):
        raise UsageError("--workers: `events` tracks in one process (its events come out in "
                         "capture order)")
    dask = getattr(args, "dask", None)
    if dask is not None:
        if args.command in ("events", "ladder"):
            raise UsageError(f"--dask: `{args.command}` follows transitions in one process")
        if getattr(args, "write", None):
            raise UsageError("--dask with -w: the workers would write the file; "
                             "write it without --dask")
        if not dask.strip():
            raise UsageError("--dask wants a scheduler address (tcp://host:8786) or `local`")
    from portlens.cli.common import cpu_count

    cpus = cpu_count()
    if workers is not None and workers > 4 * cpus:
        raise UsageError(f"--workers {workers}: at most {4 * cpus} on this machine's {cpus} "
                         f"CPUs (more only add work)")


def parse_timeouts(items: list[str]) -> Any:
    """--timeout NAME=SECONDS items as Timeouts; a bad one is a UsageError naming it."""
    from portlens.track.timeouts import Timeouts

    seconds = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--timeout wants NAME=SECONDS, got {item!r}")
        try:
            seconds[name] = float(value)
        except ValueError:
            raise UsageError(f"--timeout {name}: {value!r} is not a number") from None
    try:
        return Timeouts().with_seconds(**seconds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def host_network(text: str) -> Any:
    """--host: an address or a CIDR prefix (10.0.0.0/8, 2001:db8::/32)."""
    import ipaddress

    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        raise UsageError(f"--host {text}: {exc}") from None


def physical_memory_mb() -> int:
    """The machine's memory in MB (0 where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 20
    except (ValueError, OSError, AttributeError):
        return 0


def available_memory_mb() -> int | None:
    """MemAvailable of /proc/meminfo in MB: what can be allocated without swapping (None
    where the system does not say)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) >> 10
    except (OSError, ValueError, IndexError):
        return None
    return None


def rmem_max_mb() -> int | None:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read()) >> 20
    except (OSError, ValueError):
        return None


def compiled_filter(args: argparse.Namespace) -> object:
    """The compiled -f filter (None when absent); a bad expression is a usage error."""
    text = getattr(args, "filter", "") or ""
    if not text:
        return None  # without importing the filter (and numpy) for nothing
    from portlens.filter import FilterError, compile_filter

    try:
        pf = compile_filter(text)
    except FilterError as exc:
        raise UsageError(str(exc)) from None
    return None if pf.matches_all else pf
