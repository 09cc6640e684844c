"""Smoke test of the benchmark capture generator (scripts/bench.py), read back with dpkt."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import ModuleType

import dpkt
import pytest


def _ocsum(data: bytes) -> int:
    """Ones-complement sum folded to 16 bits (0xFFFF for a correct checksummed block)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _l4_ok(ip: dpkt.ip.IP | dpkt.ip6.IP6, proto: int, l4: bytes) -> bool:
    if isinstance(ip, dpkt.ip.IP):
        pseudo = ip.src + ip.dst + struct.pack(">BBH", 0, proto, len(l4))
    else:
        pseudo = ip.src + ip.dst + struct.pack(">IxxxB", len(l4), proto)
    return _ocsum(pseudo + l4) == 0xFFFF


@pytest.fixture(scope="module")
def generated(bench_script: ModuleType, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, dict[str, object]]:
    bench = bench_script
    out = tmp_path_factory.mktemp("bench") / "small.pcap"
    summary_path = out.with_suffix(".json")
    # A higher bad-checksum rate than the default 0.1 % so a small capture has some.
    bench.generate(2000, out, seed=7, bad_rate=0.02, summary_json=summary_path)
    return out, json.loads(summary_path.read_text())


def test_generated_capture_matches_its_summary(
    generated: tuple[Path, dict[str, object]],
) -> None:
    path, summary = generated
    n = tcp = udp = v6 = bad_l4 = bad_ip = 0
    last_ts = 0.0
    conns: set[tuple[bytes, bytes, int, int]] = set()
    with path.open("rb") as fh:
        for ts, frame in dpkt.pcap.Reader(fh):
            n += 1
            assert ts >= last_ts
            last_ts = ts
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            assert isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6)
            if isinstance(ip, dpkt.ip.IP):
                bad_ip += _ocsum(bytes(frame[14:34])) != 0xFFFF
                proto, l4 = ip.p, bytes(frame[34:14 + ip.len])
            else:
                v6 += 1
                proto, l4 = ip.nxt, bytes(frame[54:54 + ip.plen])
            if proto == dpkt.ip.IP_PROTO_TCP:
                tcp += 1
                bad_l4 += not _l4_ok(ip, proto, l4)
                seg = ip.data
                if seg.flags & dpkt.tcp.TH_SYN and not seg.flags & dpkt.tcp.TH_ACK:
                    conns.add((ip.src, ip.dst, seg.sport, seg.dport))
                    assert 32768 <= seg.sport <= 60999
            elif proto == dpkt.ip.IP_PROTO_UDP:
                udp += 1
                bad_l4 += not _l4_ok(ip, proto, l4)
            elif proto == dpkt.ip.IP_PROTO_ICMP:
                assert _ocsum(l4) == 0xFFFF
            else:
                assert proto == dpkt.ip.IP_PROTO_ICMP6
                assert _l4_ok(ip, proto, l4)
    assert n == summary["packets"]
    assert 1700 <= n <= 2600
    assert 0.6 <= tcp / n <= 0.9
    assert 0.1 <= udp / n <= 0.3
    assert 0.04 <= v6 / n <= 0.2
    assert bad_ip == 0
    assert bad_l4 == summary["bad_l4_checksums"] > 0
    tc = summary["tcp_connections"]
    assert isinstance(tc, dict)
    assert len(conns) == tc["total"] - tc["midstream"]


def test_generator_is_deterministic(bench_script: ModuleType, tmp_path: Path) -> None:
    bench = bench_script
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    bench.generate(500, a, seed=3)
    bench.generate(500, b, seed=3)
    assert a.read_bytes() == b.read_bytes()
    with a.open("rb") as fh:
        first = next(iter(dpkt.pcap.Reader(fh)))[1]
    assert struct.unpack(">H", first[12:14])[0] in (0x0800, 0x86DD)
