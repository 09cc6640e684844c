"""`portlens packets`' lines and JSON objects written by the core (report/packets.py `lines`,
`records`, and `held_lines`, `held_records` of the batches the core decoded and holds;
crates/core/src/packet_text.rs) equal the reference's (`line`, `record`), byte for byte, on
every capture the project has, in every time style, across batches."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import portlens._core as core
import pytest

from portlens.decode.packets import PacketBatch
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.report import packets as report
from portlens.report.clock import STYLES, Clock
from tests.corpus import every_capture_params

SMALL_CHUNK = 4096
"""Bytes a chunk: several batches per capture, so a clock's first and previous times are
carried from one batch to the next."""
LOOPBACK = Path(__file__).resolve().parent.parent / "captures" / "loopback-sample.pcap"


def _batches(path: Path) -> list[PacketBatch]:
    options = Options(checksums=True, chunk_bytes=SMALL_CHUNK)  # as `packets` decodes
    return list(Pipeline(Source.of(str(path)), options).packets())


@pytest.mark.parametrize("path", every_capture_params())
def test_lines_and_records_equal_the_reference(path: Path) -> None:
    batches = _batches(path)
    for style in STYLES:
        for utc in (True, False):
            reference, fast = Clock(style, utc=utc), Clock(style, utc=utc)
            want = "".join(report.line(r, reference) + "\n"
                           for b in batches for r in report.iter_rows(b))
            got = "".join(report.lines(b, fast) for b in batches)
            assert got == want, (style, utc)
    want = "".join(json.dumps(report.record(r)) + "\n"
                   for b in batches for r in report.iter_rows(b))
    assert "".join(report.records(b) for b in batches) == want


@pytest.mark.parametrize("path", every_capture_params())
def test_held_batches_write_the_reference_text(path: Path) -> None:
    """The batches `portlens packets` of a file read whole takes where the core decoded them
    (``Pipeline.held``): every line and JSON object the reference writes of the general
    path's batches, in every style."""
    batches = _batches(path)
    for style, utc in (("time", False), ("date", True), ("delta", True), ("since", True),
                       ("epoch", True), ("none", True)):
        reference, fast = Clock(style, utc=utc), Clock(style, utc=utc)
        want = "".join(report.line(r, reference) + "\n"
                       for b in batches for r in report.iter_rows(b))
        got = _held_text(path, lambda f, rows, c=fast: report.held_lines(f, c, rows))
        assert got == want, style
    want = "".join(json.dumps(report.record(r)) + "\n"
                   for b in batches for r in report.iter_rows(b))
    assert _held_text(path, report.held_records) == want


def _held_text(path: Path, write: Any, **options: Any) -> str:
    pipeline = Pipeline(Source.of(str(path)), Options(checksums=True, chunk_bytes=SMALL_CHUNK,
                                                      **options))
    held = pipeline.held()
    assert held is not None, "a file read whole is held by the core"
    with contextlib.closing(held):
        return "".join(write(f, rows) for f, rows in held)


@pytest.mark.parametrize("path", every_capture_params())
def test_a_selection_of_held_batches_writes_the_reference_text(path: Path) -> None:
    """`packets -f ... --start ... --end ...` of a file read whole: the rows the selection
    keeps of the batches the core holds, as the general path's selected batches read."""
    everything = _batches(path)
    ts = np.concatenate([b.ts_ns for b in everything]) if everything else np.zeros(0, int)
    if not len(ts):
        return
    start, end = int(np.quantile(ts, 0.2)), int(np.quantile(ts, 0.9))
    for options in ({"start_ns": start, "end_ns": end}, {"filter": "tcp or icmp"}):
        pipeline = Pipeline(Source.of(str(path)), Options(checksums=True, chunk_bytes=SMALL_CHUNK,
                                                          **options))
        batches = list(pipeline.packets())
        clock = Clock("delta", utc=True)
        want = "".join(report.line(r, clock) + "\n"
                       for b in batches for r in report.iter_rows(b))
        fast = Clock("delta", utc=True)
        got = _held_text(path, lambda f, rows, c=fast: report.held_lines(f, c, rows), **options)
        assert got == want, options
        want = "".join(json.dumps(report.record(r)) + "\n"
                       for b in batches for r in report.iter_rows(b))
        assert _held_text(path, report.held_records, **options) == want, options


def test_a_count_or_a_file_written_reads_through_python() -> None:
    for options in (Options(count=3), Options(write="/dev/null")):
        assert Pipeline(Source.of(str(LOOPBACK)), options).held() is None


def test_a_batch_of_no_rows_writes_nothing() -> None:
    empty = _batches(LOOPBACK)[0].take(slice(0, 0))
    clock = Clock()
    assert report.lines(empty, clock) == ""
    assert report.records(empty) == ""
    assert clock.first_ns is None


def test_bad_input_is_a_value_error_not_a_crash() -> None:
    names = report._names()
    batch = _batches(LOOPBACK)[0]
    with pytest.raises(ValueError, match="unknown time style"):
        core.packet_lines(batch, names, "sundial", np.zeros(0, np.int64), [], None, None)
    with pytest.raises(ValueError, match="no text for the second"):
        core.packet_lines(batch, names, "time", np.zeros(0, np.int64), [], None, None)
    with pytest.raises(ValueError, match="proto: 256 names wanted, 3 given"):
        core.PacketNames(["a", "b", "c"], [], [], [], [], [])
    short = PacketBatch(**{name: getattr(batch, name) for name in batch.column_names()})
    short.wirelen = short.wirelen[:-1]
    with pytest.raises(ValueError, match=r"column wirelen has \d+ values, expected \d+ rows of 1"):
        core.packet_records(short, names)
