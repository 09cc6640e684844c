"""Read throughput of the capture readers: Rust (portlens._core) vs the Python reference vs tcpdump.

Each tool reads the whole file in its own process, in interleaved rounds (so that load on a
shared machine hits all of them alike), measured by /usr/bin/time: wall seconds, CPU seconds
(user + system) and peak RSS. Packets/s is the file's packet count over the wall time of the
whole process, start-up included. The best round of each tool is reported.

examples:
  python scripts/bench.py generate --packets 2000000 --out /tmp/bench.pcap --seed 1
  python scripts/bench_readers.py /tmp/bench.pcap --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

READ = """
import sys
from portlens.sources.files import open_capture
n = 0
with open_capture(sys.argv[1], reference=sys.argv[2] == "reference") as r:
    for b in r:
        n += len(b)
print(n)
"""


@dataclass
class Run:
    wall: float
    user: float
    system: float
    rss_mb: float
    out: str

    @property
    def cpu(self) -> float:
        return self.user + self.system


def measure(argv: list[str]) -> Run:
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        done = subprocess.run(
            ["/usr/bin/time", "-o", t.name, "-f", "%e %U %S %M", *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        wall, user, system, rss_kb = t.read().split()[-4:]
    return Run(float(wall), float(user), float(system), int(rss_kb) / 1024, done.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("file", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env_python = [sys.executable, "-c", READ, str(args.file)]
    tools: dict[str, list[str]] = {
        "portlens reader, Rust (Python process)": [*env_python, "rust"],
        "portlens reader, Python reference": [*env_python, "reference"],
        "Python start-up alone (imports, no reading)": [
            sys.executable, "-c", "import portlens.sources.files, portlens._core",
        ],
    }
    bare = REPO / "target" / "release" / "examples" / "read_capture"
    if bare.exists():
        tools["Rust reader alone (examples/read_capture)"] = [str(bare), str(args.file)]
    if shutil.which("tcpdump"):
        tools["tcpdump -r FILE -w /dev/null"] = ["tcpdump", "-r", str(args.file), "-w", "/dev/null"]
    os.environ["PYTHONPATH"] = str(REPO / "src")
    runs: dict[str, list[Run]] = {name: [] for name in tools}
    for _ in range(args.repeat):
        for name, argv in tools.items():
            runs[name].append(measure(argv))
    packets = int(runs["portlens reader, Rust (Python process)"][0].out)
    assert packets == int(runs["portlens reader, Python reference"][0].out)
    print(f"{args.file}: {packets:,} packets, {args.file.stat().st_size / 1e6:,.0f} MB")
    print("| reader | wall s | CPU s (user + sys) | M packets/s (wall) | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, rs in runs.items():
        wall = min(r.wall for r in rs)
        best = min(rs, key=lambda r: r.cpu)
        rss = max(r.rss_mb for r in rs)
        cpu = f"{best.cpu:.2f} ({best.user:.2f} + {best.system:.2f})"
        print(f"| {name} | {wall:.2f} | {cpu} | {packets / wall / 1e6:.2f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
