"""The analysis summaries (ports, handshakes, sockets, ladder) and their reports.

Outside judges: Zeek's conn.log baselines (connections per responder port by conn_state, and
the outcome rules of docs/formats.md applied to Zeek's own conn_state and history), tshark's
option kinds (fingerprints), the scenario captures' expected connections (written from their
crafting parameters) and ladder texts written by hand from the packets
(tests/expected/ladder-*.txt, with ``{uid}`` for the connection's uid).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from portlens import api
from portlens.analysis.handshakes import fingerprint, handshake_table
from portlens.analysis.ladder import ladder
from portlens.analysis.ports import OUTCOMES, PortTable, port_table
from portlens.analysis.sketch import EXACT_MAX, GAMMA, Sketch, _bucket
from portlens.analysis.sockets import socket_table
from portlens.cli import main
from portlens.decode import decode_capture
from portlens.report import human
from portlens.report import ports as ports_report
from portlens.report.ladder import text as ladder_text
from portlens.track.model import Connection
from portlens.track.tracker import TrackerConfig, track
from tests.corpus import REPO, corpus_dir, tshark_frames
from tests.test_conformance_zeek import _norm, load_baseline, zeek_config

CAPTURES = REPO / "captures"
EXPECTED = REPO / "tests" / "expected"
SESSION = CAPTURES / "tcp-session.pcap"
SCENARIOS = sorted(CAPTURES.glob("scenario-*.pcap"))
NO_CORPUS = "public capture corpus not found: set PORTLENS_CORPUS or provide " \
            "../shared/captures/public"


def corpus_file(name: str) -> Path:
    root = corpus_dir()
    if root is None:
        pytest.skip(NO_CORPUS)
    return next(root.glob(name + ".pcap*"))


def conns_of(path: Path, config: TrackerConfig | None = None) -> list[Connection]:
    return list(track(decode_capture(path), config))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --- the outcome rules, restated from docs/formats.md over Zeek's fields ---------------------


def expected_outcome(row: dict[str, str], rows: list[dict[str, str]]) -> str | None:
    """The documented outcome of one conn.log row; None when the row lacks the fields."""
    proto, state = row.get("proto"), row.get("conn_state")
    if proto is None or state is None:
        return None
    h = "" if row.get("history", "-") == "-" else row.get("history", "")
    if proto == "tcp":
        if state == "REJ":
            return "refused"
        if not set("SsHh") & set(h):
            return "mid_stream"
        if state in ("S0", "SH", "RSTOS0"):
            return "unanswered"
        if state in ("RSTO", "RSTR", "RSTRH"):
            return "reset"
        if set("hH") & set(h) and not set("AD") & set(h):
            return "half_open"
        return "completed" if state == "SF" else "open"
    if proto == "udp":
        # ICMP unreachable (v4 type 3, v6 type 1) from the flow's responder to its originator
        unreachable = "1" if ":" in row["id.orig_h"] else "3"
        if any(r.get("proto") == "icmp" and r.get("id.orig_p") == unreachable
               and r.get("id.orig_h") == row["id.resp_h"]
               and r.get("id.resp_h") == row["id.orig_h"] for r in rows):
            return "refused"
        return {"SF": "completed", "S0": "unanswered", "SHR": "mid_stream"}.get(state, "open")
    # ICMP: requests answered or not, replies alone, messages that expect no answer.
    v6 = ":" in row["id.orig_h"]
    kind = int(row["id.orig_p"])
    if kind in ((128, 130, 133, 135, 139, 144) if v6 else (8, 10, 13, 15, 17)):
        return "completed" if row["resp_pkts"] != "0" else "unanswered"
    return "mid_stream" if kind in ((129, 140, 145) if v6 else (0, 14, 16, 18)) else "one_way"


def row_key(row: dict[str, str], has_proto: bool = True) -> tuple[str, int]:
    """A conn.log row's place in the ports report: (proto, responder port), or for ICMP
    (icmp or icmp6, the originator's type): ICMP rows are message kinds, not ports."""
    if has_proto and row["proto"] == "icmp":
        return ("icmp6" if ":" in row["id.orig_h"] else "icmp", int(row["id.orig_p"]))
    return (row["proto"] if has_proto else "", int(row["id.resp_p"]))


def baseline_params() -> list[Any]:
    root = corpus_dir()
    if root is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=NO_CORPUS))]
    out = []
    for log in sorted(root.glob("*.zeek-conn*.log")):
        name = log.name.split(".")[0]
        variant = log.name.split(".")[2] if log.name.count(".") > 2 else ""
        out.append(pytest.param(name, variant, id=f"{name}{'.' + variant if variant else ''}"))
    return out


def zeek_run(name: str, variant: str) -> tuple[list[Connection], list[dict[str, str]]]:
    root = corpus_dir()
    assert root is not None
    config = zeek_config(name, variant)
    conns = conns_of(next(root.glob(name + ".pcap*")), config)
    suffix = f".{variant}" if variant else ""
    rows = load_baseline(root / f"{name}.zeek-conn{suffix}.log")
    for r in rows:
        for k in ("id.orig_h", "id.resp_h"):
            if k in r:
                r[k] = _norm(r[k])
    return conns, rows


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "variant"), baseline_params())
def test_ports_agree_with_zeek(name: str, variant: str) -> None:
    conns, rows = zeek_run(name, variant)
    if not rows or "id.resp_p" not in rows[0]:
        pytest.skip("baseline has no responder port column")
    has_proto = "proto" in rows[0]
    table = port_table(conns)
    got: dict[tuple[str, int], dict[str, Any]] = {}
    for r in table.sorted("port"):
        key = (r.proto if has_proto else "", r.port)
        slot = got.setdefault(key, {"conns": 0, "states": Counter(), "outcomes": Counter()})
        slot["conns"] += r.conns
        slot["states"] += r.conn_states
        slot["outcomes"] += r.outcomes
    want: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"conns": 0, "states": Counter(), "outcomes": Counter()})
    for row in rows:
        slot = want[row_key(row, has_proto)]
        slot["conns"] += 1
        if "conn_state" in row:
            slot["states"][row["conn_state"]] += 1
        outcome = expected_outcome(row, rows)
        if outcome is not None:
            slot["outcomes"][outcome] += 1
    assert {k: v["conns"] for k, v in got.items()} == {k: v["conns"] for k, v in want.items()}
    if "conn_state" in rows[0]:
        assert {k: v["states"] for k, v in got.items()} == {
            k: v["states"] for k, v in want.items()}
    if has_proto and "conn_state" in rows[0]:
        assert {k: v["outcomes"] for k, v in got.items()} == {
            k: v["outcomes"] for k, v in want.items()}
        assert table.total.outcomes == sum((v["outcomes"] for v in want.values()), Counter())
    assert table.total.conns == len(rows)
    for r in table.sorted():
        assert sum(r.outcomes.values()) == r.conns


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "variant"), baseline_params())
def test_handshakes_agree_with_zeek(name: str, variant: str) -> None:
    """Handshakes per port are the rows with a SYN or SYN-ACK letter; SYN-ACKs the rows with
    h/H; refusals the REJ rows."""
    conns, rows = zeek_run(name, variant)
    if not rows or not {"proto", "history", "conn_state", "id.resp_p"} <= rows[0].keys():
        pytest.skip("baseline lacks proto/history/conn_state")
    table = handshake_table(conns)
    want: dict[int, Counter[str]] = defaultdict(Counter)
    for row in rows:
        h = row["history"]
        if row["proto"] != "tcp" or not set("SsHh") & set(h):
            continue
        slot = want[int(row["id.resp_p"])]
        slot["handshakes"] += 1
        slot["syn_acks"] += bool(set("hH") & set(h))
        slot["refused"] += row["conn_state"] == "REJ"
    got = {r.port: Counter({"handshakes": r.handshakes, "syn_acks": r.syn_acks,
                            "refused": r.record()["refused"]}) for r in table.sorted()}
    assert {p: +c for p, c in got.items()} == {p: +c for p, c in want.items()}


# --- fingerprints against tshark's option kinds -----------------------------------------------


def tshark_fingerprint(kinds: list[int]) -> str:
    """p0f order names written out here, independently: EOL and its padding as eol+N."""
    names = {2: "mss", 1: "nop", 3: "ws", 4: "sok", 8: "ts", 5: "sack"}
    out = []
    for i, k in enumerate(kinds):
        if k == 0:
            out.append(f"eol+{len(kinds) - i - 1}")
            break
        out.append(names.get(k, f"?{k}"))
    return ",".join(out)


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["zeek-pop3-rej-portreuse", "zeek-wikipedia", "zeek-http-get",
                                  "zeek-ftp-ipv4", "zeek-ftp-ipv6", "ndpi-synscan",
                                  "zeek-http-to-ssh-rstr", "zeek-modbus-p502-rst"])
def test_client_fingerprints_agree_with_tshark(name: str) -> None:
    path = corpus_file(name)
    want: dict[int, set[str]] = defaultdict(set)
    for f in tshark_frames(path):
        flags = f.int_last("tcp_flags", 16)
        if flags is None or flags & 0x12 != 0x02:
            continue
        raw = f.last("tcp_option_kinds") or ""
        kinds = [int(k) for k in raw.split(",") if k]
        want[int(f.last("tcp_dstport") or 0)].add(tshark_fingerprint(kinds))
    table = handshake_table(conns_of(path))
    got = {r.port: set(r.client_options.fingerprints) for r in table.sorted()
           if r.client_options.offers}
    assert got == dict(want)


def test_fingerprint_spelling() -> None:
    assert fingerprint([2, 4, 8, 1, 3]) == "mss,sok,ts,nop,ws"
    assert fingerprint([2, 1, 3, 1, 1, 4]) == "mss,nop,ws,nop,nop,sok"
    assert fingerprint([2, 1, 1, 5, 0, 0, 0]) == "mss,nop,nop,sack,eol+2"
    assert fingerprint([253, 2]) == "?253,mss"
    assert fingerprint([]) == ""


# --- the project's own captures ---------------------------------------------------------------


def test_tcp_session_ports(capsys: pytest.CaptureFixture[str]) -> None:
    """Numbers read off `tshark -r captures/tcp-session.pcap`: 6 packets from 49152, 4 from 80,
    100 + 300 payload bytes, SYN at 0, final handshake ACK at 0.020500."""
    code, out = run(capsys, "ports", "--json", str(SESSION))
    assert code == 0
    rec, total = json_lines(out)
    assert (rec["type"], rec["proto"], rec["port"], rec["service"], rec["class"]) == (
        "port", "tcp", 80, "http", "well-known")
    assert (rec["conns"], rec["completed"], rec["guessed"]) == (1, 1, 0)
    assert (rec["pkts_c2s"], rec["pkts_s2c"], rec["bytes_c2s"], rec["bytes_s2c"]) == (
        6, 4, 100, 300)
    assert (rec["rtt_p50_ns"], rec["rtt_p95_ns"], rec["rtt_max_ns"]) == (20_500_000,) * 3
    assert (rec["clients"], rec["servers"], rec["retransmissions"], rec["tcp_pkts"]) == (
        1, 1, 0, 10)
    assert total["type"] == "summary" and total["total"]["conns"] == 1 and total["ports"] == 1
    assert "conns" not in total  # the totals never pass for a port row


def test_tcp_session_handshake(capsys: pytest.CaptureFixture[str]) -> None:
    """tshark: SYN kinds 2,4,8,1,3 MSS 1460 WS 7; SYN-ACK the same kinds, MSS 1400 WS 9;
    SYN-ACK at 0.010250, ACK at 0.020500."""
    code, out = run(capsys, "handshakes", "--json", str(SESSION))
    assert code == 0
    (rec,) = json_lines(out)
    assert (rec["port"], rec["handshakes"], rec["syns"], rec["syn_acks"], rec["completed"]) == (
        80, 1, 1, 1, 1)
    assert rec["server_rtt_p50_ns"] == 10_250_000 and rec["client_rtt_p50_ns"] == 10_250_000
    assert rec["client_options"]["fingerprints"] == {"mss,sok,ts,nop,ws": 1}
    assert rec["client_options"]["mss"] == {"1460": 1}
    assert rec["server_options"]["mss"] == {"1400": 1}
    assert rec["server_options"]["wscale"] == {"9": 1}
    code, out = run(capsys, "handshakes", "--conns", "--json", str(SESSION))
    (conn,) = json_lines(out)
    assert conn["outcome"] == "established" and conn["client_options"]["wscale"] == 7


def test_tcp_session_sockets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "sockets", "--json", str(SESSION))
    assert code == 0
    recs = json_lines(out)
    listen = [r for r in recs if r["type"] == "listen"]
    assert [(r["proto"], r["state"], r["local_addr"], r["local_port"], r["peer_addrs"])
            for r in listen] == [("tcp", "LISTEN", "198.51.100.20", 80, {"192.0.2.10": 1})]
    socks = {(r["local_addr"], r["local_port"]): r["state"] for r in recs if r["type"] == "socket"}
    # the client closed first: it waits in TIME-WAIT, the server's last ACK closed it
    assert socks == {("192.0.2.10", 49152): "TIME-WAIT", ("198.51.100.20", 80): "CLOSED"}


# --- the scenario captures against their expected connections ---------------------------------

SS = {"CLOSED": "CLOSED", "LISTEN": "LISTEN", "SYN-SENT": "SYN-SENT", "SYN-RECEIVED": "SYN-RECV",
      "ESTABLISHED": "ESTAB", "FIN-WAIT-1": "FIN-WAIT-1", "FIN-WAIT-2": "FIN-WAIT-2",
      "CLOSE-WAIT": "CLOSE-WAIT", "CLOSING": "CLOSING", "LAST-ACK": "LAST-ACK",
      "TIME-WAIT": "TIME-WAIT"}


def scenario_params() -> list[Any]:
    if not SCENARIOS:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no scenario captures yet"))]
    return [pytest.param(p, id=p.stem) for p in SCENARIOS
            if (CAPTURES / "expected" / f"{p.stem}.conns.json").exists()]


def scenario_expected(path: Path) -> list[dict[str, Any]]:
    data = json.loads((CAPTURES / "expected" / f"{path.stem}.conns.json").read_text())
    rows: list[dict[str, Any]] = data["connections"]
    return rows


def as_baseline_row(c: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) if v is not None else "-" for k, v in c.items() if not isinstance(v, list)}


@pytest.mark.parametrize("path", scenario_params())
def test_scenario_ports(path: Path) -> None:
    expected = scenario_expected(path)
    rows = [as_baseline_row(c) for c in expected]
    want: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for row in rows:
        want[row_key(row)][expected_outcome(row, rows) or "?"] += 1
    table = port_table(conns_of(path))
    got: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    for r in table.rows.values():  # ICMP codes summed: the expectations key by type
        got[(r.proto, r.port)] += r.outcomes
    assert got == dict(want)


@pytest.mark.parametrize("path", scenario_params())
def test_scenario_handshakes_and_sockets(path: Path) -> None:
    expected = scenario_expected(path)
    conns = conns_of(path)
    table = handshake_table(conns)
    want: dict[int, Counter[str]] = defaultdict(Counter)
    for c in expected:
        if c["proto"] == "tcp" and c.get("handshake.outcome") not in (None, "mid-stream"):
            want[c["id.resp_p"]][c["handshake.outcome"]] += 1
            want[c["id.resp_p"]]["syn_retransmits"] += c.get("handshake.syn_retransmits", 0)
            want[c["id.resp_p"]]["syn_ack_retransmits"] += c.get("handshake.syn_ack_retransmits", 0)
    got = {r.port: +(r.outcomes + Counter({"syn_retransmits": r.syn_retransmits,
                                           "syn_ack_retransmits": r.syn_ack_retransmits}))
           for r in table.sorted()}
    assert got == {p: +c for p, c in want.items()}
    sockets = socket_table(conns)
    got_states = Counter((s.local_addr, s.local_port, s.peer_addr, s.peer_port, s.state)
                         for s in sockets.sockets if s.proto == "tcp")
    want_states: Counter[tuple[str, int, str, int, str]] = Counter()
    for c in expected:
        if c["proto"] == "tcp":
            o, r = (c["id.orig_h"], c["id.orig_p"]), (c["id.resp_h"], c["id.resp_p"])
            want_states[(*o, *r, SS[c["orig_state"]])] += 1
            want_states[(*r, *o, SS[c["resp_state"]])] += 1
    assert got_states == want_states
    listeners = {(s.proto, s.addr, s.port) for s in sockets.listeners.values()}
    want_listeners = set()
    for c in expected:
        history = c.get("history") or ""
        if (c["proto"] == "tcp" and "h" in history) or (
                c["proto"] == "udp" and c["conn_state"] == "SF"):
            want_listeners.add((c["proto"], c["id.resp_h"], c["id.resp_p"]))
        if c["proto"] == "tcp" and "H" in history:
            want_listeners.add((c["proto"], c["id.orig_h"], c["id.orig_p"]))
    assert listeners == want_listeners


RETRANSMISSION_MARKS = {"retransmission", "SYN retransmission", "SYN-ACK retransmission",
                        "fast retransmission", "spurious retransmission"}


@pytest.mark.parametrize("path", scenario_params())
def test_scenario_ladders(path: Path) -> None:
    """Every TCP connection: one arrow per packet, the final states printed last on each side
    are the expected end states, and the marks count what the expected analysis counts."""
    expected = {(c["id.orig_h"], c["id.orig_p"], c["id.resp_h"], c["id.resp_p"]): c
                for c in scenario_expected(path) if c["proto"] == "tcp"}
    batches = list(decode_capture(path))
    for conn in track(iter(batches)):
        lad = ladder(conn, batches)
        if conn.proto != "tcp":
            continue
        assert len(lad.steps) == conn.orig_pkts + conn.resp_pkts
        lines = ladder_text(lad, full=True).splitlines()
        assert sum(1 for line in lines if re.search(r"\|-- .*>\||\|<-.* --\|", line)) == len(
            lad.steps)
        want = expected.get((conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p))
        if want is None:
            continue
        last_orig = next((s.orig_state for s in reversed(lad.steps) if s.orig_state), None)
        last_resp = next((s.resp_state for s in reversed(lad.steps) if s.resp_state), None)
        if last_orig is not None:
            assert str(last_orig) == want["orig_state"]
        if last_resp is not None:
            assert str(last_resp) == want["resp_state"]
        marks = Counter(m for s in lad.steps for m in s.marks)
        marks["retransmission"] = sum(marks[m] for m in RETRANSMISSION_MARKS)
        for mark, key in (("retransmission", "retransmissions"), ("dup ACK", "dup_acks"),
                          ("out-of-order", "out_of_order"), ("zero window", "zero_windows"),
                          ("zero-window probe", "zero_window_probes"),
                          ("keep-alive", "keep_alives")):
            if f"analysis.{key}" in want:
                assert marks[mark] == want[f"analysis.{key}"], mark


# --- ladders written by hand ------------------------------------------------------------------


def ladder_cases() -> list[Any]:
    cases: list[Any] = [
        pytest.param(SESSION, "ladder-tcp-session.txt", None, id="tcp-session"),
        pytest.param(CAPTURES / "scenario-synack-retransmit.pcap",
                     "ladder-synack-retransmit.txt", None, id="synack-retransmit"),
    ]
    root = corpus_dir()
    for name, expected, port in (("zeek-http-to-ssh-rstr", "ladder-http-to-ssh-rstr.txt", None),
                                 ("zeek-pop3-rej-portreuse", "ladder-pop3-rej.txt", 26242)):
        if root is None:
            cases.append(pytest.param(None, expected, port, id=name,
                                      marks=pytest.mark.skip(reason=NO_CORPUS)))
        else:
            cases.append(pytest.param(next(root.glob(name + ".pcap*")), expected, port, id=name))
    return cases


@pytest.mark.parametrize(("path", "expected", "orig_port"), ladder_cases())
def test_ladder_matches_hand_written(capsys: pytest.CaptureFixture[str], path: Path,
                                     expected: str, orig_port: int | None) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    conns = [c for c in conns_of(path) if orig_port is None or c.orig_p == orig_port]
    first = min(conns, key=lambda c: c.ts_ns)
    code, out = run(capsys, "ladder", "--utc", str(path), "--conn", first.uid)
    assert code == 0
    assert out == (EXPECTED / expected).read_text().replace("{uid}", first.uid)


@pytest.mark.corpus
def test_ladder_folds_long_connections(capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus_file("zeek-ssh-half-duplex-client")
    conn = max(conns_of(path), key=lambda c: c.orig_pkts + c.resp_pkts)
    n = conn.orig_pkts + conn.resp_pkts
    assert n > 100
    code, folded = run(capsys, "ladder", str(path), "--conn", conn.uid)
    assert code == 0
    code, full = run(capsys, "ladder", str(path), "--conn", conn.uid, "--full")
    arrow = re.compile(r"^\s+\d+\.\d{6}\s+(\d+)  \|")
    frames_full = [int(m.group(1)) for line in full.splitlines() if (m := arrow.match(line))]
    frames_folded = [int(m.group(1)) for line in folded.splitlines() if (m := arrow.match(line))]
    assert len(frames_full) == n and frames_full == sorted(frames_full)
    assert frames_folded[:20] == frames_full[:20] and frames_folded[-20:] == frames_full[-20:]
    hidden = [int(m.group(1)) for m in re.finditer(r"\.\.\. (\d+) segments? not shown", folded)]
    assert sum(hidden) + len(frames_folded) == n
    # states stay visible when folded
    assert [line for line in full.splitlines() if line.startswith(" " * 20) and line.strip()] \
        == [line for line in folded.splitlines() if line.startswith(" " * 20)
            and line.strip() and "not shown" not in line]


def test_ladder_unknown_uid(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ladder", str(SESSION), "--conn", "Cnope"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err == "portlens: no connection matches --conn Cnope (`portlens conns` lists them)\n"


# --- the three outputs carry the same numbers ---------------------------------------------------


def table_params() -> list[Any]:
    out: list[Any] = [pytest.param(SESSION, id="tcp-session")]
    out += [pytest.param(p, id=p.stem) for p in SCENARIOS[:6]]
    root = corpus_dir()
    if root is not None:
        out += [pytest.param(next(root.glob(n + ".pcap*")), id=n)
                for n in ("zeek-wikipedia", "zeek-pop3-rej-portreuse", "zeek-gre-tunnel",
                          "zeek-ssh-half-duplex-client", "ndpi-synscan")]
    return out


def parse_outcomes(cell: str) -> dict[str, str]:
    """'2.0 k unanswered, 5 refused' -> {'unanswered': '2.0 k', 'refused': '5'}."""
    if cell == "-":
        return {}
    out = {}
    for part in cell.split(", "):
        m = re.fullmatch(r"([\d.]+(?: [kMGT])?) (\S+)", part)
        assert m, part
        out[m.group(2).replace("-", "_")] = m.group(1)
    return out


@pytest.mark.parametrize("path", table_params())
def test_ports_json_csv_table_agree(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    code, out = run(capsys, "ports", "--json", "--sort", "port", str(path))
    assert code == 0
    *records, summary = [r for r in json_lines(out) if r["type"] != "scan"]  # JSON alone
    assert summary["type"] == "summary" and {r["type"] for r in records} == {"port"}
    code, out = run(capsys, "ports", "--csv", "--sort", "port", str(path))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(records)  # port rows only: no totals row among them
    for rec, row in zip(records, rows, strict=True):
        for key, value in rec.items():
            if key == "type":
                continue
            if isinstance(value, dict):
                assert row[key] == " ".join(f"{k}:{v}" for k, v in value.items())
            elif value is None:
                assert row[key] == ""
            elif isinstance(value, bool):
                assert row[key] == str(value).lower()
            elif isinstance(value, float):
                assert float(row[key]) == pytest.approx(value)
            else:
                assert row[key] == str(value), key
    # the printed table: every row's port, connection count and outcomes, totals last
    monkeypatch.setenv("COLUMNS", "250")
    code, out = run(capsys, "ports", "--sort", "port", str(path))
    assert code == 0
    everything = [*records, {**summary["total"], "type": "total"}]
    for rec in everything:
        label = ("all" if rec["type"] == "total"
                 else f"{rec['proto']} {rec['icmp_type']}/{rec['icmp_code']}"
                 if rec["proto"] in ("icmp", "icmp6") else f"{rec['port']}/{rec['proto']}")
        row_re = re.compile(rf"^\s*{re.escape(label)}\s+\S+\s+"
                            rf"{re.escape(human.count(rec['conns']))}\s", re.MULTILINE)
        assert row_re.search(out), label
    columns, cells = ports_report.table_rows(PortTable().update(conns_of(path)), "port")
    for rec, row in zip(everything, cells, strict=True):
        shown = dict(zip(columns, row, strict=True))
        assert shown["conns"] == human.count(rec["conns"])
        assert parse_outcomes(shown["outcomes"]) == {
            o: human.count(rec[o]) for o in OUTCOMES if rec[o]}
        assert shown["pkts c>s/s>c"] == f"{human.count(rec['pkts_c2s'])}/" \
                                        f"{human.count(rec['pkts_s2c'])}"
        assert shown["bytes c>s/s>c"] == f"{human.size(rec['bytes_c2s'])}/" \
                                         f"{human.size(rec['bytes_s2c'])}"


@pytest.mark.parametrize("path", table_params())
def test_handshakes_and_sockets_json_csv_agree(capsys: pytest.CaptureFixture[str],
                                               path: Path) -> None:
    code, out = run(capsys, "handshakes", "--json", str(path))
    records = json_lines(out)
    assert code == (0 if records else 1)
    code, out = run(capsys, "handshakes", "--csv", str(path))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(records)
    for rec, row in zip(records, rows, strict=True):
        for key in ("port", "handshakes", "syns", "syn_acks", "completed", "refused",
                    "unanswered", "half_open", "reset", "server_rtt_p50_ns"):
            assert row[key] == ("" if rec[key] is None else str(rec[key]))
        assert row["client_options.offers"] == str(rec["client_options"]["offers"])
    code, out = run(capsys, "sockets", "--json", str(path))
    assert code == 0
    records = json_lines(out)
    code, out = run(capsys, "sockets", "--csv", str(path))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["type"], r["local_addr"], r["local_port"], r["state"] or "") for r in records] \
        == [(r["type"], r["local_addr"], int(r["local_port"]), r["state"]) for r in rows]
    # peers as a JSON object, not addr:count (an IPv6 address is full of colons)
    assert [r.get("peer_addrs") for r in records] == [
        json.loads(r["peer_addrs"]) if r["peer_addrs"] else None for r in rows]
    conns = conns_of(path)
    assert sum(1 for r in records if r["type"] == "socket") == 2 * sum(
        1 for c in conns if c.proto in ("tcp", "udp"))


# --- merging -----------------------------------------------------------------------------------


def records_without_order(table: PortTable) -> list[dict[str, Any]]:
    return [*table.records("port"), table.total.record()]


def test_merge_equals_whole() -> None:
    paths = [SESSION, *SCENARIOS]
    root = corpus_dir()
    if root is not None:
        paths += [next(root.glob(n + ".pcap*")) for n in ("zeek-wikipedia", "ndpi-synscan")]
    conns = [c for p in paths for c in conns_of(p)]
    random.Random(7).shuffle(conns)
    whole = port_table(conns, all_ports=True)
    parts = [port_table(conns[i::3], all_ports=True) for i in range(3)]
    assert records_without_order(parts[0] + parts[1] + parts[2]) == records_without_order(whole)
    assert records_without_order(parts[2] + (parts[0] + parts[1])) == records_without_order(whole)
    hs = [handshake_table(conns[i::2]) for i in range(2)]
    assert (hs[0] + hs[1]).records() == handshake_table(conns).records()
    so = [socket_table(conns[i::2]) for i in range(2)]
    assert (so[0] + so[1]).records() == socket_table(conns).records()


def test_sketch_merges_in_any_order_and_stays_within_one_percent() -> None:
    rng = random.Random(3)
    values = [int(rng.lognormvariate(16, 1.5)) for _ in range(5000)] + [0, 1]
    whole = Sketch()
    for v in values:
        whole.add(v)
    parts = [Sketch() for _ in range(5)]
    for i, v in enumerate(values):
        parts[i % 5].add(v)
    merged = parts[4] + parts[1] + parts[0] + parts[3] + parts[2]
    assert merged.to_dict() == whole.to_dict()
    ordered = sorted(values)
    for q in (0.01, 0.25, 0.5, 0.9, 0.95, 0.99):
        exact = ordered[max(1, -(-int(q * 1e6) * len(values) // 1_000_000)) - 1]
        got = whole.quantile(q)
        assert got is not None
        assert abs(got - exact) <= 0.01 * exact + 1
    assert whole.quantile(1.0) == max(values) and whole.max == max(values)
    small = Sketch()
    for v in (40, 10, 30, 20):
        small.add(v)
    assert small.is_exact and small.quantile(0.5) == 20 and small.quantile(0.95) == 40
    assert Sketch.from_dict(whole.to_dict()).to_dict() == whole.to_dict()
    assert len(values) > EXACT_MAX and not whole.is_exact


def test_sketch_buckets_many_values_as_one_at_a_time() -> None:
    """add_many buckets many values with numpy's log; on values at and beside every bucket
    boundary, zero, negatives and the largest durations, the buckets are those of ``_bucket``
    value by value (``add``)."""
    edges = [int(GAMMA**i) + d for i in range(1, 2600) for d in (-1, 0, 1)]
    rng = random.Random(5)
    values = [*edges, 0, -3, 1, 2, 2**53 + 1, 2**62,
              *(rng.randrange(10**12) for _ in range(3000))]
    rng.shuffle(values)
    one, many = Sketch(), Sketch()
    for v in values:
        one.add(v)
    many.add_many(values[:EXACT_MAX])
    many.add_many(values[EXACT_MAX:])  # the first values bucketed together, then the rest
    assert many.to_dict() == one.to_dict()
    assert one.buckets == Counter(_bucket(v) for v in values)


def test_all_ports_adds_client_rows_not_connections(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "ports", "--json", "--all-ports", str(SESSION))
    assert code == 0
    recs = json_lines(out)
    rows = {(r["port"], r["role"]): r for r in recs if r["type"] == "port"}
    assert set(rows) == {(80, "server"), (49152, "client")}
    assert rows[(49152, "client")]["client_conns"] == 1
    assert rows[(49152, "client")]["class"] == "dynamic"
    assert recs[-1]["total"]["conns"] == 1


# --- the command line ---------------------------------------------------------------------------


def test_default_command_is_ports(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, str(SESSION), "--json")
    code2, out2 = run(capsys, "ports", str(SESSION), "--json")
    assert code == code2 == 0 and out == out2


def test_sort_and_top(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in SCENARIOS] or [str(SESSION)]
    code, out = run(capsys, "ports", "--json", "--sort", "bytes", "--top", "2", *paths)
    assert code == 0
    recs = json_lines(out)
    ports_ = [r for r in recs if r["type"] == "port"]
    assert len(ports_) == min(2, recs[-1]["ports"])
    sizes = [r["bytes_c2s"] + r["bytes_s2c"] for r in ports_]
    assert sizes == sorted(sizes, reverse=True)
    code, out = run(capsys, "ports", "--json", "--sort", "port", *paths)
    keys = [(r["proto"], r["port"]) for r in json_lines(out) if r["type"] == "port"]
    order = {"tcp": 0, "udp": 1}
    assert keys == sorted(keys, key=lambda k: (order.get(k[0], 2), k[0], k[1]))


@pytest.mark.parametrize("command", ["ports", "handshakes", "sockets"])
def test_exit_codes(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, _ = run(capsys, command, str(CAPTURES / "link-unknown.pcap"))
    assert code == 1  # no connection at all
    code, _ = run(capsys, command, str(CAPTURES / "no-such-file.pcap"))
    assert code == 2
    code, _ = run(capsys, command, "--timeout", "nonsense", str(SESSION))
    assert code == 2


def test_tables_print(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    for argv in (["ports"], ["handshakes"], ["handshakes", "--conns"], ["sockets"]):
        code, out = run(capsys, *argv, str(SESSION))
        assert code == 0 and "80" in out
    from portlens.cli import common

    monkeypatch.setattr(common, "stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "70")
    code = main(["ports", str(SESSION)])
    out, err = capsys.readouterr()
    assert code == 0 and "80/tcp" in out and "1 completed" in out
    assert "left out to fit 70 columns; --wide shows every column" in err


# --- the Python API -------------------------------------------------------------------------------


def test_api_analyze() -> None:
    result = api.analyze([SESSION])
    assert len(result.connections) == 1
    row = result.ports.get("tcp", 80)
    assert row is not None and row.outcomes == Counter({"completed": 1})
    assert [r.port for r in result.handshakes] == [80]
    assert len(result.sockets.listeners) == 1
    assert [str(t.new) for t in result.events][:2] == ["SYN-SENT", "SYN-RECEIVED"]
    both = result + api.analyze([SESSION])
    assert both.ports.total.conns == 2 and len(both.events) == 2 * len(result.events)


def test_api_to_pandas() -> None:
    pytest.importorskip("pandas")
    frames = api.analyze([SESSION]).to_pandas()
    assert set(frames) == {"connections", "ports", "handshakes", "listeners", "sockets", "events"}
    assert int(frames["ports"]["conns"].sum()) == 1
    assert frames["connections"]["outcome"].tolist() == ["completed"]


def test_workers_give_the_same_ports(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in SCENARIOS] or [str(SESSION)]
    code, one = run(capsys, "ports", "--json", "--sort", "port", *paths)
    code2, two = run(capsys, "ports", "--json", "--sort", "port", "--workers", "2", *paths)
    assert code == code2 == 0 and json_lines(one) == json_lines(two)


@pytest.mark.parametrize(("ns", "text"), [
    (None, "-"), (500, "500 ns"), (250_000, "250 µs"), (10_300_000, "10.3 ms"),
    (999_600_000, "1.00 s"), (45_600_000_000, "45.6 s"), (999_400_000_000, "999 s"),
    (1_000_000_000_000, "16.7 min"), (9_000_000_000_000, "150 min"),
    (360_000_000_000_000, "100 h")])
def test_durations_read_alike_in_every_table(ns: int | None, text: str) -> None:
    """RTTs and connection lengths share one format: three significant digits, the unit
    growing from ns to hours (a day-long connection is not 86400 s)."""
    assert human.duration(ns) == text


def test_live_dashboard_shows_rates_backlog_ports_and_open_connections() -> None:
    """The sniff view, rendered as a terminal would show it: header with drops and the backlog
    waiting on disk, the per-port table of ended connections, the open ones with both RFC 9293
    states, the latest handshakes."""
    from rich.console import Console

    from portlens.pipeline import new_tracker
    from portlens.report.live import Rates, dashboard

    batches = list(decode_capture(str(CAPTURES / "loopback-sample.pcap")))
    tracker = new_tracker(TrackerConfig())  # the live view's
    ended = [c for b in batches for c in tracker.feed(b)]
    open_conns = tracker.open_connections()
    assert open_conns  # the capture ends before the 5 s close timers fire
    rates = Rates("lo", 12.0, 59, 21_000, 4.9, 1750.0, 61, 2, ring_full=1,
                  buffer_dropped=0, backlog_bytes=600_000_000, spooled_bytes=540_000_000,
                  behind_s=12.34)
    console = Console(record=True, width=300, color_system=None)
    console.print(dashboard(rates, PortTable().update([*ended, *open_conns]), open_conns, ended))
    text = console.export_text()
    head = text.splitlines()[0]
    assert head.startswith("portlens sniff -i lo     12.0 s   59 packets   21.0 kB   5 pkts/s")
    assert "kernel: 61 received, 2 dropped (ring full 1 times)" in head
    assert "backlog 600.0 MB (540.0 MB on disk)   analysis 12.3 s behind" in head
    assert "dropped by portlens" not in head
    assert re.search(r"^18080/tcp\s+-\s+4\s+4 completed\s+30/23", text, re.M)
    states = {line.split()[3] for line in text.split("open connections")[1].splitlines()[2:]
              if line.strip() and "latest handshakes" not in line}
    assert "TIME-WAIT/CLOSED" in states or "TIME-WAIT/LAST-ACK" in states, states
    # Every handshake, newest SYN first, with the RTTs of its record in the tables' format.
    shown = [line.split() for line in text.split("latest handshakes")[1].splitlines()[2:]
             if line.strip()]
    expect = sorted((c for c in open_conns if c.handshake and c.handshake.syn_ns),
                    key=lambda c: c.handshake.syn_ns or 0, reverse=True)  # type: ignore[union-attr]
    assert len(shown) == len(expect) == 5
    for row, c in zip(shown, expect, strict=True):
        hs = c.handshake
        assert hs is not None
        assert row[:3] == [f"{c.resp_h}:{c.resp_p}", f"{c.orig_h}:{c.orig_p}", str(hs.outcome)]
        assert " ".join(row[3:]) == " ".join([human.duration(hs.server_rtt_ns),
                                              human.duration(hs.client_rtt_ns),
                                              str(hs.syn_retransmits)])
