"""Connection columns -> the handshake and socket tables, a block at a time.

The Rust tracker hands ended connections over as columns (track/rust.py, names as in
``--json``); the reports that only aggregate them (`handshakes`, `sockets`) can fold those
columns here with a few array operations per block and per group (host pair, listener)
instead of making a Connection per row and adding it in Python (``Pipeline.track(on_columns=)``
hands over blocks of thousands of rows). The command line's `ports`, `handshakes` and
`sockets` fold in the core instead, from the tracker's own rows (``Pipeline.track(core_fold=)``,
crates/core/src/analysis); these folds are what the columns' way does where the core's cannot
(a tracker that keeps its rows' transitions), and what tests/test_handshake_fold.py and
tests/test_socket_fold.py hold the core's to. `ports` folds the columns in the core too
(``PortTable.add_columns``), and ``port_rows`` gives the HTML report each row's outcome. The
rules are those of the object path
(``PortTable.add``, ``HandshakeTable.add``, ``SocketTable.add``), which stays their definition:
tests/test_columns.py holds both to the same tables, field by field, on every capture, against
the Python reference tracker.

Rows keep their capture order within a group (stable sorts), so even what order could change
(a sketch's exact values, the socket list) is as the object path leaves it.
"""

from __future__ import annotations

import contextlib
import gc
from array import array
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from portlens.analysis.handshakes import (
    HANDSHAKE_COLUMNS,
    HandshakeSummary,
    OptionMix,
    fingerprint,
)
from portlens.analysis.ports import PORT_COLUMNS
from portlens.analysis.sockets import (
    SOCKET_COLUMNS,
    U32,
    UID_LEN,
    ConnectionEnds,
    ListenerPeers,
    ListenerRows,
    numbers,
)
from portlens.track.rust import NONE64, _core_module
from portlens.track.states import SS_NAMES, TcpState

if TYPE_CHECKING:
    from portlens.analysis.handshakes import HandshakeTable
    from portlens.analysis.sockets import SocketTable

Columns = dict[str, Any]
Array = np.ndarray[Any, Any]

_SS = {s.value: SS_NAMES.get(s, str(s)) for s in TcpState}
"""A TCP state column's value as `ss` spells it (sockets.ss_state)."""


# --- grouping -------------------------------------------------------------------------------


class Groups:
    """Rows grouped by an integer key: ``order`` lists the rows group by group (each group in
    row order), ``starts`` where each group begins in it, ``keys`` each group's key."""

    def __init__(self, keys: Array, rows: Array) -> None:
        sort = np.argsort(keys, kind="stable")
        self.order = rows[sort]
        sorted_keys = keys[sort]
        if len(sorted_keys):
            self.starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        else:
            self.starts = np.zeros(0, np.int64)
        self.keys: list[int] = sorted_keys[self.starts].tolist()
        self.sizes = np.diff(np.r_[self.starts, len(sorted_keys)])
        self.group_of = np.repeat(np.arange(len(self.starts)), self.sizes)
        """Each row of ``order``: its group's index."""

    def __len__(self) -> int:
        return len(self.starts)

    def sum(self, values: Array) -> list[int]:
        if not len(self.starts):
            return []
        v = values[self.order]
        if v.dtype == np.bool_:
            v = v.astype(np.int64)
        return np.add.reduceat(v, self.starts).tolist()  # type: ignore[no-any-return]

    def pairs(self, values: Array, where: Array | None = None
              ) -> Iterator[tuple[int, int, int]]:
        """(group, value, rows) for each distinct non-negative value in each group (only the
        rows where ``where`` holds)."""
        group, value, count = self.pair_arrays(values, where)
        return zip(group.tolist(), value.tolist(), count.tolist(), strict=True)

    def pair_arrays(self, values: Array, where: Array | None = None
                    ) -> tuple[Array, Array, Array]:
        """``pairs`` as three arrays, group by group (each group's values ascending)."""
        v = values[self.order].astype(np.int64)
        g = self.group_of
        if where is not None:
            keep = where[self.order]
            v, g = v[keep], g[keep]
        if not len(v):
            return v, v, v
        width = int(v.max()) + 1
        keys = g * width + v
        top = (int(g[-1]) + 1) * width  # g is sorted: its last is the largest
        if top <= 4 * len(keys) + 4096:  # few possible keys: counted without a sort
            counts = np.bincount(keys, minlength=top)
            both = np.flatnonzero(counts)
            counts = counts[both]
        else:
            both, counts = np.unique(keys, return_counts=True)
        return both // width, both % width, counts

    def values(self, values: Array, where: Array) -> list[list[int]]:
        """Each group's ``values`` where ``where`` holds, in row order."""
        if not len(self.starts):
            return []
        keep = where[self.order]
        v = values[self.order][keep]
        cuts = np.cumsum(np.add.reduceat(keep.astype(np.int64), self.starts))[:-1]
        return [part.tolist() for part in np.split(v, cuts)]


def encode(values: Iterable[Any]) -> tuple[list[Any], Array]:
    """Distinct values (in order of first appearance) and each row's index among them: for
    the text columns (conn_state, history), whose values repeat."""
    rows = values if isinstance(values, list) else list(values)
    distinct = list(dict.fromkeys(rows))  # both passes in C: no Python step a row
    index = {v: i for i, v in enumerate(distinct)}
    codes = np.fromiter(map(index.__getitem__, rows), np.int64, count=len(rows))
    return distinct, codes


def one_of(distinct: list[Any], codes: Array, wanted: Iterable[Any]) -> Array:
    """Which rows of an ``encode``d column hold one of ``wanted``: decided once per distinct
    value, not once per row."""
    want = set(wanted)
    hit: Array = np.array([v in want for v in distinct], bool)[codes]
    return hit


def addresses(*columns: Array) -> tuple[list[str], list[Array]]:
    """The distinct addresses of n×16 address columns as text, and each column's rows as
    indices into them (the core's hash table: crates/core/src/addr_codes.rs)."""
    texts, codes = _core_module().addr_codes(list(columns))
    return texts, codes


def _flags(histories: list[str], letters: str) -> dict[str, Array]:
    """For each letter: which distinct history holds it."""
    return {ch: np.array([ch in h for h in histories], bool) for ch in letters}


# --- ports ----------------------------------------------------------------------------------


class PortRows:
    """Each row's outcome (an index into ports.OUTCOMES, by the rules of `ports`' fold in the
    core: ``_core.port_outcomes``) and its addresses as indices into ``addrs``: what the
    HTML report's connection table shows of a block."""

    def __init__(self, cols: Columns) -> None:
        self.outcome: Array = _core_module().port_outcomes(cols)
        self.addrs, (self.orig_h, self.resp_h) = addresses(cols["id.orig_h"], cols["id.resp_h"])


def port_rows(cols: Columns) -> PortRows:
    """``PortRows`` of a block of the tracker's columns (at least ``PORT_COLUMNS``)."""
    return PortRows(cols)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused while a block's objects are made: tens of thousands
    of Sockets, none in a cycle, set off a collection every few hundred and made it 40 % of
    their cost."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- handshakes -----------------------------------------------------------------------------


def add_handshake_columns(table: HandshakeTable, cols: Columns,
                          ports: frozenset[int] = frozenset()) -> None:
    """``table.add`` of every row of a column block (only those to ``ports``, if any)."""
    n = len(cols["uid"])
    if not n:
        return
    syn, syn_ack = cols["handshake.syn_ns"], cols["handshake.syn_ack_ns"]
    ack = cols["handshake.ack_ns"]
    has_syn, has_syn_ack, has_ack = syn != NONE64, syn_ack != NONE64, ack != NONE64
    tcp = one_of(*encode(cols["proto"]), ["tcp"])
    resp_p = cols["id.resp_p"].astype(np.int64)
    keep = tcp & (has_syn | has_syn_ack)
    if ports:
        keep &= np.isin(resp_p, list(ports))
    rows = np.flatnonzero(keep)
    g = Groups(resp_p[rows], rows)
    syn_rtx = cols["handshake.syn_retransmits"].astype(np.int64)
    syn_ack_rtx = cols["handshake.syn_ack_retransmits"].astype(np.int64)
    syns = g.sum(np.where(has_syn, 1 + syn_rtx, 0))
    sum_syn_rtx, sum_syn_ack_rtx = g.sum(syn_rtx), g.sum(syn_ack_rtx)
    syn_acks = g.sum(has_syn_ack)
    server_rtt = g.values(np.where(has_syn & has_syn_ack, syn_ack - syn, 0),
                          has_syn & has_syn_ack)
    client_rtt = g.values(np.where(has_syn_ack & has_ack, ack - syn_ack, 0),
                          has_syn_ack & has_ack)
    summaries = []
    for i, port in enumerate(g.keys):
        s = table.rows.get(port)
        if s is None:
            s = table.rows[port] = HandshakeSummary(port)
        summaries.append(s)
        s.handshakes += int(g.sizes[i])
        s.syns += syns[i]
        s.syn_retransmits += sum_syn_rtx[i]
        s.syn_acks += syn_acks[i]
        s.syn_ack_retransmits += sum_syn_ack_rtx[i]
        s.server_rtt.add_many(server_rtt[i])
        s.client_rtt.add_many(client_rtt[i])
    outcome_names, outcome = encode(cols["handshake.outcome"])
    for i, o, k in g.pairs(outcome):
        summaries[i].outcomes[outcome_names[o]] += k
    for side, prefix in (("client_options", "handshake.client_options"),
                         ("server_options", "handshake.server_options")):
        _fold_options([getattr(s, side) for s in summaries], g, cols, prefix)


def _fold_options(mixes: list[OptionMix], g: Groups, cols: Columns, prefix: str) -> None:
    """OptionMix.add of each row's options where they were seen."""
    present = cols[f"{prefix}.present"]
    mss = cols[f"{prefix}.mss"].astype(np.int64)
    wscale = cols[f"{prefix}.wscale"].astype(np.int64)
    offers = g.sum(present)
    sack = g.sum(present & cols[f"{prefix}.sack_perm"])
    stamps = g.sum(present & cols[f"{prefix}.timestamps"])
    for i, m in enumerate(mixes):
        m.offers += offers[i]
        m.sack_perm += sack[i]
        m.timestamps += stamps[i]
    for i, v, k in g.pairs(mss, present & (mss >= 0)):
        mixes[i].mss[v] += k
    for i, v, k in g.pairs(wscale, present & (wscale >= 0)):
        mixes[i].wscale[v] += k
    kinds, lengths = cols[f"{prefix}.kinds"], cols[f"{prefix}.kinds_len"]
    width = kinds.shape[1] if kinds.ndim == 2 else 0
    raw, length = kinds.tobytes(), lengths.tolist()
    names: dict[bytes, int] = {}
    prints: list[str] = []
    fp = np.full(len(length), -1, np.int64)
    for i in np.flatnonzero(present).tolist():
        b = raw[i * width:i * width + length[i]]
        known = names.get(b)
        if known is None:
            known = names[b] = len(prints)
            prints.append(fingerprint(b))
        fp[i] = known
    for i, v, k in g.pairs(fp, fp >= 0):
        mixes[i].fingerprints[prints[v]] += k


# --- sockets --------------------------------------------------------------------------------


def add_socket_columns(table: SocketTable, cols: Columns, *, sockets: bool = True) -> None:
    """``table.add`` of every row of a column block; ``sockets`` False leaves the list of
    connection sockets out (`sockets --listening` shows only the listeners)."""
    with _no_gc():
        _add_socket_columns(table, cols, sockets=sockets)


def _add_socket_columns(table: SocketTable, cols: Columns, *, sockets: bool) -> None:
    n = len(cols["uid"])
    if not n:
        return
    proto = cols["proto"]
    proto_names, proto_code = encode(proto)
    tcp, udp = one_of(proto_names, proto_code, ["tcp"]), one_of(proto_names, proto_code, ["udp"])
    histories, hist = encode(cols["history"])
    f = {ch: has[hist] for ch, has in _flags(histories, "hH").items()}
    sf = one_of(*encode(cols["conn_state"]), ["SF"])
    orig_a, resp_a = cols["id.orig_h"], cols["id.resp_h"]
    orig_p = cols["id.orig_p"].astype(np.int64)
    resp_p = cols["id.resp_p"].astype(np.int64)
    # One row per (connection, listening side): the responder's, then the originator's.
    resp_side = np.flatnonzero((tcp & f["h"]) | (udp & sf))
    orig_side = np.flatnonzero(tcp & f["H"])
    rows = np.concatenate([resp_side, orig_side])
    table.add_listener_peers(ListenerPeers(
        tcp[rows], np.concatenate([resp_a[resp_side], orig_a[orig_side]]),
        np.concatenate([resp_p[resp_side], orig_p[orig_side]]),
        np.concatenate([orig_a[resp_side], resp_a[orig_side]]), np.ones(len(rows), np.int64),
        cols["ts_ns"][rows], np.maximum(cols["ts_ns"], cols["last_ns"])[rows]))
    if not sockets:
        return
    both = np.flatnonzero(tcp | udp)
    if not len(both):
        return
    addrs, (orig_h, resp_h) = addresses(orig_a, resp_a)
    state_names, codes = encode(chain(cols["orig_state"], cols["resp_state"]))
    # "": UDP has no state on the wire (its rows, and only they, may hold None)
    states = [*(_SS[name] if name is not None else "" for name in state_names), ""]
    on_tcp = tcp[both]
    orig_state, resp_state = (np.where(on_tcp, half[both], len(state_names)).astype(np.uint16)
                              for half in np.split(codes, 2))
    uid = cols["uid"]
    uids = "".join(uid if len(both) == n else [uid[i] for i in both.tolist()])
    if len(uids) != UID_LEN * len(both):
        raise ValueError(f"uids of other than {UID_LEN} characters")

    def numbers_of(code: str, values: Array, dtype: type) -> array[int]:
        return numbers(code, values.astype(dtype).tobytes())

    table.add_ends(ConnectionEnds(
        addrs, states, numbers_of("B", on_tcp, np.uint8),
        numbers_of("H", orig_state, np.uint16), numbers_of("H", resp_state, np.uint16),
        numbers_of(U32, orig_h[both], np.uint32), numbers_of("H", orig_p[both], np.uint16),
        numbers_of(U32, resp_h[both], np.uint32), numbers_of("H", resp_p[both], np.uint16),
        uids))


def fold_listener_peers(parts: list[ListenerPeers]) -> ListenerPeers:
    """Rows of the same listener and peer made one: connections added, times widened. The
    result is sorted by listener (TCP first, port, address bytes), then peer."""
    tcp = np.concatenate([p.tcp for p in parts])
    addr, peer = (np.ascontiguousarray(np.concatenate([getattr(p, name) for p in parts]))
                  for name in ("addr", "peer"))
    port = np.concatenate([p.port for p in parts])
    a, q = addr.view(np.uint64).reshape(-1, 2), peer.view(np.uint64).reshape(-1, 2)
    udp = ~tcp
    order = np.lexsort((q[:, 1], q[:, 0], a[:, 1], a[:, 0], port, udp))
    new = np.zeros(len(order), bool)
    if len(order):
        new[0] = True
        for key in (udp, port, a[:, 0], a[:, 1], q[:, 0], q[:, 1]):
            k = key[order]
            new[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new)
    first = order[starts]
    if not len(starts):  # reduceat takes no empty list of starts
        return ListenerPeers(tcp, addr, port, peer, *(np.zeros(0, np.int64),) * 3)
    return ListenerPeers(
        tcp[first], addr[first], port[first], peer[first],
        np.add.reduceat(np.concatenate([p.conns for p in parts])[order], starts),
        np.minimum.reduceat(np.concatenate([p.first_ns for p in parts])[order], starts),
        np.maximum.reduceat(np.concatenate([p.last_ns for p in parts])[order], starts))


def listener_rows(peers: ListenerPeers) -> ListenerRows:
    """The listeners of folded rows (``fold_listener_peers``) in the table's order: by port,
    then by address as text, as ``SocketTable.sorted_listeners`` orders Listeners; each
    one's peers by connections, then by address."""
    n = len(peers)
    if not n:  # reduceat takes no empty list of starts
        return ListenerRows([], [], [], [], [], [], [0], [], [])
    texts, (addr, peer) = addresses(peers.addr, peers.peer)
    rank = np.empty(len(texts), np.int64)
    rank[sorted(range(len(texts)), key=texts.__getitem__)] = np.arange(len(texts))
    # A listener's rows are adjacent in folded rows: a new listener where one of these changes.
    new = np.zeros(n, bool)
    new[0] = True
    for key in (peers.tcp, peers.port, addr):
        new[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    of_row = np.cumsum(new) - 1
    tcp, port, where = peers.tcp[starts], peers.port[starts], addr[starts]
    table_order = np.lexsort((rank[where], port, ~tcp))
    position = np.empty(len(starts), np.int64)
    position[table_order] = np.arange(len(starts))
    ranked = np.lexsort((rank[peer], -peers.conns, position[of_row]))
    counts = np.diff(np.r_[starts, n])[table_order]
    names = [texts[i] for i in peer[ranked].tolist()]
    return ListenerRows(
        ["tcp" if t else "udp" for t in tcp[table_order].tolist()],
        [texts[i] for i in where[table_order].tolist()], port[table_order].tolist(),
        np.add.reduceat(peers.conns, starts)[table_order].tolist(),
        np.minimum.reduceat(peers.first_ns, starts)[table_order].tolist(),
        np.maximum.reduceat(peers.last_ns, starts)[table_order].tolist(),
        [0, *np.cumsum(counts).tolist()], names, peers.conns[ranked].tolist())


__all__ = ["HANDSHAKE_COLUMNS", "PORT_COLUMNS", "SOCKET_COLUMNS", "Groups",
           "add_handshake_columns", "add_socket_columns", "addresses",
           "encode", "fold_listener_peers", "listener_rows", "one_of", "port_rows"]
