"""Packets per second by port, for the HTML report's rate chart.

Which server ports matter is known only once every connection has been counted, while the
packets pass by only once. So each batch is reduced to counts per (second, transport, source
port, destination port), one numpy ``unique`` per batch, and kept in that compact form: its
size grows with connection-seconds, not with packets (a connection sends many packets in a
second, all of them one key). At the end, :meth:`PacketRates.series` picks the ports.

A packet counts for a port when the port is on either side of its innermost TCP or UDP header,
tcpdump's ``port N``: the same rule the -f filter applies, so ``portlens packets -f 'tcp port
443' --stats`` counts the packets of the 443/tcp series.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from portlens.decode.fields import FRAG_PART, SUB_CARRIER
from portlens.decode.packets import PacketBatch

_SECOND = 1_000_000_000
_SHIFT = 1 << 30
"""Seconds are kept relative to the first batch's, offset so that earlier packets (a file whose
time runs backwards) stay positive in the packed key."""
PENDING_ROWS = 16384
"""Rows of batches whose keys are counted together (``PacketRates.add``)."""
_COMPACT_EVERY = 32
"""Batches at least between merges of the per-batch keys (bounds the memory of repeated
keys, with the merged keys' number: ``add``)."""
BIN_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200,
               86400)
MAX_BINS = 1500
"""A rate chart has at most this many bins: the bin grows with the capture's span."""


class PacketRates:
    """Packets per second, in all and per (second, transport, sport, dport). A packet is what
    `portlens packets` lists: a frame, or an A-MSDU's subframe after the first (a packet of
    its own, with its own ports); a middle tunnel carrier's row is part of its packet."""

    def __init__(self) -> None:
        self.base_s: int | None = None
        """The first batch's first second (epoch): keys count seconds from it."""
        self.packets: Counter[int] = Counter()
        """Every packet (whatever its protocol) by second since ``base_s``."""
        self._keys: list[npt.NDArray[np.uint64]] = []
        self._counts: list[npt.NDArray[np.int64]] = []
        self._pending: list[npt.NDArray[np.uint64]] = []
        """Batches' keys not counted yet, until PENDING_ROWS (a count costs about 0.1 ms
        whatever its size, and a batch of the benchmark capture has 1,700 rows)."""
        self._pending_rows = 0

    def add(self, b: PacketBatch) -> None:
        if not len(b):
            return
        sec = (b.ts_ns.astype(np.int64) // _SECOND)
        if self.base_s is None:
            self.base_s = int(sec.min())
        rel = sec - self.base_s
        # every packet counts once, in all as in its ports' series: a frame's own row and an
        # A-MSDU's subframes, not a middle tunnel carrier's row (docs/decoding.md, Rows per
        # frame). Counting frames here and packets in the ports' series made `other`
        # negative where a frame held several subframes, and a selection that kept a
        # subframe without its frame's own row put a port's packet outside the bins.
        own = rel[b.sub != SUB_CARRIER]
        low, high = (int(own.min()), int(own.max())) if len(own) else (0, 0)
        if high - low < 4096:  # a batch spans a few seconds: counted without a sort
            counts = np.bincount(own - low)
            seconds = np.flatnonzero(counts)
            pairs = zip((seconds + low).tolist(), counts[seconds].tolist(), strict=True)
        else:  # times far apart (a damaged or merged file)
            pairs = zip(*(a.tolist() for a in np.unique(own, return_counts=True)), strict=True)
        for s, n in pairs:
            self.packets[s] += n
        ported = (((b.l4 == 6) | (b.l4 == 17)) & (b.frag != FRAG_PART)
                  & (b.sub != SUB_CARRIER))
        if not ported.any():
            return
        key = (((rel[ported] + _SHIFT).astype(np.uint64) << np.uint64(33))
               | ((b.l4[ported] == 17).astype(np.uint64) << np.uint64(32))
               | (b.sport[ported].astype(np.uint64) << np.uint64(16))
               | b.dport[ported].astype(np.uint64))
        self._pending.append(key)
        self._pending_rows += len(key)
        if self._pending_rows >= PENDING_ROWS:
            self._count_pending()

    def _count_pending(self) -> None:
        if not self._pending:
            return
        key = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        keys, counts = np.unique(key, return_counts=True)
        self._keys.append(keys)
        self._counts.append(counts.astype(np.int64))
        # merged when the keys since the last merge are as many as the merged ones (as
        # talkers.TalkerTable.add): merging all every _COMPACT_EVERY batches took 0.3 CPU s
        # of the benchmark capture's report
        if (len(self._keys) > _COMPACT_EVERY
                and sum(len(k) for k in self._keys[1:]) >= len(self._keys[0])):
            self._compact()

    def _compact(self) -> None:
        self._count_pending()
        if len(self._keys) <= 1:
            return
        keys = np.concatenate(self._keys)
        counts = np.concatenate(self._counts)
        uniq, inverse = np.unique(keys, return_inverse=True)
        self._keys = [uniq]
        self._counts = [np.bincount(inverse.ravel(), weights=counts,
                                    minlength=len(uniq)).astype(np.int64)]

    def span(self) -> tuple[int, int] | None:
        """First and last second with a packet, relative to ``base_s``."""
        if not self.packets:
            return None
        return min(self.packets), max(self.packets)

    def series(self, ports: Sequence[tuple[str, int]], bin_s: int | None = None
               ) -> dict[str, Any]:
        """Packets per bin: ``all`` (every packet), one series per (proto, port) in ``ports``
        (tcpdump's ``proto port N``), and ``other`` (packets in none of them). Bins start at
        ``start_s`` (epoch seconds) and are ``bin_s`` wide (chosen from the span when None)."""
        span = self.span()
        if span is None or self.base_s is None:
            return {"start_s": None, "bin_s": bin_s or 1, "all": [], "ports": {}, "other": []}
        first, last = span
        bin_s = bin_s or choose_bin(last - first + 1)
        nbins = (last - first) // bin_s + 1
        every = np.zeros(nbins, dtype=np.int64)
        for s, n in self.packets.items():
            every[(s - first) // bin_s] += n
        self._compact()
        keys = self._keys[0] if self._keys else np.zeros(0, dtype=np.uint64)
        counts = self._counts[0] if self._counts else np.zeros(0, dtype=np.int64)
        rel = (keys >> np.uint64(33)).astype(np.int64) - _SHIFT
        index = (rel - first) // bin_s
        udp = ((keys >> np.uint64(32)) & np.uint64(1)).astype(bool)
        sport = ((keys >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.int64)
        dport = (keys & np.uint64(0xFFFF)).astype(np.int64)
        matched = np.zeros(len(keys), dtype=bool)
        out: dict[str, list[int]] = {}
        for proto, port in ports:
            rows = (udp == (proto == "udp")) & ((sport == port) | (dport == port))
            matched |= rows
            out[f"{port}/{proto}"] = np.bincount(index[rows], weights=counts[rows],
                                                 minlength=nbins).astype(np.int64).tolist()
        in_ports = np.bincount(index[matched], weights=counts[matched],
                               minlength=nbins).astype(np.int64)
        return {"start_s": self.base_s + first, "bin_s": bin_s, "all": every.tolist(),
                "ports": out, "other": (every - in_ports).tolist()}


def choose_bin(span_s: int) -> int:
    """The smallest round bin (1 s, 2 s, 5 s ... 1 day) giving at most MAX_BINS bins."""
    for b in BIN_SECONDS:
        if span_s <= b * MAX_BINS:
            return b
    return -(-span_s // MAX_BINS)


def starts_per_bin(starts_ns: Sequence[int] | npt.NDArray[np.int64], start_s: int,
                   bin_s: int, nbins: int) -> list[int]:
    """How many of ``starts_ns`` fall in each bin (new connections per bin)."""
    if not nbins:
        return []
    arr = np.asarray(starts_ns, dtype=np.int64) // _SECOND
    index = np.clip((arr - start_s) // bin_s, 0, nbins - 1)
    return np.bincount(index, minlength=nbins).astype(np.int64).tolist()  # type: ignore[no-any-return]
