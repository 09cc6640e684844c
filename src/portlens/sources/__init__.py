"""Where frames come from: capture files (pcap, pcapng, gzip of either), live sockets, writers.

Every source yields FrameBatch (sources/frames.py). Nothing here decodes beyond the record
framing: link types are passed through per frame for the decoder.
"""

from portlens.sources.files import CaptureError, CaptureReader, InterfaceInfo, open_capture
from portlens.sources.frames import FrameBatch
from portlens.sources.live import LiveCapture, LiveCaptureError, drop_privileges
from portlens.sources.writer import PcapngWriter, PcapWriter

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
