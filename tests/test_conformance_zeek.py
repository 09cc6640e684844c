"""The tracker against Zeek's own conn.log baselines (NAME.zeek-conn.log) in the corpus.

Each capture runs with the Zeek options its baseline was made with (NAME.zeek-source.txt):
without `-C`, bad checksums are dropped; bare mode (-b) loads only some protocol scripts, which
decides Zeek's likely_server_ports and so which connections it flips (docs/zeek-rules.md §3.1,
§15.0). Rows are matched on the 5-tuple in order and must agree on every column the baseline
has: conn_state, history, packets, IP bytes, payload bytes, missed_bytes and duration.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from pathlib import Path

import pytest

from portlens.decode import decode_capture
from portlens.report.conns import has_duration
from portlens.track.model import Connection
from portlens.track.tracker import DEFAULT_LIKELY_SERVER_PORTS, TrackerConfig, track
from tests.corpus import corpus_dir

HTTP = (80, 81, 631, 1080, 3128, 8000, 8080, 8888)
SSL = (443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223)
TUNNEL_UDP = (4789, 3544, 5072, 6081, 2152, 2123)
"""Tunnel packet-protocol scripts register these even in bare mode."""


def ports(tcp: tuple[int, ...] = (), udp: tuple[int, ...] = ()) -> frozenset[tuple[str, int]]:
    return frozenset([("tcp", p) for p in tcp] + [("udp", p) for p in (*udp, *TUNNEL_UDP)])


DEFAULT = DEFAULT_LIKELY_SERVER_PORTS
# capture -> (checksums dropped (no -C), likely server ports, extra TrackerConfig options)
ZEEK_OPTIONS: dict[str, tuple[bool, frozenset[tuple[str, int]], dict[str, object]]] = {
    "zeek-http-get": (True, ports(HTTP), {}),
    "zeek-tcp-missing-syn": (False, ports(HTTP), {}),
    "zeek-tcp-miss-end-data": (True, ports(HTTP), {"report_gaps_for_partial": True}),
    "zeek-ftp-ipv4": (True, ports((21, 2811)), {}),
    "zeek-ftp-ipv6": (True, ports((21, 2811)), {}),
    "zeek-pop3-rej-portreuse": (True, ports((110,)), {}),
    "zeek-dhcp-broadcast": (True, ports((), (67,)), {}),
    "zeek-irc-starttls-sll": (False, ports((*SSL, 6666, 6667, 6668, 6669), (443,)), {}),
    "zeek-gre-tunnel": (True, ports((22, 53), (53, 137, 5353, 5355, 123)), {}),
    "zeek-http-connect-null-ipv6": (False, ports((*HTTP, *SSL), (443,)), {}),
    "zeek-tcp-one-sided": (False, ports(), {}),
    "zeek-localhost-bad-chksum": (True, ports(), {}),
    "zeek-vlan-qinq": (True, ports(), {}),
    "zeek-ppp-linktype": (True, ports(), {}),
    "zeek-vxlan-tunnel": (True, ports(), {}),
    "zeek-tcp-retransmit-fast009": (False, DEFAULT, {}),
    "zeek-pcapng-multi-interface": (False, DEFAULT, {}),
    "zeek-modbus-p502-rst": (True, DEFAULT, {}),
    "zeek-ssh-half-duplex-client": (True, DEFAULT, {}),
    "zeek-http-to-ssh-rstr": (True, DEFAULT, {}),
    "zeek-https-to-http-rsto": (True, DEFAULT, {}),
    "zeek-dns-corrupt-udp-chksum": (True, DEFAULT, {}),
    "zeek-pppoe-icmp": (True, DEFAULT, {}),
    "zeek-wikipedia": (True, DEFAULT, {}),
}
VARIANTS = {"ignore_checksums_nets": {"ignore_checksum_nets": ("192.168.0.0/16",)}}

COMPARED = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "duration",
            "orig_bytes", "resp_bytes", "conn_state", "missed_bytes", "history", "orig_pkts",
            "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")

KNOWN_DIFFERENCES: dict[tuple[str, int], str] = {}
"""(baseline, row) -> why portlens deliberately differs. Empty: every row agrees."""


def load_baseline(path: Path) -> list[dict[str, str]]:
    rows, fields = [], None
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if line.startswith("#") or not line.strip():
            continue
        if fields is None:
            fields = line.split("\t")
            continue
        rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def zeek_view(c: Connection) -> dict[str, str]:
    d = has_duration(c)
    us = c.duration_ns // 1000
    return {
        "id.orig_h": c.orig_h, "id.orig_p": str(c.orig_p), "id.resp_h": c.resp_h,
        "id.resp_p": str(c.resp_p), "proto": c.proto,
        "duration": f"{us // 1_000_000}.{us % 1_000_000:06d}" if d else "-",
        "orig_bytes": str(c.orig_bytes) if d else "-",
        "resp_bytes": str(c.resp_bytes) if d else "-", "conn_state": c.conn_state,
        "missed_bytes": str(c.missed_bytes), "history": c.history or "-",
        "orig_pkts": str(c.orig_pkts), "orig_ip_bytes": str(c.orig_ip_bytes),
        "resp_pkts": str(c.resp_pkts), "resp_ip_bytes": str(c.resp_ip_bytes),
    }


def _norm(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


def baselines() -> list[object]:
    root = corpus_dir()
    if root is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(
            reason="public capture corpus not found: set PORTLENS_CORPUS or provide "
                   "../shared/captures/public"))]
    out = []
    for log in sorted(root.glob("*.zeek-conn*.log")):
        name = log.name.split(".")[0]
        variant = log.name.split(".")[2] if log.name.count(".") > 2 else ""
        out.append(pytest.param(name, variant, id=f"{name}{'.' + variant if variant else ''}"))
    return out


def zeek_config(name: str, variant: str = "") -> TrackerConfig:
    """The tracker set up as Zeek was for this baseline (its options and loaded scripts)."""
    drop, likely, extra = ZEEK_OPTIONS[name]
    options = dict(extra)
    if variant:
        options.update(VARIANTS[variant])
    return TrackerConfig(drop_bad_checksums=drop, likely_server_ports=likely,
                         **options)  # type: ignore[arg-type]


def compare(name: str, variant: str) -> tuple[int, list[str]]:
    root = corpus_dir()
    assert root is not None
    config = zeek_config(name, variant)
    capture = next(p for p in root.glob(name + ".pcap*"))
    got = [zeek_view(c) for c in track(decode_capture(capture), config)]
    suffix = f".{variant}" if variant else ""
    expected = load_baseline(root / f"{name}.zeek-conn{suffix}.log")
    pool: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
    for g in got:
        pool[(g["id.orig_h"], g["id.orig_p"], g["id.resp_h"], g["id.resp_p"])].append(g)
    failures = []
    ok = 0
    for i, e in enumerate(expected):
        for k in ("id.orig_h", "id.resp_h"):
            if k in e:
                e[k] = _norm(e[k])
        key = (e.get("id.orig_h", ""), e.get("id.orig_p", ""), e.get("id.resp_h", ""),
               e.get("id.resp_p", ""))
        if "id.orig_h" in e:
            candidates = pool.get(key)
            g = candidates.pop(0) if candidates else None
        else:
            g = got[i] if i < len(got) else None
        if g is None:
            failures.append(f"row {i}: missing {key}")
            continue
        diffs = [f"{f}: zeek {e[f]} portlens {g[f]}" for f in COMPARED if f in e and e[f] != g[f]]
        if diffs and (name, i) not in KNOWN_DIFFERENCES:
            failures.append(f"row {i} {key}: " + "; ".join(diffs))
        else:
            ok += 1
    if len(got) != len(expected):
        failures.append(f"zeek logged {len(expected)} connections, portlens {len(got)}")
    return ok, failures


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "variant"), baselines())
def test_conn_log_matches_zeek(name: str, variant: str) -> None:
    _ok, failures = compare(name, variant)
    assert not failures, "\n".join(failures)
