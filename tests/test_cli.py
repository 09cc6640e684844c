"""The command line as users meet it: filters, default command, errors, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portlens.cli import main

SAMPLE = str(Path(__file__).resolve().parent.parent / "captures" / "loopback-sample.pcap")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_filter_selects_before_tracking(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "conns", "--json", "-f", "udp", SAMPLE)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0
    assert [(r["proto"], r["id.resp_p"], r["conn_state"]) for r in rows] == [
        ("udp", 18053, "SF"), ("udp", 18054, "S0")]


def test_filter_that_selects_nothing_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "conns", "--json", "-f", "port 9", SAMPLE)
    assert (rc, out) == (1, "")


@pytest.mark.parametrize("fmt", [[], ["--json"]], ids=["lines", "json"])
def test_packets_that_lists_nothing_exits_1_as_every_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: list[str]) -> None:
    # A filter that selects nothing, and a capture with no frame (the header alone).
    assert run(capsys, "packets", *fmt, "-f", "port 9", SAMPLE)[:2] == (1, "")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(Path(SAMPLE).read_bytes()[:24])
    assert run(capsys, "packets", *fmt, str(empty))[:2] == (1, "")
    rc, out, _ = run(capsys, "packets", *fmt, "-f", "udp", SAMPLE)
    assert rc == 0 and out.count("\n") > 0


def test_bad_filter_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "-f", "tcp and prot", SAMPLE)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("portlens: filter: ")


def test_default_command_is_ports_even_with_options_first(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "-f", "tcp", "--json", SAMPLE)
    rows = [json.loads(line) for line in out.splitlines()]
    ports = {(r["proto"], r["port"]) for r in rows if r["type"] == "port"}
    assert rc == 0 and ports == {("tcp", 18080), ("tcp", 18081)}


def test_workers_give_the_same_connections(capsys: pytest.CaptureFixture[str]) -> None:
    def conns(*extra: str) -> list[tuple[object, ...]]:
        _, out, _ = run(capsys, "conns", "--json", *extra, SAMPLE)
        return sorted((r["uid"], r["history"], r["orig_pkts"], r["resp_bytes"])
                      for r in map(json.loads, out.splitlines()))

    assert conns("--workers", "2") == conns()


def test_not_a_capture_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    rc, out, err = run(capsys, "conns", str(bad))
    assert rc == 2 and out == ""
    assert err == f"portlens: {bad}: not a pcap or pcapng file (starts with 68 65 6c 6c)\n"


def test_bad_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "conns", "--timeout", "tcp_inactivity=soon", SAMPLE)
    assert rc == 2 and "not a number" in err


def test_no_color_and_default_command_together(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    rc, out, _ = run(capsys, "--no-color", "--json", SAMPLE)
    assert rc == 0 and '"type": "port"' in out.replace('"type":"port"', '"type": "port"')
    rc, out, _ = run(capsys, "--no-color", "conns", "--json", SAMPLE)
    assert rc == 0 and len(out.splitlines()) == 8


def test_python_api_with_filter() -> None:
    import portlens

    result = portlens.analyze(SAMPLE, filter="udp")
    assert [(c.proto, c.resp_p, c.conn_state) for c in result.connections] == [
        ("udp", 18053, "SF"), ("udp", 18054, "S0")]
    everything = portlens.analyze([SAMPLE])
    assert len(everything.connections) == 8
    assert everything.ports.get("tcp", 18081) is not None


def test_ports_footer_says_what_was_not_counted(capsys: pytest.CaptureFixture[str]) -> None:
    malformed = str(Path(SAMPLE).parent / "malformed.pcap")
    rc, out, _ = run(capsys, "ports", "--json", malformed)
    total = [json.loads(line) for line in out.splitlines()][-1]
    assert rc == 0 and total["type"] == "summary"
    # Frames whose decoding stopped before a transport header are in no connection.
    from portlens.decode import decode_capture
    from portlens.decode.malformed import reason_label
    from portlens.track.tracker import udp_carried

    reasons: dict[str, int] = {}
    for b in decode_capture(malformed):
        # (A tunnel's UDP carrier counts the packet whatever broke inside, as in Zeek.)
        for code, l4, carried in zip(b.malformed.tolist(), b.l4.tolist(),
                                     udp_carried(b).tolist(), strict=True):
            if code and not l4 and not carried:
                key = f"malformed: {reason_label(code)}"
                reasons[key] = reasons.get(key, 0) + 1
    assert len(reasons) > 10
    counted = {k: v for k, v in total["not_counted"].items() if k.startswith("malformed")}
    assert counted == reasons


@pytest.mark.parametrize("fmt", ["json", "zeek"])
def test_ctrl_c_still_writes_every_connection_seen(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   fmt: str) -> None:
    """Ctrl-C after the last packet was read: exit status 130, and the output holds every
    connection (the open ones ended as at the end of the capture), the Zeek log closed."""
    from portlens.pipeline import Pipeline

    rc, whole, _ = run(capsys, "conns", "--format", fmt, SAMPLE)
    assert rc == 0
    reading, decoding = Pipeline.packets, Pipeline._decoded

    def interrupted(self: Pipeline, *, tracking: bool = False) -> object:
        yield from reading(self, tracking=tracking)
        raise KeyboardInterrupt

    def interrupted_in_core(self: Pipeline, feed: object) -> object:
        yield from decoding(self, feed)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    # one file is read and decoded by the core (Pipeline._decoded), others by Python (packets)
    monkeypatch.setattr(Pipeline, "packets", interrupted)
    monkeypatch.setattr(Pipeline, "_decoded", interrupted_in_core)
    rc, out, _ = run(capsys, "conns", "--format", fmt, SAMPLE)
    assert rc == 130

    def rows(text: str) -> list[str]:  # the Zeek log's #open/#close lines carry the time
        return [ln for ln in text.splitlines() if not ln.startswith(("#open", "#close"))]

    assert rows(out) == rows(whole) and len(rows(out)) >= 8
    assert out.splitlines()[-1].startswith("#close") if fmt == "zeek" else True


@pytest.mark.parametrize("json_lines", [False, True])
def test_ctrl_c_in_the_listing_keeps_every_line_read(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    json_lines: bool) -> None:
    """`packets` of a file read whole writes the batches the core holds (Pipeline.held):
    Ctrl-C after the last of them still leaves every line written, and exits 130."""
    from portlens.pipeline import Pipeline

    argv = ["packets", *(["--json"] if json_lines else []), SAMPLE]
    rc, whole, _ = run(capsys, *argv)
    assert rc == 0 and len(whole.splitlines()) > 20
    decoding = Pipeline._decoded

    def interrupted_in_core(self: Pipeline, feed: object, **kw: object) -> object:
        yield from decoding(self, feed, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(Pipeline, "_decoded", interrupted_in_core)
    rc, out, _ = run(capsys, *argv)
    assert rc == 130 and out == whole


def test_interfaces_table_and_json(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from portlens.cli import common

    monkeypatch.setattr(common, "stdout_is_terminal", lambda: True)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    rc, out, _ = run(capsys, "interfaces")
    lo = next(line.split() for line in out.splitlines() if line.split()[:1] == ["lo"])
    assert rc == 0 and lo[2:4] == ["UP", "loopback"] and "127.0.0.1/8," in lo
    assert out.split()[:6] == ["interface", "index", "state", "link", "type", "mtu"]
    rc, out, _ = run(capsys, "interfaces", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and {r["name"] for r in rows} >= {"lo", "any"}
    monkeypatch.setenv("COLUMNS", "40")
    rc, out, err = run(capsys, "interfaces")
    assert rc == 0 and "index" not in out.split() and "left out to fit 40 columns" in err


@pytest.mark.parametrize(("argv", "memory", "disk", "where"), [
    ([], 512 << 20, 8192 << 20, None),
    (["--buffer", "32", "--spool", "0"], 32 << 20, 0, None),
    (["--spool", "100", "--spool-dir", "/var/tmp"], 512 << 20, 100 << 20, "/var/tmp")])
def test_buffer_and_spool_options_reach_the_live_session(
        monkeypatch: pytest.MonkeyPatch, argv: list[str], memory: int, disk: int,
        where: str | None) -> None:
    import portlens.capture
    from portlens.cli import build_parser
    from portlens.cli.common import reading

    seen = []
    monkeypatch.setattr(portlens.capture, "LiveSession",
                        lambda options, _filter: seen.append(options) or _NoPackets())
    args = build_parser().parse_args(["sniff", "-i", "lo", *argv])
    args.packet_filter = None
    with reading(args, [0]) as pipeline:
        assert list(pipeline.packets()) == []
    assert (seen[0].buffer_bytes, seen[0].spool_bytes, seen[0].spool_dir) == (memory, disk, where)


class _NoPackets:
    """A live session that captures nothing (for option plumbing tests)."""

    def batches(self) -> list[object]:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads counted in /proc")
def test_command_line_leaves_numpy_one_thread() -> None:
    """The command line sets OPENBLAS_NUM_THREADS before numpy is first imported: numpy's
    import otherwise starts a BLAS thread per core, for linear algebra portlens never does.
    `import portlens` alone leaves the process as it is."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    threads = "import os, numpy; print(len(os.listdir('/proc/self/task')))"

    def count(module: str) -> int:
        run = subprocess.run([sys.executable, "-c", f"import {module}; {threads}"], env=env,
                             capture_output=True, text=True, check=True)
        return int(run.stdout)

    if count("portlens") == 1:
        pytest.skip("this numpy starts no thread of its own here (one CPU, or no OpenBLAS)")
    assert count("portlens.cli") == 1


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(dict(a.choices) for a in parser._actions
                if isinstance(a, argparse._SubParsersAction))


def test_a_run_builds_its_own_commands_parser_as_the_whole_one_has_it() -> None:
    """`PARSERS` names every command its function adds, in `--help`'s order: a run builds
    only its command's parser (start-up), the same as the one `--help` describes."""
    from portlens.cli import PARSERS, build_parser

    whole = _subcommands(build_parser())
    assert list(whole) == [name for _, _, names in PARSERS for name in names]
    for name, parser in whole.items():
        alone = _subcommands(build_parser(name))
        assert alone[name].format_help() == parser.format_help(), name
        assert len(alone) < len(whole)


def test_conns_to_zeek_imports_no_other_commands_module() -> None:
    code = ("import json, sys, portlens.cli as c; c.main(['conns', '--format', 'zeek', "
            f"{SAMPLE!r}]); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('portlens.cli.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    assert "portlens.cli.conns" in modules
    assert not {"portlens.cli.live", "portlens.cli.html", "portlens.cli.packets",
                "portlens.cli.reports", "portlens.cli.talkers"} & modules
