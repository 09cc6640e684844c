"""Capture files: recognise the format by content, read in chunks, yield FrameBatches.

``open_capture`` reads with the compiled readers of ``portlens._core`` (crates/core/src/capture);
the Python readers (:class:`portlens.reference.files.ReferenceCaptureReader`, with
reference/pcap.py and reference/pcapng.py) are the reference they are tested against, column
for column and message for message (tests/test_rust_readers.py), reached with
``open_capture(path, reference=True)``.

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

import importlib
import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Final, Literal, Protocol

from portlens.sources.closing import Closing

if TYPE_CHECKING:  # imported where frames are read: a file the core decodes needs no NumPy
    from portlens.sources.frames import I64, U8, U16, U32, FrameBatch, InterfaceInfo

__all__ = [
    "CaptureError",
    "CaptureReader",
    "open_capture",
]

DEFAULT_CHUNK_BYTES: Final = 8 << 20
MIN_CHUNK_BYTES: Final = 64


class CaptureError(Exception):
    """A capture file that cannot be read (any further), in one line a user can act on.

    The message starts with the file name and, when reading stopped part way, says what was
    wrong, where, and how many packets were read before it.
    """


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


def open_capture(
    path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, reference: bool = False
) -> CaptureReader:
    """Open a pcap or pcapng file (plain or compressed) for reading in FrameBatches.

    ``reference=True`` reads with the pure-Python readers (the oracle of the tests) instead of
    the compiled ones; both give the same batches and the same errors. Raises CaptureError at
    once when the file cannot be opened or is not a capture.
    """
    if reference:
        from portlens.reference.files import ReferenceCaptureReader

        return ReferenceCaptureReader(path, chunk_bytes=chunk_bytes)  # type: ignore[return-value]
    return CaptureReader(path, chunk_bytes=chunk_bytes)


class CaptureReader(Closing):
    """An open capture file read by the compiled readers: iterate it for FrameBatches.

    The same interface and behaviour as
    :class:`portlens.reference.files.ReferenceCaptureReader` (see there); the batches'
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
            from portlens.sources.frames import InterfaceInfo

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
        from portlens.sources.frames import FrameBatch

        core = self._core
        while True:
            try:
                columns = next(core)
            except StopIteration:
                return
            except core_error as exc:
                raise CaptureError(str(exc)) from None
            yield FrameBatch(*columns)
