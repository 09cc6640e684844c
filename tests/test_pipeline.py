"""The one pipeline behind every command and the API: several files as one capture in time
order (as mergecap), directories, -c on every command, the time window, -w on files, --conn,
and per-file --stats. Oracles: the unsplit capture, mergecap, tcpdump and tshark."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.cli import main
from portlens.pipeline import Options, Pipeline, Source, parse_time
from portlens.sources.files import open_capture
from portlens.sources.writer import PcapWriter
from tests.corpus import require_corpus

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SAMPLE = str(CAPTURES / "loopback-sample.pcap")
SESSION = str(CAPTURES / "tcp-session.pcap")
REFUSED = str(CAPTURES / "scenario-refused.pcap")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def frames_of(path: str | Path) -> list[tuple[int, bytes]]:
    """(time ns, bytes) of every frame, in file order."""
    with open_capture(path) as reader:
        return [(int(b.ts_ns[i]), b.frame_bytes(i)) for b in reader for i in range(len(b))]


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} not installed")
    return found


def tool(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


# --- several files as one capture ------------------------------------------------------------

@pytest.fixture(scope="module")
def ftp_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """zeek-ftp-ipv4.pcap (95 frames, 5 connections, the control connection spanning all) cut
    by editcap into files of 20 frames."""
    root = require_corpus()
    need("editcap")
    whole = root / "zeek-ftp-ipv4.pcap"
    out = tmp_path_factory.mktemp("ftp-parts")
    tool("editcap", "-c", "20", str(whole), str(out / "part.pcap"))
    parts = sorted(out.glob("part*.pcap"))
    assert len(parts) == 5
    return whole, parts


@pytest.mark.parametrize("command", ["conns", "ports", "handshakes", "sockets", "events"])
def test_split_files_in_any_order_equal_the_whole(capsys: pytest.CaptureFixture[str],
                                                  ftp_parts: tuple[Path, list[Path]],
                                                  command: str) -> None:
    """Every report on the shuffled parts equals the unsplit file's, row for row (uids and
    frame numbers included): the parts are read in time order as one stream."""
    whole, parts = ftp_parts
    shuffled = [str(p) for p in parts]
    random.Random(7).shuffle(shuffled)
    assert shuffled != sorted(shuffled)
    rc, expected, _ = run(capsys, command, "--json", str(whole))
    assert rc == 0
    rc, got, err = run(capsys, command, "--json", *shuffled)
    assert (rc, err) == (0, "")
    assert got == expected
    if command == "conns":
        rows = lines(got)
        control = next(r for r in rows if r["id.resp_p"] == 21)
        assert (control["uid"], control["first_frame"], control["last_frame"]) == (
            "CsJvXZ2VqtclKOhRbM", 1, 95)
        assert (control["orig_pkts"], control["resp_pkts"]) == (38, 25)


def test_files_cut_by_time_equal_the_whole(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    """editcap -i 10 (a file per 10 s, as tcpdump -G writes them) on zeek-ftp-ipv6.pcap, the
    files named newest first: the same connections, uids and all."""
    root = require_corpus()
    need("editcap")
    whole = root / "zeek-ftp-ipv6.pcap"
    tool("editcap", "-i", "10", str(whole), str(tmp_path / "rot.pcap"))
    parts = sorted((str(p) for p in tmp_path.glob("rot*.pcap")), reverse=True)
    assert len(parts) >= 3
    rc, expected, _ = run(capsys, "conns", "--json", str(whole))
    rc, got, err = run(capsys, "conns", "--json", *parts)
    assert (rc, err) == (0, "") and got == expected and len(lines(got)) == 6


def test_a_directory_reads_its_captures(capsys: pytest.CaptureFixture[str],
                                        ftp_parts: tuple[Path, list[Path]],
                                        tmp_path: Path) -> None:
    whole, parts = ftp_parts
    rc, expected, _ = run(capsys, "conns", "--json", str(whole))
    (parts[0].parent / "notes.txt").write_text("not a capture")
    rc, got, err = run(capsys, "conns", "--json", str(parts[0].parent))
    n = len(parts)
    assert (rc, got) == (0, expected)
    assert err == (f"portlens: {parts[0].parent}: {n} capture files (pcapng {n}); 1 other file "
                   "skipped (not pcap or pcapng by their first bytes)\n")
    rc, out, err = run(capsys, "conns", str(tmp_path))
    assert (rc, out) == (2, "")
    assert err == f"portlens: {tmp_path}: no capture files in this directory\n"


def test_overlapping_files_merge_like_mergecap(tmp_path: Path) -> None:
    """Odd and even frames in two files: read back as one stream they are the original
    capture, frame for frame, and the same as mergecap's output."""
    root = require_corpus()
    need("mergecap")
    whole = root / "zeek-ftp-ipv4.pcap"
    frames = frames_of(whole)
    odd, even = tmp_path / "odd.pcap", tmp_path / "even.pcap"
    for path, part in ((odd, frames[0::2]), (even, frames[1::2])):
        with PcapWriter(path, 1) as w:
            for ts, data in part:
                w.write(ts, data)
    tool("mergecap", "-w", str(tmp_path / "merged.pcap"), str(even), str(odd))
    pipeline = Pipeline(Source.of([even, odd]), Options(chunk_bytes=512))
    got = [(int(b.ts_ns[i]), b.frame_bytes(i)) for b in pipeline.frames() for i in range(len(b))]
    assert got == frames
    assert got == frames_of(tmp_path / "merged.pcap")
    numbers = np.concatenate([b.frame for b in pipeline.frames()])
    assert numbers.tolist() == list(range(1, len(frames) + 1))
    assert [(f.path, f.frames) for f in pipeline.files] == [(str(even), 47), (str(odd), 48)]


def test_time_running_backwards_is_one_warning_and_file_order(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Frames 4 and 5 of tcp-session.pcap swapped: read in file order (as mergecap does), and
    one line on stderr says where and by how much."""
    frames = frames_of(SESSION)
    frames[3], frames[4] = frames[4], frames[3]
    path = tmp_path / "swapped.pcap"
    with PcapWriter(path, 1) as w:
        for ts, data in frames:
            w.write(ts, data)
    rc, out, err = run(capsys, "packets", "--json", str(path))
    assert rc == 0
    assert [r["ts_ns"] for r in lines(out)] == [ts for ts, _ in frames]
    assert err == (f"portlens: {path}: time runs backwards once (first at frame 5, by up to "
                   "0.010250 s); those frames are read in file order\n")
    rc, out, err = run(capsys, "packets", "--stats", "--json", str(path), SESSION)
    files = lines(out)[0]["files"]
    assert [(f["path"], f["frames"], f["backwards"], f["largest_step_back_ns"]) for f in files] \
        == [(str(path), 10, 1, 10_250_000), (SESSION, 10, 0, 0)]
    assert err.count("\n") == 1


def test_stats_has_a_row_per_file(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """capinfos: loopback-sample 59 frames, 20,310 bytes; tcp-session 10 frames, 1,076
    bytes."""
    rc, out, _ = run(capsys, "packets", "--stats", "--json", SAMPLE, SESSION)
    (stats,) = lines(out)
    assert rc == 0 and stats["frames"] == 69
    assert [(f["path"], f["format"], f["frames"], f["wire_bytes"], f["first_ns"])
            for f in stats["files"]] == [
        (SAMPLE, "pcap", 59, 20310, 1795243928087880000),
        (SESSION, "pcap", 10, 1076, 1700108000000000000)]
    monkeypatch.setenv("COLUMNS", "250")
    rc, out, _ = run(capsys, "packets", "--stats", SAMPLE, SESSION)
    rows = [ln.split() for ln in out.splitlines() if ln.split()[1:2] == ["pcap"]]
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (SAMPLE, "pcap", "ethernet", "59", "20,310"), (SESSION, "pcap", "ethernet", "10", "1,076")]


# --- -c on every command --------------------------------------------------------------------

def test_count_is_honoured_by_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """-c 3 on tcp-session.pcap: SYN, SYN-ACK, ACK and nothing more (tcpdump -c 3)."""
    rc, out, _ = run(capsys, "conns", "--json", "-c", "3", SESSION)
    (c,) = lines(out)
    assert (rc, c["orig_pkts"], c["resp_pkts"], c["history"], c["conn_state"]) == (
        0, 2, 1, "ShA", "S1")
    rc, out, _ = run(capsys, "ports", "--json", "-c", "3", SESSION)
    port = lines(out)[0]
    assert (port["pkts_c2s"], port["pkts_s2c"], port["open"]) == (2, 1, 1)
    rc, out, _ = run(capsys, "handshakes", "--json", "-c", "2", SESSION)
    assert (lines(out)[0]["syn_acks"], lines(out)[0]["half_open"]) == (1, 1)
    rc, out, _ = run(capsys, "sockets", "--json", "-c", "2", SESSION)
    states = {(r["local_port"], r["state"]) for r in lines(out) if r["type"] == "socket"}
    assert states == {(49152, "ESTAB"), (80, "SYN-RECV")}  # the SYN-ACK reached the client
    rc, out, _ = run(capsys, "events", "--json", "-c", "1", REFUSED)
    assert [(e["endpoint"], e["event"]) for e in lines(out)] == [("orig", "send SYN")]
    rc, out, _ = run(capsys, "packets", "--json", "-c", "4", SESSION)
    assert [r["frame"] for r in lines(out)] == [1, 2, 3, 4]
    rc, out, _ = run(capsys, "conns", "--json", SESSION)
    uid = lines(out)[0]["uid"]
    rc, out, _ = run(capsys, "ladder", "-c", "3", SESSION, "--conn", str(uid))
    assert rc == 0 and "[SYN]" in out and "[SYN, ACK]" in out and "[FIN" not in out


def test_count_counts_after_the_filter_and_across_files(
        capsys: pytest.CaptureFixture[str]) -> None:
    """tcp-session.pcap (port 80) is three years older than the sample (port 18081 refused,
    2 frames): its 10 frames come first, then one of the sample's."""
    rc, out, _ = run(capsys, "packets", "--json", "-c", "11", "-f", "port 80 or port 18081",
                     SAMPLE, SESSION)
    rows = lines(out)
    assert rc == 0 and [r["dport"] for r in rows[-2:]] == [80, 18081]
    assert [r["frame"] for r in rows] == [*range(1, 11), 10 + 52]


def test_count_with_workers_equals_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    rc, one, _ = run(capsys, "conns", "--json", "-c", "40", SAMPLE)
    rc, two, _ = run(capsys, "conns", "--json", "-c", "40", "--workers", "2", SAMPLE)
    assert rc == 0 and sorted(one.splitlines()) == sorted(two.splitlines())
    assert len(one.splitlines()) == 4


# --- the time window ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "ns"), [
    ("1700108000.0205", 1700108000020500000),
    ("1700108000.000000001", 1700108000000000001),
    ("2023-11-16T04:13:20.0205Z", 1700108000020500000),
    ("2023-11-16 05:13:20.0205+01:00", 1700108000020500000),
    ("2023-11-16T04:13:20.123456789Z", 1700108000123456789)])
def test_times_are_exact(text: str, ns: int) -> None:
    assert parse_time(text) == ns


def test_time_window_selects_like_tshark(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "packets", "--json", "--start", "1700108000.0205",
                     "--end", "2023-11-16T04:13:20.0615Z", SESSION)
    assert rc == 0 and [r["frame"] for r in lines(out)] == [3, 4, 5, 6]
    rc, out, err = run(capsys, "conns", "--start", "1700108000.5", "--end", "1700108000",
                       SESSION)
    assert (rc, out, err) == (2, "", "portlens: --start 1700108000.5 is not before --end "
                                     "1700108000: the window holds nothing\n")
    rc, out, err = run(capsys, "conns", "--start", "yesterday", SESSION)
    assert (rc, out) == (2, "")
    assert err.startswith("portlens: --start: not a time: 'yesterday'") and err.count("\n") == 1


# --- -w on capture files ------------------------------------------------------------------------

def test_write_the_filtered_packets_like_tcpdump(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    """`portlens packets -f EXPR -w out` writes the frames `tcpdump -r in -w out EXPR`
    writes; tshark reads the file back with the same frames."""
    need("tcpdump")
    need("tshark")
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "theirs.pcap"
    rc, out, _ = run(capsys, "packets", "-f", "tcp port 18080", "-w", str(ours), SAMPLE)
    assert rc == 0 and len(out.splitlines()) == 53
    tool("tcpdump", "-r", SAMPLE, "-w", str(theirs), "tcp port 18080")
    assert frames_of(ours) == frames_of(theirs) and len(frames_of(ours)) == 53
    shown = tool("tshark", "-r", str(ours), "-T", "fields", "-e", "frame.time_epoch",
                 "-e", "frame.len", "-e", "tcp.srcport")
    expected = tool("tshark", "-r", str(theirs), "-T", "fields", "-e", "frame.time_epoch",
                    "-e", "frame.len", "-e", "tcp.srcport")
    assert shown == expected
    assert ours.stat().st_mode & 0o777 == 0o600


def test_write_one_connection(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--conn UID -w: the connection's packets and nothing else; tshark's tcp.stream of
    that 5-tuple has the same frames."""
    need("tshark")
    rc, out, _ = run(capsys, "conns", "--json", "-f", "tcp port 18080", SAMPLE)
    conn = lines(out)[1]
    path = tmp_path / "one.pcap"
    rc, out, _ = run(capsys, "packets", "--conn", str(conn["uid"]), "-w", str(path), SAMPLE)
    assert rc == 0
    expr = (f"tcp.port == {conn['id.orig_p']} and tcp.port == {conn['id.resp_p']}")
    expected = tool("tshark", "-r", SAMPLE, "-Y", expr, "-T", "fields", "-e", "frame.time_epoch",
                    "-e", "frame.len")
    got = tool("tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
               "-e", "frame.len")
    assert got == expected
    assert len(got.splitlines()) == conn["orig_pkts"] + conn["resp_pkts"] == 12
    rc, out, err = run(capsys, "packets", "--conn", "Cnosuchconnection", SAMPLE)
    assert (rc, out) == (1, "")
    assert err == ("portlens: no connection with uid Cnosuchconnection "
                   "(`portlens conns` lists them)\n")


def test_ladder_writes_its_connection(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    rc, out, _ = run(capsys, "conns", "--json", SESSION)
    uid = str(lines(out)[0]["uid"])
    path = tmp_path / "ladder.pcap"
    rc, out, _ = run(capsys, "ladder", SESSION, "--conn", uid, "-w", str(path))
    assert rc == 0 and frames_of(path) == frames_of(SESSION)


def test_write_a_time_window_from_several_files(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    """A window over two files (each a different day) keeps the frames inside it only,
    from both, in time order; editcap -A/-B on the mergecap output agrees."""
    need("editcap")
    need("mergecap")
    path = tmp_path / "window.pcap"
    rc, _, _ = run(capsys, "ports", "--start", "1700108000.03", "--end", "1795243928.0880",
                   "-w", str(path), SAMPLE, SESSION)
    assert rc == 0
    merged = tmp_path / "merged.pcap"
    tool("mergecap", "-w", str(merged), SAMPLE, SESSION)
    cut = tmp_path / "cut.pcap"
    tool("editcap", "-A", "2023-11-16 04:13:20.03Z", "-B", "2026-11-21 06:52:08.088Z",
         str(merged), str(cut))
    got = frames_of(path)
    assert got == frames_of(cut)
    assert len(got) == 7 + 3


def test_write_keeps_link_types_apart(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    """pcap holds one link type: mixing them is one line and status 2; --pcapng holds both."""
    raw = str(CAPTURES / "link-raw101.pcap")
    rc, _, err = run(capsys, "packets", "--json", "-w", str(tmp_path / "x.pcap"), SESSION, raw)
    assert rc == 2 and err.count("\n") == 1 and "--pcapng" in err
    out_path = tmp_path / "x.pcapng"
    rc, _, _ = run(capsys, "packets", "--pcapng", "-w", str(out_path), SESSION, raw)
    assert rc == 0
    with open_capture(out_path) as reader:
        assert reader.format == "pcapng"
        total = sum(len(b) for b in reader)
        assert sorted(i.linktype for i in reader.interfaces) == [1, 101]
    assert total == 10 + len(frames_of(raw))


def test_snaplen_cuts_what_is_written(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    rc, _, _ = run(capsys, "packets", "-s", "64", "-w", str(path), SESSION)
    assert rc == 0
    with open_capture(path) as reader:
        batches = list(reader)
    assert [int(c) for b in batches for c in b.caplen] == [64] * 10
    assert [int(w) for b in batches for w in b.wirelen] == [74, 74, 66, 166, 66, 366, 66, 66, 66,
                                                            66]


def _mergecap_order(files: list[list[int]]) -> list[tuple[int, int]]:
    """mergecap's rule, literally: keep each file's next frame at hand and write the earliest
    (ties: the file named first). Returns (file, position) pairs."""
    heads = [0] * len(files)
    out = []
    while True:
        ready = [(ts[heads[i]], i) for i, ts in enumerate(files) if heads[i] < len(ts)]
        if not ready:
            return out
        _, i = min(ready)
        out.append((i, heads[i]))
        heads[i] += 1


@pytest.mark.parametrize("seed", range(12))
def test_merge_order_is_mergecaps_on_any_timestamps(tmp_path: Path, seed: int) -> None:
    """Random files (overlapping, equal times, time going backwards, empty files), read with
    tiny chunks: the merged stream is exactly mergecap's order."""
    rng = random.Random(seed)
    files: list[list[int]] = []
    paths = []
    for i in range(rng.randint(1, 5)):
        start = rng.randint(0, 50) * 1000
        ts: list[int] = []
        for _ in range(rng.randint(0, 40)):
            step = rng.choice([0, 1000, 2000, 5000, -3000]) if ts else 0
            ts.append(max((ts[-1] if ts else start) + step, 0))
        files.append(ts)
        path = tmp_path / f"f{i}.pcap"
        with PcapWriter(path, 1) as w:
            for pos, t in enumerate(ts):
                w.write(1_600_000_000_000_000_000 + t, bytes([i, pos]) + bytes(40))
        paths.append(path)
    pipeline = Pipeline(Source.of(paths), Options(chunk_bytes=64 + rng.randint(0, 200)))
    got = [(b.frame_bytes(k)[0], b.frame_bytes(k)[1]) for b in pipeline.frames()
           for k in range(len(b))]
    assert got == _mergecap_order(files)
    assert [f.backwards for f in pipeline.files] == [
        sum(1 for k in range(1, len(ts)) if ts[k] < max(ts[:k])) for ts in files]


@pytest.mark.parametrize("workers", [1, 2])
def test_evictions_and_decoded_batches_are_counted_on_the_pipeline(workers: int) -> None:
    """--max-flows 1 on the sample: each new flow pushes the open one out (UDP: two flows, one
    eviction; all: 9 evictions and 10 rows for 8 connections, two of them cut in two), the
    same summed over workers; on_decoded sees every frame before -f selects."""
    from portlens.track.tracker import TrackerConfig

    seen = []
    pipeline = Pipeline(Source.of(SAMPLE), Options(filter="udp", workers=workers,
                                                   tracker=TrackerConfig(max_flows=1)),
                        on_decoded=lambda b: seen.append(len(b)))
    conns = list(pipeline.connections())
    assert (len(conns), pipeline.evicted) == (2, 1)
    if workers == 1:
        assert sum(seen) == 59
    pipeline = Pipeline(Source.of(SAMPLE), Options(workers=workers,
                                                   tracker=TrackerConfig(max_flows=1)))
    assert (len(list(pipeline.connections())), pipeline.evicted) == (10, 9)


def test_the_pipeline_snaplen_is_the_writers() -> None:
    """pipeline/run.py spells the writer's default snapshot length out (it does not import
    the writer, and numpy, for a number): they must stay one."""
    from portlens.pipeline.run import DEFAULT_SNAPLEN
    from portlens.sources import writer

    assert DEFAULT_SNAPLEN == writer.DEFAULT_SNAPLEN == 262144
    assert Options().snaplen == DEFAULT_SNAPLEN


@pytest.mark.parametrize("name", ["loopback-sample.pcap", "be.pcap"])
def test_read_ahead_off_gives_the_same_batches(name: str) -> None:
    """Options.read_ahead=False (the HTML report's passes) reads and decodes on the caller's
    thread: the same rows, column for column, and the same per-file counts."""
    path = Path(__file__).resolve().parent.parent / "captures" / name
    runs = []
    for ahead in (True, False):
        pipeline = Pipeline(Source.of(path), Options(read_ahead=ahead, chunk_bytes=4096))
        batches = list(pipeline.packets())
        runs.append((batches, [f.record() for f in pipeline.files]))
    (a, files_a), (b, files_b) = runs
    assert files_a == files_b and len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        for column in x.column_names():
            assert np.array_equal(getattr(x, column), getattr(y, column)), column


# --- Ctrl-C while the capture's end is handed over -----------------------------------------


def _interrupted_at_the_end(monkeypatch: pytest.MonkeyPatch, columns: bool) -> list[str]:
    """The uids track() hands over when a Ctrl-C (a real SIGINT to this process) comes just as
    the tracker starts ending the connections still open; it must raise KeyboardInterrupt
    only once they are all handed over."""
    import os
    import signal

    from portlens.track.rust import RustTracker

    name = "finish_columns" if columns else "finish"
    ending = getattr(RustTracker, name)

    def interrupted(self: RustTracker) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        yield from ending(self)

    monkeypatch.setattr(RustTracker, name, interrupted)
    uids: list[str] = []
    pipeline = Pipeline(Source.of(SAMPLE), Options())
    with pytest.raises(KeyboardInterrupt):
        if columns:
            pipeline.track(lambda c: None, on_columns=lambda cols: uids.extend(cols["uid"]))
        else:
            pipeline.track(lambda c: uids.append(c.uid))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    return uids


@pytest.mark.parametrize("columns", [False, True], ids=["objects", "columns"])
def test_ctrl_c_at_the_end_waits_for_every_connection(monkeypatch: pytest.MonkeyPatch,
                                                      columns: bool) -> None:
    everything = [c.uid for c in Pipeline(Source.of(SAMPLE), Options()).connections()]
    assert len(everything) > 3
    assert _interrupted_at_the_end(monkeypatch, columns) == everything


# --- Ctrl-C while a file is tracked ----------------------------------------------------------


def _interrupted_mid_file(monkeypatch: pytest.MonkeyPatch, path: Path, *, columns: bool,
                          in_core: bool, at: int | None = None
                          ) -> tuple[list[tuple[str, int]], int]:
    """(uid, serial) of the connections track() hands over when a Ctrl-C (a real SIGINT to
    this process) comes as the tracker returns a batch's ended connections (the call ``at``,
    or the first after the second that ended some), and the number of that call: where
    Python raised it, as the call returned, those rows were never handed over. The objects
    carry no serial (0)."""
    import os
    import signal

    from portlens.track.rust import RustTracker

    if in_core:
        name = "feed_decoded" if columns else "feed_decoded_connections"
    else:
        name = "feed_columns" if columns else "feed"
    feeding = getattr(RustTracker, name)
    calls: list[int] = []

    def interrupted(self: RustTracker, batch: Any) -> Any:
        ended = feeding(self, batch)
        calls.append(len(calls))
        due = (len(calls) == at if at is not None
               else len(calls) > 2 and not sent and ended is not None and len(ended["uid"]))
        if due:
            sent.append(len(calls))
            os.kill(os.getpid(), signal.SIGINT)
        return ended

    sent: list[int] = []
    monkeypatch.setattr(RustTracker, name, interrupted)
    rows: list[tuple[str, int]] = []

    def block(cols: dict[str, Any]) -> None:
        rows.extend(zip(cols["uid"], cols["serial"].tolist(), strict=True))

    pipeline = Pipeline(Source.of(path), Options(read_ahead=in_core, chunk_bytes=256 << 10))
    with pytest.raises(KeyboardInterrupt):
        if columns:
            pipeline.track(lambda c: None, on_columns=block, column_block=1)
        else:
            pipeline.track(lambda c: rows.append((c.uid, 0)))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sent and len(calls) == sent[0], "the Ctrl-C was delivered after the batch it came in"
    monkeypatch.undo()
    return rows, sent[0]


@pytest.mark.parametrize("in_core", [True, False], ids=["core", "python"])
def test_ctrl_c_mid_file_loses_no_connection(monkeypatch: pytest.MonkeyPatch,
                                             generated_20k: Path, in_core: bool) -> None:
    """Every connection created before the Ctrl-C is handed over, once: the serials of the
    rows are 1..n, none missing (the ones that ended in the batch the Ctrl-C came in, the
    ones open at the end), and the objects are the same connections as the columns."""
    rows, at = _interrupted_mid_file(monkeypatch, generated_20k, columns=True,
                                     in_core=in_core)
    serials = sorted(serial for _, serial in rows)
    assert serials == list(range(1, len(rows) + 1))
    everything = [c.uid for c in Pipeline(Source.of(generated_20k), Options()).connections()]
    assert 100 < len(rows) < len(everything) - 100  # the Ctrl-C came early
    objects, _ = _interrupted_mid_file(monkeypatch, generated_20k, columns=False,
                                       in_core=in_core, at=at)
    assert [uid for uid, _ in objects] == [uid for uid, _ in rows]
