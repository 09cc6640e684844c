#!/usr/bin/env python3
"""CPU seconds of one command, thread by thread: where the wall time of a run on few cores goes.

    python scripts/thread_cpu.py [--repeat N] -- portlens conns --format zeek --workers 2 FILE

The command runs with its output thrown away while this script reads each of its threads'
user + system time from /proc every few milliseconds, keeping the last value seen. A thread
that lives less than that (the second shard of `--workers 2` was a scoped thread per batch
until the twentieth session) is not seen alone; what the process spent beyond the threads
seen is printed as ``short`` (the process's total comes from wait4's rusage, which counts
every thread). ``main`` is the thread the process started with; ``long`` are the others that
lived past a poll and used at least 0.05 CPU s (portlens: the core's reading and decoding
thread, the threads of `--workers`' other shards, and a live capture's).

The polling takes a little CPU of its own, beside the command: on a two-core host that slows
the command a little, not what each thread is charged.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.005
LONG_S = 0.05


@dataclass(frozen=True)
class Run:
    wall: float
    total: float
    main: float
    long: tuple[float, ...]

    @property
    def short(self) -> float:
        return max(0.0, self.total - self.main - sum(self.long))

    def line(self) -> str:
        long = " ".join(f"{v:.2f}" for v in self.long) or "-"
        return (f"wall {self.wall:.2f} s  CPU {self.total:.2f} s  main {self.main:.2f}  "
                f"long {long}  short {self.short:.2f}")


def thread_seconds(pid: int) -> dict[int, float]:
    """user + system seconds of each thread of ``pid`` now (threads gone meanwhile skipped)."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # After the command name, in parentheses (which may hold spaces): utime and stime are
        # fields 14 and 15 of proc(5), the 12th and 13th after it.
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def measure(cmd: list[str]) -> Run:
    before = children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    seen: dict[int, float] = {}
    while proc.poll() is None:
        seen.update(thread_seconds(proc.pid))
        time.sleep(POLL_S)
    wall = time.perf_counter() - start
    total = children_cpu() - before  # poll() reaped it: its rusage is in the children's
    if proc.returncode not in (0, 1):
        raise SystemExit(f"thread_cpu: the command exited with status {proc.returncode}")
    main = seen.pop(proc.pid, 0.0)
    long = tuple(sorted((v for v in seen.values() if v >= LONG_S), reverse=True))
    return Run(wall, total, main, long)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, metavar="N", help="runs (default 3)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given (after --)")
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, not {args.repeat}")
    runs = []
    for _ in range(args.repeat):
        try:
            run = measure(cmd)
        except OSError as exc:
            print(f"thread_cpu: {cmd[0]}: {exc.strerror}", file=sys.stderr)
            return 2
        runs.append(run)
        print(run.line())
    if len(runs) > 1:
        med = Run(statistics.median(r.wall for r in runs),
                  statistics.median(r.total for r in runs),
                  statistics.median(r.main for r in runs),
                  tuple(statistics.median(r.long[i] if i < len(r.long) else 0.0 for r in runs)
                        for i in range(max(len(r.long) for r in runs))))
        print("median (each column alone): " + med.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
