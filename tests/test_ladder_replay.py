"""The HTML report's ladders made the short ways against the long ways, for every connection
of every bundled capture and every capture of the public corpus: marks and states replayed at
once where no counter moved (analysis/ladder.py ``_replay_marks``) against the replay one
segment at a time, and the ladders' pass over the frames PairFrames names against the pass
over every frame."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from portlens.analysis import ladder as ladder_module
from portlens.analysis.ladders import PairFrames, ladders
from portlens.decode.packets import PacketBatch
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track.config import TrackerConfig
from portlens.track.model import Connection
from tests.corpus import corpus_params
from tests.differential import OWN_CAPTURES

pytest.importorskip("portlens._core", reason="the Rust core is not built")


def check(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline(Source.of(path), Options(tracker=TrackerConfig(keep_transitions=False)))
    conns = list(pipeline.connections())
    fast = ladders(conns, pipeline.packets())
    with monkeypatch.context() as m:
        m.setattr(ladder_module, "WHOLE_REPLAY_FIRST", False)
        slow = ladders(conns, pipeline.packets())
    assert set(fast) == set(slow) == {c.uid for c in conns}
    for uid, lad in slow.items():
        assert fast[uid].steps == lad.steps, uid
        assert (fast[uid].orig_initial, fast[uid].resp_initial) == (
            lad.orig_initial, lad.resp_initial), uid


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_bundled_capture(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check(path, monkeypatch)


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_capture(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check(path, monkeypatch)


def check_frames(path: Path) -> None:
    """The ladders' pass over only the frames PairFrames names gives the ladders of the pass
    over every frame (a third of the connections, so that frames are left out), and those
    frames decode to the rows of the full pass (pipeline Options.frames); captures whose
    fragments reached the reassembler are read whole by the report, and are skipped here."""
    options = Options(tracker=TrackerConfig(keep_transitions=False), checksums=True)
    pipeline = Pipeline(Source.of(path), options)
    pairs = PairFrames()
    conns: list[Connection] = []
    pipeline.track(conns.append, on_packets=pairs.add)
    if any(pipeline.fragment_counters.values()):
        return
    chosen = conns[::3]
    frames = pairs.frames(chosen)
    only = Pipeline(Source.of(path), replace(options, frames=frames))
    whole = ladders(chosen, pipeline.first_pass().packets())
    part = ladders(chosen, only.packets())
    assert set(whole) == set(part) == {c.uid for c in chosen}
    for uid, lad in whole.items():
        assert part[uid].steps == lad.steps, uid
    rows = list(only.packets())
    got = PacketBatch.concat(rows) if rows else PacketBatch.allocate(0)
    every = PacketBatch.concat(list(pipeline.first_pass().packets()))
    kept = every.take(np.flatnonzero(np.isin(every.frame, frames)))
    assert set(got.frame.tolist()) == set(frames.tolist())
    for name in PacketBatch.column_names():
        assert np.array_equal(getattr(got, name), getattr(kept, name)), name


@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_bundled_capture_frames(path: Path) -> None:
    check_frames(path)


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_capture_frames(path: Path) -> None:
    check_frames(path)
