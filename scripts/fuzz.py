"""A longer fuzz run than the test suite's: mutated captures through the whole pipeline, and
through the command line users run.

Every case takes a real capture (the project's own and the public corpus), mutates it (byte
and bit flips, cuts, duplicated or deleted spans, random record lengths), then reads, decodes
and tracks it. The only acceptable failure is a CaptureError (one line for the user); anything
else, or a case slower than --case-seconds, is reported with its seed so it can be replayed:

    python scripts/fuzz.py --cases 20000 --seed 1
    python scripts/fuzz.py --replay SEED

With ``--cli`` each case is one run of the command line (``portlens.cli.main``) on the mutated
file, cycling through the reports in ``CLI_RUNS``, in a child process forked from this one
(imports done once, so a run costs what the command costs, not an interpreter start) under
per-run limits: ``--case-seconds`` of CPU time (RLIMIT_CPU: the kernel ends the run with
SIGXCPU, a *hang*; CPU rather than wall time, because on a shared machine at nice 19 a run can
wait for a CPU longer than it runs), a wall-clock guard of six times that for a run that
blocks without computing (SIGKILL, a hang too), and ``--memory-mb`` of data segment
(RLIMIT_DATA, which covers heap and private mappings; an allocation past it fails, and a run
whose peak RSS, read with wait4, passes the limit is *over-memory*). A run must exit 0, 1 or
2 with no traceback on stderr; anything else (another status, a signal, "Traceback") is a
*crash*, kept under --keep with its seed:

    nice -n 19 python scripts/fuzz.py --cli --cases 20000 --seed 21 --case-seconds 10 \
        --memory-mb 1024 --keep /tmp/fuzz-cli
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from portlens.decode import Decoder
from portlens.pipeline import new_tracker
from portlens.sources.files import CaptureError, open_capture

REPO = Path(__file__).resolve().parent.parent


def inputs() -> list[bytes]:
    paths = sorted((REPO / "captures").glob("*.pcap*")) + sorted((REPO / "captures").glob("*.cap"))
    corpus = Path(os.environ.get("PORTLENS_CORPUS", REPO.parent / "shared" / "captures" / "public"))
    if corpus.is_dir():
        paths += [p for p in sorted(corpus.glob("*.pcap*")) if p.stat().st_size < 200_000]
    return [p.read_bytes() for p in paths]


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        if not b:
            break
        i = rng.randrange(len(b))
        if op == 0:
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            del b[i:]
        elif op == 3:
            j = min(len(b), i + rng.randint(1, 64))
            b[i:i] = b[i:j]
        elif op == 4:
            del b[i:i + rng.randint(1, 64)]
        else:  # a record or block length field: 4 random bytes
            b[i:i + 4] = rng.randbytes(4)
    return bytes(b)


def run_case(data: bytes, path: Path) -> str:
    path.write_bytes(data)
    decoder, tracker = Decoder(), new_tracker()  # the ones every command uses (Rust)
    try:
        with open_capture(path, chunk_bytes=4096) as reader:
            for frames in reader:
                tracker.feed(decoder.decode(frames))
    except CaptureError:
        tracker.finish()
        return "capture-error"
    tracker.finish()
    return "ok"


class CaseTimeoutError(Exception):
    pass


CLI_RUNS: tuple[tuple[str, ...], ...] = (
    ("packets",), ("packets", "--stats"), ("conns",), ("ports",), ("handshakes",),
    ("sockets",), ("events",), ("hosts",), ("convs",), ("conns", "--json"),
    ("ports", "--json"), ("packets", "--json"),
)
"""The reports a --cli case runs, one per case in turn (each reads, decodes and tracks)."""


@dataclass
class CliTally:
    """What a --cli campaign saw: runs by exit status, and the findings."""

    runs: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)
    """Runs by finding: crash, hang, over-memory."""
    max_rss_mb: float = 0.0
    slowest_s: float = 0.0


def run_cli_case(argv: list[str], out_dir: Path, seconds: float, memory_mb: int
                 ) -> tuple[str, int, float, float]:
    """One forked run of the command line: (outcome, status, peak RSS MB, CPU seconds)."""
    err_path = out_dir / "stderr.txt"
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: limits, stdout nowhere, stderr kept, then the command line
        code = 70
        try:
            limit = memory_mb << 20
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
            cpu = max(1, round(seconds))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            devnull = os.open(os.devnull, os.O_WRONLY)
            err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(devnull, 1)
            os.dup2(err, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            from portlens.cli import main as cli_main

            code = cli_main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # anything escaping main is the finding
            traceback.print_exc()
            sys.stderr.flush()
            code = 70
        os._exit(code)
    deadline = started + 6 * seconds
    hung = False
    while True:
        done, wait_status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            _, wait_status, usage = os.wait4(pid, 0)
            hung = True
            break
        time.sleep(0.005)
    took = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024
    status = os.waitstatus_to_exitcode(wait_status)
    try:
        stderr = err_path.read_text(errors="replace")
    except OSError:
        stderr = ""
    if hung or status == -signal.SIGXCPU or took > seconds:
        return "hang", status, rss_mb, took
    if "MemoryError" in stderr or rss_mb > memory_mb:
        return "over-memory", status, rss_mb, took
    if status not in (0, 1, 2) or "Traceback" in stderr:
        return "crash", status, rss_mb, took
    return "ok", status, rss_mb, took


def cli_campaign(args: argparse.Namespace, corpus: list[bytes], seeds: range | list[int]) -> int:
    tally = CliTally()
    started = time.monotonic()
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    stop: list[int] = []
    # SIGTERM ends the campaign after the run in progress, with the summary of the runs made.
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = work / "case.pcap"
        for n, seed in enumerate(seeds):
            if stop:
                break
            rng = random.Random(seed)
            path.write_bytes(mutate(rng.choice(corpus), rng))
            argv = [*CLI_RUNS[seed % len(CLI_RUNS)], str(path)]
            outcome, status, rss_mb, took = run_cli_case(argv, work, args.case_seconds,
                                                         args.memory_mb)
            tally.runs += 1
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            tally.max_rss_mb = max(tally.max_rss_mb, rss_mb)
            tally.slowest_s = max(tally.slowest_s, took)
            if outcome != "ok":
                tally.findings[outcome] = tally.findings.get(outcome, 0) + 1
                print(f"seed {seed}: {outcome} (status {status}, {rss_mb:.0f} MB, "
                      f"{took:.1f} CPU s)"
                      f" portlens {' '.join(argv[:-1])} FILE (replay: --cli --replay {seed})",
                      file=sys.stderr)
                if keep is not None:
                    (keep / f"{seed}.pcap").write_bytes(path.read_bytes())
                    (keep / f"{seed}.stderr").write_bytes((work / "stderr.txt").read_bytes())
            if args.progress and (n + 1) % args.progress == 0:
                print(f"{n + 1} runs, {time.monotonic() - started:.0f} s", file=sys.stderr,
                      flush=True)
    elapsed = time.monotonic() - started
    print(f"{tally.runs} CLI runs ({len(corpus)} inputs mutated, {len(CLI_RUNS)} reports) in "
          f"{elapsed:.0f} s: exit status "
          + ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items()))
          + f"; {tally.findings.get('crash', 0)} crashes, {tally.findings.get('hang', 0)} hangs "
          f"(over {args.case_seconds:g} CPU s), {tally.findings.get('over-memory', 0)} over "
          f"{args.memory_mb} MB; peak RSS {tally.max_rss_mb:.0f} MB, "
          f"slowest run {tally.slowest_s:.1f} CPU s")
    return 1 if tally.findings else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", type=int, help="run only the case with this seed")
    parser.add_argument("--case-seconds", type=float, default=20.0)
    parser.add_argument("--cli", action="store_true",
                        help="run each case through the command line (see the module's help)")
    parser.add_argument("--memory-mb", type=int, default=1024,
                        help="--cli: the data-segment limit of a run, MB (default 1024)")
    parser.add_argument("--keep", metavar="DIR",
                        help="--cli: keep each failing input and its stderr here")
    parser.add_argument("--progress", type=int, default=0, metavar="N",
                        help="--cli: a line on stderr every N runs")
    args = parser.parse_args()
    corpus = inputs()
    seeds = [args.replay] if args.replay is not None else range(
        args.seed * 1_000_000, args.seed * 1_000_000 + args.cases)
    if args.cli:
        return cli_campaign(args, corpus, seeds)

    def alarm(*_: object) -> None:
        raise CaseTimeoutError

    signal.signal(signal.SIGALRM, alarm)
    outcomes: dict[str, int] = {}
    failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.bin"
        for seed in seeds:
            rng = random.Random(seed)
            data = mutate(rng.choice(corpus), rng)
            signal.setitimer(signal.ITIMER_REAL, args.case_seconds)
            try:
                outcome = run_case(data, path)
            except CaseTimeoutError:
                outcome = "TIMEOUT"
            except Exception:
                outcome = "CRASH"
                traceback.print_exc()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome in ("CRASH", "TIMEOUT"):
                failures += 1
                print(f"seed {seed}: {outcome} (replay: --replay {seed})", file=sys.stderr)
    elapsed = time.monotonic() - started
    print(f"{sum(outcomes.values())} cases in {elapsed:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
