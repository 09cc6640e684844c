"""The Python capture file reader: the reference the compiled readers are tested against.

``open_capture(path, reference=True)`` (portlens.sources.files) reads with
:class:`ReferenceCaptureReader`, over the walkers of reference/pcap.py and reference/pcapng.py;
tests/test_rust_readers.py holds the two readers to the same batches and the same messages.
The rules of reading (chunks, carried records, messages) are documented in
portlens.sources.files.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from typing import Final, Literal, NamedTuple, Protocol

import numpy as np

from portlens.reference.pcap import FILE_HEADER_LEN, HeaderError, PcapWalker, Walk
from portlens.reference.pcap import is_pcap as _is_pcap
from portlens.reference.pcapng import SHB_MAGIC, PcapngWalker
from portlens.sources.closing import Closing
from portlens.sources.files import DEFAULT_CHUNK_BYTES, MIN_CHUNK_BYTES, CaptureError
from portlens.sources.frames import FrameBatch, InterfaceInfo

__all__ = ["ReferenceCaptureReader"]


def _gunzip(f: io.BufferedReader) -> io.BufferedIOBase:
    return gzip.GzipFile(fileobj=f, mode="rb")


_DECOMPRESSORS: Final[
    tuple[tuple[bytes, str, Callable[[io.BufferedReader], io.BufferedIOBase]], ...]
] = (
    (b"\x1f\x8b", "gzip", _gunzip),
    (b"\xfd7zXZ\x00", "xz", lzma.LZMAFile),
    (b"BZh", "bzip2", bz2.BZ2File),
)
"""Leading bytes of a compressed file -> its name and a reader of the uncompressed stream."""

_UNSUPPORTED: Final = ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"))

_READ_ERRORS: Final = (OSError, EOFError, zlib.error, lzma.LZMAError)


class _Resume(NamedTuple):
    """Where iteration starts, after open_capture read the file header."""

    buf: memoryview
    pos: int
    base: int
    eof: bool


class _Walker(Protocol):
    interfaces: list[InterfaceInfo]

    def walk(self, buf: memoryview, pos: int, base: int, at_end: bool) -> Walk: ...


class ReferenceCaptureReader(Closing):
    """An open capture file: iterate it for FrameBatches, in file order.

    Frame numbers are 1-based and continue across batches. ``bytes_read`` counts bytes of the
    file itself (compressed bytes for a compressed file, including the decompressor's
    read-ahead), so ``bytes_read / total_bytes`` is a progress fraction either way. Byte
    offsets in error messages are positions in the (uncompressed) capture stream.
    """

    path: str
    format: Literal["pcap", "pcapng"]
    compression: str | None
    """"gzip", "xz", "bzip2" or None."""
    interfaces: list[InterfaceInfo]
    """Known interfaces; pcapng files may declare more as reading goes on."""
    frames_read: int
    bytes_read: int
    total_bytes: int
    """Size of the file (0 when it is not a regular file)."""
    frames_cut = 0
    """The reference readers keep every frame whole: the frame cap (FRAME_CAP_BYTES) is the
    Rust readers' bound on memory, and the one rule where the two differ."""

    def __init__(
        self, path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> None:
        self.path = os.fsdecode(path)
        self.compression = None
        self.frames_read = 0
        self.bytes_read = 0
        self.total_bytes = 0
        self._chunk = max(int(chunk_bytes), MIN_CHUNK_BYTES)
        self._uncompressed = 0
        self._error: str | None = None
        self._closed = False
        try:
            self._file: io.BufferedReader = open(self.path, "rb")  # noqa: SIM115 - see close()
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CaptureError(f"{self.path}: cannot open: {reason}") from None
        self._stream: io.BufferedIOBase = self._file
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        self._batches = self._read()

    @property
    def compressed(self) -> bool:
        return self.compression is not None

    @property
    def skipped_blocks(self) -> dict[int, int]:
        """pcapng blocks skipped (neither section, interface nor packet), by block type."""
        return dict(self._walker.skipped) if isinstance(self._walker, PcapngWalker) else {}

    # -- public ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[FrameBatch]:
        return self._batches

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        batches = getattr(self, "_batches", None)
        if batches is not None:
            batches.close()
        for f in (self._stream, self._file):
            with contextlib.suppress(*_READ_ERRORS):
                f.close()

    # -- opening ---------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            st = os.fstat(self._file.fileno())
            if stat.S_ISREG(st.st_mode):
                self.total_bytes = st.st_size
        except (OSError, io.UnsupportedOperation):
            pass
        lead = self._peek(8)
        for magic, name, reader in _DECOMPRESSORS:
            if lead.startswith(magic):
                self.compression = name
                self._stream = reader(self._file)
                break

        buf, eof = self._fill(memoryview(b""), 0)
        if self._error is not None and not buf:
            raise CaptureError(f"{self.path}: {self._error}")
        head = bytes(buf[:4])
        if head == SHB_MAGIC:
            self.format = "pcapng"
            self._walker: _Walker = self._prime_pcapng(buf, eof)
        elif _is_pcap(head):
            self.format = "pcap"
            self._walker = self._open_pcap(buf, eof)
        else:
            raise CaptureError(f"{self.path}: {self._not_a_capture(head, lead)}")
        self.interfaces = self._walker.interfaces

    def _open_pcap(self, buf: memoryview, eof: bool) -> PcapWalker:
        if len(buf) < FILE_HEADER_LEN:
            if self._error is not None:
                raise CaptureError(f"{self.path}: {self._error}")
            raise CaptureError(
                f"{self.path}: cut off inside the pcap file header "
                f"({len(buf)} of {FILE_HEADER_LEN} bytes)"
            )
        try:
            walker = PcapWalker(buf)
        except HeaderError as exc:
            raise CaptureError(f"{self.path}: {exc}") from None
        self._resume = _Resume(buf, FILE_HEADER_LEN, 0, eof)
        return walker

    def _prime_pcapng(self, buf: memoryview, eof: bool) -> PcapngWalker:
        """Read blocks up to the first packet, so that ``interfaces`` is known before iterating.

        Problems found here (a damaged section header, say) are raised by open_capture.
        """
        walker = PcapngWalker()
        pos = base = 0
        while True:
            w = walker.walk(buf, pos, base, eof and self._error is None, headers_only=True)
            if w.problem is not None:
                raise CaptureError(f"{self.path}: {w.problem}")
            at_packet = w.need == 0 and w.consumed < len(buf)
            if at_packet or eof:
                break
            base += w.consumed
            buf, eof = self._fill(buf[w.consumed :], w.need)
            pos = 0
        if not walker.sections:
            if self._error is not None:
                raise CaptureError(f"{self.path}: {self._error}")
            raise CaptureError(f"{self.path}: cut off inside the pcapng section header block")
        self._resume = _Resume(buf, w.consumed, base, eof)
        return walker

    def _not_a_capture(self, head: bytes, lead: bytes) -> str:
        if not lead:
            return "empty file, not a pcap or pcapng file"
        for magic, name in _UNSUPPORTED:
            if lead.startswith(magic):
                return f"{name}-compressed; decompress it first (starts with {magic.hex(' ')})"
        if self.compression:
            what = f"{self.compression}-compressed, uncompressed data "
            return f"not a pcap or pcapng file ({what}starts with {head.hex(' ') or 'nothing'})"
        return f"not a pcap or pcapng file (starts with {head.hex(' ')})"

    # -- reading ---------------------------------------------------------------------------------

    def _read(self) -> Iterator[FrameBatch]:
        buf, pos, base, eof = self._resume
        del self._resume
        walker = self._walker
        while True:
            w = walker.walk(buf, pos, base, eof and self._error is None)
            if w.batch is not None:
                self.frames_read += len(w.batch)
                yield w.batch
            if w.problem is not None:
                raise CaptureError(self._stopped(w.problem))
            if eof:
                if self._error is not None:
                    raise CaptureError(self._stopped(self._error))
                return
            base += w.consumed
            buf, eof = self._fill(buf[w.consumed :], w.need)
            pos = 0

    def _stopped(self, what: str) -> str:
        n = self.frames_read
        return f"{self.path}: {what} ({n} packet{'' if n == 1 else 's'} read)"

    def _fill(self, rest: memoryview, need: int) -> tuple[memoryview, bool]:
        """A new chunk: ``rest`` then as much of the file as a chunk holds, or ``need`` bytes.

        Returns the chunk and whether the end of the stream was reached. Chunks are fresh
        uninitialised numpy buffers (batches keep pointing into old ones). A ``need`` larger
        than a chunk is read in doubling steps, so a damaged length field costs only as much
        memory as the file actually has left.
        """
        have = len(rest)
        want = max(need, have + self._chunk)
        arr = np.empty(have + self._chunk, dtype=np.uint8)
        arr[:have] = rest
        got = self._read_into(arr.data[have:])
        eof = got < self._chunk
        size = have + got
        while not eof and size < want:
            step = min(want - size, size)
            grown = np.empty(size + step, dtype=np.uint8)
            grown[:size] = arr[:size]
            arr = grown
            got = self._read_into(arr.data[size:])
            eof = got < step
            size += got
        self.bytes_read = self._position()
        return arr.data[:size], eof

    def _read_into(self, mv: memoryview) -> int:
        """Fill ``mv`` from the stream; on a read error keep what came before it.

        ``readinto1`` makes at most one read of the underlying stream, so when a decompressor
        fails (bad CRC, garbage after the last member) the data it delivered before is counted
        and its frames are still yielded.
        """
        size = len(mv)
        total = 0
        while total < size:
            try:
                got = self._stream.readinto1(mv[total:])
            except _READ_ERRORS as exc:
                self._error = self._read_error(exc, self._uncompressed + total)
                break
            if not got:
                break
            total += got
        self._uncompressed += total
        return int(total)

    def _read_error(self, exc: BaseException, at: int) -> str:
        detail = str(exc) or type(exc).__name__
        if self.compression is None:
            return f"read error at byte {at}: {detail}"
        if isinstance(exc, EOFError):
            return f"{self.compression} stream cut off after {at} uncompressed bytes"
        return f"corrupt {self.compression} stream after {at} uncompressed bytes: {detail}"

    def _peek(self, n: int) -> bytes:
        peek = getattr(self._file, "peek", None)
        try:
            if peek is not None:
                return bytes(peek(n)[:n])
        except _READ_ERRORS as exc:
            raise CaptureError(f"{self.path}: {self._read_error(exc, 0)}") from None
        return b""

    def _position(self) -> int:
        try:
            return int(self._file.tell())
        except (OSError, ValueError):
            return self._uncompressed
