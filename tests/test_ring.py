"""The compiled TPACKET_V3 walk (_core.RingWalker) against its numpy reference, on crafted
blocks; and the ring reader's block hand-over and buffer reuse, on a ring in plain memory.

No socket and no privilege needed: the blocks are laid out here as the kernel lays them.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from portlens import _core
from portlens.reference.ring import ring_frames as reference_frames
from portlens.sources import linktypes
from portlens.sources.frames import FrameBatch
from portlens.sources.live import (
    PACKET_OUTGOING,
    TP3_SLL_END,
    TP_STATUS_KERNEL,
    TP_STATUS_LOSING,
    TP_STATUS_USER,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    LiveCaptureError,
    _BufferPool,
    _RingReader,
)

LO = 1
WALKER = _core.RingWalker()
"""One walker for every test: its packet list is reused from call to call, as in a capture."""


@dataclass
class Pkt:
    data: bytes
    wire: int | None = None
    sec: int = 1_700_000_000
    nsec: int = 5
    status: int = TP_STATUS_USER
    tci: int = 0
    tpid: int = 0
    ifindex: int = 2
    pkttype: int = 0
    hatype: int = 1
    halen: int = 6
    addr: bytes = b"\x01\x02\x03\x04\x05\x06\xee\xff"
    protocol: bytes = b"\x08\x00"
    gap: int = 16
    extra: dict[str, int] = field(default_factory=dict)


def block(pkts: list[Pkt], size: int, status: int = TP_STATUS_USER) -> bytearray:
    """A block as the kernel writes it: 48-byte header, packets at 16-byte boundaries."""
    b = bytearray(size)
    struct.pack_into("<IIII", b, 8, status, len(pkts), 48, 0)
    at = 48
    for i, p in enumerate(pkts):
        mac = TP3_SLL_END + p.gap
        nxt = (mac + len(p.data) + 15) & ~15
        wire = len(p.data) if p.wire is None else p.wire
        struct.pack_into("<IIIIIIHHIHH", b, at, nxt if i + 1 < len(pkts) else 0, p.sec, p.nsec,
                         len(p.data), wire, p.status, mac, 0, p.tci, p.tpid, 0)
        struct.pack_into("<H2siHBB8s", b, at + 48, 17, p.protocol, p.ifindex, p.hatype,
                         p.pkttype, p.halen, p.addr)
        b[at + mac : at + mac + len(p.data)] = p.data
        at += nxt
    struct.pack_into("<I", b, 20, at)
    return b


def compiled(blocks: list[bytearray], *, snaplen: int, cooked: bool, lo: int | None,
             out: npt.NDArray[np.uint8] | None = None) -> tuple[FrameBatch | None, int]:
    views = [np.frombuffer(b, dtype=np.uint8) for b in blocks]
    try:
        data, used, offset, caplen, wirelen, ts, dups = WALKER.frames(views, snaplen, cooked,
                                                                          lo, out)
    except _core.RingError as exc:
        raise LiveCaptureError(str(exc)) from None
    if not len(offset):
        return None, dups
    if data is None:
        assert out is not None
        data = out[:used]
    assert data.size == used
    n = len(offset)
    return FrameBatch(data=data, offset=offset, caplen=caplen, wirelen=wirelen, ts_ns=ts,
                      linktype=np.full(n, linktypes.LINUX_SLL if cooked else 1, np.uint16),
                      interface=np.zeros(n, np.uint16), frame=np.zeros(n, np.int64)), dups


def reference(blocks: list[bytearray], *, snaplen: int, cooked: bool, lo: int | None
              ) -> tuple[FrameBatch | None, int]:
    return reference_frames([np.frombuffer(bytes(b), dtype=np.uint8) for b in blocks],
                            snaplen=snaplen, cooked=cooked,
                            linktype=linktypes.LINUX_SLL if cooked else 1, lo_ifindex=lo)


def columns(batch: FrameBatch | None) -> dict[str, list[object]]:
    if batch is None:
        return {}
    return {
        "frames": [batch.frame_bytes(i) for i in range(len(batch))],
        "caplen": batch.caplen.tolist(), "wirelen": batch.wirelen.tolist(),
        "ts_ns": batch.ts_ns.tolist(), "linktype": batch.linktype.tolist(),
        "interface": batch.interface.tolist(),
    }


def outcome(fn, blocks: list[bytearray], **kw: object) -> object:  # type: ignore[no-untyped-def]
    try:
        batch, dups = fn(blocks, **kw)
    except LiveCaptureError as exc:
        return ("error", str(exc))
    return columns(batch), dups


def random_pkt(rng: random.Random, cooked: bool) -> Pkt:
    n = rng.choice([0, 1, 11, 12, 13, 14, 20, 60, 64, 200, 1514, rng.randrange(1, 3000)])
    p = Pkt(bytes(rng.randrange(256) for _ in range(n)))
    p.wire = n + rng.choice([0, 0, 0, 1, 1000])
    p.sec, p.nsec = rng.randrange(2**32), rng.randrange(10**9)
    if rng.random() < 0.3:
        p.tci = rng.choice([0, 1, 0x0FFF, 0xFFFF])
        p.status |= rng.choice([0, TP_STATUS_VLAN_VALID,
                                TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID])
        p.tpid = rng.choice([0, 0x8100, 0x88A8])
    p.pkttype = rng.choice([0, 0, 1, 3, PACKET_OUTGOING])
    p.ifindex = rng.choice([LO, 2, -1])
    p.halen = rng.choice([0, 4, 6, 8, 9, 255])
    p.hatype = rng.randrange(2**16)
    p.addr = bytes(rng.randrange(256) for _ in range(8))
    p.protocol = bytes(rng.randrange(256) for _ in range(2))
    p.gap = rng.choice([16, 32]) if cooked else rng.choice([0, 2, 16])
    return p


def random_blocks(rng: random.Random, cooked: bool) -> list[bytearray]:
    blocks = []
    for _ in range(rng.randrange(1, 4)):
        pkts: list[Pkt] = []
        room = 16384 - 48
        for _ in range(rng.randrange(0, 30)):
            p = random_pkt(rng, cooked)
            need = (TP3_SLL_END + p.gap + len(p.data) + 15) & ~15
            if need > room:
                break
            pkts.append(p)
            room -= need
        blocks.append(block(pkts, 16384))
    return blocks


@pytest.mark.parametrize("seed", range(40))
def test_random_blocks_same_frames_as_reference(seed: int) -> None:
    rng = random.Random(seed)
    cooked = seed % 2 == 1
    blocks = random_blocks(rng, cooked)
    kw = {"snaplen": rng.choice([262144, 1514, 64, 14, 13, 1]), "cooked": cooked,
          "lo": rng.choice([None, LO])}
    want = outcome(reference, blocks, **kw)
    assert not isinstance(want, tuple) or want[0] != "error"
    assert outcome(compiled, blocks, **kw) == want


@pytest.mark.parametrize("seed", range(40))
def test_damaged_blocks_same_message_as_reference(seed: int) -> None:
    rng = random.Random(1000 + seed)
    cooked = seed % 2 == 1
    blocks = random_blocks(rng, cooked)
    target = rng.choice(blocks)
    npkts, first = struct.unpack_from("<II", target, 12)
    heads = [first]
    for _ in range(npkts - 1):
        heads.append(heads[-1] + struct.unpack_from("<I", target, heads[-1])[0])
    what = rng.choice(["next", "first", "snap", "mac", "npkts", "blk_len"])
    if what == "next" and npkts > 1:
        struct.pack_into("<I", target, rng.choice(heads[:-1]), rng.choice([16000, 2**31]))
    elif what == "first":
        struct.pack_into("<I", target, 16, rng.choice([16384 - 67, 16384, 2**32 - 1]))
    elif what == "snap" and npkts:
        struct.pack_into("<I", target, rng.choice(heads) + 12, rng.choice([16384, 2**32 - 1]))
    elif what == "mac" and npkts:
        struct.pack_into("<H", target, rng.choice(heads) + 24, rng.choice([0, 8, 70, 65535]))
    elif what == "npkts":
        struct.pack_into("<I", target, 12, rng.choice([npkts + 1, 1000, 2**32 - 1]))
    else:
        struct.pack_into("<I", target, 20, rng.choice([0, 100, 2**32 - 1]))
    kw = {"snaplen": 262144, "cooked": cooked, "lo": None}
    assert outcome(compiled, blocks, **kw) == outcome(reference, blocks, **kw)


def test_messages_of_damage() -> None:
    b = block([Pkt(b"x" * 60), Pkt(b"y" * 60)], 1024)
    struct.pack_into("<I", b, 48, 5000)
    with pytest.raises(LiveCaptureError, match=r"^corrupt TPACKET_V3 block: packet header at "
                       r"5048 past its end 336$"):
        compiled([b], snaplen=1000, cooked=False, lo=None)
    b = block([Pkt(b"x" * 60)], 1024)
    struct.pack_into("<I", b, 48 + 12, 2000)
    with pytest.raises(LiveCaptureError, match=r"^corrupt TPACKET_V3 packet: data past the end "
                       r"of its block$"):
        compiled([b], snaplen=1000, cooked=False, lo=None)
    with pytest.raises(LiveCaptureError, match=r"^kernel left no room for the SLL header"):
        compiled([block([Pkt(b"x", gap=0)], 1024)], snaplen=1000, cooked=True, lo=None)


def test_frames_go_into_the_given_buffer_when_they_fit() -> None:
    blocks = [block([Pkt(b"a" * 100), Pkt(b"b" * 50)], 4096)]
    out = np.zeros(150, dtype=np.uint8)
    batch, _ = compiled(blocks, snaplen=1000, cooked=False, lo=None, out=out)
    assert batch is not None and batch.data.base is out
    assert out.tobytes() == b"a" * 100 + b"b" * 50
    small = np.zeros(149, dtype=np.uint8)
    batch, _ = compiled(blocks, snaplen=1000, cooked=False, lo=None, out=small)
    assert batch is not None and batch.data.base is not small and not small.any()
    assert columns(batch)["frames"] == [b"a" * 100, b"b" * 50]


def test_pool_hands_out_a_buffer_again_only_when_nothing_refers_to_it() -> None:
    pool = _BufferPool(64, keep=2)
    a = pool.take()
    assert a is not None
    view = a[:10]  # a batch's data: a view of the buffer
    del a
    b = pool.take()
    assert b is not None and b is not view.base
    del b
    c = pool.take()
    assert c is pool._buffers[2]  # free again
    mv = memoryview(c)  # read in place by someone
    del c
    assert pool.take() is None  # both in use: the caller allocates
    del view
    assert pool.take() is pool._buffers[1]
    mv.release()
    assert pool.take() is pool._buffers[1]
    del mv
    assert pool.take() is pool._buffers[1]


def fake_reader(blocks: list[bytearray], *, cooked: bool = False, keep: int = 2) -> _RingReader:
    """A ring reader over a ring in plain memory (what the mapping would hold)."""
    reader = object.__new__(_RingReader)
    bs = len(blocks[0])
    mm = bytearray(b"".join(blocks))
    reader.sock = None
    reader.mm = mm
    reader.ring = np.frombuffer(mm, dtype=np.uint8)
    reader.block_size, reader.block_count = bs, len(blocks)
    reader.snaplen, reader.cooked, reader.linktype = 262144, cooked, 1
    reader.lo_ifindex, reader.losing_blocks, reader.current, reader.duplicates = LO, 0, 0, 0
    reader._core = _core
    reader._walker = _core.RingWalker()
    reader.pool = _BufferPool(8 * bs, keep)
    return reader


def test_reader_gives_blocks_back_counts_and_never_overwrites_a_held_batch() -> None:
    out_lo = Pkt(b"dup" * 20, pkttype=PACKET_OUTGOING, ifindex=LO)
    blocks = [block([Pkt(b"a" * 60), out_lo], 1024),
              block([Pkt(b"b" * 70)], 1024, status=TP_STATUS_USER | TP_STATUS_LOSING),
              block([Pkt(b"c" * 80)], 1024, status=TP_STATUS_KERNEL)]
    reader = fake_reader(blocks)
    first = reader.read()
    assert first is not None and columns(first)["frames"] == [b"a" * 60, b"b" * 70]
    assert (reader.duplicates, reader.losing_blocks, reader.current) == (1, 1, 2)
    mm = reader.mm
    assert [struct.unpack_from("<I", mm, i * 1024 + 8)[0] for i in range(3)] == [0, 0, 0]
    assert reader.read() is None
    # The kernel fills blocks 2 and 0 again: the held batch keeps its bytes.
    for i, fill in ((2, b"d"), (0, b"e")):
        mm[i * 1024 : (i + 1) * 1024] = block([Pkt(fill * 90)], 1024)
    second = reader.read()
    assert second is not None and columns(second)["frames"] == [b"d" * 90, b"e" * 90]
    assert columns(first)["frames"] == [b"a" * 60, b"b" * 70]
    assert first.data.base is not second.data.base
    held = id(first.data.base)  # an id: a reference would keep the buffer in use
    del first
    mm[1024:2048] = block([Pkt(b"f" * 10)], 1024)
    third = reader.read()
    assert third is not None and id(third.data.base) == held  # reused once released
    assert columns(third)["frames"] == [b"f" * 10]


def test_reader_gives_damaged_blocks_back_and_says_why() -> None:
    bad = block([Pkt(b"a" * 60)], 1024)
    struct.pack_into("<I", bad, 48 + 12, 5000)
    reader = fake_reader([bad, block([], 1024, status=TP_STATUS_KERNEL)])
    with pytest.raises(LiveCaptureError, match="data past the end of its block"):
        reader.read()
    assert struct.unpack_from("<I", reader.mm, 8)[0] == TP_STATUS_KERNEL
