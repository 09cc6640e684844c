"""The Python entry points behind the command line: read captures into decoded batches.

    >>> from portlens import api
    >>> for batch in api.packets(["captures/http.pcap"]):
    ...     print(len(batch), batch.sport[:5])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from portlens.analysis.capture_stats import CaptureStats
from portlens.analysis.combined import Analysis
from portlens.analysis.ports import PortTable
from portlens.decode import decode_capture
from portlens.decode.packets import PacketBatch
from portlens.filter import compile_filter
from portlens.track.tracker import Tracker, TrackerConfig


def packets(paths: Iterable[str | Path], *, reference: bool = False,
            checksums: bool = True) -> Iterator[PacketBatch]:
    """Decoded batches of every file in turn (raises sources.files.CaptureError on bad input,
    after yielding what was read before the problem). ``checksums=False`` skips verifying
    them: ip_csum / l4_csum are then CSUM_NONE."""
    for path in paths:
        yield from decode_capture(path, reference=reference, checksums=checksums)


def capture_stats(paths: Iterable[str | Path]) -> CaptureStats:
    """The `packets --stats` summary of files, as an object."""
    stats = CaptureStats()
    for batch in packets(paths):
        stats.add(batch)
    return stats


def analyze(paths: Iterable[str | Path] | str | Path, *, filter: str | None = None,
            config: TrackerConfig | None = None, all_ports: bool = False) -> Analysis:
    """Track the files as one stream and summarize: connections, ports, handshakes, sockets
    and the transition events, like the `conns`, `ports`, `handshakes`, `sockets` and `events`
    commands. ``filter`` is a tcpdump-syntax expression, as `-f` (raises FilterError).

        >>> result = api.analyze(["captures/tcp-session.pcap"])
        >>> result.ports.get("tcp", 80).outcomes
        Counter({'completed': 1})
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    selector = compile_filter(filter or "")
    result = Analysis(ports=PortTable(all_ports=all_ports))
    tracker = Tracker(config, on_transition=result.events.append)
    # The tracker reads checksums only to drop bad ones (docs/decoding.md, *Checksums*).
    for batch in packets(paths, checksums=tracker.config.drop_bad_checksums):
        for c in tracker.feed(selector.select(batch)):
            result.add(c)
    for c in tracker.finish():
        result.add(c)
    return result
