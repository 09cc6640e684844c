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
