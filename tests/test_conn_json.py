"""`conns --json` and `--csv` written by the core from the tracker's columns
(``report.conns.json_lines`` and ``csv_lines``, crates/core/src/conn_json.rs and conn_csv.rs)
are the text ``json_line(record(c))`` and ``write_csv`` write for the Connections the same
tracker makes, byte for byte: on every capture of the project and of the public corpus, a
batch's block at a time (what `conns` streams) and in joined blocks, with flow shards in
threads (--workers), and on columns whose values were made to hit Python's JSON and CSV
corners (float exponents, escapes, quoting, absent values)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portlens.pipeline.run import Options, Pipeline, Source
from portlens.report.conns import csv_lines, json_line, json_lines, record, write_csv
from portlens.track import objects, rust
from portlens.track.config import TrackerConfig
from portlens.track.model import Connection
from portlens.track.states import Event, TcpState
from tests.corpus import corpus_captures, corpus_params, require_corpus
from tests.differential import OWN_CAPTURES

pytest.importorskip("portlens._core", reason="the Rust core is not built")

EXAMPLES = 3


FORMATS = ("json", "csv")
CSV_CONFIG = TrackerConfig(keep_transitions=False)
"""`conns --csv` keeps no transitions (cli/common.py ``tracker_config``)."""


def object_lines(conns: list[Connection], kind: str) -> str:
    """What `conns` wrote before: a Connection each, then its record and json.dumps, or
    its CSV row."""
    if kind == "json":
        return "".join(json_line(record(c)) + "\n" for c in conns)
    out = io.StringIO()
    write_csv(conns, out, header=False)
    return out.getvalue()


def record_text(path: Path, workers: int = 1, config: TrackerConfig | None = None,
                kind: str = "json") -> str:
    out: list[str] = []

    def sink(c: Connection) -> None:
        out.append(object_lines([c], kind))

    default = TrackerConfig() if kind == "json" else CSV_CONFIG
    Pipeline(Source.of(path), Options(workers=workers, tracker=config or default)).track(sink)
    return "".join(out)


def column_text(path: Path, workers: int = 1, block: int = 1,
                config: TrackerConfig | None = None, kind: str = "json") -> str:
    out: list[str] = []

    def columns(cols: dict[str, Any]) -> None:
        assert len(cols["uid"]) > 0
        if kind == "csv":
            out.append(csv_lines(cols))
            return
        assert len(cols["transitions.count"]) == len(cols["uid"])
        out.append(json_lines(cols))

    def sink(c: Connection) -> None:
        raise AssertionError("the Rust tracker in one process hands over columns")

    default = TrackerConfig() if kind == "json" else CSV_CONFIG
    Pipeline(Source.of(path), Options(workers=workers, tracker=config or default)).track(
        sink, on_columns=columns, column_block=block)
    return "".join(out)


def assert_same(path: Path, ref: str, fast: str) -> None:
    if ref == fast:
        return
    a, b = ref.splitlines(), fast.splitlines()
    diff = [f"{x!r}\n  != {y!r}" for x, y in zip(a, b, strict=False) if x != y]
    raise AssertionError(f"{path.name}: {len(a)} vs {len(b)} lines\n"
                         + "\n".join(diff[:EXAMPLES]))


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("path", OWN_CAPTURES, ids=lambda p: p.name)
def test_lines_equal_records_on_bundled_captures(path: Path, kind: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ref = record_text(path, kind=kind)
    assert_same(path, ref, column_text(path, kind=kind))
    # blocks joined from several batches (transitions.* concatenated with their rows)
    assert_same(path, ref, column_text(path, block=3, kind=kind))
    # the end of the capture handed over two rows at a time, each part with its transitions
    monkeypatch.setattr(rust, "FINISH_ROWS", 2)
    assert_same(path, ref, column_text(path, kind=kind))


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("path", corpus_params())
def test_lines_equal_records_on_public_captures(path: Path, kind: str) -> None:
    assert_same(path, record_text(path, kind=kind), column_text(path, kind=kind))


@pytest.mark.parametrize("path", corpus_params())
def test_json_lines_with_threads_equal_one_trackers_records(path: Path) -> None:
    ref = record_text(path)
    for n in (2, 3):
        assert_same(path, ref, column_text(path, workers=n))
    csv_ref = record_text(path, kind="csv")
    assert_same(path, csv_ref, column_text(path, workers=2, kind="csv"))


@pytest.mark.parametrize("path", corpus_params())
def test_json_lines_with_vlans_in_the_key_equal_records(path: Path) -> None:
    config = TrackerConfig(vlan_in_key=True)
    assert_same(path, record_text(path, config=config), column_text(path, config=config))


def test_the_comparison_sees_every_field() -> None:
    """The captures compared hold what each corner of a record writes, so equal texts say
    something: transitions, both handshake options, ICMP messages and errors, tunnels, VLANs
    (--vlan-key),
    durations in exponent form, unknown transports, a port without a service name."""
    seen: dict[str, int] = dict.fromkeys(
        ("transitions", "server_options", "no_mss", "icmp_code", "icmp_errors",
         "tunnel_parents", "vlan", "exponent", "unknown_transport", "no_service",
         "endpoint_resp", "rtt"), 0)
    for path in OWN_CAPTURES + corpus_captures():
        for line in record_text(path, config=TrackerConfig(vlan_in_key=True)).splitlines():
            r = json.loads(line)
            hs = r.get("handshake") or {}
            seen["transitions"] += bool(r["transitions"])
            seen["server_options"] += bool(hs.get("server_options"))
            seen["no_mss"] += bool(hs.get("client_options")
                                   and hs["client_options"]["mss"] is None)
            seen["icmp_code"] += r["icmp_code"] is not None
            seen["icmp_errors"] += bool(r["icmp_errors"])
            seen["tunnel_parents"] += bool(r["tunnel_parents"])
            seen["vlan"] += r["vlan"] is not None
            seen["exponent"] += '"duration":' in line and "e-" in line.split(
                '"duration":')[1].split(",")[0]
            seen["unknown_transport"] += r["proto"] == "unknown_transport"
            seen["no_service"] += r["proto"] in ("tcp", "udp") and r["port_service"] is None
            seen["endpoint_resp"] += any(t["endpoint"] == "resp" for t in r["transitions"])
            seen["rtt"] += hs.get("client_rtt_ns") is not None
    missing = [name for name, n in seen.items() if not n]
    assert not missing, f"no capture has: {missing}"


# --- made-up values: Python's JSON corners -----------------------------------------------------


def first_block(path: Path) -> dict[str, Any]:
    """Every connection of ``path`` as one block of columns with their transitions."""
    blocks: list[dict[str, Any]] = []
    Pipeline(Source.of(path), Options()).track(lambda c: None, on_columns=blocks.append,
                                               column_block=1 << 30)
    assert len(blocks) == 1
    return blocks[0]


def kept_of(cols: dict[str, Any]) -> dict[int, list[tuple[Any, ...]]]:
    """The block's transitions.* columns as RustTracker's ``kept`` (what `connections` takes):
    by serial, with the host that moved (the originator's for the endpoint "orig")."""
    from portlens.track.model import Segment

    states, events = list(TcpState), list(Event)
    kept: dict[int, list[tuple[Any, ...]]] = {}
    at = 0
    t = {k.removeprefix("transitions."): v.tolist() for k, v in cols.items()
         if k.startswith("transitions.")}
    for serial, orig, n in zip(cols["serial"].tolist(), cols["orig_host"].tolist(),
                               t["count"], strict=True):
        kept[serial] = [
            (t["ts_ns"][j], t["frame"][j], orig if t["endpoint"][j] == 0 else 1 - orig,
             events[t["event"][j]], states[t["from"][j]], states[t["to"][j]],
             Segment(t["flags"][j], t["seq"][j], t["ack"][j], t["payload"][j]))
            for j in range(at, at + n)]
        at += n
    return kept


ODD_TEXT = ["", "S", "-", "a,b", 'a"b\\c', "\n\r\t\b\f\x00\x1f\x7f", "é€ ~", "\U0001f600", "/<>&'"]


@pytest.mark.parametrize("seed", range(4))
def test_lines_equal_records_on_made_up_values(seed: int) -> None:
    """The rows of a capture with TCP, UDP and ICMP, their numbers and texts replaced by
    values Python's JSON writes in its own ways: times and durations from nanoseconds to
    centuries (exponents below 1e-4; seconds from nanoseconds in an i64 never reach 1e16),
    negative and absent values, strings with
    quotes, control characters and non-ASCII."""
    path = next(p for p in OWN_CAPTURES if p.name == "loopback-sample.pcap")
    cols = first_block(path)
    n = len(cols["uid"])
    rng = random.Random(seed)

    def times() -> list[int]:
        return [rng.choice([0, 1, 999, 1000, 1001, 50_000, 99_999, 100_000, 123_456_789,
                            -1, -1000, 10**18 + 7, 2**63 - 1, -(2**63),
                            rng.randrange(-(2**63), 2**63), rng.randrange(0, 10**12),
                            rng.randrange(1_600_000_000 * 10**9, 1_800_000_000 * 10**9)])
                for _ in range(n)]

    cols["ts_ns"] = np.array(times(), dtype=np.int64)
    cols["duration_ns"] = np.array(times(), dtype=np.int64)
    cols["vlan"] = np.array([rng.choice([rust.NO_VLAN, 0, 4095]) for _ in range(n)],
                            dtype=np.int32)
    cols["handshake.syn_ns"] = np.array(times(), dtype=np.int64)
    cols["handshake.ack_ns"] = np.array([rng.choice([rust.NONE64, 5, 2**63 - 1])
                                         for _ in range(n)], dtype=np.int64)
    for name in ("history", "community_id", "uid"):
        cols[name] = [rng.choice(ODD_TEXT) + v for v in cols[name]]
    cols["tunnel_parents"] = [tuple(rng.sample(ODD_TEXT, rng.randrange(3))) for _ in range(n)]
    cols["icmp_errors"] = [tuple((rng.randrange(256), rng.randrange(256))
                                 for _ in range(rng.randrange(3))) for _ in range(n)]
    conns = objects.connections(cols, kept_of(cols))
    ref = object_lines(conns, "json")
    assert all(f'"proto":"{p}"' in ref for p in ("tcp", "udp", "icmp"))
    assert "e-0" in ref and "\\u" in ref and '"transitions":[{' in ref
    assert_same(path, ref, json_lines(cols))
    # a part of the block
    lines = ref.splitlines(keepends=True)
    assert json_lines(cols, 1, 3) == "".join(lines[1:3])
    assert json_lines(cols, n, n + 5) == ""
    csv_ref = object_lines(conns, "csv")
    assert '"' in csv_ref and "\r" in csv_ref
    assert_same(path, csv_ref, csv_lines(cols))


def test_json_lines_refuse_a_block_without_its_transitions() -> None:
    cols = first_block(OWN_CAPTURES[0])
    del cols["transitions.count"]
    with pytest.raises(KeyError, match=r"transitions\.count"):
        json_lines(cols)
    cols = first_block(OWN_CAPTURES[0])
    cols["transitions.count"] = cols["transitions.count"] + 1
    with pytest.raises(ValueError, match="does not add up"):
        json_lines(cols)


# --- the command line ----------------------------------------------------------------------------

ALL_PROTOS = ("--proto", "tcp", "--proto", "udp", "--proto", "icmp", "--proto",
              "unknown_transport")
"""A filter that keeps every connection: `conns` then makes Connections (the record path)."""


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("name", ["loopback-sample.pcap", "tunnels.pcap", "empty"])
def test_conns_without_a_filter_writes_from_the_columns(
        name: str, kind: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`portlens conns --json|--csv FILE` writes what the record path writes, exit status
    and all, and makes no record or CSV row of a Connection on the way."""
    from portlens.cli import main
    from portlens.report import conns as report

    if name == "empty":
        path = tmp_path / "empty.pcap"
        path.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    else:
        path = next(p for p in OWN_CAPTURES if p.name == name)
    rc_ref = main(["conns", f"--{kind}", *ALL_PROTOS, str(path)])
    ref = capsys.readouterr().out

    def refuse(c: Connection) -> Any:
        raise AssertionError("a Connection made on the columns path")

    monkeypatch.setattr(report, "record", refuse)
    monkeypatch.setattr(report, "csv_row", refuse)
    rc = main(["conns", f"--{kind}", str(path)])
    out = capsys.readouterr().out
    assert (rc, out) == (rc_ref, ref)
    if kind == "csv":
        assert out.count("ts_ns") == 1, "one header"
    assert (rc == 1) == (name == "empty")


def test_transitions_are_held_only_while_their_connection_is_open() -> None:
    """The core keeps a connection's transitions until its row goes out, then forgets them:
    each block carries exactly its rows' transitions, and nothing is left at the end."""
    from portlens.pipeline.stages import new_tracker

    # 1,333 TCP connections reset one after the other: few open at once
    path = require_corpus() / "zeek-fddi-rst-repeats.pcap"
    pipeline = Pipeline(Source.of(path), Options(chunk_bytes=4096))
    tracker = new_tracker(TrackerConfig())
    assert isinstance(tracker, rust.RustTracker)
    taken = 0
    open_most = 0
    for batch in pipeline.packets(tracking=True):
        cols = tracker.feed_columns(batch)
        taken += int(cols["transitions.count"].sum())
        assert len(cols["transitions.ts_ns"]) == int(cols["transitions.count"].sum())
        open_most = max(open_most, tracker.core.kept_connections)
    for cols in tracker.finish_columns():
        taken += int(cols["transitions.count"].sum())
    assert tracker.core.kept_connections == 0
    assert tracker.kept == {}, "nothing kept on the Python side"
    conns = list(Pipeline(Source.of(path), Options()).connections())
    assert taken == sum(len(c.transitions) for c in conns) > 0
    assert open_most * 100 < sum(1 for c in conns if c.transitions)
