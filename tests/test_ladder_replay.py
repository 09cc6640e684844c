"""A ladder's marks and states replayed at once where no counter moved (analysis/ladder.py
``_replay_marks``) against the replay one segment at a time for every connection: the same
steps, marks and states, for every connection of every bundled capture and every capture of
the public corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from portlens.analysis import ladder as ladder_module
from portlens.analysis.ladders import ladders
from portlens.pipeline.run import Options, Pipeline, Source
from portlens.track.config import TrackerConfig
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
