"""One capture from many files (issue 14): public captures and a slice of the benchmark capture
cut by editcap into rotated files (-c N packets per file, -i SECONDS per file, as tcpdump -C/-G
and dumpcap ring buffers write them), named in a shuffled order or given as a directory, give
every report of the unsplit file row for row, uids included; and so do --workers shards,
whose uids pipeline/shards.py renames to those of one process."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from portlens.cli import main
from portlens.decode.packets import PacketBatch
from portlens.pipeline import Options, Pipeline, Source
from portlens.pipeline.shards import ShardJoinError, ShardMerge, join_shards, joined, table_key
from portlens.sources.merge import capture_kind, scan_directory
from portlens.track.model import Connection
from tests.corpus import corpus_dir, require_corpus

BENCH = Path("/tmp/portlens-bench-2M.pcap")
BENCH_SLICE = 60_000
"""Packets of the benchmark capture used (its first 60,000: about 24 s of traffic)."""

# (capture, editcap -c N, editcap -i SECONDS): long connections spanning files (ssh over
# years, the FTP control connection, a long HTTP POST), IPv6 fragments cut between files,
# tunnels (6in4, VXLAN, GTP/Teredo), VLANs, pcapng with several interfaces.
SPLITS = [
    ("zeek-ssh-half-duplex-client.pcap", 60, 86_400),
    ("zeek-ftp-ipv4.pcap", 20, 10),
    ("zeek-http-post-large-loopback.pcap", 10, 10),
    ("zeek-quic-chromium-fragmented-ipv6.pcap", 150, 1),
    ("ndpi-6in4tunnel.pcap", 30, 5),
    ("zeek-vxlan-tunnel.pcap", 3, 1),
    ("zeek-gtp-teredo-icmpv6.pcap", 3, None),
    ("zeek-vlan-qinq.pcap", 2, None),
    ("zeek-pcapng-multi-interface.pcapng", 2, 60),
    ("zeek-pop3-rej-portreuse.pcap", 25, 2),
    ("ndpi-synscan.pcap", 500, 1),
]
"""(capture, packets per file, seconds per file or None where the capture lasts under a
second)."""

REPORTS = [
    ("conns", "--json"),
    ("ports", "--json"),
    ("handshakes", "--json"),
    ("handshakes", "--json", "--conns"),
    ("sockets", "--json"),
    ("conns", "--format", "zeek"),
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def editcap() -> str:
    path = shutil.which("editcap")
    if path is None:
        pytest.skip("editcap (comes with tshark) is not installed")
    return path


def split(whole: Path, out: Path, *how: str) -> list[Path]:
    """``editcap how... whole out/part.pcap``: the parts, in time order."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([editcap(), *how, str(whole), str(out / "part.pcap")], check=True,
                   capture_output=True)
    return sorted(out.glob("part*"))


def comparable(out: str) -> list[str]:
    """A report's output lines, in their order (conns: the order connections end, whatever
    the files or the shards); Zeek's #open and #close lines carry the time of the run."""
    return [ln for ln in out.splitlines() if not ln.startswith(("#open", "#close"))]


@pytest.fixture(scope="module")
def bench_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BENCH.exists():
        pytest.skip(f"{BENCH} is absent (scripts/bench.py generate makes it)")
    out = tmp_path_factory.mktemp("bench") / "slice.pcap"
    subprocess.run([editcap(), "-r", str(BENCH), str(out), f"1-{BENCH_SLICE}"], check=True,
                   capture_output=True)
    return out


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "count", "seconds"), SPLITS)
def test_rotated_files_in_any_order_give_every_report_of_the_whole(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, count: int,
        seconds: int | None) -> None:
    whole = require_corpus() / name
    _same_reports(capsys, tmp_path, whole, count, seconds)


def test_benchmark_slice_in_rotated_files_gives_every_report_of_the_whole(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, bench_slice: Path) -> None:
    _same_reports(capsys, tmp_path, bench_slice, 7_000, 3)


def _same_reports(capsys: pytest.CaptureFixture[str], tmp_path: Path, whole: Path, count: int,
                  seconds: int | None) -> None:
    by_count = split(whole, tmp_path / "c", "-c", str(count))
    assert len(by_count) >= 3, by_count
    cuts = [by_count]
    if seconds is not None:
        by_time = split(whole, tmp_path / "i", "-i", str(seconds))
        assert len(by_time) >= 2, by_time
        cuts.append(by_time)
    rng = random.Random(whole.name)
    for parts in cuts:
        names = [str(p) for p in parts]
        rng.shuffle(names)
        for command in REPORTS:
            rc, expected, _ = run(capsys, *command, str(whole))
            rc2, got, err = run(capsys, *command, *names)
            assert (rc2, err) == (rc, ""), (command, err)
            assert comparable(got) == comparable(expected), (command, names)
    # One of the cuts as a directory, with a note and a log beside the captures.
    (by_count[0].parent / "README").write_text("sensor 7, ring buffer\n")
    rc, expected, _ = run(capsys, "conns", "--json", str(whole))
    rc, got, err = run(capsys, "conns", "--json", str(by_count[0].parent))
    assert rc == 0 and got == expected
    assert err.endswith("; 1 other file skipped (not pcap or pcapng by their first bytes)\n")
    # And tracked by two and three worker processes: the same rows, uids and order.
    names = [str(p) for p in by_count]
    for workers in ("2", "3"):
        rc, got, err = run(capsys, "conns", "--json", "--workers", workers, *names)
        assert (rc, err) == (0, "") and got == expected, workers


def test_a_connection_across_files_is_one_row(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    """zeek-ssh-half-duplex-client.pcap in files of 60 packets: the connection from
    192.168.1.79:51880 ... every connection's packets, over however many files, are one row
    with the uid of the unsplit file. Checked on the longest one: 838 packets in 14 files."""
    whole = require_corpus() / "zeek-ssh-half-duplex-client.pcap"
    parts = split(whole, tmp_path, "-c", "60")
    assert len(parts) == 14
    _, expected, _ = run(capsys, "conns", "--json", str(whole))
    _, got, _ = run(capsys, "conns", "--json", *reversed([str(p) for p in parts]))
    rows = [json.loads(line) for line in got.splitlines()]
    longest = max(rows, key=lambda r: int(r["last_frame"]) - int(r["first_frame"]))
    assert int(longest["last_frame"]) - int(longest["first_frame"]) > 60  # spans files
    assert got == expected
    assert len({r["uid"] for r in rows}) == len(rows)


def test_directory_takes_captures_by_their_first_bytes(tmp_path: Path) -> None:
    """A pcap named .txt is taken, a text file named .pcap is not, compressed captures are
    looked into, hidden files and subdirectories are passed over."""
    import gzip

    root = Path(__file__).resolve().parents[1] / "captures"
    (tmp_path / "a.txt").write_bytes((root / "tcp-session.pcap").read_bytes())
    (tmp_path / "notes.pcap").write_text("not a capture\n")
    (tmp_path / "b.pcapng").write_bytes((root / "pcapng-multi.pcapng").read_bytes())
    (tmp_path / "c.gz").write_bytes(gzip.compress((root / "icmp.pcap").read_bytes()))
    (tmp_path / "d.gz").write_bytes(gzip.compress(b"hello"))
    (tmp_path / ".e.pcap").write_bytes((root / "tcp-session.pcap").read_bytes())
    (tmp_path / "sub").mkdir()
    scan = scan_directory(str(tmp_path))
    assert [Path(f).name for f in scan.files] == ["a.txt", "b.pcapng", "c.gz"]
    assert scan.kinds == {"pcap": 1, "pcapng": 1, "pcap.gz": 1}
    assert scan.skipped == 3
    assert capture_kind(str(tmp_path / "sub")) is None
    assert scan.note() == (f"{tmp_path}: 3 capture files (pcap 1, pcap.gz 1, pcapng 1); "
                           "3 other files skipped (not pcap or pcapng by their first bytes)")


def test_backwards_time_inside_a_file_is_a_warning(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """tcp-session.pcap (10 frames over 0.09225 s, capinfos) rewritten as frames 6-10 then
    1-5 in one file: five frames earlier than one before them, the first at the file's frame
    6, the furthest back by 0.09225 s (frame 10's time minus frame 1's): one warning line."""
    root = Path(__file__).resolve().parents[1] / "captures"
    session = root / "tcp-session.pcap"
    first = tmp_path / "late.pcap"
    rest = tmp_path / "early.pcap"
    subprocess.run([editcap(), "-F", "pcap", "-r", str(session), str(first), "6-10"], check=True)
    subprocess.run([editcap(), "-F", "pcap", "-r", str(session), str(rest), "1-5"], check=True)
    backwards = tmp_path / "backwards.pcap"
    with backwards.open("wb") as out:  # pcap: header of one, records of late then early
        late, early = first.read_bytes(), rest.read_bytes()
        out.write(late + early[24:])
    rc, _, err = run(capsys, "conns", "--json", str(backwards))
    assert rc == 0
    assert err == (f"portlens: {backwards}: time runs backwards 5 times (first at frame 6, by "
                   "up to 0.092250 s); those frames are read in file order\n")


def test_join_refuses_shards_numbered_otherwise() -> None:
    """A shard whose uids are not those of its creation order (a tracker numbering another
    way) is refused, not renamed into wrong uids."""
    from portlens.pipeline import Options, Pipeline, Source

    root = Path(__file__).resolve().parents[1] / "captures"
    conns = list(Pipeline(Source.of(root / "loopback-sample.pcap"), Options()).connections())
    assert len(conns) > 2
    assert [c.uid for c in join_shards([conns])] == [c.uid for c in conns]  # one shard
    swapped = list(reversed(conns))
    for c in swapped:
        c.first_frame = -c.first_frame  # the creation order reversed: no longer the serials
    with pytest.raises(ShardJoinError):
        join_shards([swapped])
    errors: list[str] = []
    assert joined([swapped], errors.append) == swapped  # the rows, with a line saying so
    assert len(errors) == 1 and errors[0].startswith("shard 0: connection ")
    assert errors[0].endswith("shards cannot be joined; the rows keep the shards' own uids")
    assert table_key(conns[0])[0] in (6, 17, 1, 58)


ALL_CAPTURES = sorted([*(Path(__file__).resolve().parents[1] / "captures").glob("*.pcap*"),
                       *(p for p in (corpus_dir() or Path("/nonexistent")).glob("*.pcap*")
                         if p.suffix in (".pcap", ".pcapng"))])


@pytest.mark.parametrize("path", ALL_CAPTURES, ids=[p.name for p in ALL_CAPTURES])
def test_three_shards_joined_are_one_run_row_for_row(path: Path) -> None:
    """Every bundled and public capture tracked as three flow shards (each tracker keeping its
    shard and letting the others' packets move its clock), joined by pipeline/shards.py:
    the rows of one process, uids, transitions and order included (the reference tracker too
    on the bundled captures)."""
    from portlens.report.conns import record

    for reference in (False, True) if "public" not in path.parts else (False,):
        options = Options(reference=reference)
        one = [record(c) for c in Pipeline(Source.of(path), options).connections()]
        steps = [_shard_steps(path, replace(options, tracker=replace(options.tracker,
                                                                      shard=(k, 3))))
                 for k in range(3)]
        shards = [[c for conns, _, _ in part for c in conns] for part in steps]
        assert [record(c) for c in join_shards(shards)] == one, reference
        # Streamed: the shards' batches in turn, rows taken as soon as they are in place.
        merge = ShardMerge(3)
        streamed = []
        for i in range(max(map(len, steps))):
            for k, part in enumerate(steps):
                if i < len(part):
                    conns, created, frame = part[i]
                    merge.add(k, conns)
                    if frame is None:
                        merge.finish(k)
                    else:
                        merge.progress(k, created, frame)
                streamed += [record(c) for c in merge.ready()]
        assert streamed == one, reference
        assert not list(merge.rest())


def _shard_steps(path: Path, options: Options
                 ) -> list[tuple[list[Connection], list[int], int | None]]:
    """What a --workers worker sends: per batch the connections that ended, the first frames
    of those created, and the last frame; then those open at the end (frame None)."""
    steps: list[tuple[list[Connection], list[int], int | None]] = []
    conns: list[Connection] = []
    last = [-1]

    def seen(batch: PacketBatch) -> None:
        if len(batch):
            last[0] = int(batch.frame[-1])

    def batch_done(tracker: Any) -> None:
        steps.append((conns[:], tracker.created_frames().tolist(), last[0]))
        conns.clear()

    Pipeline(Source.of(path), options).track(conns.append, on_batch=batch_done,
                                             on_packets=seen)
    steps.append((conns[:], [], None))
    return steps


def test_a_worker_killed_mid_run_has_its_shard_run_again(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, bench_slice: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--workers 2 with the reference tracker (worker processes; the compiled one shards in
    threads) on the benchmark slice in rotated files: the worker of shard 0 is killed
    (SIGKILL, as the OOM killer does) after tracking 20,000 of the 60,000 packets, its rows
    partly sent; a new worker runs the shard again and the output is one process's, row for
    row. A shard whose worker always dies is given up after two restarts, with one line."""
    import os
    import signal

    from portlens.pipeline import parallel
    from portlens.pipeline.run import Pipeline as RunPipeline

    names = [str(p) for p in split(bench_slice, tmp_path / "c", "-c", "7000")]
    _, expected, _ = run(capsys, "conns", "--json", "--reference", *names)
    marker = tmp_path / "killed"
    read = RunPipeline.packets

    def packets(pipeline: RunPipeline, *args: Any, **kwargs: Any) -> Any:
        shard = pipeline.options.tracker.shard
        seen = 0
        for batch in read(pipeline, *args, **kwargs):
            yield batch
            seen += len(batch)
            if shard is not None and shard[0] == 0 and seen >= 20_000 and (
                    always or not marker.exists()):
                marker.write_text(f"{seen}\n")
                os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(RunPipeline, "packets", packets)  # the forked workers inherit it
    always = False
    rc, got, err = run(capsys, "conns", "--json", "--reference", "--workers", "2", *names)
    assert 20_000 <= int(marker.read_text()) < BENCH_SLICE
    assert (rc, err) == (0, "") and got == expected
    always = True
    rc, got, err = run(capsys, "conns", "--json", "--reference", "--workers", "2", *names)
    assert rc == 2 and err == (f"portlens: --workers: the worker of shard 0 of 2 died "
                               f"{parallel.RESTARTS + 1} times (exit status -9); its "
                               "connections are missing\n")
    assert 0 < len(got.splitlines()) < len(expected.splitlines())
