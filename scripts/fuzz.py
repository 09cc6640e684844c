"""A longer fuzz run than the test suite's: mutated captures through the whole pipeline.

Every case takes a real capture (the project's own and the public corpus), mutates it (byte
and bit flips, cuts, duplicated or deleted spans, random record lengths), then reads, decodes
and tracks it. The only acceptable failure is a CaptureError (one line for the user); anything
else, or a case slower than --case-seconds, is reported with its seed so it can be replayed:

    python scripts/fuzz.py --cases 20000 --seed 1
    python scripts/fuzz.py --replay SEED
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import traceback
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--replay", type=int, help="run only the case with this seed")
    parser.add_argument("--case-seconds", type=float, default=20.0)
    args = parser.parse_args()
    corpus = inputs()
    seeds = [args.replay] if args.replay is not None else range(
        args.seed * 1_000_000, args.seed * 1_000_000 + args.cases)

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
