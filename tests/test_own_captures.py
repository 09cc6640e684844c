"""The project's own captures (captures/) decode to the values their crafting put in them.

``scripts/make_captures.py`` writes each capture and ``captures/expected/NAME.json``: per frame,
the keys of ``portlens packets --json`` whose values follow from the crafting parameters.
A value of ``null`` means the key must be absent (or null). Keys not listed are not checked.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
SCRIPT = REPO / "scripts" / "make_captures.py"
EXPECTED = sorted((CAPTURES / "expected").glob("*.json"))

MAX_TOTAL_BYTES = 300 * 1024
MAX_CAPTURE_BYTES = 64 * 1024  # the recorded loopback sample is the largest


def load_spec(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def run_packets(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """``portlens packets --json FILE`` in-process: one JSON object per frame."""
    from portlens.cli import main

    capsys.readouterr()  # drop anything printed before
    rc = main(["packets", "--json", str(path)])
    out = capsys.readouterr().out
    assert rc == 0, f"portlens packets --json {path.name} exited {rc}"
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def frame_problems(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    problems = []
    for key, want in expected.items():
        if want is None:
            if got.get(key) is not None:
                problems.append(f"{key}: expected absent, got {got[key]!r}")
        elif key not in got:
            problems.append(f"{key}: expected {want!r}, missing")
        elif got[key] != want:
            problems.append(f"{key}: expected {want!r}, got {got[key]!r}")
    return problems


def test_expected_files_exist() -> None:
    assert EXPECTED, "no captures/expected/*.json: run scripts/make_captures.py"
    for path in EXPECTED:
        spec = load_spec(path)
        assert (CAPTURES / spec["file"]).is_file(), f"{path.name} names a missing capture"
        assert [f["frame"] for f in spec["frames"]] == list(range(1, len(spec["frames"]) + 1))


@pytest.mark.parametrize("spec_path", EXPECTED, ids=lambda p: p.stem)
def test_packets_match_expected(spec_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_spec(spec_path)
    rows = run_packets(CAPTURES / spec["file"], capsys)
    assert len(rows) == len(spec["frames"]), (
        f"{spec['file']}: {len(rows)} frames printed, {len(spec['frames'])} expected"
    )
    problems = []
    for expected, got in zip(spec["frames"], rows, strict=True):
        problems += [f"frame {expected['frame']} {p}" for p in frame_problems(expected, got)]
    assert not problems, f"{spec['file']} ({spec['description']}):\n" + "\n".join(problems)


def test_captures_stay_small() -> None:
    files = [p for p in CAPTURES.iterdir() if p.is_file() and p.suffix != ".md"]
    sizes = {p.name: p.stat().st_size for p in files}
    too_big = {name: size for name, size in sizes.items() if size > MAX_CAPTURE_BYTES}
    assert not too_big, f"captures over {MAX_CAPTURE_BYTES} bytes: {too_big}"
    assert sum(sizes.values()) < MAX_TOTAL_BYTES


def _same_gzip_content(a: bytes, b: bytes) -> bool:
    """Two gzip files with the same content (compressed bytes may differ across zlib builds)."""
    if a[:2] != b"\x1f\x8b" or b[:2] != b"\x1f\x8b":
        return False
    return gzip.decompress(a) == gzip.decompress(b)


def test_make_captures_is_deterministic(tmp_path: Path) -> None:
    """Re-running the script reproduces the checked-in captures and expectations exactly."""
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "the script wrote nothing"
    differing = []
    for rel in generated:
        fresh = (tmp_path / rel).read_bytes()
        checked_in = CAPTURES / rel
        if not checked_in.is_file():
            differing.append(f"{rel}: not checked in")
            continue
        old = checked_in.read_bytes()
        if fresh != old and not _same_gzip_content(fresh, old):
            differing.append(f"{rel}: differs")
    assert not differing, "re-run scripts/make_captures.py and commit:\n" + "\n".join(differing)
