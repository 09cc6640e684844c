"""What the live dashboard's per-port table costs as connections end: a capture file tracked,
each block of ended connections folded into one PortTable (as `sniff` folds them), and after
each block the sum the dashboard makes at a refresh (the table + the open connections'
table, here empty) and its top rows with their host counts read.

    python scripts/bench_dashboard_sums.py FILE

Prints the blocks (refreshes), the process's CPU seconds from the first block on, and its peak
RSS. On a SYN flood (`/tmp/synflood-1M.pcap`) every sum once made a Probe for every host pair
and copied every host set.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

from portlens.analysis.columns import PORT_COLUMNS
from portlens.analysis.ports import PortTable
from portlens.pipeline.run import Options, Pipeline, Source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    args = parser.parse_args()
    ended = PortTable()
    refreshes = 0
    started = time.process_time()

    def on_columns(cols: dict[str, Any]) -> None:
        nonlocal refreshes
        ended.add_columns(cols)
        refreshes += 1
        view = ended + PortTable()  # cli/live.py _dashboard: ended + the open connections
        for row in view.sorted("conns", 10):
            len(row.clients)

    Pipeline(Source.of(args.file), Options()).track(
        lambda _c: None, on_columns=on_columns, column_names=PORT_COLUMNS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{refreshes} refreshes, {time.process_time() - started:.2f} CPU s, peak RSS {peak} MB")


if __name__ == "__main__":
    main()
