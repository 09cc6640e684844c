"""Writers of classic pcap and pcapng, for live capture (``-w``) and for crafting test captures.

Records are assembled in memory and handed to the operating system whole, in one ``write`` per
flush, so that a reader of the file sees only complete records even while the writer is still
running, and after it is killed (whatever was flushed before stays readable). The header is
flushed at once: an empty capture is a valid file from the start.

Files are created with mode 0600: captures hold other people's traffic.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from typing import BinaryIO, Final

import numpy as np

from portlens.sources.closing import Closing
from portlens.sources.frames import FrameBatch

DEFAULT_SNAPLEN: Final = 262144
DEFAULT_BUFFER_BYTES: Final = 1 << 16
NS_PER_S: Final = 1_000_000_000
U32_MAX: Final = 0xFFFFFFFF

_PCAP_MAGIC_US: Final = 0xA1B2C3D4
_PCAP_MAGIC_NS: Final = 0xA1B23C4D
_PCAP_HEADER: Final = struct.Struct("<IHHiIII")
_PCAP_RECORD: Final = struct.Struct("<IIII")

_SHB: Final = 0x0A0D0D0A
_IDB: Final = 1
_EPB: Final = 6
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_SHB_USERAPPL: Final = 4
_IF_NAME: Final = 2
_IF_TSRESOL: Final = 9
_EPB_HEADER: Final = struct.Struct("<IIIIIII")
"""type, total length, interface, ts high, ts low, captured length, original length."""

Bytes = bytes | bytearray | memoryview
Target = str | os.PathLike[str] | BinaryIO


class _Writer(Closing):
    """Buffering of whole records, the file, and the context-manager plumbing."""

    def __init__(self, target: Target, buffer_bytes: int) -> None:
        self._pending = bytearray()
        self._buffer_bytes = buffer_bytes
        self._fd: int | None = None
        self._fh: BinaryIO | None = None
        self.frames_written = 0
        if isinstance(target, (str, os.PathLike)):
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
            fd = os.open(target, flags, 0o600)
            try:
                # O_CREAT's mode only applies to a new file: tighten an existing one too.
                if hasattr(os, "fchmod") and stat.S_ISREG(os.fstat(fd).st_mode):
                    os.fchmod(fd, 0o600)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        else:
            self._fh = target

    def flush(self) -> None:
        """Hand every complete record written so far to the operating system.

        A regular file that refuses part of them (a full disk, a size limit) is cut back to
        where this flush began, so it still ends with a complete record; the error is raised.
        """
        data, self._pending = self._pending, bytearray()
        if not data:
            return
        if self._fd is not None:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                self._cut_back(len(data) - len(view))
                raise
        elif self._fh is not None:
            self._fh.write(data)
            self._fh.flush()

    def _cut_back(self, written: int) -> None:
        """Drop the ``written`` bytes of a failed flush from the end of a regular file."""
        assert self._fd is not None
        with contextlib.suppress(OSError):
            if written and stat.S_ISREG(os.fstat(self._fd).st_mode):
                end = os.lseek(self._fd, 0, os.SEEK_CUR)
                os.ftruncate(self._fd, end - written)
                os.lseek(self._fd, end - written, os.SEEK_SET)

    def close(self) -> None:
        if self._fd is None and self._fh is None:
            return
        try:
            self.flush()
        finally:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None
            self._fh = None

    def _check_open(self) -> None:
        if self._fd is None and self._fh is None:
            raise ValueError("write to a closed capture writer")

    def _emitted(self) -> None:
        if len(self._pending) >= self._buffer_bytes:
            self.flush()


def _check_ts(ts_ns: int) -> None:
    if not 0 <= ts_ns < 1 << 64:
        raise ValueError(f"timestamp {ts_ns} ns is before 1970 or too large for a capture file")


class PcapWriter(_Writer):
    """Classic pcap, little-endian, nanosecond (default) or microsecond timestamps.

    Frames longer than ``snaplen`` are cut to it; ``wirelen`` (default: the frame's length)
    keeps the original length.
    """

    def __init__(
        self,
        path: Target,
        linktype: int,
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = True,
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        if not 0 <= linktype <= U32_MAX or not 0 <= snaplen <= U32_MAX:
            raise ValueError("linktype and snaplen must fit in 32 bits")
        super().__init__(path, buffer_bytes)
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self._frac_div = 1 if nanosecond else 1000
        magic = _PCAP_MAGIC_NS if nanosecond else _PCAP_MAGIC_US
        self._pending += _PCAP_HEADER.pack(magic, 2, 4, 0, 0, snaplen, linktype)
        self.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def write(self, ts_ns: int, data: Bytes, wirelen: int | None = None) -> None:
        self._check_open()
        sec, frac = divmod(ts_ns, NS_PER_S)
        if not 0 <= sec <= U32_MAX:
            raise ValueError(f"timestamp {ts_ns} ns does not fit in a pcap file")
        caplen = min(len(data), self.snaplen)
        wire = len(data) if wirelen is None else wirelen
        if not 0 <= wire <= U32_MAX:
            raise ValueError(f"wirelen {wire} does not fit in 32 bits")
        self._pending += _PCAP_RECORD.pack(sec, frac // self._frac_div, caplen, wire)
        self._pending += memoryview(data)[:caplen]
        self.frames_written += 1
        self._emitted()

    def write_batch(self, batch: FrameBatch) -> None:
        """Write every frame of ``batch`` (their link type must be the file's)."""
        self._check_open()
        k = len(batch)
        if not k:
            return
        if (batch.linktype != (self.linktype & 0xFFFF)).any():
            raise ValueError(f"batch has frames of another link type than {self.linktype}")
        ts = batch.ts_ns.astype(np.int64)
        sec = ts // NS_PER_S
        if (sec < 0).any() or (sec > U32_MAX).any():
            raise ValueError("batch has timestamps that do not fit in a pcap file")
        caplen = np.minimum(batch.caplen, np.uint32(min(self.snaplen, U32_MAX)))
        headers = np.empty((k, 4), dtype="<u4")
        headers[:, 0] = sec
        headers[:, 1] = (ts - sec * NS_PER_S) // self._frac_div
        headers[:, 2] = caplen
        headers[:, 3] = batch.wirelen
        _append_records(self._pending, headers, batch, caplen)
        self.frames_written += k
        self._emitted()


class PcapngWriter(_Writer):
    """pcapng: one section, little-endian, interfaces with nanosecond timestamps, EPBs.

    Give ``linktype`` to declare interface 0 at once, or call :meth:`add_interface` for each
    interface (ids 0, 1, ...) before writing its frames.
    """

    def __init__(
        self,
        path: Target,
        linktype: int | None = None,
        *,
        name: str | None = None,
        snaplen: int = DEFAULT_SNAPLEN,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        application: str = "portlens",
    ) -> None:
        super().__init__(path, buffer_bytes)
        self._snaplens: list[int] = []
        self._linktypes: list[int] = []
        body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)
        body += _option(_SHB_USERAPPL, application.encode()) + _option(0, b"")
        self._pending += _block(_SHB, body)
        if linktype is not None:
            self.add_interface(linktype, name=name, snaplen=snaplen)
        self.flush()

    def __enter__(self) -> PcapngWriter:
        return self

    def add_interface(
        self, linktype: int, name: str | None = None, snaplen: int = DEFAULT_SNAPLEN
    ) -> int:
        """Declare an interface (if_tsresol 10**-9) and return its id."""
        self._check_open()
        if not 0 <= linktype <= 0xFFFF or not 0 <= snaplen <= U32_MAX:
            raise ValueError("pcapng link types are 16 bits and snaplen 32 bits")
        options = b""
        if name is not None:
            options += _option(_IF_NAME, name.encode())
        options += _option(_IF_TSRESOL, bytes([9])) + _option(0, b"")
        self._pending += _block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + options)
        self._linktypes.append(linktype)
        self._snaplens.append(snaplen)
        self._emitted()
        return len(self._linktypes) - 1

    def write(
        self, ts_ns: int, data: Bytes, wirelen: int | None = None, interface: int = 0
    ) -> None:
        self._check_open()
        if not 0 <= interface < len(self._linktypes):
            raise ValueError(f"interface {interface} was not added to this pcapng file")
        _check_ts(ts_ns)
        snaplen = self._snaplens[interface] or U32_MAX
        caplen = min(len(data), snaplen)
        wire = len(data) if wirelen is None else wirelen
        if not 0 <= wire <= U32_MAX:
            raise ValueError(f"wirelen {wire} does not fit in 32 bits")
        pad = -caplen % 4
        total = _EPB_HEADER.size + caplen + pad + 4
        self._pending += _EPB_HEADER.pack(
            _EPB, total, interface, ts_ns >> 32, ts_ns & U32_MAX, caplen, wire
        )
        self._pending += memoryview(data)[:caplen]
        self._pending += bytes(pad) + total.to_bytes(4, "little")
        self.frames_written += 1
        self._emitted()

    def write_batch(self, batch: FrameBatch) -> None:
        """Write every frame of ``batch`` on the interface its ``interface`` column names."""
        self._check_open()
        k = len(batch)
        if not k:
            return
        interface = batch.interface.astype(np.int64)
        if (interface >= len(self._linktypes)).any():
            raise ValueError("batch has frames on interfaces not added to this pcapng file")
        linktypes = np.asarray(self._linktypes, dtype=np.uint16)
        if (linktypes[interface] != batch.linktype).any():
            raise ValueError("batch has frames whose link type is not their interface's")
        ts = batch.ts_ns.astype(np.int64)
        if (ts < 0).any():
            raise ValueError("batch has timestamps before 1970")
        snaplens = np.asarray([s or U32_MAX for s in self._snaplens], dtype=np.uint32)
        caplen = np.minimum(batch.caplen, snaplens[interface])
        total = _EPB_HEADER.size + caplen.astype(np.int64) + (-caplen.astype(np.int64) % 4) + 4
        headers = np.empty((k, 7), dtype="<u4")
        headers[:, 0] = _EPB
        headers[:, 1] = total
        headers[:, 2] = interface
        headers[:, 3] = ts >> 32
        headers[:, 4] = ts & U32_MAX
        headers[:, 5] = caplen
        headers[:, 6] = batch.wirelen
        trailers = [
            bytes(-c % 4) + t.to_bytes(4, "little")
            for c, t in zip(caplen.tolist(), total.tolist(), strict=True)
        ]
        _append_records(self._pending, headers, batch, caplen, trailers)
        self.frames_written += k
        self._emitted()


def _append_records(
    out: bytearray,
    headers: np.ndarray[tuple[int, int], np.dtype[np.uint32]],
    batch: FrameBatch,
    caplen: np.ndarray[tuple[int], np.dtype[np.uint32]],
    trailers: list[bytes] | None = None,
) -> None:
    """Append header i, frame i's first caplen[i] bytes (and trailer i) for every frame."""
    width = headers.shape[1] * 4
    head = memoryview(headers.tobytes())
    data = np.ascontiguousarray(batch.data, dtype=np.uint8).data
    for i, (start, length) in enumerate(zip(batch.offset.tolist(), caplen.tolist(), strict=True)):
        out += head[i * width : (i + 1) * width]
        out += data[start : start + length]
        if trailers is not None:
            out += trailers[i]


def _block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = len(body) + 12
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)
