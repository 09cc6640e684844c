"""`portlens.open(source)`: files, lists, directories alike; views with records() equal to
the command's --json and to_pandas() with the same names, exact times and one NA rule."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import portlens
from portlens import api
from portlens.cli import main
from portlens.report.dataframes import flatten

pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
SAMPLE = str(CAPTURES / "loopback-sample.pcap")
SESSION = str(CAPTURES / "tcp-session.pcap")


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(list(argv)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_string_path_is_one_file_everywhere() -> None:
    """api.packets("x.pcap") once iterated the characters of the name."""
    assert sum(len(b) for b in api.packets(SAMPLE)) == 59
    assert sum(len(b) for b in api.packets(Path(SAMPLE))) == 59
    assert api.capture_stats(SESSION).frames == 10
    assert len(api.analyze(SESSION).connections) == 1
    assert len(portlens.open(SAMPLE).connections()) == 8


def test_a_name_that_is_an_interface_is_a_live_source(tmp_path: Path) -> None:
    """nfstream's rule: a path that exists is a file; a name that is no file but a network
    interface is captured live (nothing is captured until a view is asked for)."""
    assert portlens.open("lo").pipeline.source.is_live
    assert portlens.open(interface="lo").pipeline.source.live.interface == "lo"  # type: ignore[union-attr]
    (tmp_path / "lo").write_bytes(Path(SESSION).read_bytes())
    cap = portlens.open(tmp_path / "lo")
    assert not cap.pipeline.source.is_live and len(cap.connections()) == 1
    missing = portlens.open(str(tmp_path / "nothing.pcap"))
    with pytest.raises(portlens.api.CaptureError, match="cannot open"):
        missing.connections()
    with pytest.raises(ValueError, match="not both"):
        portlens.open(SESSION, interface="lo")


def test_lists_and_directories_are_one_capture(tmp_path: Path) -> None:
    (tmp_path / "a.pcap").write_bytes(Path(SAMPLE).read_bytes())
    (tmp_path / "b.pcap").write_bytes(Path(SESSION).read_bytes())
    by_dir = portlens.open(tmp_path)
    by_list = portlens.open([SESSION, Path(SAMPLE)])
    assert [c.uid for c in by_dir.connections()] == [c.uid for c in by_list.connections()]
    assert len(by_dir.connections()) == 9
    assert [f.frames for f in by_dir.files] == [59, 10]


def test_views_equal_the_commands_json(capsys: pytest.CaptureFixture[str]) -> None:
    cap = portlens.open(SAMPLE, filter="tcp or udp")
    assert cap.connections().records() == cli_json(capsys, "conns", "--json", "-f",
                                                   "tcp or udp", SAMPLE)
    *ports, summary = cli_json(capsys, "ports", "--json", "-f", "tcp or udp", SAMPLE)
    assert [{"type": "port", **r} for r in cap.ports().records()] == ports
    assert cap.ports().total.record() == summary["total"]
    assert cap.handshakes().records() == cli_json(capsys, "handshakes", "--json", SAMPLE)
    assert cap.sockets().records() == cli_json(capsys, "sockets", "--json", SAMPLE)
    assert cap.events().records() == cli_json(capsys, "events", "--json", SAMPLE)
    assert list(cap.packets().records()) == cli_json(capsys, "packets", "--json", "-f",
                                                     "tcp or udp", SAMPLE)


def test_workers_give_the_same_connections() -> None:
    one = portlens.open(SAMPLE).connections().records()
    two = portlens.open(SAMPLE, workers=2).connections().records()
    assert sorted(one, key=lambda r: r["uid"]) == sorted(two, key=lambda r: r["uid"])
    assert len(portlens.open(SAMPLE, workers=2).events()) == len(portlens.open(SAMPLE).events())


def _plain(value: Any) -> Any:
    """A DataFrame cell as the JSON value it stands for."""
    if value is pd.NA or value is pd.NaT or value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.value
    if isinstance(value, pd.Timedelta):
        return value.value
    if hasattr(value, "item"):
        return value.item()
    return value


def _json_ns(name: str, value: Any) -> Any:
    """JSON's ts/duration (seconds, microseconds) as the DataFrame's nanoseconds."""
    if name in ("ts", "duration") and value is not None:
        return round(value * 1e6) * 1000
    return value


def test_connections_frame_is_the_json_flattened() -> None:
    """Column names are the JSON names (nested ones dotted); every value is the JSON value;
    times are datetime64[ns, UTC] and durations timedelta64[ns], exact to the ns."""
    cap = portlens.open(SAMPLE)
    frame = cap.connections().to_pandas()
    records = [flatten({k: v for k, v in r.items() if k != "transitions"})
               for r in cap.connections().records()]
    assert len(frame) == len(records) == 8
    names = set().union(*records)
    parents = {n.rsplit(".", 1)[0] for n in names if "." in n}
    assert set(frame.columns) == names - parents
    for i, rec in enumerate(records):
        for name in frame.columns:
            assert _plain(frame[name].iloc[i]) == _json_ns(name, rec.get(name)), name
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["ts_ns"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["duration_ns"].dtype) == "timedelta64[ns]"
    assert str(frame["handshake.server_rtt_ns"].dtype) == "timedelta64[ns]"
    assert str(frame["handshake.syn_ns"].dtype) == "datetime64[ns, UTC]"
    assert frame["ts_ns"].iloc[0].value == 1795243928087880000
    assert str(frame["orig_pkts"].dtype) == "Int64" and str(frame["uid"].dtype) == "string"
    # one missing-value rule: NA (NaT for times), never None or NaN
    refused = frame[frame["conn_state"] == "REJ"].iloc[0]
    assert refused["handshake.server_rtt_ns"] is pd.NaT
    assert refused["handshake.server_options.mss"] is pd.NA
    udp = frame[frame["proto"] == "udp"].iloc[0]
    assert udp["handshake.outcome"] is pd.NA and udp["vlan"] is pd.NA


def test_packet_frame_is_the_packets_json(capsys: pytest.CaptureFixture[str]) -> None:
    """One row per frame, `packets --json` keys as columns, on captures with tunnels, ICMP
    errors, fragments and VLANs: every JSON value is in its cell; absent keys are NA (TCP
    rows say sack_perm False where JSON leaves it out)."""
    for name in ("tunnels.pcap", "icmp.pcap", "fragments.pcap", "loopback-sample.pcap",
                 "malformed.pcap"):
        path = str(CAPTURES / name)
        frame = portlens.open(path).packets().to_pandas()
        records = [flatten(r) for r in cli_json(capsys, "packets", "--json", path)]
        assert len(frame) == len(records)
        for i, rec in enumerate(records):
            row = {k: _plain(v) for k, v in frame.iloc[i].items()}
            cells = {k: v for k, v in row.items() if v is not None}
            if "flags" in rec and "sack_perm" not in rec:  # a decoded TCP header
                assert cells.pop("sack_perm") is False
            if isinstance(rec.get("proto"), int):  # JSON: the number; frame: as text
                rec = {**rec, "proto": str(rec["proto"])}
            assert cells == rec, (name, i)
    assert str(frame["ts_ns"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["sport"].dtype) == "Int64" and str(frame["flags_text"].dtype) == "string"


def test_flags_as_text() -> None:
    frame = portlens.open(SESSION).packets().to_pandas()
    assert frame["flags_text"].tolist() == ["S", "SA", "A", "PA", "A", "PA", "A", "FA", "FA",
                                            "A"]
    assert frame["flags"].tolist() == [2, 18, 16, 24, 16, 24, 16, 17, 17, 16]


def test_empty_results_still_have_their_columns() -> None:
    cap = portlens.open(SAMPLE, filter="port 9")
    assert list(cap.connections().to_pandas().columns[:4]) == [
        "ts", "ts_ns", "uid", "id.orig_h"]
    assert len(cap.ports().to_pandas()) == 0 and "conns" in cap.ports().to_pandas().columns
    assert len(cap.packets().to_pandas()) == 0


def test_bad_input_raises_after_what_was_read(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(SESSION).read_bytes()[:-30])
    cap = portlens.open(cut)
    with pytest.raises(portlens.api.CaptureError, match=r"cut\.pcap"):
        cap.connections()
    assert cap.errors and len(cap.errors) == 1


def test_the_readme_recipe_prints_what_the_readme_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's pandas recipe, run from the repository root, prints exactly the output the
    README shows under it."""
    readme = (REPO / "README.md").read_text()
    m = re.search(r"```python\n(?P<code>.*?)```\n\nprints:\n\n```text\n(?P<out>.*?)```",
                  readme, re.DOTALL)
    assert m, "README has a ```python recipe followed by 'prints:' and a ```text block"
    monkeypatch.chdir(REPO)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(m.group("code"), "README.md", "exec"), {})
    assert printed.getvalue() == m.group("out")


def test_an_interface_is_opened_like_a_file() -> None:
    """open(interface="lo", filter=..., count=3): the capture ends after the third matching
    packet and the views are built from it, as from a file."""
    import socket
    import threading

    from tests.test_live import SKIP

    if SKIP is not None:
        pytest.skip(SKIP)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    done = threading.Event()

    def send() -> None:  # until the capture has its packets: no guessing when it is ready
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not done.wait(0.05):
                s.sendto(b"ping", ("127.0.0.1", port))

    sender = threading.Thread(target=send, daemon=True)
    cap = portlens.open(interface="lo", filter=f"udp dst port {port}", count=3, duration=30)
    sender.start()
    try:
        conns = cap.connections()
    finally:
        done.set()
        sender.join()
        receiver.close()
    assert [(c.proto, c.resp_p, c.orig_pkts, c.resp_pkts, c.orig_bytes) for c in conns] == [
        ("udp", port, 3, 0, 12)]
    assert cap.pipeline.live_session is not None
    assert cap.pipeline.live_session.counters.stopped_by == "count"
    frame = conns.to_pandas()
    assert frame["id.resp_p"].tolist() == [port]


def test_checksums_are_verified_where_they_are_read(capsys: pytest.CaptureFixture[str]) -> None:
    """Packets show them; tracking reads them only to drop bad ones (Zeek without -C): the
    sample's TCP checksums are bad (offloaded on lo) but one RST's, so dropping them leaves
    TCP rows with history C and that one packet."""
    from portlens.track.tracker import TrackerConfig

    frame = portlens.open(SAMPLE).packets().to_pandas()
    assert frame["checksum.tcp"].value_counts().to_dict() == {"bad": 54, "good": 1}
    dropped = portlens.open(SAMPLE, config=TrackerConfig(drop_bad_checksums=True))
    assert dropped.connections().records() == cli_json(capsys, "conns", "--json",
                                                       "--checksums", "drop", SAMPLE)
    tcp = [c for c in dropped.connections() if c.proto == "tcp"]
    assert sum(c.orig_pkts + c.resp_pkts for c in tcp) == 1
    assert all("C" in c.history for c in tcp)
    assert len(portlens.open(SAMPLE).connections()) == 8
