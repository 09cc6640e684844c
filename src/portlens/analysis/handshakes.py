"""Connections -> TCP handshakes per server port: did the port answer, how fast, with what.

One HandshakeSummary per server (responder) port counts attempts and their outcome as the
tracker's handshake record decides it (track.model.Outcome), the round-trip times on each side
of the capture point, and what each side offered in its SYN or SYN-ACK: MSS, window scale,
SACK-permitted, timestamps, and the order of option kinds as a p0f-style fingerprint, which
tells operating systems and middleboxes apart. Connections picked up mid-stream have no
handshake and are left out (``portlens ports`` counts them).

Summaries and tables merge with ``+`` (counters add, sketches merge), like every summary in
analysis/.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from portlens.analysis.sketch import Sketch
from portlens.services import service_name
from portlens.track.model import Connection, Outcome, TcpOptions

OPTION_NAMES = {0: "eol", 1: "nop", 2: "mss", 3: "ws", 4: "sok", 5: "sack", 8: "ts"}

_OPTIONS = [f"handshake.{side}_options.{field}" for side in ("client", "server")
            for field in ("present", "mss", "wscale", "sack_perm", "timestamps", "kinds",
                          "kinds_len")]
HANDSHAKE_COLUMNS = frozenset({
    "uid", "proto", "id.resp_p", "handshake.syn_ns", "handshake.syn_ack_ns", "handshake.ack_ns",
    "handshake.syn_retransmits", "handshake.syn_ack_retransmits", "handshake.outcome",
    *_OPTIONS})
"""The columns ``HandshakeTable.add_columns`` reads (analysis/columns.py)."""


def fingerprint(kinds: Iterable[int]) -> str:
    """Option kinds in order, p0f's spelling: ``mss,nop,ws,sok,ts``.

    Unknown kinds are ``?N``. The decoder lists every padding byte after an end-of-options as
    another EOL; p0f writes that tail as ``eol+N`` (N padding bytes), and so do we. No options:
    the empty string."""
    names: list[str] = []
    kinds = list(kinds)
    for i, k in enumerate(kinds):
        if k == 0:
            names.append(f"eol+{len(kinds) - i - 1}")
            break
        names.append(OPTION_NAMES.get(k, f"?{k}"))
    return ",".join(names)


@dataclass
class OptionMix:
    """What one side (clients or servers) offered, over many handshakes."""

    offers: int = 0
    """SYNs (or SYN-ACKs) whose options were seen: the denominator of everything below."""
    mss: Counter[int] = field(default_factory=Counter)
    """MSS values; offers without an MSS option are not counted here."""
    wscale: Counter[int] = field(default_factory=Counter)
    sack_perm: int = 0
    timestamps: int = 0
    fingerprints: Counter[str] = field(default_factory=Counter)

    def add(self, o: TcpOptions) -> None:
        self.offers += 1
        if o.mss is not None:
            self.mss[o.mss] += 1
        if o.wscale is not None:
            self.wscale[o.wscale] += 1
        self.sack_perm += o.sack_perm
        self.timestamps += o.timestamps
        self.fingerprints[fingerprint(o.kinds)] += 1

    def __add__(self, other: OptionMix) -> OptionMix:
        return OptionMix(self.offers + other.offers, self.mss + other.mss,
                         self.wscale + other.wscale, self.sack_perm + other.sack_perm,
                         self.timestamps + other.timestamps,
                         self.fingerprints + other.fingerprints)

    def record(self) -> dict[str, Any]:
        return {"offers": self.offers, "mss": _keyed(self.mss), "wscale": _keyed(self.wscale),
                "sack_perm": self.sack_perm, "timestamps": self.timestamps,
                "fingerprints": dict(most_common(self.fingerprints))}


def most_common(c: Counter[Any]) -> list[tuple[Any, int]]:
    """Most common first, ties by value: the same whatever order the connections came in
    (a sharded run, files cut elsewhere); Counter.most_common keeps ties in arrival order."""
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


def _keyed(c: Counter[int]) -> dict[str, int]:
    """JSON objects want string keys; most common first."""
    return {str(k): v for k, v in most_common(c)}


@dataclass
class HandshakeSummary:
    port: int
    proto: str = "tcp"
    handshakes: int = 0
    """Connections with a SYN or a SYN-ACK seen."""
    syns: int = 0
    """SYN segments: first SYNs plus their retransmissions."""
    syn_retransmits: int = 0
    syn_acks: int = 0
    """Handshakes answered with a SYN-ACK."""
    syn_ack_retransmits: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    """By track.model.Outcome value: established, refused, unanswered, reset, half-open."""
    server_rtt: Sketch = field(default_factory=Sketch)
    """SYN -> SYN-ACK, ns."""
    client_rtt: Sketch = field(default_factory=Sketch)
    """SYN-ACK -> ACK, ns."""
    client_options: OptionMix = field(default_factory=OptionMix)
    server_options: OptionMix = field(default_factory=OptionMix)

    @property
    def service(self) -> str:
        return service_name(self.proto, self.port)

    @property
    def completed(self) -> int:
        return self.outcomes.get(str(Outcome.ESTABLISHED), 0)

    def count(self, outcome: Outcome) -> int:
        return self.outcomes.get(str(outcome), 0)

    def add(self, c: Connection) -> None:
        hs = c.handshake
        if hs is None or (hs.syn_ns is None and hs.syn_ack_ns is None):
            return
        self.handshakes += 1
        if hs.syn_ns is not None:
            self.syns += 1 + hs.syn_retransmits
        self.syn_retransmits += hs.syn_retransmits
        if hs.syn_ack_ns is not None:
            self.syn_acks += 1
        self.syn_ack_retransmits += hs.syn_ack_retransmits
        self.outcomes[str(hs.outcome)] += 1
        if hs.server_rtt_ns is not None:
            self.server_rtt.add(hs.server_rtt_ns)
        if hs.client_rtt_ns is not None:
            self.client_rtt.add(hs.client_rtt_ns)
        if hs.client_options is not None:
            self.client_options.add(hs.client_options)
        if hs.server_options is not None:
            self.server_options.add(hs.server_options)

    def __add__(self, other: HandshakeSummary) -> HandshakeSummary:
        if (self.proto, self.port) != (other.proto, other.port):
            raise ValueError(f"cannot merge port {self.port} with port {other.port}")
        return HandshakeSummary(
            self.port, self.proto, self.handshakes + other.handshakes, self.syns + other.syns,
            self.syn_retransmits + other.syn_retransmits, self.syn_acks + other.syn_acks,
            self.syn_ack_retransmits + other.syn_ack_retransmits,
            self.outcomes + other.outcomes, self.server_rtt + other.server_rtt,
            self.client_rtt + other.client_rtt, self.client_options + other.client_options,
            self.server_options + other.server_options)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "proto": self.proto, "port": self.port, "service": self.service or None,
            "handshakes": self.handshakes, "syns": self.syns,
            "syn_retransmits": self.syn_retransmits, "syn_acks": self.syn_acks,
            "syn_ack_retransmits": self.syn_ack_retransmits, "completed": self.completed,
            "refused": self.count(Outcome.REFUSED), "unanswered": self.count(Outcome.UNANSWERED),
            "half_open": self.count(Outcome.HALF_OPEN), "reset": self.count(Outcome.RESET)}
        for name, sk in (("server_rtt", self.server_rtt), ("client_rtt", self.client_rtt)):
            out[f"{name}_count"] = sk.count
            out[f"{name}_p50_ns"] = sk.quantile(0.5)
            out[f"{name}_p95_ns"] = sk.quantile(0.95)
            out[f"{name}_max_ns"] = sk.max
        out["client_options"] = self.client_options.record()
        out["server_options"] = self.server_options.record()
        return out


class HandshakeTable:
    """HandshakeSummaries by server port, mergeable with ``+``."""

    def __init__(self) -> None:
        self._rows: dict[int, HandshakeSummary] = {}
        self._fold: Any = None
        """The core's HandshakeFold the tracker folds its rows into (``core_fold``): its
        figures join the rows when they are read (``_settle``)."""

    @property
    def rows(self) -> dict[int, HandshakeSummary]:
        self._settle()
        return self._rows

    def core_fold(self, ports: Iterable[int] = ()) -> Any:
        """The core's fold (``portlens._core.HandshakeFold``, of the handshakes to ``ports``
        only, if any) whose figures join this table's rows, made the first time: the tracker
        of the core folds its ended rows into it (``Pipeline.track``'s ``core_fold``)."""
        if self._fold is None:
            from portlens.track.rust import _core_module

            self._fold = _core_module().HandshakeFold(sorted(ports))
        return self._fold

    def _settle(self) -> None:
        """``HandshakeSummary.add`` of what the core's fold holds (it starts again from
        nothing)."""
        if self._fold is None:
            return
        for port, f in self._fold.take():
            s = self._rows.get(port)
            if s is None:
                s = self._rows[port] = HandshakeSummary(port)
            for name in ("handshakes", "syns", "syn_retransmits", "syn_acks",
                         "syn_ack_retransmits"):
                setattr(s, name, getattr(s, name) + f[name])
            s.outcomes.update(dict(f["outcomes"]))
            s.server_rtt.add_many(f["server_rtt"])
            s.client_rtt.add_many(f["client_rtt"])
            for mix, o in ((s.client_options, f["client_options"]),
                           (s.server_options, f["server_options"])):
                mix.offers += o["offers"]
                mix.sack_perm += o["sack_perm"]
                mix.timestamps += o["timestamps"]
                mix.mss.update(dict(o["mss"]))
                mix.wscale.update(dict(o["wscale"]))
                for kinds, n in o["kinds"]:
                    mix.fingerprints[fingerprint(kinds)] += n

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the fold's figures in the rows (the fold is the core's, and stays
        in this process)."""
        self._settle()
        return {**self.__dict__, "_fold": None}

    def add(self, c: Connection) -> None:
        if c.proto != "tcp" or c.handshake is None:
            return
        hs = c.handshake
        if hs.syn_ns is None and hs.syn_ack_ns is None:
            return
        row = self.rows.get(c.resp_p)
        if row is None:
            row = self.rows[c.resp_p] = HandshakeSummary(c.resp_p)
        row.add(c)

    def add_columns(self, cols: dict[str, Any], ports: frozenset[int] = frozenset()) -> None:
        """``add`` of every connection of a block of the tracker's columns (only those to
        ``ports``, if given), without making them (analysis/columns.py)."""
        from portlens.analysis.columns import add_handshake_columns

        add_handshake_columns(self, cols, ports)

    def update(self, conns: Iterable[Connection]) -> HandshakeTable:
        for c in conns:
            self.add(c)
        return self

    def __add__(self, other: HandshakeTable) -> HandshakeTable:
        out = HandshakeTable()
        for port in self.rows.keys() | other.rows.keys():
            a, b = self.rows.get(port), other.rows.get(port)
            out.rows[port] = a + b if a is not None and b is not None else (
                a if a is not None else b)  # type: ignore[assignment]
        return out

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[HandshakeSummary]:
        return iter(self.sorted())

    def sorted(self) -> list[HandshakeSummary]:
        """Most handshakes first, then by port."""
        return sorted(self.rows.values(), key=lambda r: (-r.handshakes, r.port))

    def records(self) -> list[dict[str, Any]]:
        return [r.record() for r in self.sorted()]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.json_normalize(self.records())


def handshake_table(conns: Iterable[Connection]) -> HandshakeTable:
    return HandshakeTable().update(conns)


def connection_record(c: Connection) -> dict[str, Any] | None:
    """One connection's handshake (for ``handshakes --conns``); None if it had none."""
    hs = c.handshake
    if c.proto != "tcp" or hs is None or (hs.syn_ns is None and hs.syn_ack_ns is None):
        return None

    def opts(o: TcpOptions | None) -> dict[str, Any] | None:
        if o is None:
            return None
        return {"mss": o.mss, "wscale": o.wscale, "sack_perm": o.sack_perm,
                "timestamps": o.timestamps, "fingerprint": fingerprint(o.kinds)}

    return {"uid": c.uid, "ts_ns": c.ts_ns, "orig_h": c.orig_h, "orig_p": c.orig_p,
            "resp_h": c.resp_h, "resp_p": c.resp_p, "outcome": str(hs.outcome),
            "syn_retransmits": hs.syn_retransmits,
            "syn_ack_retransmits": hs.syn_ack_retransmits, "server_rtt_ns": hs.server_rtt_ns,
            "client_rtt_ns": hs.client_rtt_ns, "client_options": opts(hs.client_options),
            "server_options": opts(hs.server_options)}
