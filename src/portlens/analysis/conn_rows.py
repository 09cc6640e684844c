"""The connections of a report as columns: what the HTML report's table, ladder picks, rate
chart and RTT boxes read of each connection, made without a Connection per row.

The compiled tracker hands its ended connections over as columns (track/rust.py); a report of
a big capture (75,000 connections on the benchmark capture) that turned each into a Connection
and read the fields back spent 2 CPU s doing so. :meth:`ConnRows.add_columns` takes the values
from the columns a block at a time instead, with the rules of ``track.objects.connections`` and
``ports.outcome`` (analysis/columns.py computes the outcome for the `ports` report the same
way), and :meth:`ConnRows.add` takes them from Connection objects (the workers' and the
reference tracker's path); tests/test_conn_rows.py holds the two equal on every capture.
Connection objects are made only for the few rows that need one (the ladders' connections):
:meth:`ConnRows.connections`. Of the column blocks, only the rows the ladders can still pick
are kept (``keep``): a big capture's blocks were most of the report's memory (250 MB of the
6M-packet benchmark capture's 226,485 connections, for 250 ladders).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from portlens.analysis.columns import port_rows
from portlens.analysis.ports import OUTCOMES, outcome
from portlens.track.model import Connection
from portlens.track.objects import _END_REASONS, _STATES, port_services
from portlens.track.objects import connections as core_connections
from portlens.track.rust import NO_CODE, NONE64

Columns = dict[str, Any]

# One text per code, shared by the rows (a text made per row took 50 bytes of each).
_STATE_NAMES = {code: str(s) for code, s in _STATES.items()}
_END_NAMES = {code: str(e) for code, e in _END_REASONS.items()}

NUMBERS = ("ts_ns", "last_ns", "orig_p", "resp_p", "duration_ns", "orig_bytes", "resp_bytes",
           "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
           "server_rtt_ns", "client_rtt_ns")
"""Integer columns (int64; the RTTs NONE64 where there is none, as in the core's columns)."""
TEXTS = ("uid", "proto", "orig_h", "resp_h", "service", "conn_state", "history", "orig_state",
         "resp_state", "end_reason", "icmp_code", "tunnel_parents", "outcome")
"""Columns of Python values (text, or None; ``icmp_code`` an int or None)."""


class ConnRows:
    """Connections as columns, in the order they were added; ``last_ns`` is the later of the
    first and last packet times, ``tunnel_parents`` the parents' uids joined by commas (None:
    none), the state columns None but for TCP.

    ``keep``: the most rows ``connections`` will be asked for, as ``ladders.pick_rows`` picks
    them; of the tracker's column blocks only the rows that can still be picked are kept. A
    row picked is among the ``keep`` earliest (start time, then row) of its (outcome, proto,
    server port) group, its depth in the group being at most its turn; a row that is not
    stays not as more rows arrive, which can only add to the rows before it. None: every row
    is kept."""

    def __init__(self, keep: int | None = None) -> None:
        self._numbers: dict[str, list[np.ndarray]] = {name: [] for name in NUMBERS}
        """Column blocks' arrays, or (the object path) one array of ``_ints``' values."""
        self._ints: dict[str, list[int]] = {name: [] for name in NUMBERS}
        self._texts: dict[str, list[Any]] = {name: [] for name in TEXTS}
        self._blocks: list[Columns] = []
        self._block_rows: list[np.ndarray] = []
        """The rows (numbers among all) each kept block holds, in order."""
        self._keep = keep
        self._candidates = np.zeros((3, 0), dtype=np.int64)
        """Rows that can still be picked, as (group key, start time, row)."""
        self._protos: dict[str, int] = {}
        self._objects: list[Connection] = []
        self._arrays: dict[str, np.ndarray] | None = None
        self.n = 0

    # --- filling -----------------------------------------------------------------------------

    def add(self, c: Connection) -> None:
        """One connection as an object (the object path: workers, the reference tracker)."""
        if self._blocks:
            raise ValueError("a ConnRows takes connections or column blocks, not both")
        hs = c.handshake
        values = {"ts_ns": c.ts_ns, "last_ns": max(c.last_ns, c.ts_ns), "orig_p": c.orig_p,
                  "resp_p": c.resp_p, "duration_ns": c.duration_ns,
                  "orig_bytes": c.orig_bytes, "resp_bytes": c.resp_bytes,
                  "missed_bytes": c.missed_bytes, "orig_pkts": c.orig_pkts,
                  "orig_ip_bytes": c.orig_ip_bytes, "resp_pkts": c.resp_pkts,
                  "resp_ip_bytes": c.resp_ip_bytes,
                  "server_rtt_ns": _or_none64(hs.server_rtt_ns if hs else None),
                  "client_rtt_ns": _or_none64(hs.client_rtt_ns if hs else None)}
        for name, v in values.items():
            self._ints[name].append(v)
        texts = {"uid": c.uid, "proto": c.proto, "orig_h": c.orig_h, "resp_h": c.resp_h,
                 "service": c.service, "conn_state": c.conn_state, "history": c.history,
                 "orig_state": str(c.orig_state) if c.orig_state else None,
                 "resp_state": str(c.resp_state) if c.resp_state else None,
                 "end_reason": str(c.end_reason), "icmp_code": c.icmp_code,
                 "tunnel_parents": ",".join(c.tunnel_parents) or None,
                 "outcome": outcome(c)}
        for name, t in texts.items():
            self._texts[name].append(t)
        self._objects.append(c)
        self._arrays = None
        self.n += 1

    def update(self, conns: Iterable[Connection]) -> ConnRows:
        for c in conns:
            self.add(c)
        return self

    def add_columns(self, cols: Columns) -> None:
        """A block of the compiled tracker's connection columns (track/rust.py), which are kept
        to make the Connection objects ``connections`` asks for."""
        if self._objects:
            raise ValueError("a ConnRows takes connections or column blocks, not both")
        n = len(cols["uid"])
        if not n:
            return
        r = port_rows(cols)
        proto: list[str] = list(cols["proto"])
        tcp = np.fromiter((p == "tcp" for p in proto), bool, n)
        syn, syn_ack = cols["handshake.syn_ns"], cols["handshake.syn_ack_ns"]
        ack = cols["handshake.ack_ns"]
        has_syn, has_syn_ack, has_ack = syn != NONE64, syn_ack != NONE64, ack != NONE64
        numbers = {
            "ts_ns": cols["ts_ns"], "last_ns": np.maximum(cols["last_ns"], cols["ts_ns"]),
            "orig_p": cols["id.orig_p"], "resp_p": cols["id.resp_p"],
            "duration_ns": cols["duration_ns"], "orig_bytes": cols["orig_bytes"],
            "resp_bytes": cols["resp_bytes"], "missed_bytes": cols["missed_bytes"],
            "orig_pkts": cols["orig_pkts"], "orig_ip_bytes": cols["orig_ip_bytes"],
            "resp_pkts": cols["resp_pkts"], "resp_ip_bytes": cols["resp_ip_bytes"],
            # a Handshake is made for every TCP row (track.objects.connections), none for others
            "server_rtt_ns": np.where(tcp & has_syn & has_syn_ack, syn_ack - syn, NONE64),
            "client_rtt_ns": np.where(tcp & has_syn_ack & has_ack, ack - syn_ack, NONE64)}
        for name, v in numbers.items():
            self._numbers[name].append(np.asarray(v).astype(np.int64))
        t = self._texts
        t["uid"].extend(cols["uid"])
        t["proto"].extend(proto)
        addrs = r.addrs
        t["orig_h"].extend([addrs[a] for a in r.orig_h.tolist()])
        t["resp_h"].extend([addrs[a] for a in r.resp_h.tolist()])
        t["service"].extend(port_services(proto, cols["id.resp_p"].tolist()))
        t["conn_state"].extend(cols["conn_state"])
        t["history"].extend(cols["history"])
        is_tcp = tcp.tolist()
        for name in ("orig_state", "resp_state"):
            t[name].extend([_STATE_NAMES[s] if k else None
                            for s, k in zip(cols[name], is_tcp, strict=True)])
        t["end_reason"].extend([_END_NAMES[e] for e in cols["end_reason"]])
        t["icmp_code"].extend([None if v == NO_CODE else v for v in cols["icmp_code"].tolist()])
        t["tunnel_parents"].extend([",".join(p) or None for p in cols["tunnel_parents"]])
        t["outcome"].extend([OUTCOMES[o] for o in r.outcome.tolist()])
        rows = np.arange(self.n, self.n + n, dtype=np.int64)
        self._blocks.append(cols)
        self._block_rows.append(rows)
        if self._keep is not None:
            protos = self._protos
            group = ((r.outcome.astype(np.int64) << 24)
                     | (np.fromiter((protos.setdefault(p, len(protos)) for p in proto),
                                    np.int64, n) << 16)
                     | np.asarray(cols["id.resp_p"], dtype=np.int64))
            self._trim(np.stack((group, np.asarray(cols["ts_ns"], dtype=np.int64), rows)))
        self._arrays = None
        self.n += n

    def _trim(self, new: np.ndarray) -> None:
        """The candidates among the kept ones and ``new`` (group, start, row), and the blocks
        cut to them. A row left out had ``keep`` rows before it in its group, which stay
        before any later row of the group: left-out rows need not be looked at again."""
        assert self._keep is not None
        every = np.concatenate((self._candidates, new), axis=1)
        group, start, row = every
        order = np.lexsort((row, start, group))
        g = group[order]
        first = np.r_[True, g[1:] != g[:-1]]
        depth = np.arange(len(g)) - np.flatnonzero(first)[np.cumsum(first) - 1]
        self._candidates = every[:, np.sort(order[depth < self._keep])]
        kept = self._candidates[2]
        for k, (block, rows) in enumerate(zip(self._blocks, self._block_rows, strict=True)):
            mine = np.isin(rows, kept, assume_unique=True)
            if not mine.all():
                self._blocks[k] = _take(block, np.flatnonzero(mine))
                self._block_rows[k] = rows[mine]

    # --- reading ------------------------------------------------------------------------------

    def numbers(self, name: str) -> np.ndarray:
        """An integer column (NUMBERS) as one int64 array."""
        if self._arrays is None:
            if self._objects:
                self._numbers = {k: [np.array(v, dtype=np.int64)] for k, v in self._ints.items()}
            self._arrays = {k: np.concatenate(v) if v else np.zeros(0, np.int64)
                            for k, v in self._numbers.items()}
            self._numbers = {k: [a] for k, a in self._arrays.items()}
        return self._arrays[name]

    def texts(self, name: str) -> list[Any]:
        """A column of Python values (TEXTS)."""
        return self._texts[name]

    def __len__(self) -> int:
        return self.n

    def connections(self, rows: Sequence[int]) -> list[Connection]:
        """The Connection objects of ``rows`` (row numbers, in that order); a ValueError for
        a row not kept (``keep``)."""
        if self._objects:
            return [self._objects[i] for i in rows]
        if not rows:
            return []
        held = np.concatenate(self._block_rows)
        block_of = np.repeat(np.arange(len(self._blocks)), [len(r) for r in self._block_rows])
        firsts = np.cumsum([0] + [len(r) for r in self._block_rows])
        out = []
        for i in rows:
            at = int(np.searchsorted(held, i))
            if at == len(held) or held[at] != i:
                raise ValueError(f"row {i} was not kept: more than the {self._keep} rows "
                                 "that can be picked")
            k = int(block_of[at])
            j = at - int(firsts[k])
            one = {name: v[j:j + 1] for name, v in self._blocks[k].items()}
            out.extend(core_connections(one))
        return out


def _take(cols: Columns, index: np.ndarray) -> Columns:
    """Rows ``index`` of a block of the tracker's columns (arrays and lists)."""
    rows = index.tolist()
    return {name: v[index] if isinstance(v, np.ndarray) else [v[i] for i in rows]
            for name, v in cols.items()}


def _or_none64(v: int | None) -> int:
    return NONE64 if v is None else v


__all__ = ["ConnRows"]
