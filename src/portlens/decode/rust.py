"""The compiled decoder (``portlens._core.Decoder``, crates/core/src/decode) behind PacketBatch.

The frame arrays go to Rust without a copy (they are already contiguous arrays of the
FrameBatch dtypes), the GIL is released while it decodes, and every column comes back as a
NumPy array owning the Rust vector; the 2-D columns arrive flat and are reshaped here (a view).
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any

import numpy as np

from portlens.decode.packets import PacketBatch
from portlens.sources.frames import FrameBatch

_WIDTHS: tuple[tuple[str, int], ...] = tuple(
    (f.name, int(f.metadata["width"])) for f in fields(PacketBatch))


def _core_decoder(**limits: int) -> Any:
    try:
        core: Any = importlib.import_module("portlens._core")
    except ImportError as exc:  # a source tree whose Rust core was never compiled
        raise ImportError(
            "portlens._core (the compiled core) is missing: install with `pip install .`, "
            "which compiles it") from exc
    return core.Decoder(**limits)


class HeldBatch(PacketBatch):
    """The batch a ``portlens._core.DecodedFile`` holds (``hold``), read as a PacketBatch: each
    column comes over from the core when first read (``DecodedFile.column``, a copy), so a
    selection that reads four columns of seventy-five (`-f`, `--start`, `--end`:
    pipeline/select.py) makes four arrays, and the tracker then takes the rows it kept from
    the core (``Tracker.feed_held``)."""

    def __init__(self, file: Any) -> None:  # no column is set: each is fetched when read
        self._file = file

    def __getattr__(self, name: str) -> Any:
        got = None if name.startswith("_") else self._file.column(name)
        if got is None:
            raise AttributeError(name)
        width, column = got
        if width:
            column = column.reshape(-1, width)
        setattr(self, name, column)  # kept: read once
        return column


class RustDecoder:
    """Decodes successive batches of one source; the fragment state lives in Rust."""

    def __init__(self, *, fragment_timeout_ns: int | None = None,
                 max_datagrams: int | None = None, max_bytes: int | None = None) -> None:
        limits = {name: value for name, value in (
            ("fragment_timeout_ns", fragment_timeout_ns), ("max_datagrams", max_datagrams),
            ("max_bytes", max_bytes)) if value is not None}
        self._engine = _core_decoder(**limits)

    def decode(self, frames: FrameBatch, *, checksums: bool) -> PacketBatch:
        columns = self._engine.decode(
            np.ascontiguousarray(frames.data, dtype=np.uint8),
            np.ascontiguousarray(frames.offset, dtype=np.int64),
            np.ascontiguousarray(frames.caplen, dtype=np.uint32),
            np.ascontiguousarray(frames.wirelen, dtype=np.uint32),
            np.ascontiguousarray(frames.ts_ns, dtype=np.int64),
            np.ascontiguousarray(frames.linktype, dtype=np.uint16),
            np.ascontiguousarray(frames.interface, dtype=np.uint16),
            np.ascontiguousarray(frames.frame, dtype=np.int64),
            checksums=checksums,
        )
        n = len(columns["frame"])  # frames, and the more rows some give (column sub)
        batch = PacketBatch()
        for name, width in _WIDTHS:
            column = columns[name]
            setattr(batch, name, column.reshape(n, width) if width else column)
        return batch

    @property
    def fragment_counters(self) -> dict[str, int]:
        """completed, expired (timeout), evicted (datagram cap), evicted_bytes (byte cap),
        held_datagrams, held_bytes."""
        counters: dict[str, int] = self._engine.fragment_counters
        return counters
