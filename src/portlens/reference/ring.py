"""The numpy reference of the TPACKET_V3 block walk: what ``_core.RingWalker`` must equal.

This is the ring reader's former per-batch path (portlens.sources.live kept it until the walk
moved to crates/core/src/ring.rs): copy the blocks into one buffer, walk each packet chain in
Python, read every header field with numpy gathers, build SLL headers in place and rebuild
the frames whose VLAN tag the kernel stripped one at a time. The rules are those of
portlens.sources.live; tests/test_ring.py feeds the same crafted blocks to both and compares
every column and message.

The frames lie where the blocks put them (the compiled walk lays them back to back), so the
two agree on the frames, not on ``data`` and ``offset``.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt

from portlens.sources.frames import FrameBatch
from portlens.sources.live import (
    ETH_P_8021Q,
    PACKET_OUTGOING,
    SLL_ADDR,
    SLL_HALEN,
    SLL_HATYPE,
    SLL_HDR_LEN,
    SLL_IFINDEX,
    SLL_PKTTYPE,
    SLL_PROTOCOL,
    TP3_LEN,
    TP3_MAC,
    TP3_NSEC,
    TP3_SEC,
    TP3_SLL_END,
    TP3_SNAPLEN,
    TP3_STATUS,
    TP3_VLAN_TCI,
    TP3_VLAN_TPID,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    VLAN_TAG_LEN,
    LiveCaptureError,
)

_BLOCK_FIELDS: Final = struct.Struct("<III")
"""num_pkts, offset_to_first_pkt, blk_len (at byte 12 of a block)."""


def _vlan_insert(frame: bytes, at: int, tpid: int, tci: int) -> bytes:
    return frame[:at] + struct.pack("!HH", tpid, tci & 0xFFFF) + frame[at:]


def ring_frames(
    blocks: list[npt.NDArray[np.uint8]],
    *,
    snaplen: int,
    cooked: bool,
    linktype: int,
    lo_ifindex: int | None,
) -> tuple[FrameBatch | None, int]:
    """The frames of ``blocks`` (whole ring blocks, in ring order) and the outgoing loopback
    copies left out; None when no frame is left. Damage raises LiveCaptureError."""
    taken = []
    for block in blocks:
        npkts, first, blen = _BLOCK_FIELDS.unpack_from(block.data, 12)
        blen = min(blen, block.size)
        if npkts > blen // TP3_SLL_END:
            raise LiveCaptureError(
                f"corrupt TPACKET_V3 block: {npkts} packets cannot fit in its {blen} bytes"
            )
        taken.append((block, npkts, first, blen))
    sizes = [(blen + 15) & ~15 for _, _, _, blen in taken]
    buf = np.empty(sum(sizes) + 16, dtype=np.uint8)
    pos = 0
    placed: list[tuple[int, int, int, int]] = []  # (buffer offset, n, first, length)
    for (block, npkts, first, blen), size in zip(taken, sizes, strict=True):
        buf[pos : pos + blen] = block[:blen]
        placed.append((pos, npkts, first, blen))
        pos += size
    return _frames(buf, placed, snaplen=snaplen, cooked=cooked, linktype=linktype,
                   lo_ifindex=lo_ifindex)


def _frames(
    buf: npt.NDArray[np.uint8],
    placed: list[tuple[int, int, int, int]],
    *,
    snaplen: int,
    cooked: bool,
    linktype: int,
    lo_ifindex: int | None,
) -> tuple[FrameBatch | None, int]:
    words = memoryview(buf).cast("I")  # type: ignore[arg-type]
    offs: list[int] = []
    append = offs.append
    for pos, npkts, first, blen in placed:
        o = pos + first
        end = pos + blen
        for _ in range(npkts):
            if o + TP3_SLL_END > end:
                raise LiveCaptureError(
                    f"corrupt TPACKET_V3 block: packet header at {o - pos} past its end {blen}"
                )
            append(o)
            o += words[o >> 2]  # tp_next_offset
    # Which block each packet is in, for the check that its data ends inside it.
    block_end = np.repeat(np.asarray([pos + blen for pos, _, _, blen in placed], dtype=np.int64),
                          [npkts for _, npkts, _, _ in placed])
    words.release()
    if not offs:
        return None, 0
    h = np.asarray(offs, dtype=np.int64)
    u32 = buf[: buf.size & ~3].view("<u4")
    u16 = buf[: buf.size & ~1].view("<u2")
    w = h >> 2
    hw = h >> 1
    sec = u32[w + TP3_SEC // 4].astype(np.int64)
    nsec = u32[w + TP3_NSEC // 4].astype(np.int64)
    snap = u32[w + TP3_SNAPLEN // 4].astype(np.int64)
    wire = u32[w + TP3_LEN // 4].astype(np.int64)
    status = u32[w + TP3_STATUS // 4]
    mac = u16[hw + TP3_MAC // 2].astype(np.int64)
    tci = u32[w + TP3_VLAN_TCI // 4]
    ifindex = u32[w + SLL_IFINDEX // 4].view(np.int32)
    pkttype = buf[h + SLL_PKTTYPE]

    duplicates = 0
    keep: npt.NDArray[np.bool_] | None = None
    if lo_ifindex is not None:
        dup = (pkttype == PACKET_OUTGOING) & (ifindex == lo_ifindex)
        if dup.any():
            duplicates = int(dup.sum())
            keep = ~dup

    start = h + mac
    if (start + snap > block_end).any():
        raise LiveCaptureError("corrupt TPACKET_V3 packet: data past the end of its block")
    if cooked:
        if (mac < TP3_SLL_END + SLL_HDR_LEN).any():
            raise LiveCaptureError("kernel left no room for the SLL header in the ring")
        start = start - SLL_HDR_LEN
        sll = np.zeros((h.size, SLL_HDR_LEN), dtype=np.uint8)
        sll[:, 1] = pkttype
        sll[:, 2] = buf[h + SLL_HATYPE + 1]
        sll[:, 3] = buf[h + SLL_HATYPE]
        halen = np.minimum(buf[h + SLL_HALEN], 8)
        sll[:, 5] = halen
        addr = buf[(h + SLL_ADDR)[:, None] + np.arange(8)]
        addr[np.arange(8)[None, :] >= halen[:, None]] = 0
        sll[:, 6:14] = addr
        sll[:, 14] = buf[h + SLL_PROTOCOL]
        sll[:, 15] = buf[h + SLL_PROTOCOL + 1]
        buf[start[:, None] + np.arange(SLL_HDR_LEN)] = sll
        snap = snap + SLL_HDR_LEN
        wire = wire + SLL_HDR_LEN

    vlan = (tci != 0) | ((status & TP_STATUS_VLAN_VALID) != 0)
    if vlan.any():
        batch = _with_vlan_tags(buf, h, start, snap, wire, sec, nsec, vlan, keep,
                                snaplen=snaplen, cooked=cooked, linktype=linktype)
        return batch, duplicates

    ts = sec * 1_000_000_000 + nsec
    caplen = np.minimum(snap, snaplen)
    batch = FrameBatch(
        data=buf,
        offset=start,
        caplen=caplen.astype(np.uint32),
        wirelen=wire.astype(np.uint32),
        ts_ns=ts,
        linktype=np.full(h.size, linktype, dtype=np.uint16),
        interface=np.zeros(h.size, dtype=np.uint16),
        frame=np.zeros(h.size, dtype=np.int64),
    )
    if keep is not None:
        batch = batch.take(np.flatnonzero(keep))
    return (batch if len(batch) else None), duplicates


def _with_vlan_tags(
    buf: npt.NDArray[np.uint8],
    h: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    snap: npt.NDArray[np.int64],
    wire: npt.NDArray[np.int64],
    sec: npt.NDArray[np.int64],
    nsec: npt.NDArray[np.int64],
    vlan: npt.NDArray[np.bool_],
    keep: npt.NDArray[np.bool_] | None,
    *,
    snaplen: int,
    cooked: bool,
    linktype: int,
) -> FrameBatch | None:
    """Frames whose 802.1Q tag the kernel took off: rebuild each one."""
    at = SLL_HDR_LEN - 2 if cooked else 12
    u16 = buf[: buf.size & ~1].view("<u2")
    u32 = buf[: buf.size & ~3].view("<u4")
    frames: list[bytes] = []
    ts: list[int] = []
    wl: list[int] = []
    for i in range(h.size):
        if keep is not None and not keep[i]:
            continue
        s, n = int(start[i]), int(snap[i])
        frame = buf[s : s + n].tobytes()
        wlen = int(wire[i])
        if vlan[i] and n >= at:
            hi = int(h[i])
            st = int(u32[(hi + TP3_STATUS) >> 2])
            tpid = int(u16[(hi + TP3_VLAN_TPID) >> 1])
            if not tpid and not st & TP_STATUS_VLAN_TPID_VALID:
                tpid = ETH_P_8021Q
            frame = _vlan_insert(frame, at, tpid, int(u32[(hi + TP3_VLAN_TCI) >> 2]))
            wlen += VLAN_TAG_LEN
        frames.append(frame[:snaplen])
        ts.append(int(sec[i]) * 1_000_000_000 + int(nsec[i]))
        wl.append(wlen)
    if not frames:
        return None
    return FrameBatch.from_frames(frames, ts, linktype=linktype, wirelen=wl)
