"""Live capture from the command line, on loopback traffic this test makes itself.

Needs root (or CAP_NET_RAW) and skips with the reason otherwise; tcpdump comparisons skip
without tcpdump. Traffic goes to 127.0.0.1 only, on free ports chosen for each test. The
tests wait for the capture's "listening on" line and for packets to arrive, never for a
fixed time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from portlens.sources.files import CaptureError, open_capture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now: fixed ports collide with other runs on a shared box."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    tcp: int
    udp: int
    closed: int

    @property
    def filter(self) -> str:
        return f"port {self.tcp} or port {self.udp} or port {self.closed}"


@pytest.fixture
def ports() -> Ports:
    return Ports(free_port(), free_port(socket.SOCK_DGRAM), free_port())


def portlens(*args: str) -> list[str]:
    return [sys.executable, "-m", "portlens", *args]


def make_traffic(ports: Ports, rounds: int = 4) -> None:
    """A TCP server with clients, a UDP exchange and a refused connection, on 127.0.0.1."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", ports.tcp))
    server.listen()

    def serve() -> None:
        for _ in range(rounds):
            conn, _ = server.accept()
            conn.recv(1000)
            conn.sendall(b"x" * 3000)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for _ in range(rounds):
        with socket.create_connection(("127.0.0.1", ports.tcp), timeout=5) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while c.recv(4096):
                pass
    thread.join(timeout=5)
    server.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", ports.udp))
    udp.sendto(b"ping", ("127.0.0.1", ports.udp))
    data, peer = srv.recvfrom(100)
    srv.sendto(data, peer)
    udp.close()
    srv.close()
    with contextlib.suppress(OSError):
        socket.create_connection(("127.0.0.1", ports.closed), timeout=2).close()


READY = "listening on lo, link-type EN10MB (Ethernet), snapshot length"
"""What portlens and tcpdump print on stderr once their capture socket takes packets."""


def start(cmd: list[str], **kw: object) -> subprocess.Popen[str]:
    """Start a capture and return once it says it is listening (no sleep: on a loaded box the
    interpreter alone can take seconds to start)."""
    kw.setdefault("stdout", subprocess.PIPE)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            **kw)  # type: ignore[call-overload]
    wait_for_line(proc, READY)
    return proc


def wait_for_line(proc: subprocess.Popen[str], *texts: str, timeout: float = 120) -> list[str]:
    """Read the process's stderr up to the first line containing one of ``texts`` (the lines
    read are returned, that one last; communicate() gets the rest)."""
    seen: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if any(text in line for text in texts):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    watcher.join(timeout)
    if not seen or not any(text in seen[-1] for text in texts):
        proc.kill()
        raise AssertionError(f"no line with {' or '.join(texts)} on stderr: {seen}")
    return seen


def wait_until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``done`` until it holds; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def frame_count(path: Path) -> int:
    try:
        return len(frames_of(path))
    except (CaptureError, OSError):  # not created yet, or a record half written
        return 0


def frames_of(path: Path) -> list[bytes]:
    with open_capture(path) as reader:
        return [b.frame_bytes(i) for b in reader for i in range(len(b))]


TIMED = ("rtt", "first", "last", "duration")


def untimed(row: dict[str, object]) -> dict[str, object]:
    """The row without its times (the summary's totals, nested under "total", too)."""
    return {k: untimed(v) if isinstance(v, dict) else v for k, v in row.items()
            if not any(t in k for t in TIMED)}


def ports_json(*source: str) -> list[dict[str, object]]:
    out = subprocess.run(portlens("ports", "--json", *source), capture_output=True, text=True,
                         timeout=60, check=False).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["default", "2-threads"])
def test_live_equals_tcpdump_and_its_report(tmp_path: Path, ports: Ports,
                                             workers: tuple[str, ...]) -> None:
    ours = tmp_path / "portlens.pcap"
    theirs = tmp_path / "tcpdump.pcap"
    dump = start(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-B", "32768", "-w",
                  str(theirs), ports.filter])
    live = start(portlens("ports", "--json", "-i", "lo", "-f", ports.filter, "-w", str(ours),
                          *workers))
    make_traffic(ports)
    # The last packet sent (the refused port's RST) reached both files: all did.
    wait_until(lambda: frame_count(ours) >= frame_count(theirs) > 20, "both captures")
    live.send_signal(signal.SIGINT)
    out, err = live.communicate(timeout=60)
    wait_until(lambda: frame_count(theirs) >= frame_count(ours), "tcpdump's last packets")
    dump.send_signal(signal.SIGINT)
    dump.communicate(timeout=30)
    assert live.returncode == 0, err
    # The same packets, byte for byte (timestamps aside). Two sockets may see packets of
    # different flows in a slightly different order (each CPU delivers to both), so compare
    # them as collections.
    assert sorted(frames_of(ours)) == sorted(frames_of(theirs))
    assert len(frames_of(ours)) > 20
    # The live report equals the report of the -w file afterwards, exactly; and the report of
    # tcpdump's file on everything but times (the two sockets' kernel timestamps differ).
    live_rows = [json.loads(line) for line in out.splitlines()]
    assert live_rows == ports_json(str(ours))
    assert [untimed(r) for r in live_rows] == [untimed(r) for r in ports_json(str(theirs))]
    assert "packets captured" in err and "0 dropped by kernel" in err
    assert oct(ours.stat().st_mode & 0o777) == "0o600"


def test_sigterm_leaves_a_complete_file_and_the_report(tmp_path: Path, ports: Ports) -> None:
    out_file = tmp_path / "cap.pcapng"
    proc = start(portlens("sniff", "-i", "lo", "-f", ports.filter, "-w", str(out_file),
                          "--pcapng"))
    make_traffic(ports, rounds=2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]  # stdout is a pipe: JSON lines
    assert {r["id.resp_p"] for r in rows} >= {ports.tcp, ports.udp, ports.closed}
    assert len(frames_of(out_file)) > 10  # readable to its last record
    assert ports_json(str(out_file))  # the file is a complete, analysable capture


@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["default", "2-threads"])
def test_sniff_lines_equal_conns_of_its_own_file(tmp_path: Path, ports: Ports,
                                                 workers: tuple[str, ...]) -> None:
    """sniff's JSON lines (the same records as `conns --json`, streamed from the tracker's
    columns) are the lines `conns --json` gives for the file sniff wrote, row for row; and
    its report's estimate of capture loss is there when TCP payload was seen."""
    out_file = tmp_path / "cap.pcap"
    proc = start(portlens("sniff", "-i", "lo", "-f", ports.filter, "-w", str(out_file),
                          *workers))
    make_traffic(ports, rounds=3)
    wait_until(lambda: frame_count(out_file) > 20, "the capture")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    again = subprocess.run(portlens("conns", "--json", str(out_file)), capture_output=True,
                           text=True, timeout=60, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [json.loads(line) for line in again.splitlines()]
    assert {r["id.resp_p"] for r in rows} >= {ports.tcp, ports.udp, ports.closed}
    assert "capture loss estimate: 0.000% of " in err


def test_count_and_duration_stop_the_capture(tmp_path: Path, ports: Ports) -> None:
    proc = start(portlens("packets", "--json", "-i", "lo", "-c", "5", "-f", ports.filter))
    make_traffic(ports, rounds=2)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert len(out.splitlines()) == 5
    # --duration ends the capture by itself (the timeout only guards against a hang).
    done = subprocess.run(portlens("ports", "-i", "lo", "--duration", "1", "-f", ports.filter),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1  # nothing matched in that second: "found nothing"
    assert done.stderr.startswith(f"{READY} 262144 bytes\n")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
def test_without_privileges_one_line_and_status_2() -> None:
    # Root without CAP_NET_RAW (the bounding set is dropped before exec): what an ordinary
    # user has, while the interpreter and its packages stay readable.
    done = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
         "--bounding-set=-net_raw,-net_admin", *portlens("sniff", "-i", "lo")],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "CAP_NET_RAW" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_interface_lists_the_interfaces() -> None:
    done = subprocess.run(portlens("ports", "-i", "nosuch0"), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("portlens: no interface 'nosuch0'")
    assert "lo" in done.stderr and done.stderr.count("\n") == 1


def bulk_transfer(port: int, megabytes: int) -> None:
    """One TCP connection on 127.0.0.1 carrying ``megabytes`` MB as fast as loopback goes."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()

    def sink() -> None:
        conn, _ = server.accept()
        while conn.recv(1 << 20):
            pass
        conn.close()

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        chunk = b"z" * (1 << 20)
        for _ in range(megabytes):
            c.sendall(chunk)
    thread.join(timeout=10)
    server.close()


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_backlog_past_the_buffer_waits_on_disk_and_nothing_is_lost(tmp_path: Path) -> None:
    """A 1 MB memory buffer and a 40 MB burst: the capture thread spills what the analysis has
    not reached to the spool file, and the run still sees every packet tcpdump saw."""
    ours = tmp_path / "portlens.pcap"
    theirs = tmp_path / "tcpdump.pcap"
    port = free_port()
    expr = f"port {port}"
    dump = start(["tcpdump", "-i", "lo", "-U", "-B", "262144", "-w", str(theirs), expr])
    live = start(portlens("ports", "--json", "-i", "lo", "-f", expr, "-w", str(ours),
                          "--buffer", "1", "--spool-dir", str(tmp_path)))
    bulk_transfer(port, 40)
    live.send_signal(signal.SIGINT)  # what waits in the spool is still analysed and written
    out, err = live.communicate(timeout=300)
    wait_until(lambda: frame_count(theirs) >= frame_count(ours), "tcpdump's last packets")
    dump.send_signal(signal.SIGINT)
    dump.communicate(timeout=30)
    assert live.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    assert "0 dropped by kernel" in summary and "0 dropped by portlens" in summary, summary
    counts = summary_counts(summary)
    assert 0 < counts["waited"] <= counts["analysed"]
    assert sorted(frames_of(ours)) == sorted(frames_of(theirs))
    assert counts["analysed"] == len(frames_of(theirs))
    assert [json.loads(line) for line in out.splitlines()] == ports_json(str(ours))
    assert sorted(os.listdir(tmp_path)) == ["portlens.pcap", "tcpdump.pcap"]  # no spool left


def udp_flood(port: int, datagrams: int) -> None:
    """Small UDP datagrams on 127.0.0.1 from many source ports, as fast as Python sends them:
    cheap to capture, dear to analyse (a new flow every 10 datagrams)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", port))  # never read: the kernel drops at its buffer, later
    for _ in range(datagrams // 10):  # one socket at a time: a flood must not hit RLIMIT_NOFILE
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(10):
                s.sendto(b"q" * 20, ("127.0.0.1", port))
    sink.close()


SUMMARY = {"captured": r"(\d+) packets captured", "analysed": r"(\d+) analysed",
           "written": r"(\d+) written to ", "received": r"(\d+) received by filter",
           "late": r"\((\d+) after the stop, not captured\)",
           "kernel": r"(\d+) dropped by kernel", "portlens": r"(\d+) dropped by portlens",
           "abandoned": r"(\d+) captured but not analysed", "waited": r"(\d+) waited on disk"}
"""The closing line's figures by their words (0 when the line leaves one out)."""


def summary_counts(line: str) -> dict[str, int]:
    """The closing line's figures by their words; it must be the closing line."""
    assert re.match(r"\d+ packets captured, \d+ analysed", line), line
    return {key: int(m.group(1)) if (m := re.search(pattern, line)) else 0
            for key, pattern in SUMMARY.items()}


def test_second_ctrl_c_gives_the_backlog_up_and_counts_every_packet(tmp_path: Path) -> None:
    """A backlog of small packets, then Ctrl-C twice: portlens stops at once, and the closing
    line accounts for every packet the kernel received: analysed, dropped or given up.

    A backlog needs a flood faster than the analysis; on a loaded box the sender can be the
    slower one, so a run without a backlog at the first Ctrl-C (it then just finishes, every
    packet accounted for) is repeated with a flood twice as big."""
    for datagrams in (100_000, 200_000, 400_000):
        port = free_port(socket.SOCK_DGRAM)
        # stdout (a JSON line per connection) goes nowhere: a pipe nobody reads would fill
        # and stop the analysis before it could say anything on stderr.
        live = start(portlens("sniff", "-i", "lo", "-f", f"udp port {port}", "--buffer", "1",
                              "--spool-dir", str(tmp_path)), stdout=subprocess.DEVNULL)
        udp_flood(port, datagrams)
        live.send_signal(signal.SIGINT)
        # The second Ctrl-C once the first has been taken (two signals sent at once could
        # arrive as one): portlens says so, with what still waits.
        notice = wait_for_line(live, "Ctrl-C again gives them up", "packets captured")[-1]
        if "packets captured" in notice:  # no backlog: finished at the first Ctrl-C
            live.communicate(timeout=120)
            counts = summary_counts(notice)
            assert counts["abandoned"] == 0 and counts["received"] >= datagrams, notice
            assert counts["analysed"] + counts["portlens"] == counts["captured"], counts
            assert (counts["captured"] + counts["kernel"] + counts["late"]
                    == counts["received"]), counts
            continue
        assert re.fullmatch(r"portlens: interrupted: analysing the \d+ packets still "
                            r"waiting; Ctrl-C again gives them up\n", notice)
        live.send_signal(signal.SIGINT)
        _, err = live.communicate(timeout=120)
        assert live.returncode == 0, err
        counts = summary_counts(err.strip().splitlines()[-1])
        assert counts["received"] >= datagrams
        assert (counts["analysed"] + counts["portlens"] + counts["abandoned"]
                == counts["captured"]), counts
        assert (counts["captured"] + counts["kernel"] + counts["late"]
                == counts["received"]), counts
        assert os.listdir(tmp_path) == []
        if counts["abandoned"] == 0:
            # The analysis worked the backlog off before the second Ctrl-C came (it only
            # cut the last connections' output short): again with a bigger flood.
            continue
        return
    pytest.skip("the analysis kept up with every flood here: no backlog to give up")


def udp_burst(port: int, datagrams: int) -> None:
    """``datagrams`` small UDP datagrams to 127.0.0.1:port from one socket (nothing reads
    them: the capture sees each once, on its way in)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(datagrams):
            s.sendto(b"w" * 20, ("127.0.0.1", port))


def has_packet_socket(pid: int) -> bool:
    """Whether the process holds an AF_PACKET socket (an open capture) now."""
    with open("/proc/net/packet") as f:
        inodes = {line.split()[-1] for line in list(f)[1:] if line.split()}
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # it exited meanwhile
        return False
    return any(link.startswith("socket:[") and link[8:-1] in inodes for link in links)


def test_w_has_every_captured_packet_while_the_analysis_is_stuck(tmp_path: Path) -> None:
    """-w is written at capture, not after analysis: with the analysis stuck (its output
    goes to a pipe nobody reads, which fills after a few hundred JSON lines) the file still
    gets every packet as it is captured; when the pipe is read the analysis catches up, and
    the closing line's counts all agree with the file."""
    port = free_port(socket.SOCK_DGRAM)
    out_file = tmp_path / "cap.pcap"
    n = 20_000
    live = start(portlens("packets", "--json", "-i", "lo", "-f", f"udp port {port}",
                          "-w", str(out_file)))
    udp_burst(port, n)
    # Never read: the analysis blocks on its first full pipe, while the file fills.
    wait_until(lambda: frame_count(out_file) == n, f"{n} packets in the -w file", timeout=120)
    live.send_signal(signal.SIGINT)
    out, err = live.communicate(timeout=300)  # reading stdout lets the analysis go on
    assert live.returncode == 0, err
    assert len(out.splitlines()) == n
    counts = summary_counts(err.strip().splitlines()[-1])
    assert counts == {"captured": n, "analysed": n, "written": n, "received": n, "late": 0,
                      "kernel": 0, "portlens": 0, "abandoned": 0, "waited": 0}, err


def test_closing_line_counts_what_came_before_the_stop(tmp_path: Path) -> None:
    """Ctrl-C stops the capture at once (its socket closes), even while the analysis has a
    backlog to work off: packets sent after the stop are in no count, so "received by
    filter" is what the kernel had when the capture stopped, and it equals captured +
    dropped. (The socket used to stay open until the analysis ended, and the kernel counted
    everything that came meanwhile as received.)"""
    port = free_port(socket.SOCK_DGRAM)
    out_file = tmp_path / "cap.pcap"
    before, after = 3_000, 5_000
    live = start(portlens("packets", "--json", "-i", "lo", "-f", f"udp port {port}",
                          "-w", str(out_file)))
    udp_burst(port, before)
    wait_until(lambda: frame_count(out_file) == before, "the packets before the stop")
    live.send_signal(signal.SIGINT)  # the analysis is stuck on its full stdout pipe
    wait_until(lambda: not has_packet_socket(live.pid), "the capture socket to close")
    udp_burst(port, after)
    out, err = live.communicate(timeout=300)
    assert live.returncode == 0, err
    assert len(out.splitlines()) == before
    line = err.strip().splitlines()[-1]
    assert line == (f"{before} packets captured, {before} analysed, {before} written to "
                    f"{out_file}; 0 dropped by kernel, 0 dropped by portlens (buffer full); "
                    f"{before} received by filter"), err
    assert frame_count(out_file) == before


def test_w_that_fills_up_is_one_line_and_the_capture_goes_on(tmp_path: Path) -> None:
    """-w on a file system that refuses more (here RLIMIT_FSIZE, the way a full disk
    answers a write): one line naming the file and the error, the capture and the analysis
    go on to the end, the closing line is printed, the status is 2, and the file is a
    readable capture of the packets written before the error."""
    port = free_port(socket.SOCK_DGRAM)
    out_file = tmp_path / "cap.pcap"
    n = 5_000

    def limit_file_size() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    live = start(portlens("packets", "--stats", "-i", "lo", "-f", f"udp port {port}",
                          "-w", str(out_file), "--spool", "0"), preexec_fn=limit_file_size)
    udp_burst(port, 500)  # 500 records of 78 bytes fit the limit
    wait_until(lambda: frame_count(out_file) == 500, "the first packets in the file")
    udp_burst(port, n - 500)  # these do not: the write that crosses the limit fails
    live.send_signal(signal.SIGINT)
    out, err = live.communicate(timeout=300)
    assert live.returncode == 2, err
    lines = err.strip().splitlines()
    written = len(frames_of(out_file))  # complete records only: the failed write is undone
    assert 500 <= written < n
    assert lines[-1] == f"portlens: -w {out_file}: File too large after {written} packets"
    counts = summary_counts(lines[-2])
    assert counts["written"] == written
    assert counts["captured"] == counts["analysed"] == counts["received"] == n, lines
    assert "frames" in out  # the report, from every packet analysed
    assert "Traceback" not in err
