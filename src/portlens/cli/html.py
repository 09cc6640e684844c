"""`portlens report`: the capture as one self-contained HTML page (report/html)."""

from __future__ import annotations

import argparse
import os
import sys

from portlens.cli.args import tracking_parser
from portlens.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    error,
    evicted_note,
    exit_status,
    interrupted_note,
    live_summary,
    reading,
)

EPILOG_REPORT = """examples:
  portlens report capture.pcap -o report.html    ports, handshakes, timelines, talkers, ladders
  portlens report day/ -f 'tcp' -o tcp.html      every capture of a folder, TCP only
  portlens report -i eth0 --duration 60 -o live.html   a minute of live traffic
  portlens report big.pcap --ladders 5000 -o big.html  more connections with a ladder

The page opens offline in any current browser: its scripts (Plotly) and data are inside it.
"""


def add_html_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = tracking_parser(sub, "report", "one self-contained HTML page: charts, tables, ladders",
                        EPILOG_REPORT)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the HTML file to write ('-': standard output)")
    p.add_argument("--ladders", type=int, default=None, metavar="N",
                   help="embed the ladders of at most N connections (default 250; all when "
                        "there are fewer; 0: none): every outcome and server port gets some, "
                        "troubled outcomes first")
    p.add_argument("--title", metavar="TEXT", help="the page's title (default: the files)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from portlens.pipeline.report import DEFAULT_LADDERS, collect_report
    from portlens.report.html import ChartLibraryError, plotly_packed, render

    limit = DEFAULT_LADDERS if args.ladders is None else args.ladders
    if limit < 0:
        raise UsageError(f"--ladders {limit}: 0 (none) or more")
    out_dir = os.path.dirname(os.path.abspath(args.output)) if args.output != "-" else "."
    if not os.path.isdir(out_dir):
        raise UsageError(f"-o {args.output}: no such directory {out_dir}")
    try:
        plotly_packed()  # before the capture is read: a missing library is said at once
    except ChartLibraryError as exc:
        error(str(exc))
        return EXIT_ERROR
    status = [EXIT_OK]
    sources = [f"-i {args.interface}"] if args.interface else list(args.files)
    with reading(args, status) as pipeline:
        data, interrupted = collect_report(pipeline, ladder_limit=limit, sources=sources)
        evicted_note(pipeline.evicted, pipeline.options.tracker.max_flows)
        if pipeline.live_session is not None:
            live_summary(pipeline.live_session, status)
    if interrupted:
        interrupted_note()
        status[0] = EXIT_INTERRUPTED
    text = render(data, args.title)
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        size = len(text.encode("utf-8"))
        print(f"portlens: wrote {args.output} ({size / 1e6:.1f} MB): "
              f"{len(data.conns):,} connections, {len(data.ladders):,} ladders",
              file=sys.stderr)
    return exit_status(status[0], data.stats.frames)
