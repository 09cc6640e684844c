"""tcpdump-syntax filters compiled to classic BPF by libpcap, and attached to a socket.

Why libpcap: users paste expressions from tcpdump and expect the same packets, quirks included.
Only libpcap's own compiler gives that, so we call it through ctypes (``pcap_open_dead`` +
``pcap_compile``) instead of writing a second compiler. The program then runs in the kernel
(``SO_ATTACH_FILTER``): a packet the filter rejects never reaches the ring or Python, and its
``ret #snaplen`` cuts long packets before they are copied.

Two rewrites are needed before a libpcap program can run on a Linux packet socket, and libpcap
does both privately in ``pcap_setfilter`` (we cannot call it on a dead handle), so they are
here:

* :func:`cooked`: a SOCK_DGRAM socket (``any``, non-Ethernet devices) delivers packets from the
  network header on, but the program was compiled for the 16-byte LINUX_SLL header in front of
  it. Loads past the header move back by 16; loads of the SLL packet type (offset 0) and
  protocol (offset 14) become the kernel's ancillary loads, exactly as libpcap's ``fix_offset``.
* :func:`drop_outgoing`: on the loopback device every packet passes the packet socket twice
  (once as it leaves, ``PACKET_OUTGOING``, once as it arrives). A three-instruction prologue
  rejects the outgoing copy in the kernel, so the socket's statistics count each packet once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import threading
from dataclasses import dataclass
from typing import Final

from portlens.sources import linktypes

__all__ = [
    "BpfError",
    "BpfProgram",
    "accept_all",
    "attach_filter",
    "compile_filter",
    "cooked",
    "detach_filter",
    "drop_outgoing",
    "libpcap_version",
]

PCAP_NETMASK_UNKNOWN: Final = 0xFFFFFFFF
BPF_MAXINSNS: Final = 4096
"""The kernel refuses longer classic programs (EINVAL)."""
SO_ATTACH_FILTER: Final = 26
SO_DETACH_FILTER: Final = 27

# Classic BPF opcodes (linux/bpf_common.h).
BPF_LD: Final = 0x00
BPF_LDX: Final = 0x01
BPF_JMP: Final = 0x05
BPF_RET: Final = 0x06
BPF_W: Final = 0x00
BPF_ABS: Final = 0x20
BPF_IND: Final = 0x40
BPF_MSH: Final = 0xA0
BPF_JEQ: Final = 0x10
BPF_K: Final = 0x00

SKF_AD_OFF: Final = 0xFFFFF000
"""-0x1000 as the unsigned ``k`` of a load: the start of the kernel's ancillary data."""
SKF_AD_PROTOCOL: Final = 0
SKF_AD_PKTTYPE: Final = 4
SKF_AD_IFINDEX: Final = 8
SLL_HDR_LEN: Final = 16
PACKET_OUTGOING: Final = 4

_INSN: Final = struct.Struct("=HBBI")
"""struct sock_filter / struct bpf_insn: code, jt, jf, k (host byte order)."""

Insn = tuple[int, int, int, int]


class BpfError(ValueError):
    """A filter that cannot be compiled or attached; ``str()`` is one line a user can act on.

    For a bad expression the line carries libpcap's own text (``pcap_geterr``), the same words
    tcpdump would print.
    """


@dataclass(frozen=True, slots=True)
class BpfProgram:
    """A classic BPF program: what ``tcpdump -dd`` prints, as (code, jt, jf, k) tuples."""

    insns: tuple[Insn, ...]
    expression: str = ""
    linktype: int = linktypes.ETHERNET

    def __len__(self) -> int:
        return len(self.insns)

    def pack(self) -> bytes:
        """The instructions as the kernel's ``struct sock_filter[]``."""
        return b"".join(_INSN.pack(*i) for i in self.insns)

    def dump(self) -> str:
        """One ``{ code, jt, jf, k },`` line per instruction, as ``tcpdump -dd``."""
        return "\n".join(f"{{ 0x{c:x}, {jt}, {jf}, 0x{k:08x} }}," for c, jt, jf, k in self.insns)


# -- libpcap through ctypes ----------------------------------------------------------------------


class _BpfInsn(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    )


class _BpfProgramC(ctypes.Structure):
    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn)))


_LIBPCAP_NAMES: Final = ("libpcap.so.1", "libpcap.so.0.8", "libpcap.so", "libpcap.dylib")
_lock = threading.Lock()
"""Older libpcaps' compilers share a parser state; one compile at a time is cheap insurance."""
_lib: ctypes.CDLL | None = None


def _libpcap() -> ctypes.CDLL:
    """Load libpcap once; a missing library is one line saying what to install."""
    global _lib  # noqa: PLW0603 - loaded once, on first use, so `import` never needs libpcap
    if _lib is not None:
        return _lib
    names = list(_LIBPCAP_NAMES)
    found = ctypes.util.find_library("pcap")
    if found:
        names.insert(0, found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = (
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgramC),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        )
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = (ctypes.POINTER(_BpfProgramC),)
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = (ctypes.c_void_p,)
        lib.pcap_lib_version.restype = ctypes.c_char_p
        lib.pcap_lib_version.argtypes = ()
        _lib = lib
        return lib
    raise BpfError(
        "tcpdump-style filters need libpcap, which is not installed "
        "(apt install libpcap0.8 / dnf install libpcap)"
    )


def libpcap_version() -> str:
    """libpcap's version line, e.g. ``libpcap version 1.10.3 (with TPACKET_V3)``."""
    return bytes(_libpcap().pcap_lib_version()).decode(errors="replace")


def compile_filter(
    expression: str,
    *,
    linktype: int = linktypes.ETHERNET,
    snaplen: int = 262144,
    optimize: bool = True,
    netmask: int = PCAP_NETMASK_UNKNOWN,
) -> BpfProgram:
    """Compile a tcpdump expression for frames of ``linktype`` (LINUX_SLL for ``any``).

    ``netmask`` (host byte order IPv4 mask of the capture interface) only matters for
    ``ip broadcast``; unknown, such a filter is refused, as tcpdump does. The program returns
    ``snaplen`` for a match, so the kernel cuts packets to it.
    """
    if "\0" in expression:
        raise BpfError(f"filter {expression!r}: contains a NUL character")
    lib = _libpcap()
    with _lock:
        handle = lib.pcap_open_dead(int(linktype), int(snaplen))
        if not handle:
            raise BpfError(f"libpcap cannot compile for link type {linktype}")
        try:
            prog = _BpfProgramC()
            rc = lib.pcap_compile(
                handle, ctypes.byref(prog), expression.encode(), int(optimize), netmask
            )
            if rc != 0:
                raw = lib.pcap_geterr(handle) or b"cannot compile"
                text = " ".join(bytes(raw).decode(errors="replace").split())
                raise BpfError(f"filter {expression!r}: {text}")
            try:
                insns = tuple(
                    (int(i.code), int(i.jt), int(i.jf), int(i.k))
                    for i in prog.bf_insns[: prog.bf_len]
                )
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)
    return BpfProgram(insns, expression, linktype)


# -- programs built here -------------------------------------------------------------------------


def accept_all(snaplen: int = 262144) -> BpfProgram:
    """``ret #snaplen``: no filter, but the kernel still cuts packets to ``snaplen``."""
    return BpfProgram(((BPF_RET | BPF_K, 0, 0, snaplen & 0xFFFFFFFF),), "")


def cooked(program: BpfProgram) -> BpfProgram:
    """Rewrite a LINUX_SLL program for a SOCK_DGRAM socket (libpcap's ``fix_offset``).

    The socket's packets start at the network header, with no SLL header in front, so packet
    loads move back by 16 bytes and the two SLL fields the kernel knows become ancillary loads.
    A load from any other SLL header byte (the link-layer address, ``ether host`` on ``any``)
    cannot run in the kernel; libpcap would then filter in user space, which we do not do.
    """
    out: list[Insn] = []
    for code, jt, jf, k in program.insns:
        cls, mode = code & 0x07, code & 0xE0
        if cls in (BPF_LD, BPF_LDX) and mode in (BPF_ABS, BPF_IND, BPF_MSH) and k < SKF_AD_OFF:
            if k >= SLL_HDR_LEN:
                k -= SLL_HDR_LEN
            elif k == 0:
                k = SKF_AD_OFF + SKF_AD_PKTTYPE
            elif k == 14:
                k = SKF_AD_OFF + SKF_AD_PROTOCOL
            else:
                raise BpfError(
                    f"filter {program.expression!r} reads byte {k} of the cooked (SLL) header, "
                    "which the kernel cannot filter on; capture on a device, not 'any'"
                )
        out.append((code, jt, jf, k))
    return BpfProgram(tuple(out), program.expression, program.linktype)


def drop_outgoing(program: BpfProgram, ifindex: int) -> BpfProgram:
    """Prefix ``program`` with: reject the packet if it is outgoing on device ``ifindex``.

    Used with the loopback device's index: the packet socket then sees each loopback packet
    once (incoming), the rule libpcap applies in user space (``linux_check_direction``). It works
    for a socket bound to ``lo`` and for ``any`` alike, where outgoing packets of other devices
    are kept. The prologue only moves forward, so the program's relative jumps stay valid.
    """
    prologue: tuple[Insn, ...] = (
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        (BPF_JMP | BPF_JEQ | BPF_K, 0, 3, PACKET_OUTGOING),
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_IFINDEX),
        (BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ifindex & 0xFFFFFFFF),
        (BPF_RET | BPF_K, 0, 0, 0),
    )
    return BpfProgram(prologue + program.insns, program.expression, program.linktype)


# -- the socket side ------------------------------------------------------------------------------


def attach_filter(sock: socket.socket, program: BpfProgram) -> None:
    """Attach ``program`` to ``sock`` (SO_ATTACH_FILTER); the kernel copies it."""
    n = len(program)
    if not 0 < n <= BPF_MAXINSNS:
        raise BpfError(
            f"filter {program.expression!r} compiles to {n} instructions; "
            f"the kernel accepts 1 to {BPF_MAXINSNS}"
        )
    code = ctypes.create_string_buffer(program.pack(), n * _INSN.size)
    fprog = struct.pack("HP", n, ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        raise BpfError(
            f"the kernel refused filter {program.expression!r}: {exc.strerror or exc}"
        ) from None
    finally:
        del code


def detach_filter(sock: socket.socket) -> None:
    """Remove the socket's filter (every packet is delivered again)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
