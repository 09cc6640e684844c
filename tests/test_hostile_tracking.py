"""Hostile input for the tracker (issues 11 and 15), on captures crafted by
scripts/make_track_inputs.py: segments that leave holes must cost the same per segment however many
holes are held, in the Python reference and in the Rust core, with equal results.

Work is counted, not timed: the lines of the tracker's modules executed (sys.settrace) for a
capture of n gapped segments and one of 4n. With ranges walked from the front (the code before
this test) the count grows with n² (16 times for 4 times the segments); bisection keeps it
about linear.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from portlens.decode import decode_capture
from portlens.track.ranges import Blocks, Coverage
from portlens.track.tracker import TrackerConfig, track

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "make_track_inputs.py"
TRACK_DIR = str(REPO / "src" / "portlens" / "track")


def make(tmp: Path, *args: str) -> Path:
    out = tmp / ("-".join(a.strip("-") for a in args) + ".pcap")
    subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], check=True)
    return out


def tracker_lines(path: Path) -> tuple[int, Any]:
    """Lines of src/portlens/track executed while tracking ``path``, and the connection."""
    decoded = list(decode_capture(path))
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(TRACK_DIR) else None

    sys.settrace(global_)
    try:
        (conn,) = list(track(iter(decoded), TrackerConfig(fast_paths=False)))
    finally:
        sys.settrace(None)
    return count, conn


@pytest.mark.parametrize(("order", "history"), [([], "ShADaFf"), (["--reverse"], "ShADaTTTFf")],
                         ids=["ascending", "descending"])
def test_gapped_segments_cost_linear_work(tmp_path: Path, order: list[str],
                                          history: str) -> None:
    small, c_small = tracker_lines(make(tmp_path, "gapped", "--mb", "0.05", *order))
    large, c_large = tracker_lines(make(tmp_path, "gapped", "--mb", "0.2", *order))
    # 185 and 740 gapped segments after the first (270 bytes a frame), one hole before each,
    # besides SYN, ACK, the first data and FIN: nothing past the first hole is delivered,
    # nothing acknowledged is missing. Highest first, every segment but the first lies below
    # the highest sent: Zeek's retransmission letter, logarithmically (1, 10, 100).
    assert (c_small.orig_pkts, c_large.orig_pkts) == (189, 744)
    assert (c_small.history, c_large.missed_bytes) == (history, 0)
    assert large < 4.6 * small, (small, large)


def test_rust_tracker_equals_python_on_gapped_captures(tmp_path: Path) -> None:
    from tests.test_rust_tracker import run_python, run_rust

    for args in (["--mb", "0.3"], ["--mb", "0.3", "--reverse"], ["--mb", "0.1", "--size", "7"]):
        path = make(tmp_path, "gapped", *args)
        rust, _ = run_rust(path, TrackerConfig())
        py, _ = run_python(path, TrackerConfig())
        assert len(rust) == 1
        assert rust == py


def test_ranges_equal_a_plain_model() -> None:
    """Blocks and Coverage against sets of sequence numbers, on a fixed pseudo-random mix of
    inserts and trims (the Rust twin has the same test against the old vector code)."""
    import random

    rnd = random.Random(7)
    for _ in range(100):
        blocks, cover = Blocks(), Coverage()
        held: set[int] = set()
        pieces: list[tuple[int, int]] = []
        for _ in range(40):
            a = rnd.randrange(300)
            b = a + 1 + rnd.randrange(30)
            if rnd.randrange(6) == 0:
                blocks.drop_ending_by(a)
                pieces = [p for p in pieces if p[1] > a]
                held = {x for p in pieces for x in range(*p)}
            else:
                new = sorted(set(range(a, b)) - held)
                # The new bytes, as maximal runs between the bytes already held.
                for x in new:
                    if pieces and pieces[-1][1] == x and x - 1 not in held:
                        pieces[-1] = (pieces[-1][0], x + 1)
                    else:
                        pieces.append((x, x + 1))
                held |= set(new)
                pieces.sort()
                blocks.insert(a, b)
                cover.add(a, b)
            assert {x for p in blocks.pairs() for x in range(*p)} == held
            assert blocks.union.pairs() == _runs(held)
            assert all(p[1] > p[0] for p in blocks.pairs())
            probe = rnd.randrange(330)
            end = probe + rnd.randrange(10)
            covered = {x for p in cover.pairs() for x in range(*p)}
            assert cover.covers(probe, end) == (
                any(s <= probe and end <= e for s, e in _runs(covered)))


def _runs(xs: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x in sorted(xs):
        if out and out[-1][1] == x:
            out[-1] = (out[-1][0], x + 1)
        else:
            out.append((x, x + 1))
    return out
