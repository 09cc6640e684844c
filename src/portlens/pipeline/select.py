"""Which packets a run keeps: the -f filter, a time window, one connection, the first N.

Selection happens on the decoded stream before tracking, in this order: time window, filter,
connection, count. So ``-c N`` counts packets that passed everything else (tcpdump counts
packets that matched its filter), and every report, the -w file and every worker of a
sharded run see the same packets.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from portlens.decode.fields import FRAG_PART, SUB_FRAME, addr_bytes

if TYPE_CHECKING:  # a run that selects nothing reads no batch here (nor imports NumPy)
    import numpy as np
    import numpy.typing as npt

    from portlens.decode.packets import PacketBatch
    from portlens.filter import PacketFilter
    from portlens.track.model import Connection

Index: TypeAlias = "npt.NDArray[np.intp]"


@dataclass(frozen=True)
class Selection:
    packet_filter: PacketFilter | None = None
    start_ns: int | None = None
    """Keep packets stamped at or after this (epoch ns), as editcap -A."""
    end_ns: int | None = None
    """Keep packets stamped before this (epoch ns), as editcap -B."""
    count: int | None = None
    """Stop after this many packets have been selected."""
    conn: Connection | None = None
    """Keep only this connection's packets (its 5-tuple either way within its time span)."""

    @property
    def everything(self) -> bool:
        return (self.packet_filter is None and self.start_ns is None and self.end_ns is None
                and self.count is None and self.conn is None)


class Selector:
    """Applies a Selection to the successive batches of one stream."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.selected = 0

    @property
    def done(self) -> bool:
        """The count is reached: nothing more will be selected."""
        count = self.selection.count
        return count is not None and self.selected >= count

    def rows(self, b: PacketBatch) -> Index | None:
        """The rows of ``b`` (a decoder's batch) to keep, in order; None keeps them all. A
        middle carrier's row goes with its packet's row; ``count`` counts frames (a frame
        is selected when one of its rows is)."""
        import numpy as np

        sel = self.selection
        more = bool((b.sub != SUB_FRAME).any())
        if sel.everything or not len(b):
            self.selected += int((b.sub == SUB_FRAME).sum()) if more else len(b)
            return None
        keep = np.ones(len(b), dtype=np.bool_)
        if sel.start_ns is not None:
            keep &= b.ts_ns >= sel.start_ns
        if sel.end_ns is not None:
            keep &= b.ts_ns < sel.end_ns
        if sel.packet_filter is not None:
            keep &= sel.packet_filter.mask(b)
        if more:
            keep = keep[b.owner_rows()]
        if sel.conn is not None:  # a middle carrier's row is its own connection's
            keep &= connection_rows(b, sel.conn)
        index = np.flatnonzero(keep)
        if not more:
            if sel.count is not None:
                index = index[: max(sel.count - self.selected, 0)]
            self.selected += index.size
            return None if index.size == len(b) else index
        frame = b.frame_index()[index]
        frames = np.unique(frame)
        if sel.count is not None:
            frames = frames[: max(sel.count - self.selected, 0)]
            index = index[np.isin(frame, frames)]
        self.selected += frames.size
        return None if index.size == len(b) else index


def connection_rows(b: PacketBatch, conn: Connection) -> npt.NDArray[np.bool_]:
    """The rows that belong to ``conn``: its 5-tuple either way within [ts, last] (only one
    connection holds a 5-tuple at a time; a middle tunnel carrier's row is its datagram), or,
    for a tunnel's carrier flow, the packets whose outermost (out_*) or innermost (car_*) UDP
    carrier is the flow."""
    import numpy as np

    o = np.frombuffer(addr_bytes(conn.orig_h), dtype=np.uint8)
    r = np.frombuffer(addr_bytes(conn.resp_h), dtype=np.uint8)
    span = (b.ts_ns >= conn.ts_ns) & (b.ts_ns <= max(conn.last_ns, conn.ts_ns))
    from portlens.analysis.ladder import (  # with the tracker: only for --conn
        carrier_levels,
        tuple_rows,
    )

    keep = span & tuple_rows(b, conn, o, r) & (b.frag != FRAG_PART)
    if conn.proto == "udp":
        for _, carried in carrier_levels(b, o, r, conn):
            keep |= span & carried
    return np.asarray(keep, dtype=np.bool_)


_EPOCH = re.compile(r"[0-9]+(\.[0-9]{1,9})?")


def parse_time(text: str) -> int:
    """Epoch nanoseconds from epoch seconds (``1329843161.5``, kept exact to the ns) or an ISO
    8601 time (``2012-02-21T16:52:41.5Z``, ``2012-02-21 17:52:41+01:00``; without a zone,
    the local time zone, like the times portlens prints). Raises ValueError."""
    text = text.strip()
    if _EPOCH.fullmatch(text):
        from decimal import Decimal, InvalidOperation  # only --start/--end read times

        try:
            return int(Decimal(text) * 1_000_000_000)
        except InvalidOperation:
            raise ValueError(f"not a time: {text!r}") from None
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    frac = re.search(r"\.([0-9]+)", iso)
    ns = 0
    if frac is not None:  # datetime keeps microseconds only: keep the digits ourselves
        digits = frac.group(1)
        if len(digits) > 9:
            raise ValueError(f"not a time: {text!r} (more than 9 decimals)")
        ns = int(digits.ljust(9, "0"))
        iso = iso[: frac.start()] + iso[frac.end():]
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (epoch seconds or ISO 8601, e.g. "
                         "2024-05-01T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as printed
    return int(when.timestamp()) * 1_000_000_000 + ns
