"""Sequence ranges kept sorted and found by bisection, so that a connection whose segments
leave holes costs O(log n) comparisons per segment, not a walk over every range held (issue
15: a 4.5 MB gapped capture took 129 s when each segment walked and re-sorted the lists).

- ``Coverage``: disjoint ranges [start, end), touching ones merged: what a host has sent (the
  observer's retransmission analysis), and the union of a reassembler's blocks.
- ``Blocks``: Zeek's reassembler blocks. Their boundaries matter (the delivered position moves
  to a block's end, and a block that starts below it is never delivered), so they are kept as
  inserted: an insert adds only the parts not held yet, found as the holes of the union.

Starts and ends live in two parallel Python lists. Finding is bisection; adding or removing a
range moves the list's tail with one memmove in C, which in the orders captures bring (a
stream grows at its end and is trimmed at its start) is an append or a short move. The Rust
core (crates/core/src/track/ranges.rs) keeps the same ranges in B-trees.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right


class _Ranges:
    """Two parallel sorted lists: range i is [starts[i], ends[i])."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.starts)

    def __len__(self) -> int:
        return len(self.starts)

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends, strict=True))


class Coverage(_Ranges):
    """Disjoint ranges [start, end), sorted, touching ones merged."""

    __slots__ = ()

    def covers(self, start: int, end: int) -> bool:
        """Is [start, end) inside one range?"""
        i = bisect_right(self.starts, start) - 1
        return i >= 0 and end <= self.ends[i]

    def add(self, start: int, end: int) -> None:
        """Add [start, end), merging every range it overlaps or touches (an empty range adds
        nothing)."""
        if end <= start:
            return
        starts, ends = self.starts, self.ends
        if starts and start >= ends[-1]:  # the common case: the stream grows at its end
            if start == ends[-1]:
                ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
            return
        i = bisect_right(starts, start) - 1
        if i >= 0 and ends[i] >= start:
            lo = starts[i]
        else:
            i += 1
            lo = start
        j = bisect_right(starts, end)  # ranges i..j-1 start at or before end: merged
        hi = max(end, ends[j - 1]) if j > i else end
        starts[i:j] = [lo]
        ends[i:j] = [hi]

    def holes(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) no range covers, in order."""
        starts, ends = self.starts, self.ends
        out = []
        lo = start
        i = bisect_right(starts, start) - 1
        if i >= 0:
            lo = max(lo, ends[i])
        i += 1
        while i < len(starts) and starts[i] < end:
            if lo < starts[i]:
                out.append((lo, starts[i]))
            lo = max(lo, ends[i])
            i += 1
        if lo < end:
            out.append((lo, end))
        return out

    def trim_to(self, first: int | None) -> None:
        """Drop what lies below ``first`` (the first block kept; None: all gone). Blocks tile
        the ranges, so the first range left starts at that block."""
        if first is None:
            self.starts.clear()
            self.ends.clear()
            return
        k = bisect_right(self.ends, first)
        del self.starts[:k]
        del self.ends[:k]
        if self.starts and self.starts[0] < first:
            self.starts[0] = first


class Blocks(_Ranges):
    """Zeek's reassembler blocks: disjoint [seq, upper) as inserted (not merged), and their
    union."""

    __slots__ = ("union",)

    def __init__(self) -> None:
        super().__init__()
        self.union = Coverage()

    def insert(self, seq: int, upper: int) -> None:
        """Add [seq, upper) minus what the blocks already hold: one block per hole."""
        starts, ends = self.starts, self.ends
        for a, b in self.union.holes(seq, upper):
            if not starts or a > starts[-1]:
                starts.append(a)
                ends.append(b)
            else:
                i = bisect_left(starts, a)
                starts.insert(i, a)
                ends.insert(i, b)
        self.union.add(seq, upper)

    def append_delivered(self, seq: int, upper: int) -> None:
        """Add [seq, upper) where every block ends at or before ``seq`` (in-order data)."""
        self.starts.append(seq)
        self.ends.append(upper)
        self.union.add(seq, upper)

    def end_of(self, seq: int) -> int | None:
        """The end of the block that starts exactly at ``seq``."""
        i = bisect_left(self.starts, seq)
        if i < len(self.starts) and self.starts[i] == seq:
            return self.ends[i]
        return None

    def first_from(self, seq: int) -> int | None:
        """The start of the first block starting at or after ``seq``."""
        i = bisect_left(self.starts, seq)
        return self.starts[i] if i < len(self.starts) else None

    def drop_ending_by(self, seq: int) -> None:
        """Drop every block that ends at or before ``seq`` (a prefix: disjoint blocks end in
        the order they start)."""
        k = bisect_right(self.ends, seq)
        if k:
            del self.starts[:k]
            del self.ends[:k]
            self.union.trim_to(self.starts[0] if self.starts else None)

    def clear(self) -> None:
        self.starts.clear()
        self.ends.clear()
        self.union = Coverage()
