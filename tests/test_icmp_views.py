"""ICMP is a message, never a port: every table names it (echo-request 8/0) and the ports
report gives it an outcome a user can read (answered pings are completed), checked on Zeek's
captures against the types in Zeek's own conn.log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portlens.cli import main
from tests.corpus import require_corpus

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SAMPLE = str(CAPTURES / "loopback-sample.pcap")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def icmp_rows(out: str) -> list[tuple[object, ...]]:
    rows = [json.loads(line) for line in out.splitlines()]
    return [(r["proto"], r["port"], r["icmp_type"], r["icmp_code"], r["service"], r["conns"],
             {o: r[o] for o in ("completed", "unanswered", "mid_stream", "one_way") if r[o]},
             r["pkts_c2s"], r["pkts_s2c"])
            for r in rows if r["proto"] in ("icmp", "icmp6")]


@pytest.mark.corpus
def test_four_answered_pings_are_one_completed_exchange(
        capsys: pytest.CaptureFixture[str]) -> None:
    path = str(require_corpus() / "zeek-vxlan-tunnel.pcap")
    _, out, _ = run(capsys, "ports", "--json", path)
    # Zeek: 10.0.0.1 8 -> 10.0.0.2 0, icmp, OTH, 4/4 packets.
    assert icmp_rows(out) == [("icmp", None, 8, 0, "echo-request", 1, {"completed": 1}, 4, 4)]
    _, out, _ = run(capsys, "conns", "--json", "--proto", "icmp", path)
    conn = json.loads(out)
    assert (conn["id.orig_p"], conn["id.resp_p"], conn["conn_state"]) == (8, 0, "OTH")
    assert (conn["icmp_type"], conn["icmp_code"]) == (8, 0)
    rc, out, _ = run(capsys, "ladder", "--utc", path, "--conn", conn["uid"])
    lines = out.splitlines()
    assert rc == 0
    assert lines[0] == f"{conn['uid']}  icmp 10.0.0.1 -> 10.0.0.2 (echo-request 8/0)"
    assert lines[4] == ("  0.000000       3  |-- ICMP echo-request 8/0 len=56 "
                        "------------------------------------->|")
    assert lines[5].endswith(" ICMP echo-reply 0/0 len=56 --|")
    assert lines[-2] == ("verdict: echo-request 8/0 answered (4 sent, 4 answered); conn_state "
                         "OTH, as Zeek logs every ICMP flow")


@pytest.mark.corpus
def test_icmpv6_messages_by_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """zeek-pppoe-icmp's conn.log has five ICMPv6 flows, orig_p 128 (5/5), 133, 134, 136, 143;
    only the echo is a question that was answered."""
    path = str(require_corpus() / "zeek-pppoe-icmp.pcap")
    _, out, _ = run(capsys, "ports", "--json", "--sort", "port", path)
    assert icmp_rows(out) == [
        ("icmp6", None, 128, 0, "echo-request", 1, {"completed": 1}, 5, 5),
        ("icmp6", None, 133, 0, "router-solicitation", 1, {"unanswered": 1}, 1, 0),
        ("icmp6", None, 134, 0, "router-advertisement", 1, {"one_way": 1}, 1, 0),
        ("icmp6", None, 136, 0, "neighbor-advertisement", 1, {"one_way": 1}, 1, 0),
        ("icmp6", None, 143, 0, "mld2-report", 1, {"one_way": 1}, 8, 0)]


def test_no_table_shows_icmp_as_a_port(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    _, out, _ = run(capsys, "ports", SAMPLE)
    row = next(line for line in out.splitlines() if "icmp" in line).split()
    assert row[:5] == ["icmp", "3/3", "dest-unreachable", "1", "1"]
    assert row[5] == "one-way"
    assert "3/icmp" not in out and "/icmp" not in out
    _, out, _ = run(capsys, "conns", "--utc", SAMPLE)
    assert "127.0.0.1 (dest-unreachable 3/3)" in out and "type 3/3" not in out
    assert "end-of-capture (icmp dest-unreachable 3/3)" in out  # the UDP probe it refused
    _, out, _ = run(capsys, "packets", "--utc", "-f", "icmp", SAMPLE)
    assert out == "06:52:08.296430 IP 127.0.0.1 > 127.0.0.1: icmp dest-unreachable 3/3\n"
    _, out, _ = run(capsys, "ports", "--csv", SAMPLE)
    header, *rows = out.splitlines()
    assert header.startswith("proto,port,icmp_type,icmp_code,service,")
    icmp_row = next(r for r in rows if r.startswith("icmp"))
    assert icmp_row.startswith("icmp,,3,3,dest-unreachable,")


# -- the scan summary of the ports report ---------------------------------------------------------


@pytest.mark.corpus
def test_a_port_scan_is_summed_up_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """ndpi-synscan: 172.16.0.8 sends 1994 SYNs to 1000 ports of 64.13.134.52 (nmap tries most
    ports twice); 1986 get nothing back, 5 a RST, 3 (22, 53, 80) a SYN-ACK."""
    path = str(require_corpus() / "ndpi-synscan.pcap")
    rc, out, _ = run(capsys, "ports", "--top", "3", path)
    assert rc == 0
    assert out.splitlines()[-1] == ("172.16.0.8 → 64.13.134.52: 1000 ports, 1986 unanswered, "
                                    "5 refused, 3 half-open; answered on 22, 53, 80")
    _, out, _ = run(capsys, "ports", "--json", path)
    scans = [json.loads(line) for line in out.splitlines() if '"type":"scan"' in line]
    assert scans == [{
        "type": "scan", "proto": "tcp", "orig_h": "172.16.0.8", "resp_h": "64.13.134.52",
        "ports": 1000, "failed_ports": 997, "answered_ports": [22, 53, 80], "attempts": 1994,
        "completed": 0, "open": 0, "refused": 5, "unanswered": 1986, "reset": 0,
        "half_open": 3, "mid_stream": 0, "one_way": 0}]


def test_scan_threshold_is_distinct_failed_ports() -> None:
    """15 refused or unanswered ports of one host make a scan, 14 do not; repeats of one
    port, answered ports and other hosts' ports do not add up."""
    from portlens.analysis.ports import SCAN_MIN_PORTS, PortTable
    from portlens.track.model import Connection

    def attempt(port: int, state: str, history: str, resp: str = "10.0.0.2") -> Connection:
        return Connection(uid=f"C{port}", ts_ns=port, orig_h="10.0.0.1", orig_p=40000 + port,
                          resp_h=resp, resp_p=port, proto="tcp", conn_state=state,
                          history=history, orig_pkts=1, resp_pkts=int(state == "REJ"))

    assert SCAN_MIN_PORTS == 15
    table = PortTable()
    for port in range(1, 14):
        table.add(attempt(port, "S0", "S"))
        table.add(attempt(port, "S0", "S"))  # a retry: the same port
    table.add(attempt(14, "REJ", "Sr"))
    table.add(attempt(80, "SF", "ShADadFf"))
    table.add(attempt(15, "S0", "S", resp="10.0.0.3"))
    assert table.scans() == []
    table.add(attempt(16, "REJ", "Sr"))
    (scan,) = table.scans()
    assert (len(scan.ports), len(scan.failed_ports), sorted(scan.answered_ports)) == (16, 15, [80])
