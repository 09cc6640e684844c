"""Capture files: recognise the format by content, read in chunks, yield FrameBatches.

``open_capture`` reads with the compiled readers of ``portlens._core`` (crates/core/src/capture);
the Python readers below (:class:`ReferenceCaptureReader`, with pcap.py and pcapng.py) are the
reference they are tested against, column for column and message for message
(tests/test_rust_readers.py), reached with ``open_capture(path, reference=True)``.

``open_capture`` looks at the first bytes, never at the file name: a gzip (or xz, bzip2) of a
pcap or pcapng file is read through the matching decompressor, whatever it is called.

Reading is chunked so that memory stays bounded on any file: each chunk is a fresh buffer that
the batch's ``data`` points into (no frame is copied), and the partial record at the end of a
chunk is carried to the start of the next one. A record larger than a chunk makes that one read
larger; lengths past ``MAX_RECORD_BYTES`` are treated as damage.

Every problem with the input comes out as :class:`CaptureError`, and only after the frames
read before it: a cut or damaged file still gives all its good packets first.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import importlib
import io
import lzma
import os
import stat
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import Final, Literal, NamedTuple, Protocol

import numpy as np

from portlens.sources.closing import Closing
from portlens.sources.frames import I64, U8, U16, U32, FrameBatch
from portlens.sources.pcap import FILE_HEADER_LEN, HeaderError, InterfaceInfo, PcapWalker, Walk
from portlens.sources.pcap import is_pcap as _is_pcap
from portlens.sources.pcapng import SHB_MAGIC, PcapngWalker

__all__ = [
    "CaptureError",
    "CaptureReader",
    "InterfaceInfo",
    "ReferenceCaptureReader",
    "open_capture",
]

DEFAULT_CHUNK_BYTES: Final = 8 << 20
MIN_CHUNK_BYTES: Final = 64


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


class CaptureError(Exception):
    """A capture file that cannot be read (any further), in one line a user can act on.

    The message starts with the file name and, when reading stopped part way, says what was
    wrong, where, and how many packets were read before it.
    """


class _Resume(NamedTuple):
    """Where iteration starts, after open_capture read the file header."""

    buf: memoryview
    pos: int
    base: int
    eof: bool


class _CoreReader(Protocol):
    """portlens._core.CaptureReader (crates/py/src/capture.rs)."""

    format: str
    compression: str | None
    frames_read: int
    frames_cut: int
    bytes_read: int
    total_bytes: int
    interface_count: int

    def interfaces(
        self, start: int = 0
    ) -> list[tuple[int, int, int, str | None, str | None, int, int, int | None, int]]: ...
    def skipped_blocks(self) -> dict[int, int]: ...
    def close(self) -> None: ...
    def __next__(self) -> tuple[U8, I64, U32, U32, I64, U16, U16, I64]: ...


class _Walker(Protocol):
    interfaces: list[InterfaceInfo]

    def walk(self, buf: memoryview, pos: int, base: int, at_end: bool) -> Walk: ...


def open_capture(
    path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, reference: bool = False
) -> CaptureReader | ReferenceCaptureReader:
    """Open a pcap or pcapng file (plain or compressed) for reading in FrameBatches.

    ``reference=True`` reads with the pure-Python readers (the oracle of the tests) instead of
    the compiled ones; both give the same batches and the same errors. Raises CaptureError at
    once when the file cannot be opened or is not a capture.
    """
    if reference:
        return ReferenceCaptureReader(path, chunk_bytes=chunk_bytes)
    return CaptureReader(path, chunk_bytes=chunk_bytes)


class CaptureReader(Closing):
    """An open capture file read by the compiled readers: iterate it for FrameBatches.

    The same interface and behaviour as :class:`ReferenceCaptureReader` (see there); the batches'
    columns are NumPy arrays that own the buffers Rust filled, and the GIL is released while a
    chunk is read and walked.
    """

    path: str
    format: Literal["pcap", "pcapng"]
    compression: str | None
    total_bytes: int

    def __init__(
        self, path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
    ) -> None:
        _core = importlib.import_module("portlens._core")
        self.path = os.fsdecode(path)
        self._closed = False
        self._interfaces: list[InterfaceInfo] = []
        if "\0" in self.path:  # as open() says it, before the file system is asked
            raise CaptureError(f"{self.path}: cannot open: embedded null byte")
        try:
            self._core: _CoreReader = _core.CaptureReader(
                self.path, max(int(chunk_bytes), MIN_CHUNK_BYTES), self.path
            )
        except _core.CaptureError as exc:
            raise CaptureError(str(exc)) from None
        self.format = "pcapng" if self._core.format == "pcapng" else "pcap"
        self.compression = self._core.compression
        self.total_bytes = self._core.total_bytes
        self._batches = self._read(_core.CaptureError)

    @property
    def compressed(self) -> bool:
        return self.compression is not None

    @property
    def frames_read(self) -> int:
        return int(self._core.frames_read)

    @property
    def frames_cut(self) -> int:
        """Frames cut to the frame cap (256 KiB: crates/core/src/capture/mod.rs,
        FRAME_CAP_BYTES), their rest read past and never held."""
        return int(self._core.frames_cut)

    @property
    def bytes_read(self) -> int:
        return int(self._core.bytes_read)

    @property
    def interfaces(self) -> list[InterfaceInfo]:
        """Known interfaces; pcapng files may declare more as reading goes on."""
        if self._core.interface_count != len(self._interfaces):
            for (id_, linktype, snaplen, name, description, tsresol, tsoffset_s, fcs_len,
                 section) in self._core.interfaces(len(self._interfaces)):
                tps = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
                self._interfaces.append(InterfaceInfo(
                    id=id_, linktype=linktype, snaplen=snaplen, name=name,
                    description=description, ticks_per_second=tps, tsoffset_s=tsoffset_s,
                    fcs_len=fcs_len, section=section,
                ))
        return self._interfaces

    @property
    def skipped_blocks(self) -> dict[int, int]:
        """pcapng blocks skipped (neither section, interface nor packet), by block type."""
        return dict(self._core.skipped_blocks())

    def __iter__(self) -> Iterator[FrameBatch]:
        return self._batches

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._batches.close()
        self._core.close()

    def _read(self, core_error: type[Exception]) -> Generator[FrameBatch, None, None]:
        core = self._core
        while True:
            try:
                columns = next(core)
            except StopIteration:
                return
            except core_error as exc:
                raise CaptureError(str(exc)) from None
            yield FrameBatch(*columns)


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
