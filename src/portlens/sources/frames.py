"""The contract between sources and the decoder: FrameBatch.

A batch is one contiguous byte buffer plus one numpy array per frame attribute. Readers hand
the decoder slices of the buffer they already hold (a chunk of a file, a block of the kernel
ring) so that no frame is copied on its way to the decoder, and the decoder can gather any
header field of every frame in one numpy call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """Frames as columns over one buffer.

    Frame *i* is ``data[offset[i] : offset[i] + caplen[i]]``. Frames need not be adjacent or in
    buffer order (record headers sit between them in a file chunk); they are in capture order.
    Timestamps are integer nanoseconds since the Unix epoch, converted exactly from the file's
    resolution: a float never sees them.
    """

    data: U8
    """The bytes the frames live in (1-D, uint8). May hold record headers between frames."""
    offset: I64
    """Start of each frame in ``data``."""
    caplen: U32
    """Bytes captured (present in ``data``)."""
    wirelen: U32
    """Bytes on the wire (the frame's original length); caplen < wirelen: snaplen cut it."""
    ts_ns: I64
    """Capture time, int64 nanoseconds since the epoch."""
    linktype: U16
    """LINKTYPE_* of each frame (pcapng: the link type of the frame's interface)."""
    interface: U16
    """pcapng interface id (0 for classic pcap and live single-interface capture)."""
    frame: I64
    """1-based frame number within its source (file or live capture)."""

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    @classmethod
    def empty(cls) -> FrameBatch:
        return cls.from_frames([], [], linktype=1)

    @classmethod
    def from_frames(
        cls,
        frames: list[bytes],
        ts_ns: list[int],
        *,
        linktype: int | list[int],
        wirelen: list[int] | None = None,
        interface: list[int] | None = None,
        first_frame: int = 1,
    ) -> FrameBatch:
        """Build a batch from separate frames (tests, the reference path, live fallbacks)."""
        n = len(frames)
        lengths = np.fromiter((len(f) for f in frames), dtype=np.uint32, count=n)
        offsets = np.zeros(n, dtype=np.int64)
        if n:
            offsets[1:] = np.cumsum(lengths[:-1], dtype=np.int64)
        data = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
        lt = (
            np.full(n, linktype, dtype=np.uint16)
            if isinstance(linktype, int)
            else np.asarray(linktype, dtype=np.uint16)
        )
        return cls(
            data=data,
            offset=offsets,
            caplen=lengths,
            wirelen=lengths.copy() if wirelen is None else np.asarray(wirelen, dtype=np.uint32),
            ts_ns=np.asarray(ts_ns, dtype=np.int64).reshape(n),
            linktype=lt,
            interface=(
                np.zeros(n, dtype=np.uint16)
                if interface is None
                else np.asarray(interface, dtype=np.uint16)
            ),
            frame=np.arange(first_frame, first_frame + n, dtype=np.int64),
        )

    def frame_bytes(self, i: int) -> bytes:
        """The captured bytes of frame *i* (slow path: one frame at a time)."""
        start = int(self.offset[i])
        return self.data[start : start + int(self.caplen[i])].tobytes()

    def take(self, index: npt.NDArray[np.intp] | slice) -> FrameBatch:
        """A batch of a subset of the frames, sharing ``data``."""
        return FrameBatch(
            data=self.data,
            offset=self.offset[index],
            caplen=self.caplen[index],
            wirelen=self.wirelen[index],
            ts_ns=self.ts_ns[index],
            linktype=self.linktype[index],
            interface=self.interface[index],
            frame=self.frame[index],
        )


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """One capture interface: the whole file for classic pcap, one IDB for pcapng.

    ``id`` is the value of ``FrameBatch.interface`` for this interface's frames. pcapng numbers
    interfaces per section; here they are numbered across the file (the first section's are
    0..k-1, the next section's continue at k) so that one id means one interface.
    """

    id: int
    linktype: int
    snaplen: int
    name: str | None = None
    description: str | None = None
    ticks_per_second: int = 1_000_000
    """Timestamp resolution as a tick rate: 10**6 for pcap-µs, 10**9 for pcap-ns, 10**n or 2**n
    from pcapng's ``if_tsresol``."""
    tsoffset_s: int = 0
    """pcapng ``if_tsoffset``: seconds added to every timestamp of the interface."""
    fcs_len: int | None = None
    """Bytes of frame check sequence at the end of each frame, when the file says so."""
    section: int = 0
    """pcapng section (0-based) the interface belongs to."""
