"""Hostile input and heavy load (issue 15): options that would exhaust the machine, output
files that refuse writes, file names that look like markup, and frames far larger than any
network sends. Each case is crafted here or by scripts/make_hostile.py; nothing is timed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portlens.cli import common
from portlens.cli.args import available_memory_mb, physical_memory_mb

REPO = Path(__file__).resolve().parent.parent
SESSION = REPO / "captures" / "tcp-session.pcap"


def portlens(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portlens", *argv], capture_output=True,
                          text=True, timeout=300, check=False)


# --- -B: the ring is allocated at once, from memory available now ---------------------------


def test_kernel_buffer_above_half_the_available_memory_is_refused() -> None:
    """Half the physical memory was the bound; on a shared machine much of it is in use, and
    a ring of half the physical memory drove one out of memory. The bound is half of
    MemAvailable: a value between the two is refused in one line (before any interface is
    opened: nosuch0 would be the error otherwise)."""
    physical, available = physical_memory_mb(), available_memory_mb()
    if not physical or available is None:
        pytest.skip("the system says neither its memory nor what is available")
    if available // 2 + 64 >= physical // 2:
        pytest.skip(f"{available} MB of {physical} MB available: no gap between the bounds")
    ring = (available // 2 + physical // 2) // 2
    done = portlens("sniff", "-i", "nosuch0", "-B", str(ring))
    assert done.returncode == 2
    assert done.stderr.startswith(f"portlens: -B/--kernel-buffer {ring}: at most "), done.stderr
    assert "MemAvailable" in done.stderr and done.stderr.count("\n") == 1


# --- -w that cannot be written: one line naming it, and the report all the same ------------


@pytest.mark.parametrize("argv", [["conns", "--json"], ["ports", "--json"],
                                  ["packets", "--stats", "--json"],
                                  ["conns", "--json", "--workers", "2"]], ids=" ".join)
def test_w_to_a_full_device_is_one_line_and_the_report_is_printed(argv: list[str]) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    plain = portlens(*argv, str(SESSION))
    full = portlens(*argv, str(SESSION), "-w", "/dev/full")
    assert plain.returncode == 0 and plain.stdout
    assert full.returncode == 2
    assert full.stdout == plain.stdout  # the whole report, as without -w
    assert full.stderr == plain.stderr + (
        "portlens: -w /dev/full: No space left on device after 0 packets (the report covers "
        "every packet read)\n")


def test_w_into_a_missing_directory_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "x.pcap"
    done = portlens("conns", "--json", str(SESSION), "-w", str(target))
    assert done.returncode == 2
    assert len(done.stdout.splitlines()) == 1 and json.loads(done.stdout)["conn_state"] == "SF"
    assert done.stderr == (f"portlens: -w {target}: No such file or directory after 0 packets "
                           "(the report covers every packet read)\n")


# --- file names are text -----------------------------------------------------------------------


def test_a_closing_markup_tag_in_a_file_name(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """`[/b]` closes a tag nobody opened: rich raised MarkupError on it (a traceback from
    `packets --stats`). Shown as it is, on a terminal or not."""
    from portlens.cli import main

    folder = tmp_path / "a["
    folder.mkdir()
    odd = folder / "b].pcap"  # the path holds "[/b]"
    shutil.copy(SESSION, odd)
    assert "[/b]" in str(odd)
    monkeypatch.setenv("NO_COLOR", "1")  # the title is bold on a terminal otherwise
    for on_terminal in (False, True):
        monkeypatch.setattr(common, "stdout_is_terminal", lambda on=on_terminal: on)
        code = main(["packets", "--stats", str(odd)])
        out, err = capsys.readouterr()
        assert code == 0 and err == ""
        assert out.splitlines()[0] == str(odd)
        assert out.splitlines()[1].split() == ["frames", "10"]


# --- frames past the frame cap: cut, counted, never held ---------------------------------------

sys.path.insert(0, str(REPO / "scripts"))
from make_hostile import make  # noqa: E402

CAP = 262_144
"""FRAME_CAP_BYTES (crates/core/src/capture/mod.rs): libpcap's largest snapshot length."""


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_frames_past_the_cap_are_cut_and_counted(tmp_path: Path, fmt: str) -> None:
    """Two 300,000-byte TSO frames (IPv4 total length 0): each is kept to 256 KiB, as if
    captured with that snaplen (its checksums then unverified), and counted: a warning line
    naming the file, a --stats row and a JSON key."""
    path = make(tmp_path, 2, 300_000, fmt, compress=False)
    warning = (f"portlens: {path}: 2 frames captured more than 262,144 bytes (256 KiB, the "
               "frame cap: libpcap's largest snapshot length) and were cut to it (checksums "
               "unverified)\n")
    done = portlens("packets", "--json", str(path))
    assert done.returncode == 0 and done.stderr == warning
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["caplen"], r["len"], r["truncated"]) for r in rows] == [(CAP, 300_000, True)] * 2
    assert [(r["proto"], r["sport"], r["dport"]) for r in rows] == [("tcp", 40000, 80)] * 2
    assert [r["checksum"]["tcp"] for r in rows] == ["unverified"] * 2
    stats = portlens("packets", "--stats", "--json", str(path))
    assert json.loads(stats.stdout)["frames_cut"] == 2 and stats.stderr == warning
    table = portlens("packets", "--stats", str(path))
    assert "cut at the 256 KiB frame cap  2\n" in table.stdout


def test_a_huge_frame_is_never_held_whole(tmp_path: Path) -> None:
    """Two 64 MiB frames in a few hundred bytes of bzip2 (the issue had 256 MiB in 291): the reader
    reads past all but its first 256 KiB, so no batch's buffer is larger than a chunk and
    one cut frame (it used to grow to hold the whole frame)."""
    from portlens.sources.files import DEFAULT_CHUNK_BYTES, open_capture

    path = make(tmp_path, 2, 64 << 20, "pcap")
    assert path.stat().st_size < 100_000
    sizes, caplens, wirelens = [], [], []
    with open_capture(path) as reader:
        for batch in reader:
            sizes.append(batch.data.nbytes)
            caplens += batch.caplen.tolist()
            wirelens += batch.wirelen.tolist()
        assert reader.frames_cut == 2
    assert caplens == [CAP, CAP] and wirelens == [64 << 20] * 2
    assert max(sizes) <= DEFAULT_CHUNK_BYTES + 2 * CAP
