"""`packets --stats` counted by the compiled core (PacketScan) and by CaptureStats.add.

A single file read whole is read, decoded and counted in Rust (crates/core/src/scan.rs);
anything selected, merged or decoded by the reference is counted from PacketBatch columns in
Python. Both must give the same summary, the same per-file row and the same problems, on every
capture the project has: its own, the public corpus, and cut or damaged files.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from portlens.analysis.capture_stats import CaptureStats
from portlens.pipeline import Options, Pipeline, Source
from portlens.sources.writer import PcapWriter
from tests.corpus import corpus_dir

REPO = Path(__file__).resolve().parent.parent


def captures() -> list[object]:
    own = sorted(p for p in (REPO / "captures").iterdir() if p.is_file()
                 and p.suffix in (".pcap", ".pcapng", ".cap", ".gz"))
    root = corpus_dir()
    public = sorted(root.glob("*.pcap*")) if root is not None else []
    params: list[object] = [pytest.param(p, id=f"own/{p.name}") for p in own]
    params += [pytest.param(p, id=f"public/{p.name}") for p in public]
    if root is None:
        params.append(pytest.param(None, marks=pytest.mark.skip(
            reason="public capture corpus not found: ../shared/captures/public")))
    return params


def summary(path: Path, *, scan: bool) -> dict[str, object]:
    """Everything `packets --stats --json` and its stderr take from the pipeline."""
    # A count no file reaches selects everything, but takes the batch-by-batch path.
    options = Options(checksums=True, count=None if scan else 10**15)
    pipeline = Pipeline(Source.of(path), options)
    stats = CaptureStats()
    pipeline.count_stats(stats)
    return {"stats": stats.to_dict(), "files": [f.record() for f in pipeline.files],
            "errors": pipeline.errors, "warnings": pipeline.warnings,
            "not_decoded": dict(pipeline.not_decoded),
            "first_backwards": [f.first_backwards_frame for f in pipeline.files]}


@pytest.mark.parametrize("path", captures())
def test_scan_counts_as_the_batches_do(path: Path) -> None:
    scanned, counted = summary(path, scan=True), summary(path, scan=False)
    # json.dumps: the order of every count is part of the output too
    assert json.dumps(scanned) == json.dumps(counted)


def test_a_cut_file_counts_its_frames_then_says_so(tmp_path: Path) -> None:
    whole = (REPO / "captures" / "tcp-session.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 30])
    scanned, counted = summary(cut, scan=True), summary(cut, scan=False)
    assert json.dumps(scanned) == json.dumps(counted)
    assert scanned["stats"]["frames"] == 9  # type: ignore[index]
    at = _record_offset(whole, 9)
    assert scanned["errors"] == [f"{cut}: cut off inside record 10 at byte {at} (9 packets read)"]


def _record_offset(pcap: bytes, index: int) -> int:
    """Byte offset of record ``index`` (0-based) of a little-endian classic pcap."""
    pos = 24
    for _ in range(index):
        pos += 16 + struct.unpack_from("<I", pcap, pos + 8)[0]
    return pos


def test_time_running_backwards_is_found_by_both(tmp_path: Path) -> None:
    frame = bytes(14)
    path = tmp_path / "back.pcap"
    with PcapWriter(path, 1) as w:
        for ts in (5, 9, 7, 9, 2, 10):
            w.write(ts * 10**9, frame)
    scanned = summary(path, scan=True)
    assert json.dumps(scanned) == json.dumps(summary(path, scan=False))
    (f,) = scanned["files"]  # type: ignore[misc]
    assert (f["backwards"], f["largest_step_back_ns"]) == (2, 7 * 10**9)
    assert scanned["first_backwards"] == [3]


def _fragment(ident: int, offset8: int, more: bool, body: bytes) -> bytes:
    """An Ethernet frame: one IPv4 fragment of a UDP datagram (checksum left 0)."""
    flags = (0x2000 if more else 0) | offset8
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, flags, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return bytes(12) + b"\x08\x00" + ip + body


def test_fragment_drops_are_counted(tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A datagram whose last fragment never comes is dropped after 60 s of capture time:
    `--stats` says so (a line and a JSON key); the complete one is reassembled."""
    from portlens.cli import main

    udp = struct.pack("!HHHH", 1000, 53, 8 + 16, 0) + bytes(16)
    path = tmp_path / "frags.pcap"
    with PcapWriter(path, 1) as w:
        w.write(0, _fragment(1, 0, True, udp[:16]))          # never completed
        w.write(10**9, _fragment(2, 0, True, udp[:16]))
        w.write(2 * 10**9, _fragment(2, 2, False, udp[16:]))  # completes datagram 2
        w.write(90 * 10**9, _fragment(3, 0, True, udp[:16]))  # datagram 1 times out
    scanned = summary(path, scan=True)
    assert json.dumps(scanned) == json.dumps(summary(path, scan=False))
    stats = scanned["stats"]
    assert (stats["fragments"], stats["reassembled_datagrams"],  # type: ignore[index]
            stats["datagrams_timed_out"], stats["datagrams_over_cap"]) == (4, 1, 1, 0)  # type: ignore[index]
    capsys.readouterr()
    assert main(["packets", "--stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\nreassembled datagrams            1\n" in out
    assert "\ndatagrams timed out (fragments)  1\n" in out
    assert "over the fragment cap" not in out  # shown when it happened


def test_reference_and_compiled_decoders_count_alike() -> None:
    """--reference takes the batch path with the Python decoder: the same summary."""
    path = REPO / "captures" / "fragments.pcap"
    ref = Pipeline(Source.of(path), Options(checksums=True, reference=True))
    stats = CaptureStats()
    ref.count_stats(stats)
    assert stats.to_dict() == summary(path, scan=True)["stats"]
    assert stats.reassembled == 4


def test_one_file_is_summarised_without_the_batch_stages() -> None:
    """`packets --stats FILE` is a loop of calls into the compiled core: its start-up was
    half of its CPU time on the 2M-packet benchmark capture while it imported numpy, the
    decoder's columns, the filter, the selection, the trackers and live capture, none of
    which it uses (docs/benchmarks.md). Those stay unimported, and the summary is the
    batch path's all the same (test_scan_counts_as_the_batches_do)."""
    from tests.fresh_cli import run_fresh

    path = REPO / "captures" / "fragments.pcap"
    status, modules, stdout = run_fresh(["packets", "--stats", str(path)])
    assert status == 0 and "reassembled datagrams       4\n" in stdout
    unwanted = ("numpy", "portlens.decode.packets", "portlens.decode.rust", "portlens.filter",
                "portlens.pipeline.select", "portlens.pipeline.stages",
                "portlens.pipeline.cluster", "portlens.sources.merge",
                "portlens.sources.files", "portlens.sources.live", "portlens.track.tracker",
                "portlens.track.model", "portlens.report.packets", "rich.console")
    assert not modules & set(unwanted)
    assert "portlens._core" in modules
