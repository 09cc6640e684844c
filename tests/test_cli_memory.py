"""The command line's malloc settings (cli/memory.py): a block of a batch's size comes from
malloc's heap, where the next batch reuses it, instead of a mapping of its own that goes back
to the kernel when freed. Checked in a fresh interpreter each time, whose allocator nobody has
tuned yet, by where glibc puts a 4 MiB block (/proc/self/maps)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's malloc settings: Linux with glibc only")

_PROBE = textwrap.dedent("""
    import ctypes, sys
    from portlens.cli.memory import keep_freed_memory
    tuned = keep_freed_memory() if sys.argv[1] == "tuned" else None
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    p = libc.malloc(4 << 20)
    where = "?"
    for line in open("/proc/self/maps"):
        span, *rest = line.split()
        lo, hi = (int(x, 16) for x in span.split("-"))
        if lo <= p < hi:
            where = "heap" if line.rstrip().endswith("[heap]") else "own mapping"
    libc.free(p)
    print(tuned, where)
""")


def _probe(mode: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                          env=environ, check=True)
    return done.stdout.strip()


def test_a_batch_sized_block_comes_from_the_heap_once_tuned() -> None:
    assert _probe("default") == "None own mapping"
    assert _probe("tuned") == "True heap"


def test_the_users_own_malloc_settings_win() -> None:
    assert _probe("tuned", MALLOC_MMAP_THRESHOLD_="1048576") == "False own mapping"
    assert _probe("tuned", GLIBC_TUNABLES="glibc.malloc.check=0") == "False own mapping"


def test_the_command_line_sets_them() -> None:
    """main() applies them before the command runs."""
    probe = textwrap.dedent("""
        import portlens.cli.memory as memory
        from portlens.cli import main
        calls = []
        memory.keep_freed_memory = lambda: calls.append(1) or True
        main(["packets", "--stats", sys.argv[1]])
        print(len(calls))
    """)
    capture = os.path.join(os.path.dirname(__file__), "..", "captures", "loopback-sample.pcap")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + probe, capture],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "1"
