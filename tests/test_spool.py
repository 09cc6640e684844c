"""The live capture's backlog: batches wait in memory, then on disk, and come out in order.

Batches are cut from a real capture (the bundled loopback recording and a pcapng with two
interfaces), so every column a reader fills travels through the spool file and back.
"""

from __future__ import annotations

import errno
import os
import queue
import random
import threading
from pathlib import Path

import pytest

from portlens.sources import FrameBatch, open_capture
from portlens.sources.spool import Spool, SpoolError

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ("offset", "caplen", "wirelen", "ts_ns", "linktype", "interface", "frame")


def batches(name: str = "loopback-sample.pcap", size: int = 3) -> list[FrameBatch]:
    """The capture cut into batches of ``size`` frames, each over a buffer of its own."""
    out = []
    with open_capture(REPO / "captures" / name) as reader:
        for b in reader:
            for start in range(0, len(b), size):
                n = min(size, len(b) - start)
                part = b.take(slice(start, start + n))
                out.append(FrameBatch.from_frames(
                    [part.frame_bytes(i) for i in range(n)], part.ts_ns.tolist(),
                    linktype=part.linktype.tolist(), wirelen=part.wirelen.tolist(),
                    interface=part.interface.tolist(), first_frame=int(part.frame[0])))
    return out


def frames(b: FrameBatch) -> list[tuple[object, ...]]:
    return [(b.frame_bytes(i), *(int(getattr(b, c)[i]) for c in COLUMNS if c != "offset"))
            for i in range(len(b))]


def drain(spool: Spool) -> list[FrameBatch]:
    spool.close_input()
    out = []
    while (b := spool.get(timeout=1)) is not None:
        out.append(b)
    return out


def test_memory_then_disk_then_memory_in_order(tmp_path: Path) -> None:
    parts = batches()
    sizes = [p.data.nbytes for p in parts]
    limit = sum(sizes[:3])  # the first three fit in memory
    spool = Spool(limit, disk_limit=1 << 30, directory=str(tmp_path))
    for p in parts[:10]:
        assert spool.put(p)
    assert spool.memory_bytes == limit
    assert spool.disk_bytes > 0 and spool.spilled_packets == sum(len(p) for p in parts[3:10])
    assert spool.waiting_packets() == sum(len(p) for p in parts[:10])
    # Out in the order they went in, every column as it was.
    got = [spool.get(timeout=1) for _ in range(10)]
    assert [frames(g) for g in got if g is not None] == [frames(p) for p in parts[:10]]
    assert spool.backlog_bytes == 0 and spool.waiting_packets() == 0
    # With the disk part drained, memory takes batches again.
    assert spool.put(parts[10])
    assert spool.memory_bytes == sizes[10] and spool.disk_bytes == 0
    assert [frames(b) for b in drain(spool)] == [frames(parts[10])]
    spool.close()


def test_pcapng_columns_survive_the_disk(tmp_path: Path) -> None:
    parts = batches("pcapng-multi.pcapng", size=3)
    assert len({int(i) for p in parts for i in p.interface}) == 4
    spool = Spool(0, disk_limit=1 << 30, directory=str(tmp_path))
    for p in parts:
        assert spool.put(p)
    assert spool.memory_bytes == 0 and spool.spilled_packets == sum(len(p) for p in parts)
    assert [frames(b) for b in drain(spool)] == [frames(p) for p in parts]


def test_without_disk_a_full_buffer_refuses(tmp_path: Path) -> None:
    parts = batches()
    spool = Spool(parts[0].data.nbytes, disk_limit=0)
    assert spool.put(parts[0])
    assert not spool.put(parts[1])
    assert spool.waiting_packets() == len(parts[0])
    assert [frames(b) for b in drain(spool)] == [frames(parts[0])]


def test_disk_limit_refuses_and_keeps_order(tmp_path: Path) -> None:
    parts = batches()
    on_disk = [p.data.nbytes + len(p) * 36 for p in parts[:3]]
    assert on_disk[0] + on_disk[1] > max(on_disk)
    spool = Spool(0, disk_limit=max(on_disk), directory=str(tmp_path))
    assert spool.put(parts[0])
    assert not spool.put(parts[1])  # would pass the disk limit
    assert spool.get(timeout=1) is not None
    assert spool.put(parts[2])  # room again
    assert [frames(b) for b in drain(spool)] == [frames(parts[2])]


def test_idle_ticks_only_when_nothing_waits() -> None:
    parts = batches()
    spool = Spool(1 << 20)
    assert spool.put(FrameBatch.empty())
    assert spool.put(FrameBatch.empty())  # accepted, not queued twice
    assert spool.put(parts[0])
    assert spool.put(FrameBatch.empty())  # something waits: not queued
    got = drain(spool)
    assert [len(b) for b in got] == [0, len(parts[0])]
    with pytest.raises(queue.Empty):
        Spool(1).get(timeout=0.01)


def test_the_spool_file_is_never_visible(tmp_path: Path) -> None:
    spool = Spool(0, disk_limit=1 << 30, directory=str(tmp_path))
    assert spool.put(batches()[0])
    assert os.listdir(tmp_path) == []  # unlinked from the start
    assert spool._file is not None
    link = os.readlink(f"/proc/self/fd/{spool._file.fileno()}")
    assert link.startswith(str(tmp_path)) and link.endswith("(deleted)")
    spool.close()


def test_the_disk_part_takes_at_most_half_the_free_space(tmp_path: Path) -> None:
    fs = os.statvfs(tmp_path)
    free = fs.f_bavail * fs.f_frsize
    assert Spool(0, disk_limit=1 << 62, directory=str(tmp_path)).disk_limit <= free // 2
    assert Spool(0, disk_limit=1 << 20, directory=str(tmp_path)).disk_limit == 1 << 20


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpoolError) as err:
        Spool(0, disk_limit=1 << 20, directory=str(tmp_path / "nope"))
    assert str(err.value) == (f"cannot create the spool file in {tmp_path / 'nope'}: "
                              "No such file or directory")


def test_a_full_disk_refuses_and_says_why(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    parts = batches()
    spool = Spool(0, disk_limit=1 << 30, directory=str(tmp_path))
    assert spool.put(parts[0])

    def no_space(*_: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwritev", no_space)
    assert not spool.put(parts[1])
    assert spool.disk_error == "No space left on device"
    monkeypatch.undo()
    assert not spool.put(parts[2])  # the disk stays given up: no half-written batches
    assert [frames(b) for b in drain(spool)] == [frames(parts[0])]


def test_a_short_write_is_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = batches()
    spool = Spool(0, disk_limit=1 << 30, directory=str(tmp_path))
    real_pwrite = os.pwrite

    def first_100_bytes(fd: int, views: list[memoryview], pos: int) -> int:
        return real_pwrite(fd, b"".join(views)[:100], pos)

    monkeypatch.setattr(os, "pwritev", first_100_bytes)
    assert spool.put(parts[0]) and spool.put(parts[1])
    assert [frames(b) for b in drain(spool)] == [frames(parts[0]), frames(parts[1])]


def test_big_backlog_is_cut_back_when_drained(tmp_path: Path) -> None:
    big = FrameBatch.from_frames([bytes(60_000)] * 1200, list(range(1200)), linktype=1)
    spool = Spool(0, disk_limit=1 << 30, directory=str(tmp_path))
    assert spool.put(big)
    assert spool._file is not None
    assert os.fstat(spool._file.fileno()).st_size > 64 << 20
    got = spool.get(timeout=1)
    assert got is not None and frames(got) == frames(big)
    assert os.fstat(spool._file.fileno()).st_size == 0


def test_producer_and_consumer_threads(tmp_path: Path) -> None:
    """One thread puts while another gets, memory and disk in turn: nothing lost or reordered."""
    parts = batches(size=2)
    rng = random.Random(7)
    order = [rng.randrange(len(parts)) for _ in range(3000)]
    spool = Spool(4 * max(p.data.nbytes for p in parts), disk_limit=1 << 30,
                  directory=str(tmp_path))
    refused = []

    def produce() -> None:
        for k in order:
            if not spool.put(parts[k]):
                refused.append(k)
        spool.close_input()

    thread = threading.Thread(target=produce)
    thread.start()
    got = []
    while (b := spool.get(timeout=5)) is not None:
        got.append(frames(b))
        if rng.random() < 0.01:
            threading.Event().wait(0.002)  # the analysis pauses: the backlog grows
    thread.join()
    assert refused == []
    assert spool.spilled_packets > 0
    assert got == [frames(parts[k]) for k in order]
    assert spool.backlog_bytes == 0


def test_a_spool_file_cut_behind_its_back_is_one_line(tmp_path: Path) -> None:
    spool = Spool(0, disk_limit=1 << 30, directory=str(tmp_path))
    assert spool.put(batches()[0])
    assert spool._file is not None
    os.ftruncate(spool._file.fileno(), 10)
    with pytest.raises(SpoolError, match=r"^the spool file is short: 10 of \d+ bytes at offset 0$"):
        spool.get(timeout=1)
