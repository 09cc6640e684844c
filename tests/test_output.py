"""What reaches the user: tables whose cells equal the JSON (never read as markup or emoji),
fitted to a terminal by leaving whole columns out, printed in full when piped, written as
rows come; a closed pipe and Ctrl-C handled quietly (real subprocess pipes and signals); the
README's samples exactly as the commands print them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlens.cli import common, main
from portlens.report import conns as conns_report
from portlens.report.clock import Clock
from portlens.report.tables import (
    SEP,
    CodedCells,
    Column,
    DurationCells,
    Layout,
    PairCells,
    Screen,
    StampCells,
    TableWriter,
    _core_column,
    render,
)
from tests.corpus import REPO, corpus_dir

CAPTURES = REPO / "captures"
SAMPLE = CAPTURES / "loopback-sample.pcap"
ENV = {**os.environ, "PYTHONPATH": os.environ.get("PORTLENS_TEST_SRC", str(REPO / "src"))}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Standard output as a terminal (no colour, so the text can be compared)."""
    monkeypatch.setattr(common, "stdout_is_terminal", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    yield


def parse(text: str) -> list[dict[str, str]]:
    """A one-line-header table as dicts: cells are separated by two spaces or more, and no
    cell is empty or holds two spaces in a row."""
    lines = [line for line in text.splitlines() if line]
    names = re.split(r" {2,}", lines[0].strip())
    rows = []
    for line in lines[1:]:
        cells = re.split(r" {2,}", line.strip())
        assert len(cells) == len(names), (names, line)
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Titled tables separated by blank lines: title -> rows."""
    out = {}
    for block in text.strip("\n").split("\n\n"):
        title, _, body = block.partition("\n")
        out[title] = parse(body)
    return out


def endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


# --- a capture of addresses that rich used to eat ------------------------------------------

ADDRESSES = ("fe80::1", "fd00::2", "ff02::1:2", "fc00:0:2:100:1:1:1:1", "2001:db8:0:cd::5",
             "2001:db8:1234:1::7")
"""Link-local, ULA and multicast addresses, bracketed in tables (`[fe80::1]:40000` was read
as a markup tag), and addresses holding the emoji codes :100:, :cd: and :1234:."""


@pytest.fixture(scope="module")
def odd_addresses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scapy.all import (  # type: ignore[import-untyped]
        TCP,
        UDP,
        Ether,
        ICMPv6EchoReply,
        ICMPv6EchoRequest,
        IPv6,
        wrpcap,
    )

    packets = []
    clock = [1_700_000_000.0]

    def add(src: str, dst: str, layer: object) -> None:
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IPv6(
            src=src, dst=dst) / layer
        p.time = clock[0]
        clock[0] += 0.001
        packets.append(p)

    def tcp(a: str, ap: int, b: str, bp: int, *, refuse: bool = False) -> None:
        add(a, b, TCP(sport=ap, dport=bp, flags="S", seq=100))
        if refuse:
            add(b, a, TCP(sport=bp, dport=ap, flags="RA", seq=0, ack=101))
            return
        add(b, a, TCP(sport=bp, dport=ap, flags="SA", seq=500, ack=101))
        add(a, b, TCP(sport=ap, dport=bp, flags="A", seq=101, ack=501))
        add(a, b, TCP(sport=ap, dport=bp, flags="PA", seq=101, ack=501) / (b"x" * 10))
        add(b, a, TCP(sport=bp, dport=ap, flags="A", seq=501, ack=111))
        add(a, b, TCP(sport=ap, dport=bp, flags="FA", seq=111, ack=501))
        add(b, a, TCP(sport=bp, dport=ap, flags="FA", seq=501, ack=112))
        add(a, b, TCP(sport=ap, dport=bp, flags="A", seq=112, ack=502))

    tcp("fe80::1", 40000, "fd00::2", 443)
    tcp("fc00:0:2:100:1:1:1:1", 50000, "2001:db8:0:cd::5", 8080, refuse=True)
    tcp("2001:db8:1234:1::7", 1234, "fd00::2", 22)
    add("fe80::1", "ff02::1:2", UDP(sport=546, dport=547) / (b"y" * 8))
    add("fd00::2", "2001:db8:0:cd::5", UDP(sport=100, dport=1234) / (b"z" * 4))
    add("2001:db8:0:cd::5", "fd00::2", UDP(sport=1234, dport=100) / (b"z" * 4))
    add("fc00:0:2:100:1:1:1:1", "fe80::1", ICMPv6EchoRequest(id=1, seq=1))
    add("fe80::1", "fc00:0:2:100:1:1:1:1", ICMPv6EchoReply(id=1, seq=1))
    path = tmp_path_factory.mktemp("odd") / "odd-addresses.pcap"
    wrpcap(str(path), packets)
    return path


@pytest.mark.parametrize("on_terminal", [False, True], ids=["piped", "terminal"])
def test_every_table_shows_the_addresses_of_the_json(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        odd_addresses: Path, on_terminal: bool) -> None:
    """conns, sockets and handshakes --conns: every cell that carries an address, a port, a
    state or a uid equals the JSON's value, on a terminal and piped."""
    path = str(odd_addresses)
    if on_terminal:
        monkeypatch.setattr(common, "stdout_is_terminal", lambda: True)
        monkeypatch.setenv("NO_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = run(capsys, "conns", "--json", path)
    records = json_lines(out)
    assert code == 0 and len(records) == 6
    assert {str(r["id.orig_h"]) for r in records} | {str(r["id.resp_h"]) for r in records} \
        >= set(ADDRESSES)
    code, out, err = run(capsys, "conns", path)
    rows = parse(out)
    assert code == 0 and err.startswith("6 connections; start times in local time")
    assert len(rows) == len(records)
    for row, rec in zip(rows, records, strict=True):
        if rec["proto"] == "icmp":  # the addresses, the responder's with the ICMP message
            orig = str(rec["id.orig_h"])
            resp = row["responder"]
            assert resp.startswith(f"{rec['id.resp_h']} (") and resp.endswith(
                f" {rec['id.orig_p']}/0)")
        else:
            orig = endpoint(str(rec["id.orig_h"]), int(rec["id.orig_p"]))  # type: ignore[call-overload]
            resp = endpoint(str(rec["id.resp_h"]), int(rec["id.resp_p"]))  # type: ignore[call-overload]
        assert (row["proto"], row["originator"], row["responder"], row["state"],
                row["history"], row["pkts o/r"], row["uid"]) == (
            rec["proto"], orig, resp, rec["conn_state"], rec["history"] or "-",
            f"{rec['orig_pkts']}/{rec['resp_pkts']}", rec["uid"])

    code, out, _ = run(capsys, "sockets", "--json", path)
    records = json_lines(out)
    code, out, _ = run(capsys, "sockets", path)
    shown = tables(out)
    listen = shown["listening (answered a SYN or a datagram)"]
    sockets = shown["connections (state at the end of the capture)"]
    want_listen = [r for r in records if r["type"] == "listen"]
    want_sockets = [r for r in records if r["type"] == "socket"]
    assert [row["local address:port"] for row in listen] == [
        endpoint(str(r["local_addr"]), int(r["local_port"]))  # type: ignore[call-overload]
        for r in want_listen]
    assert [(row["local address:port"], row["peer address:port"], row["state"], row["uid"])
            for row in sockets] == [
        (endpoint(str(r["local_addr"]), int(r["local_port"])),  # type: ignore[call-overload]
         endpoint(str(r["peer_addr"]), int(r["peer_port"])),  # type: ignore[call-overload]
         r["state"] or "-", r["uid"]) for r in want_sockets]
    assert [row["peer addresses"].split(", ") for row in listen] == [
        list(r["peer_addrs"]) for r in want_listen]  # type: ignore[call-overload]

    code, out, _ = run(capsys, "handshakes", "--conns", "--json", path)
    records = json_lines(out)
    code, out, _ = run(capsys, "handshakes", "--conns", path)
    assert [(row["uid"], row["client"], row["server"], row["outcome"]) for row in parse(out)] \
        == [(r["uid"], endpoint(str(r["orig_h"]), int(r["orig_p"])),  # type: ignore[call-overload]
             endpoint(str(r["resp_h"]), int(r["resp_p"])), r["outcome"])  # type: ignore[call-overload]
            for r in records]
    assert len(records) == 3


def test_live_view_shows_addresses_verbatim(odd_addresses: Path) -> None:
    """The sniff view, drawn by a rich console that reads markup and emoji codes in strings:
    the addresses of the open connections and handshakes come out as they are."""
    from rich.console import Console

    from portlens.analysis.ports import PortTable
    from portlens.decode import decode_capture
    from portlens.pipeline import new_tracker
    from portlens.report.live import Rates, dashboard
    from portlens.track.tracker import TrackerConfig

    tracker = new_tracker(TrackerConfig())  # the live view's
    ended = [c for b in decode_capture(str(odd_addresses)) for c in tracker.feed(b)]
    open_conns = tracker.open_connections()
    rates = Rates("lo", 1.0, 23, 2000, 23.0, 2000.0, 23, 0)
    console = Console(record=True, width=250, color_system=None)
    console.print(dashboard(rates, PortTable().update([*ended, *open_conns]), open_conns,
                            ended))
    text = console.export_text()
    assert "💯" not in text and "💿" not in text and "🔢" not in text
    lines = text.split("open connections")[1].split("latest handshakes")[0].splitlines()
    shown = [line.split()[1:3] for line in lines[2:] if line.strip()]
    assert shown == [[endpoint(c.orig_h, c.orig_p), endpoint(c.resp_h, c.resp_p)]
                     if c.proto != "icmp" else [c.orig_h, c.resp_h] for c in open_conns]
    for c in open_conns:
        if c.proto == "tcp":
            assert re.search(rf"^{re.escape(endpoint(c.resp_h, c.resp_p))}\s+"
                             rf"{re.escape(endpoint(c.orig_h, c.orig_p))}\s", text, re.M)


def test_file_names_and_errors_are_printed_as_they_are(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """A file name is text: its brackets, emoji codes and control characters are shown, never
    obeyed (the --stats title, error lines)."""
    odd = tmp_path / "[bold]capture:100:.pcap"
    shutil.copy(SAMPLE, odd)
    for on_terminal in (False, True):
        monkeypatch.setattr(common, "stdout_is_terminal", lambda on=on_terminal: on)
        monkeypatch.setenv("NO_COLOR", "1")
        code, out, _ = run(capsys, "packets", "--stats", str(odd))
        assert code == 0 and out.splitlines()[0] == str(odd)
        assert re.search(r"^frames\s+59$", out, re.M)
    escape = tmp_path / "bad\x1b[31mname.pcap"
    shutil.copy(SAMPLE, escape)
    code, out, _ = run(capsys, "packets", "--stats", str(escape))
    assert code == 0 and out.splitlines()[0] == str(escape).replace("\x1b", "\\x1b")
    code, out, err = run(capsys, "conns", str(tmp_path / "[red]missing:cd:.pcap"))
    assert code == 2 and out == "" and "[red]missing:cd:.pcap" in err


# --- fitting ----------------------------------------------------------------------------------


def ftp_ipv6() -> Path:
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found (../shared/captures/public)")
    return next(root.glob("zeek-ftp-ipv6.pcap*"))


def test_piped_tables_have_every_column_in_full(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a terminal: no fitting to 80 columns, nothing left out, plain ASCII, aligned,
    no trailing spaces; `| grep -c SF` counts the SF rows (it counted 0)."""
    path = str(ftp_ipv6())
    code, out, _ = run(capsys, "conns", "--json", path)
    records = json_lines(out)
    sf = sum(1 for r in records if r["conn_state"] == "SF")
    assert sf == 6  # as in its Zeek baseline
    proc = subprocess.run(f"{shlex.quote(sys.executable)} -m portlens conns "
                          f"{shlex.quote(path)} | grep -c SF", shell=True, env=ENV,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout == f"{sf}\n" and proc.stderr.startswith("6 connections; start")
    code, out, err = run(capsys, "conns", path)
    assert code == 0 and err.startswith("6 connections; start")
    lines = out.splitlines()
    assert re.split(r" {2,}", lines[0]) == [c.name for c in conns_report.TABLE_COLUMNS]
    assert all(line == line.rstrip() and line.isascii() for line in lines)
    assert max(len(line) for line in lines) > 80
    rows = parse(out)
    assert [r["originator"] for r in rows] == [
        endpoint(str(r["id.orig_h"]), int(r["id.orig_p"]))  # type: ignore[call-overload]
        for r in records]
    # aligned: every column starts where its header does
    starts = [lines[0].index(name) for name in ("originator", "responder", "state")]
    for line in lines[1:]:
        assert all(line[s - 2:s] == "  " and line[s] != " " for s in starts)


SEEN = ["conns"], ["sockets"], ["handshakes", "--conns"], ["handshakes"], ["ports"]


def note_names(err: str) -> list[str]:
    m = re.search(r"\(([^()]*) left out to fit (\d+) columns; --wide shows every column\)", err)
    return m.group(1).split(", ") if m else []


@pytest.mark.parametrize("argv", SEEN, ids=" ".join)
@pytest.mark.parametrize("width", [40, 60, 80, 100, 120])
def test_terminal_tables_leave_whole_columns_out(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        terminal: None, argv: list[str], width: int) -> None:
    """On a terminal: each shown cell equals the piped (full) table's cell, whole; what is
    left out is whole columns, named in the note; lines fit the width unless the columns that
    are never left out are wider; --wide shows every column."""
    paths = [str(SAMPLE)]
    if corpus_dir() is not None:
        paths.append(str(ftp_ipv6()))
    for path in paths:
        monkeypatch.setattr(common, "stdout_is_terminal", lambda: False)
        _, full, _ = run(capsys, *argv, path)
        monkeypatch.setattr(common, "stdout_is_terminal", lambda: True)
        monkeypatch.setenv("COLUMNS", str(width))
        code, out, err = run(capsys, *argv, path)
        assert code == 0 and "…" not in out
        _, wide, _ = run(capsys, *argv, "--wide", path)
        assert wide == full
        if argv[0] in ("ports", "handshakes") and "--conns" not in argv:
            # folded and two-line headers: the cells, read in order, are the full ones
            def words(text: str) -> set[str]:
                return {w for line in text.splitlines() for w in line.split()
                        if not w.startswith("---")}

            assert words(out) <= words(full)
            continue
        left_out = note_names(err)

        def read(text: str) -> dict[str, list[dict[str, str]]]:
            return tables(text) if argv[0] == "sockets" else {"": parse(text)}

        headers: set[str] = set()
        for rows, whole in zip(read(out).values(), read(full).values(), strict=True):
            assert len(rows) == len(whole)
            headers |= set(whole[0])
            for row, complete in zip(rows, whole, strict=True):
                assert row == {k: v for k, v in complete.items() if k in row}
                assert set(complete) - set(row) <= set(left_out)
        kept = {"conns": {"proto", "originator", "responder", "state"},
                "sockets": {"netid", "state", "local address:port", "peer address:port"},
                "handshakes": {"uid", "client", "server", "outcome"}}[argv[0]]
        assert not kept & set(left_out) and set(left_out) <= headers
        if max(len(line) for line in out.splitlines()) > width:
            # only the columns that are never left out may make a line too wide
            droppable = {"conns": set(conns_report.DROP_ORDER),
                         "sockets": {"uid", "peer addresses"},
                         "handshakes": {"server options", "client options",
                                        "rtt server/client", "rexmit"}}[argv[0]]
            assert set(left_out) == droppable & headers


def test_the_uid_is_shown_at_80_columns(capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch,
                                        terminal: None) -> None:
    """`ladder --conn UID` sends users to `portlens conns` for the uid: it is the last column
    left out, there at 80 columns beside IPv4 sockets, and the note says how to get the rest
    (and the uid too, when longer cells push it out)."""
    monkeypatch.setenv("COLUMNS", "80")
    paths = [str(p) for p in sorted(CAPTURES.glob("scenario-*.pcap"))
             if "ipv6" not in p.name and "icmp" not in p.name]
    code, out, err = run(capsys, "conns", *paths)
    rows = parse(out)
    assert code == 0 and list(rows[0]) == ["proto", "originator", "responder", "state", "uid"]
    assert max(len(line) for line in out.splitlines()) <= 80
    code, js, _ = run(capsys, "conns", "--json", *paths)
    assert [r["uid"] for r in rows] == [r["uid"] for r in json_lines(js)]
    assert err.endswith("(start, history, duration, pkts o/r, bytes o/r, service, end, "
                        "TCP states o/r left out to fit 80 columns; --wide shows every "
                        "column)\n")
    code, out, err = run(capsys, "conns", str(SAMPLE))  # an ICMP message makes it wider
    assert "uid" not in out.splitlines()[0] and "uid left out to fit 80 columns" in err
    code, out, err = run(capsys, "conns", "--wide", str(SAMPLE))
    assert out.splitlines()[0].split()[-1] == "uid"


def test_folding_keeps_a_number_with_its_word() -> None:
    """A list cell folds between its parts, never inside one; the totals row comes under an
    ASCII rule."""
    out = io.StringIO()
    screen = Screen(out, io.StringIO(), width=32)
    writer = TableWriter(screen, [Column("port"), Column("conns", right=True),
                                  Column("outcomes", fold=True), Column("retx", right=True)],
                         drop_order=("retx",), fold_width=12)
    writer.add(("443/tcp", "1.2 k", "1.0 k completed, 200 refused, 3 unanswered", "0"))
    writer.add(("all", "1.2 k", "1.0 k completed, 200 refused, 3 unanswered", "0"),
               total=True)
    assert writer.close() == ["retx"]
    assert out.getvalue() == (
        "port     conns  outcomes\n"
        "443/tcp  1.2 k  1.0 k completed,\n"
        "                200 refused,\n"
        "                3 unanswered\n"
        "--------------------------------\n"
        "all      1.2 k  1.0 k completed,\n"
        "                200 refused,\n"
        "                3 unanswered\n")


def test_rows_are_written_as_they_come() -> None:
    """The first rows decide the widths and are written together; every later row is written
    when it is added, and a wider cell pushes the rest of its line instead of being cut."""
    out = io.StringIO()
    writer = TableWriter(Screen(out, io.StringIO(), width=None),
                         [Column("addr"), Column("pkts", right=True), Column("uid")],
                         first_rows=2)
    writer.add(("10.0.0.1:80", "5", "Cabc"))
    assert out.getvalue() == ""
    writer.add(("10.0.0.2:80", "12", "Cdef"))
    assert out.getvalue() == ("addr         pkts  uid\n10.0.0.1:80     5  Cabc\n"
                              "10.0.0.2:80    12  Cdef\n")
    writer.add(("[2001:db8::1]:443", "123456", "Cghi"))
    assert out.getvalue().splitlines()[-1] == "[2001:db8::1]:443  123456  Cghi"
    assert writer.close() == [] and writer.rows == 3
    # live: laid out on what came within first_wait seconds (0 here: the first row)
    out = io.StringIO()
    writer = TableWriter(Screen(out, io.StringIO(), width=None, first_wait=0.0),
                         [Column("addr"), Column("uid")])
    writer.add(("10.0.0.1:80", "Cabc"))
    assert out.getvalue() == "addr         uid\n10.0.0.1:80  Cabc\n"
    # printed in full, a later list cell longer than its column stays on one line
    out = io.StringIO()
    writer = TableWriter(Screen(out, io.StringIO(), width=None),
                         [Column("port"), Column("outcomes", fold=True)], first_rows=1)
    writer.add(("80/tcp", "1 completed"))
    writer.add(("443/tcp", "5 completed, 2 refused, 1 unanswered"))
    writer.close()
    assert out.getvalue().splitlines()[-1] == "443/tcp  5 completed, 2 refused, 1 unanswered"


def test_add_rows_writes_what_add_writes() -> None:
    """add_rows formats a thousand printable ASCII rows at a time; a chunk with a control
    character or a wide character in it goes row by row, and either way the text is add's,
    trailing spaces stripped whether a chunk has a line that ends in them or not; add_columns
    (the rows as columns, in blocks) likewise."""
    columns = [Column("addr"), Column("pkts", right=True), Column("state")]
    rows = [(f"10.0.{i // 256}.{i % 256}:{1024 + i}", str(i * 7), "ESTAB" if i % 3 else "-")
            for i in range(2500)]
    rows[1700] = ("10.1.1.1:80", "9", "tab\there")  # shown escaped
    rows[2300] = ("[fe80::1]:443", "12", "µs")  # one cell wide each
    rows[400] = ("10.2.2.2:22", "3", "")  # lines that end in spaces, stripped
    rows[1200] = ("10.3.3.3:53", "4", "end ")
    for width in (None, 40):
        one, many = io.StringIO(), io.StringIO()
        by_one = TableWriter(Screen(one, io.StringIO(), width=width), columns)
        for row in rows:
            by_one.add(row)
        by_many = TableWriter(Screen(many, io.StringIO(), width=width), columns)
        by_many.add_rows(iter(rows))
        assert (by_one.close(), by_one.rows) == (by_many.close(), by_many.rows)
        assert one.getvalue() == many.getvalue()
        by_columns = TableWriter(Screen(cols := io.StringIO(), io.StringIO(), width=width),
                                 columns)
        for start in (0, 1, 650, 1900):  # blocks cut anywhere, the first before the layout
            end = {0: 1, 1: 650, 650: 1900, 1900: len(rows)}[start]
            by_columns.add_columns([list(c) for c in zip(*rows[start:end], strict=True)])
        assert (by_columns.close(), by_columns.rows) == (by_one.close(), by_one.rows)
        assert cols.getvalue() == one.getvalue()
        assert "tab\\there" in many.getvalue()



def test_coded_columns_write_what_text_columns_write() -> None:
    """A table given CodedCells (distinct texts, a code a row, a port after a colon) is
    written as the same table given each row's text: on a pipe (the core writes the lines),
    on a narrow terminal (a column left out: Python lays the rows out, iterating the cells),
    and with a chunk holding text the core declines (a tab, a wide character)."""
    import numpy as np

    columns = [Column("local"), Column("state"), Column("uid")]
    hosts = ["10.0.0.1", "[fe80::1]", "192.168.100.200"]
    states = ["ESTAB", "-", "TIME-WAIT", "tab\there", "µs"]
    n = 40000
    rng = np.random.default_rng(7)
    h = rng.integers(0, len(hosts), n)
    port = rng.integers(0, 65536, n)
    st_codes = rng.integers(0, 3, n)
    st_codes[30000] = 3  # in the third chunk of 16,384 rows: that chunk goes row by row
    st_codes[35000] = 4
    uids = [f"C{i:05d}" for i in range(n)]
    rows = [(f"{hosts[a]}:{p}", states[s], u)
            for a, p, s, u in zip(h.tolist(), port.tolist(), st_codes.tolist(), uids,
                                  strict=True)]
    coded = [CodedCells(hosts, h, port), CodedCells(states, st_codes),
             CodedCells(uids, np.arange(n))]
    assert list(coded[0][5:8]) == [r[0] for r in rows[5:8]] and coded[1][30000] == "tab\there"
    for width in (None, 30):
        want = io.StringIO()
        plain = TableWriter(Screen(want, io.StringIO(), width=width), columns,
                            drop_order=("uid",))
        plain.add_columns([[r[i] for r in rows] for i in range(3)])
        got = io.StringIO()
        fast = TableWriter(Screen(got, io.StringIO(), width=width), columns,
                           drop_order=("uid",))
        # the layout, then the core's chunks; then chunks whose texts include a tab and a
        # wide character, which the core declines (it checks a column's distinct texts)
        printable = [CodedCells(hosts, h, port), CodedCells(states[:3], st_codes),
                     coded[2]]
        fast.add_columns([c[:1500] for c in printable])
        fast.add_columns([c[1500:20000] for c in printable])
        fast.add_columns([c[20000:] for c in coded])
        assert (fast.close(), fast.rows) == (plain.close(), plain.rows)
        assert got.getvalue() == want.getvalue()
        assert "tab\\there" in got.getvalue() and "µs" in got.getvalue()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_core_writes_coded_cells_as_their_text(data: st.DataObject) -> None:
    """``_core.table_lines`` given (texts, codes, port) columns writes the lines of the cells
    they stand for; a code outside the texts is an error, not a guess."""
    import numpy as np
    import portlens._core as core

    text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=8)
    k = data.draw(st.integers(2, 4))
    n = data.draw(st.integers(0, 6))
    widths = data.draw(st.lists(st.integers(0, 10), min_size=k, max_size=k))
    right = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    given_columns: list[object] = []
    cells: list[list[str]] = []
    for _ in range(k):
        texts = data.draw(st.lists(text, min_size=1, max_size=4))
        codes = np.array(data.draw(st.lists(st.integers(0, len(texts) - 1), min_size=n,
                                            max_size=n)), np.int64)
        if data.draw(st.booleans()):
            port = np.array(data.draw(st.lists(st.integers(0, 65535), min_size=n, max_size=n)),
                            np.int64)
            given_columns.append(("coded", texts, codes, port))
            cells.append([f"{texts[c]}:{p}" for c, p in zip(codes, port, strict=True)])
        else:
            given_columns.append(("coded", texts, codes, None))
            cells.append([texts[c] for c in codes])
    fmt = Layout([Column(str(i), right=r) for i, r in enumerate(right)], list(range(k)),
                 widths, folds=False).ascii_format
    assert fmt is not None
    assert core.table_lines(given_columns, widths, right, SEP) == "".join(
        fmt.format(*row).rstrip() + "\n" for row in zip(*cells, strict=True))
    if n:
        _, texts, codes, port = given_columns[0]  # type: ignore[misc]
        bad = codes.copy()
        bad[-1] = len(texts)
        with pytest.raises(ValueError, match="no text of that code"):
            core.table_lines([("coded", texts, bad, port), *given_columns[1:]], widths, right,
                             SEP)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.data())
def test_core_pads_lines_as_python_formats_them(data: st.DataObject) -> None:
    """``_core.table_lines`` (crates/core/src/table.rs) writes what ``Layout.ascii_format``
    and ``rstrip`` write, on any printable ASCII cells and the µ of durations (spaces at
    either end, empty, wider than their column), and declines any chunk with other text in
    it."""
    import portlens._core as core

    k = data.draw(st.integers(2, 5))
    widths = data.draw(st.lists(st.integers(0, 8), min_size=k, max_size=k))
    right = data.draw(st.lists(st.booleans(), min_size=k, max_size=k))
    cell = st.text(st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                             st.just("µ")), max_size=10)
    rows = data.draw(st.lists(st.lists(cell, min_size=k, max_size=k), max_size=6))
    layout = Layout([Column(str(i), right=r) for i, r in enumerate(right)], list(range(k)),
                    widths, folds=False)
    fmt = layout.ascii_format
    assert fmt is not None
    columns = [[row[i] for row in rows] for i in range(k)]
    assert core.table_lines(columns, widths, right, SEP) == "".join(
        fmt.format(*row).rstrip() + "\n" for row in rows)
    if rows:
        odd = data.draw(st.sampled_from(["\t", "\x7f", "é", "界", "\x00"]))
        columns[-1][-1] += odd
        assert core.table_lines(columns, widths, right, SEP) is None

_EDGES = sorted({round(t * scale) + d for scale in (1, 1e3, 1e6, 1e9, 60e9, 3600e9)
                 for t in (9.99, 9.995, 99.94, 99.95, 999.4, 999.5, 1000) for d in (-1, 0, 1)})
"""Values either side of human.duration's and human.size's changes of digits and units."""
_NANOS = st.one_of(
    st.sampled_from(_EDGES),
    st.integers(-10**6, 10**13),
    # ties and edges of human.duration's digits and units: 1.125 µs, 9.995 µs, 999.5 ms ...
    st.builds(lambda m, e: m * 10**e, st.integers(1, 99_999), st.integers(0, 12)),
    st.builds(lambda m, e: m * 5 * 10**e, st.integers(1, 2_000), st.integers(0, 10)),
    st.integers(-2**63, 2**63 - 1))
_TIMES = st.one_of(st.integers(0, 2**62), st.integers(-2**62, 2**63 - 1),
                   st.builds(lambda s, us: s * 10**9 + us * 1000,
                             st.integers(0, 4 * 10**9), st.integers(0, 999_999)))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.data())
def test_core_writes_numbers_as_python_does(data: st.DataObject) -> None:
    """The core's texts of durations, counts, sizes and times (crates/core/src/human.rs,
    packet_text.rs, table.rs) are human.py's and clock.py's, digit for digit: on ties (Python
    and Rust both round the exact binary value half to even), unit edges, negative and huge
    values, and times before 1970, in each style that depends on no other row."""
    import numpy as np
    import portlens._core as core

    n = data.draw(st.integers(1, 8))
    ns = np.array(data.draw(st.lists(_NANOS, min_size=n, max_size=n)), np.int64)
    counts = np.array(data.draw(st.lists(_NANOS, min_size=n, max_size=n)), np.int64)
    ts = np.array(data.draw(st.lists(_TIMES, min_size=n, max_size=n)), np.int64)
    clock = Clock(data.draw(st.sampled_from(["time", "date", "epoch"])), utc=True)
    cells = [DurationCells(ns), PairCells(ns, counts), PairCells(counts, ns, size=True),
             StampCells(clock, ts)]
    widths, right = [1] * len(cells), [True, False, True, False]
    assert core.table_lines([_core_column(c) for c in cells], widths, right, SEP) == \
        core.table_lines([list(c) for c in cells], widths, right, SEP)


def test_number_cells_are_the_python_texts() -> None:
    """Each kind of cell the core writes reads back in Python as the same text, by row and by
    slice; an endpoint's negative port is none (an ICMP responder)."""
    import numpy as np

    ns = np.array([999, 1125, 9995, 45_500_000, 10**12], np.int64)
    assert list(DurationCells(ns)) == ["999 ns", "1.12 µs", "10.0 µs", "45.5 ms", "16.7 min"]
    assert DurationCells(ns)[1:3][1] == "10.0 µs"
    pair = PairCells(ns, ns[::-1].copy(), size=True)
    assert pair[0] == "999 B/1.0 TB" and list(pair[3:]) == ["45.5 MB/1.1 kB", "1.0 TB/999 B"]
    assert PairCells(ns[:2], ns[:2])[1] == "1125/1125"
    stamps = StampCells(Clock("date", utc=True), np.array([1_700_000_000_000_000_001], np.int64))
    assert list(stamps) == ["2023-11-14 22:13:20.000000001"]
    hosts = CodedCells(["10.0.0.1", "10.0.0.2 (echo)"], np.array([0, 1], np.int64),
                       np.array([80, -1], np.int64))
    assert list(hosts) == ["10.0.0.1:80", "10.0.0.2 (echo)"] and hosts[1] == "10.0.0.2 (echo)"
    with pytest.raises(ValueError, match="depend on other lines"):
        StampCells(Clock("delta"), np.zeros(1, np.int64))[0]


def test_layout_never_cuts_what_it_cannot_leave_out() -> None:
    layout = Layout.fit([Column("originator"), Column("responder"), Column("uid")],
                        [("[2001:db8:1:2:3:4:5:6]:443", "[2001:db8::ff]:50000", "Cxyz")],
                        width=20, drop_order=("uid",))
    assert layout.left_out == ["uid"]
    assert layout.lines(("[2001:db8:1:2:3:4:5:6]:443", "[2001:db8::ff]:50000", "C")) == [
        "[2001:db8:1:2:3:4:5:6]:443  [2001:db8::ff]:50000"]
    head, lines, left_out = render([Column("a"), Column("b", right=True)], [("x", "1")], None)
    assert (head, lines, left_out) == (["a  b"], ["x  1"], [])


# --- closed pipes -----------------------------------------------------------------------------


def synscan() -> Path:
    """A capture whose every output is larger than a pipe's buffer (64 kB)."""
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found (../shared/captures/public)")
    return next(root.glob("ndpi-synscan.pcap*"))


def portlens(*argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "portlens", *argv], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kwargs)  # type: ignore[call-overload]


def quiet(err: bytes) -> bool:
    """Nothing on stderr but the line naming the time zone of the times printed."""
    return all(b"local time" in line for line in err.splitlines())


EVERY_OUTPUT = (["conns"], ["conns", "--json"], ["conns", "--csv"], ["conns", "--format", "zeek"],
                ["ports"], ["ports", "--json"], ["ports", "--csv"], ["handshakes"],
                ["handshakes", "--conns"], ["handshakes", "--json"], ["sockets"],
                ["sockets", "--csv"], ["events"], ["events", "--json"], ["packets"],
                ["packets", "--json"], ["packets", "--stats"], ["packets", "--stats", "--json"])


@pytest.mark.parametrize("argv", EVERY_OUTPUT, ids=" ".join)
def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    """The reader is gone before the first line: status 0, nothing on stderr (it was
    "Broken pipe" and status 2)."""
    proc = portlens(*argv, str(SAMPLE), str(SAMPLE))
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and quiet(err)


@pytest.mark.parametrize("argv", [["conns"], ["conns", "--json"], ["packets"], ["events"],
                                  ["sockets"], ["handshakes", "--conns"]], ids=" ".join)
def test_head_1_ends_quietly(argv: list[str]) -> None:
    """`portlens ... | head -1`: one line read, the pipe closed while the output is still
    coming; `packets` does not go on decoding the next files."""
    path = str(synscan())
    proc = portlens(*argv, path, path, path)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert first and proc.wait(timeout=120) == 0 and quiet(err)


# --- Ctrl-C -----------------------------------------------------------------------------------


def repeated_capture(path: Path, min_bytes: int) -> None:
    """A pcap of a large HTTP POST's records (big packets, few connections: quick to track)
    again and again, an hour apart, at least min_bytes, written a repetition at a time."""
    root = corpus_dir()
    if root is None:
        pytest.skip("public capture corpus not found (../shared/captures/public)")
    raw = next(root.glob("zeek-http-post-large-loopback.pcap*")).read_bytes()
    assert raw[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian pcap
    head, body = raw[:24], raw[24:]
    records = []
    at = 0
    while at + 16 <= len(body):
        sec, frac, caplen, wirelen = struct.unpack_from("<IIII", body, at)
        records.append((sec, frac, body[at + 16: at + 16 + caplen], wirelen))
        at += 16 + caplen
    size = len(head)
    shift = 0
    with path.open("wb") as f:
        f.write(head)
        while size < min_bytes:
            once = b"".join(struct.pack("<IIII", sec + shift, frac, len(data), wirelen) + data
                            for sec, frac, data, wirelen in records)
            f.write(once)
            size += len(once)
            shift += 3600


def wait_blocked_on_pipe(pid: int) -> None:
    """Until one of the process's threads waits for input: `packets --stats` reads in a
    thread of the compiled core (PacketScan's read-ahead) while the main thread waits for it."""
    if not Path(f"/proc/{pid}/wchan").exists():
        pytest.skip("no /proc/PID/wchan to see that the reader waits for input")
    for _ in range(6000):
        for wchan in Path(f"/proc/{pid}/task").glob("*/wchan"):
            with contextlib.suppress(OSError):  # a thread that just ended
                if "pipe" in wchan.read_text():
                    return
        time.sleep(0.01)
    pytest.fail("portlens never waited for more input")


@pytest.mark.parametrize("argv", [["conns"], ["ports"], ["sockets"], ["handshakes"],
                                  ["packets", "--stats"]], ids=" ".join)
def test_ctrl_c_prints_what_was_read(tmp_path: Path, argv: list[str]) -> None:
    """Ctrl-C while portlens waits for input (a FIFO, the first 8 MB chunk read): the report
    of what was read (not the rest), status 130, a line saying so, no traceback."""
    repeated_capture(tmp_path / "big.pcap", 9 << 20)
    data = (tmp_path / "big.pcap").read_bytes()
    fifo = tmp_path / "fifo.pcap"
    os.mkfifo(fifo)
    proc = portlens(*argv, str(fifo))
    writer = open(fifo, "wb")  # noqa: SIM115  (held open until portlens is interrupted)
    feed = threading.Thread(target=writer.write, args=(data,), daemon=True)
    feed.start()
    try:
        feed.join(timeout=300)
        wait_blocked_on_pipe(proc.pid)
        proc.send_signal(signal.SIGINT)
    finally:
        # The compiled reader retries a read that a signal interrupted, so Python sees the
        # Ctrl-C only when the read returns: the end of the input lets it return.
        writer.close()
    out, err = proc.communicate(timeout=60)
    text, note = out.decode(), err.decode()
    assert proc.returncode == 130, note
    assert "Traceback" not in note and "interrupted; what was read so far is reported" in note
    if argv == ["packets", "--stats"]:
        frames = int(re.search(r"^frames\s+([\d,]+)$", text, re.M)[1].replace(",", ""))  # type: ignore[index]
        assert frames > 0
    else:
        assert text.splitlines()[0].split()[0] in ("start", "pkts", "listening",
                                                   "handshakes")
        assert re.search(r"^\d+ (connections|ports|listening|server ports)", note, re.M)


BAR = re.compile(rb"([\d.]+)/([\d.]+) (kB|MB|GB)")
"""The progress bar's bytes read and in all (rich's DownloadColumn)."""
BAR_UNITS = {b"kB": 1e3, b"MB": 1e6, b"GB": 1e9}


def test_ctrl_c_under_the_progress_bar(tmp_path: Path) -> None:
    """stderr a terminal, so the progress bar is drawn: Ctrl-C while it is, and the bar is
    gone, the report printed, no traceback."""
    import pty

    path = tmp_path / "big.pcap"
    # 1 GiB: the Rust core reads and tracks 256 MB of these between two redraws of the bar
    # at a fast hour, and Ctrl-C then came after the whole file was read (a skip)
    repeated_capture(path, 1 << 30)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "portlens", "ports", str(path)], env=ENV,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    try:
        # the bar's "0.02/1.07 GB" (rich's unit is the total's): 16 MB read, the second chunk,
        # so the first one is tracked
        while not any(float(done) * BAR_UNITS[unit] >= 16e6 for done, _, unit in BAR.findall(seen)):
            ready, _, _ = select.select([master], [], [], 120)
            assert ready, "no progress bar"
            seen += os.read(master, 4096)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    if proc.returncode == 0:
        pytest.skip("the whole file was read before Ctrl-C arrived")
    assert b"Traceback" not in seen
    bars = BAR.findall(seen)
    if b"interrupted; what was read so far" not in seen and bars[-1][0] == bars[-1][1]:
        # The bar is redrawn ten times a second; the Rust tracker can finish the file within
        # one redraw of it showing 16 MB: Ctrl-C then cut the report, not the reading, or
        # came once the command was done, as the interpreter exited, which Python ends by
        # SIGINT itself (-2; a shell's 130 either way).
        assert proc.returncode in (130, -signal.SIGINT)
        pytest.skip("the whole file was read before Ctrl-C arrived")
    assert proc.returncode == 130
    assert b"interrupted; what was read so far" in seen
    assert out.decode().splitlines()[0].split()[0] in ("port", "pkts")


# --- the README -------------------------------------------------------------------------------


def readme_samples() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    samples = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = block.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("$ portlens ") and "#" not in line:
                out = []
                for rest in lines[i + 1:]:
                    if rest.startswith("$ "):
                        break
                    out.append(rest)
                samples.append((line[2:], "\n".join(out).rstrip("\n") + "\n"))
    return samples


@pytest.mark.parametrize(("command", "expected"), readme_samples(),
                         ids=[c for c, _ in readme_samples()])
def test_readme_samples_are_what_the_commands_print(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        terminal: None, command: str, expected: str) -> None:
    """The README's samples, stdout then stderr, on a terminal 100 columns wide, in UTC. A
    sample piped into another command runs in a shell, as typed: the pipe gets the full table,
    and the note on stderr shows before what the last command prints."""
    if "../shared/captures/public/" in command and corpus_dir() is None:
        pytest.skip("public capture corpus not found (../shared/captures/public)")
    if "|" in command:
        proc = subprocess.run(command.replace("portlens", f"{sys.executable} -m portlens", 1),
                              shell=True, cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**ENV, "COLUMNS": "100", "TZ": "UTC"}, check=False)
        assert proc.returncode == 0
        assert proc.stderr + proc.stdout == expected
        return
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        code, out, err = run(capsys, *shlex.split(command)[1:])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert code == 0
    assert out + err == expected
