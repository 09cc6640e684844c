"""The scenario captures (captures/scenario-*.pcap) give the connections their scenario implies.

``scripts/make_scenarios.py`` writes each capture and its
``captures/expected/scenario-NAME.conns.json``: per expected connection, in order of its first
packet, the keys of ``portlens conns --format json`` whose values follow from the scenario
(Zeek's rules in docs/zeek-rules.md, the RFC 9293 observer table in track/states.py,
Wireshark's sequence-analysis flags). Keys not listed are not checked. A dotted key names a
nested value (``handshake.outcome`` is ``obj["handshake"]["outcome"]``) unless the object has
the dotted key itself (``id.orig_h``); ``transitions`` is compared as the list of
``[endpoint, event, from, to]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
SCRIPT = REPO / "scripts" / "make_scenarios.py"
EXPECTED = sorted((CAPTURES / "expected").glob("scenario-*.conns.json"))

MAX_ADDED_BYTES = 100 * 1024
"""Scenario captures and their expectations together stay this small."""

_MISSING = object()


def load_spec(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text())
    return spec


def run_conns(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """``portlens conns --format json FILE`` in-process: one JSON object per connection."""
    from portlens.cli import main

    capsys.readouterr()  # drop anything printed before
    rc = main(["conns", "--format", "json", str(path)])
    out = capsys.readouterr().out
    assert rc == 0, f"portlens conns --format json {path.name} exited {rc}"
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    # in order of the first packet, whatever order the connections ended in
    return sorted(rows, key=lambda row: row.get("ts_ns", row.get("ts", 0)))


def lookup(obj: dict[str, Any], key: str) -> Any:
    """obj[key], or for a dotted key not present as such, the nested value it names."""
    if key in obj:
        return obj[key]
    head, dot, rest = key.partition(".")
    if dot and isinstance(obj.get(head), dict):
        return lookup(obj[head], rest)
    return _MISSING


def transition_list(got: Any) -> Any:
    if not isinstance(got, list):
        return got
    return [[t.get("endpoint"), t.get("event"), t.get("from"), t.get("to")]
            if isinstance(t, dict) else t for t in got]


def conn_problems(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    problems = []
    for key, want in expected.items():
        value = lookup(got, key)
        if value is _MISSING:
            problems.append(f"{key}: expected {want!r}, missing")
            continue
        if key == "transitions":
            value = transition_list(value)
            if value != want:
                problems.append("transitions differ:\n      expected " + "\n               ".join(
                    map(str, want)) + "\n      got      " + "\n               ".join(
                    map(str, value)))
            continue
        if value != want:
            problems.append(f"{key}: expected {want!r}, got {value!r}")
    return problems


def label(conn: dict[str, Any]) -> str:
    return (f"{conn.get('proto')} {conn.get('id.orig_h')}:{conn.get('id.orig_p')} -> "
            f"{conn.get('id.resp_h')}:{conn.get('id.resp_p')}")


def test_expected_files_exist() -> None:
    assert len(EXPECTED) >= 20, "captures/expected/scenario-*.conns.json: run make_scenarios.py"
    for path in EXPECTED:
        spec = load_spec(path)
        assert (CAPTURES / spec["file"]).is_file(), f"{path.name} names a missing capture"
        assert spec["connections"], f"{path.name} expects no connection"
        for conn in spec["connections"]:
            for t in conn.get("transitions", []):
                assert len(t) == 4 and t[0] in ("orig", "resp"), (path.name, t)


@pytest.mark.parametrize("spec_path", EXPECTED, ids=lambda p: p.name.split(".")[0])
def test_connections_match_expected(spec_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_spec(spec_path)
    rows = run_conns(CAPTURES / spec["file"], capsys)
    expected = spec["connections"]
    problems = []
    if len(rows) != len(expected):
        problems.append(f"{len(rows)} connections printed, {len(expected)} expected: "
                        + "; ".join(label(r) for r in rows))
    for i, (want, got) in enumerate(zip(expected, rows, strict=False), 1):
        problems += [f"conn {i} ({label(want)}) {p}" for p in conn_problems(want, got)]
    assert not problems, f"{spec['file']} ({spec['description']}):\n" + "\n".join(problems)


def test_scenarios_stay_small() -> None:
    files = list(CAPTURES.glob("scenario-*")) + EXPECTED
    total = sum(p.stat().st_size for p in files)
    assert total < MAX_ADDED_BYTES, f"scenario files take {total} bytes"


def test_make_scenarios_is_deterministic(tmp_path: Path) -> None:
    """Re-running the script reproduces the checked-in captures and expectations exactly."""
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("scenario-*")
                       if p.is_file())
    assert len(generated) >= 40, "the script wrote too little"
    differing = []
    for rel in generated:
        checked_in = CAPTURES / rel
        if not checked_in.is_file():
            differing.append(f"{rel}: not checked in")
        elif checked_in.read_bytes() != (tmp_path / rel).read_bytes():
            differing.append(f"{rel}: differs")
    stale = {p.relative_to(CAPTURES) for p in CAPTURES.rglob("scenario-*")} - set(generated)
    differing += [f"{rel}: no longer generated" for rel in sorted(stale)]
    assert not differing, "re-run scripts/make_scenarios.py and commit:\n" + "\n".join(differing)
