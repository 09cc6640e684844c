"""Network interfaces a live capture can open: name, index, state, link type, MTU, addresses.

Everything is asked of the kernel through a socket (``if_nameindex``, ``SIOCGIF*`` ioctls,
``getifaddrs``), not read from ``/sys``, because sockets answer for the network namespace of the
calling thread while ``/sys`` shows the namespace that mounted it. That keeps
``list_interfaces(netns="ns1")`` right. ``/sys/class/net/*/operstate`` is used only when its
``ifindex`` proves it describes the same device.

``netns`` (a name under /run/netns, as ``ip netns`` makes, or a path such as
``/proc/PID/ns/net``) runs the lookup in a short-lived thread that has entered that namespace
with ``setns``; the calling thread never changes namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from portlens.sources import linktypes

__all__ = [
    "ARPHRD_NAMES",
    "Interface",
    "NetnsError",
    "arphrd_name",
    "capture_linktype",
    "get_interface",
    "in_netns",
    "list_interfaces",
]

T = TypeVar("T")

SIOCGIFFLAGS: Final = 0x8913
SIOCGIFHWADDR: Final = 0x8927
SIOCGIFMTU: Final = 0x8921
IFF_UP: Final = 0x1
IFF_BROADCAST: Final = 0x2
IFF_LOOPBACK: Final = 0x8
IFF_POINTOPOINT: Final = 0x10
IFF_RUNNING: Final = 0x40
IFF_NOARP: Final = 0x80
IFF_PROMISC: Final = 0x100
IFF_MULTICAST: Final = 0x1000
IFF_LOWER_UP: Final = 0x10000
CLONE_NEWNET: Final = 0x40000000

ARPHRD_ETHER: Final = 1
ARPHRD_LOOPBACK: Final = 772
ARPHRD_NAMES: Final = {
    0: "netrom",
    1: "ether",
    6: "ieee802",
    24: "ieee1394",
    32: "infiniband",
    256: "slip",
    280: "can",
    512: "ppp",
    519: "rawip",
    768: "ipip",
    769: "tunnel6",
    772: "loopback",
    776: "sit",
    778: "ipgre",
    783: "irda",
    801: "ieee80211",
    802: "ieee80211-prism",
    803: "ieee80211-radiotap",
    804: "ieee802154",
    820: "phonet",
    823: "ip6gre",
    824: "netlink",
    825: "6lowpan",
    65534: "none",
    65535: "void",
}
"""ARPHRD_* (linux/if_arp.h) -> the name ``ip link`` prints (``link/ether``, ``link/loopback``)."""

_FLAG_NAMES: Final = (
    (IFF_UP, "UP"),
    (IFF_BROADCAST, "BROADCAST"),
    (IFF_LOOPBACK, "LOOPBACK"),
    (IFF_POINTOPOINT, "POINTOPOINT"),
    (IFF_RUNNING, "RUNNING"),
    (IFF_NOARP, "NOARP"),
    (IFF_PROMISC, "PROMISC"),
    (IFF_MULTICAST, "MULTICAST"),
)


class NetnsError(OSError):
    """A network namespace that cannot be entered; one line."""


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface, as ``portlens interfaces`` lists it."""

    name: str
    index: int
    """ifindex (0 for the ``any`` pseudo-device)."""
    state: str
    """``UP``, ``DOWN``, ``UNKNOWN`` (loopback, most virtual devices), ``DORMANT``, ..."""
    flags: int
    """IFF_* bits (SIOCGIFFLAGS)."""
    arphrd: int
    """ARPHRD_* hardware type (-1 for ``any``)."""
    mtu: int
    mac: str = ""
    ipv4: tuple[str, ...] = field(default_factory=tuple)
    """``address/prefix`` strings."""
    ipv6: tuple[str, ...] = field(default_factory=tuple)

    @property
    def up(self) -> bool:
        """Administratively up (IFF_UP): packets can be captured."""
        return bool(self.flags & IFF_UP)

    @property
    def running(self) -> bool:
        """Carrier present (IFF_RUNNING)."""
        return bool(self.flags & IFF_RUNNING)

    @property
    def promiscuous(self) -> bool:
        return bool(self.flags & IFF_PROMISC)

    @property
    def link_type(self) -> str:
        """The hardware type by name: ``ether``, ``loopback``, ``none``, ... (``any`` for any)."""
        return "any" if self.arphrd < 0 else arphrd_name(self.arphrd)

    @property
    def linktype(self) -> int:
        """LINKTYPE_* a capture on this interface produces."""
        return capture_linktype(self.arphrd)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(n for bit, n in _FLAG_NAMES if self.flags & bit)

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON output."""
        return {
            "name": self.name,
            "index": self.index,
            "state": self.state,
            "flags": list(self.flag_names),
            "link_type": self.link_type,
            "arphrd": self.arphrd,
            "linktype": linktypes.name(self.linktype),
            "mtu": self.mtu,
            "mac": self.mac,
            "ipv4": list(self.ipv4),
            "ipv6": list(self.ipv6),
        }


def arphrd_name(arphrd: int) -> str:
    return ARPHRD_NAMES.get(arphrd, f"arphrd-{arphrd}")


def capture_linktype(arphrd: int) -> int:
    """The link type of frames captured on a device of this hardware type.

    Ethernet devices give Ethernet frames. So does the loopback device: it is ARPHRD_LOOPBACK,
    but Linux gives it Ethernet header ops (``eth_header``), so its frames carry a 14-byte
    Ethernet header with zero MAC addresses, and libpcap calls it LINKTYPE_ETHERNET too. Every
    other device (and ``any``, arphrd -1) is captured cooked: the kernel strips whatever link
    header it has and we put a 16-byte LINUX_SLL header in front.
    """
    if arphrd in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return linktypes.ETHERNET
    return linktypes.LINUX_SLL


# -- namespaces -----------------------------------------------------------------------------------


def _netns_path(netns: str) -> str:
    return netns if "/" in netns else f"/run/netns/{netns}"


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run ``fn`` with the network namespace ``netns`` (None: the caller's, directly).

    A network namespace is per thread on Linux, so ``fn`` runs in a new thread that enters the
    namespace and then ends; sockets ``fn`` opens stay in that namespace for their whole life,
    which is all a capture needs. Exceptions of ``fn`` are raised here.
    """
    if netns is None:
        return fn()
    path = _netns_path(netns)
    box: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = NetnsError(
                exc.errno, f"no network namespace {netns!r} ({path}: {exc.strerror})"
            )
            return
        try:
            _setns(fd)
        except OSError as exc:
            box["error"] = NetnsError(
                exc.errno, f"cannot enter network namespace {netns!r}: {exc.strerror}"
            )
            return
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=run, name=f"portlens-netns-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        err = box["error"]
        assert isinstance(err, BaseException)
        raise err
    return box["value"]  # type: ignore[return-value]


# -- queries --------------------------------------------------------------------------------------


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    buf = struct.pack("16s24s", name.encode()[:15], b"")
    return fcntl.ioctl(sock.fileno(), request, buf)


def _link_info(sock: socket.socket, name: str) -> tuple[int, int, int, str]:
    """flags, ARPHRD, MTU and hardware address of ``name`` (ioctls on ``sock``'s namespace)."""
    flags = struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, name), 16)[0]
    hw = _ifreq(sock, SIOCGIFHWADDR, name)
    arphrd = struct.unpack_from("H", hw, 16)[0]
    mtu = struct.unpack_from("i", _ifreq(sock, SIOCGIFMTU, name), 16)[0]
    mac = hw[18:24].hex(":") if arphrd in (ARPHRD_ETHER, ARPHRD_LOOPBACK) else ""
    return int(flags), int(arphrd), int(mtu), mac


def _operstate(name: str, index: int, flags: int) -> str:
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            same = int(f.read()) == index
        if same:
            with open(f"/sys/class/net/{name}/operstate") as f:
                return f.read().strip().upper()
    except (OSError, ValueError):
        pass
    if not flags & IFF_UP:
        return "DOWN"
    return "UP" if flags & (IFF_RUNNING | IFF_LOWER_UP) else "UNKNOWN"


class _Sockaddr(ctypes.Structure):
    _fields_ = (("sa_family", ctypes.c_ushort),)


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = (
    ("ifa_next", ctypes.POINTER(_Ifaddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.POINTER(_Sockaddr)),
    ("ifa_netmask", ctypes.POINTER(_Sockaddr)),
    ("ifa_ifu", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p),
)


def _ip_of(sa: ctypes._Pointer[_Sockaddr]) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not sa:
        return None
    family = sa.contents.sa_family
    raw = ctypes.string_at(ctypes.addressof(sa.contents), 28)
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[4:8])
    if family == socket.AF_INET6:
        return ipaddress.IPv6Address(raw[8:24])
    return None


def _addresses() -> dict[str, tuple[list[str], list[str]]]:
    """Interface name -> (IPv4, IPv6) ``address/prefix`` strings, from getifaddrs(3)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return out
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return out
    try:
        p = head
        while p:
            ifa = p.contents
            addr = _ip_of(ifa.ifa_addr)
            if addr is not None and ifa.ifa_name is not None:
                mask = _ip_of(ifa.ifa_netmask)
                prefix = bin(int(mask)).count("1") if mask is not None else addr.max_prefixlen
                v4, v6 = out.setdefault(ifa.ifa_name.decode(errors="replace"), ([], []))
                (v4 if addr.version == 4 else v6).append(f"{addr}/{prefix}")
            p = ifa.ifa_next
    finally:
        libc.freeifaddrs(head)
    return out


def _list() -> list[Interface]:
    addrs = _addresses()
    found: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index, name in sorted(socket.if_nameindex()):
            try:
                flags, arphrd, mtu, mac = _link_info(sock, name)
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.ENXIO):  # gone while we looked
                    continue
                raise
            v4, v6 = addrs.get(name, ([], []))
            found.append(
                Interface(
                    name=name,
                    index=index,
                    state=_operstate(name, index, flags),
                    flags=flags,
                    arphrd=arphrd,
                    mtu=mtu,
                    mac=mac,
                    ipv4=tuple(v4),
                    ipv6=tuple(v6),
                )
            )
    return found


ANY: Final = Interface(name="any", index=0, state="UP", flags=IFF_UP | IFF_RUNNING, arphrd=-1,
                       mtu=0)
"""The pseudo-device capturing on every interface (cooked, LINUX_SLL)."""


def list_interfaces(*, netns: str | None = None, include_any: bool = False) -> list[Interface]:
    """Interfaces by index; ``include_any`` appends the ``any`` pseudo-device, as tcpdump -D."""
    found = in_netns(netns, _list)
    if include_any:
        found.append(ANY)
    return found


def get_interface(name: str, *, netns: str | None = None) -> Interface | None:
    """One interface by name, or None; ``any`` gives :data:`ANY`."""
    if name == "any":
        return ANY
    for iface in list_interfaces(netns=netns):
        if iface.name == name:
            return iface
    return None
