"""How a tracker runs (TrackerConfig), apart from the tracker: the command line and the
pipeline build one for every run, `packets --stats` included, which never tracks and need not
import the tracker (or numpy) to do it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from portlens.track.timeouts import Timeouts

__all__ = ["DEFAULT_LIKELY_SERVER_PORTS", "TrackerConfig", "shard_config"]

_HTTP = (80, 81, 631, 1080, 3128, 8000, 8080, 8888)
_SSL = (443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223)
DEFAULT_LIKELY_SERVER_PORTS: frozenset[tuple[str, int]] = frozenset(
    [("tcp", p) for p in (*_HTTP, *_SSL, 21, 2811, 22, 25, 587, 110, 143, 6666, 6667, 6668,
                          6669, 502, 139, 445, 135, 88, 3389, 53, 79, 389, 1883, 3306, 5432,
                          6379, 20000, 5222, 5269, *range(5900, 5910))]
    + [("udp", p) for p in (53, 137, 5353, 5355, 67, 123, 161, 162, 514, 1812, 88, 5060, 443,
                            4789, 3544, 5072, 6081, 2152, 2123, 20000, 389)])
"""Ports Zeek (with its default scripts) takes for servers when it must guess roles (§3.1)."""


@dataclass(frozen=True)
class TrackerConfig:
    timeouts: Timeouts = field(default_factory=Timeouts)
    drop_bad_checksums: bool = False
    """Zeek without -C: packets with bad checksums are not counted (history c/C)."""
    likely_server_ports: frozenset[tuple[str, int]] = DEFAULT_LIKELY_SERVER_PORTS
    report_gaps_for_partial: bool = False
    dns_timeout: bool = True
    """Zeek's DNS analyzer is attached to UDP flows whose responder port is a DNS port: it
    ends them after 10 s idle instead of 60 s, and flips one whose first message is a
    response from the originator (§3.4)."""
    ntp_analyzer: bool = True
    """Zeek's NTP analyzer is attached to UDP flows whose responder port is 123: it flips one
    on a server message from the originator or a client message from the responder (§3.4)."""
    max_flows: int = 200_000
    """Open flows kept at most; beyond it the longest idle is evicted (end reason evicted).
    The default keeps a SYN flood of a million sources within 300 MB with the Rust tracker
    (docs/benchmarks.md)."""
    vlan_in_key: bool = False
    keep_transitions: bool = True
    fast_paths: bool = True
    """Apply ordinary in-order segments of established connections with array reductions
    (track/bulk.py) or the per-packet fast lane (TcpConnection.try_fast); False runs every
    packet through the full per-packet path, the reference the fast paths are tested against."""
    segment_marks: bool = False
    """Record per TCP segment which analysis counters it moved (Connection.segment_marks),
    for the ladder diagram; implies the full per-packet path for every packet."""
    shard: tuple[int, int] | None = None
    """(k, n): track only the flows whose host pair hashes to k modulo n (one of n workers)."""
    threads: int = 1
    """The compiled tracker: flow shards tracked in this many threads, with the rows of one
    (crates/core/src/track/shards.rs; ``--workers``). The reference tracks in one."""
    ignore_checksum_nets: tuple[str, ...] = ()
    """Networks whose packets are never checksum-checked (Zeek's ignore_checksums_nets)."""


def shard_config(config: TrackerConfig, k: int, n: int) -> TrackerConfig:
    """The configuration of shard k of n: its flows only, and its share of the flow cap
    (the shards together keep what one tracker would; as the compiled tracker's threads
    share it, crates/core/src/track/shards.rs)."""
    return replace(config, shard=(k, n), max_flows=-(-config.max_flows // n))
