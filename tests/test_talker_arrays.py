"""Top talkers listed from the arrays of directed pairs (analysis/talkers.py
``conversations``, ``endpoints``) against the listing they replace, a loop over the
``pairs`` dict making an object per pair and sorting the objects: the same rows in the same
order, for every sort key and a cut, on every bundled capture and every capture of the public
corpus; and batches grouped by hashed keys, merged as they come, give the pairs that 32-byte
keys give (and the packet rates' keys merge alike)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.analysis import talkers
from portlens.analysis.rates import PacketRates
from portlens.analysis.talkers import SORT_KEYS, Conversation, Directed, Endpoint, TalkerTable
from portlens.decode.fields import addr_text
from portlens.decode.packets import PacketBatch
from portlens.pipeline.run import Options, Pipeline, Source
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES


def address_key(text: str) -> tuple[int, Any]:
    ip = ipaddress.ip_address(text)
    return ip.version, ip


def by_objects(rows: list[Any], by: str, top: int | None, name: Callable[[Any], Any]
               ) -> list[Any]:
    def addr_key(r: Any) -> tuple[Any, ...]:
        return tuple(address_key(a) for a in name(r))

    keys = {"bytes": lambda r: (-r.bytes, -r.pkts, addr_key(r)),
            "packets": lambda r: (-r.pkts, -r.bytes, addr_key(r)),
            "start": lambda r: (r.first_ns, addr_key(r)), "address": addr_key}
    return sorted(rows, key=keys[by])[:top]


def loop_conversations(table: TalkerTable, by: str, top: int | None) -> list[Conversation]:
    pairs = table.pairs
    out = []
    for key, d in pairs.items():
        src, dst = key[:16], key[16:]
        back = pairs.get(dst + src)
        if back is not None and (back.first_frame, dst) < (d.first_frame, src):
            continue
        if src == dst:
            back = None
        version = 4 if src[:12] == bytes(10) + b"\xff\xff" else 6
        e = back or Directed(first_ns=d.first_ns, last_ns=d.last_ns)
        out.append(Conversation(
            addr_text(src, version), addr_text(dst, version), version, d.pkts, d.bytes,
            e.pkts, e.bytes, min(d.first_ns, e.first_ns), max(d.last_ns, e.last_ns)))
    return by_objects(out, by, top, lambda c: (c.a, c.b))


def loop_endpoints(table: TalkerTable, by: str, top: int | None) -> list[Endpoint]:
    tx: dict[bytes, list[int]] = {}
    peers: dict[bytes, set[bytes]] = {}
    for key, d in table.pairs.items():
        src, dst = key[:16], key[16:]
        for addr, offset, peer in ((src, 0, dst), (dst, 2, src)):
            slot = tx.setdefault(addr, [0, 0, 0, 0, d.first_ns, d.last_ns])
            slot[offset] += d.pkts
            slot[offset + 1] += d.bytes
            slot[4] = min(slot[4], d.first_ns)
            slot[5] = max(slot[5], d.last_ns)
            peers.setdefault(addr, set()).add(peer)
    out = []
    for addr, (tp, tb, rp, rb, first, last) in tx.items():
        version = 4 if addr[:12] == bytes(10) + b"\xff\xff" else 6
        out.append(Endpoint(addr_text(addr, version), version, tp, tb, rp, rb,
                            len(peers[addr]), first, last))
    return by_objects(out, by, top, lambda e: (e.addr,))


def void_pairs(path: Path) -> dict[bytes, tuple[int, ...]]:
    """The directed pairs grouped by their 32-byte keys (np.unique of void keys)."""
    out: dict[bytes, list[int]] = {}
    frames = 0
    for b in Pipeline(Source.of(path), Options()).packets():
        ip = np.flatnonzero((b.ip_version != 0) & (b.sub != talkers.SUB_CARRIER))
        for i, k in zip(ip.tolist(), np.concatenate([b.src[ip], b.dst[ip]], axis=1), strict=True):
            slot = out.setdefault(k.tobytes(), [frames, 0, 0, 2**63, -2**63])
            slot[1] += 1
            slot[2] += int(b.wirelen[i])
            slot[3] = min(slot[3], int(b.ts_ns[i]))
            slot[4] = max(slot[4], int(b.ts_ns[i]))
            frames += 1
    return {k: tuple(v) for k, v in out.items()}


def check(path: Path) -> None:
    table = TalkerTable().update(Pipeline(Source.of(path), Options()).packets())
    for by in SORT_KEYS:
        for top in (None, 3):
            assert table.conversations(by, top) == loop_conversations(table, by, top), by
            assert table.endpoints(by, top) == loop_endpoints(table, by, top), by
    assert table.conversation_count() == len(loop_conversations(table, "bytes", None))
    assert table.endpoint_count() == len(loop_endpoints(table, "bytes", None))
    want = void_pairs(path)
    assert {k: (d.first_frame, d.pkts, d.bytes, d.first_ns, d.last_ns)
            for k, d in table.pairs.items()} == want
    # small batches: many more than _COMPACT_EVERY, merged as they come
    small = TalkerTable().update(Pipeline(Source.of(path), Options(chunk_bytes=2048)).packets())
    assert {k: (d.first_frame, d.pkts, d.bytes, d.first_ns, d.last_ns)
            for k, d in small.pairs.items()} == want
    # the packet rates' keys, merged as they come, alike
    rates = []
    for chunk in (2 << 20, 2048):
        r = PacketRates()
        for b in Pipeline(Source.of(path), Options(chunk_bytes=chunk)).packets():
            r.add(b)
        r._compact()
        rates.append((r.packets, [k.tolist() for k in r._keys], [c.tolist() for c in r._counts]))
    assert rates[0] == rates[1]


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_bundled_capture(path: Path) -> None:
    check(path)


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_capture(path: Path) -> None:
    check(path)


def test_hash_collision_falls_back_to_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key hashed alike: the check sees the collision and the keys group the rows."""
    monkeypatch.setattr(talkers, "_MIX", np.zeros(4, dtype=np.uint64))
    keys = np.zeros((5, 32), np.uint8)
    keys[1, 3] = keys[3, 3] = 1
    keys[4, 31] = 2
    order, starts = talkers._group(keys)
    assert sorted(g.tolist() for g in np.split(order, starts[1:])) == [[0, 2], [1, 3], [4]]


def test_unknown_sort_key() -> None:
    with pytest.raises(ValueError, match="unknown sort key"):
        TalkerTable().endpoints("size")


def test_counts_by_bincount_and_by_sort() -> None:
    """Small values are counted by np.bincount, others by a sort: the same counts (the packet
    rates' seconds of a batch, the capture summary's codes)."""
    from collections import Counter

    from portlens.analysis.capture_stats import _count

    for values in ([3, 3, 7, 0], [5000, 5000, 7], [2**40, 1]):
        counter: Counter[str] = Counter()
        _count(counter, np.array(values, dtype=np.int64), str)
        assert counter == Counter(str(v) for v in values)
    for seconds in ([0, 1, 1, 3], [0, 5000, 5000, 2], [7, 10**6]):
        b = PacketBatch.allocate(len(seconds))
        b.ts_ns = np.array(seconds, dtype=np.int64) * 10**9 + 10**18
        rates = PacketRates()
        rates.add(b)
        base = min(seconds) + 10**9
        assert rates.packets == Counter(s + 10**9 - base for s in seconds)
