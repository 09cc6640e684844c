"""A mergeable quantile sketch for durations (handshake round-trip times).

Summaries are merged across files, workers and cluster shards, so the sketch must give the same
answer whatever the order of ``a + b + c``. It keeps values exactly while there are at most
``EXACT_MAX`` of them (most ports in most captures); beyond that every value goes into a
logarithmic bucket, DDSketch-style: bucket ``i`` holds values in ``(γ^(i-1), γ^i]`` with
``γ = (1 + α) / (1 - α)`` and is reported as ``2γ^i / (γ + 1)``, so any quantile read from buckets
is within a relative error ``α`` (``ALPHA`` = 1 %) of a value of the right rank. Bucketing a value
does not depend on what else is in the sketch, so merging exact and bucketed sketches in any order
gives identical buckets. Minimum, maximum, count and sum are always exact.

Quantiles use the nearest-rank definition: the value of rank ``ceil(q * n)`` (1-based), so p50 of
1, 2, 3, 4 is 2, and p100 is the maximum.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
EXACT_MAX = 64
"""Values kept exactly up to this count; past it the sketch switches to buckets."""
ZERO = -(2**31)
"""The bucket of zero (and, defensively, negative) durations."""


def _bucket(value: int) -> int:
    """The bucket of a positive value; 0 and negatives share bucket ``ZERO``."""
    if value <= 0:
        return ZERO
    return math.ceil(math.log(value) / _LOG_GAMMA - 1e-12)



_MANY = 32
"""From this many values, buckets are computed with numpy (``_bucket_counts``)..."""
_NUMPY_PAYS = 100_000
"""...once numpy is imported, or for this many at once: importing it (0.06 s) costs as much as
bucketing about that many values one by one, and `ports` and `handshakes` of a file otherwise
never import it."""


def _bucket_counts(values: list[int]) -> Counter[int]:
    """How many of ``values`` fall in each bucket: ``_bucket`` of each, with one numpy log for
    many. numpy's log may differ from math.log in the last bit, which moves a value to the
    next bucket only when log(v) / log(γ) is within rounding of a whole number: those few
    values are bucketed by ``_bucket`` itself, so the counts are exactly its counts."""
    if len(values) < _MANY or ("numpy" not in sys.modules and len(values) < _NUMPY_PAYS):
        return Counter(map(_bucket, values))
    import numpy as np

    try:
        v = np.array(values, dtype=np.int64)
    except OverflowError:
        return Counter(map(_bucket, values))
    positive = v > 0
    x = np.log(v[positive].astype(np.float64)) / _LOG_GAMMA - 1e-12
    index = np.ceil(x).astype(np.int64)
    close = np.flatnonzero(np.abs(x - np.rint(x)) < 1e-6)
    if len(close):
        exact = v[positive][close].tolist()
        index[close] = [_bucket(e) for e in exact]
    out: Counter[int] = Counter()
    zeros = len(v) - int(positive.sum())
    if zeros:
        out[ZERO] = zeros
    uniq, counts = np.unique(index, return_counts=True)
    out.update(dict(zip(uniq.tolist(), counts.tolist(), strict=True)))
    return out


def _representative(index: int) -> int:
    if index == ZERO:
        return 0
    return round(2 * GAMMA**index / (GAMMA + 1))


@dataclass
class Sketch:
    """Quantiles of integer durations (nanoseconds), exact for small counts, mergeable."""

    count: int = 0
    total: int = 0
    min: int | None = None
    max: int | None = None
    exact: list[int] | None = field(default_factory=list)
    """The values themselves, while count <= EXACT_MAX; None once bucketed."""
    buckets: Counter[int] = field(default_factory=Counter)

    def add(self, value: int) -> None:
        self.count += 1
        self.total += value
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        if self.exact is not None:
            self.exact.append(value)
            if len(self.exact) > EXACT_MAX:
                self._to_buckets()
        else:
            self.buckets[_bucket(value)] += 1

    def add_many(self, values: list[int]) -> None:
        """``add`` of each value in turn (the same state), in one step."""
        if not values:
            return
        self.count += len(values)
        self.total += sum(values)
        low, high = min(values), max(values)
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        if self.exact is not None:
            self.exact.extend(values)
            if len(self.exact) > EXACT_MAX:
                self._to_buckets()
        else:
            self.buckets.update(_bucket_counts(values))

    def _to_buckets(self) -> None:
        assert self.exact is not None
        self.buckets.update(_bucket_counts(self.exact))
        self.exact = None

    def __add__(self, other: Sketch) -> Sketch:
        out = Sketch(count=self.count + other.count, total=self.total + other.total,
                     min=_opt(min, self.min, other.min), max=_opt(max, self.max, other.max))
        if self.exact is not None and other.exact is not None and (
                len(self.exact) + len(other.exact) <= EXACT_MAX):
            out.exact = sorted(self.exact + other.exact)
            return out
        out.exact = None
        for part in (self, other):
            if part.exact is not None:
                for v in part.exact:
                    out.buckets[_bucket(v)] += 1
            else:
                out.buckets.update(part.buckets)
        return out

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def quantile(self, q: float) -> int | None:
        """The nearest-rank q-quantile (0 < q <= 1); None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        if rank >= self.count:
            return self.max
        if self.exact is not None:
            return sorted(self.exact)[rank - 1]
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                value = _representative(index)
                assert self.min is not None and self.max is not None
                return min(max(value, self.min), self.max)
        return self.max

    def to_dict(self) -> dict[str, Any]:
        """The state, so a sketch can travel between processes and be merged there."""
        return {"count": self.count, "total": self.total, "min": self.min, "max": self.max,
                "exact": sorted(self.exact) if self.exact is not None else None,
                "buckets": sorted(self.buckets.items())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sketch:
        return cls(count=d["count"], total=d["total"], min=d["min"], max=d["max"],
                   exact=list(d["exact"]) if d["exact"] is not None else None,
                   buckets=Counter({int(k): int(v) for k, v in d["buckets"]}))


def _opt(fn: Any, a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return int(fn(a, b))
