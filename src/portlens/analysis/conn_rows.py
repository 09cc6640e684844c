"""The connections of a report as columns: what the HTML report's table, ladder picks, rate
chart and RTT boxes read of each connection, made without a Connection per row.

The compiled tracker hands its ended connections over as columns (track/rust.py); a report of
a big capture (75,000 connections on the benchmark capture) that turned each into a Connection
and read the fields back spent 2 CPU s doing so. :meth:`ConnRows.add_columns` takes the values
from the columns a block at a time instead, with the rules of ``track.rust.connections`` and
``ports.outcome`` (analysis/columns.py computes the outcome for the `ports` report the same
way), and :meth:`ConnRows.add` takes them from Connection objects (the workers' and the
reference tracker's path); tests/test_conn_rows.py holds the two equal on every capture.
Connection objects are made only for the few rows that need one (the ladders' connections):
:meth:`ConnRows.connections`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from portlens.analysis.columns import port_rows
from portlens.analysis.ports import OUTCOMES, outcome
from portlens.track.model import Connection
from portlens.track.rust import _END_REASONS, _STATES, NO_CODE, NONE64, port_services
from portlens.track.rust import connections as core_connections

Columns = dict[str, Any]

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
    none), the state columns None but for TCP."""

    def __init__(self) -> None:
        self._numbers: dict[str, list[np.ndarray]] = {name: [] for name in NUMBERS}
        """Column blocks' arrays, or (the object path) one array of ``_ints``' values."""
        self._ints: dict[str, list[int]] = {name: [] for name in NUMBERS}
        self._texts: dict[str, list[Any]] = {name: [] for name in TEXTS}
        self._blocks: list[Columns] = []
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
            # a Handshake is made for every TCP row (track.rust.connections), none for others
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
            t[name].extend([str(_STATES[s]) if k else None
                            for s, k in zip(cols[name], is_tcp, strict=True)])
        t["end_reason"].extend([str(_END_REASONS[e]) for e in cols["end_reason"]])
        t["icmp_code"].extend([None if v == NO_CODE else v for v in cols["icmp_code"].tolist()])
        t["tunnel_parents"].extend([",".join(p) or None for p in cols["tunnel_parents"]])
        t["outcome"].extend([OUTCOMES[o] for o in r.outcome.tolist()])
        self._blocks.append(cols)
        self._arrays = None
        self.n += n

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
        """The Connection objects of ``rows`` (row numbers, in that order)."""
        if self._objects:
            return [self._objects[i] for i in rows]
        if not rows:
            return []
        starts = np.cumsum([0] + [len(b["uid"]) for b in self._blocks])
        out = []
        for i in rows:
            k = int(np.searchsorted(starts, i, side="right")) - 1
            block, j = self._blocks[k], i - int(starts[k])
            one = {name: v[j:j + 1] for name, v in block.items()}
            out.extend(core_connections(one))
        return out


def _or_none64(v: int | None) -> int:
    return NONE64 if v is None else v


__all__ = ["ConnRows"]
