"""Numbers for people: tables round (1.2 k, 3.4 MB, 10.3 ms); JSON and CSV never do."""

from __future__ import annotations


def count(n: int) -> str:
    """A count with a metric suffix past 999: 999, 1.2 k, 34.5 M."""
    if n < 1000:
        return str(n)
    value = float(n)
    for unit in ("k", "M", "G", "T"):
        value /= 1000
        if value < 999.95 or unit == "T":
            return f"{value:.1f} {unit}"
    return str(n)


def size(n: int) -> str:
    """Bytes: 100 B, 1.2 kB, 3.4 MB (decimal units, like ss and tshark)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


DURATION_UNITS = (("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("min", 60e9),
                  ("h", 3600e9))
"""The units of ``duration`` and their size in nanoseconds, smallest first."""


def duration(ns: int | None) -> str:
    """A short duration with three significant digits: 250 µs, 10.3 ms, 1.20 s, 16.7 min,
    2.50 h; '-' if None. One format for every table: RTTs and connection lengths alike."""
    if ns is None:
        return "-"
    if ns < 1000:
        return f"{ns} ns"
    for unit, scale in DURATION_UNITS[1:]:
        value = ns / scale
        if value < 999.5 or unit == DURATION_UNITS[-1][0]:
            digits = 0 if value >= 99.95 else 1 if value >= 9.995 else 2
            return f"{value:.{digits}f} {unit}"
    return f"{ns} ns"


def percent(x: float | None) -> str:
    if x is None:
        return "-"
    return "0" if x == 0 else f"{100 * x:.2g} %" if x < 0.1 else f"{100 * x:.0f} %"


def pair(a: str, b: str) -> str:
    return f"{a} / {b}"
