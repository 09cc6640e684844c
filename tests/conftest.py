"""Suite-wide set-up.

Tests send Ctrl-C (SIGINT) to the portlens processes they start. A shell that starts the suite
as a background job without job control (`cmd &` in a script, nohup, some CI runners) starts
it with SIGINT ignored, every child inherits that, and a Python started with SIGINT ignored
keeps ignoring it: those tests would then see portlens run to the end. With a handler of its
own here, the children start with the default action (exec resets handled signals), as they
would from a terminal."""

from __future__ import annotations

import signal
from pathlib import Path
from types import ModuleType

import pytest

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def bench_script() -> ModuleType:
    """scripts/bench.py as a module: the benchmark's capture generator and tunnels."""
    import importlib.util
    import sys

    bench_py = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
    spec = importlib.util.spec_from_file_location("portlens_bench_script", bench_py)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # dataclasses look their module up
    spec.loader.exec_module(bench)
    return bench


@pytest.fixture(scope="session")
def generated_20k(bench_script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the benchmark's mix (scripts/bench.py): connections end all along."""
    out = tmp_path_factory.mktemp("bench") / "20k.pcap"
    bench_script.generate(20_000, out, seed=3)
    return out
