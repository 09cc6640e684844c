"""Issue 11's differential test on Hypothesis-generated TCP conversations: random interleavings
of handshakes, data, retransmissions, reordering, FIN/RST from either side, loss and sequence
number wraparound (tests/conversations.py builds them), written as a pcap and read through the
public API the command line uses (``portlens.open``).

The Rust tracker, with one worker and with two, must give every field of every connection and
every transition (and the not-counted and evicted counters) exactly as the Python reference
decoder and tracker (``reference=True``) on its full per-packet path; the reference's fast
paths must give the same records (in uid order: tests/test_rust_tracker.py ``by_uid``). The file
is read in batches of the default size or of a few frames, so batch boundaries fall anywhere.

The suite runs ``CONVERSATION_EXAMPLES`` examples (about half a minute here); set
``PORTLENS_CONVERSATION_EXAMPLES`` to run more, e.g. ``PORTLENS_CONVERSATION_EXAMPLES=5000
python -m pytest -q tests/test_tracker_conversations.py``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlens.api import Capture
from portlens.pipeline import Options, Pipeline, Source
from portlens.report.conns import record as conn_record
from portlens.track.timeouts import Timeouts
from portlens.track.tracker import TrackerConfig
from tests.conversations import Conversation, conversations

# (skips this module, as that one, when the Rust core is not built)
from tests.test_rust_tracker import by_uid, py_record, transition_row

CONVERSATION_EXAMPLES = int(os.environ.get("PORTLENS_CONVERSATION_EXAMPLES", "60"))

DEFAULT_CHUNK = Options().chunk_bytes
CHUNKS = (DEFAULT_CHUNK, DEFAULT_CHUNK, 64, 400, 3000)
"""Bytes read per batch: the default (a conversation in one batch), or a few frames a batch
(64 bytes: one frame each), so that batch boundaries fall everywhere."""

CONFIGS = {
    "default": TrackerConfig(),
    "checksums-drop": TrackerConfig(drop_bad_checksums=True),
    "short-tcp-timeouts": TrackerConfig(timeouts=Timeouts().with_seconds(
        tcp_inactivity=2, tcp_attempt=0.5, tcp_close=0, tcp_reset=0.1, tcp_partial_close=3)),
    "timeouts-off": TrackerConfig(timeouts=Timeouts().with_seconds(
        tcp_inactivity=0, tcp_attempt=0)),
    # The ladder's per-segment marks (every packet through the full per-packet path).
    "segment-marks": TrackerConfig(segment_marks=True),
    # Evictions in LRU order; each worker has its own cap, so one worker only.
    "max-flows-2": TrackerConfig(max_flows=2),
}


def run(path: Path, config: TrackerConfig, *, workers: int = 1, reference: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK) -> dict[str, Any]:
    """The run `portlens.open(path, config=..., workers=..., reference=...)` makes, reading
    ``chunk_bytes`` a batch (so a conversation spans one batch or many)."""
    cap = Capture(Pipeline(Source.of(path), Options(
        tracker=config, workers=workers, reference=reference, chunk_bytes=chunk_bytes)))
    # Every field of the tracker's Connection (py_record), plus what users read: the
    # `conns --json` objects (RTTs and the rest derived from them) and the ladder's marks.
    conns = [{**py_record(c), "json": conn_record(c), "marks": c.segment_marks}
             for c in cap.connections()]
    return {"conns": conns, "events": [transition_row(t) for t in cap.events()],
            "not_counted": dict(cap.pipeline.not_counted), "evicted": cap.pipeline.evicted}


def check(conversation: Conversation, name: str, chunk: int = DEFAULT_CHUNK) -> None:
    config = CONFIGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conversation.pcap"
        conversation.write_pcap(path)
        keep = os.environ.get("PORTLENS_CONVERSATION_KEEP")
        if keep:  # the last example tried (the shrunk one, when the test fails) as a pcap
            conversation.write_pcap(Path(keep) / f"conversation-{name}.pcap")
        want = run(path, dataclasses.replace(config, fast_paths=False), reference=True)
        got = run(path, config, chunk_bytes=chunk)
        assert got == want
        if name != "max-flows-2":
            # Shards come back in creation order (pipeline/shards.py), one process's rows in
            # the order they end: the rows, uids included, are the same.
            two = run(path, config, workers=2, chunk_bytes=chunk)
            assert by_uid(two.pop("conns")) == by_uid(want["conns"])
            assert two == {k: v for k, v in want.items() if k != "conns"}
            fast = run(path, config, reference=True, chunk_bytes=chunk)
            assert by_uid(fast["conns"]) == by_uid(want["conns"])
            assert fast["events"] == want["events"]


@settings(max_examples=CONVERSATION_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(conversation=conversations().filter(lambda c: bool(c.frames)),
       name=st.sampled_from(list(CONFIGS)), chunk=st.sampled_from(CHUNKS))
def test_rust_tracker_equals_reference_on_conversations(conversation: Conversation,
                                                         name: str, chunk: int) -> None:
    check(conversation, name, chunk)
