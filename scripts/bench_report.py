"""The HTML report on a big capture: what it costs beyond the analysis, how big the page is,
how long it takes to open in headless Chromium (docs/benchmarks.md, "The HTML report").

    python scripts/bench_report.py /tmp/portlens-bench-2M.pcap --out /tmp/report-2M.html

CPU seconds (user + system, of the child processes) of `portlens conns --format zeek FILE`
(the analysis: read, decode, track, write the connections) and of `portlens report FILE -o
OUT`, ``--repeat`` rounds of each, interleaved, as min / median / max; the difference of the
medians is what the page costs. The open time is the page's own clock (``performance.now()``
at the moment it has drawn everything, counted from the navigation): the first load in a fresh
browser (cold: Plotly's script compiled for the first time) and the best of ``--opens``, with
the time of each stage.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_of(cmd: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a command run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    parser.add_argument("--out", default="/tmp/portlens-report.html")
    parser.add_argument("--opens", type=int, default=3, help="page loads (the best counts)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of CPU timing")
    parser.add_argument("--skip-analysis", action="store_true",
                        help="do not time `portlens conns` (only the report and its page)")
    args = parser.parse_args()
    portlens = [sys.executable, "-m", "portlens"]
    runs: dict[str, list[float]] = {"conns": [], "report": []}
    for _ in range(args.repeat):
        print(f"load average {os.getloadavg()[0]:.1f}")
        if not args.skip_analysis:
            runs["conns"].append(cpu_of([*portlens, "conns", "--format", "zeek",
                                         args.capture])[0])
        runs["report"].append(cpu_of([*portlens, "report", args.capture, "-o", args.out])[0])
    for name, cpus in runs.items():
        if cpus:
            print(f"portlens {name:7} CPU s min {min(cpus):.2f} median "
                  f"{statistics.median(cpus):.2f} max {max(cpus):.2f}")
    if runs["conns"]:
        beyond = statistics.median(runs["report"]) - statistics.median(runs["conns"])
        print(f"beyond the analysis (medians): {beyond:.2f} CPU s")
    size = os.path.getsize(args.out)
    print(f"page: {size:,} bytes ({size / 1e6:.2f} MB)")
    sys.path.insert(0, str(REPO))
    from tests.browser import chromium, open_report

    best = None
    with chromium() as driver:
        for k in range(args.opens):
            seconds = open_report(driver, Path(args.out), timeout=600)
            stages = driver.execute_script("return window.PORTLENS_TIMES")
            if k == 0:
                print(f"opened in headless Chromium, cold (the first load): {seconds:.2f} s")
            if best is None or seconds < best[0]:
                best = (seconds, stages)
    assert best is not None
    print(f"opened in headless Chromium: {best[0]:.2f} s (best of {args.opens})")
    previous = 0.0
    for stage, ms in sorted(best[1].items(), key=lambda kv: kv[1]):
        print(f"  {stage:10} {ms / 1000:6.2f} s  (+{(ms - previous) / 1000:.2f})")
        previous = ms
    return 0


if __name__ == "__main__":
    sys.exit(main())
