"""Live capture: real traffic on lo and on a veth pair between two namespaces, judged by tcpdump.

The outside judge is tcpdump (libpcap) capturing the same traffic at the same time with the same
filter: every frame must be byte-for-byte the same, in the same order, with the same wire
length (timestamps are taken per socket, so they are only checked to lie in the test's window).
Packets two CPUs delivered at the same moment may reach two sockets in opposite orders, so a
frame may sit a few places from tcpdump's (see ``assert_same_frames``).
Traffic goes only to 127.0.0.1/::1 or between namespaces the tests create (10.231.x.y, 10.232.x.y
inside them); nothing leaves the machine.

Tests that open packet sockets need root or CAP_NET_RAW and are skipped, with that reason,
otherwise. Every test is bounded: capture threads and subprocesses are joined with timeouts, and
a faulthandler watchdog ends the run with a traceback if anything still hangs.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import faulthandler
import mmap
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from portlens.sources import bpf, linktypes
from portlens.sources.files import CaptureError, open_capture
from portlens.sources.interfaces import in_netns, list_interfaces
from portlens.sources.live import CaptureStats, LiveCapture, LiveCaptureError

WATCHDOG_S = 120
"""No single test comes near this; past it the run is stuck, not slow."""


def _capture_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "live capture tests need Linux AF_PACKET sockets"
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError:
        return "needs root or CAP_NET_RAW: the kernel refused an AF_PACKET socket"
    return None


SKIP = _capture_skip_reason()
needs_capture = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# -- helpers ------------------------------------------------------------------------------------

Frame = tuple[bytes, int]
"""(captured bytes, wire length): what must equal tcpdump's."""


class Collector:
    """Iterates a LiveCapture in a thread, keeping every frame, until finish()."""

    def __init__(self, cap: LiveCapture) -> None:
        self.cap = cap
        self.frames: list[Frame] = []
        self.ts: list[int] = []
        self.numbers: list[int] = []
        self.linktypes: set[int] = set()
        self.idle_batches = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for b in self.cap:
                if not len(b):
                    self.idle_batches += 1
                for i in range(len(b)):
                    self.frames.append((b.frame_bytes(i), int(b.wirelen[i])))
                    self.ts.append(int(b.ts_ns[i]))
                    self.numbers.append(int(b.frame[i]))
                    self.linktypes.add(int(b.linktype[i]))
        except BaseException as exc:
            self.error = exc

    def failure(self) -> BaseException | None:
        return self.error

    def finish(self, timeout: float = 5.0) -> list[Frame]:
        self.cap.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "capture did not stop"
        if self.error is not None:
            raise self.error
        assert self.numbers == list(range(1, len(self.numbers) + 1))
        return self.frames


def read_pcap(path: Path) -> list[Frame]:
    with open_capture(path) as r:
        return [(b.frame_bytes(i), int(b.wirelen[i])) for b in r for i in range(len(b))]


@contextlib.contextmanager
def tcpdump(
    path: Path, iface: str, expr: str, *, netns: str | None = None, linktype: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """tcpdump writing ``path`` until the block ends (SIGINT: it flushes and exits)."""
    cmd = ["ip", "netns", "exec", netns] if netns else []
    # -B: libpcap's default 2 MiB ring holds only ~32 packets of a 64 KiB-MTU device in
    # immediate mode; on a busy machine tcpdump itself would drop.
    cmd += ["tcpdump", "-i", iface, "-w", str(path), "-U", "-n", "-Z", "root",
            "--immediate-mode", "-s", "262144", "-B", "32768"]
    if linktype:
        cmd += ["-y", linktype]
    cmd.append(expr)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    ready = threading.Event()
    lines: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                ready.set()
        ready.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert ready.wait(15) and proc.poll() is None, f"tcpdump did not start: {lines}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_for_tcpdump(path: Path, frames: int, timeout: float = 30.0) -> None:
    """Wait until tcpdump's file holds ``frames`` frames (it writes each one at once, -U, but
    libpcap may hold the last ones in its ring for up to a second on ``any``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(read_pcap(path)) >= frames:
                return
        except CaptureError:  # a record half written
            pass
        time.sleep(0.05)


REORDER_WINDOW = 4
"""How far (in frames) a frame may sit from its place in tcpdump's capture."""


def assert_same_frames(ours: list[Frame], theirs: list[Frame], what: str) -> None:
    """Frame by frame: the same bytes and wire length, each frame as many times, and each at
    (almost) the same place.

    "Almost": the kernel hands a packet to each packet socket in turn, and two CPUs (the two
    ends of a veth, a softirq ACK and a thread's data segment, two loopback backlogs) can do so
    at the same moment, so two sockets may see two such packets in opposite orders. A frame may
    therefore sit up to REORDER_WINDOW places from tcpdump's; anything else is a difference.
    """
    assert len(ours) == len(theirs), f"{what}: {len(ours)} frames, tcpdump {len(theirs)}"
    used = [False] * len(ours)
    for i, ref in enumerate(theirs):
        lo, hi = max(0, i - REORDER_WINDOW), min(len(ours), i + REORDER_WINDOW + 1)
        j = next((j for j in range(lo, hi) if not used[j] and ours[j] == ref), None)
        if j is None:
            mine = ours[i]
            raise AssertionError(
                f"{what}: frame {i + 1} differs: ours {len(mine[0])}/{mine[1]} bytes "
                f"{mine[0][:64].hex()}..., tcpdump's {len(ref[0])}/{ref[1]} {ref[0][:64].hex()}..."
            )
        used[j] = True


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LoTraffic:
    """Ports of one round of loopback traffic and the filter that selects exactly it."""

    tcp: int
    udp: int
    udp6: int
    refused: int

    @property
    def expr(self) -> str:
        return (f"tcp port {self.tcp} or udp port {self.udp} or udp port {self.udp6} "
                f"or tcp port {self.refused}")


def make_lo_traffic(*, big: bool = True) -> tuple[LoTraffic, Callable[[], None]]:
    """Sockets bound now; the returned function sends: a TCP exchange (server thread), UDP
    datagrams over IPv4 and IPv6, and a connection refused with a RST."""
    srv = socket.create_server(("127.0.0.1", 0))
    u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u4.bind(("127.0.0.1", 0))
    u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u6.bind(("::1", 0))
    ports = LoTraffic(srv.getsockname()[1], u4.getsockname()[1], u6.getsockname()[1],
                      free_port())
    sizes = [100, 5000, 70000] if big else [100, 1400, 3000]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            for n in sizes:
                got = b""
                while len(got) < n:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    got += chunk
                conn.sendall((got[::-1] * 10)[:1000])
            conn.recv(10)

    def send() -> None:
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with socket.create_connection(("127.0.0.1", ports.tcp), timeout=5) as c:
            for n in sizes:
                c.sendall(bytes(range(256)) * (n // 256) + b"x" * (n % 256))
                got = b""
                while len(got) < 1000:
                    got += c.recv(4096)
            c.shutdown(socket.SHUT_WR)
        t.join(5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for n in (1, 10, 1000, 9000):
                s.sendto(b"u" * n, ("127.0.0.1", ports.udp))
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.sendto(b"six" * 100, ("::1", ports.udp6))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports.refused), timeout=5)
        time.sleep(0.05)
        for s in (srv, u4, u6):
            s.close()

    return ports, send


def wait_until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``done`` until it holds; the timeout only guards against a hang (a loaded 2-core
    box can take seconds where an idle one takes milliseconds)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def settle(*collectors: Collector) -> None:
    """Wait until each collector holds every packet its socket's kernel counters have taken
    so far (the ring's retire timer hands a block over late; the collector's thread may be
    slow to run)."""
    for col in collectors:
        got = col.cap.stats()
        want = got.received - got.dropped
        wait_until(lambda col=col, want=want: len(col.frames) >= want or  # type: ignore[misc]
                   col.failure() is not None, f"{want} packets from {col.cap.backend}")


# -- (a) lo against tcpdump ---------------------------------------------------------------------


@needs_capture
@needs_tcpdump
def test_lo_ring_matches_tcpdump(tmp_path: Path) -> None:
    ports, send = make_lo_traffic()
    ref = tmp_path / "tcpdump.pcap"
    t0 = time.time_ns()
    with tcpdump(ref, "lo", ports.expr):
        cap = LiveCapture("lo", bpf=ports.expr, backend="ring")
        assert cap.backend == "ring" and cap.linktype == linktypes.ETHERNET
        col = Collector(cap)
        send()
        settle(col)
        ours = col.finish()
        stats = cap.stats()
        cap.close()
        wait_for_tcpdump(ref, len(ours))
    t1 = time.time_ns()
    theirs = read_pcap(ref)
    assert_same_frames(ours, theirs, "ring on lo")
    # 3-way handshake, 3 requests + 3 replies (the 70000-byte one in 2 segments), ACKs, FINs,
    # 4 + 1 datagrams, SYN + RST: far more than 20 frames.
    assert len(ours) > 20
    assert stats == CaptureStats(len(ours), 0), "kernel counts each loopback packet once"
    assert cap.duplicates_dropped == 0, "the kernel prologue, not user space, removed copies"
    assert all(t0 <= t <= t1 for t in col.ts)
    # Loopback is ARPHRD_LOOPBACK but its frames carry an Ethernet header with zero addresses.
    for data, _ in ours:
        assert data[:12] == bytes(12) and data[12:14] in (b"\x08\x00", b"\x86\xdd")
    assert (b"u" * 9000, 14 + 20 + 8 + 9000) in [(d[42:], w) for d, w in ours], "jumbo datagram"


# -- (b) the kernel filter ----------------------------------------------------------------------


@needs_capture
def test_kernel_filter_delivers_only_matching_packets() -> None:
    want, other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), \
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    want.bind(("127.0.0.1", 0))
    other.bind(("127.0.0.1", 0))
    p_want, p_other = want.getsockname()[1], other.getsockname()[1]
    cap = LiveCapture("lo", bpf=f"udp dst port {p_want}", backend="ring")
    col = Collector(cap)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(50):
            s.sendto(b"o" * i, ("127.0.0.1", p_other))
            if i % 10 == 0:
                s.sendto(b"w" * i, ("127.0.0.1", p_want))
    settle(col)
    frames = col.finish()
    stats = cap.stats()
    cap.close()
    want.close()
    other.close()
    assert len(frames) == 5
    assert {int.from_bytes(f[0][36:38], "big") for f in frames} == {p_want}
    # The socket never saw the 50 others nor the outgoing copies: the kernel counted 5.
    assert stats == CaptureStats(5, 0)


@needs_capture
def test_snaplen_cuts_in_the_kernel_and_keeps_wire_length() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r:
        r.bind(("127.0.0.1", 0))
        port = r.getsockname()[1]
        for backend in ("ring", "recv"):
            cap = LiveCapture("lo", bpf=f"udp port {port}", snaplen=64, backend=backend)
            col = Collector(cap)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"z" * 1000, ("127.0.0.1", port))
            settle(col)
            frames = col.finish()
            cap.close()
            assert [(len(d), w) for d, w in frames] == [(64, 14 + 20 + 8 + 1000)], backend


@needs_capture
def test_ring_overrun_is_counted_and_capture_goes_on() -> None:
    """A ring of 2 small blocks nobody reads: the kernel drops, freezes, and says so."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as r:
        r.bind(("127.0.0.1", 0))
        port = r.getsockname()[1]
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        cap = LiveCapture("lo", bpf=f"udp port {port}", snaplen=256, backend="ring",
                          block_size=mmap.PAGESIZE, block_count=2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(2000):
                s.sendto(b"d" * 200, ("127.0.0.1", port))
        wait_until(lambda: cap.stats().received >= 2000, "the kernel's count")
        received, dropped = cap.stats()
        assert received == 2000 and dropped > 0
        assert cap.ring_full > 0
        col = Collector(cap)
        settle(col)
        frames = col.finish()
        cap.close()
        assert 0 < len(frames) == received - dropped


# -- (d) the other backends see what the ring sees ------------------------------------------------


@needs_capture
def test_recv_and_scapy_backends_equal_ring_on_lo() -> None:
    pytest.importorskip("scapy")
    ports, send = make_lo_traffic(big=False)
    caps = {b: LiveCapture("lo", bpf=ports.expr, backend=b) for b in ("ring", "recv", "scapy")}
    assert {b: c.backend for b, c in caps.items()} == {b: b for b in caps}
    cols = {b: Collector(c) for b, c in caps.items()}
    send()
    settle(*cols.values())
    got = {b: col.finish() for b, col in cols.items()}
    stats = {b: c.stats() for b, c in caps.items()}
    for c in caps.values():
        c.close()
    assert len(got["ring"]) > 15
    assert_same_frames(got["recv"], got["ring"], "recv vs ring")
    # scapy's own sniff reports every lo packet twice; this backend must not.
    assert_same_frames(got["scapy"], got["ring"], "scapy vs ring")
    assert caps["scapy"].duplicates_dropped == len(got["ring"])
    assert stats["recv"] == stats["ring"] == CaptureStats(len(got["ring"]), 0)
    assert stats["scapy"].received == len(got["ring"])


@needs_capture
@needs_tcpdump
def test_any_matches_tcpdump_cooked(tmp_path: Path) -> None:
    ports, send = make_lo_traffic(big=False)
    ref = tmp_path / "any.pcap"
    with tcpdump(ref, "any", ports.expr, linktype="LINUX_SLL"):
        caps = [LiveCapture("any", bpf=ports.expr, backend=b) for b in ("ring", "recv")]
        cols = [Collector(c) for c in caps]
        send()
        settle(*cols)
        got = [col.finish() for col in cols]
        for c in caps:
            c.close()
        wait_for_tcpdump(ref, len(got[0]))
    theirs = read_pcap(ref)
    assert caps[0].linktype == linktypes.LINUX_SLL
    assert_same_frames(got[0], theirs, "ring on any")
    assert_same_frames(got[1], theirs, "recv on any")
    assert all(int.from_bytes(d[2:4], "big") == 772 for d, _ in theirs)  # ARPHRD_LOOPBACK


# -- stopping -------------------------------------------------------------------------------------


@needs_capture
def test_stop_from_another_thread_is_prompt_and_idle_batches_flow() -> None:
    for backend in ("ring", "recv"):
        cap = LiveCapture("lo", bpf="udp port 9", backend=backend, timeout_ms=50)
        col = Collector(cap)
        # Idle iteration hands control back every timeout_ms.
        wait_until(lambda col=col: col.idle_batches >= 3, f"{backend}: idle batches")
        t = time.monotonic()
        col.finish(timeout=30)
        took = time.monotonic() - t
        cap.close()
        # Prompt: the stop pipe wakes the poll at once, not at the next timeout. The bound is
        # loose because a loaded box may not schedule the thread for a while.
        assert took < 5, f"{backend}: stop took {took:.3f} s"


@needs_capture
def test_stop_from_a_signal_handler_in_the_iterating_thread() -> None:
    cap = LiveCapture("lo", bpf="udp port 9", backend="ring")
    old = signal.signal(signal.SIGALRM, lambda *_: cap.stop())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t = time.monotonic()
        n = sum(1 for _ in cap)  # ends only through the handler
        took = time.monotonic() - t
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        cap.close()
    assert n >= 1
    assert took >= 0.25  # not before the handler ran (the upper bound only guards a hang)
    assert took < 30


@needs_capture
def test_close_while_another_thread_iterates() -> None:
    cap = LiveCapture("lo", bpf="udp port 9", backend="ring")
    col = Collector(cap)
    time.sleep(0.1)
    cap.close()
    col.thread.join(2)
    assert not col.thread.is_alive() and col.error is None
    cap.close()  # twice is fine
    assert cap.stats() == CaptureStats(0, 0)


# -- (e) errors users meet ------------------------------------------------------------------------


def test_unknown_interface_lists_the_real_ones() -> None:
    if not hasattr(socket, "if_nameindex"):
        pytest.skip("no if_nameindex")
    with pytest.raises(LiveCaptureError) as err:
        LiveCapture("eth9x")
    msg = str(err.value)
    assert msg.startswith("no interface 'eth9x'; interfaces: lo") and msg.endswith(", any")
    assert "\n" not in msg


UNPRIVILEGED = textwrap.dedent("""
    from portlens.sources.live import LiveCapture, LiveCaptureError
    try:
        LiveCapture("lo")
    except LiveCaptureError as exc:
        print(exc)
        raise SystemExit(3)
    print("opened?!")
""")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping capabilities is shown from root")
def test_without_cap_net_raw_one_line_error() -> None:
    cmd = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
           "--bounding-set=-net_raw,-net_admin", sys.executable, "-c", UNPRIVILEGED]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    # Root then -Z, or a launcher of portlens' own: never setcap on the interpreter, which
    # would give raw sockets to every Python program on the host.
    assert lines[0] == (
        "capturing on lo needs CAP_NET_RAW: run as root with -Z USER (the capture socket is "
        "opened, then root is dropped for USER), or from a launcher that holds the capability "
        "for portlens alone (setcap on python would give it to every Python program)"
    )


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")
def test_as_nobody_one_line_error() -> None:
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
           sys.executable, "-c", UNPRIVILEGED]
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src}
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60,
                       env=env)
    if r.returncode != 3 and ("Permission denied" in r.stderr or "Error" in r.stderr):
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"user nobody cannot run this Python or import portlens here: {last}")
    assert r.returncode == 3 and r.stdout.startswith("capturing on lo needs CAP_NET_RAW")


DROP = textwrap.dedent("""
    import os, socket, time
    import numpy, portlens.sources.frames
    from portlens.sources.live import LiveCapture, LiveCaptureError, drop_privileges
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", 0))
    port = r.getsockname()[1]
    cap = LiveCapture("lo", bpf=f"udp port {port}")
    drop_privileges("nobody")
    assert os.getresuid() == (65534,) * 3, os.getresuid()
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"after", ("127.0.0.1", port))
    got = 0
    t = time.monotonic()
    for b in cap:
        got += len(b)
        if got or time.monotonic() - t > 3:
            break
    try:
        LiveCapture("lo")
    except LiveCaptureError as exc:
        print(got, exc)
""")


@needs_capture
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_drop_privileges_keeps_the_socket_and_loses_the_rights() -> None:
    r = subprocess.run([sys.executable, "-c", DROP], check=False, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 capturing on lo needs CAP_NET_RAW"), r.stdout


@needs_capture
def test_bad_filter_is_one_line_with_libpcaps_words() -> None:
    with pytest.raises(LiveCaptureError, match=r"^filter 'tcp prot 80': .*syntax error$"):
        LiveCapture("lo", bpf="tcp prot 80")
    with pytest.raises(LiveCaptureError, match="cooked"):
        LiveCapture("any", bpf="link[2:2] = 772")


# -- bpf.py without privileges --------------------------------------------------------------------


def _libpcap_or_skip() -> None:
    try:
        bpf.libpcap_version()
    except bpf.BpfError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("expr", ["tcp port 80", "udp or icmp6", "host 10.1.2.3 and not arp"])
@needs_tcpdump
def test_compile_equals_tcpdump_dd(expr: str) -> None:
    _libpcap_or_skip()
    r = subprocess.run(["tcpdump", "-y", "EN10MB", "-dd", expr],
                       check=False, capture_output=True, text=True, timeout=30)
    if r.returncode:
        pytest.skip(f"tcpdump -dd: {r.stderr.strip()}")
    assert bpf.compile_filter(expr).dump() + "\n" == r.stdout


def test_cooked_rewrite_and_loopback_prologue() -> None:
    _libpcap_or_skip()
    prog = bpf.compile_filter("udp", linktype=linktypes.LINUX_SLL)
    assert prog.insns[0] == (0x28, 0, 0, 14)  # ldh [14]: the SLL protocol field
    fixed = bpf.cooked(prog)
    assert fixed.insns[0] == (0x28, 0, 0, bpf.SKF_AD_OFF + bpf.SKF_AD_PROTOCOL)
    assert fixed.insns[2] == (0x30, 0, 0, 9)  # ldb [25] -> [9]: IPv4 protocol, no SLL header
    with_prologue = bpf.drop_outgoing(fixed, 1)
    assert len(with_prologue) == len(fixed) + 5
    assert with_prologue.insns[5:] == fixed.insns
    assert with_prologue.insns[4] == (bpf.BPF_RET | bpf.BPF_K, 0, 0, 0)
    assert bpf.accept_all(100).insns == ((bpf.BPF_RET | bpf.BPF_K, 0, 0, 100),)


def test_bpf_error_text_and_missing_libpcap(monkeypatch: pytest.MonkeyPatch) -> None:
    _libpcap_or_skip()
    with pytest.raises(bpf.BpfError) as err:
        bpf.compile_filter("port 99999999")
    assert str(err.value).startswith("filter 'port 99999999': ")
    assert "\n" not in str(err.value)
    monkeypatch.setattr(bpf, "_lib", None)
    monkeypatch.setattr(bpf, "_LIBPCAP_NAMES", ("libpcap-not-here.so.7",))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(bpf.BpfError, match=r"^tcpdump-style filters need libpcap, which is not"):
        bpf.compile_filter("tcp")


# -- interfaces.py --------------------------------------------------------------------------------


def test_list_interfaces_lo() -> None:
    found = {i.name: i for i in list_interfaces(include_any=True)}
    lo = found["lo"]
    assert lo.index >= 1 and lo.up and lo.mtu > 0
    assert lo.link_type == "loopback" and lo.linktype == linktypes.ETHERNET
    assert "127.0.0.1/8" in lo.ipv4
    assert lo.state in ("UNKNOWN", "UP")
    assert found["any"].linktype == linktypes.LINUX_SLL
    assert lo.flag_names[:1] == ("UP",)
    assert lo.as_dict()["link_type"] == "loopback"


# -- (c) a veth pair between two namespaces --------------------------------------------------


@dataclass
class Veth:
    a: str
    b: str
    ip_a: str
    ip_b: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def veth() -> Iterator[Veth]:
    if SKIP is not None:
        pytest.skip(SKIP)
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) not installed")
    tag = os.getpid() % 200
    ns = Veth(f"plA{os.getpid()}", f"plB{os.getpid()}", f"10.231.{tag}.1", f"10.231.{tag}.2")
    try:
        _ip("netns", "add", ns.a)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create network namespaces: {exc.stderr.decode().strip()}")
    try:
        _ip("netns", "add", ns.b)
        for n in (ns.a, ns.b):  # no IPv6 autoconfiguration chatter in the captures
            subprocess.run(["ip", "netns", "exec", n, "sysctl", "-qw",
                            "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"],
                           check=False, capture_output=True, timeout=30)
        _ip("-n", ns.a, "link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", ns.b)
        _ip("-n", ns.a, "addr", "add", f"{ns.ip_a}/24", "dev", "vA")
        _ip("-n", ns.b, "addr", "add", f"{ns.ip_b}/24", "dev", "vB")
        for n, devs in ((ns.a, ("lo", "vA")), (ns.b, ("lo", "vB"))):
            for d in devs:
                _ip("-n", n, "link", "set", d, "up")
        yield ns
    finally:
        for n in (ns.a, ns.b):
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True,
                           timeout=30)


def _tagged_frames(ns: Veth) -> list[bytes]:
    """Ethernet frames with an 802.1Q tag (VLAN 5) and an 802.1ad outer tag (VLAN 7 over 5).

    The receiving kernel takes the outer tag off into packet metadata before packet sockets
    see the frame (skb_vlan_untag), so a capture on vB must put it back, as libpcap does.
    """
    def mac(ns_name: str, dev: str) -> bytes:
        out = subprocess.run(["ip", "-n", ns_name, "-br", "link", "show", dev],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return bytes.fromhex(out.split()[2].replace(":", ""))

    src, dst = mac(ns.a, "vA"), mac(ns.b, "vB")
    payload = b"tagged"
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(ns.ip_a), socket.inet_aton(ns.ip_b)) + udp
    q = struct.pack("!HH", 0x8100, 5)
    ad = struct.pack("!HH", 0x88A8, 7)
    return [dst + src + q + b"\x08\x00" + ip, dst + src + ad + q + b"\x08\x00" + ip]


def netns_traffic(ns: Veth) -> Callable[[], None]:
    """TCP between the namespaces (sockets opened inside them), UDP to a closed port (ICMP
    unreachable back), VLAN-tagged frames, and one datagram from `ip netns exec`."""
    srv = in_netns(ns.b, lambda: socket.create_server((ns.ip_b, 0)))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    def send() -> None:
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        cli = in_netns(ns.a, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        with cli:
            cli.settimeout(5)
            cli.connect((ns.ip_b, port))
            for n in (10, 3000):
                cli.sendall(b"q" * n)
                got = b""
                while len(got) < n:
                    got += cli.recv(65536)
        t.join(5)
        srv.close()
        udp = in_netns(ns.a, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        with udp:
            udp.sendto(b"to a closed port", (ns.ip_b, 9))
        raw = in_netns(ns.a, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
        with raw:
            raw.bind(("vA", 0))
            for frame in _tagged_frames(ns):
                raw.send(frame)
        subprocess.run(["ip", "netns", "exec", ns.a, sys.executable, "-c",
                        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                        f".sendto(b'from ip netns exec', ('{ns.ip_b}', 9))"],
                       check=True, timeout=30)
        time.sleep(0.05)

    return send


@needs_tcpdump
def test_veth_in_namespace_matches_tcpdump(veth: Veth, tmp_path: Path) -> None:
    send = netns_traffic(veth)
    expr = "arp or icmp or tcp or udp"
    ref_dev, ref_any = tmp_path / "vB.pcap", tmp_path / "any.pcap"
    with tcpdump(ref_dev, "vB", "", netns=veth.b), \
            tcpdump(ref_any, "any", expr, netns=veth.b, linktype="LINUX_SLL"):
        caps = {
            "ring vB": LiveCapture("vB", netns=veth.b, backend="ring"),
            "recv vB": LiveCapture("vB", netns=veth.b, backend="recv"),
            "ring any": LiveCapture("any", netns=veth.b, bpf=expr, backend="ring"),
        }
        cols = {k: Collector(c) for k, c in caps.items()}
        send()
        settle(*cols.values())
        got = {k: col.finish() for k, col in cols.items()}
        for c in caps.values():
            c.close()
        wait_for_tcpdump(ref_dev, len(got["ring vB"]))
        wait_for_tcpdump(ref_any, len(got["ring any"]))
    dev, anyf = read_pcap(ref_dev), read_pcap(ref_any)
    assert caps["ring vB"].linktype == linktypes.ETHERNET
    assert caps["ring any"].linktype == linktypes.LINUX_SLL
    assert_same_frames(got["ring vB"], dev, "ring on vB")
    assert_same_frames(got["recv vB"], dev, "recv on vB")
    assert_same_frames(got["ring any"], anyf, "ring on any")
    tagged = [d[12:22] for d, _ in dev if d[12:14] in (b"\x81\x00", b"\x88\xa8")]
    assert tagged == [bytes.fromhex("81000005 0800 4500 0022"),
                      bytes.fromhex("88a80007 81000005 0800")], "VLAN tags put back"
    assert any(d[12:14] == b"\x08\x06" for d, _ in dev), "ARP seen"
    assert any(b"from ip netns exec" in d for d, _ in dev)
    # The namespace's devices, asked from inside it.
    names = {i.name: i for i in list_interfaces(netns=veth.b)}
    assert f"{veth.ip_b}/24" in names["vB"].ipv4 and names["vB"].link_type == "ether"


SUBPROCESS_CAPTURE = textwrap.dedent("""
    import signal, sys
    from portlens.sources.live import LiveCapture
    from portlens.sources.writer import PcapWriter
    cap = LiveCapture("vB", bpf=sys.argv[2], promisc=True)
    signal.signal(signal.SIGTERM, lambda *_: cap.stop())
    with PcapWriter(sys.argv[1], linktype=cap.linktype, nanosecond=True) as w:
        print("ready", flush=True)
        for batch in cap:
            w.write_batch(batch)
    print("stopped", cap.stats().received, flush=True)
""")


def _promiscuity(ns: str, dev: str) -> int:
    out = subprocess.run(["ip", "-n", ns, "-d", "link", "show", dev], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    m = re.search(r"promiscuity (\d+)", out)
    assert m, out
    return int(m.group(1))


@needs_tcpdump
def test_capture_under_ip_netns_exec_with_sigterm_and_promisc(veth: Veth, tmp_path: Path) -> None:
    send = netns_traffic(veth)
    expr = f"host {veth.ip_a}"
    ours, ref = tmp_path / "ours.pcap", tmp_path / "tcpdump.pcap"
    with tcpdump(ref, "vB", expr, netns=veth.b):
        proc = subprocess.Popen(
            ["ip", "netns", "exec", veth.b, sys.executable, "-c", SUBPROCESS_CAPTURE,
             str(ours), expr], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            assert _promiscuity(veth.b, "vB") >= 1
            send()
            proc.send_signal(signal.SIGTERM)  # the capture drains what arrived before it
            out, err = proc.communicate(timeout=60)
            wait_for_tcpdump(ref, len(read_pcap(ours)))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert proc.returncode == 0, err
    assert out.startswith("stopped")
    assert_same_frames(read_pcap(ours), read_pcap(ref), "subprocess capture on vB")
    assert _promiscuity(veth.b, "vB") == 0


@needs_capture
def test_promiscuous_mode_ends_with_the_process_even_on_kill(veth: Veth) -> None:
    script = ("from portlens.sources.live import LiveCapture; import time\n"
              "c = LiveCapture('vB'); print('open', flush=True); time.sleep(60)")
    proc = subprocess.Popen(["ip", "netns", "exec", veth.b, sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        assert _promiscuity(veth.b, "vB") == 1
    finally:
        proc.kill()
        proc.wait(10)
    assert _promiscuity(veth.b, "vB") == 0


def test_down_interface_and_missing_namespace(veth: Veth) -> None:
    _ip("-n", veth.b, "link", "add", "vC", "type", "veth", "peer", "name", "vD")  # both down
    with pytest.raises(LiveCaptureError, match=r"^interface vC is down: `ip link set vC up`"):
        LiveCapture("vC", netns=veth.b)
    with pytest.raises(LiveCaptureError, match="no network namespace 'plNope'"):
        LiveCapture("lo", netns="plNope")
    with pytest.raises(LiveCaptureError, match=r"^no interface 'eth0'; interfaces: lo, vB"):
        LiveCapture("eth0", netns=veth.b)


def test_interface_going_down_then_away(veth: Veth) -> None:
    """Down: the capture waits (packets resume when it is up). Deleted: a one-line error."""
    _ip("-n", veth.b, "link", "add", "vE", "type", "veth", "peer", "name", "vF")
    _ip("-n", veth.b, "link", "set", "vE", "up")
    for backend in ("ring", "recv"):
        cap = LiveCapture("vE", netns=veth.b, backend=backend)
        col = Collector(cap)
        _ip("-n", veth.b, "link", "set", "vE", "down")
        time.sleep(0.3)
        assert col.thread.is_alive() and col.failure() is None
        _ip("-n", veth.b, "link", "set", "vE", "up")
        time.sleep(0.2)
        _ip("-n", veth.b, "link", "del", "vE")
        col.thread.join(2)
        assert not col.thread.is_alive()
        assert isinstance(col.failure(), LiveCaptureError)
        assert str(col.failure()) == "interface vE disappeared"
        cap.close()
        if backend == "ring":
            _ip("-n", veth.b, "link", "add", "vE", "type", "veth", "peer", "name", "vF")
            _ip("-n", veth.b, "link", "set", "vE", "up")
