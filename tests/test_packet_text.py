"""`portlens packets`' lines and JSON objects written by the core (report/packets.py `lines`,
`records`; crates/core/src/packet_text.rs) equal the reference's (`line`, `record`), byte
for byte, on every capture the project has, in every time style, across batches."""

from __future__ import annotations

import json
from pathlib import Path

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
    with pytest.raises(ValueError, match="column wirelen has another length"):
        core.packet_records(short, names)
