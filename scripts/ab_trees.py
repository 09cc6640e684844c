#!/usr/bin/env python3
"""Two builds of portlens timed in interleaved rounds: what a change is worth on a noisy host.

    python scripts/ab_trees.py --rounds 11 BEFORE AFTER -- conns --format zeek FILE

BEFORE and AFTER are directories that each hold a `portlens` package with its compiled core
(`cp -r src /tmp/before` on the commit before, with `target/release/lib_core.so` copied to
`/tmp/before/portlens/_core.abi3.so`). Each round runs `python -m portlens ARGS` once with
each directory first on PYTHONPATH, output thrown away, alternating which goes first, so
that a busy spell of the host falls on both; the rounds' wall and CPU (user + system, from
wait4's rusage) seconds are printed as median and minimum. The packages are byte-compiled
first, as `pip install` does, so that neither run compiles its modules from source.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(tree: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `python -m portlens ARGS` importing portlens from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "portlens", *args], env=env, check=False,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: nothing found, still a run
        message = done.stderr.strip().splitlines()[-1:] or [f"status {done.returncode}"]
        raise RuntimeError(f"{tree}: {message[0]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/ab_trees.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=11, help="rounds (default 11)")
    p.add_argument("trees", nargs=2, type=Path, metavar="TREE",
                   help="a directory holding a portlens package")
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then portlens' arguments")
    o = p.parse_args(argv)
    args = o.args[1:] if o.args[:1] == ["--"] else o.args
    if o.rounds < 1:
        p.error(f"--rounds {o.rounds}: at least 1")
    if not args:
        p.error("no portlens arguments (after --)")
    for tree in o.trees:
        if not (tree / "portlens" / "__init__.py").is_file():
            p.error(f"{tree}: no portlens package in it")
        compileall.compile_dir(tree / "portlens", quiet=1)
    runs: dict[Path, tuple[list[float], list[float]]] = {t: ([], []) for t in o.trees}
    try:
        for k in range(o.rounds):
            for tree in o.trees if k % 2 == 0 else reversed(o.trees):
                wall, cpu = run_once(tree, args)
                runs[tree][0].append(wall)
                runs[tree][1].append(cpu)
    except RuntimeError as exc:
        print(f"ab_trees.py: {exc}", file=sys.stderr)
        return 1
    for tree, (walls, cpus) in runs.items():
        print(f"{tree}: wall median {statistics.median(walls):.3f} s, min {min(walls):.3f}; "
              f"CPU median {statistics.median(cpus):.3f} s, min {min(cpus):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
