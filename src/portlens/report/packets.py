"""One line or one JSON object per frame (`portlens packets`), and the capture summary table.

``line`` is the reference of a frame's text, from one row of plain Python values; ``lines``
writes a whole batch's through the core (crates/core/src/packet_text.rs), the same text
(tests/test_packet_text.py), with the words and the calendar's seconds given from here.
``record`` is the reference of a frame's JSON object, ``records`` the core's of a batch.
``iter_rows`` turns the reference's rows into Python values one batch at a time (``tolist``
per column).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from portlens.analysis.icmp import icmp_name, message_text
from portlens.decode.fields import (
    CSUM_NAMES,
    CSUM_NONE,
    FRAG_COMPLETE,
    FRAG_PART,
    addr_text,
    endpoint_text,
)
from portlens.decode.malformed import reason_label
from portlens.decode.tunnels import TUNNEL_NAMES, tunnel_layers
from portlens.report.capture_stats import stats_rows
from portlens.report.clock import Clock
from portlens.services import proto_name

if TYPE_CHECKING:
    import numpy as np

    from portlens.decode.packets import PacketBatch

TCP_FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x20, "U"),
                    (0x40, "E"), (0x80, "W"), (0x100, "N"))
"""tcpdump's flag letters; ACK is printed as '.' after them."""

_COLUMNS = ("frame", "ts_ns", "wirelen", "caplen", "linktype", "interface", "ip_version",
            "proto", "l4", "sport", "dport", "tcp_flags", "seq", "ack", "win", "payload", "mss",
            "wscale", "sack_perm", "has_ts", "tsval", "opt_count", "icmp_type", "icmp_code",
            "tunnel", "tunnel_depth", "truncated", "ip_csum", "l4_csum", "malformed", "frag",
            "vlan", "ethertype", "ppp_proto", "ip_len", "q_valid", "q_proto", "q_sport",
            "q_dport")


def iter_rows(b: PacketBatch) -> Iterator[dict[str, Any]]:
    """Rows of a batch as dicts of plain Python values (the columns printing needs): one per
    packet, so an A-MSDU's subframes are lines of their own (with their frame's number);
    a middle tunnel carrier's row is no packet (its tunnel is in the packet's list)."""
    b = b.packet_rows()
    cols = {name: getattr(b, name).tolist() for name in _COLUMNS}
    src = b.src.tobytes()
    dst = b.dst.tobytes()
    opts = b.opt_kinds
    for i in range(len(b)):
        row = {name: values[i] for name, values in cols.items()}
        row["src_raw"] = src[16 * i : 16 * i + 16]
        row["dst_raw"] = dst[16 * i : 16 * i + 16]
        row["opts"] = opts[i, : row["opt_count"]].tolist()
        yield row


FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "A"), (0x20, "U"),
                (0x40, "E"), (0x80, "W"), (0x100, "N"))
"""The letters of ``flags_text`` in JSON, CSV and DataFrames, in bit order: tcpdump's letters
(W for CWR, E for ECE), with A for ACK where tcpdump prints '.', so SYN-ACK is "SA", as Zeek's
and scapy's users write it."""


def flags_text(flags: int) -> str:
    """'SA' for SYN-ACK, 'FA' for FIN-ACK, '' for no flag (docs/formats.md)."""
    return "".join(letter for bit, letter in FLAG_LETTERS if flags & bit)


def tcp_flag_text(flags: int) -> str:
    text = "".join(letter for bit, letter in TCP_FLAG_LETTERS if flags & bit)
    return text + ("." if flags & 0x10 else "")


def record(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON object of one frame (keys documented in docs/formats.md)."""
    out: dict[str, Any] = {
        "frame": row["frame"],
        "ts_ns": row["ts_ns"],
        "len": row["wirelen"],
        "caplen": row["caplen"],
        "linktype": row["linktype"],
        "interface": row["interface"],
    }
    if row["vlan"] >= 0:
        out["vlan"] = row["vlan"]
    version = row["ip_version"]
    if version:
        proto = row["proto"]
        name = proto_name(proto)
        out["ipv"] = version
        out["proto"] = name if proto in (6, 17, 1, 58) else proto
        out["src"] = addr_text(row["src_raw"], version)
        out["dst"] = addr_text(row["dst_raw"], version)
        out["ip_len"] = row["ip_len"]
        l4 = row["l4"]
        if l4 in (6, 17) or (row["frag"] == FRAG_PART and (row["sport"] or row["dport"])):
            out["sport"] = row["sport"]
            out["dport"] = row["dport"]
        if l4 == 6:
            out["flags"] = row["tcp_flags"]
            out["flags_text"] = flags_text(row["tcp_flags"])
            out["seq"] = row["seq"]
            out["ack"] = row["ack"]
            out["win"] = row["win"]
            if row["mss"] >= 0:
                out["mss"] = row["mss"]
            if row["wscale"] >= 0:
                out["wscale"] = row["wscale"]
            if row["sack_perm"]:
                out["sack_perm"] = True
            if row["has_ts"]:
                out["tsval"] = row["tsval"]
            if row["opts"]:
                out["opts"] = row["opts"]
        if l4 in (1, 58):
            out["icmp_type"] = row["icmp_type"]
            out["icmp_code"] = row["icmp_code"]
            if row["q_valid"]:
                out["quoted"] = {"proto": row["q_proto"], "sport": row["q_sport"],
                                 "dport": row["q_dport"]}
        if l4 and row["payload"] >= 0:
            out["payload"] = row["payload"]
        if row["tunnel_depth"]:
            out["tunnel"] = tunnel_layers(row["tunnel"], row["tunnel_depth"])
        if row["frag"] == FRAG_PART:
            out["frag"] = "part"
        elif row["frag"] == FRAG_COMPLETE:
            out["frag"] = "complete"
    elif row["ppp_proto"]:
        out["ppp_proto"] = f"0x{row['ppp_proto']:04x}"
    elif row["ethertype"]:
        out["ethertype"] = f"0x{row['ethertype']:04x}"
    out["truncated"] = bool(row["truncated"])
    checksum = {}
    if row["ip_csum"] != CSUM_NONE:
        checksum["ip"] = CSUM_NAMES[row["ip_csum"]]
    if row["l4_csum"] != CSUM_NONE:
        checksum[proto_name(row["l4"]) if row["l4"] else proto_name(row["proto"])] = (
            CSUM_NAMES[row["l4_csum"]])
    if checksum:
        out["checksum"] = checksum
    if row["malformed"]:
        out["malformed"] = reason_label(row["malformed"])
    return out


def time_text(ts_ns: int) -> str:
    """UTC time of day like tcpdump's default, with nanoseconds when the capture has them."""
    return Clock(utc=True).text(ts_ns)


def _endpoint(raw: bytes, version: int, port: int | None) -> str:
    text = addr_text(raw, version)
    return text if port is None else endpoint_text(text, port)


def line(row: dict[str, Any], clock: Clock | None = None) -> str:
    """One frame in the spirit of ``tcpdump -nn -q``, its time as ``clock`` says (tcpdump's
    -t styles; UTC time of day without one)."""
    when = (clock or Clock(utc=True)).text(row["ts_ns"])
    parts = [when] if when else []
    version = row["ip_version"]
    l4 = row["l4"]
    if version:
        has_ports = l4 in (6, 17) or (row["frag"] == FRAG_PART and (row["sport"] or row["dport"]))
        sport = row["sport"] if has_ports else None
        dport = row["dport"] if has_ports else None
        ip_at = len(parts)
        parts.append("IP" if version == 4 else "IP6")
        parts.append(f"{_endpoint(row['src_raw'], version, sport)} > "
                     f"{_endpoint(row['dst_raw'], version, dport)}:")
        if row["tunnel_depth"]:
            parts.insert(ip_at, "[" + "/".join(tunnel_layers(row["tunnel"], row["tunnel_depth"]))
                         + "]")
        if l4 == 6:
            parts.append(f"tcp [{tcp_flag_text(row['tcp_flags'])}] seq {row['seq']}")
            if row["tcp_flags"] & 0x10:
                parts.append(f"ack {row['ack']}")
            parts.append(f"win {row['win']} len {row['payload']}")
        elif l4 == 17:
            parts.append(f"udp {row['payload']}")
        elif l4 in (1, 58):
            parts.append(f"{proto_name(l4)} "
                         f"{message_text(row['icmp_type'], row['icmp_code'], v6=l4 == 58)}")
        else:
            parts.append(f"{proto_name(row['proto'])} {row['ip_len']}")
        if row["frag"] == FRAG_PART:
            parts.append("(fragment)")
        elif row["frag"] == FRAG_COMPLETE:
            parts.append("(reassembled)")
    elif row["ppp_proto"]:
        parts.append(f"PPP 0x{row['ppp_proto']:04x} length {row['wirelen']}")
    elif row["ethertype"]:
        parts.append(f"ethertype 0x{row['ethertype']:04x} length {row['wirelen']}")
    else:
        parts.append(f"linktype {row['linktype']} length {row['wirelen']}")
    if row["truncated"]:
        parts.append("[truncated]")
    if row["malformed"]:
        parts.append(f"[malformed: {reason_label(row['malformed'])}]")
    bad = [name for name, key in (("ip", "ip_csum"), (proto_name(l4), "l4_csum"))
           if row[key] == 2]
    if bad:
        parts.append(f"[bad {'+'.join(bad)} checksum]")
    return " ".join(parts)


def lines(batch: PacketBatch, clock: Clock | None = None) -> str:
    """``line`` of every packet of ``batch`` (``packet_rows``), each with its newline,
    written by the core. ``clock`` moves on as it would for each line."""
    import numpy as np

    import portlens._core as core

    return _lines(clock or Clock(utc=True), lambda: np.unique(batch.ts_ns // 10**9),
                  partial(core.packet_lines, batch))


def held_lines(file: Any, clock: Clock, rows: np.ndarray | None = None) -> str:
    """``lines`` of the batch a ``portlens._core.DecodedFile`` holds (``Pipeline.held``),
    or of its ``rows`` (a selection's), written where the core decoded it."""
    return _lines(clock, file.held_seconds, partial(file.held_lines, rows=rows))


def _lines(clock: Clock, seconds_of: Callable[[], np.ndarray],
           write: Callable[..., tuple[str, int | None, int | None]]) -> str:
    """What ``write`` (the core's) makes of a batch, given the words and the clock
    (``Clock.core_lines``)."""
    return clock.core_lines(seconds_of, partial(write, _names()))


def records(batch: PacketBatch) -> str:
    """``json.dumps(record(row))`` of every packet of ``batch`` (``packet_rows``), each with
    its newline, written by the core."""
    import portlens._core as core

    text: str = core.packet_records(batch, _names())
    return text


def held_records(file: Any, rows: np.ndarray | None = None) -> str:
    """``records`` of the batch a ``portlens._core.DecodedFile`` holds, or of its ``rows``
    (``held_lines``)."""
    text: str = file.held_records(_names(), rows)
    return text


@lru_cache(maxsize=1)
def _names() -> Any:
    """The words of a line, by number, as the core takes them (``_core.PacketNames``)."""
    import portlens._core as core

    return core.PacketNames([proto_name(p) for p in range(256)],
                            [icmp_name(t, v6=False) for t in range(256)],
                            [icmp_name(t, v6=True) for t in range(256)],
                            [TUNNEL_NAMES.get(c, "?") for c in range(16)],
                            [reason_label(c) for c in range(256)],
                            [CSUM_NAMES[c] for c in range(len(CSUM_NAMES))])


__all__ = ["flags_text", "held_lines", "held_records", "iter_rows", "line", "lines", "record",
           "records", "stats_rows", "time_text"]
