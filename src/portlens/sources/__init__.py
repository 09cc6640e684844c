"""Where frames come from: capture files (pcap, pcapng, gzip of either), live sockets, writers.

Every source yields FrameBatch (sources/frames.py). Nothing here decodes beyond the record
framing: link types are passed through per frame for the decoder.
"""

from typing import TYPE_CHECKING, Any

from portlens.sources.files import CaptureError, CaptureReader, InterfaceInfo, open_capture
from portlens.sources.frames import FrameBatch
from portlens.sources.writer import PcapngWriter, PcapWriter

if TYPE_CHECKING:
    from portlens.sources.live import LiveCapture, LiveCaptureError, drop_privileges

_LIVE = ("LiveCapture", "LiveCaptureError", "drop_privileges")


def __getattr__(name: str) -> Any:
    """The live-capture names, imported when first asked for: reading a file never needs
    sources.live (and its socket, BPF and interface modules), a third of a run's imports."""
    if name in _LIVE:
        from portlens.sources import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CaptureError",
    "CaptureReader",
    "FrameBatch",
    "InterfaceInfo",
    "LiveCapture",
    "LiveCaptureError",
    "PcapWriter",
    "PcapngWriter",
    "drop_privileges",
    "open_capture",
]
