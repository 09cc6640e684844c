"""Live capture from a Linux AF_PACKET socket: a TPACKET_V3 ring, a recvmsg loop, or scapy.

``LiveCapture("eth0", bpf="tcp port 443")`` is an iterator of :class:`FrameBatch`, the same
contract the file readers keep, so everything downstream (decoder, tracker, reports) cannot tell
a live source from a file.

Why a TPACKET_V3 ring (``backend="ring"``, the default on Linux): the kernel writes packets
straight into memory we have mapped, packed into large blocks, and hands over a whole block at a
time. Reading a block costs no system call; one ``poll`` waits for the next. The compiled core
(``_core.RingWalker``, crates/core/src/ring.rs) walks the packet chain of the blocks handed
over and copies their frames back to back into a batch buffer, building the SLL header and
the VLAN tag on the way, with the GIL released; then the blocks go back to the kernel. Batch
buffers are reused once no batch refers to them (``_BufferPool``), so that while the analysis
keeps up a batch costs no fresh pages. Python never touches a packet one at a time.
``portlens.reference.ring`` is the numpy version the core is tested against.

Rules, and where they come from:

* Link type: Ethernet devices and the loopback device (ARPHRD_LOOPBACK, but Linux gives it a
  14-byte Ethernet header with zero addresses) are captured raw, as LINKTYPE_ETHERNET. ``any``
  and every other device are captured cooked (SOCK_DGRAM, the kernel removes the link header)
  and get a 16-byte LINUX_SLL header built from the socket address the kernel gives with each
  packet (packet type, ARPHRD, address, protocol), as libpcap does. Address bytes past
  ``sll_halen`` are zero (libpcap copies whatever the kernel left there).
* Loopback de-duplication: a packet socket sees each loopback packet twice, once leaving
  (``PACKET_OUTGOING``) and once arriving. Like libpcap we keep only the arriving copy, and we
  drop the other in the kernel (a 5-instruction BPF prologue tests the ancillary packet type and
  ifindex), so socket statistics count each packet once. The same rule holds on ``any`` for the
  loopback device only. A user-space check on ``sll_pkttype``/``sll_ifindex`` (the sockaddr_ll
  that follows each ``tpacket3_hdr``) backs it up and counts in ``duplicates_dropped``.
* Filters: tcpdump syntax compiled by libpcap (sources/bpf.py), run in the kernel. Without a
  filter a ``ret #snaplen`` program still cuts packets in the kernel.
* VLAN tags the NIC or the kernel stripped (``TP_STATUS_VLAN_VALID``) are put back, at byte 12
  (Ethernet) or 14 (SLL), as libpcap does.
* Timestamps are the kernel's ``tp_sec``/``tp_nsec`` (ring) or ``SCM_TIMESTAMPNS`` (recv):
  integer nanoseconds, never a float.
* Statistics: ``PACKET_STATISTICS`` counts packets that passed the filter (received) and those
  the kernel dropped because the ring or buffer was full; reading them resets the kernel's
  counters, so we accumulate.
* Promiscuous mode is a ``PACKET_MR_PROMISC`` membership of the socket: the kernel drops it when
  the socket closes, however the process ends (even ``kill -9``), unlike ``ifconfig promisc``.
* Stopping: ``stop()`` writes to a pipe the reader polls together with the socket, so it takes
  effect at once, from any thread or a signal handler. When idle, iteration yields an empty
  batch every ``timeout_ms`` so the caller can check its own deadline or packet count.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import importlib
import logging
import mmap
import os
import pwd
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from portlens.sources import bpf as _bpf
from portlens.sources import linktypes
from portlens.sources.closing import Closing
from portlens.sources.frames import FrameBatch, InterfaceInfo
from portlens.sources.interfaces import (
    ARPHRD_LOOPBACK,
    IFF_UP,
    SIOCGIFFLAGS,
    SIOCGIFHWADDR,
    capture_linktype,
    in_netns,
)

__all__ = [
    "DEFAULT_BLOCK_COUNT",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_SNAPLEN",
    "DEFAULT_TIMEOUT_MS",
    "Backend",
    "CaptureStats",
    "LiveCapture",
    "LiveCaptureError",
    "drop_privileges",
]

Backend = Literal["auto", "ring", "recv", "scapy"]

DEFAULT_SNAPLEN: Final = 262144
DEFAULT_BLOCK_SIZE: Final = 1 << 20
"""1 MiB blocks: room for the largest snaplen packet (256 KiB) several times over, and few
enough blocks that walking them is cheap."""
DEFAULT_BLOCK_COUNT: Final = 32
"""32 MiB of ring: about a quarter of a second of a saturated 1 Gb/s link, so a short stall of
the Python side (a garbage collection, a slow report) loses nothing."""
DEFAULT_TIMEOUT_MS: Final = 100
MAX_BLOCKS_PER_BATCH: Final = 8
POOLED_BUFFERS: Final = 4
"""Batch buffers of MAX_BLOCKS_PER_BATCH blocks each kept for reuse: 32 MiB at most with
1 MiB blocks (only the pages frames were written to are resident)."""

# linux/if_ether.h, linux/if_packet.h, asm-generic/socket.h
ETH_P_ALL: Final = 0x0003
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_AUXDATA: Final = 8
PACKET_VERSION: Final = 10
PACKET_MR_PROMISC: Final = 1
TPACKET_V3: Final = 2
PACKET_OUTGOING: Final = 4
SO_RCVBUFFORCE: Final = 33
SO_TIMESTAMPNS: Final = 35
SIOCGSTAMPNS: Final = 0x8907
SIOCGIFINDEX: Final = 0x8933
TP_STATUS_KERNEL: Final = 0
TP_STATUS_USER: Final = 1
TP_STATUS_LOSING: Final = 4
TP_STATUS_VLAN_VALID: Final = 0x10
TP_STATUS_VLAN_TPID_VALID: Final = 0x40
ETH_P_8021Q: Final = 0x8100
SLL_HDR_LEN: Final = 16
VLAN_TAG_LEN: Final = 4

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status,
# num_pkts, offset_to_first_pkt, blk_len, seq_num, ts_first_pkt, ts_last_pkt (48 bytes).
_BLOCK_STATUS_AT: Final = 8
_U32: Final = struct.Struct("<I")
# struct tpacket3_hdr (48 bytes), then struct sockaddr_ll at TPACKET_ALIGN(48) = 48.
TP3_SEC: Final = 4
TP3_NSEC: Final = 8
TP3_SNAPLEN: Final = 12
TP3_LEN: Final = 16
TP3_STATUS: Final = 20
TP3_MAC: Final = 24
TP3_VLAN_TCI: Final = 32
TP3_VLAN_TPID: Final = 36
SLL_PROTOCOL: Final = 48 + 2
SLL_IFINDEX: Final = 48 + 4
SLL_HATYPE: Final = 48 + 8
SLL_PKTTYPE: Final = 48 + 10
SLL_HALEN: Final = 48 + 11
SLL_ADDR: Final = 48 + 12
TP3_SLL_END: Final = 48 + 20
"""Where the kernel's own header area ends: a built SLL header must start at or after it."""

_AUXDATA: Final = struct.Struct("=IIIHHHH")
"""struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, vlan_tci, vlan_tpid."""
_TIMESPEC: Final = struct.Struct("=qq")
_SLL: Final = struct.Struct("!HHH8sH")


class LiveCaptureError(Exception):
    """A capture that cannot start or go on, in one line a user can act on."""


class CaptureStats(NamedTuple):
    """Cumulative kernel counters of one capture, as tcpdump prints them at the end.

    ``received`` counts packets that passed the filter, including ``dropped``: those the kernel
    could not queue because the ring (or socket buffer) was full.
    """

    received: int
    dropped: int


# -- helpers ------------------------------------------------------------------------------------


def _no_privilege(interface: str) -> LiveCaptureError:
    # Never advise `setcap` on the interpreter: the capability would belong to every Python
    # program on the host, not to portlens. Root for the moment the socket opens, then -Z,
    # keeps it to one process; a launcher holding the capability keeps it to one program.
    return LiveCaptureError(
        f"capturing on {interface} needs CAP_NET_RAW: run as root with -Z USER (the "
        f"capture socket is opened, then root is dropped for USER), or from a launcher that "
        f"holds the capability for portlens alone (setcap on python would give it to every "
        f"Python program)"
    )


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _bind(sock: socket.socket, ifindex: int) -> None:
    """bind(2) to an ifindex. Python's AF_PACKET bind takes a name, and ``any`` (ifindex 0) has
    none, so the sockaddr_ll is built here."""
    addr = struct.pack("HHiHBB8s", socket.AF_PACKET, socket.htons(ETH_P_ALL), ifindex, 0, 0, 0,
                       b"")
    buf = ctypes.create_string_buffer(addr, len(addr))
    if _libc().bind(sock.fileno(), buf, len(addr)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _interface_names() -> str:
    return ", ".join(name for _, name in sorted(socket.if_nameindex())) + ", any"


def _read_stats(sock: socket.socket) -> tuple[int, int, int]:
    """(packets, drops, freeze count) since the last call: the kernel resets them on read."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
    if len(raw) >= 12:
        packets, drops, frozen = struct.unpack_from("=III", raw)
        return packets, drops, frozen
    packets, drops = struct.unpack_from("=II", raw)
    return packets, drops, 0


def _vlan_insert(frame: bytes, at: int, tpid: int, tci: int) -> bytes:
    return frame[:at] + struct.pack("!HH", tpid, tci) + frame[at:]


class _Setup(NamedTuple):
    """What opening the socket found out (done in the capture's network namespace)."""

    sock: socket.socket
    ifindex: int
    lo_ifindex: int | None
    linktype: int
    arphrd: int


# -- readers ------------------------------------------------------------------------------------


class _Reader:
    """One way of getting packets out of the socket: ``read`` what is ready, never block."""

    backend: str
    sock: Any
    duplicates: int = 0

    def read(self) -> FrameBatch | None:
        raise NotImplementedError

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def counters(self) -> tuple[int, int, int]:
        return _read_stats(self.sock)

    def close(self) -> None:
        self.sock.close()


class _BufferPool:
    """Batch buffers, each used again once no batch refers to it any more.

    Why: a buffer freshly allocated for every batch is fresh memory from the kernel (the
    allocator maps large blocks and unmaps them when freed), and writing it costs a page fault
    per 4 KiB. When the analysis keeps up, reuse takes the ring reader from about 150 to 100 ns a
    637-byte frame (scripts/ring_walk_bench.py); a long backlog is fresh memory either way.

    When a buffer is free: a batch holds a view of it, and numpy makes every view (of a view,
    too) refer to the buffer itself, as does anything reading it in place (a memoryview, the
    core borrowing it with the GIL released). So when its reference count is down to the
    pool's own references, nothing anywhere can reach its bytes, however long the backlog a
    batch went to; CPython's counts are exact, and a probe calibrates what "the pool's own"
    comes to. A buffer still in use is never handed out: past
    ``keep`` buffers all in use, ``take`` gives None and the caller allocates afresh.

    The cost: a batch counts (in the backlog's limit) the bytes of its frames, but keeps its
    whole buffer, up to ``size`` bytes of it resident from earlier use; hence a small ``keep``.
    """

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self.keep = keep
        # The first entry is a probe nothing else ever refers to: its count, read by the same
        # code as every buffer's, is what a free buffer's count is on this interpreter (3.14
        # borrows some references that earlier versions counted).
        self._buffers: list[npt.NDArray[np.uint8]] = [np.empty(0, dtype=np.uint8)]

    def take(self) -> npt.NDArray[np.uint8] | None:
        free = -1
        for buf in self._buffers:
            refs = sys.getrefcount(buf)
            if free < 0:  # the probe
                free = refs
            elif refs <= free:
                return buf
        if len(self._buffers) > self.keep:
            return None
        buf = np.empty(self.size, dtype=np.uint8)
        self._buffers.append(buf)
        return buf


class _RingReader(_Reader):
    """TPACKET_V3: blocks of packets in a mapped ring, handed over whole."""

    backend = "ring"

    def __init__(
        self,
        sock: socket.socket,
        *,
        block_size: int,
        block_count: int,
        timeout_ms: int,
        snaplen: int,
        cooked: bool,
        linktype: int,
        lo_ifindex: int | None,
    ) -> None:
        self.sock = sock
        self.block_size = block_size
        self.block_count = block_count
        self.snaplen = snaplen
        self.cooked = cooked
        self.linktype = linktype
        self.lo_ifindex = lo_ifindex
        self.losing_blocks = 0
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        # tpacket_req3: block size, block count, frame size, frame count, retire timeout (ms),
        # private bytes per block, feature word. V3 ignores frames but checks that
        # frames_per_block * blocks == frames; one frame per block satisfies it.
        req = struct.pack(
            "=7I", block_size, block_count, block_size, block_count, max(1, timeout_ms), 0, 0
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        try:
            self.mm = mmap.mmap(
                sock.fileno(),
                block_size * block_count,
                mmap.MAP_SHARED,
                mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except OSError:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, bytes(28))
            raise
        self.ring: npt.NDArray[np.uint8] | None = np.frombuffer(self.mm, dtype=np.uint8)
        self.current = 0
        self._core: Any = importlib.import_module("portlens._core")
        self._walker = self._core.RingWalker()
        self.pool = _BufferPool(min(MAX_BLOCKS_PER_BATCH, block_count) * block_size,
                                POOLED_BUFFERS)

    def read(self) -> FrameBatch | None:
        """The frames of every block the kernel has handed over (up to a cap), each block
        given back as soon as its frames are out."""
        ring = self.ring
        assert ring is not None
        mm = self.mm
        bases: list[int] = []
        b = self.current
        bs = self.block_size
        while len(bases) < min(MAX_BLOCKS_PER_BATCH, self.block_count):  # each block once
            base = b * bs
            # block_status first: the kernel sets it last, after the rest of the block.
            status = _U32.unpack_from(mm, base + _BLOCK_STATUS_AT)[0]
            if not status & TP_STATUS_USER:
                break
            if status & TP_STATUS_LOSING:
                self.losing_blocks += 1
            bases.append(base)
            b = (b + 1) % self.block_count
        if not bases:
            return None
        self.current = b
        out = self.pool.take()
        try:
            # One view per block we own, never one of the whole ring: the kernel is writing
            # the other blocks meanwhile.
            data, used, offset, caplen, wirelen, ts_ns, dups = self._walker.frames(
                [ring[base : base + bs] for base in bases], self.snaplen, self.cooked,
                self.lo_ifindex, out)
        except self._core.RingError as exc:
            raise LiveCaptureError(str(exc)) from None
        finally:
            # The frames are copied out (or the blocks are damaged): give the blocks back.
            for base in bases:
                _U32.pack_into(mm, base + _BLOCK_STATUS_AT, TP_STATUS_KERNEL)
        self.duplicates += dups
        n = len(offset)
        if not n:
            return None
        if data is None:  # the frames went into the pool's buffer
            assert out is not None
            data = out[:used]
        return FrameBatch(
            data=data,
            offset=offset,
            caplen=caplen,
            wirelen=wirelen,
            ts_ns=ts_ns,
            linktype=np.full(n, self.linktype, dtype=np.uint16),
            interface=np.zeros(n, dtype=np.uint16),
            frame=np.zeros(n, dtype=np.int64),
        )

    def close(self) -> None:
        self.ring = None
        try:
            self.mm.close()
        finally:
            self.sock.close()


class _RecvReader(_Reader):
    """One ``recvmsg`` per packet: the fallback where a ring cannot be set up, and a check.

    Wire lengths and stripped VLAN tags come from ``PACKET_AUXDATA``, timestamps from
    ``SCM_TIMESTAMPNS`` (``SIOCGSTAMPNS`` if a kernel ever leaves it out).
    """

    backend = "recv"
    max_batch = 4096

    def __init__(
        self,
        sock: socket.socket,
        *,
        buffer_bytes: int,
        snaplen: int,
        cooked: bool,
        linktype: int,
        lo_name: str | None,
    ) -> None:
        self.sock = sock
        self.snaplen = snaplen
        self.cooked = cooked
        self.linktype = linktype
        self.lo_name = lo_name
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        self._buf = bytearray(max(snaplen, 1))
        self._view = memoryview(self._buf)
        self._anc = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUXDATA.size) + 64

    def read(self) -> FrameBatch | None:
        frames: list[bytes] = []
        ts: list[int] = []
        wl: list[int] = []
        sock = self.sock
        view = self._view
        vlan_at = SLL_HDR_LEN - 2 if self.cooked else 12
        while len(frames) < self.max_batch:
            try:
                n, anc, _, addr = sock.recvmsg_into((view,), self._anc, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            ifname, proto, pkttype, hatype, haddr = addr
            if pkttype == PACKET_OUTGOING and ifname == self.lo_name:
                self.duplicates += 1
                continue
            t: int | None = None
            aux: tuple[int, ...] | None = None
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    t = sec * 1_000_000_000 + nsec
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    aux = _AUXDATA.unpack_from(data)
            if t is None:
                raw = fcntl.ioctl(sock.fileno(), SIOCGSTAMPNS, bytes(_TIMESPEC.size))
                sec, nsec = _TIMESPEC.unpack(raw)
                t = sec * 1_000_000_000 + nsec
            frame = bytes(view[:n])
            wire = aux[1] if aux is not None else n
            if self.cooked:
                frame = _SLL.pack(pkttype, hatype, len(haddr), bytes(haddr[:8]), proto) + frame
                wire += SLL_HDR_LEN
            if aux is not None:
                status, tci, tpid = aux[0], aux[5], aux[6]
                if (tci or status & TP_STATUS_VLAN_VALID) and len(frame) >= vlan_at:
                    if not tpid and not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = ETH_P_8021Q
                    frame = _vlan_insert(frame, vlan_at, tpid, tci)
                    wire += VLAN_TAG_LEN
            frames.append(frame[: self.snaplen])
            ts.append(t)
            wl.append(wire)
        if not frames:
            return None
        return FrameBatch.from_frames(frames, ts, linktype=self.linktype, wirelen=wl)


class _ScapyReader(_Reader):
    """scapy's listening socket, for systems without AF_PACKET (and as a cross-check on Linux).

    scapy opens the socket, compiles and attaches the filter, and sets promiscuous mode. On
    Linux its socket is an AF_PACKET socket, so we read it with the recv reader: that gives the
    exact nanosecond timestamp and the ``sll_pkttype`` scapy's ``recv_raw`` throws away, which
    the loopback de-duplication needs (scapy's own ``sniff`` on ``lo`` reports every packet
    twice). Elsewhere, scapy's ``recv_raw`` gives a float timestamp, rounded to nanoseconds.
    """

    backend = "scapy"

    def __init__(
        self,
        interface: str,
        *,
        bpf: str | None,
        promisc: bool,
        snaplen: int,
        buffer_bytes: int,
        arphrd: int | None,
    ) -> None:
        try:
            import scapy.arch  # noqa: F401 - sets conf.L2listen for this platform
            from scapy.config import conf
            from scapy.error import Scapy_Exception
        except ImportError:
            raise LiveCaptureError("backend 'scapy' needs scapy: pip install scapy") from None
        quiet = logging.getLogger("scapy.runtime")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "Unable to guess type" on lo: we set the type ourselves
        try:
            self.ssock: Any = conf.L2listen(iface=interface, filter=bpf, promisc=promisc)
        except PermissionError:
            raise _no_privilege(interface) from None
        except (OSError, Scapy_Exception, ValueError) as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise LiveCaptureError(f"scapy cannot capture on {interface}: {text}") from None
        finally:
            quiet.setLevel(level)
        self.sock = self.ssock
        self._counted_duplicates = 0
        ins = getattr(self.ssock, "ins", None)
        self.inner: _RecvReader | None = None
        if isinstance(ins, socket.socket) and ins.family == getattr(socket, "AF_PACKET", -1):
            loopback = arphrd == ARPHRD_LOOPBACK
            self.linktype = linktypes.ETHERNET
            self.inner = _RecvReader(
                ins,
                buffer_bytes=buffer_bytes,
                snaplen=snaplen,
                cooked=False,
                linktype=self.linktype,
                lo_name=interface if loopback else None,
            )
        else:
            num = getattr(getattr(conf, "l2types", None), "layer2num", {})
            self.linktype = int(num.get(getattr(self.ssock, "LL", None), linktypes.ETHERNET))
        self.snaplen = snaplen

    @property
    def duplicates(self) -> int:  # type: ignore[override]
        return self.inner.duplicates if self.inner is not None else 0

    def fileno(self) -> int:
        return int(self.ssock.fileno())

    def counters(self) -> tuple[int, int, int]:
        """The kernel's counters, less the loopback copies (the kernel counted both)."""
        if self.inner is None:
            return 0, 0, 0
        packets, drops, frozen = self.inner.counters()
        new = self.inner.duplicates - self._counted_duplicates
        self._counted_duplicates = self.inner.duplicates
        return max(packets - new, 0), drops, frozen

    def read(self) -> FrameBatch | None:
        if self.inner is not None:
            return self.inner.read()
        frames: list[bytes] = []
        ts: list[int] = []
        while len(frames) < 4096 and select.select([self.ssock], [], [], 0)[0]:
            _, data, t = self.ssock.recv_raw(self.snaplen)
            if data is None:
                continue
            frames.append(bytes(data)[: self.snaplen])
            ts.append(round(float(t) * 1e9) if t is not None else 0)
        if not frames:
            return None
        return FrameBatch.from_frames(frames, ts, linktype=self.linktype)

    def close(self) -> None:
        self.ssock.close()



# -- the capture ----------------------------------------------------------------------------------


class LiveCapture(Closing):
    """Packets from a network interface, as FrameBatches, until :meth:`stop` or :meth:`close`.

    The socket is opened (and the filter compiled and attached) by the constructor, so every
    setup error is raised here, as one-line :class:`LiveCaptureError`, and privileges can be
    dropped right after (:func:`drop_privileges`). Iterate for batches; when no packet comes,
    an empty batch is yielded every ``timeout_ms`` so the caller keeps control.

    ``interface``: a device name, or ``any`` for all devices (cooked, LINUX_SLL).
    ``bpf``: a tcpdump expression, run in the kernel. ``promisc``: promiscuous mode on the
    device while the socket is open (not for ``any``). ``backend``: ``ring`` (TPACKET_V3),
    ``recv`` (recvmsg per packet), ``scapy``, or ``auto`` (ring, else recv, else scapy).
    ``block_size``/``block_count``: the ring (block_size a multiple of the page size and larger
    than a snaplen packet); the recv backend uses their product as its socket buffer.
    ``timeout_ms``: how long a partly filled ring block waits before the kernel hands it over,
    and how long iteration waits before an idle (empty) batch. ``netns``: capture inside a
    network namespace (a name from ``ip netns``, or a path like ``/proc/PID/ns/net``).
    """

    def __init__(
        self,
        interface: str,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        bpf: str | None = None,
        promisc: bool = True,
        backend: Backend = "auto",
        block_size: int = DEFAULT_BLOCK_SIZE,
        block_count: int = DEFAULT_BLOCK_COUNT,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        netns: str | None = None,
    ) -> None:
        if backend not in ("auto", "ring", "recv", "scapy"):
            raise ValueError(f"backend must be auto, ring, recv or scapy, not {backend!r}")
        if not 0 < snaplen <= 0x7FFFFFFF:
            raise ValueError(f"snaplen must be positive, not {snaplen}")
        if block_size <= 0 or block_size % mmap.PAGESIZE:
            raise ValueError(f"block_size must be a multiple of the page size {mmap.PAGESIZE}")
        if block_count < 1:
            raise ValueError("block_count must be at least 1")
        if timeout_ms < 1:
            raise ValueError("timeout_ms must be at least 1")
        self.interface = interface
        self.snaplen = snaplen
        self.filter = bpf
        self.promisc = promisc
        self.block_size = block_size
        self.block_count = block_count
        self.timeout_ms = timeout_ms
        self.netns = netns
        self.frames_read = 0
        """Frames delivered so far (the number of the last frame)."""
        self._received = 0
        self._dropped = 0
        self._frozen = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._drain = True
        self._closed = False
        self._busy = False
        self._close_requested = False
        self._netdown = False
        self._ifindex = 0
        self._stop_r, self._stop_w = os.pipe()
        for fd in (self._stop_r, self._stop_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        try:
            self._reader = self._open(backend)
        except BaseException:
            os.close(self._stop_r)
            os.close(self._stop_w)
            raise
        self.backend: str = self._reader.backend
        """The backend in use: ring, recv or scapy."""
        self.linktype: int = int(getattr(self._reader, "linktype", linktypes.ETHERNET))
        """LINKTYPE_* of every frame: ETHERNET or LINUX_SLL."""

    # -- opening ---------------------------------------------------------------------------------

    def _open(self, backend: Backend) -> _Reader:
        name = self.interface
        buffer_bytes = self.block_size * self.block_count
        if backend == "scapy" or (backend == "auto" and not hasattr(socket, "AF_PACKET")):
            if self.netns is not None:
                raise LiveCaptureError(
                    "backend 'scapy' cannot capture in another network namespace; use ring"
                )
            if name == "any":
                raise LiveCaptureError("backend 'scapy' cannot capture on 'any'; use ring")
            arphrd = None
            if hasattr(socket, "AF_PACKET"):
                _, _, arphrd = self._probe()
                if capture_linktype(arphrd) != linktypes.ETHERNET:
                    raise LiveCaptureError(
                        f"backend 'scapy' captures Ethernet and loopback devices only; "
                        f"{name} is not one; use ring"
                    )
            return _ScapyReader(
                name,
                bpf=self.filter,
                promisc=self.promisc,
                snaplen=min(self.snaplen, 65535) if self.filter else self.snaplen,
                buffer_bytes=buffer_bytes,
                arphrd=arphrd,
            )
        if not hasattr(socket, "AF_PACKET"):
            raise LiveCaptureError(
                f"backend {backend!r} needs Linux AF_PACKET sockets; use backend='scapy'"
            )
        if backend in ("auto", "ring") and self.block_size < self.snaplen + 256:
            if backend == "ring":
                raise ValueError(
                    f"block_size {self.block_size} cannot hold a {self.snaplen}-byte packet"
                )
            backend = "recv"
        try:
            setup = in_netns(self.netns, self._open_socket)
        except OSError as exc:  # NetnsError: a namespace that is not there
            raise LiveCaptureError(str(exc.strerror or exc)) from None
        sock = setup.sock
        self._ifindex = setup.ifindex
        try:
            return self._configure(setup, backend, buffer_bytes)
        except BaseException:
            sock.close()
            raise

    def _probe(self) -> tuple[int, int | None, int]:
        """ifindex, the loopback device's ifindex and the ARPHRD of the capture interface.

        Runs in the capture's namespace (names resolve per namespace). A missing or down
        interface is a one-line error here, before any privilege is needed.
        """
        name = self.interface
        try:
            lo_ifindex: int | None = socket.if_nametoindex("lo")
        except OSError:
            lo_ifindex = None
        if name == "any":
            return 0, lo_ifindex, -1
        try:
            ifindex = socket.if_nametoindex(name)
        except (OSError, ValueError):
            raise LiveCaptureError(
                f"no interface {name!r}; interfaces: {_interface_names()}"
            ) from None
        ifr = struct.pack("16s24s", name.encode()[:15], b"")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            flags = struct.unpack_from("H", fcntl.ioctl(probe, SIOCGIFFLAGS, ifr), 16)[0]
            arphrd = struct.unpack_from("H", fcntl.ioctl(probe, SIOCGIFHWADDR, ifr), 16)[0]
        if not flags & IFF_UP:
            raise LiveCaptureError(f"interface {name} is down: `ip link set {name} up` first")
        return ifindex, lo_ifindex, int(arphrd)

    def _open_socket(self) -> _Setup:
        """The AF_PACKET socket, opened in the capture's namespace (it stays there)."""
        ifindex, lo_ifindex, arphrd = self._probe()
        linktype = capture_linktype(arphrd)
        kind = socket.SOCK_RAW if linktype == linktypes.ETHERNET else socket.SOCK_DGRAM
        try:
            # Protocol 0: no packet is queued before the filter and the ring are in place; the
            # bind with ETH_P_ALL at the end starts the flow.
            sock = socket.socket(socket.AF_PACKET, kind, 0)
        except PermissionError:
            raise _no_privilege(self.interface) from None
        return _Setup(sock, ifindex, lo_ifindex, linktype, arphrd)

    def _configure(self, setup: _Setup, backend: Backend, buffer_bytes: int) -> _Reader:
        sock, ifindex, lo_ifindex, linktype = setup.sock, setup.ifindex, setup.lo_ifindex, \
            setup.linktype
        name = self.interface
        cooked = linktype == linktypes.LINUX_SLL
        dedup = lo_ifindex if lo_ifindex is not None and ifindex in (0, lo_ifindex) else None
        try:
            if self.filter:
                program = _bpf.compile_filter(self.filter, linktype=linktype, snaplen=self.snaplen)
                if cooked:
                    program = _bpf.cooked(program)
            else:
                program = _bpf.accept_all(self.snaplen)
            if dedup is not None:
                program = _bpf.drop_outgoing(program, dedup)
            _bpf.attach_filter(sock, program)
        except _bpf.BpfError as exc:
            raise LiveCaptureError(str(exc)) from None
        reader: _Reader | None = None
        if backend in ("auto", "ring"):
            try:
                reader = _RingReader(
                    sock,
                    block_size=self.block_size,
                    block_count=self.block_count,
                    timeout_ms=self.timeout_ms,
                    snaplen=self.snaplen,
                    cooked=cooked,
                    linktype=linktype,
                    lo_ifindex=dedup,
                )
            except OSError as exc:
                if backend == "ring":
                    raise LiveCaptureError(
                        f"cannot set up the TPACKET_V3 ring on {name}: {exc.strerror or exc}"
                    ) from None
        if reader is None:
            reader = _RecvReader(
                sock,
                buffer_bytes=buffer_bytes,
                snaplen=self.snaplen,
                cooked=cooked,
                linktype=linktype,
                lo_name="lo" if dedup is not None else None,
            )
        try:
            if self.promisc and ifindex:
                mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            _bind(sock, ifindex)
        except PermissionError:
            reader.close()
            raise _no_privilege(name) from None
        except OSError as exc:
            reader.close()
            raise LiveCaptureError(f"cannot capture on {name}: {exc.strerror or exc}") from None
        return reader

    # -- public ----------------------------------------------------------------------------------

    @property
    def interfaces(self) -> list[InterfaceInfo]:
        """The one capture interface, as the file readers describe theirs (for pcapng -w)."""
        return [
            InterfaceInfo(
                id=0,
                linktype=self.linktype,
                snaplen=self.snaplen,
                name=self.interface,
                ticks_per_second=1_000_000_000,
            )
        ]

    @property
    def duplicates_dropped(self) -> int:
        """Outgoing loopback copies removed in user space (0 when the kernel prologue works)."""
        return self._reader.duplicates

    @property
    def ring_full(self) -> int:
        """How many times the ring filled up and the kernel froze it (tp_freeze_q_cnt)."""
        self._update_stats()
        return self._frozen

    def stats(self) -> CaptureStats:
        """(received, dropped) since the capture started, from the kernel."""
        self._update_stats()
        return CaptureStats(self._received, self._dropped)

    def fileno(self) -> int:
        """The capture socket (for an outside event loop)."""
        return self._reader.fileno()

    def stop(self, *, drain: bool = True) -> None:
        """End iteration soon: safe from any thread and from a signal handler (takes no lock).

        With ``drain`` the iterator first hands over the packets that arrived before the call
        (waiting at most ``timeout_ms`` for the kernel to close the current ring block).
        """
        self._drain = self._drain and drain
        self._stopping = True
        if not self._closed:
            with contextlib.suppress(OSError):  # full pipe: a wake-up is already pending
                os.write(self._stop_w, b"x")

    def close(self) -> None:
        """Stop and release the socket (the kernel then leaves promiscuous mode)."""
        self.stop(drain=False)
        with self._lock:
            if self._closed:
                return
            if self._busy:  # another thread is reading: it releases when it returns
                self._close_requested = True
                return
            self._closed = True
        self._release()

    def __iter__(self) -> Iterator[FrameBatch]:
        return self._batches()

    def __del__(self) -> None:
        if getattr(self, "_reader", None) is not None and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()

    # -- reading ---------------------------------------------------------------------------------

    def _batches(self) -> Iterator[FrameBatch]:
        poller = select.poll()
        sock_fd = self._reader.fileno()
        poller.register(sock_fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            batches = self._step(poller, sock_fd)
            if batches is None:
                return
            yield from batches

    def _step(self, poller: select.poll, sock_fd: int) -> list[FrameBatch] | None:
        """The next batch (an empty one when idle); after stop() the drained rest; None: over."""
        with self._lock:
            if self._closed:
                return None
            self._busy = True
        try:
            if self._stopping:
                return self._final()
            batch = self._read()
            if batch is None:
                events = poller.poll(self.timeout_ms)
                for fd, ev in events:
                    if fd == sock_fd and ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                        self._socket_error(ev)
                if self._netdown and not events:
                    self._check_device()
                if self._stop_requested():
                    return self._final()
                batch = self._read()
            return [self._numbered(batch) if batch is not None else FrameBatch.empty()]
        finally:
            self._finish_step()

    def _read(self) -> FrameBatch | None:
        """The reader's ready packets; a pending socket error is handled as poll's would be."""
        try:
            return self._reader.read()
        except OSError as exc:
            if exc.errno == errno.ENETDOWN and self.interface != "any":
                self._netdown = True
                self._check_device()
                return None
            raise LiveCaptureError(
                f"capture on {self.interface} failed: {exc.strerror or exc}"
            ) from None

    def _stop_requested(self) -> bool:
        """Read the flag afresh: stop() may have set it (another thread, a signal) meanwhile."""
        return self._stopping

    def _final(self) -> list[FrameBatch] | None:
        """After stop(): what arrived before it, once, then the end.

        A ring block the kernel is still filling is handed over by its retire timer, so this
        waits up to ``timeout_ms`` for it; the socket queue of the other backends is just read.
        """
        if not self._drain:
            return None
        self._drain = False
        out: list[FrameBatch] = []
        deadline = time.monotonic() + (self.timeout_ms + 20) / 1000
        while True:
            batch = self._read()
            if batch is not None:
                out.append(self._numbered(batch))
            elif self.backend != "ring" or time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.005)
        return out or None

    def _finish_step(self) -> None:
        with self._lock:
            self._busy = False
            release = self._close_requested and not self._closed
            if release:
                self._closed = True
        if release:
            self._release()

    def _numbered(self, batch: FrameBatch) -> FrameBatch:
        n = len(batch)
        first = self.frames_read + 1
        self.frames_read += n
        return FrameBatch(
            data=batch.data,
            offset=batch.offset,
            caplen=batch.caplen,
            wirelen=batch.wirelen,
            ts_ns=batch.ts_ns,
            linktype=batch.linktype,
            interface=batch.interface,
            frame=np.arange(first, first + n, dtype=np.int64),
        )

    def _socket_error(self, events: int) -> None:
        sock = self._reader.sock
        err = 0
        if isinstance(sock, socket.socket):
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # reading clears it
        if err == errno.ENETDOWN and self.interface != "any":
            # Down, or being deleted: the kernel says ENETDOWN once, then nothing when the
            # device goes away. Like libpcap, look again at every idle timeout (_check_device).
            self._netdown = True
            self._check_device()
            return
        if err:
            raise LiveCaptureError(f"capture on {self.interface} failed: {os.strerror(err)}")
        if events & select.POLLNVAL:
            raise LiveCaptureError(f"capture on {self.interface}: the socket was closed")

    def _check_device(self) -> None:
        """After ENETDOWN: end the capture if the device is gone (or its name now means another
        device); carry on, quietly, while it is only down -- packets resume when it is up."""
        sock = self._reader.sock
        if not isinstance(sock, socket.socket):
            return
        ifr = struct.pack("16s24s", self.interface.encode()[:15], b"")
        try:
            index = struct.unpack_from("i", fcntl.ioctl(sock, SIOCGIFINDEX, ifr), 16)[0]
            flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, ifr), 16)[0]
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise LiveCaptureError(f"interface {self.interface} disappeared") from None
            return
        if index != self._ifindex:
            raise LiveCaptureError(f"interface {self.interface} disappeared")
        if flags & IFF_UP:
            self._netdown = False

    def _update_stats(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                packets, drops, frozen = self._reader.counters()
            except OSError:
                return
            self._received += packets
            self._dropped += drops
            self._frozen += frozen

    def _release(self) -> None:
        try:
            packets, drops, frozen = self._reader.counters()
            self._received += packets
            self._dropped += drops
            self._frozen += frozen
        except OSError:
            pass
        try:
            self._reader.close()
        finally:
            for fd in (self._stop_r, self._stop_w):
                with contextlib.suppress(OSError):
                    os.close(fd)


# -- privileges -----------------------------------------------------------------------------------


def drop_privileges(user: str) -> None:
    """Become ``user`` (tcpdump's ``-Z``), once the capture socket is open.

    The socket keeps working (its rights were checked when it was opened), while everything the
    process does afterwards -- parsing hostile packets, writing reports -- runs without root.
    Supplementary groups become the user's, then the group, then the user (real, effective and
    saved, so the change cannot be undone). glibc applies it to every thread.
    """
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise LiveCaptureError(f"no user {user!r} to drop privileges to") from None
    uid, gid = pw.pw_uid, pw.pw_gid
    if os.getresuid() == (uid, uid, uid) and os.getresgid() == (gid, gid, gid):
        return
    try:
        groups = os.getgrouplist(pw.pw_name, gid)
    except OSError:
        groups = [gid]
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except PermissionError:
        raise LiveCaptureError(
            f"cannot drop privileges to {pw.pw_name}: switching users needs root"
        ) from None
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise LiveCaptureError(f"dropping privileges to {pw.pw_name} did not stick")

