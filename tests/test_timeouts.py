"""Every ``--timeout`` ends or splits connections where Zeek's namesake would.

The captures are the bundled ones (``captures/``) or built here with the scenario machinery
of scripts/make_scenarios.py (realistic frames, correct checksums). Each expectation is derived
from the rule it tests, with Zeek's code cited (docs/zeek-rules.md §2.3, docs/tracking.md):

* a timer whose deadline is ``<=`` a packet's time fires before that packet is handled
  (``RunState.cc dispatch_packet``), and a packet of the same tuple that is not a SYN then
  starts a new connection;
* inactivity: ``Session::InactivityTimer`` removes when ``last_time + timeout <= now``; a TCP
  connection has ``udp_inactivity`` until an endpoint leaves the handshake states, then
  ``tcp_inactivity`` (``TCPAnalyzer::MakeSessionAdapter``, ``TCP_Endpoint::SetState``); 0 arms
  no timer (``Session::SetInactivityTimeout``);
* ``tcp_attempt``: ``AttemptTimer`` at SYN time + delay removes a connection whose originator
  is in SYN_SENT and responder INACTIVE; 0 arms none (``UpdateInactiveState``);
* ``tcp_close``: when a close completes (``ConnectionClosed``), removal at ``LastTime() +
  delay``; 0 removes before the next packet (``DeleteTimer``);
* ``tcp_reset``: a RST from an endpoint that sent a FIN while its peer is not CLOSED: removal
  at RST time + delay (``UpdateClosedState``, ``ResetTimer``);
* ``tcp_partial_close``: a FIN as the first packet of an endpoint whose peer is active and not
  closed: removal at ``LastTime() + delay`` (``ConnectionClosed``, ``PartialCloseTimer``);
  off unless set, as in Zeek without a ``connection_partial_close`` handler.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"


def scenarios() -> ModuleType:
    """scripts/make_scenarios.py as a module (it imports make_captures from its directory)."""
    scripts = str(REPO / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module("make_scenarios")


def conns(path: Path, capsys: pytest.CaptureFixture[str], *timeouts: str
          ) -> list[dict[str, Any]]:
    """``portlens conns --json --timeout T ... FILE``, in order of the first packet."""
    from portlens.cli import main

    argv = ["conns", "--json"]
    for t in timeouts:
        argv += ["--timeout", t]
    capsys.readouterr()
    assert main([*argv, str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return sorted(rows, key=lambda r: int(r["ts_ns"]))


def packets(rows: list[dict[str, Any]]) -> list[int]:
    return [r["orig_pkts"] + r["resp_pkts"] for r in rows]


def write(sc: Any, tmp_path: Path) -> Path:
    path = tmp_path / sc.file
    path.write_bytes(scenarios().capture_bytes(sc))
    return path


# --- tcp_inactivity and udp_inactivity on TCP --------------------------------------------------


def test_tcp_inactivity_splits_packets_10_ms_apart(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's repro: captures/tcp-session.pcap has 10 packets 10.25 ms apart (SYN,
    SYN-ACK, ..., FIN, FIN, ACK). From the SYN-ACK on (the originator leaves SYN_SENT), a gap
    of at least tcp_inactivity ends the connection: the SYN and SYN-ACK stay together (that
    gap is under udp_inactivity, 60 s), every later packet is a connection of its own, also
    after a close (the inactivity timer is the session's; a close cancels only the analyzer's
    timers)."""
    path = CAPTURES / "tcp-session.pcap"
    assert packets(conns(path, capsys)) == [10]
    for timeout in ("0.001", "0.01025"):  # 10.25 ms: last_time + timeout <= now, equal splits
        rows = conns(path, capsys, f"tcp_inactivity={timeout}")
        assert packets(rows) == [2] + [1] * 8
        assert (rows[0]["history"], rows[0]["conn_state"]) == ("Sh", "S1")
        assert [r["end_reason"] for r in rows] == ["idle"] * 8 + ["end-of-capture"]
    rows = conns(path, capsys, "tcp_inactivity=0.010251")  # 1 µs longer than every gap
    assert packets(rows) == [10] and rows[0]["conn_state"] == "SF"


def test_udp_inactivity_governs_tcp_until_the_handshake_is_over(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Zeek gives a new TCP connection udp_inactivity until an endpoint leaves the handshake
    states: with 5 ms, the SYN alone ends before the SYN-ACK (10.25 ms later), which starts
    the connection the other nine packets belong to."""
    path = CAPTURES / "tcp-session.pcap"
    rows = conns(path, capsys, "udp_inactivity=0.005")
    assert packets(rows) == [1, 9]
    assert (rows[0]["history"], rows[0]["conn_state"], rows[0]["end_reason"]) == (
        "S", "S0", "idle")


def test_tcp_inactivity_zero_is_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An established connection silent for 400 s: ended by the default 300 s, kept whole
    with 0 (no timer; the expire timer needs a FIN/RST or two INACTIVE sides)."""
    ms = scenarios()
    sc = ms.Scenario(90, "idle-400s", "established, then 400 s of silence, then data")
    c, s = ms.client(50090, 0x10000000), ms.server(443, 0x20000000)
    sc.tcp(0, c, s, "S", win=64240)
    sc.tcp(20_000, s, c, "SA", win=65535)
    sc.tcp(20_050, c, s, "A")
    sc.tcp(400_020_050, c, s, "PA", 100)
    path = write(sc, tmp_path)
    assert packets(conns(path, capsys)) == [3, 1]
    assert packets(conns(path, capsys, "tcp_inactivity=0")) == [4]
    assert packets(conns(path, capsys, "tcp_inactivity=400")) == [3, 1]  # the gap, exactly
    assert packets(conns(path, capsys, "tcp_inactivity=400.000001")) == [4]


# --- tcp_attempt ----------------------------------------------------------------------------


def test_tcp_attempt(capsys: pytest.CaptureFixture[str]) -> None:
    """captures/scenario-syn-unanswered.pcap: one SYN sent at 0, 1.0031 s and 3.0112 s (same
    ISN), never answered. The attempt timer runs from each connection's first SYN."""
    path = CAPTURES / "scenario-syn-unanswered.pcap"
    assert packets(conns(path, capsys)) == [3]  # all within Zeek's 5 s
    rows = conns(path, capsys, "tcp_attempt=2")  # due at 2 s, fires at the 3.0112 s SYN
    assert packets(rows) == [2, 1]
    assert (rows[0]["conn_state"], rows[0]["end_reason"]) == ("S0", "idle")
    # Due exactly at the second SYN: it fires there, and again 1.0031 s after that SYN.
    assert packets(conns(path, capsys, "tcp_attempt=1.0031")) == [1, 1, 1]
    assert packets(conns(path, capsys, "tcp_attempt=1.003101")) == [2, 1]
    # 0: no attempt timer. The SYN-only connection still has udp_inactivity (60 s; here
    # 1.5 s: 1.0031 + 1.5 <= 3.0112, so the third SYN starts a new one; 2.009 s: not yet).
    assert packets(conns(path, capsys, "tcp_attempt=0")) == [3]
    assert packets(conns(path, capsys, "tcp_attempt=0", "udp_inactivity=1.5")) == [2, 1]
    assert packets(conns(path, capsys, "tcp_attempt=0", "udp_inactivity=2.009")) == [3]


# --- tcp_close --------------------------------------------------------------------------------


def test_tcp_close(capsys: pytest.CaptureFixture[str]) -> None:
    """captures/scenario-close-client-first.pcap: the server's FIN (frame 9, 61.700 ms)
    completes the close; the client's last ACK follows 60 µs later. With the delay at most
    60 µs, that ACK comes after the removal and is a connection of its own."""
    path = CAPTURES / "scenario-close-client-first.pcap"
    assert packets(conns(path, capsys)) == [10]
    for delay in ("0", "0.00006"):
        rows = conns(path, capsys, f"tcp_close={delay}")
        assert packets(rows) == [9, 1]
        assert (rows[0]["conn_state"], rows[0]["end_reason"]) == ("SF", "fin")
        assert rows[1]["history"] == "A"
    assert packets(conns(path, capsys, "tcp_close=0.000061")) == [10]


def test_tcp_close_zero_ends_before_a_packet_of_the_same_microsecond(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Zeek advances its timers before every packet, not only when time moves: with
    tcp_close=0 the ACK captured in the same microsecond as the completing FIN is already a
    new connection."""
    ms = scenarios()
    sc = ms.Scenario(91, "close-same-us", "the last ACK in the FIN's microsecond")
    c, s = ms.client(50091, 0x30000000), ms.server(443, 0x40000000)
    sc.tcp(0, c, s, "S", win=64240)
    sc.tcp(20_000, s, c, "SA", win=65535)
    sc.tcp(20_050, c, s, "A")
    sc.tcp(30_000, c, s, "FA")
    sc.tcp(40_000, s, c, "FA")  # completes the close
    sc.tcp(40_001, c, s, "A")
    sc.frames[-1].ts_ns -= 1000  # (the builder wants time to advance; loopback need not)
    path = write(sc, tmp_path)
    assert packets(conns(path, capsys)) == [6]
    assert packets(conns(path, capsys, "tcp_close=0")) == [5, 1]


# --- tcp_reset --------------------------------------------------------------------------------


def reset_after_fin(tmp_path: Path) -> Path:
    """The client FINs, the server ACKs and stays open, the client then RSTs (at 100 ms); the
    server sends data 2 s after the RST."""
    ms = scenarios()
    sc = ms.Scenario(92, "rst-after-own-fin", "client FIN, server open, client RST")
    c, s = ms.client(50092, 0x50000000), ms.server(443, 0x60000000)
    sc.tcp(0, c, s, "S", win=64240)
    sc.tcp(20_000, s, c, "SA", win=65535)
    sc.tcp(20_050, c, s, "A")
    sc.tcp(20_200, c, s, "PA", 100)
    sc.tcp(40_000, s, c, "A")
    sc.tcp(40_100, c, s, "FA")
    sc.tcp(60_000, s, c, "A")  # ACKs the FIN; the server stays ESTABLISHED
    sc.tcp(100_000, c, s, "R")  # CLOSED -> RESET while the peer is not CLOSED: reset timer
    sc.tcp(2_100_000, s, c, "PA", 50)
    return write(sc, tmp_path)


def test_tcp_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = reset_after_fin(tmp_path)
    assert packets(conns(path, capsys)) == [9]  # 5 s: the data comes first
    rows = conns(path, capsys, "tcp_reset=2")  # due exactly at the data packet
    assert packets(rows) == [8, 1]
    assert rows[0]["end_reason"] == "rst"
    assert packets(conns(path, capsys, "tcp_reset=2.000001")) == [9]


# --- tcp_partial_close ------------------------------------------------------------------------


def test_tcp_partial_close(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Picked up mid-stream: the client sends data, the server's first packet is a FIN (at
    10 ms), the client ACKs and sends more data 3.01 s after that FIN."""
    ms = scenarios()
    sc = ms.Scenario(93, "partial-close", "the responder's first packet is a FIN")
    c, s = ms.client(50093, 0x70000000), ms.server(443, 0x80000000)
    c.nxt = s.nxt = 1
    sc.tcp(0, c, s, "PA", 100)
    sc.tcp(10_000, s, c, "FA")
    sc.tcp(20_000, c, s, "A")
    sc.tcp(3_020_000, c, s, "PA", 50)
    path = write(sc, tmp_path)
    assert packets(conns(path, capsys)) == [4]  # off by default, as in Zeek's conn.log
    rows = conns(path, capsys, "tcp_partial_close=3.01")  # due exactly at the last packet
    assert packets(rows) == [3, 1]
    assert rows[0]["end_reason"] == "idle"
    assert packets(conns(path, capsys, "tcp_partial_close=3.010001")) == [4]


# --- udp_inactivity, icmp_inactivity ---------------------------------------------------------


def test_udp_and_icmp_inactivity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A UDP flow (port 5000, no DNS timer) and ICMP echo requests, each with a gap of 99 s."""
    ms = scenarios()
    sc = ms.Scenario(94, "udp-icmp-idle", "UDP and ICMP with a 99 s gap")
    c, s = ms.client(50094, 0), ms.server(5000, 0)
    sc.udp(0, c, s, b"one")
    sc.udp(1_000_000, c, s, b"two")
    sc.udp(100_000_000, c, s, b"three")
    echo = b"\x12\x34\x00\x01" + b"ping"
    sc.icmp(100_000_001, c, s, 8, 0, echo)
    sc.icmp(199_000_001, c, s, 8, 0, echo)
    path = write(sc, tmp_path)

    def by_proto(*timeouts: str) -> dict[str, list[int]]:
        rows = conns(path, capsys, *timeouts)
        return {p: packets([r for r in rows if r["proto"] == p]) for p in ("udp", "icmp")}

    assert by_proto() == {"udp": [2, 1], "icmp": [1, 1]}  # 60 s each
    assert by_proto("udp_inactivity=0", "icmp_inactivity=0") == {"udp": [3], "icmp": [2]}
    assert by_proto("udp_inactivity=99", "icmp_inactivity=99") == {"udp": [2, 1],
                                                                   "icmp": [1, 1]}
    assert by_proto("udp_inactivity=99.000001", "icmp_inactivity=99.000001") == {
        "udp": [3], "icmp": [2]}
    assert by_proto("udp_inactivity=0.5") == {"udp": [1, 1, 1], "icmp": [1, 1]}


# --- the values --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "abc", "", "1e300"])
def test_bad_timeout_values_are_one_line(value: str, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    from portlens.cli import main

    capsys.readouterr()
    rc = main(["conns", "--timeout", f"tcp_inactivity={value}",
               str(CAPTURES / "tcp-session.pcap")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "tcp_inactivity" in err, err


@pytest.mark.parametrize("item", ["tcp_inactivity", "nope=1", "=1"])
def test_bad_timeout_names_are_one_line(item: str, capsys: pytest.CaptureFixture[str]) -> None:
    from portlens.cli import main

    capsys.readouterr()
    rc = main(["conns", "--timeout", item, str(CAPTURES / "tcp-session.pcap")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err


# --- the fast paths keep to the configured timeouts ------------------------------------------


@pytest.mark.parametrize("timeouts", [
    {"tcp_inactivity": 0.002},
    {"tcp_inactivity": 0, "udp_inactivity": 0, "icmp_inactivity": 0},
    {"tcp_close": 0, "tcp_reset": 0, "tcp_attempt": 0.01, "tcp_partial_close": 0.05},
])
def test_fast_paths_keep_to_the_timeouts(tmp_path_factory: pytest.TempPathFactory,
                                         timeouts: dict[str, float]) -> None:
    """The bulk path and the per-packet fast lane skip the timers for ordinary segments: with
    any timeouts they must still give what the full per-packet path gives (a realistic
    generated capture: 30k packets, many connections)."""
    import subprocess

    from portlens.decode import decode_capture
    from portlens.report.conns import record
    from portlens.track.timeouts import Timeouts
    from portlens.track.tracker import TrackerConfig, track

    out = tmp_path_factory.getbasetemp() / "timeouts-gen.pcap"
    if not out.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "generate",
                        "--packets", "30000", "--out", str(out), "--seed", "11"], check=True,
                       capture_output=True)
    t = Timeouts().with_seconds(**timeouts)

    def run(fast: bool) -> list[str]:
        rows = []
        for c in track(decode_capture(out), TrackerConfig(timeouts=t, fast_paths=fast)):
            r = record(c)
            r.pop("uid")
            for tr in r["transitions"]:
                tr.pop("uid")
            rows.append(json.dumps(r, sort_keys=True))
        return sorted(rows)

    fast, slow = run(True), run(False)
    assert len(fast) == len(slow) > 100
    assert fast == slow


def test_expire_check_ends_a_connection_of_bad_checksums_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With checksums checked (--checksums drop, Zeek without -C), ACKs with bad TCP
    checksums leave both endpoints INACTIVE and never move last_time (ACKs: a SYN whose ISN
    differs from the endpoint's would start a new connection by itself, §2.2). Zeek's ExpireTimer,
    armed tcp_SYN_timeout (5 s) after the connection is created and then every
    tcp_session_timer (6 s), removes such a connection once last_time + 5 s < now: not at
    the 5 s check (0 + 5 < 5 is false), but at the one due at 11 s, so the ACK at 10.9 s still
    belongs to it and the one at 11 s starts a new connection."""
    ms = scenarios()
    sc = ms.Scenario(95, "bad-checksums-only", "ACKs whose TCP checksum is wrong")
    for t_us in (0, 5_000_000, 10_900_000, 11_000_000):
        seg = ms.tcp(50095, 443, 0x10, seq=0x90000000, ack=0xA0000000, win=502)
        pkt = ms.ether(ms.ip4(ms.C4, ms.S4, seg, bad_l4_csum=True), src=ms.MAC_C, dst=ms.MAC_S)
        sc.frames.append(ms.Frame(sc.t0 + t_us * 1000, pkt, (ms.C4, 50095), (ms.S4, 443),
                                  "tcp", 40))
    path = write(sc, tmp_path)
    from portlens.cli import main

    capsys.readouterr()
    assert main(["conns", "--json", "--checksums", "drop", str(path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows.sort(key=lambda r: int(r["ts_ns"]))
    assert [(r["history"], r["end_reason"]) for r in rows] == [
        ("C", "idle"), ("C", "end-of-capture")]
    assert [int(r["ts_ns"]) - sc.t0 for r in rows] == [0, 11 * 10**9]
