"""The arguments several commands share (sources, live capture, the -f filter, tracking), and
the checks made on them before any command runs."""

from __future__ import annotations

import argparse

from portlens.cli.common import UsageError


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
    live.add_argument("--duration", type=float, metavar="SECONDS",
                      help="stop after this many seconds")
    live.add_argument("-s", "--snaplen", type=int, default=262144, metavar="BYTES",
                      help="bytes kept of each packet (default 262144)")
    live.add_argument("-w", "--write", metavar="FILE",
                      help="also write the packets analysed to FILE (pcap; mode 0600); on "
                           "files too: what -f, -c, --start/--end (and --conn) selected")
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


def filter_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", metavar="EXPR", default="",
                   help="tcpdump-syntax filter on the innermost layer, e.g. 'tcp port 443', "
                        "'host 10.0.0.1 and not port 22' (docs/filters.md)")


def tracking_args(p: argparse.ArgumentParser) -> None:
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


def check_source(args: argparse.Namespace) -> None:
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
        for name in ("duration", "user"):
            if getattr(args, name, None):
                raise UsageError(f"--{name} is for live capture (-i IFACE)")


def compiled_filter(args: argparse.Namespace) -> object:
    """The compiled -f filter (None when absent); a bad expression is a usage error."""
    from portlens.filter import FilterError, compile_filter

    try:
        pf = compile_filter(getattr(args, "filter", "") or "")
    except FilterError as exc:
        raise UsageError(str(exc)) from None
    return None if pf.matches_all else pf
