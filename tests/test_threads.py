"""--workers on the compiled tracker: flow shards tracked in threads of one process
(crates/core/src/track/shards.rs) give one tracker's connections, field by field, transitions
included, in its order, on every public capture; and how many threads a command uses by
default."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType

import pytest

import portlens
from portlens.cli.common import cpu_count, workers
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track import rust
from portlens.track.config import TrackerConfig
from tests.corpus import corpus_params


@pytest.mark.parametrize("path", corpus_params())
def test_threads_give_one_trackers_connections(path: Path) -> None:
    one = portlens.open(str(path)).connections()
    for n in (2, 3):
        got = portlens.open(str(path), workers=n).connections()
        assert len(got) == len(one)
        for a, b in zip(got, one, strict=True):
            assert a == b, f"{n} threads: {a.uid} differs from one tracker's {b.uid}"


OWN_CAPTURES = sorted((Path(__file__).resolve().parent.parent / "captures").rglob("*.pcap*"))


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_threads_give_one_trackers_connections_on_own_captures(path: Path) -> None:
    """Those include tunnels.pcap, whose one inner flow comes through GRE, 4in6, Geneve and
    VXLAN in GRE between different outer pairs: one connection, as in one tracker, though
    its carriers are other shards' (crates/core/src/track/carriers.rs)."""
    one = portlens.open(str(path)).connections()
    for n in (2, 3):
        assert list(portlens.open(str(path), workers=n).connections()) == list(one), n


@pytest.mark.parametrize("mode", ["moving", "steady"])
def test_threads_give_one_trackers_connections_through_tunnels(
        mode: str, bench_script: ModuleType, generated_20k: Path, tmp_path: Path) -> None:
    """The benchmark's mix carried in VXLAN (scripts/bench.py ``carry_in_tunnels``): each
    flow through one of eight pairs of endpoints, or every flow moving between VXLAN and GRE
    tunnels of different endpoints packet by packet. Inner flows and UDP carriers fall in
    different shards, the carriers' uids cross between them (crates/core/src/track/
    carriers.rs), and moving connections pass Zeek's five changes of tunnel ('X'). Threads
    give one tracker's connections, and one tracker the reference's."""
    path = tmp_path / f"{mode}.pcap"
    assert bench_script.carry_in_tunnels(generated_20k, path, mode) >= 20_000
    one = list(portlens.open(str(path)).connections())
    assert one == list(portlens.open(str(path), reference=True).connections())
    for n in (2, 3):
        assert list(portlens.open(str(path), workers=n).connections()) == one, n
    carriers = [c for c in one if c.resp_p == 4789]
    inner = [c for c in one if c.tunnel_parents and c.resp_p != 4789]
    # steady: each pair of endpoints sends both ways, from its port to the other's 4789
    assert len(carriers) == (6 if mode == "moving" else 16) and len(inner) > 300
    moved = [c for c in inner if len(c.tunnel_parents) > 2]
    assert (len(moved) > 100) == (mode == "moving")
    assert any("X" in c.history for c in moved) == (mode == "moving")


@pytest.mark.parametrize("path", corpus_params())
def test_the_end_of_the_capture_in_parts(path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The connections open at the end are handed over a few at a time (FINISH_ROWS: a
    flood's 200,000 at once took 165 MB), in one tracker's order, with one thread or more, as
    Connections and as the conn.log the core writes from the columns."""
    from portlens.cli import main

    def zeek() -> list[str]:
        assert main(["conns", "--format", "zeek", "--workers", "2", str(path)]) in (0, 1)
        return [line for line in capsys.readouterr().out.splitlines()
                if not line.startswith(("#open", "#close"))]

    whole, whole_zeek = list(portlens.open(str(path)).connections()), zeek()
    monkeypatch.setattr(rust, "FINISH_ROWS", 2)
    assert zeek() == whole_zeek
    for n in (1, 2):
        assert list(portlens.open(str(path), workers=n).connections()) == whole

def test_threads_share_out_the_flow_cap(tmp_path: Path) -> None:
    """A cap of 2 shared by 2 threads: one open flow a shard; every flow is still reported,
    evictions counted over both."""
    from tests.test_cli import SAMPLE

    config = TrackerConfig(max_flows=2)
    one = Pipeline(Source.of(SAMPLE), Options(tracker=config))
    two = Pipeline(Source.of(SAMPLE), Options(tracker=config, workers=2))
    assert (one.threads, two.threads, two.sharded) == (1, 2, False)
    rows_one, rows_two = list(one.connections()), list(two.connections())
    assert sum(c.orig_pkts + c.resp_pkts for c in rows_two) == sum(
        c.orig_pkts + c.resp_pkts for c in rows_one)
    assert one.evicted > 0 and two.evicted > 0
    wide = Pipeline(Source.of(SAMPLE), Options(workers=2))
    assert list(wide.connections()) != rows_two and wide.evicted == 0


def _args(command: str, given: int | None = None, **more: object) -> argparse.Namespace:
    return argparse.Namespace(command=command, workers=given, **more)


def test_default_workers_are_every_cpu_but_the_reading_one() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert cpu_count() == cpus
    assert workers(_args("conns")) == max(1, cpus - 1)
    assert workers(_args("conns", 3)) == 3
    assert workers(_args("events")) == 1
    assert workers(_args("ladder")) == 1
    assert workers(_args("conns", reference=True)) == 1
    assert workers(_args("conns", 2, reference=True)) == 2


def test_a_live_capture_and_the_reference_track_in_one_thread() -> None:
    from tests.test_cli import SAMPLE

    ref = Pipeline(Source.of(SAMPLE), Options(workers=2, reference=True))
    assert (ref.threads, ref.sharded) == (1, True)  # worker processes
    dask = Pipeline(Source.of(SAMPLE), Options(workers=2, dask="local"))
    assert (dask.threads, dask.sharded) == (1, True)


def _router_errors(path: Path, routers: int) -> list[tuple[str, str]]:
    """A pcap where client i sends a SYN to server i and router i answers with an ICMP
    host unreachable quoting it: the error's host pair (router, client) is not the quoted
    flow's (client, server). Returns the (client, server) pairs."""
    from scapy.layers.inet import ICMP, IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    packets = []
    pairs = []
    for i in range(routers):
        client, server, router = f"10.1.{i}.1", f"10.2.{i}.2", f"10.3.{i}.254"
        syn = IP(src=client, dst=server) / TCP(sport=40000 + i, dport=443, flags="S", seq=7)
        for p in (Ether() / syn, Ether() / IP(src=router, dst=client) / ICMP(type=3, code=1)
                  / bytes(syn)[:28]):
            p.time = 1_700_000_000 + len(packets) / 1000
            packets.append(p)
        pairs.append((client, server))
    wrpcap(str(path), packets)
    return pairs


def test_a_routers_icmp_error_reaches_its_flow_in_another_shard(tmp_path: Path) -> None:
    """Each error goes to its quoted flow, which one tracker finds by the quoted sockets:
    with threads (the core's shards) and with the reference tracker's worker processes
    (track/tracker.py shard_of), where the quoted flow's host pair is another shard's."""
    from portlens.decode import Decoder
    from portlens.sources.files import open_capture
    from portlens.track.tracker import quoted_shard_of, shard_of

    path = tmp_path / "router-errors.pcap"
    pairs = _router_errors(path, 16)
    one = [c for c in portlens.open(str(path)).connections() if c.proto == "tcp"]
    assert [(c.orig_h, c.resp_h) for c in one] == pairs
    assert all(c.icmp_errors == [(3, 1)] for c in one)
    # the Python hash puts some error rows in another shard than their quoted flows
    with open_capture(path) as reader:
        batch = Decoder().decode(next(iter(reader)))
    errors = batch.l4 == 1
    own = shard_of(batch, 2)
    assert (quoted_shard_of(batch, 2, own)[errors] != own[errors]).any()
    for options in ({"workers": 2}, {"workers": 3}, {"workers": 4},
                    {"workers": 2, "reference": True}):
        got = [c for c in portlens.open(str(path), **options).connections()
               if c.proto == "tcp"]
        assert got == one, options
