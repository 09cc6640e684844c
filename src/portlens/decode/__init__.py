"""FrameBatch -> PacketBatch: link layers, IPv4/IPv6, tunnels, TCP/UDP/ICMP headers.

``Decoder`` is the entry point: it runs the compiled decoder (portlens._core, which also
reassembles fragments, keeping state across batches) or, with ``reference=True``, the
per-packet Python reference decoder and its reassembler (portlens.reference). Nothing here
knows about connections.

Checksums are verified only when the caller asks (``checksums=True``, the default); otherwise
``ip_csum`` and ``l4_csum`` are CSUM_NONE in every row. docs/decoding.md (*Checksums*) says who
asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portlens.decode.packets import PacketBatch
    from portlens.sources.frames import FrameBatch


def __getattr__(name: str) -> Any:
    """PacketBatch, imported when first asked for: importing a module of the package (the
    malformed reasons, the tunnel names) runs this file, and must not import numpy with it
    (`packets --stats` of one file counts in the compiled core and needs none)."""
    if name == "PacketBatch":
        from portlens.decode.packets import PacketBatch

        return PacketBatch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Decoder:
    """Decodes successive batches of one source (fragments may span batches)."""

    def __init__(self, *, reference: bool = False, checksums: bool = True) -> None:
        self.reference = reference
        self.checksums = checksums
        from portlens.decode.rust import RustDecoder

        self.engine = None if reference else RustDecoder()
        if reference:
            from portlens.reference.fragments import Reassembler

            self.reassembler = Reassembler()
            """The reference path's reassembler (the compiled one keeps its own)."""

    def decode(self, frames: FrameBatch) -> PacketBatch:
        if self.engine is not None:
            return self.engine.decode(frames, checksums=self.checksums)
        from portlens.reference.decode import decode_reference

        batch, fragments = decode_reference(frames)
        if fragments:
            self.reassembler.apply(batch, fragments)
        if not self.checksums:
            batch.ip_csum[:] = 0
            batch.l4_csum[:] = 0
        return batch

    @property
    def fragment_counters(self) -> dict[str, int]:
        """Datagrams reassembled and dropped so far (docs/decoding.md, *Fragments*)."""
        if self.engine is not None:
            return self.engine.fragment_counters
        r = self.reassembler
        return {"completed": r.completed, "expired": r.expired, "evicted": r.evicted,
                "held_datagrams": len(r.pending)}


def decode_capture(path: str | Path, *, reference: bool = False, checksums: bool = True,
                   chunk_bytes: int = 8 << 20,
                   progress: Callable[[int, int], None] | None = None
                   ) -> Iterator[PacketBatch]:
    """Decode a capture file batch by batch (``checksums``: verify them, see Decoder).

    A file cut mid-record yields everything before the cut, then raises CaptureError.
    ``progress(bytes_read, total_bytes)`` is called after each batch (file bytes, so a gzip
    file's progress is its compressed size).
    """
    from portlens.sources.files import open_capture

    decoder = Decoder(reference=reference, checksums=checksums)
    with open_capture(path, chunk_bytes=chunk_bytes) as reader:
        for frames in reader:
            if progress is not None:
                progress(reader.bytes_read, reader.total_bytes)
            yield decoder.decode(frames)


__all__ = ["Decoder", "PacketBatch", "decode_capture"]
