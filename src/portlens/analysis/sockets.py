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

from array import array
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

    def ranked_peers(self) -> list[tuple[str, int]]:
        """(address, connections), most connections first, then by address: the order every
        output lists a listener's peers in (columns.listener_rows ranks alike)."""
        return sorted(self.peers.items(), key=lambda kv: (-kv[1], kv[0]))

    @property
    def state(self) -> str:
        """What `ss -l` prints: LISTEN for TCP, UNCONN for an unconnected UDP socket."""
        return "LISTEN" if self.proto == "tcp" else "UNCONN"

    def record(self) -> dict[str, Any]:
        return {"proto": self.proto, "state": self.state, "local_addr": self.addr,
                "local_port": self.port, "conns": self.conns, "peers": len(self.peers),
                "peer_addrs": dict(self.ranked_peers()),
                "first_ts_ns": self.first_ns, "last_ts_ns": self.last_ns}


@dataclass(frozen=True, slots=True)
class ListenerPeers:
    """Who the listeners answered, as columns: a row per listening side of a connection as
    ``add_columns`` finds them, or once folded (columns.fold_listener_peers) a row per
    (listener, peer address) with its connections and their times. What ``add_columns``
    keeps instead of a Listener and a Counter entry: folded in a few array operations when
    many rows wait or the table is read, not per block in Python, and made Listeners only
    when asked for (the JSON, the API)."""

    tcp: npt.NDArray[np.bool_]
    """TCP, else UDP."""
    addr: npt.NDArray[np.uint8]
    """The listener's address, n×16 as the core writes addresses."""
    port: npt.NDArray[np.int64]
    peer: npt.NDArray[np.uint8]
    """The peer's address, n×16."""
    conns: npt.NDArray[np.int64]
    first_ns: npt.NDArray[np.int64]
    last_ns: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.port)


@dataclass(frozen=True, slots=True)
class ListenerRows:
    """The listeners in the table's order (TCP first, then by port and address: what
    ``SocketTable.sorted_listeners`` gives), as columns, each listener's peers ranked (most
    connections first, then by address) in ``peer_addr[peer_start[i]:peer_start[i + 1]]``:
    what the sockets table shows, made without a Listener each."""

    proto: list[str]
    addr: list[str]
    port: list[int]
    conns: list[int]
    first_ns: list[int]
    last_ns: list[int]
    peer_start: list[int]
    """Where each listener's peers begin, and one more entry: where the last one's end."""
    peer_addr: list[str]
    peer_conns: list[int]

    def __len__(self) -> int:
        return len(self.proto)

    @staticmethod
    def of(listeners: Iterable[Listener]) -> ListenerRows:
        """The rows of Listener objects (the object path's), given in the table's order."""
        rows = ListenerRows([], [], [], [], [], [], [0], [], [])
        for s in listeners:
            ranked = s.ranked_peers()
            rows.proto.append(s.proto)
            rows.addr.append(s.addr)
            rows.port.append(s.port)
            rows.conns.append(s.conns)
            rows.first_ns.append(s.first_ns)  # type: ignore[arg-type]
            rows.last_ns.append(s.last_ns)  # type: ignore[arg-type]
            rows.peer_addr.extend(addr for addr, _ in ranked)
            rows.peer_conns.extend(n for _, n in ranked)
            rows.peer_start.append(len(rows.peer_addr))
        return rows

    def listeners(self) -> Iterator[Listener]:
        starts, addrs, conns = self.peer_start, self.peer_addr, self.peer_conns
        for i, (proto, addr, port) in enumerate(zip(self.proto, self.addr, self.port,
                                                    strict=True)):
            peers: Counter[str] = Counter()
            dict.update(peers, zip(addrs[starts[i]:starts[i + 1]],
                                   conns[starts[i]:starts[i + 1]], strict=True))
            yield Listener(proto, addr, port, peers, self.first_ns[i], self.last_ns[i])


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


SOCKET_COLUMNS = frozenset({
    "uid", "proto", "history", "conn_state", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
    "ts_ns", "last_ns", "orig_state", "resp_state"})
"""The tracker's columns ``SocketTable.add_columns`` reads."""

UID_LEN = 18
"""A uid's characters as the trackers write them: Zeek's ``C`` and 17 more."""
U32 = "I" if array("I").itemsize == 4 else "L"
"""``array``'s type code of 4-byte unsigned numbers."""


def numbers(code: str, data: bytes) -> array[int]:
    """An ``array`` of type ``code`` holding ``data``, its numbers' bytes in the machine's
    order (the core's, and NumPy's ``tobytes``)."""
    out = array(code)
    out.frombytes(data)
    return out


@dataclass(frozen=True, slots=True)
class ConnectionEnds:
    """Connections' two sockets as columns, one entry per connection: what ``add_columns``
    and the core's fold (``SocketFold.end_rows``) give instead of two Sockets per connection,
    which only the JSON and CSV (and the API) need. Addresses and states are codes into the
    block's distinct texts, so that the table is written by the core without a string a row
    (report/sockets.py). Codes and ports are ``array``s, the uids one string: no NumPy, which
    the core's way never imports. The columns' way holds every connection's ends until the
    listeners are written, in the narrowest types (a flood of a million connections: 16 +
    18 bytes each, not 48 + 75); the core's makes a block as it is written, of int64s (type
    code q), which the table interleaves as they are."""

    addrs: list[str]
    """The block's distinct addresses: what ``orig_h`` and ``resp_h`` index."""
    states: list[str]
    """The block's states in ss spelling, '' for UDP (as Socket.state): what ``orig_state``
    and ``resp_state`` index."""
    tcp: array[int]
    """1 for TCP, 0 for UDP (type code B, or q)."""
    orig_state: array[int]
    """Type code H, as ``resp_state`` and the ports, and U32 for the addresses; or q."""
    resp_state: array[int]
    orig_h: array[int]
    orig_p: array[int]
    resp_h: array[int]
    resp_p: array[int]
    uids: str
    """Every connection's uid, UID_LEN characters each, one after another (``uid`` gives
    them one by one)."""

    def __len__(self) -> int:
        return len(self.tcp)

    @staticmethod
    def of_core(fields: tuple[Any, ...]) -> ConnectionEnds:
        """The ends as ``SocketFold.end_rows`` gives them: the texts, the numbers' bytes."""
        addrs, states, tcp, orig_state, resp_state, orig_h, orig_p, resp_h, resp_p, uids = (
            fields)
        return ConnectionEnds(
            addrs, states, numbers("q", tcp), numbers("q", orig_state),
            numbers("q", resp_state), numbers("q", orig_h), numbers("q", orig_p),
            numbers("q", resp_h), numbers("q", resp_p), uids)

    @property
    def uid(self) -> list[str]:
        u = self.uids
        return [u[i:i + UID_LEN] for i in range(0, len(u), UID_LEN)]

    def rows(self, protos: tuple[Any, Any] = ("tcp", "udp"), addrs: list[Any] | None = None,
             states: list[Any] | None = None) -> tuple[list[Any], ...]:
        """Each connection's proto, originator's and responder's state, address and port, as
        lists: the texts are ``protos`` (TCP's, UDP's), ``addrs`` and ``states`` in place of
        the block's own (each of its distinct texts, as the JSON writes them)."""
        addrs = self.addrs if addrs is None else addrs
        states = self.states if states is None else states
        tcp, udp = protos
        return ([tcp if t else udp for t in self.tcp.tolist()],
                [states[i] for i in self.orig_state.tolist()],
                [states[i] for i in self.resp_state.tolist()],
                [addrs[i] for i in self.orig_h.tolist()], self.orig_p.tolist(),
                [addrs[i] for i in self.resp_h.tolist()], self.resp_p.tolist())

    def sockets(self) -> list[Socket]:
        """Each connection's originator's socket, then its responder's (SocketTable.add)."""
        n = len(self)
        proto, orig_state, resp_state, orig_h, orig_p, resp_h, resp_p = self.rows()
        uid = self.uid
        out: list[Socket] = [None] * (2 * n)  # type: ignore[list-item]
        out[0::2] = map(Socket, proto, orig_state, orig_h, orig_p, resp_h, resp_p, uid,
                        repeat("orig", n))
        out[1::2] = map(Socket, proto, resp_state, resp_h, resp_p, orig_h, orig_p, uid,
                        repeat("resp", n))
        return out


@dataclass(frozen=True)
class EndBlocks:
    """A table's connections' ends, block by block: those of ``add_columns``, then the core
    fold's, each of its blocks made as it is read (the fold keeps the ends in its own form,
    so a million connections' are never held twice)."""

    held: list[ConnectionEnds]
    fold: Any

    def __iter__(self) -> Iterator[ConnectionEnds]:
        yield from self.held
        if self.fold is not None:
            for start in range(0, self.fold.end_count(), END_BLOCK):
                yield ConnectionEnds.of_core(self.fold.end_rows(start, start + END_BLOCK))


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


END_BLOCK = 1 << 14
"""Connections a block of ends taken from the core's fold holds (``ConnectionEnds``): a few
MB, so that writing the sockets of a million connections never holds them all twice. Blocks
of 65,536 took 118 MB at the peak for `sockets --json` of the benchmark capture (its lines
are joined a block at a time), 16,384 75 MB, at the same speed."""

FOLD_ROWS = 1 << 18
"""Listening sides that ``add_columns`` keeps before folding them, or as many as the rows
folded before if more: a fold sorts those too, so the waiting rows grow with them and the
sorting stays proportional to n log n in all (a capture of millions of distinct listener
and peer pairs), while what waits stays within the folded rows' size."""


class SocketTable:
    def __init__(self) -> None:
        self._listeners: dict[tuple[str, str, int], Listener] = {}
        """The object path's (``add``), and the columns' once asked for as Listeners."""
        self._peers: list[ListenerPeers] = []
        """The columns' listening sides (``add_columns``), not yet Listeners: at most one
        folded part, then blocks' rows."""
        self._waiting = 0
        """Rows of ``_peers`` after its folded part."""
        self._folded = 0
        """Rows of its folded part."""
        self._rows: ListenerRows | None = None
        """``_peers`` made rows, until more come."""
        self._sockets: list[Socket] = []
        self._ends: list[ConnectionEnds] = []
        """Blocks of ``add_columns``, after ``_sockets``: Sockets only when asked for."""
        self._core: Any = None
        """The core's SocketFold the tracker folds its rows into (``core_fold``): its
        listeners and ends are read from it where nothing else was added, else join the
        others when read."""

    def core_fold(self, sockets: bool = True) -> Any:
        """The core's fold (``portlens._core.SocketFold``; ``sockets`` False: of the listeners
        only, as ``add_columns``) whose listeners and ends join this table's, made the first
        time: the tracker of the core folds its ended rows into it (``Pipeline.track``'s
        ``core_fold``)."""
        if self._core is None:
            from portlens.track.rust import _core_module

            self._core = _core_module().SocketFold(sockets)
        return self._core

    def _held(self) -> int:
        """Listeners in the core's fold."""
        return 0 if self._core is None else int(self._core.listener_count())

    def _merge(self, listeners: Iterable[Listener]) -> None:
        for listener in listeners:
            key = (listener.proto, listener.addr, listener.port)
            had = self._listeners.get(key)
            self._listeners[key] = listener if had is None else had + listener

    def _take_core_listeners(self) -> None:
        """The core's fold's listeners made Listeners of ``_listeners``."""
        if self._held():
            self._merge(ListenerRows(*self._core.listener_rows()).listeners())
            self._core.clear_listeners()

    @property
    def listeners(self) -> dict[tuple[str, str, int], Listener]:
        """Every listener by (proto, address, port)."""
        self._take_core_listeners()
        if self._peers:
            self._merge(self._listener_rows().listeners())
            self._peers, self._waiting, self._folded, self._rows = [], 0, 0, None
        return self._listeners

    def listener_count(self) -> int:
        """How many listeners, without making them objects."""
        held = self._held()
        if held and (self._listeners or self._peers):
            return len(self.listeners)
        if held:
            return held
        if not self._peers:
            return len(self._listeners)
        if not self._listeners:
            return len(self._listener_rows())
        return len(self.listeners)

    def listener_rows(self) -> ListenerRows:
        """The listeners in the table's order, as columns: from the core's fold or from the
        columns' folded rows, without a Listener made, when only one of them holds listeners;
        else from the Listeners of all."""
        held = self._held()
        if held and not (self._listeners or self._peers):
            return ListenerRows(*self._core.listener_rows())
        if held or self._listeners or not self._peers:
            return ListenerRows.of(self.sorted_listeners())
        return self._listener_rows()

    def add_listener_peers(self, peers: ListenerPeers) -> None:
        """Listening sides of a block of connections (a row each, ``conns`` 1)."""
        if not len(peers):
            return
        self._peers.append(peers)
        self._waiting += len(peers)
        self._rows = None
        if self._waiting >= max(FOLD_ROWS, self._folded):
            self._fold()

    def _fold(self) -> ListenerPeers:
        from portlens.analysis.columns import fold_listener_peers

        if len(self._peers) > 1 or self._waiting:
            self._peers, self._waiting = [fold_listener_peers(self._peers)], 0
            self._folded = len(self._peers[0])
        return self._peers[0]

    def _listener_rows(self) -> ListenerRows:
        from portlens.analysis.columns import listener_rows

        if self._rows is None:
            self._rows = listener_rows(self._fold())
        return self._rows

    def _take_core_ends(self) -> None:
        """The core's fold's ends made blocks of ``_ends`` (after those added before)."""
        if self._core is not None and self._core.end_count():
            self._ends.extend(EndBlocks([], self._core))
            self._core.clear_ends()

    @property
    def sockets(self) -> list[Socket]:
        """Every connection's two sockets, in the order the connections were added."""
        self._take_core_ends()
        for ends in self._ends:
            self._sockets.extend(ends.sockets())
        self._ends = []
        return self._sockets

    @sockets.setter
    def sockets(self, value: list[Socket]) -> None:
        self._sockets, self._ends = value, []
        if self._core is not None:
            self._core.clear_ends()

    def socket_count(self) -> int:
        held = 0 if self._core is None else self._core.end_count()
        return len(self._sockets) + 2 * (sum(len(e) for e in self._ends) + held)

    def connection_ends(self) -> EndBlocks | None:
        """The sockets as blocks of connections' ends, when ``add_columns`` or the core's
        fold added them all (None: ``sockets`` has them)."""
        return None if self._sockets else EndBlocks(list(self._ends), self._core)

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
            listeners = self.listeners
            listener = listeners.get(key)
            if listener is None:
                listener = listeners[key] = Listener(c.proto, addr, port)
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

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the core fold's listeners and ends among the others' (the fold is
        the core's, and stays in this process)."""
        self._take_core_ends()
        self._take_core_listeners()
        return {**self.__dict__, "_core": None}

    def update(self, conns: Iterable[Connection]) -> SocketTable:
        for c in conns:
            self.add(c)
        return self

    def __add__(self, other: SocketTable) -> SocketTable:
        out = SocketTable()
        mine, theirs = self.listeners, other.listeners
        for key in mine.keys() | theirs.keys():
            a, b = mine.get(key), theirs.get(key)
            out._listeners[key] = a + b if a is not None and b is not None else (
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
        """The listeners' records, in the table's order (made from the columns' rows without
        turning the table's listeners into objects)."""
        return [s.record() for s in self.listener_rows().listeners()]

    def socket_records(self) -> list[dict[str, Any]]:
        return [s.record() for s in self.sockets]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(self.records())


def socket_table(conns: Iterable[Connection]) -> SocketTable:
    return SocketTable().update(conns)
