#!/usr/bin/env python3
"""Track one capture with the Rust tracker (portlens._core.Tracker) or the Python reference and
print what it took: CPU seconds of the tracking alone (decoding excluded: it is done first,
into memory, for the reference; batch by batch for Rust), connections, evictions, and the
process's peak RSS. For docs/benchmarks.md; run under ``/usr/bin/time -v`` for the whole
process's figures.

Usage::

    python scripts/bench_tracker.py rust /tmp/gapped-50M.pcap
    python scripts/bench_tracker.py python /tmp/gapped-50M.pcap
    python scripts/bench_tracker.py rust /tmp/synflood-1M.pcap --max-flows 100000 --workers 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any


def rust_tracker(max_flows: int | None, workers: int) -> Any:
    from portlens import _core
    from portlens.track.timeouts import (
        SECOND,
        TCP_CONNECTION_LINGER,
        TCP_SESSION_TIMER,
        TCP_SYN_TIMEOUT,
        Timeouts,
    )

    t = Timeouts()
    timeouts: dict[str, int | None] = {n: getattr(t, n) for n in Timeouts.names()}
    timeouts.update(tcp_syn_timeout=TCP_SYN_TIMEOUT, tcp_connection_linger=TCP_CONNECTION_LINGER,
                    tcp_session_timer=TCP_SESSION_TIMER, dns_session_timeout=10 * SECOND)
    kw: dict[str, Any] = {"timeouts": timeouts, "keep_transitions": False}
    if max_flows is not None:
        kw["max_flows"] = max_flows
    if workers != 1:
        kw["threads"] = workers
    return _core.Tracker(**kw)


def rss_bytes() -> int:
    """The process's resident set now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tracker", choices=("rust", "python"))
    parser.add_argument("capture", type=Path)
    parser.add_argument("--max-flows", type=int, default=None,
                        help="flow cap (default: the tracker's own)")
    parser.add_argument("--workers", type=int, default=1, help="Rust tracker threads")
    args = parser.parse_args(argv)
    from portlens.decode import decode_capture

    conns = 0
    if args.tracker == "rust":
        tracker = rust_tracker(args.max_flows, args.workers)
        cpu = 0.0
        base = 0
        for batch in decode_capture(args.capture):
            base = base or rss_bytes()
            t0 = time.process_time()
            conns += len(tracker.feed(batch)["uid"])
            cpu += time.process_time() - t0
        grown, flows = rss_bytes() - base, tracker.open_flows
        if flows:
            print(f"rust: {flows} open flows before finish, RSS grown by {grown / 2**20:.0f} MB "
                  f"while tracking: {grown / flows:.0f} bytes per open flow")
        t0 = time.process_time()
        conns += len(tracker.finish()["uid"])
        cpu += time.process_time() - t0
        evicted = tracker.evicted
    else:
        from portlens.track.tracker import Tracker, TrackerConfig

        batches = list(decode_capture(args.capture))
        cfg = TrackerConfig() if args.max_flows is None else TrackerConfig(
            max_flows=args.max_flows)
        ptracker = Tracker(cfg)
        t0 = time.process_time()
        for batch in batches:
            conns += len(ptracker.feed(batch))
        conns += len(ptracker.finish())
        cpu = time.process_time() - t0
        evicted = ptracker.evicted
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.tracker}: tracking {cpu:.2f} CPU s, {conns} connections, {evicted} evicted, "
          f"peak RSS {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
