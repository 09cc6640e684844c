"""The command line run in a fresh interpreter, for the tests of what a command imports (a
short command's start is mostly imports: NumPy alone was a tenth of `conns --format zeek` on
the benchmark capture)."""

from __future__ import annotations

import subprocess
import sys


def run_fresh(args: list[str]) -> tuple[int, set[str], str]:
    """``portlens ARGS`` in a new interpreter: its exit status, the modules loaded when it
    returned, and what it printed on stdout."""
    code = ("import sys\n"
            "from portlens.cli import main\n"
            f"status = main({args!r})\n"
            "print(status, *sorted(sys.modules), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    status, *modules = done.stderr.split()
    return int(status), set(modules), done.stdout
