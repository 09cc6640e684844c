"""Bad input never raises in the decoder: random frames, every prefix, random corruptions.

Frames of real captures are cut and corrupted and fed through every link type; the decoder
must return a full batch (one row per frame), with reasons instead of exceptions. The same
frames go through the reference decoder where it exists, and both must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from portlens.decode import Decoder
from portlens.decode.fields import SUB_FRAME
from portlens.decode.malformed import Malformed
from portlens.decode.packets import PacketBatch
from portlens.sources import linktypes as lt
from portlens.sources.frames import FrameBatch
from tests.corpus import corpus_captures

ALL_LINKTYPES = [*sorted(lt.SUPPORTED), 147]


def corpus_frames(limit: int = 400) -> list[bytes]:
    """Frames of the Ethernet captures of the corpus (or a crafted few when it is absent)."""
    import dpkt

    frames: list[bytes] = []
    for path in corpus_captures():
        if path.suffix != ".pcap":
            continue
        with path.open("rb") as f:
            reader = dpkt.pcap.Reader(f)
            if reader.datalink() != 1:
                continue
            frames.extend(bytes(buf) for _, buf in reader)
    if not frames:
        from scapy.layers.inet import IP, TCP, UDP
        from scapy.layers.l2 import Ether

        frames = [bytes(Ether() / IP(dst="10.0.0.1") / TCP(options=[("MSS", 1460)])),
                  bytes(Ether() / IP(dst="10.0.0.1") / UDP() / (b"x" * 30))]
    rng = np.random.default_rng(7)
    idx = rng.choice(len(frames), size=min(limit, len(frames)), replace=False)
    return [frames[i] for i in sorted(idx)]


def decode_all_ways(frames: list[bytes], linktype: int) -> PacketBatch:
    """The compiled decoder and the reference: a full batch each, and the same malformed
    reasons (tests/test_rust_decoder.py compares every column)."""
    batch = FrameBatch.from_frames(frames, list(range(len(frames))), linktype=linktype)
    out = Decoder().decode(batch)
    ref = Decoder(reference=True).decode(batch)
    # one row of its own per frame, in order (an A-MSDU, nested tunnels give more after it)
    assert out.frame[out.sub == SUB_FRAME].tolist() == batch.frame.tolist()
    assert ref.frame[ref.sub == SUB_FRAME].tolist() == batch.frame.tolist()
    assert out.malformed.max(initial=0) < len(Malformed)
    if linktype not in lt.COMPILED_ONLY:
        # the reference lacks the compiled-only link types (their oracle is tshark:
        # tests/test_encap_tshark.py); for them only the compiled decoder's robustness counts
        own, ref_own = out.sub == SUB_FRAME, ref.sub == SUB_FRAME
        assert (out.malformed[own] == ref.malformed[ref_own]).all()
    return out.take(out.sub == SUB_FRAME)


@pytest.mark.parametrize("linktype", ALL_LINKTYPES)
def test_random_bytes_never_raise(linktype: int) -> None:
    rng = np.random.default_rng(linktype)
    frames = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes()
              for n in rng.integers(0, 200, 500)]
    decode_all_ways(frames, linktype)


@pytest.mark.parametrize("linktype", [lt.ETHERNET, lt.RAW, lt.LINUX_SLL])
def test_every_prefix_of_real_frames(linktype: int) -> None:
    frames = corpus_frames(60)
    if linktype == lt.RAW:
        frames = [f[14:] for f in frames]
    elif linktype == lt.LINUX_SLL:
        frames = [bytes(14) + f[12:] for f in frames]
    cut = [f[:k] for f in frames for k in range(len(f) + 1) if k < 140 or k % 97 == 0]
    out = decode_all_ways(cut, linktype)
    # A cut frame claims its original length: caplen < wirelen, flagged truncated, and the
    # decoder stops quietly where bytes are missing (no "short" reasons for cut frames).
    batch = FrameBatch.from_frames(cut, [0] * len(cut), linktype=linktype,
                                   wirelen=[1514] * len(cut))
    truncated = Decoder().decode(batch)
    assert truncated.truncated.all()
    shorts = {m.value for m in Malformed if m.name.endswith("_SHORT")}
    assert not set(np.unique(truncated.malformed).tolist()) & shorts
    assert len(out) == len(cut)


def test_random_corruptions_of_real_frames() -> None:
    rng = np.random.default_rng(11)
    frames = corpus_frames(300)
    corrupted = []
    for f in frames:
        for _ in range(8):
            b = bytearray(f)
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            corrupted.append(bytes(b))
    for linktype in (lt.ETHERNET, lt.NULL, lt.PPP):
        decode_all_ways(corrupted, linktype)
