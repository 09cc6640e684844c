"""The two steps the compiled core replaces: decoding frames and tracking packets.

Everything that reads packets gets its decoder from ``new_decoder`` and its tracker from
``new_tracker``: the Rust ones by default, the Python reference implementations with
``reference=True`` (for differential tests and cross-checking), chosen here and nowhere else. The
protocols say what the rest of the pipeline relies on: a decoder keeps state across the
batches of one stream (IP fragments); a tracker takes packet batches in capture order and
hands back connections as they end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from portlens.decode import Decoder as PythonDecoder
from portlens.track.config import TrackerConfig

if TYPE_CHECKING:  # a run of the core's reader and tracker never makes them (nor imports NumPy)
    import numpy as np

    from portlens.decode.packets import PacketBatch
    from portlens.sources.frames import FrameBatch
    from portlens.track.model import Connection, Transition


class Decoder(Protocol):
    """FrameBatch -> PacketBatch, row for row (row i of the result is frame i)."""

    def decode(self, frames: FrameBatch) -> PacketBatch: ...

    @property
    def fragment_counters(self) -> dict[str, int]:
        """What the fragment reassembler dropped and completed so far."""


class Tracker(Protocol):
    """PacketBatch -> Connections, in capture order."""

    not_counted: Counter[str]
    evicted: int

    def feed(self, batch: PacketBatch) -> Iterable[Connection]: ...

    def advance(self, ts_ns: int) -> Iterable[Connection]: ...

    def finish(self) -> Iterable[Connection]: ...

    def open_connections(self, limit: int | None = None) -> list[Connection]: ...

    def created_frames(self) -> np.ndarray:
        """A shard's tracker: first frames of the connections created since the last call."""


def new_decoder(*, reference: bool = False, checksums: bool = True) -> Decoder:
    """The decoder of one stream: the compiled one, or with ``reference`` the per-packet
    Python reference; ``checksums`` False leaves them unverified (CSUM_NONE), which saves
    the pass over every payload byte when nothing reads them."""
    return PythonDecoder(reference=reference, checksums=checksums)


def new_tracker(config: TrackerConfig | None = None,
                on_transition: Callable[[Transition], None] | None = None, *,
                reference: bool = False) -> Tracker:
    """The tracker of one stream (or of one shard of it: ``config.shard``): the compiled one,
    or with ``reference`` the Python reference tracker (the oracle of the differential
    tests; ``config.fast_paths`` and ``segment_marks`` choose its paths)."""
    if reference:  # imported here: a run on the core does not load the reference's modules
        from portlens.track.tracker import Tracker as PythonTracker

        return PythonTracker(config, on_transition=on_transition)
    from portlens.track.rust import RustTracker

    return RustTracker(config, on_transition=on_transition)
