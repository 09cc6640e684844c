"""`portlens report`: the HTML page's embedded data against the other commands' `--json`.

The outside judges of those numbers are the other reports' own tests (Zeek, tshark); here the
page must carry exactly what `ports --json`, `handshakes --json`, `hosts --json`,
`convs --json`, `packets --stats --json` and `conns --json` print, its ladders exactly what
`portlens ladder` draws, and its packet rates what the -f filter `tcp port N` selects. The page
in a real browser: tests/test_html_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import portlens
from portlens.analysis.ladder import ladder
from portlens.analysis.ladders import ladders, pick
from portlens.analysis.ports import outcome
from portlens.analysis.rates import choose_bin
from portlens.cli import main
from portlens.decode import decode_capture
from portlens.pipeline.run import Pipeline
from portlens.report.html import read_payload
from portlens.track.tracker import track
from tests import test_live_cli as live_cli
from tests.corpus import REPO, corpus_dir, every_capture_params
from tests.test_live_cli import Ports, frame_count, free_port, make_traffic, start, wait_until

CAPTURES = REPO / "captures"
SAMPLE = CAPTURES / "loopback-sample.pcap"
NO_CORPUS = "public capture corpus not found: set PORTLENS_CORPUS or provide " \
            "../shared/captures/public"


def corpus_file(name: str) -> Path:
    root = corpus_dir()
    if root is None:
        pytest.skip(NO_CORPUS)
    return next(root.glob(name + ".pcap*"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def report(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str
           ) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "report.html"
    code, _, err = run(capsys, "report", *argv, "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}" in err
    text = out.read_text(encoding="utf-8")
    return text, read_payload(text)


def conn_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The embedded connection columns back as rows (ts_ns restored from base_ns)."""
    conns = data["conns"]
    base = int(conns["base_ns"])
    rows = []
    for i in range(conns["n"]):
        row = {}
        for name, col in conns["cols"].items():
            if isinstance(col, dict):
                code = col["codes"][i]
                row[name] = None if code < 0 else col["dict"][code]
            else:
                row[name] = col[i]
        row["ts_ns"] += base
        rows.append(row)
    return rows


def check_against_json(capsys: pytest.CaptureFixture[str], data: dict[str, Any],
                       *files: str) -> None:
    _, out, _ = run(capsys, "ports", "--json", *files)
    assert data["ports"] == json_lines(out)
    _, out, _ = run(capsys, "handshakes", "--json", *files)
    assert data["handshakes"] == json_lines(out)
    _, out, _ = run(capsys, "hosts", "--json", *files)
    hosts = json_lines(out)
    assert data["hosts"] == hosts[:100] and data["hosts_total"] == len(hosts)
    _, out, _ = run(capsys, "convs", "--json", *files)
    convs = json_lines(out)
    assert data["convs"] == convs[:100] and data["convs_total"] == len(convs)
    _, out, _ = run(capsys, "packets", "--stats", "--json", *files)
    assert data["stats"] == json.loads(out)
    _, out, _ = run(capsys, "conns", "--json", *files)
    expected = json_lines(out)
    rows = conn_rows(data)
    assert [r["uid"] for r in rows] == [e["uid"] for e in expected]
    for row, exp in zip(rows, expected, strict=True):
        for name, value in row.items():
            if name == "outcome":
                continue
            want = ",".join(exp[name]) or None if name == "tunnel_parents" else exp[name]
            assert value == want, (row["uid"], name)
    assert data["meta"]["conns"] == len(expected)
    # each connection's outcome is the one the ports report counted
    ports = {(r["proto"], r["port"] if r["port"] is not None else r["icmp_type"]): r
             for r in data["ports"] if r["type"] == "port" and r["proto"] in ("tcp", "udp")}
    counted = Counter((r["proto"], r["id.resp_p"], r["outcome"]) for r in rows
                      if r["proto"] in ("tcp", "udp"))
    assert counted == Counter({(p, port, o): rec[o] for (p, port), rec in ports.items()
                               for o in data["meta"]["outcomes"] if rec[o]})
    assert data["meta"]["missed_bytes"] == sum(e["missed_bytes"] for e in expected)


def check_ladders(capsys: pytest.CaptureFixture[str], data: dict[str, Any], path: Path,
                  uids: list[str], *argv: str) -> None:
    """Each ladder's lines are `portlens ladder --utc`'s: header, arrows (with their time,
    frame, direction and label), states, folds, verdict and end."""
    for uid in uids:
        rec = data["ladders"][uid]
        code, out, _ = run(capsys, "ladder", "--utc", *argv, str(path), "--conn", uid)
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == rec["title"] and lines[1] == rec["started"]
        assert lines[-2] == rec["verdict"] and lines[-1] == rec["end"]
        assert rec["client"] in lines[3] and rec["server"] in lines[3]
        body = [line for line in lines[4:-3] if line.strip()]
        if rec["initial"] != ["", ""]:
            assert body.pop(0).split() == [s for s in rec["initial"] if s]
        for row in rec["rows"]:
            line = body.pop(0)
            if row[0] == "fold":
                assert line.strip() == row[1]
                continue
            _, time, frame, from_orig, label, orig_state, resp_state = row
            assert line.split()[:2] == [time, str(frame)]
            arrow = line[20:]
            assert arrow.startswith("|--" if from_orig else "|<")
            assert f" {label} " in arrow
            if orig_state or resp_state:
                assert body.pop(0).split() == [s for s in (orig_state, resp_state) if s]
        assert not body


def test_report_of_the_sample_equals_json(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    text, data = report(capsys, tmp_path, str(SAMPLE))
    check_against_json(capsys, data, str(SAMPLE))
    assert data["meta"]["ladders"] == 8 and set(data["ladders"]) == {
        r["uid"] for r in conn_rows(data)}
    check_ladders(capsys, data, SAMPLE, sorted(data["ladders"]))
    # self-contained: no script, style or image comes from anywhere else
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", text)
    assert not re.search(r"<link[^>]*\shref=", text)
    assert "<title>portlens report: loopback-sample.pcap</title>" in text


def test_report_of_a_scan_equals_json(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    path = corpus_file("ndpi-synscan")
    _, data = report(capsys, tmp_path, str(path), "--ladders", "40")
    check_against_json(capsys, data, str(path))
    scans = [r for r in data["ports"] if r["type"] == "scan"]
    assert scans and scans[0]["ports"] == 1000
    assert data["meta"]["ladders"] == 40 and data["meta"]["ladder_limit"] == 40
    rows = conn_rows(data)
    by_uid = {r["uid"]: r for r in rows}
    # every outcome present gets ladders before any outcome gets a second one
    outcomes = {r["outcome"] for r in rows}
    assert outcomes <= {by_uid[u]["outcome"] for u in data["ladders"]}
    check_ladders(capsys, data, path, sorted(data["ladders"])[:8])


def test_report_filter_and_window_apply(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    path = corpus_file("zeek-wikipedia")
    _, data = report(capsys, tmp_path, str(path), "-f", "tcp", "--ladders", "5")
    check_against_json(capsys, data, str(path), "-f", "tcp")
    assert {r["proto"] for r in conn_rows(data)} == {"tcp"}
    check_ladders(capsys, data, path, sorted(data["ladders"]), "-f", "tcp")


def test_rates_equal_the_port_filter(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    """A port's packets per bin add up to what `-f 'PROTO port N'` selects, bin by bin."""
    path = corpus_file("zeek-wikipedia")
    _, data = report(capsys, tmp_path, str(path), "--ladders", "0")
    rates = data["rates"]
    assert data["meta"]["ladders"] == 0 and data["ladders"] == {}
    assert sum(rates["all"]) == data["stats"]["frames"]
    assert rates["ports"]
    start, width = rates["start_s"], rates["bin_s"]
    for name, series in rates["ports"].items():
        port, proto = name.split("/")
        _, out, _ = run(capsys, "packets", "--json", "-f", f"{proto} port {port}", str(path))
        bins = [0] * len(series)
        for rec in json_lines(out):
            bins[(rec["ts_ns"] // 10**9 - start) // width] += 1
        assert series == bins, name
    # new connections: every connection once, in the bin of its first packet
    total = sum(sum(v) for v in rates["new_conns"].values())
    assert total == data["meta"]["conns"]


@pytest.mark.parametrize("argv", [[], ["-f", "tcp or icmp"]])
def test_rates_count_packets_of_a_frame_of_several(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path, argv: list[str]) -> None:
    """An A-MSDU frame carries several packets (`portlens packets` lists each): the rate
    chart counts packets in ``all`` as in the ports' series, so the stacked ports and
    ``other`` add up to ``all`` and ``other`` is never negative. A filter that keeps a
    subframe but not its frame's own row counts that packet in its second (it crashed the
    report: a port's packet outside the bins)."""
    path = CAPTURES / "encap" / "encap-amsdu.pcap"
    _, data = report(capsys, tmp_path, str(path), *argv)
    rates = data["rates"]
    _, out, _ = run(capsys, "packets", "--json", *argv, str(path))
    listed = json_lines(out)
    assert sum(rates["all"]) == len(listed) > data["stats"]["frames"]
    bins = [0] * len(rates["all"])
    for rec in listed:
        bins[(rec["ts_ns"] // 10**9 - rates["start_s"]) // rates["bin_s"]] += 1
    assert rates["all"] == bins
    for i, total in enumerate(rates["all"]):
        in_ports = sum(series[i] for series in rates["ports"].values())  # one port a packet
        assert rates["other"][i] == total - in_ports >= 0


def test_many_ladders_equal_one_by_one() -> None:
    """One pass for many connections gives each the ladder `portlens ladder` draws alone
    (a capture with a tunnel: the carrier's UDP flow is kept by its outer addresses)."""
    for name in ("ndpi-6in4tunnel", "zeek-wikipedia"):
        path = corpus_file(name)
        conns = list(track(decode_capture(path)))
        drawn = ladders(conns, decode_capture(path))
        assert set(drawn) == {c.uid for c in conns}
        for c in conns:
            alone = ladder(c, decode_capture(path))
            assert drawn[c.uid].steps == alone.steps, (name, c.uid)
            assert (drawn[c.uid].orig_initial, drawn[c.uid].resp_initial) == (
                alone.orig_initial, alone.resp_initial)


def test_pick_takes_turns_over_outcome_and_port() -> None:
    path = corpus_file("ndpi-synscan")
    conns = list(track(decode_capture(path)))
    chosen = pick(conns, 30)
    assert len(chosen) == 30 and len({c.uid for c in chosen}) == 30
    outcomes = Counter(outcome(c) for c in conns)
    taken = Counter(outcome(c) for c in chosen)
    # each outcome gives one before any gives two; small ones are emptied, the rest share
    assert set(taken) == set(outcomes)
    left = [o for o in outcomes if taken[o] < outcomes[o]]
    assert max(taken[o] for o in left) - min(taken[o] for o in left) <= 1
    # within an outcome, the ports take turns: no port twice before every port once
    for kind in outcomes:
        ports = {c.resp_p for c in conns if outcome(c) == kind}
        taken_ports = [c.resp_p for c in chosen if outcome(c) == kind]
        assert len(set(taken_ports)) == min(len(taken_ports), len(ports)), kind
    assert pick(conns, len(conns) + 1) == conns
    assert pick(conns, 0) == []


def test_choose_bin() -> None:
    assert choose_bin(1) == 1
    assert choose_bin(1500) == 1
    assert choose_bin(1501) == 2
    assert choose_bin(499) == 1
    assert choose_bin(86400) == 60
    assert choose_bin(10**8) == 86400
    assert choose_bin(10**9) == -(-10**9 // 1500)


@pytest.mark.parametrize("path", every_capture_params())
def test_counts_of_the_cores_batches_equal_numpy_batches(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        path: Path) -> None:
    """The first pass counts (summary, talkers, rates, the ladders' frames) the batches a
    thread of the core read and decoded for the tracker (``Pipeline.reads_in_core``). Read as
    NumPy batches on the caller's thread instead (the path of live captures, and of several
    files followed one by one), every capture gives the same page, messages and exit status,
    with and without a filter or a time window."""
    out = tmp_path / "report.html"

    def page(*argv: str) -> tuple[int, str, dict[str, Any] | None]:
        out.unlink(missing_ok=True)
        code, _, err = run(capsys, "report", str(path), *argv, "-o", str(out))
        data = read_payload(out.read_text(encoding="utf-8")) if out.exists() else None
        if data is not None:
            data["meta"].pop("generated")
        return code, err, data

    variants: list[list[str]] = [[], ["-f", "tcp or icmp", "--ladders", "3"]]
    while variants:
        argv = variants.pop(0)
        held = page(*argv)
        with monkeypatch.context() as m:
            m.setattr(Pipeline, "reads_in_core", lambda self: False)
            general = page(*argv)
        assert held == general, argv
        stats = held[2]["stats"] if held[2] is not None else {}
        if not argv and stats.get("first_ns") is not None:
            # the middle half of the capture's time (epoch seconds, to the microsecond)
            first, last = stats["first_ns"], stats["last_ns"]
            at = [f"{(first + k * (last - first) // 4) / 1e9:.6f}" for k in (1, 3)]
            variants.append(["--start", at[0], "--end", at[1]])


def test_counts_of_several_files_on_the_cores_batches(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Several files merged in time order by the core: the same page as through NumPy
    batches, with and without a filter."""
    files = [str(SAMPLE), *(str(p) for p in sorted(CAPTURES.glob("scenario-*.pcap"))[:3])]
    assert len(files) == 4
    out = tmp_path / "report.html"

    def page(*argv: str) -> tuple[int, str, dict[str, Any]]:
        code, _, err = run(capsys, "report", *files, *argv, "-o", str(out))
        data = read_payload(out.read_text(encoding="utf-8"))
        data["meta"].pop("generated")
        return code, err, data

    for argv in ([], ["-f", "tcp"]):
        held = page(*argv)
        with monkeypatch.context() as m:
            m.setattr(Pipeline, "reads_in_core", lambda self: False)
            assert page(*argv) == held, argv
        assert held[2]["meta"]["sources"] == files


def test_api_report_equals_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, cli = report(capsys, tmp_path, str(SAMPLE))
    text = portlens.open(SAMPLE).report(tmp_path / "api.html")
    api = read_payload(text)
    assert (tmp_path / "api.html").read_text(encoding="utf-8") == text
    for data in (api, cli):
        data["meta"].pop("generated")
    assert api == cli
    assert read_payload(portlens.open(SAMPLE, filter="udp").report(ladders=1))["meta"][
        "ladders"] == 1
    with pytest.raises(ValueError, match="ladders"):
        portlens.open(SAMPLE).report(ladders=-1)


@pytest.mark.parametrize(("argv", "message"), [
    (["report", str(SAMPLE)], "the following arguments are required: -o/--output"),
    (["report", str(SAMPLE), "-o", "/nonexistent-dir/x.html"], "no such directory"),
    (["report", str(SAMPLE), "-o", "x.html", "--ladders", "-1"], "--ladders -1"),
    (["report", str(SAMPLE), "-o", "x.html", "--duration", "5"], "is for live capture"),
    (["report", "-o", "x.html"], "no capture file given"),
])
def test_report_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str],
                             message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_report_of_an_empty_selection(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    """Nothing selected: the page still says so (exit 1, as grep: nothing found)."""
    out = tmp_path / "empty.html"
    code, _, _ = run(capsys, "report", str(SAMPLE), "-f", "port 9", "-o", str(out))
    assert code == 1
    data = read_payload(out.read_text(encoding="utf-8"))
    assert data["stats"]["frames"] == 0 and data["meta"]["conns"] == 0
    assert data["rates"]["all"] == [] and data["ladders"] == {}


def test_report_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", str(SAMPLE), "-o", "-", "--title", "a <b> & c")
    assert code == 0 and out.startswith("<!DOCTYPE html>")
    assert "<title>a &lt;b&gt; &amp; c</title>" in out
    assert read_payload(out)["meta"]["conns"] == 8


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
@pytest.mark.parametrize("write", [True, False], ids=["with-w", "temporary-file"])
def test_live_report(tmp_path: Path, write: bool) -> None:
    """-i: the page of a live capture equals the reports of what it captured (-w FILE); without
    -w the ladders come from a temporary file, removed afterwards."""
    ports = Ports(free_port(), free_port(socket.SOCK_DGRAM), free_port())
    page, pcap = tmp_path / "live.html", tmp_path / "live.pcap"
    env = dict(os.environ, TMPDIR=str(tmp_path))
    args = ["report", "-i", "lo", "-f", ports.filter, "-o", str(page)]
    proc = start(live_cli.portlens(*args, *(["-w", str(pcap)] if write else [])), env=env)
    make_traffic(ports, rounds=2)
    written = pcap if write else None

    def captured() -> int:
        files = [written] if written else list(tmp_path.glob("portlens-report-*.pcap"))
        return max((frame_count(f) for f in files), default=0)

    # every packet made (the refused port's RST is the last) is in the file being written
    wait_until(lambda: captured() > 20, "the capture file")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "packets captured" in err and f"wrote {page}" in err
    data = read_payload(page.read_text(encoding="utf-8"))
    assert data["meta"]["live"]["interface"] == "lo"
    assert data["meta"]["sources"] == ["-i lo"]
    assert data["meta"]["ladders"] == data["meta"]["conns"] >= 4
    assert {r["id.resp_p"] for r in conn_rows(data)} >= {ports.tcp, ports.udp, ports.closed}
    if write:
        ports_json = subprocess.run(live_cli.portlens("ports", "--json", str(pcap)),
                                    capture_output=True, text=True, check=True).stdout
        assert data["ports"] == json_lines(ports_json)
        for uid, rec in data["ladders"].items():
            text = subprocess.run(live_cli.portlens("ladder", "--utc", str(pcap), "--conn", uid),
                                  capture_output=True, text=True, check=True).stdout
            assert text.splitlines()[-2:] == [rec["verdict"], rec["end"]]
    else:
        assert not list(tmp_path.glob("portlens-report-*")), "the temporary file stays"


def test_report_with_workers_equals_one_process(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    """--workers: the workers track, the packets are counted in a pass of their own; the page
    holds the same connections, counts and ladders (uids are drawn per worker, so connections
    are compared by their times and 5-tuples)."""
    path = corpus_file("zeek-wikipedia")
    _, one = report(capsys, tmp_path, str(path))
    _, two = report(capsys, tmp_path, str(path), "--workers", "2")

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["ts_ns"], r["proto"], r["id.orig_h"], r["id.orig_p"], r["id.resp_h"],
                r["id.resp_p"])

    def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(({k: v for k, v in r.items() if k != "uid"} for r in conn_rows(data)),
                      key=key)

    def ladders_of(data: dict[str, Any]) -> list[str]:
        return sorted(json.dumps({k: v for k, v in rec.items() if k != "title"})
                      for rec in data["ladders"].values())

    assert rows(one) == rows(two)
    assert ladders_of(one) == ladders_of(two)
    for data in (one, two):
        data["meta"].pop("generated")
    for name in ("meta", "stats", "ports", "handshakes", "hosts", "convs", "rates", "rtts"):
        assert one[name] == two[name], name


def test_plotly_stream_is_cached_and_checked(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Plotly's LZMA stream is kept in the cache folder; a damaged cache file is made again,
    never embedded."""
    import lzma

    from plotly.offline import get_plotlyjs

    from portlens.report.html import plotly_packed, unpack7

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plotly_packed.cache_clear()
    try:
        text, size, length = plotly_packed()
        bundle = get_plotlyjs().encode("utf-8")
        assert length == len(bundle)
        assert lzma.decompress(unpack7(text, size), format=lzma.FORMAT_ALONE) == bundle
        (cached,) = (tmp_path / "portlens").iterdir()
        assert cached.read_bytes() == unpack7(text, size)
        cached.write_bytes(cached.read_bytes()[:-100] + bytes(100))
        plotly_packed.cache_clear()
        assert plotly_packed() == (text, size, length)
        assert cached.read_bytes() == unpack7(text, size)
        # a stream that decompresses but is not the one named is not taken either
        other = lzma.compress(b"alert(1)", format=lzma.FORMAT_ALONE)
        cached.write_bytes(other)
        plotly_packed.cache_clear()
        assert plotly_packed() == (text, size, length)
        assert [p.read_bytes() for p in (tmp_path / "portlens").iterdir()] == [
            unpack7(text, size)]
    finally:
        plotly_packed.cache_clear()


def test_numbers_beyond_a_double_are_stored_as_json() -> None:
    """A column with an integer no double holds exactly (a byte count past 2^53) is embedded
    as JSON numbers, its nulls as null, and reads back exact; the other columns as before."""
    from portlens.analysis.conn_rows import ConnRows
    from portlens.pipeline.run import Options, Source
    from portlens.report.html.data import conn_columns
    from portlens.report.html.pack import pack_columns, unpack_columns

    rows = ConnRows()
    Pipeline(Source.of(SAMPLE), Options()).track(lambda c: None, on_columns=rows.add_columns)
    plain = unpack_columns(*pack_columns(conn_columns(rows)))["cols"]
    cols = conn_columns(rows)
    values, null = cols["cols"]["orig_bytes"]
    assert null.any() and not null[0]
    values = values.copy()
    values[0] = 2**60 + 1
    cols["cols"]["orig_bytes"] = (values, null)
    header, blob = pack_columns(cols)
    assert header["cols"]["orig_bytes"]["type"] == "json"
    json.dumps(header)
    back = unpack_columns(header, blob)["cols"]
    assert back["orig_bytes"] == [2**60 + 1, *plain["orig_bytes"][1:]]
    assert back["orig_bytes"].count(None) == int(null.sum())
    assert {k: v for k, v in back.items() if k != "orig_bytes"} == {
        k: v for k, v in plain.items() if k != "orig_bytes"}


def test_pack7_is_seven_bits_a_character() -> None:
    """pack7 against its definition: the bytes' bits, zero-padded to a multiple of 7, seven
    at a time, most significant first; ESCAPED values as DEL and '0' + their index."""
    import numpy as np

    from portlens.report.html import ESCAPED, pack7, unpack7

    rng = np.random.default_rng(13)
    for n in [*range(40), 1000, 4099]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        bits = "".join(f"{b:08b}" for b in data)
        bits += "0" * (-len(bits) % 7)
        want = "".join(
            chr(v) if v not in ESCAPED else "\x7f" + chr(0x30 + ESCAPED.index(v))
            for v in (int(bits[i:i + 7], 2) for i in range(0, len(bits), 7)))
        assert pack7(data) == want, n
        assert unpack7(pack7(data), n) == data


@pytest.mark.parametrize("name", ["loopback-sample", "zeek-wikipedia", "ndpi-6in4tunnel",
                                  "ndpi-synscan"])
def test_uid_texts_are_the_keys_repr(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     name: str) -> None:
    """What the uid check hashes after each candidate serial is the repr of ``_uid``'s
    arguments, row by row; and every uid that can be made again is (none stored as text
    but those without a TCP or UDP key)."""
    import numpy as np

    from portlens.report.html.pack import _uid_inputs, pack_uids, uid_texts

    path = SAMPLE if name == "loopback-sample" else corpus_file(name)
    _, data = report(capsys, tmp_path, str(path), "--ladders", "0")
    conns = data["conns"]
    ts = np.asarray(conns["cols"]["ts_ns"], dtype=np.int64)
    keys, texts = _uid_inputs(conns, ts), uid_texts(conns, ts)
    assert len(texts) == conns["n"] > 0
    for key, text in zip(keys, texts, strict=True):
        assert (key is None) == (text is None)
        if key is not None:
            assert "(7" + text == repr((7, *key))
    explicit = pack_uids(conns, bytearray())["explicit"]
    assert set(explicit) == {str(i) for i, k in enumerate(keys) if k is None}


@pytest.mark.parametrize("name", ["loopback-sample", "zeek-wikipedia", "ndpi-6in4tunnel",
                                  "ndpi-synscan", "zeek-vlan-collisions-default",
                                  "zeek-gtp-teredo-icmpv6"])
def test_core_finds_the_serials_the_reference_finds(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, name: str) -> None:
    """The core's search for each uid's serial (crates/core/src/uid_serials.rs) gives the
    Python reference's offsets and uids kept as text, in the same order: on the uids as the
    tracker made them, and on uids made again from other serials: a few away from the rank
    (found within the window), far away every other row, both mixed, half the rank (as a
    worker of two counts; the misses stop the search), and with mangled texts."""
    import numpy as np

    from portlens.report.html.pack import (
        _text,
        _uid_inputs,
        start_ranks,
        uid_serials,
        uid_serials_reference,
    )
    from portlens.track.tracker import _uid

    path = SAMPLE if name == "loopback-sample" else corpus_file(name)
    _, data = report(capsys, tmp_path, str(path), "--ladders", "0")
    conns = data["conns"]
    n = conns["n"]
    ts = np.asarray(conns["cols"]["ts_ns"], dtype=np.int64)
    keys, ranks = _uid_inputs(conns, ts), start_ranks(ts).tolist()
    made = _text(conns["cols"]["uid"])
    shifts = {"as made": None, "near": lambda r: r % 4 * 2 - 3 if r > 3 else 0,
              "far": lambda r: 20 * (r % 2),
              # found only by searching, between rows no search finds: where the search
              # stops (the misses' bound) decides which are found
              "mixed": lambda r: 20 if r % 3 == 0 else r % 2 * 5,
              "halved": lambda r: -(r // 2)}
    found = {}
    for label, shift in shifts.items():
        uids = [u if shift is None or k is None else _uid(r + 1 + shift(r), *k)
                for u, k, r in zip(made, keys, ranks, strict=True)]
        for mangle in (False, True):
            texts = [u[:-1] + "~" if mangle and i % 3 == 0 else u for i, u in enumerate(uids)]
            case = {**conns, "cols": {**conns["cols"],
                                      "uid": {"dict": texts, "codes": list(range(n))}}}
            offsets, explicit = uid_serials(case)
            want_offsets, want_explicit = uid_serials_reference(case)
            assert offsets.tolist() == want_offsets.tolist(), label
            assert list(explicit.items()) == list(want_explicit.items()), label
            found[label, mangle] = n - len(explicit)
    keyed = sum(k is not None for k in keys)
    assert found["as made", False] == found["near", False] == keyed > 0
    assert found["far", False] < keyed or keyed < 3
