"""The command line, the API, the sharded workers and the live view track with the Rust
tracker (issue 11); the Python tracker is the reference, reached only with ``reference=True``.

On the crafted overlap the reference's fast lane recorded a false gap until issue 11's fix
(``test_rust_tracker_delivers_an_overlap_after_in_order_data``); now both trackers give the
right row there, so which tracker ran is checked by type (``new_tracker``, ``Pipeline``), and
the command line's records equal the reference's full path, field by field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import portlens
from portlens.decode import decode_capture
from portlens.pipeline import Options, Pipeline, Source, new_tracker
from portlens.report.conns import json_line, record, transition_record
from portlens.track.rust import RustTracker
from portlens.track.tracker import Tracker, TrackerConfig
from tests.corpus import corpus_dir

pytest.importorskip("portlens._core", reason="the Rust core is not built")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "loopback-sample.pcap"
RUST_HISTORY = "ShADaFf"
"""The overlap capture as it is: every byte delivered, no gap."""
REFERENCE_FAST_HISTORY = RUST_HISTORY
"""The reference's fast lane on it: since issue 11's fix, no false gap either."""


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    return subprocess.run([sys.executable, "-m", "portlens", *argv], capture_output=True,
                          text=True, timeout=300, env=env, check=False)


@pytest.fixture(scope="module")
def overlap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One connection whose third data segment repeats 50 bytes of the one before (which the
    reference's fast lane takes) and adds 50 new ones."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    def seg(fwd: bool, flags: str, seq: int, ack: int, n: int = 0) -> Any:
        a, b = ("10.0.0.1", 40000), ("10.0.0.2", 80)
        (src, sport), (dst, dport) = (a, b) if fwd else (b, a)
        p = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags,
                                                 seq=seq, ack=ack, window=65535)
        return p / Raw(b"x" * n) if n else p

    pkts = [seg(True, "S", 1000, 0), seg(False, "SA", 5000, 1001), seg(True, "A", 1001, 5001),
            seg(True, "PA", 1001, 5001, 100), seg(False, "A", 5001, 1101),
            seg(True, "PA", 1101, 5001, 100), seg(True, "PA", 1151, 5001, 100),
            seg(False, "A", 5001, 1251), seg(True, "FA", 1251, 5001),
            seg(False, "FA", 5001, 1252), seg(True, "A", 1252, 5002)]
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i / 100
    path = tmp_path_factory.mktemp("overlap") / "overlap.pcap"
    wrpcap(str(path), pkts)
    return path


def test_new_tracker_is_rust_unless_the_reference_is_asked_for() -> None:
    assert isinstance(new_tracker(), RustTracker)
    assert isinstance(new_tracker(TrackerConfig(shard=(1, 2))), RustTracker)
    assert isinstance(new_tracker(reference=True), Tracker)
    source = Source.of(SAMPLE)
    assert isinstance(Pipeline(source).tracker(), RustTracker)
    assert isinstance(Pipeline(source, Options(reference=True)).tracker(), Tracker)


def test_the_reference_fast_lane_shows_no_false_gap(overlap: Path) -> None:
    """Issue 11: the reference's fast lane records the bytes it delivers."""
    tracker = new_tracker(reference=True)
    (conn,) = [*(c for b in decode_capture(overlap) for c in tracker.feed(b)),
               *tracker.finish()]
    assert (conn.history, conn.missed_bytes) == (REFERENCE_FAST_HISTORY, 0)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cli_tracks_with_rust(overlap: Path, workers: str) -> None:
    """`conns` in one process and in sharded worker processes."""
    proc = cli("conns", "--json", "--workers", workers, str(overlap))
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert (row["history"], row["missed_bytes"], row["orig_bytes"]) == (RUST_HISTORY, 0, 250)
    assert [t["to"] for t in row["transitions"]][:3] == [
        "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]


def test_cli_reports_track_with_rust(overlap: Path) -> None:
    """`conns --format zeek` shows the Rust history; `events` streams the Rust tracker's
    transitions, which equal the reference's."""
    proc = cli("conns", "--format", "zeek", str(overlap))
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    assert RUST_HISTORY in line.split("\t")
    proc = cli("events", "--json", str(overlap))
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(ln) for ln in proc.stdout.splitlines()]
    want = [json.loads(json_line(transition_record(t)))
            for t in portlens.open(overlap, reference=True).events()]
    assert got == want
    assert len(got) == 10


def test_api_tracks_with_rust_and_the_reference_on_request(overlap: Path) -> None:
    (conn,) = portlens.open(overlap).connections()
    assert (conn.history, conn.missed_bytes) == (RUST_HISTORY, 0)
    (conn,) = portlens.open(overlap, workers=2).connections()
    assert conn.history == RUST_HISTORY
    (conn,) = portlens.open(overlap, reference=True).connections()
    assert conn.history == REFERENCE_FAST_HISTORY
    events = portlens.open(overlap).events()
    assert [str(t.new) for t in events][:2] == ["SYN-SENT", "SYN-RECEIVED"]


def _public(names: list[str]) -> list[Any]:
    corpus = corpus_dir()
    if corpus is None:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="public capture corpus not found: ../shared/captures/public"))]
    return [pytest.param(corpus / name, id=name) for name in names
            if (corpus / name).exists()]


PUBLIC = ["zeek-ftp-ipv4.pcap", "zeek-gre-tunnel.pcap", "ndpi-synscan.pcap",
          "zeek-dns-corrupt-udp-chksum.pcap"]


@pytest.mark.parametrize("path", _public(PUBLIC))
def test_cli_conns_json_equals_the_reference_tracker(path: Path) -> None:
    """What `conns --json` prints is the reference's full path, record for record (the
    transitions included)."""
    proc = cli("conns", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    tracker = new_tracker(TrackerConfig(fast_paths=False), reference=True)
    conns = [*(c for b in decode_capture(path) for c in tracker.feed(b)), *tracker.finish()]
    want = [json.loads(json_line(record(c))) for c in conns]
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert g == w


@pytest.mark.parametrize("path", _public(PUBLIC[:2]))
def test_api_connections_equal_the_reference_tracker(path: Path) -> None:
    config = TrackerConfig(fast_paths=False)
    got = [dataclasses.asdict(c) for c in portlens.open(path, config=config).connections()]
    want = [dataclasses.asdict(c)
            for c in portlens.open(path, config=config, reference=True).connections()]
    assert got == want
    assert got
