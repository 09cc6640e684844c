"""The command line. Nothing else in portlens knows about argv, stdout or exit codes.

Exit status: 0 results, 1 nothing found, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# numpy's OpenBLAS starts a thread per core at import, and they spin a while before they
# sleep: 0.15-0.2 CPU s a command (a tenth of `conns`) on this 2-core machine, for linear
# algebra portlens never does. Set before numpy is first imported; a value the user set wins.
# Only the command line does this: `import portlens` leaves the caller's process alone.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from portlens import __version__
from portlens.cli.args import check_options, check_source, compiled_filter
from portlens.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, UsageError, error

PARSERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("packets", "add_packets_parser", ("packets",)),
    ("conns", "add_conns_parser", ("conns",)),
    ("live", "add_live_parsers", ("sniff", "interfaces")),
    ("conns", "add_events_parser", ("events",)),
    ("reports", "add_report_parsers", ("ports", "handshakes", "sockets", "ladder")),
    ("talkers", "add_talker_parsers", ("hosts", "convs")),
    ("html", "add_html_parser", ("report",)),
)
"""Each command's module (under portlens.cli), the function that adds its parser and its
siblings', and their names, in the order `--help` lists them."""

COMMANDS = frozenset(name for _, _, names in PARSERS for name in names)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of `command` (and its siblings): the one a run
    needs. Building every command's parser (some 300 options) and importing their modules
    took about a fifth of the time `conns` took to start."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="portlens",
        description="Packet-level analyzer of TCP/UDP ports, sockets and connections.",
    )
    parser.add_argument("--version", action="version", version=f"portlens {__version__}")
    parser.add_argument("--no-color", action="store_true",
                        help="no colour, even on a terminal (colour is only used on terminals)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, adder, names in PARSERS:
        if command is None or command in names:
            getattr(importlib.import_module(f"portlens.cli.{module}"), adder)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status. Neither Ctrl-C nor a closed pipe, whenever they
    come, ends in a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _silence_stdout_errors()
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `portlens --help | head -1`
        _silence_stdout()
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    argv = _default_command(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(_command_of(argv))
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
    from portlens.cli.memory import keep_freed_memory

    keep_freed_memory()
    try:
        args.packet_filter = compiled_filter(args)
        check_source(args)
        check_options(args)
    except UsageError as exc:
        error(str(exc))
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except UsageError as exc:
        error(str(exc))
        return EXIT_ERROR
    except BrokenPipeError:  # `portlens conns big.pcap | head -1`: the reader has enough
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:  # -w FILE that cannot be written, and the like
        error(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "))
        return EXIT_ERROR
    except Exception as exc:
        if not _live_capture_error(exc):
            raise
        error(str(exc))
        return EXIT_ERROR
    finally:
        from portlens.cli.common import not_decoded_note

        not_decoded_note(args)


def _live_capture_error(exc: Exception) -> bool:
    """Whether ``exc`` is a LiveCaptureError. Only a command that imported sources.live can
    raise one, so the others need not import it (with its socket, BPF and interface modules)
    to tell."""
    live = sys.modules.get("portlens.sources.live")
    return live is not None and isinstance(exc, live.LiveCaptureError)


def _tune_gc() -> None:
    """Tracking makes many small objects and no reference cycles (connections break theirs
    when reported), so the cycle collector has little to find: run it less often, and never
    over the objects of start-up (about 10 % faster, and shorter pauses in live capture)."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)


def _silence_stdout() -> None:
    """Whatever is still buffered for a closed pipe goes nowhere, so that Python's flush at
    exit does not print "Exception ignored ... BrokenPipeError"."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _silence_stdout_errors() -> None:
    """After Ctrl-C the reader may be gone too (`portlens conns x | less`, quit): flush now,
    and if that fails, send the rest nowhere rather than print a traceback at exit."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()


GLOBAL_FLAGS = ("--no-color",)


def _global_lead(argv: list[str]) -> int:
    """How many of `argv`'s first arguments are global options (they come before the
    command)."""
    lead = 0
    while lead < len(argv) and argv[lead] in GLOBAL_FLAGS:
        lead += 1
    return lead


def _command_of(argv: list[str]) -> str | None:
    """The command `argv` names (after the global options), None without one: `--help`, or
    a name that is not a command (argparse then lists them all)."""
    lead = _global_lead(argv)
    return argv[lead] if lead < len(argv) and argv[lead] in COMMANDS else None


def _default_command(argv: list[str]) -> list[str]:
    """`portlens FILE...` means `portlens ports FILE...`."""
    import os

    lead = _global_lead(argv)  # global options stay before the command
    rest = argv[lead:]
    if not rest or rest[0] in COMMANDS or rest[0] in ("-h", "--help", "--version"):
        return argv
    if rest[0].startswith("-") or os.path.exists(rest[0]) or "." in rest[0] or (
            os.sep in rest[0]):
        return [*argv[:lead], "ports", *rest]  # options or files first: the default report
    return argv
