"""Timestamps in text output, as tcpdump prints them.

tcpdump shows packet times in the local time zone; so do the text outputs of portlens (packets,
events, the conns table's start column, the ladder's header, the live view), with ``--utc``
for UTC. The zone is named once per output (``Clock.zone_label``), not on every line: a
reader comparing with tcpdump sees the same digits. The styles are tcpdump's ``-t`` options:

========  ===========  ============================================================
style     tcpdump      text
========  ===========  ============================================================
time      (default)    ``23:13:20.010250``: time of day
none      ``-t``       nothing
epoch     ``-tt``      ``1700108000.010250``: seconds since 1970 (no zone)
delta     ``-ttt``     `` 00:00:00.010250``: since the previous line (no zone)
date      ``-tttt``    ``2023-11-15 23:13:20.010250``: date and time of day
since     ``-ttttt``   `` 00:00:00.010250``: since the first line (no zone)
========  ===========  ============================================================

Fractions have six digits, or nine when the capture's timestamp is not a whole microsecond
(pcap-ns and pcapng files can be): nothing the file holds is rounded away. JSON and CSV are
never affected: they carry ``ts_ns``, nanoseconds since 1970 in UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

STYLES = ("time", "none", "epoch", "delta", "date", "since")
"""In the order of tcpdump's -t count: -t is "none", -tt "epoch" ... -ttttt "since"."""
ZONED = frozenset({"time", "date"})
"""Styles whose digits depend on the time zone."""
STAMPED = frozenset({"time", "date", "epoch"})
"""Styles whose text of a time depends on no other line (``Clock.stamp_text``)."""


def style_of_count(count: int) -> str:
    """tcpdump's -t, -tt, -ttt, -tttt, -ttttt (0: the default, time of day)."""
    if not 0 <= count < len(STYLES):
        raise ValueError(f"-{'t' * count}: tcpdump's time options go up to -ttttt")
    return STYLES[count]


def fraction(ns: int) -> str:
    """The part after the seconds' point: microseconds, or nanoseconds when they matter."""
    return f"{ns // 1000:06d}" if ns % 1000 == 0 else f"{ns:09d}"


def span_text(ns: int) -> str:
    """A signed interval as tcpdump's -ttt prints it: ' 00:00:00.010250', '-00:00:01.5...'."""
    sign = "-" if ns < 0 else " "
    seconds, rest = divmod(abs(ns), 10**9)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{fraction(rest)}"


def offset_text(offset: dt.timedelta | None) -> str:
    """UTC+01:00, UTC-04:30, UTC+00:00."""
    minutes = int((offset or dt.timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


SECONDS_CACHED = 4096
"""Seconds whose text a Clock keeps (a few hundred kB at most)."""


class Clock:
    """Turns capture timestamps (ns since 1970, UTC) into the text of one output.

    ``delta`` and ``since`` remember the previous and the first timestamp shown, so a Clock
    belongs to one output stream. Formatting caches the seconds it wrote: a capture's packets
    come many to a second, and the calendar conversion is the costly part; connections come
    in the order they end, so their start times go back and forth over a few hundred
    seconds (`conns` on the benchmark capture: 52,000 conversions with the last second
    cached, 0.56 s)."""

    def __init__(self, style: str = "time", *, utc: bool = False) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown time style {style!r}; one of {', '.join(STYLES)}")
        self.style = style
        self.utc = utc
        self.first_ns: int | None = None
        self.previous_ns: int | None = None
        self._seconds: dict[int, str] = {}

    @property
    def zoned(self) -> bool:
        return self.style in ZONED

    def _datetime(self, seconds: int) -> dt.datetime:
        if self.utc:
            return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).astimezone()

    def text(self, ts_ns: int) -> str:
        """The time of one line ('' for style none); advances delta's previous time."""
        first = self.first_ns = ts_ns if self.first_ns is None else self.first_ns
        previous = self.previous_ns if self.previous_ns is not None else ts_ns
        self.previous_ns = ts_ns
        style = self.style
        if style == "none":
            return ""
        if style == "delta":
            return span_text(ts_ns - previous)
        if style == "since":
            return span_text(ts_ns - first)
        return self.stamp_text(ts_ns)

    def stamp_text(self, ts_ns: int) -> str:
        """The text of a time in a STAMPED style, which no earlier line changes."""
        seconds, ns = divmod(ts_ns, 10**9)
        if self.style == "epoch":
            return f"{seconds}.{fraction(ns)}"
        if self.style not in ZONED:
            raise ValueError(f"the {self.style} style's times depend on other lines")
        return f"{self.second_text(seconds)}.{fraction(ns)}"

    def core_lines(self, seconds_of: Callable[[], Any],
                   write: Callable[..., tuple[str, int | None, int | None]]) -> str:
        """What a writer of lines in the core makes of a batch (packets, transitions), given
        this clock's style, the text of each second the batch's times fall in (``calendar``)
        and the times the clock carries, which move on as they would line by line."""
        text, self.first_ns, self.previous_ns = write(
            self.style, *self.calendar(seconds_of), self.first_ns, self.previous_ns)
        return text

    def calendar(self, seconds_of: Callable[[], Any]) -> tuple[Any, list[str]]:
        """What the core's writers are given of the calendar: the distinct seconds of a batch
        (``seconds_of``: ascending, an int64 array; asked in a zoned style only, the others
        need none) and the text of each."""
        import numpy as np

        seconds = seconds_of() if self.zoned else np.zeros(0, np.int64)
        return seconds, [self.second_text(s) for s in seconds.tolist()]

    def second_text(self, seconds: int) -> str:
        """The text of a whole second in the time or date style, before its fraction: the
        calendar's part, which the core's writers are given (report/packets.py `lines`)."""
        second = self._seconds.get(seconds)
        if second is None:
            if len(self._seconds) >= SECONDS_CACHED:
                self._seconds.clear()
            pattern = "%Y-%m-%d %H:%M:%S" if self.style == "date" else "%H:%M:%S"
            second = self._seconds[seconds] = self._datetime(seconds).strftime(pattern)
        return second

    def stamp(self, ts_ns: int, *, whole: bool = False) -> str:
        """A moment in full (date, time and zone) whatever the style, for a header:
        '2023-11-15 23:13:20.000000 EST (UTC-05:00)'; ``whole`` leaves out the fraction of
        the second. Does not touch delta's memory."""
        seconds, ns = divmod(ts_ns, 10**9)
        moment = self._datetime(seconds)
        part = "" if whole else f".{fraction(ns)}"
        return f"{moment.strftime('%Y-%m-%d %H:%M:%S')}{part} {self._zone(moment)}"

    def _zone(self, moment: dt.datetime) -> str:
        if self.utc:
            return "UTC"
        name = moment.tzname() or ""
        offset = offset_text(moment.utcoffset())
        return f"{name} ({offset})" if name and name != offset else offset

    def zone_label(self, ts_ns: int) -> str | None:
        """'times in local time, EST (UTC-05:00)', 'times in UTC', or None when the style
        does not depend on a zone. The zone at ``ts_ns`` (the first time shown) names it."""
        if not self.zoned:
            return None
        if self.utc:
            return "times in UTC"
        return f"times in local time, {self._zone(self._datetime(ts_ns // 10**9))}"


__all__ = ["STAMPED", "STYLES", "Clock", "fraction", "span_text", "style_of_count"]
