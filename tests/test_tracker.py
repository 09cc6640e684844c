"""Tracker behaviour beyond the Zeek baselines: fast paths equal the reference path, flat
memory with a flow cap, port reuse, timeouts as settings, tshark conversation counts."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from portlens.decode import decode_capture
from portlens.decode.packets import PacketBatch
from portlens.report.conns import record
from portlens.track.model import EndReason
from portlens.track.timeouts import Timeouts
from portlens.track.tracker import Tracker, TrackerConfig, track
from tests.corpus import corpus_captures, corpus_dir

REPO = Path(__file__).resolve().parent.parent


def _all_fields(config: TrackerConfig, paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        for c in track(decode_capture(path), config):
            r = record(c)
            r.pop("uid")
            for t in r["transitions"]:
                t.pop("uid")
            out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A realistic capture from the benchmark generator (30k packets, many connections)."""
    out = tmp_path_factory.mktemp("gen") / "gen.pcap"
    subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "generate",
                    "--packets", "30000", "--out", str(out), "--seed", "7"], check=True,
                   capture_output=True)
    return out


def test_fast_paths_equal_reference_path(generated: Path) -> None:
    paths = [generated, *corpus_captures(), *sorted((REPO / "captures").glob("*.pcap"))]
    fast = _all_fields(TrackerConfig(), paths)
    slow = _all_fields(TrackerConfig(fast_paths=False), paths)
    assert len(fast) == len(slow) > 1000
    assert fast == slow


def test_fast_paths_equal_reference_path_with_tiny_batches(generated: Path) -> None:
    """Batch boundaries fall everywhere: the bulk path must not depend on where."""
    def run(config: TrackerConfig) -> list[str]:
        out = []
        for c in track(decode_capture(generated, chunk_bytes=4096), config):
            r = record(c)
            r.pop("uid")
            out.append(json.dumps(r, sort_keys=True, default=str))
        return sorted(out)

    assert run(TrackerConfig()) == run(TrackerConfig(fast_paths=False))


def test_flow_cap_evicts_longest_idle_and_memory_stays_flat(generated: Path) -> None:
    batches = list(decode_capture(generated))
    cap = 50
    tracker = Tracker(TrackerConfig(max_flows=cap))
    tracemalloc.start()
    ended = []
    peak_table = 0
    for _ in range(3):  # the same traffic three times over: far more flows than the cap
        for b in batches:
            ended += tracker.feed(b)
            peak_table = max(peak_table, len(tracker.table))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ended += tracker.finish()
    assert peak_table <= cap
    evicted = [c for c in ended if c.end_reason == EndReason.EVICTED]
    # Evicted connections that had already closed keep their fin/rst reason.
    closed = [c for c in ended if c.end_reason in (EndReason.FIN, EndReason.RST)]
    assert len(evicted) > 100
    assert len(evicted) <= tracker.evicted <= len(evicted) + len(closed)
    assert len(tracker.live) == 0
    assert peak < 64 * 2**20, f"tracker held {peak / 2**20:.0f} MiB"


def test_timeouts_are_settings() -> None:
    t = Timeouts().with_seconds(tcp_inactivity=10, udp_inactivity=1.5)
    assert t.tcp_inactivity == 10 * 10**9 and t.udp_inactivity == 1_500_000_000
    with pytest.raises(ValueError, match="unknown timeout"):
        Timeouts().with_seconds(nope=1)


def test_udp_inactivity_splits_flows() -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from portlens.sources.frames import FrameBatch
    frames = [bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=53)
                    / b"q")] * 3
    ts = [0, 10**9, 100 * 10**9]  # the third packet comes after 99 s of silence
    from portlens.decode import Decoder
    batch: PacketBatch = Decoder().decode(FrameBatch.from_frames(frames, ts, linktype=1))
    conns = list(track(iter([batch]), TrackerConfig(dns_timeout=False)))
    assert [c.orig_pkts for c in conns] == [2, 1]
    assert [str(c.end_reason) for c in conns] == ["idle", "end-of-capture"]
    short = Timeouts().with_seconds(udp_inactivity=0.5)
    conns = list(track(iter([batch]), TrackerConfig(timeouts=short, dns_timeout=False)))
    assert [c.orig_pkts for c in conns] == [1, 1, 1]


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["zeek-http-get", "zeek-wikipedia", "zeek-ftp-ipv4",
                                  "zeek-irc-starttls-sll", "zeek-modbus-p502-rst",
                                  "zeek-http-connect-null-ipv6", "zeek-ftp-ipv6"])
def test_conversations_match_tshark(name: str) -> None:
    """Per-conversation packets and payload bytes equal tshark's where Zeek does not split."""
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found")
    oracle = json.loads((root / f"{name}.tshark.json").read_text())
    capture = next(root.glob(name + ".pcap*"))
    conns = list(track(decode_capture(capture), TrackerConfig()))
    by_tuple: dict[frozenset[tuple[str, int]], list[object]] = {}
    for c in conns:
        by_tuple.setdefault(frozenset({(c.orig_h, c.orig_p), (c.resp_h, c.resp_p)}),
                            []).append(c)
    checked = 0
    for kind in ("tcp_conversations", "udp_conversations"):
        for conv in oracle.get(kind, []):
            a = (conv["a"]["ip"], int(conv["a"]["port"]))
            b = (conv["b"]["ip"], int(conv["b"]["port"]))
            matches = by_tuple.get(frozenset({a, b}), [])
            if len(matches) != 1:
                continue  # Zeek's rules split this tshark stream (reuse, timeouts): not comparable
            c = matches[0]
            a_is_orig = (c.orig_h, c.orig_p) == a  # type: ignore[attr-defined]
            a_pk, b_pk = (c.orig_pkts, c.resp_pkts) if a_is_orig else (  # type: ignore[attr-defined]
                c.resp_pkts, c.orig_pkts)  # type: ignore[attr-defined]
            assert (a_pk, b_pk) == (conv["a_to_b"]["packets"], conv["b_to_a"]["packets"]), conv
            a_ip, b_ip = (c.orig_ip_bytes, c.resp_ip_bytes) if a_is_orig else (  # type: ignore[attr-defined]
                c.resp_ip_bytes, c.orig_ip_bytes)  # type: ignore[attr-defined]
            assert (a_ip, b_ip) == (conv["a_to_b"]["ip_bytes"], conv["b_to_a"]["ip_bytes"])
            checked += 1
    assert checked > 0


def test_port_reuse_after_close_starts_new_connection() -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found")
    conns = list(track(decode_capture(root / "zeek-pop3-rej-portreuse.pcap"), TrackerConfig(
        drop_bad_checksums=True)))
    same = [c for c in conns if (c.orig_p, c.resp_h) == (26242, "212.227.15.188")]
    assert [c.conn_state for c in same] == ["REJ", "REJ", "REJ"]
    assert all(c.history == "Sr" for c in same)




def test_a_jump_in_capture_time_fires_timers_once() -> None:
    """A corrupt timestamp decades ahead must not make periodic timers fire per period."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from portlens.decode import Decoder
    from portlens.sources.frames import FrameBatch

    a, b = "10.0.0.1", "10.0.0.2"
    frames = [bytes(Ether() / IP(src=a, dst=b) / TCP(sport=40000, dport=80, flags="S", seq=1)),
              bytes(Ether() / IP(src=b, dst=a) / TCP(sport=80, dport=40000, flags="SA", seq=9,
                                                     ack=2)),
              bytes(Ether() / IP(src=a, dst=b) / TCP(sport=40000, dport=80, flags="A", seq=2,
                                                     ack=10)),
              bytes(Ether() / IP(src=a, dst=b) / TCP(sport=40001, dport=80, flags="S", seq=5))]
    ts = [0, 10**6, 2 * 10**6, 40 * 365 * 86400 * 10**9]  # the last: 40 years later
    batch = Decoder().decode(FrameBatch.from_frames(frames, ts, linktype=1))
    tracker = Tracker()
    ended = [*tracker.feed(batch), *tracker.finish()]
    assert [c.orig_p for c in ended] == [40000, 40001]
    assert tracker.timer_seq < 20  # timers armed in all: a handful, not one per 6 s of 40 years
