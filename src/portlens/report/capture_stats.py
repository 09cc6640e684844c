"""The capture summary of `portlens packets --stats`: the (what, value) rows and the per-file
rows. Apart from report/packets.py (one line per frame, numpy's columns) so that the summary of
a file counted by the compiled core is printed without importing numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portlens.analysis.capture_stats import CaptureStats, link_name
from portlens.report.clock import Clock

__all__ = ["FILE_COLUMNS", "file_rows", "stats_rows"]


def stats_rows(stats: CaptureStats, clock: Clock | None = None) -> list[tuple[str, str]]:
    """The summary as (what, value) rows for a two-column table; first and last frame in
    ``clock``'s zone, named (UTC without one)."""
    rows: list[tuple[str, str]] = [
        ("frames", f"{stats.frames:,}"),
        ("bytes on wire", f"{stats.wire_bytes:,}"),
        ("bytes captured", f"{stats.captured_bytes:,}"),
    ]
    if stats.first_ns is not None and stats.last_ns is not None:
        stamp = (clock or Clock(utc=True)).stamp
        rows.append(("first frame", stamp(stats.first_ns)))
        rows.append(("last frame", stamp(stats.last_ns)))
        rows.append(("duration", f"{stats.duration_ns / 1e9:.6f} s"))
    rows.append(("link types", _counts(stats.linktypes)))
    rows.append(("protocols", _counts(stats.protocols)))
    if stats.not_ip:
        rows.append(("not IP", _counts(stats.not_ip)))
    if stats.tunnels:
        rows.append(("tunnels", _counts(stats.tunnels)))
    for label, value in (("VLAN-tagged", stats.vlan_tagged), ("MPLS", stats.mpls_labelled),
                         ("IP fragments", stats.fragments),
                         ("reassembled datagrams", stats.reassembled),
                         ("datagrams timed out (fragments)", stats.datagrams_timed_out),
                         ("datagrams over the fragment cap", stats.datagrams_over_cap)):
        if value:
            rows.append((label, f"{value:,}"))
    rows.append(("truncated (snaplen)", f"{stats.truncated:,}"))
    rows.append(("bad IPv4 checksums", f"{stats.bad_ip_checksum:,}"))
    rows.append(("bad TCP/UDP/ICMP checksums", f"{stats.bad_l4_checksum:,}"))
    rows.append(("malformed", _counts(stats.malformed) if stats.malformed else "0"))
    if stats.not_decoded:
        rows.append(("not decoded (link type)",
                     _counts({str(t): n for t, n in stats.not_decoded.items()})))
    return rows


FILE_COLUMNS = ("file", "format", "link type", "frames", "bytes", "first frame", "last frame",
                "time backwards", "problem")


def file_rows(files: Sequence[object], clock: Clock | None = None
              ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The per-file rows of `packets --stats` (sources.merge.FileStats objects); times in
    ``clock``'s zone, named (UTC without one)."""
    stamp = (clock or Clock(utc=True)).stamp
    rows: list[tuple[str, ...]] = []
    for f in files:
        rec: dict[str, Any] = f.record()  # type: ignore[attr-defined]
        fmt = (rec["format"] or "-") + (f" ({rec['compression']})" if rec["compression"]
                                        else "")
        rows.append((rec["path"], fmt, link_name(rec["linktype"]), f"{rec['frames']:,}",
                     f"{rec['wire_bytes']:,}",
                     stamp(rec["first_ns"]) if rec["first_ns"] is not None else "-",
                     stamp(rec["last_ns"]) if rec["last_ns"] is not None else "-",
                     f"{rec['backwards']:,}", rec["error"] or "-"))
    columns: tuple[str, ...] = FILE_COLUMNS
    if all(r[-1] == "-" for r in rows):
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    return columns, rows


def _counts(counter: dict[str, int]) -> str:
    total = sum(counter.values()) or 1
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {v:,} ({100 * v / total:.1f}%)" for k, v in items)
