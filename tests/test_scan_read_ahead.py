"""`PacketScan(read_ahead=True)`: the core reads the file in a thread of its own while each
`step` decodes and counts the batch before (crates/core/src/scan.rs), which is how
`packets --stats` runs. The batches reach the decoder in the same order either way, so every
count, every step's progress and every problem must equal the single thread's, on every capture
the project has (its own, the public corpus, cut, damaged and hostile files) and with chunks
small enough that records straddle chunks all the time.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from portlens import _core
from portlens.sources.linktypes import SUPPORTED
from tests.corpus import every_capture_params

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from make_hostile import make  # noqa: E402


def run(path: Path, *, read_ahead: bool, chunk: int | None = None) -> dict[str, object]:
    """Everything a scan tells: per step its progress, then the counts, the reassembler's
    counters and the problem that ended it."""
    kwargs = {} if chunk is None else {"chunk_bytes": chunk}
    try:
        scan = _core.PacketScan(str(path), checksums=True, supported=sorted(SUPPORTED),
                                read_ahead=read_ahead, **kwargs)
    except _core.CaptureError as exc:
        return {"open": str(exc)}
    opened = (scan.format, scan.compression, scan.total_bytes, scan.interfaces())
    steps: list[object] = []
    problem = None
    try:
        while scan.step():
            steps.append((scan.bytes_read, scan.frames_cut, scan.interfaces()))
    except _core.CaptureError as exc:
        problem = str(exc)
    scan.close()
    return {"opened": opened, "steps": steps, "problem": problem,
            "end": (scan.bytes_read, scan.frames_cut, scan.interfaces()),
            "counts": scan.counts(), "fragments": scan.fragment_counters}


def assert_same(path: Path, chunk: int | None = None) -> dict[str, object]:
    alone = run(path, read_ahead=False, chunk=chunk)
    ahead = run(path, read_ahead=True, chunk=chunk)
    assert alone.keys() == ahead.keys()
    for key in alone:  # field by field, so a failure names the field
        assert ahead[key] == alone[key], key
    return alone


@pytest.mark.parametrize("path", every_capture_params())
def test_read_ahead_counts_as_one_thread_does(path: Path) -> None:
    assert_same(path)


@pytest.mark.parametrize("path", every_capture_params())
def test_read_ahead_with_small_chunks(path: Path) -> None:
    """4 KiB chunks: most batches carry a record cut at the chunk's end into the next, and
    big frames need a chunk of their own."""
    assert_same(path, chunk=4096)


def test_the_benchmark_shape_spans_many_batches(tmp_path: Path) -> None:
    """A generated capture of many 64 KiB chunks (the buffers go round between the threads
    many times): the same counts, and the totals are the file's."""
    source = (REPO / "captures" / "scenario-loss-reorder.pcap").read_bytes()
    records = source[24:]
    path = tmp_path / "many.pcap"
    path.write_bytes(source[:24] + records * 200)
    seen = assert_same(path, chunk=65536)
    counts = seen["counts"]
    assert isinstance(counts, dict)
    single = run(REPO / "captures" / "scenario-loss-reorder.pcap", read_ahead=False)["counts"]
    assert isinstance(single, dict)
    assert counts["frames"] == 200 * single["frames"]
    assert len(seen["steps"]) > 10  # type: ignore[arg-type]


def test_a_cut_and_a_damaged_file_end_alike(tmp_path: Path) -> None:
    whole = (REPO / "captures" / "tcp-session.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 30])
    seen = assert_same(cut)
    assert seen["problem"] is not None and "cut off inside record 10" in str(seen["problem"])
    assert seen["counts"]["frames"] == 9  # type: ignore[index]
    broken = tmp_path / "broken.pcap.gz"
    broken.write_bytes(gzip.compress(whole[:24] + whole[24:] * 40)[:-200])
    seen = assert_same(broken, chunk=1024)
    assert "gzip stream cut off" in str(seen["problem"])


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_frames_past_the_cap(tmp_path: Path, fmt: str) -> None:
    """scripts/make_hostile.py: frames larger than the 256 KiB frame cap, read past and cut
    (plain), and 64 MiB frames in a few hundred bytes of bzip2."""
    plain = make(tmp_path, 3, 300_000, fmt, compress=False)
    seen = assert_same(plain)
    assert seen["end"][1] == 3  # type: ignore[index]
    (tmp_path / "bz").mkdir()
    seen = assert_same(make(tmp_path / "bz", 2, 64 << 20, fmt))
    assert seen["end"][1] == 2  # type: ignore[index]


def test_closing_mid_file_ends_the_reading_thread(tmp_path: Path) -> None:
    """Ctrl-C between steps closes the scan: the thread stops (no hang), the counts so far
    stay, and later steps give nothing."""
    source = (REPO / "captures" / "scenario-loss-reorder.pcap").read_bytes()
    path = tmp_path / "many.pcap"
    path.write_bytes(source[:24] + source[24:] * 100)
    scan = _core.PacketScan(str(path), chunk_bytes=4096, checksums=True,
                            supported=sorted(SUPPORTED), read_ahead=True)
    assert scan.step() and scan.step()
    scan.close()
    frames = scan.counts()["frames"]
    whole = run(path, read_ahead=False)["counts"]
    assert 0 < frames < whole["frames"]  # type: ignore[index]
    assert not scan.step()
    assert scan.counts()["frames"] == frames
