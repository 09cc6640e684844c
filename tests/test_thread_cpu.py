"""scripts/thread_cpu.py, the benchmarks' per-thread CPU: it charges each thread its own time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "thread_cpu.py"

# A main thread that sleeps while a second thread spins for 0.4 CPU s, then a third, shorter
# than the script's polling period, that spins 20 times for 2 ms: CPU time, not wall time,
# so a busy host changes what it takes, not what it is charged.
BUSY = """
import threading, time
def spin(s):
    end = time.thread_time() + s
    while time.thread_time() < end:
        pass
t = threading.Thread(target=spin, args=(0.4,)); t.start(); t.join()
for _ in range(20):
    t = threading.Thread(target=spin, args=(0.002,)); t.start(); t.join()
"""

LINE = re.compile(r"wall (\S+) s  CPU (\S+) s  main (\S+)  long (.+)  short (\S+)")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], check=False,
                          capture_output=True, text=True, timeout=120)


def test_a_thread_is_charged_its_own_cpu() -> None:
    done = run("--repeat", "1", "--", sys.executable, "-c", BUSY)
    assert done.returncode == 0, done.stderr
    m = LINE.fullmatch(done.stdout.strip())
    assert m, done.stdout
    main, long, short = float(m[3]), m[4].split(), float(m[5])
    assert len(long) == 1 and 0.38 <= float(long[0]) <= 0.5
    assert main < 0.2  # the interpreter's start: not the spinning thread's time
    # The short threads' 0.04 s (a thread's time is counted in ticks of 10 ms, the total in
    # microseconds) in what the process spent beyond the threads seen.
    assert 0.02 <= short <= 0.2


def test_bad_usage_is_one_line() -> None:
    done = run("--repeat", "0", "--", "true")
    assert done.returncode == 2 and "--repeat must be at least 1, not 0" in done.stderr
    done = run()
    assert done.returncode == 2 and "no command given" in done.stderr
    done = run("--", "/nonexistent/command")
    assert (done.returncode, done.stderr) == (
        2, "thread_cpu: /nonexistent/command: No such file or directory\n")
    done = run("--", sys.executable, "-c", "raise SystemExit(3)")
    assert (done.returncode, done.stderr.strip()) == (
        1, "thread_cpu: the command exited with status 3")
