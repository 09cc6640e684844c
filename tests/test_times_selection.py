"""Times as tcpdump prints them (local zone named once, --utc, the -t styles) in every text
output, and choosing connections: events' 5-tuples, conns --uid, ladder --conn by uid prefix
or 5-tuple. Every test sets TZ itself: the machine's zone must not matter."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portlens.cli import main
from portlens.report.clock import Clock, span_text, style_of_count

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SESSION = str(CAPTURES / "tcp-session.pcap")
SAMPLE = str(CAPTURES / "loopback-sample.pcap")
REFUSED = str(CAPTURES / "scenario-refused.pcap")
REUSE = str(CAPTURES / "scenario-port-reuse.pcap")


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lets a test set TZ (monkeypatch.setenv + time.tzset) and puts the zone back after."""
    yield
    monkeypatch.undo()
    time.tzset()


def set_zone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TZ", name)
    time.tzset()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- the clock ------------------------------------------------------------------------------------


def test_clock_seconds_cached_back_and_forth(monkeypatch: pytest.MonkeyPatch,
                                             zone: None) -> None:
    """One Clock keeps the text of the seconds it wrote (connections end out of start order):
    going back and forth over more seconds than it keeps, across a daylight-saving change,
    every text is a fresh Clock's."""
    from portlens.report.clock import SECONDS_CACHED

    set_zone(monkeypatch, "America/New_York")
    change = 1_699_164_000  # 2023-11-05 06:00 UTC: 02:00 EDT became 01:00 EST
    seconds = [change - 3600 + (k * 7919) % (2 * SECONDS_CACHED + 7200) for k in range(20_000)]
    for style in ("time", "date"):
        clock = Clock(style)
        for s in seconds:
            ts = s * 10**9 + 123_456_000
            assert clock.text(ts) == Clock(style).text(ts), (style, s)


def test_clock_styles_and_fractions(monkeypatch: pytest.MonkeyPatch, zone: None) -> None:
    set_zone(monkeypatch, "America/New_York")
    ts = 1_700_108_000_010_250_000  # 2023-11-16 04:13:20.01025 UTC
    assert Clock().text(ts) == "23:13:20.010250"
    assert Clock(utc=True).text(ts) == "04:13:20.010250"
    assert Clock("date").text(ts) == "2023-11-15 23:13:20.010250"
    assert Clock("epoch").text(ts) == "1700108000.010250"
    assert Clock().text(ts + 789) == "23:13:20.010250789"  # nanoseconds are never rounded
    assert Clock("none").text(ts) == ""
    delta, since = Clock("delta"), Clock("since")
    assert [delta.text(t) for t in (ts, ts + 5_000, ts + 3_600_000_000_000)] == [
        " 00:00:00.000000", " 00:00:00.000005", " 00:59:59.999995"]
    assert [since.text(t) for t in (ts, ts + 5_000, ts + 2_000)] == [
        " 00:00:00.000000", " 00:00:00.000005", " 00:00:00.000002"]
    assert span_text(-1_500_000_000) == "-00:00:01.500000"
    assert Clock().zone_label(ts) == "times in local time, EST (UTC-05:00)"
    assert Clock().zone_label(ts - 200 * 86400 * 10**9) == "times in local time, EDT (UTC-04:00)"
    assert Clock(utc=True).zone_label(ts) == "times in UTC"
    assert Clock("epoch").zone_label(ts) is None
    assert Clock().stamp(ts) == "2023-11-15 23:13:20.010250 EST (UTC-05:00)"
    assert [style_of_count(n) for n in range(6)] == [
        "time", "none", "epoch", "delta", "date", "since"]
    with pytest.raises(ValueError, match="-tttttt"):
        style_of_count(6)


# -- packets: the digits tcpdump prints -----------------------------------------------------------


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.parametrize("flag", ["", "-t", "-tt", "-ttt", "-tttt", "-ttttt"])
def test_packet_times_equal_tcpdumps(flag: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], zone: None) -> None:
    set_zone(monkeypatch, "America/New_York")
    env = {**os.environ, "TZ": "America/New_York"}
    theirs = subprocess.run(["tcpdump", "-nn", "-q", *([flag] if flag else []), "-r", SESSION],
                            capture_output=True, text=True, env=env, timeout=60,
                            check=True).stdout.splitlines()
    rc, out, err = run(capsys, "packets", *([flag] if flag else []), SESSION)
    ours = out.splitlines()
    assert rc == 0 and len(ours) == len(theirs) == 10
    assert [line[: line.index("IP ")] for line in ours] == [
        line[: line.index("IP ")] for line in theirs]
    zoned = flag in ("", "-tttt")
    assert err == ("portlens: times in local time, EST (UTC-05:00)\n" if zoned else "")


def test_packets_local_by_default_and_utc_on_request(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], zone: None) -> None:
    set_zone(monkeypatch, "Asia/Kolkata")
    rc, out, err = run(capsys, "packets", "-c", "1", SESSION)
    assert (rc, err) == (0, "portlens: times in local time, IST (UTC+05:30)\n")
    assert out == ("09:43:20.000000 IP 192.0.2.10:49152 > 198.51.100.20:80: tcp [S] seq 1000 "
                   "win 64240 len 0\n")
    rc, out, err = run(capsys, "packets", "-c", "1", "--utc", "-tttt", SESSION)
    assert err == "portlens: times in UTC\n"
    assert out.startswith("2023-11-16 04:13:20.000000 IP 192.0.2.10:49152 > ")
    # --time-format names the same styles; a disagreeing pair is refused in one line.
    rc, out, _ = run(capsys, "packets", "-c", "1", "--time-format", "epoch", SESSION)
    assert out.startswith("1700108000.000000 IP ")
    rc, out, err = run(capsys, "packets", "-tt", "--time-format", "date", SESSION)
    assert (rc, out, err) == (2, "", "portlens: -tt and --time-format date disagree\n")
    rc, _, err = run(capsys, "packets", "-tttttt", SESSION)
    assert (rc, err) == (2, "portlens: -tttttt: tcpdump's time options go up to -ttttt\n")


# -- events, conns, ladder -------------------------------------------------------------------------


def test_events_carry_the_tuple_and_local_time(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], zone: None) -> None:
    set_zone(monkeypatch, "Europe/Paris")
    rc, out, err = run(capsys, "events", REFUSED)
    assert rc == 0 and err == "portlens: times in local time, CET (UTC+01:00)\n"
    assert out.splitlines() == [
        "09:13:20.000000 CNtLJebA4PlGyo1HBf tcp src=192.0.2.10 dst=198.51.100.20 sport=50006 "
        "dport=3306 orig send SYN: CLOSED -> SYN-SENT [flags 0x002 seq 2130749953 ack 0 len 0] "
        "frame 1",
        "09:13:20.000400 CNtLJebA4PlGyo1HBf tcp src=192.0.2.10 dst=198.51.100.20 sport=50006 "
        "dport=3306 resp send RST: LISTEN -> CLOSED [flags 0x014 seq 0 ack 2130749954 len 0] "
        "frame 2",
        "09:13:20.000400 CNtLJebA4PlGyo1HBf tcp src=192.0.2.10 dst=198.51.100.20 sport=50006 "
        "dport=3306 orig receive RST: SYN-SENT -> CLOSED [flags 0x014 seq 0 ack 2130749954 "
        "len 0] frame 2"]
    rc, out, err = run(capsys, "events", "--json", REFUSED)
    first = out.splitlines()[0]
    assert err == ""
    assert first.startswith('{"ts_ns":1700381600000000000,"frame":1,"uid":"CNtLJebA4PlGyo1HBf",'
                            '"id.orig_h":"192.0.2.10","id.orig_p":50006,"id.resp_h":'
                            '"198.51.100.20","id.resp_p":3306,"proto":"tcp","endpoint":"orig"')


def test_conns_start_column_and_uid(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], zone: None) -> None:
    set_zone(monkeypatch, "Asia/Kolkata")
    monkeypatch.setenv("COLUMNS", "200")
    rc, out, err = run(capsys, "conns", "-tttt", "--uid", "Cpc6", "--uid", "CPj9FV2J7qJOxldCai",
                       SAMPLE)
    rows = [line.split() for line in out.splitlines() if "127.0.0.1" in line]
    assert rc == 0
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("2026-11-21", "12:22:08.143627", "CPj9FV2J7qJOxldCai"),
        ("2026-11-21", "12:22:08.295865", "Cpc6pGKLZtISSqGyEE")]
    assert err.endswith("2 connections; start times in local time, IST (UTC+05:30)\n")
    rc, out, _ = run(capsys, "conns", "-t", "--utc", SAMPLE)  # -t: no start column
    assert rc == 0 and "start" not in out and "12:22" not in out
    rc, out, _ = run(capsys, "conns", "--json", "--uid", "Nope", SAMPLE)
    assert (rc, out) == (1, "")


def test_ladder_names_its_start_in_the_zone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], zone: None) -> None:
    set_zone(monkeypatch, "Europe/Paris")
    _, out, _ = run(capsys, "ladder", REFUSED, "--conn", "CNtLJebA4PlGyo1HBf")
    assert out.splitlines()[:2] == [
        "CNtLJebA4PlGyo1HBf  tcp 192.0.2.10:50006 -> 198.51.100.20:3306 (mysql)",
        "started 2023-11-19 09:13:20.000000 CET (UTC+01:00); times are seconds since then"]
    _, out, _ = run(capsys, "ladder", "--utc", REFUSED, "--conn", "CNtLJebA4PlGyo1HBf")
    assert out.splitlines()[1] == (
        "started 2023-11-19 08:13:20.000000 UTC; times are seconds since then")


@pytest.mark.parametrize("spec", [
    "CNtL", "CNtLJebA4PlGyo1HBf", "192.0.2.10:50006-198.51.100.20:3306",
    "198.51.100.20:3306-192.0.2.10:50006", "tcp 192.0.2.10:50006-198.51.100.20:3306",
    "192.0.2.10.50006 > 198.51.100.20.3306", "198.51.100.20.3306 > 192.0.2.10.50006:"])
def test_ladder_finds_a_connection_by_uid_prefix_or_tuple(
        spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "ladder", "--utc", REFUSED, "--conn", spec)
    assert (rc, err) == (0, "")
    assert out.startswith("CNtLJebA4PlGyo1HBf  tcp 192.0.2.10:50006 -> 198.51.100.20:3306")


def test_ladder_ambiguous_or_unknown_or_malformed_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "ladder", REUSE, "--conn", "192.0.2.10:50013-198.51.100.20:80")
    assert (rc, out) == (2, "")
    assert err == ("portlens: --conn 192.0.2.10:50013-198.51.100.20:80 matches 2 connections: "
                   "C0wlwEyvhcm3N82wL7 (tcp 192.0.2.10:50013-198.51.100.20:80), "
                   "CzBOJEjG3JuPyLNeTe (tcp 192.0.2.10:50013-198.51.100.20:80); give the uid\n")
    rc, out, err = run(capsys, "ladder", SAMPLE, "--conn", "C")
    assert (rc, out, err.count("\n")) == (2, "", 1)
    assert err.startswith("portlens: --conn C matches 8 connections: CshwGATYbYrUl7T8cn (tcp ")
    assert err.endswith(" and 3 more; give a longer uid prefix\n")
    rc, out, err = run(capsys, "ladder", SAMPLE, "--conn", "udp 127.0.0.1:50735-127.0.0.1:9")
    assert (rc, err) == (1, "portlens: no connection matches --conn udp "
                            "127.0.0.1:50735-127.0.0.1:9 (`portlens conns` lists them)\n")
    rc, out, err = run(capsys, "ladder", SAMPLE, "--conn", "10.0.0.1")
    assert rc == 2 and err.startswith("portlens: --conn '10.0.0.1': give a uid (or its start) "
                                      "or a 5-tuple such as 10.0.0.1:1234-10.0.0.2:80")
    rc, out, err = run(capsys, "ladder", SAMPLE, "--conn", "10.0.0.1:99999-10.0.0.2:80")
    assert (rc, err) == (2, "portlens: '10.0.0.1:99999' is not ADDRESS:PORT\n")


def test_stats_name_first_and_last_frame_in_the_zone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], zone: None) -> None:
    set_zone(monkeypatch, "Asia/Tokyo")
    monkeypatch.setenv("COLUMNS", "120")
    _, out, _ = run(capsys, "packets", "--stats", SESSION)
    assert "2023-11-16 13:13:20.000000 JST (UTC+09:00)" in out
    assert "2023-11-16 13:13:20.092250 JST (UTC+09:00)" in out
    _, out, _ = run(capsys, "packets", "--stats", "--utc", SESSION)
    assert "2023-11-16 04:13:20.092250 UTC" in out


def test_live_header_names_the_start(monkeypatch: pytest.MonkeyPatch, zone: None) -> None:
    from portlens.report.live import Rates, header

    set_zone(monkeypatch, "Europe/Paris")
    start = Clock().stamp(1_764_672_978_250_000_000, whole=True)
    assert start == "2025-12-02 11:56:18 CET (UTC+01:00)"
    rates = Rates("lo", 1.5, 10, 1000, 6.7, 667.0, 10, 0, started=start)
    assert header(rates).plain.startswith(
        "portlens sniff -i lo   since 2025-12-02 11:56:18 CET (UTC+01:00)      1.5 s   10 packets")
