"""scripts/ab_trees.py, the benchmarks' comparison of two builds in interleaved rounds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ab_trees.py"
CAPTURE = ROOT / "captures" / "be.pcap"

LINE = re.compile(r"(.+): wall median (\S+) s, min (\S+); CPU median (\S+) s, min (\S+)")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], check=False,
                          capture_output=True, text=True, timeout=300)


def tree(at: Path, package: Path) -> Path:
    at.mkdir()
    (at / "portlens").symlink_to(package, target_is_directory=True)
    return at


def test_two_trees_are_timed_round_by_round(tmp_path: Path) -> None:
    package = ROOT / "src" / "portlens"
    a, b = tree(tmp_path / "a", package), tree(tmp_path / "b", package)
    done = run("--rounds", "3", str(a), str(b), "--", "conns", "--format", "zeek",
               str(CAPTURE))
    assert done.returncode == 0, done.stderr
    matches = [LINE.fullmatch(line) for line in done.stdout.splitlines()]
    assert [m[1] if m else None for m in matches] == [str(a), str(b)], done.stdout
    for m in matches:
        assert m is not None
        wall_median, wall_min, cpu_median, cpu_min = map(float, m.groups()[1:])
        assert 0 < wall_min <= wall_median < 60
        assert 0 < cpu_min <= cpu_median < 60


def test_a_failing_run_stops_with_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "portlens"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        "import sys\nprint('portlens: no such file', file=sys.stderr)\nsys.exit(2)\n")
    done = run("--rounds", "1", str(tmp_path / "fake"), str(tmp_path / "fake"), "--", "conns")
    assert (done.returncode, done.stderr) == (
        1, f"ab_trees.py: {tmp_path / 'fake'}: portlens: no such file\n")


def test_bad_usage_is_one_line(tmp_path: Path) -> None:
    done = run("--rounds", "0", str(tmp_path), str(tmp_path), "--", "conns")
    assert done.returncode == 2 and "--rounds 0: at least 1" in done.stderr
    done = run(str(tmp_path), str(tmp_path))
    assert done.returncode == 2 and "no portlens arguments" in done.stderr
    done = run(str(tmp_path), str(tmp_path), "--", "conns")
    assert done.returncode == 2 and f"{tmp_path}: no portlens package in it" in done.stderr
