"""Frames that give more than one row (column sub, docs/decoding.md *Rows per frame*): an
A-MSDU's subframes and the middle carriers of three tunnels, on the crafted captures of
captures/encap/ (scripts/make_encaps.py). Frame counts count frames (packets --stats, -c,
-w), the listing prints a line per packet, a filter keeps a middle carrier's row with its
packet's, so that every carrier level still makes its connection."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from portlens.analysis.capture_stats import CaptureStats
from portlens.cli import main
from portlens.pipeline import Options, Pipeline, Source
from portlens.sources.files import open_capture

ENCAP = Path(__file__).resolve().parent.parent / "captures" / "encap"
AMSDU = str(ENCAP / "encap-amsdu.pcap")
NESTED = str(ENCAP / "encap-nested3.pcap")

if importlib.util.find_spec("portlens._core") is None:
    pytest.skip("portlens._core is not built: 802.11 is the compiled decoder's",
                allow_module_level=True)


def frame_bytes(path: Path) -> list[bytes]:
    with open_capture(path) as reader:
        return [b.frame_bytes(i) for b in reader for i in range(len(b))]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().out


@pytest.mark.parametrize("scan", [True, False])
def test_stats_count_frames_by_their_own_row(scan: bool) -> None:
    """PacketScan (read whole) and CaptureStats.add (batch by batch) alike: 3 frames,
    protocols by each frame's own row (the first subframe, the innermost packet)."""
    for path, protocols in ((AMSDU, {"ipv4/udp": 2, "ipv4/tcp": 1}),
                            (NESTED, {"ipv4/tcp": 3})):
        stats = CaptureStats()
        Pipeline(Source.of(path), Options(count=None if scan else 10**6)).count_stats(stats)
        assert (stats.frames, dict(stats.protocols)) == (3, protocols)


def test_listing_prints_a_line_per_packet(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = run(capsys, "packets", "--json", AMSDU)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0
    assert [(r["frame"], r["sport"], r["dport"]) for r in rows] == [
        (1, 40300, 7777), (1, 40200, 80), (2, 7777, 40300), (2, 40400, 9999),
        (2, 80, 40200), (3, 40200, 80)]
    rc, out = run(capsys, "packets", "--json", NESTED)
    assert [json.loads(line)["frame"] for line in out.splitlines()] == [1, 2, 3]


def test_count_and_write_take_whole_frames(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    out_file = tmp_path / "first.pcap"
    rc, out = run(capsys, "packets", "-c", "2", "-w", str(out_file), AMSDU)
    assert rc == 0
    assert len(out.splitlines()) == 5  # frames 1 and 2: their 5 subframes
    assert frame_bytes(out_file) == frame_bytes(Path(AMSDU))[:2]


def test_a_filter_keeps_the_middle_carriers_with_their_packet(
        capsys: pytest.CaptureFixture[str]) -> None:
    """-f selects the TCP packets; their carriers (GTP-U, Geneve, VXLAN) still count, each
    level a connection whose parent is the level around it."""
    rc, out = run(capsys, "conns", "--json", "-f", "tcp port 443", NESTED)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0
    by_uid = {r["uid"]: r["id.orig_p"] for r in rows}
    got = sorted((r["id.orig_p"], r["id.resp_p"], sorted(by_uid.get(u, 0) for u in
                                                         r["tunnel_parents"])) for r in rows)
    assert got == [(2152, 2152, []), (40500, 443, [50041, 50043]), (50040, 6081, [2152]),
                   (50041, 4789, [50040]), (50042, 6081, [2152]), (50043, 4789, [50042])]


def test_every_carrier_level_has_its_ladder(capsys: pytest.CaptureFixture[str]) -> None:
    """--conn on each carrier's connection (outermost, middle, innermost) selects its
    datagrams once each: the ladder of a middle carrier is its own rows, the outermost's
    packets are not doubled by the middle carriers' rows (which carry the same out_*)."""
    rc, out = run(capsys, "conns", "--json", NESTED)
    uids = {r["id.orig_p"]: r["uid"] for r in map(json.loads, out.splitlines())}
    for port, lengths in ((2152, ["len=160", "len=148"]), (50040, ["len=124"]),
                          (50041, ["len=74"]), (50043, ["len=62"])):
        rc, out = run(capsys, "ladder", NESTED, "--conn", uids[port])
        assert rc == 0
        assert [w for w in out.split() if w.startswith("len=")] == lengths, port
