"""Connections -> the `ss` / `netstat` view, reconstructed from the wire.

A capture cannot see sockets, only what they did. A listening socket shows itself by answering:
a TCP SYN answered with a SYN-ACK (history ``h`` for the responder, ``H`` for an originator that
turned out to be the server), or a UDP datagram answered from the port it was sent to (conn_state
SF). A port that answered with RST has no listener and is not listed. Each connection also gives
its two sockets, with each endpoint's RFC 9293 state at the end of the capture as the tracker's
observer inferred it, spelled as `ss` prints it (track.states.SS_NAMES).

Mergeable with ``+`` like every summary: listeners add up their peers, sockets concatenate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

from portlens.track.model import Connection
from portlens.track.states import SS_NAMES, TcpState

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass
class Listener:
    """One observed listening socket (address, port, protocol) and who it answered."""

    proto: str
    addr: str
    port: int
    peers: Counter[str] = field(default_factory=Counter)
    """Connections answered, by peer address."""
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def conns(self) -> int:
        return sum(self.peers.values())

    def add(self, peer: str, c: Connection) -> None:
        self.peers[peer] += 1
        last = max(c.ts_ns, c.last_ns)
        self.first_ns = c.ts_ns if self.first_ns is None else min(self.first_ns, c.ts_ns)
        self.last_ns = last if self.last_ns is None else max(self.last_ns, last)

    def __add__(self, other: Listener) -> Listener:
        firsts = [t for t in (self.first_ns, other.first_ns) if t is not None]
        lasts = [t for t in (self.last_ns, other.last_ns) if t is not None]
        return Listener(self.proto, self.addr, self.port, self.peers + other.peers,
                        min(firsts) if firsts else None, max(lasts) if lasts else None)

    @property
    def state(self) -> str:
        """What `ss -l` prints: LISTEN for TCP, UNCONN for an unconnected UDP socket."""
        return "LISTEN" if self.proto == "tcp" else "UNCONN"

    def record(self) -> dict[str, Any]:
        return {"proto": self.proto, "state": self.state, "local_addr": self.addr,
                "local_port": self.port, "conns": self.conns, "peers": len(self.peers),
                "peer_addrs": dict(sorted(self.peers.items(), key=lambda kv: (-kv[1], kv[0]))),
                "first_ts_ns": self.first_ns, "last_ts_ns": self.last_ns}


class Socket(NamedTuple):
    """One end of one connection, as `ss` would list it on that host. A named tuple, not a
    dataclass: a capture has two per connection (150,000 in the benchmark capture), and a
    tuple costs a third of a frozen dataclass to make."""

    proto: str
    state: str
    """ss spelling (ESTAB, TIME-WAIT...), '' for UDP (no state on the wire)."""
    local_addr: str
    local_port: int
    peer_addr: str
    peer_port: int
    uid: str
    side: str
    """'orig' or 'resp': which end of the connection this socket is."""

    def record(self) -> dict[str, Any]:
        return {"proto": self.proto, "state": self.state or None, "local_addr": self.local_addr,
                "local_port": self.local_port, "peer_addr": self.peer_addr,
                "peer_port": self.peer_port, "uid": self.uid, "side": self.side}


@dataclass(frozen=True, slots=True)
class ConnectionEnds:
    """Connections' two sockets as columns, one entry per connection: what ``add_columns``
    keeps instead of two Sockets per connection, which only the JSON and CSV (and the API)
    need. Addresses and states are codes into the block's distinct texts, so that the table
    is written by the core without a string a row (report/sockets.py)."""

    addrs: list[str]
    """The block's distinct addresses: what ``orig_h`` and ``resp_h`` index."""
    states: list[str]
    """The block's distinct states in ss spelling, '' for UDP (as Socket.state): what
    ``orig_state`` and ``resp_state`` index."""
    tcp: npt.NDArray[np.bool_]
    """TCP, else UDP."""
    orig_state: npt.NDArray[np.int64]
    resp_state: npt.NDArray[np.int64]
    orig_h: npt.NDArray[np.int64]
    orig_p: npt.NDArray[np.int64]
    resp_h: npt.NDArray[np.int64]
    resp_p: npt.NDArray[np.int64]
    uid: list[str]

    def __len__(self) -> int:
        return len(self.uid)

    def sockets(self) -> list[Socket]:
        """Each connection's originator's socket, then its responder's (SocketTable.add)."""
        n = len(self.uid)
        proto = ["tcp" if t else "udp" for t in self.tcp.tolist()]
        orig_state = [self.states[i] for i in self.orig_state.tolist()]
        resp_state = [self.states[i] for i in self.resp_state.tolist()]
        orig_h = [self.addrs[i] for i in self.orig_h.tolist()]
        resp_h = [self.addrs[i] for i in self.resp_h.tolist()]
        orig_p, resp_p = self.orig_p.tolist(), self.resp_p.tolist()
        out: list[Socket] = [None] * (2 * n)  # type: ignore[list-item]
        out[0::2] = map(Socket, proto, orig_state, orig_h, orig_p, resp_h, resp_p, self.uid,
                        repeat("orig", n))
        out[1::2] = map(Socket, proto, resp_state, resp_h, resp_p, orig_h, orig_p, self.uid,
                        repeat("resp", n))
        return out


def ss_state(state: TcpState | None) -> str:
    return SS_NAMES.get(state, str(state)) if state is not None else ""


def listening_sides(c: Connection) -> list[str]:
    """Which ends of a connection showed a listening socket: 'resp', 'orig' or both."""
    out = []
    if c.proto == "tcp":
        if "h" in c.history:
            out.append("resp")
        if "H" in c.history:
            out.append("orig")
    elif c.proto == "udp" and c.conn_state == "SF":
        out.append("resp")
    return out


class SocketTable:
    def __init__(self) -> None:
        self.listeners: dict[tuple[str, str, int], Listener] = {}
        self._sockets: list[Socket] = []
        self._ends: list[ConnectionEnds] = []
        """Blocks of ``add_columns``, after ``_sockets``: Sockets only when asked for."""

    @property
    def sockets(self) -> list[Socket]:
        """Every connection's two sockets, in the order the connections were added."""
        for ends in self._ends:
            self._sockets.extend(ends.sockets())
        self._ends = []
        return self._sockets

    @sockets.setter
    def sockets(self, value: list[Socket]) -> None:
        self._sockets, self._ends = value, []

    def socket_count(self) -> int:
        return len(self._sockets) + 2 * sum(len(e) for e in self._ends)

    def connection_ends(self) -> list[ConnectionEnds] | None:
        """The sockets as blocks of connections' ends, when ``add_columns`` added them all
        (None: ``sockets`` has them)."""
        return None if self._sockets else list(self._ends)

    def add_ends(self, ends: ConnectionEnds) -> None:
        if len(ends):
            self._ends.append(ends)

    def add(self, c: Connection) -> None:
        if c.proto not in ("tcp", "udp"):
            return
        sockets = self.sockets  # after those of earlier blocks
        for side in listening_sides(c):
            addr, port, peer = ((c.resp_h, c.resp_p, c.orig_h) if side == "resp"
                                else (c.orig_h, c.orig_p, c.resp_h))
            key = (c.proto, addr, port)
            listener = self.listeners.get(key)
            if listener is None:
                listener = self.listeners[key] = Listener(c.proto, addr, port)
            listener.add(peer, c)
        sockets.append(Socket(c.proto, ss_state(c.orig_state), c.orig_h, c.orig_p, c.resp_h,
                              c.resp_p, c.uid, "orig"))
        sockets.append(Socket(c.proto, ss_state(c.resp_state), c.resp_h, c.resp_p, c.orig_h,
                              c.orig_p, c.uid, "resp"))

    def add_columns(self, cols: dict[str, Any], *, sockets: bool = True) -> None:
        """``add`` of every connection of a block of the tracker's columns, without making
        them (analysis/columns.py); ``sockets`` False: the listeners only."""
        from portlens.analysis.columns import add_socket_columns

        add_socket_columns(self, cols, sockets=sockets)

    def update(self, conns: Iterable[Connection]) -> SocketTable:
        for c in conns:
            self.add(c)
        return self

    def __add__(self, other: SocketTable) -> SocketTable:
        out = SocketTable()
        for key in self.listeners.keys() | other.listeners.keys():
            a, b = self.listeners.get(key), other.listeners.get(key)
            out.listeners[key] = a + b if a is not None and b is not None else (
                a if a is not None else b)  # type: ignore[assignment]
        out.sockets = self.sockets + other.sockets
        return out

    def __iter__(self) -> Iterator[Listener]:
        return iter(self.sorted_listeners())

    def sorted_listeners(self) -> list[Listener]:
        order = {"tcp": 0, "udp": 1}
        return sorted(self.listeners.values(),
                      key=lambda s: (order.get(s.proto, 2), s.port, s.addr))

    def records(self) -> list[dict[str, Any]]:
        return [s.record() for s in self.sorted_listeners()]

    def socket_records(self) -> list[dict[str, Any]]:
        return [s.record() for s in self.sockets]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(self.records())


def socket_table(conns: Iterable[Connection]) -> SocketTable:
    return SocketTable().update(conns)
