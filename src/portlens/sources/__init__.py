"""Where frames come from: capture files (pcap, pcapng, gzip of either), live sockets, writers.

Every source yields FrameBatch (sources/frames.py). Nothing here decodes beyond the record
framing: link types are passed through per frame for the decoder.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portlens.sources.files import CaptureError, CaptureReader, open_capture
    from portlens.sources.frames import FrameBatch, InterfaceInfo
    from portlens.sources.live import LiveCapture, LiveCaptureError, drop_privileges
    from portlens.sources.writer import PcapngWriter, PcapWriter

_HOME = {
    "CaptureError": "files", "CaptureReader": "files", "InterfaceInfo": "frames",
    "open_capture": "files", "FrameBatch": "frames", "PcapWriter": "writer",
    "PcapngWriter": "writer", "LiveCapture": "live", "LiveCaptureError": "live",
    "drop_privileges": "live",
}


def __getattr__(name: str) -> Any:
    """Every name imported when first asked for: importing a module of the package (the link
    types, say) runs this file, and must not import numpy, the readers and the writers with it
    (`packets --stats` needs none of them); reading a file never needs sources.live (and its
    socket, BPF and interface modules), a third of a run's imports."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"portlens.sources.{module}"), name)


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
