"""`portlens hosts` and `portlens convs` against tshark's -z endpoints and -z conv, run here on
public captures: every frame count and byte count equal."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from portlens.cli import main
from tests.corpus import corpus_dir

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
PUBLIC = ("zeek-ftp-ipv4", "zeek-ftp-ipv6", "ndpi-synscan", "zeek-wikipedia",
          "ndpi-dns-fragmented", "zeek-http-connect-null-ipv6")
"""Captures without IP tunnels (tshark counts a tunnelled frame for every IP layer; portlens
for the innermost, docs/formats.md)."""

IPV4_ONLY = {"ndpi-dns-fragmented"}
"""tshark 4.0 leaves IPv6 fragments other than a datagram's last out of its IPv6 tables (its
ipv6 tap does not run for them); portlens counts every frame, so there only IPv4 compares."""

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

CONV = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+(\d+) (bytes|kB|MB|GB)\s+(\d+)\s+(\d+) "
                  r"(bytes|kB|MB|GB)\s+(\d+)\s+\S+ (?:bytes|kB|MB|GB)\s+([\d.]+)\s+([\d.]+)\s*$")
ENDPOINT = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def captures() -> list[object]:
    root = corpus_dir()
    out: list[object] = [pytest.param(CAPTURES / "loopback-sample.pcap", id="loopback-sample")]
    for name in PUBLIC:
        if root is None:
            out.append(pytest.param(None, id=name, marks=pytest.mark.skip(
                reason="public capture corpus not found")))
        else:
            out.append(pytest.param(root / f"{name}.pcap", id=name))
    return out


def tshark(path: Path, *stats: str) -> list[str]:
    if path.stem in IPV4_ONLY:
        stats = tuple(s for s in stats if not s.endswith("ipv6"))
    args = [a for s in stats for a in ("-z", s)]
    return subprocess.run(["tshark", "-n", "-q", "-r", str(path), *args], capture_output=True,
                          text=True, timeout=300, check=True).stdout.splitlines()


def ours(capsys: pytest.CaptureFixture[str], path: Path, *argv: str) -> list[dict[str, object]]:
    assert main([*argv, str(path)]) in (0, 1)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [r for r in rows if r["ip_version"] == 4 or path.stem not in IPV4_ONLY]


@needs_tshark
@pytest.mark.parametrize("path", captures())
def test_hosts_equal_tshark_endpoints(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    theirs = {m.group(1): tuple(int(m.group(i)) for i in range(2, 8))
              for line in tshark(path, "endpoints,ip", "endpoints,ipv6")
              if (m := ENDPOINT.match(line))}
    got = {r["addr"]: (r["pkts"], r["bytes"], r["tx_pkts"], r["tx_bytes"], r["rx_pkts"],
                       r["rx_bytes"]) for r in ours(capsys, path, "hosts", "--json")}
    assert theirs and got == theirs


@needs_tshark
@pytest.mark.parametrize("path", captures())
def test_convs_equal_tshark_conversations(path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    theirs: dict[tuple[str, str], tuple[int, ...]] = {}
    exact_bytes: dict[tuple[str, str], tuple[int, ...]] = {}
    for line in tshark(path, "conv,ip", "conv,ipv6"):
        m = CONV.match(line)
        if not m:
            continue
        a, b = m.group(1), m.group(2)
        ba, ab = (int(m.group(3)), int(m.group(4))), (int(m.group(6)), int(m.group(7)))
        theirs[(a, b)] = (ab[0], ba[0], round(float(m.group(11)), 3))
        if m.group(5) == m.group(8) == "bytes":  # tshark rounds larger counts (10 kB)
            exact_bytes[(a, b)] = (ab[1], ba[1])
    got: dict[tuple[str, str], tuple[int, ...]] = {}
    got_bytes: dict[tuple[str, str], tuple[int, ...]] = {}
    for r in ours(capsys, path, "convs", "--json"):
        a, b = str(r["a"]), str(r["b"])
        pkts, size = (r["pkts_ab"], r["pkts_ba"]), (r["bytes_ab"], r["bytes_ba"])
        if (a, b) not in theirs and (b, a) in theirs:  # tshark chose the other side as A
            a, b, pkts, size = b, a, pkts[::-1], size[::-1]
        duration = round(int(str(r["duration_ns"])) / 1e9, 3)
        got[(a, b)] = (*pkts, duration)  # type: ignore[arg-type]
        if (a, b) in exact_bytes:
            got_bytes[(a, b)] = size  # type: ignore[assignment]
    assert theirs and got == theirs
    assert got_bytes == exact_bytes


def test_convs_and_hosts_outputs(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found")
    scan = str(root / "ndpi-synscan.pcap")
    assert main(["convs", "--csv", scan]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "a,b,ip_version,pkts_ab,bytes_ab,pkts_ba,bytes_ba,pkts,bytes,first_ts_ns,last_ts_ns,"
        "duration_ns",
        "172.16.0.8,64.13.134.52,4,1994,115652,17,1020,2011,116672,1278275056274870000,"
        "1278275079360213000,23085343000"]
    # -c counts frames on files too; --sort and --top pick the rows.
    wiki = str(root / "zeek-wikipedia.pcap")
    rows = [json.loads(line) for line in _out(capsys, "hosts", "--top", "2", "--sort",
                                               "packets", "-c", "30", "--json", wiki)]
    assert [(r["addr"], r["pkts"], r["tx_pkts"], r["rx_pkts"], r["peers"]) for r in rows] == [
        ("141.142.220.118", 25, 15, 10, 4), ("141.142.2.2", 12, 6, 6, 1)]
    monkeypatch.setenv("COLUMNS", "200")
    table = _out(capsys, "convs", "--top", "3", "--utc", "-tttt", wiki)
    assert [line.split()[:4] for line in table if "141.142" in line] == [
        ["141.142.220.118", "208.80.152.3", "36", "9.3"],
        ["141.142.220.118", "141.142.2.2", "14", "1.2"],
        ["141.142.220.118", "208.80.152.2", "6", "1.4"]]
    first = next(line for line in table if "208.80.152.3" in line)
    assert first.split()[-4:] == ["2011-03-18", "19:06:08.855305", "267", "ms"]
    assert main(["convs", "--top", "0", wiki]) == 2


def _out(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()
