"""FrameBatch -> PacketBatch: link layers, IPv4/IPv6, tunnels, TCP/UDP/ICMP headers.

``Decoder`` is the entry point: it runs the fast columnar decoder (or, for tests, the
per-packet reference decoder) and the fragment reassembler, which keeps state across batches.
Nothing here knows about connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from portlens.decode.fast import decode_fast
from portlens.decode.fragments import Reassembler
from portlens.decode.packets import PacketBatch
from portlens.sources.frames import FrameBatch


class Decoder:
    """Decodes successive batches of one source (fragments may span batches)."""

    def __init__(self, *, reference: bool = False) -> None:
        self.reference = reference
        self.reassembler = Reassembler()

    def decode(self, frames: FrameBatch) -> PacketBatch:
        if self.reference:
            from portlens.decode.reference import decode_reference

            batch, fragments = decode_reference(frames)
        else:
            batch, fragments = decode_fast(frames)
        if fragments:
            self.reassembler.apply(batch, fragments)
        return batch


def decode_capture(path: str | Path, *, reference: bool = False, chunk_bytes: int = 8 << 20,
                   progress: Callable[[int, int], None] | None = None
                   ) -> Iterator[PacketBatch]:
    """Decode a capture file batch by batch.

    A file cut mid-record yields everything before the cut, then raises CaptureError.
    ``progress(bytes_read, total_bytes)`` is called after each batch (file bytes, so a gzip
    file's progress is its compressed size).
    """
    from portlens.sources.files import open_capture

    decoder = Decoder(reference=reference)
    with open_capture(path, chunk_bytes=chunk_bytes) as reader:
        for frames in reader:
            if progress is not None:
                progress(reader.bytes_read, reader.total_bytes)
            yield decoder.decode(frames)


__all__ = ["Decoder", "PacketBatch", "decode_capture"]


def first_packets(batches: Iterator[PacketBatch], count: int) -> Iterator[PacketBatch]:
    """The first ``count`` packets of a stream of batches (tcpdump's -c on a file); the
    stream is closed as soon as they are out, so no more of the file is read."""
    left = count
    try:
        for batch in batches:
            if len(batch) >= left:
                yield batch.take(slice(0, left))
                return
            left -= len(batch)
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
