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

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlens.api import Capture
from portlens.pipeline import Options, Pipeline, Source
from portlens.report.conns import record as conn_record
from portlens.track.timeouts import Timeouts
from portlens.track.tracker import TrackerConfig
from tests.conversations import (
    ACK,
    CLIENTS_V6,
    SERVERS_V6,
    SYN,
    Conversation,
    conversations,
    tcp_frame,
)

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
        if name != "max-flows-2":  # each shard evicts its own (docs/scale.md)
            # Shards tracked in threads come back in one tracker's order (crates/core/src/
            # track/shards.rs): the rows, uids and order included, are the same, also where
            # the capture's time steps back.
            two = run(path, config, workers=2, chunk_bytes=chunk)
            assert two == want
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


# --- what the conversations found --------------------------------------------------------------

S = 10**9


def _time_steps_back(path: Path) -> None:
    """Flow A (10.0.0.2:40000 -> 10.0.1.2:80) sends a SYN at 0 s; flow B, another host pair
    (so the other shard of two), a packet at 10 s; then the capture's time steps back and A's
    SYN-ACK comes at 1 s. The clock is the latest time so far (10 s): A's attempt timer (5 s)
    fired before B's packet, so the SYN-ACK starts a connection of its own."""
    a, b = (bytes([10, 0, 0, 2]), bytes([10, 0, 1, 2])), (CLIENTS_V6[0], SERVERS_V6[0])
    t0 = 1_700_000_000 * S
    Conversation([
        (t0, tcp_frame(a[0], a[1], 40000, 80, SYN, 1000, 0, 65535, b"", 0)),
        (t0 + 10 * S, tcp_frame(b[0], b[1], 40000, 80, ACK, 5, 7, 65535, b"", 0)),
        (t0 + 1 * S, tcp_frame(a[1], a[0], 80, 40000, SYN | ACK, 5000, 1001, 65535, b"", 0)),
    ], []).write_pcap(path)


@pytest.mark.parametrize("reference", [False, True], ids=["rust", "reference"])
def test_shards_follow_a_clock_that_steps_back(tmp_path: Path, reference: bool) -> None:
    """Found by the conversations (and reduced): a shard's tracker saw only its own packets'
    times, so where the capture's time stepped back it had not fired the timers that one
    tracker of everything had fired on another flow's later packet, and with --workers 2 the
    SYN-ACK joined the SYN's connection (one "Sh" row instead of "S" and "^h"). A shard's
    tracker now takes every shard's packets, the others' only moving its clock (the core's
    ``feed_shard``), and every tracker fires every timer due by its clock before each packet, as
    Zeek does (also before one of an earlier time)."""
    path = tmp_path / "time-steps-back.pcap"
    _time_steps_back(path)
    config = TrackerConfig(fast_paths=False)
    want = run(path, config, reference=True)
    assert [(r["orig_h"], r["history"], r["conn_state"], r["end_reason"])
            for r in want["conns"]] == [
        ("10.0.0.2", "S", "S0", "idle"), ("2001:db8::1", "A", "OTH", "end-of-capture"),
        ("10.0.0.2", "^h", "OTH", "end-of-capture")]
    for workers in (1, 2):
        got = run(path, config, workers=workers, reference=reference)
        assert by_uid(got["conns"]) == by_uid(want["conns"])


def _past_due_then_another_shard(path: Path) -> None:
    """A connection of host pair A sends at 0 s; the time steps back 400 s and another
    connection of A (port 40001) starts, its inactivity deadline (300 s on) already behind the
    clock (0 s); then a packet of host pair B, the other shard of two. One process fires that
    timer before B's packet (A's second connection ends idle); the shard of A sees no later
    packet of its own and no later time, and ends it at the end of the capture."""
    a, b = (bytes([10, 0, 0, 2]), bytes([10, 0, 1, 2])), (CLIENTS_V6[0], SERVERS_V6[0])
    t0 = 1_700_000_000 * S
    Conversation([
        (t0, tcp_frame(a[0], a[1], 40000, 80, ACK, 1000, 7, 65535, b"", 0)),
        (t0 - 400 * S, tcp_frame(a[0], a[1], 40001, 80, ACK, 1000, 7, 65535, b"", 0)),
        (t0 - 400 * S, tcp_frame(b[0], b[1], 40000, 80, ACK, 5, 7, 65535, b"", 0)),
    ], []).write_pcap(path)


def test_shards_fire_past_due_timers_at_other_shards_packets(tmp_path: Path) -> None:
    path = tmp_path / "past-due.pcap"
    _past_due_then_another_shard(path)
    config = TrackerConfig(fast_paths=False)
    want = run(path, config, reference=True)
    assert [(r["orig_p"], r["end_reason"]) for r in want["conns"]] == [
        (40001, "idle"), (40000, "end-of-capture"), (40000, "end-of-capture")]
    assert by_uid(run(path, config, workers=2)["conns"]) == by_uid(want["conns"])
