"""Options that cannot apply are refused in one line with exit status 2 (never a traceback,
never silently ignored), and the ones that can apply do what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SESSION = str(REPO / "captures" / "tcp-session.pcap")
SAMPLE = str(REPO / "captures" / "loopback-sample.pcap")


@pytest.fixture(autouse=True)
def no_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """No live capture is ever opened here: a check that stopped refusing fails at once
    instead of capturing forever (or allocating a ring of -B 100000000)."""
    import portlens.capture

    def refuse(options: object, _filter: object) -> None:
        raise AssertionError(f"a live capture was opened with {options}")

    monkeypatch.setattr(portlens.capture, "LiveSession", refuse)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from portlens.cli import main

    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


REFUSED = [
    # tcpdump's snapshot length: 0 to 262144 (0 means 262144); live only
    (("sniff", "-i", "lo", "-s", "-1"), "-s/--snaplen -1: must be 0 to 262144"),
    (("sniff", "-i", "lo", "-s", "4294967296"), "-s/--snaplen 4294967296: must be 0 to 262144"),
    (("sniff", "-i", "lo", "-s", "262145"), "must be 0 to 262144"),
    (("conns", "-s", "0", SESSION), "-s/--snaplen with capture files cuts what -w FILE writes"),
    # live options given with files would do nothing
    (("conns", "--backend", "ring", SESSION), "--backend is for live capture"),
    (("ports", "-B", "64", SESSION), "-B/--kernel-buffer is for live capture"),
    (("ports", "--buffer", "64", SESSION), "--buffer is for live capture"),
    (("ports", "--spool", "0", SESSION), "--spool is for live capture"),
    (("ports", "--spool-dir", "/tmp", SESSION), "--spool-dir is for live capture"),
    (("packets", "--pcapng", SESSION), "--pcapng is the format of -w FILE"),
    (("conns", "--duration", "5", SESSION), "--duration is for live capture"),
    (("conns", "-Z", "nobody", SESSION), "-Z/--user is for live capture"),
    # live values
    (("sniff", "-i", "lo", "--duration", "-1"), "--duration must be a number of seconds above 0"),
    (("sniff", "-i", "lo", "--duration", "nan"), "--duration must be a number of seconds"),
    (("sniff", "-i", "lo", "--duration", "0"), "--duration must be a number of seconds"),
    (("sniff", "-i", "lo", "--buffer", "0"), "--buffer 0: at least 1 MB"),
    (("sniff", "-i", "lo", "-B", "1"), "-B/--kernel-buffer 1: at least 2 MB"),
    (("sniff", "-i", "lo", "-B", "100000000"), "-B/--kernel-buffer 100000000: at most"),
    (("sniff", "-i", "lo", "--buffer", "100000000"), "together: at most"),
    (("sniff", "-i", "lo", "--spool", "-1"), "--spool -1: 0 (no spool) or more MB"),
    (("sniff", "-i", "lo", "--spool", "0", "--spool-dir", "/tmp"), "there is no spool file"),
    (("sniff", "-i", "lo", "--spool-dir", "/nonexistent/dir"), "not a directory"),
    (("sniff", "-i", "lo", "--pcapng"), "--pcapng is the format of -w FILE"),
    (("sniff", "-i", "lo", "-Z", "no-such-user-here"), "-Z/--user no-such-user-here: no such"),
    (("packets", "-i", "lo", "--reference"), "--reference decodes files"),
    (("ladder", "-i", "lo", "--conn", "CNoSuchUid0000000"), "ladder reads its capture twice"),
    # counts, workers, timeouts
    (("conns", "-c", "0", SESSION), "-c/--count must be at least 1, not 0"),
    (("packets", "-c", "-5", SESSION), "-c/--count must be at least 1, not -5"),
    (("events", "--workers", "2", SESSION), "--workers: `events` tracks in one process"),
    (("conns", "--workers", "0", SESSION), "--workers 0: at least 1"),
    (("conns", "--workers", "-3", SESSION), "--workers -3: at least 1"),
    (("conns", "--workers", "100000", SESSION), "--workers 100000: at most"),
    (("sniff", "-i", "lo", "--reference", "--workers", "2"), "--reference --workers is for files"),
    (("conns", "--max-flows", "0", SESSION), "--max-flows must be at least 1"),
    (("conns", "--timeout", "tcp_inactivity=inf", SESSION), "timeout tcp_inactivity must be"),
    (("conns", "--timeout", "tcp_attempt=-2", SESSION), "timeout tcp_attempt must be"),
    (("conns", "--timeout", "nope=2", SESSION), "unknown timeout 'nope'"),
    # the connection filters
    (("conns", "--port", "99999", SESSION), "--port 99999: a port is 0 to 65535"),
    (("conns", "--port", "-1", SESSION), "--port -1: a port is 0 to 65535"),
    (("handshakes", "--port", "70000", SESSION), "--port 70000: a port is 0 to 65535"),
    (("conns", "--state", "ESTABLISHED", SESSION), "--state ESTABLISHED: not a Zeek conn_state"),
    (("conns", "--host", "10.0.0.1/8", SESSION), "--host 10.0.0.1/8: 10.0.0.1/8 has host bits"),
    (("conns", "--host", "example.org", SESSION), "--host example.org:"),
    (("ports", "--top", "0", SESSION), "--top must be at least 1"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_in_one_line(argv: tuple[str, ...], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, *argv)
    assert (rc, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("portlens: "), err
    assert message in err, err


def conn_tuples(out: str) -> list[tuple[str, str]]:
    return [(r["id.orig_h"], r["id.resp_h"]) for r in map(json.loads, out.splitlines())]


def test_host_takes_prefixes(capsys: pytest.CaptureFixture[str]) -> None:
    """tcp-session.pcap: one connection, 192.0.2.10 -> 198.51.100.20."""
    pair = [("192.0.2.10", "198.51.100.20")]
    for host in ("192.0.2.10", "198.51.100.20", "192.0.2.0/24", "198.51.100.0/22",
                 "0.0.0.0/0"):
        rc, out, _ = run(capsys, "conns", "--json", "--host", host, SESSION)
        assert (rc, conn_tuples(out)) == (0, pair), host
    for host in ("192.0.2.11", "192.0.3.0/24", "2001:db8::/32", "::/0"):
        rc, out, _ = run(capsys, "conns", "--json", "--host", host, SESSION)
        assert (rc, out) == (1, ""), host


def test_state_is_case_insensitive(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "conns", "--json", "--state", "sf", SESSION)
    assert rc == 0 and len(out.splitlines()) == 1


def test_count_on_files_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """-c N reads the first N packets after -f, as tcpdump -r FILE -c N. The bundled
    loopback sample's first 20 frames are its first HTTP connection (frames 1-12, SYN to the
    last ACK) and the start of the second (from frame 13); it has 8 connections in all."""
    rc, out, _ = run(capsys, "packets", "-c", "20", SAMPLE)
    assert rc == 0 and len(out.splitlines()) == 20
    rc, out, _ = run(capsys, "conns", "--json", SAMPLE)
    assert len(out.splitlines()) == 8
    for extra in ((), ("--workers", "2")):
        rc, out, _ = run(capsys, "conns", "--json", "-c", "20", *extra, SAMPLE)
        rows = [json.loads(line) for line in out.splitlines()]
        assert rc == 0 and len(rows) == 2, extra
        assert sum(r["orig_pkts"] + r["resp_pkts"] for r in rows) == 20
    rc, out, _ = run(capsys, "events", "--json", "-c", "1", SAMPLE)
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["send SYN"]
    rc, out, _ = run(capsys, "ports", "--json", "-c", "1", SAMPLE)
    total = [r for r in map(json.loads, out.splitlines()) if r["type"] == "summary"]
    assert total[0]["total"]["conns"] == 1


def test_snaplen_zero_means_the_whole_packet(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """-s 0 reaches the live session as 262144 (tcpdump's meaning), checked before any
    capture is opened."""
    import portlens.capture

    seen = []

    class OpenedError(Exception):
        pass

    def session(options: object, _filter: object) -> None:
        seen.append(options)
        raise OpenedError

    monkeypatch.setattr(portlens.capture, "LiveSession", session)
    with pytest.raises(OpenedError):
        run(capsys, "sniff", "-i", "lo", "-s", "0", "--json")
    assert seen[0].snaplen == 262144  # type: ignore[attr-defined]


LINK_UNKNOWN = str(REPO / "captures" / "link-unknown.pcap")
"""Two frames of link type 147 (USER0), which portlens does not decode."""


@pytest.mark.parametrize("argv", [
    ("packets",), ("packets", "--json"), ("conns",), ("conns", "--workers", "2"), ("ports",),
    ("handshakes",), ("sockets",), ("events",), ("ladder", "--conn", "CNoSuchUid0000000")])
def test_unsupported_link_type_says_so(argv: tuple[str, ...],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, *argv, LINK_UNKNOWN)
    assert rc == (0 if argv[0] == "packets" else 1)
    assert err.count("portlens: 2 frames of link type 147, not decoded\n") == 1, err


def test_stats_count_frames_not_decoded(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "packets", "--stats", "--json", LINK_UNKNOWN)
    assert rc == 0 and json.loads(out)["not_decoded"] == {"147": 2}
    rc, out, _ = run(capsys, "packets", "--stats", "--json", SESSION)
    assert rc == 0 and json.loads(out)["not_decoded"] == {}


def test_max_flows_says_how_many_it_evicted(capsys: pytest.CaptureFixture[str]) -> None:
    """With room for one flow, every flow inserted while another is still in the table evicts
    it. In the loopback sample no timer ends a flow before the next starts (it lasts 0.21 s;
    the shortest delay is 5 s), so all but the first insertion evict: one per JSON row but
    one. One tracker: by default every CPU but one tracks a shard of the flows, each keeping
    its share of the cap (docs/scale.md), so the evictions would depend on the machine."""
    rc, out, err = run(capsys, "conns", "--json", "--workers", "1", "--max-flows", "1", SAMPLE)
    rows = out.splitlines()
    assert rc == 0 and len(rows) == 10
    assert err == ("portlens: 9 flows evicted because more than --max-flows 1 were open at "
                   "once; later packets of an evicted flow start a new one\n")
    for argv in (("events",), ("ports",), ("conns", "--workers", "2")):
        rc, _, err = run(capsys, *argv, "--max-flows", "1", SAMPLE)
        assert rc == 0 and "flows evicted because more than --max-flows 1" in err, argv
    rc, _, err = run(capsys, "conns", SAMPLE)
    assert "evicted" not in err
