"""A Dask cluster (issue 14): a real local cluster of two worker processes tracks a capture
cut into rotated files, and gives the rows of one process, uids included; a worker killed
while it runs a shard has the shard run again, nothing lost or counted twice; connections
written as a Parquet dataset read back as the --json rows."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import portlens
from portlens.cli import main
from portlens.pipeline import Options, Pipeline, Source
from portlens.pipeline.cluster import ClusterProgress
from tests.corpus import require_corpus

distributed = pytest.importorskip("distributed", reason="dask.distributed: pip install .[test]")
pytest.importorskip("pyarrow", reason="pyarrow: pip install .[test]")

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
WHOLE = "zeek-ftp-ipv4.pcap"
"""95 frames, 5 connections; the FTP control connection spans every part."""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def cluster() -> Any:
    """Two worker processes, one thread each, as `--dask local --workers 2` starts them."""
    import logging

    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR)
    yield lc
    lc.close()


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two public captures with long connections, each cut into files of 10 packets by
    editcap, all named in a shuffled order: one capture set of two sensors' files."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (comes with tshark) is not installed")
    root = require_corpus()
    out = tmp_path_factory.mktemp("rotated")
    whole = out / "whole.pcap"
    names = []
    for i, name in enumerate((WHOLE, "zeek-ssh-half-duplex-client.pcap")):
        subprocess.run([editcap, "-c", "10" if i == 0 else "100", str(root / name),
                        str(out / f"s{i}.pcap")], check=True, capture_output=True)
    names = [str(p) for p in sorted(out.glob("s*.pcap"))]
    mergecap = shutil.which("mergecap")
    assert mergecap is not None
    subprocess.run([mergecap, "-F", "pcap", "-w", str(whole), *names], check=True)
    random.Random(14).shuffle(names)
    return whole, names


def test_cluster_gives_the_rows_of_one_process(capsys: pytest.CaptureFixture[str],
                                               cluster: Any,
                                               parts: tuple[Path, list[str]]) -> None:
    whole, names = parts
    address = cluster.scheduler_address
    for command in (("conns", "--json"), ("conns", "--format", "zeek"), ("ports", "--json"),
                    ("handshakes", "--json"), ("sockets", "--json")):
        rc, expected, _ = run(capsys, *command, str(whole))
        rc2, got, err = run(capsys, *command, "--dask", address, *names)
        assert (rc2, err) == (rc, ""), command
        want = [ln for ln in expected.splitlines() if not ln.startswith(("#open", "#close"))]
        have = [ln for ln in got.splitlines() if not ln.startswith(("#open", "#close"))]
        assert have == want, command  # row for row, in the order connections end
    rows = [json.loads(ln) for ln in run(capsys, "conns", "--json", "--dask", address,
                                         *names)[1].splitlines()]
    control = next(r for r in rows if r["id.resp_p"] == 21)
    assert (control["orig_pkts"], control["resp_pkts"]) == (38, 25)
    assert len({r["uid"] for r in rows}) == len(rows) == 30


def test_api_on_a_cluster_reports_progress(cluster: Any,
                                           parts: tuple[Path, list[str]]) -> None:
    """portlens.open(dask=...) gives the connections of one process; the progress callback
    ends with every shard done, every file read by each shard, every packet decoded by
    each."""
    whole, names = parts
    one = portlens.open(str(whole)).connections().records()
    seen: list[ClusterProgress] = []
    pipeline = Pipeline(Source.of(names), Options(dask=cluster.scheduler_address),
                        on_cluster=seen.append)
    conns = list(pipeline.connections())
    from portlens.report.conns import record

    assert list(map(record, conns)) == one
    last = seen[-1]
    frames = sum(f.frames for f in pipeline.files)
    assert frames == 95 + 838
    assert (last.shards, last.shards_done, last.files_read, last.packets) == (
        2, 2, 2 * len(names), 2 * frames)
    assert "2/2 shards on 2 workers" in last.line()
    two = portlens.open(names, dask=cluster.scheduler_address)
    assert two.ports().records() == portlens.open(str(whole)).ports().records()


KILL_AFTER = 300
"""Packets shard 0 has tracked when its worker dies (of 933)."""


class KillOnce(distributed.WorkerPlugin):  # type: ignore[misc]
    """Logs every start of a shard task, and ends the worker process running shard 0 once,
    in the middle of its task: after it has read and tracked ``KILL_AFTER`` packets (its
    progress reported, its tracker holding open connections). The nanny starts a new
    worker process."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.read: Any = None

    def setup(self, worker: Any) -> None:
        from portlens.pipeline.run import Pipeline

        read = Pipeline.packets
        log = self.log

        def packets(pipeline: Pipeline, *args: Any, **kwargs: Any) -> Any:
            shard = pipeline.options.tracker.shard
            seen = 0
            for batch in read(pipeline, *args, **kwargs):
                yield batch  # tracked when the tracker asks for the next one
                seen += len(batch)
                if (shard is not None and shard[0] == 0 and seen >= KILL_AFTER
                        and not os.path.exists(log + ".killed")):
                    Path(log + ".killed").write_text(f"{seen}\n")
                    os._exit(1)  # as a crash or the OOM killer would: no goodbye

        Pipeline.packets = packets  # type: ignore[method-assign]
        self.read = read

    def teardown(self, worker: Any) -> None:
        from portlens.pipeline.run import Pipeline

        Pipeline.packets = self.read  # type: ignore[method-assign]

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        name = key if isinstance(key, str) else str(key)
        if finish != "executing" or not name.startswith("portlens-shard-"):
            return
        with open(self.log, "a") as f:
            f.write(name.split("-of-")[0] + "\n")


def test_a_killed_worker_has_its_shard_run_again(tmp_path: Path, cluster: Any,
                                                 parts: tuple[Path, list[str]]) -> None:
    import cloudpickle

    whole, names = parts
    expected = portlens.open(str(whole)).connections().records()
    log = str(tmp_path / "starts.log")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with distributed.Client(cluster) as client:
        client.register_plugin(KillOnce(log), name="kill-once")
        try:
            got = portlens.open(names, dask=cluster.scheduler_address).connections().records()
        finally:
            client.unregister_worker_plugin("kill-once")
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client.wait_for_workers(2, timeout=60)
    starts = Path(log).read_text().split()
    assert sorted(starts) == ["portlens-shard-0", "portlens-shard-0", "portlens-shard-1"]
    killed_after = int(Path(log + ".killed").read_text())
    assert KILL_AFTER <= killed_after < 933  # mid-task: packets tracked, others not read
    assert got == expected  # row for row: nothing lost, nothing twice


def test_dask_local_starts_its_own_cluster(capsys: pytest.CaptureFixture[str],
                                          parts: tuple[Path, list[str]]) -> None:
    whole, names = parts
    _, expected, _ = run(capsys, "ports", "--json", str(whole))
    rc, got, err = run(capsys, "ports", "--json", "--dask", "local", "--workers", "2", *names)
    assert (rc, err, got) == (0, "", expected)


@pytest.mark.parametrize(("argv", "message"), [
    (("conns", "--dask", "tcp://127.0.0.1:1", "--timeout", "tcp_close=1"),
     "--dask tcp://127.0.0.1:1: cannot reach the scheduler"),
    (("events", "--dask", "local"), "--dask: `events` follows transitions in one process"),
    (("conns", "--dask", "local", "-w", "/tmp/x.pcap"), "--dask with -w"),
    (("conns", "--dask", " "), "--dask wants a scheduler address"),
])
def test_dask_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str],
                                        argv: tuple[str, ...], message: str) -> None:
    rc, out, err = run(capsys, *argv, str(CAPTURES / "tcp-session.pcap"))
    assert (rc, out) == (2, "")
    assert err.startswith(f"portlens: {message}") and err.count("\n") == 1, err


def test_parquet_dataset_reads_back_as_the_json_rows(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, cluster: Any,
                                                     parts: tuple[Path, list[str]]) -> None:
    """Partitioned by day and protocol; pandas and dask.dataframe read the same rows, which
    are the --json rows (without the transition lists)."""
    import dask.dataframe as dd

    from portlens.report.parquet import read_rows

    whole, names = parts
    _, out, _ = run(capsys, "conns", "--json", str(whole))
    expected = [json.loads(ln) for ln in out.splitlines()]
    for r in expected:
        r.pop("transitions")
    expected.sort(key=lambda r: (r["ts_ns"], r["uid"]))
    for extra in ((), ("--dask", cluster.scheduler_address)):
        target = tmp_path / f"ds{len(extra)}"
        rc, got, err = run(capsys, "conns", "--parquet", str(target), *extra, *names)
        assert (rc, got) == (0, "")
        assert err == (f"portlens: 30 connections written to {target} (Parquet, partitioned "
                       "by day and proto)\n")
        assert read_rows(target) == expected
        days = sorted(p.name for p in target.iterdir())
        assert days[0] == "day=2011-12-16" and "day=2015-01-12" in days
        assert sorted(p.name for p in (target / "day=2015-01-12").iterdir()) == ["proto=tcp"]
        frame = dd.read_parquet(str(target)).compute()
        assert sorted(frame["uid"]) == sorted(r["uid"] for r in expected)
    rc, _, err = run(capsys, "conns", "--parquet", str(tmp_path / "ds0"), str(whole))
    assert rc == 2 and "exists and is not an empty directory" in err
    rc, _, err = run(capsys, "conns", "--json", "--parquet", str(tmp_path / "n"), str(whole))
    assert rc == 2 and "give one of the two" in err
