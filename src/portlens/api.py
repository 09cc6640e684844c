"""The Python entry points behind the command line: read captures into decoded batches.

    >>> from portlens import api
    >>> for batch in api.packets(["captures/http.pcap"]):
    ...     print(len(batch), batch.sport[:5])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from portlens.analysis.capture_stats import CaptureStats
from portlens.decode import decode_capture
from portlens.decode.packets import PacketBatch


def packets(paths: Iterable[str | Path], *, reference: bool = False) -> Iterator[PacketBatch]:
    """Decoded batches of every file in turn (raises sources.files.CaptureError on bad input,
    after yielding what was read before the problem)."""
    for path in paths:
        yield from decode_capture(path, reference=reference)


def capture_stats(paths: Iterable[str | Path]) -> CaptureStats:
    """The `packets --stats` summary of files, as an object."""
    stats = CaptureStats()
    for batch in packets(paths):
        stats.add(batch)
    return stats
