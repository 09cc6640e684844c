#!/usr/bin/env python3
"""The Rust tracker, in one thread and in flow shards of several, against the Python reference
tracker on one capture (the benchmark's 2 M packets, say), every field of every connection,
its transitions included, in the order they end. The packets are decoded once, by the
compiled decoder, and fed to every tracker batch by batch, so the trackers alone are
compared (the reference decoder leaves out what only the core decodes, such as Teredo found
by content: docs/decoding.md).

Usage::

    python scripts/diff_trackers.py /tmp/portlens-bench-2M.pcap --threads 2 3

Prints the connections and the transitions each tracker gave, and the first differences;
exit status 1 when any tracker differs from the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

from portlens.pipeline.run import Options, Pipeline, Source
from portlens.pipeline.stages import new_tracker
from portlens.track.config import TrackerConfig
from portlens.track.model import Connection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--threads", type=int, nargs="*", default=[2],
                        help="shard counts of the Rust tracker beside one (default: 2)")
    parser.add_argument("--checksums", choices=("keep", "drop"), default="keep")
    args = parser.parse_args()
    config = TrackerConfig(drop_bad_checksums=args.checksums == "drop")
    trackers = {"reference": new_tracker(config, reference=True), "rust": new_tracker(config)}
    for n in args.threads:
        trackers[f"rust, {n} threads"] = new_tracker(replace(config, threads=n))
    rows: dict[str, list[Connection]] = {name: [] for name in trackers}
    cpu = dict.fromkeys(trackers, 0.0)
    pipeline = Pipeline(Source.of(args.capture), Options(tracker=config, read_ahead=False))
    packets = 0
    for batch in pipeline.packets(tracking=True):
        packets += len(batch)
        for name, tracker in trackers.items():
            start = time.process_time()
            rows[name].extend(tracker.feed(batch))
            cpu[name] += time.process_time() - start
    for name, tracker in trackers.items():
        rows[name].extend(tracker.finish())
    want = rows["reference"]
    status = 0
    for name, got in rows.items():
        transitions = sum(len(c.transitions) for c in got)
        print(f"{name}: {len(got):,} connections, {transitions:,} transitions, "
              f"{cpu[name]:.1f} CPU s tracking {packets:,} packets")
        if name == "reference":
            continue
        differ = [i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b]
        if len(got) != len(want) or differ:
            status = 1
            print(f"  differs from the reference: {len(got)} against {len(want)} rows, "
                  f"{len(differ)} rows differ")
            for i in differ[:3]:
                a, b = got[i], want[i]
                names = [f.name for f in fields(Connection) if getattr(a, f.name) !=
                         getattr(b, f.name)]
                print(f"  row {i} ({b.uid}): {', '.join(names)}")
        else:
            print("  equal to the reference, field by field, row for row")
    return status


if __name__ == "__main__":
    sys.exit(main())
