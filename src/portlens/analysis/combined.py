"""Every summary of a set of connections at once: what `api.analyze` returns.

One pass over the connections fills all tables; like each of them, the whole is mergeable
(``a + b``), so per-file or per-worker results combine into the result of the whole capture.
``to_pandas`` gives one DataFrame per table, with flat columns (nfstream-style), when pandas is
installed; pandas is optional and imported only there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from portlens.analysis.handshakes import HandshakeTable
from portlens.analysis.ports import PortTable, outcome
from portlens.analysis.sockets import SocketTable
from portlens.track.model import Connection, Transition


@dataclass
class Analysis:
    connections: list[Connection] = field(default_factory=list)
    ports: PortTable = field(default_factory=PortTable)
    handshakes: HandshakeTable = field(default_factory=HandshakeTable)
    sockets: SocketTable = field(default_factory=SocketTable)
    events: list[Transition] = field(default_factory=list)
    """Every endpoint state transition, in capture order."""

    def add(self, c: Connection) -> None:
        self.connections.append(c)
        self.ports.add(c)
        self.handshakes.add(c)
        self.sockets.add(c)

    def __add__(self, other: Analysis) -> Analysis:
        return Analysis(self.connections + other.connections, self.ports + other.ports,
                        self.handshakes + other.handshakes, self.sockets + other.sockets,
                        sorted(self.events + other.events, key=lambda t: (t.ts_ns, t.frame)))

    def to_pandas(self) -> dict[str, Any]:
        """{'connections', 'ports', 'handshakes', 'listeners', 'sockets', 'events'} ->
        DataFrame. Raises ImportError with advice when pandas is not installed."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas needs pandas: pip install pandas") from exc
        return {
            "connections": pd.DataFrame.from_records(
                [connection_row(c) for c in self.connections]),
            "ports": self.ports.to_pandas(),
            "handshakes": self.handshakes.to_pandas(),
            "listeners": self.sockets.to_pandas(),
            "sockets": pd.DataFrame.from_records(self.sockets.socket_records()),
            "events": pd.DataFrame.from_records([event_row(t) for t in self.events]),
        }


_NESTED = frozenset({"transitions", "handshake", "analysis", "tunnel_parents", "icmp_errors"})


def connection_row(c: Connection) -> dict[str, Any]:
    """A connection as flat columns: conn.log fields, states, handshake and analysis counts."""
    row: dict[str, Any] = {}
    for f in fields(c):
        if f.name in _NESTED:
            continue
        value = getattr(c, f.name)
        row[f.name] = str(value) if hasattr(value, "value") else value
    row["tunnel_parents"] = ",".join(c.tunnel_parents)
    row["outcome"] = outcome(c)
    hs = c.handshake
    row["handshake_outcome"] = str(hs.outcome) if hs else None
    row["server_rtt_ns"] = hs.server_rtt_ns if hs else None
    row["client_rtt_ns"] = hs.client_rtt_ns if hs else None
    row["syn_retransmits"] = hs.syn_retransmits if hs else None
    if c.analysis is not None:
        for f in fields(c.analysis):
            row[f.name] = getattr(c.analysis, f.name)
    return row


def event_row(t: Transition) -> dict[str, Any]:
    return {"ts_ns": t.ts_ns, "frame": t.frame, "uid": t.uid, "endpoint": str(t.endpoint),
            "event": str(t.event), "from": str(t.old), "to": str(t.new),
            "flags": t.segment.flags, "seq": t.segment.seq, "ack": t.segment.ack,
            "payload": t.segment.payload}
