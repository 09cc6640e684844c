#!/usr/bin/env python3
"""What a report adds to the tracking: the pipeline of ``portlens ports`` / ``handshakes`` /
``sockets`` run up to a stage, so that the stages' costs are the differences between runs
(docs/benchmarks.md, "`sockets` and `ports` nearer `conns`").

    python scripts/bench_aggregates.py sockets track FILE   # read, decode, track; blocks dropped
    python scripts/bench_aggregates.py sockets add FILE     # ... and folded into the table
    python scripts/bench_aggregates.py sockets print FILE   # ... and the table written

Meant for instruction counts, which do not depend on the machine's load::

    valgrind --tool=callgrind --separate-threads=yes python scripts/bench_aggregates.py ...

(the main thread's file, ``callgrind.out.PID-01``, holds the aggregate; the other, the
read-ahead thread's, is the same in every stage). Without valgrind it prints the CPU seconds
of the stage's thread.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", choices=("ports", "handshakes", "sockets"))
    parser.add_argument("stage", choices=("track", "add", "print"))
    parser.add_argument("capture")
    args = parser.parse_args(argv)

    from portlens.analysis import columns
    from portlens.pipeline.run import Options, Pipeline, Source
    from portlens.report.tables import Screen

    out = io.StringIO()
    screen = Screen(out, io.StringIO())
    table: Any
    add: Callable[[dict[str, Any]], None]
    write: Callable[[], None]
    if args.report == "ports":
        from portlens.analysis.ports import PortTable
        from portlens.report import ports

        table = PortTable()
        names, add = columns.PORT_COLUMNS, table.add_columns
        write = lambda: ports.print_table(screen, table, "conns", None)  # noqa: E731
    elif args.report == "handshakes":
        from portlens.analysis.handshakes import HandshakeTable
        from portlens.report import handshakes

        table = HandshakeTable()
        names, add = columns.HANDSHAKE_COLUMNS, lambda c: table.add_columns(c, frozenset())
        write = lambda: handshakes.print_table(screen, table)  # noqa: E731
    else:
        from portlens.analysis.sockets import SocketTable
        from portlens.report import sockets

        table = SocketTable()
        names, add = columns.SOCKET_COLUMNS, table.add_columns
        write = lambda: sockets.print_tables(screen, table)  # noqa: E731
    start = time.thread_time()
    pipeline = Pipeline(Source.of(args.capture), Options())
    pipeline.track(lambda c: None, on_columns=add if args.stage != "track" else lambda c: None,
                   column_names=names)
    if args.stage == "print":
        write()
    print(f"{args.report} {args.stage}: {time.thread_time() - start:.3f} CPU s on the main "
          f"thread, {len(out.getvalue())} characters written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
