"""Tracking one whole file on batches the core read and decoded itself
(`portlens._core.DecodedFile`, crates/core/src/decoded.rs; `Pipeline._decoded`), which is
how `conns`, `ports`, `handshakes` and `sockets` run on one capture, against the pipeline's
general path, where Python reads the file and the core's decoder hands every batch's columns
to NumPy (``Options(read_ahead=False)`` takes it). Everything the run hands out must be equal:
every column of every block of ended connections, in order, with one and with two flow-shard
threads; the file's statistics (FileStats), problems and warnings, frames not decoded, the
fragment reassembler's counters, the tracker's counters; and the progress reported. On every
capture the project has (its own, the public corpus, cut, damaged and hostile files), and
with chunks small enough that records straddle chunks all the time.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track.config import TrackerConfig
from tests.corpus import every_capture_params

pytest.importorskip("portlens._core", reason="the Rust core is not built")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from make_hostile import make  # noqa: E402


def run(path: Path | list[Path], *, in_core: bool, chunk: int = 1 << 20, workers: int = 1,
        checksums: bool | None = None, objects: bool = False,
        select: dict[str, Any] | None = None) -> dict[str, Any]:
    """What one tracking run hands out, by name: blocks of columns, or with ``objects`` the
    Connections (``track(sink)``, what `conns`' table and filters read). ``path``: a file, or
    several read as one capture. ``select``: Options of a selection (filter, start_ns,
    end_ns)."""
    blocks: list[Any] = []
    progress: list[tuple[int, int]] = []
    done: list[dict[str, object]] = []
    options = Options(read_ahead=in_core, chunk_bytes=chunk, checksums=checksums,
                      tracker=TrackerConfig(threads=workers), workers=workers,
                      **(select or {}))
    source = Source.of(path)
    # Several files followed one by one (``on_file_done``: the Dask workers) take the
    # general path.
    pipeline = Pipeline(source, options, progress=lambda a, b: progress.append((a, b)),
                        on_file_done=None if len(source.files) > 1 else
                        lambda fs: done.append(fs.record()))
    decoded: list[bool] = []
    real = pipeline._ended_in_core

    def spy(*args: Any, **kwargs: Any) -> Any:
        ended = real(*args, **kwargs)
        decoded.append(ended is not None)
        return ended

    pipeline._ended_in_core = spy  # type: ignore[method-assign]
    if objects:
        pipeline.track(blocks.append)
    else:
        pipeline.track(lambda c: None, on_columns=blocks.append, column_block=1)
    assert decoded == [in_core], "the run did not take the path asked for"
    return {
        "blocks": blocks,
        "files": [(fs.record(), fs.frames_cut, fs.first_backwards_frame, fs.linktype)
                  for fs in pipeline.files],
        "done": done,
        "errors": pipeline.errors,
        "warnings": pipeline.warnings,
        "not_decoded": pipeline.not_decoded,
        "fragments": pipeline.fragment_counters,
        "not_counted": pipeline.not_counted,
        "evicted": pipeline.evicted,
        "progress_end": progress[-1:] if progress else [],
    }


def same_blocks(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Block for block, column for column (a block is what one batch ended)."""
    rows_a = sum(len(x["uid"]) for x in a)
    assert rows_a == sum(len(x["uid"]) for x in b)
    assert [len(x["uid"]) for x in a] == [len(x["uid"]) for x in b]
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x.keys() == y.keys()
        for name in x:
            u, v = x[name], y[name]
            if isinstance(u, np.ndarray):
                assert np.array_equal(u, v), f"block {i} column {name}"
            else:
                assert u == v, f"block {i} column {name}"


def assert_same(path: Path | list[Path], **kwargs: Any) -> dict[str, Any]:
    general = run(path, in_core=False, **kwargs)
    core = run(path, in_core=True, **kwargs)
    if kwargs.get("objects"):
        assert core.pop("blocks") == general.pop("blocks")  # every field of every Connection
    else:
        same_blocks(general.pop("blocks"), core.pop("blocks"))
    for key in general:  # field by field, so a failure names the field
        assert core[key] == general[key], key
    return general


@pytest.mark.parametrize("path", every_capture_params())
def test_tracking_decoded_batches_equals_the_general_path(path: Path) -> None:
    assert_same(path)


@pytest.mark.parametrize("path", every_capture_params())
def test_small_chunks_two_workers_and_checksums(path: Path) -> None:
    """4 KiB chunks (records cut at a chunk's end, big frames in chunks of their own), two
    flow-shard threads, and the checksums verified (Zeek without -C drops bad ones)."""
    assert_same(path, chunk=4096, workers=2, checksums=True)


@pytest.mark.parametrize("path", every_capture_params())
def test_connections_as_objects(path: Path) -> None:
    """``track(sink)`` without columns (`conns`' table, its filters): the same Connections,
    transitions included."""
    assert_same(path, objects=True)


def test_connections_iterated(tmp_path: Path) -> None:
    """``Pipeline.connections()`` (the API, --conn's first pass) reads through the core's
    batches too, and gives what the general path gives."""
    path = REPO / "captures" / "tcp-session.pcap"
    core = list(Pipeline(Source.of(path), Options()).connections())
    general = list(Pipeline(Source.of(path), Options(read_ahead=False)).connections())
    assert core == general and core


def test_many_batches(tmp_path: Path) -> None:
    """A capture of many chunks, so the decoded batches go round between the threads many
    times: the same rows, and the file's figures are the whole file's."""
    source = (REPO / "captures" / "scenario-loss-reorder.pcap").read_bytes()
    path = tmp_path / "many.pcap"
    path.write_bytes(source[:24] + source[24:] * 200)
    seen = assert_same(path, chunk=65536)
    single = run(REPO / "captures" / "scenario-loss-reorder.pcap", in_core=True)
    assert seen["files"][0][0]["frames"] == 200 * single["files"][0][0]["frames"]
    assert seen["warnings"]  # each copy of the records starts back in time


def test_a_cut_a_damaged_and_a_missing_file(tmp_path: Path) -> None:
    whole = (REPO / "captures" / "tcp-session.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 30])
    seen = assert_same(cut)
    assert seen["errors"] and "cut off inside record 10" in seen["errors"][0]
    assert seen["files"][0][0]["frames"] == 9
    assert seen["done"]  # the file is done with, its problem said
    broken = tmp_path / "broken.pcap.gz"
    broken.write_bytes(gzip.compress(whole[:24] + whole[24:] * 40)[:-200])
    seen = assert_same(broken, chunk=1024)
    assert "gzip stream cut off" in seen["errors"][0]
    seen = assert_same(tmp_path / "nothing-here.pcap")
    assert seen["errors"] == [f"{tmp_path / 'nothing-here.pcap'}: cannot open: "
                              "No such file or directory"]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_frames_past_the_cap(tmp_path: Path, fmt: str) -> None:
    """scripts/make_hostile.py: frames larger than the 256 KiB frame cap, cut (and warned
    about) alike."""
    seen = assert_same(make(tmp_path, 3, 300_000, fmt, compress=False))
    assert seen["files"][0][1] == 3
    assert any("frame cap" in w for w in seen["warnings"])


def test_a_copy_or_a_count_goes_the_general_way(tmp_path: Path) -> None:
    """What only the general path does (-w, --reference, a count that stops the reading) is
    never skipped: those runs do not track the core's decoded batches. A filter and a time
    window read every batch to its end: the core's batches, the rows they keep."""
    path = REPO / "captures" / "tcp-session.pcap"
    for options in (Options(write=str(tmp_path / "w.pcap")), Options(count=3),
                    Options(reference=True)):
        assert not Pipeline(Source.of(path), options)._whole(selecting=True)
    for options in (Options(filter="tcp port 80"), Options(start_ns=0), Options(end_ns=0)):
        pipeline = Pipeline(Source.of(path), options)
        assert pipeline._whole(selecting=True) and not pipeline._whole()
    assert Pipeline(Source.of([path, path]), Options())._whole()
    assert Pipeline(Source.of(path), Options())._whole()


def test_a_held_batch_reads_as_the_decoders_packet_batch() -> None:
    """What a selection reads of the batch the core holds (``HeldBatch``: each column fetched
    when first read) is the PacketBatch the general path decodes, column for column."""
    import portlens._core as core

    from portlens.decode.packets import PacketBatch
    from portlens.decode.rust import HeldBatch
    from portlens.sources.linktypes import SUPPORTED

    path = REPO / "captures" / "loopback-sample.pcap"
    file = core.DecodedFile(str(path), 1 << 20, str(path), checksums=True,
                            supported=sorted(SUPPORTED))
    try:
        rows = file.hold()
        held = HeldBatch(file)
        (general,) = Pipeline(Source.of(path), Options(read_ahead=False,
                                                       checksums=True)).packets()
        assert len(held) == rows == len(general) > 0
        for name in PacketBatch.column_names():
            assert np.array_equal(getattr(held, name), getattr(general, name)), name
        with pytest.raises(AttributeError):
            _ = held.no_such_column
        assert file.hold() is None  # the end: one batch
    finally:
        file.close()


def _middle_third(path: Path | list[Path]) -> dict[str, int]:
    """A time window over the middle third of a capture's packets' times."""
    times = np.concatenate([b.ts_ns for b in Pipeline(Source.of(path), Options()).packets()]
                           or [np.zeros(0, np.int64)])
    if not len(times):
        return {"start_ns": 0, "end_ns": 1}
    low, high = int(times.min()), int(times.max())
    return {"start_ns": low + (high - low) // 3, "end_ns": low + 2 * (high - low) // 3}


FILTERS = ("tcp or icmp", "not port 53 and not port 80")
"""Filters that keep some rows of most captures and drop others."""


@pytest.mark.parametrize("path", every_capture_params())
def test_a_filter_and_a_time_window_on_the_core_batches(path: Path) -> None:
    """-f and --start/--end on the core's batches (``Tracker.feed_held`` of the rows the
    selection keeps, read from ``HeldBatch``): what the general path hands out, filter by
    filter, and the middle third of the capture's time, as columns and as Connections; in
    4 KiB chunks with two flow-shard threads too."""
    for expression in FILTERS:
        assert_same(path, select={"filter": expression})
    window = _middle_third(path)
    assert_same(path, select=window)
    assert_same(path, select={**window, "filter": FILTERS[0]}, objects=True)
    assert_same(path, select={"filter": FILTERS[1]}, chunk=4096, workers=2)


def test_a_selection_keeps_some_rows_of_the_batches() -> None:
    """Selections like those above keep some of a capture's rows and drop others, on the
    core's batches: each one changes what is tracked."""
    path = REPO / "captures" / "loopback-sample.pcap"
    whole = sum(len(b["uid"]) for b in run(path, in_core=True)["blocks"])
    for select in ({"filter": FILTERS[0]}, {"filter": "not port 18080"}, _middle_third(path)):
        kept = sum(len(b["uid"]) for b in run(path, in_core=True, select=select)["blocks"])
        assert 0 < kept < whole, select


# --- several files: merged in time order by the core (crates/core/src/capture/merge.rs) -----


def _rotated(tmp_path: Path, name: str, parts: int) -> list[Path]:
    """``captures/name`` cut into ``parts`` files of consecutive frames, as tcpdump -C
    writes them, named so that they sort in the wrong order."""
    from portlens.sources.files import open_capture
    from portlens.sources.merge import _concat
    from portlens.sources.writer import PcapWriter

    with open_capture(REPO / "captures" / name) as reader:
        linktype = reader.interfaces[0].linktype
        whole = _concat([b for b in reader if len(b)])
    size = -(-len(whole) // parts)
    out = []
    for k in range(parts):
        path = tmp_path / f"{parts - k:02d}-{name}"
        writer = PcapWriter(path, linktype)
        writer.write_batch(whole.take(slice(k * size, (k + 1) * size)))
        writer.close()
        out.append(path)
    return out


def _own(*names: str) -> list[Path]:
    return [REPO / "captures" / n for n in names]


def _backwards(tmp_path: Path) -> list[Path]:
    """A file whose time runs back three times (its records written four times over) beside
    one of the same times: the merge orders by each file's running maximum, not by time."""
    source = (REPO / "captures" / "scenario-loss-reorder.pcap").read_bytes()
    path = tmp_path / "again-and-again.pcap"
    path.write_bytes(source[:24] + source[24:] * 4)
    return [path, *_own("scenario-loss-reorder.pcap", "scenario-keepalive.pcap")]


SETS: dict[str, Any] = {
    "rotated": lambda tmp: _rotated(tmp, "scenario-loss-reorder.pcap", 4),
    "rotated-sample": lambda tmp: _rotated(tmp, "loopback-sample.pcap", 3),
    "overlapping": lambda tmp: _own("tcp-session.pcap", "loopback-sample.pcap",
                                    "scenario-ipv6.pcap", "fragments.pcap"),
    "same-file-twice": lambda tmp: _own("scenario-half-close.pcap") * 2,
    "time-running-back": _backwards,
    "link-types": lambda tmp: _own("link-ethernet.pcap", "link-sll.pcap", "link-raw101.pcap",
                                   "link-unknown.pcap", "pcapng-multi.pcapng"),
    "the-captures-folder": lambda tmp: [REPO / "captures"],
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_several_files_equal_the_general_path(tmp_path: Path, name: str) -> None:
    """Several files read as one capture, merged in time order by the core: the same
    connections, as columns and as objects, the same FileStats of every file, problems and
    warnings, also with small chunks (files interleaving inside a batch), two workers and
    checksums verified."""
    files = SETS[name](tmp_path)
    source: Any = files[0] if len(files) == 1 else files
    seen = assert_same(source)
    assert len(seen["files"]) > 1 and sum(f[0]["frames"] for f in seen["files"]) > 0
    assert_same(source, chunk=4096, workers=2, checksums=True)
    assert_same(source, objects=True)


def test_several_files_with_a_cut_and_a_missing_one(tmp_path: Path) -> None:
    """A damaged file among others: its problem is said after its good frames, and the
    others are read all the same, as by the general path."""
    whole = (REPO / "captures" / "tcp-session.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 30])
    seen = assert_same([cut, REPO / "captures" / "loopback-sample.pcap",
                        tmp_path / "nothing-here.pcap"])
    assert len(seen["errors"]) == 2
    alone = run(REPO / "captures" / "loopback-sample.pcap", in_core=True)["files"][0][0]
    assert [f[0]["frames"] for f in seen["files"]] == [9, alone["frames"], 0]


def _stats(source: Any, *, in_core: bool) -> dict[str, Any]:
    """``count_stats`` (`packets --stats`) of ``source``, by name: the core's merge and counts
    (``_scan_files``), or, with files followed one by one (``on_file_done``), the general
    path's."""
    from portlens.analysis.capture_stats import CaptureStats

    stats = CaptureStats()
    progress: list[tuple[int, int]] = []
    pipeline = Pipeline(Source.of(source), Options(),
                        progress=lambda a, b: progress.append((a, b)),
                        on_file_done=None if in_core else lambda fs: None)
    scanned: list[bool] = []
    real = pipeline._scan_files

    def spy(*args: Any) -> None:
        scanned.append(True)
        real(*args)

    pipeline._scan_files = spy  # type: ignore[method-assign]
    pipeline.count_stats(stats)
    assert bool(scanned) == in_core, "the run did not take the path asked for"
    return {"stats": stats, "errors": pipeline.errors, "warnings": pipeline.warnings,
            "files": [(fs.record(), fs.frames_cut, fs.first_backwards_frame)
                      for fs in pipeline.files],
            "not_decoded": pipeline.not_decoded, "fragments": pipeline.fragment_counters,
            "progress_end": progress[-1:]}


@pytest.mark.parametrize("name", sorted(SETS))
def test_several_files_counted_as_the_general_path_counts_them(tmp_path: Path,
                                                                name: str) -> None:
    """`packets --stats` of several files read whole: merged, decoded and counted by the
    core, every figure (the summary, each file's row, problems, warnings) as the general
    path's."""
    files = SETS[name](tmp_path)
    source: Any = files[0] if len(files) == 1 else files
    general, core = _stats(source, in_core=False), _stats(source, in_core=True)
    for key in general:
        assert core[key] == general[key], key
    assert general["stats"].frames > 0


def test_several_files_counted_with_a_cut_and_a_missing_one(tmp_path: Path) -> None:
    whole = (REPO / "captures" / "tcp-session.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 30])
    source = [cut, REPO / "captures" / "loopback-sample.pcap", tmp_path / "nothing-here.pcap"]
    general, core = _stats(source, in_core=False), _stats(source, in_core=True)
    for key in general:
        assert core[key] == general[key], key
    assert len(general["errors"]) == 2
