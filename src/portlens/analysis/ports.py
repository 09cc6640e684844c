"""Connections -> one summary per (protocol, server port): what `portlens ports` shows.

The server port is the responder's port. Zeek's originator/responder decision, which the tracker
reproduces, already makes the SYN sender the originator and guesses roles for connections picked
up without a SYN (by likely server ports, docs/zeek-rules.md §3); such guesses are counted in
``guessed`` so a reader can tell a port that was seen answering from one that was inferred.

Every summary is mergeable with ``+``, and a ``PortTable`` merges table by table, so one file,
many files, many workers or a cluster reduce the same way; the footer (``PortTable.total``) is
itself a PortSummary over all connections, counted once each.

Outcomes partition the connections of a row (they add up to ``conns``). They are decided from
Zeek's fields, conn_state and history, so that they can be checked against Zeek's own logs, plus
the ICMP errors portlens attaches to flows; docs/formats.md has the table. For TCP, in order:

- refused: conn_state REJ (the SYN was answered with RST);
- mid_stream: no SYN and no SYN-ACK in the history (none of S s H h): the capture began after
  the handshake, so how it opened is unknown whatever happened later;
- unanswered: S0, SH, RSTOS0 (a SYN and nothing back from the responder);
- reset: RSTO, RSTR, RSTRH (aborted with RST by either side, after or during the handshake);
- half_open: a SYN-ACK (h or H) but the originator never acknowledged anything (no A, no D);
- completed: SF (both sides closed with FIN);
- open: the rest (S1, S2, S3, SHR, OTH after a handshake): established, not closed when last
  seen.

UDP: refused when an ICMP destination-unreachable quoted the flow; completed when both sides
sent (SF); unanswered when only the originator did (S0); mid_stream when only the responder
did (SHR: the question was before the capture); open otherwise (OTH: nothing countable).

ICMP (analysis/icmp.py): a request answered is completed, unanswered otherwise; a reply alone
is mid_stream; a message that expects no answer (an error, an advertisement, a report) is
one_way. An ICMP row is not a port: it is one message kind, (type, code) of the originator's
first message, labelled ``icmp echo-request 8/0``; ICMPv6 rows have proto ``icmp6`` (Zeek logs
both as icmp, but their type numbers mean different things).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from portlens.analysis import icmp
from portlens.analysis.sketch import Sketch
from portlens.services import PROTO_NAMES, iana_class, service_name
from portlens.track.model import UNKNOWN_TRANSPORT, Connection

OUTCOMES = ("completed", "open", "refused", "unanswered", "reset", "half_open", "mid_stream",
            "one_way")

IP_ROW = "ip"
"""The proto of a per-port row of an IP protocol without ports: its port is the protocol."""
KIND_NAMES = ("tcp", "udp", "icmp", "icmp6", IP_ROW)
"""The proto of a per-port row by the number the core's fold gives its kind
(crates/core/src/analysis/ports.rs; icmp6 is ICMP over IPv6)."""

PORT_COLUMNS = frozenset({
    "ip_proto", "ip_version", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
    "icmp_code", "icmp_errors", "conn_state", "history", "ts_ns", "last_ns", "orig_pkts",
    "resp_pkts", "orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes",
    "analysis.retransmissions", "handshake.syn_ns", "handshake.syn_ack_ns", "handshake.ack_ns"})
"""The columns ``PortTable.add_columns`` reads (the core's fold, crates/core/src/analysis/
ports.rs): a block joined from batches needs no others (``Pipeline.track(column_names=)``);
tests/test_columns.py folds blocks of only these."""

_UNANSWERED = frozenset({"S0", "SH", "RSTOS0"})
_RESET = frozenset({"RSTO", "RSTR", "RSTRH"})
_UNREACHABLE = {4: 3, 6: 1}
"""ICMP destination-unreachable type by IP version."""


def outcome(c: Connection) -> str:
    """The outcome of one connection (rules in the module docstring and docs/formats.md)."""
    h = c.history
    if c.proto == "tcp":
        if c.conn_state == "REJ":
            return "refused"
        if not any(letter in h for letter in "SsHh"):
            return "mid_stream"
        if c.conn_state in _UNANSWERED:
            return "unanswered"
        if c.conn_state in _RESET:
            return "reset"
        if ("h" in h or "H" in h) and "A" not in h and "D" not in h:
            return "half_open"
        if c.conn_state == "SF":
            return "completed"
        return "open"
    if c.proto == "udp":
        unreachable = _UNREACHABLE.get(c.ip_version, 3)
        if any(t == unreachable for t, _ in c.icmp_errors):
            return "refused"
        return {"SF": "completed", "S0": "unanswered", "SHR": "mid_stream"}.get(
            c.conn_state, "open")
    if c.proto == UNKNOWN_TRANSPORT:
        # No transport analyzer: only who sent packets is known, as for UDP's SF.
        return "completed" if c.resp_pkts else "one_way"
    return icmp.outcome(c)


def guessed(c: Connection) -> bool:
    """Were the roles guessed rather than shown by a SYN?

    TCP: no SYN from either side in the history, or a flip ('^'). UDP and ICMP have no SYN; the
    first sender is the originator by convention, so only a flip by port counts as a guess."""
    if "^" in c.history:
        return True
    return c.proto == "tcp" and "S" not in c.history and "s" not in c.history


def handshake_rtt(c: Connection) -> int | None:
    """SYN to the ACK that completed the handshake: the full round trip wherever the capture
    point sits (near the client, SYN->SYN-ACK is the round trip; near the server, SYN-ACK->ACK;
    their sum is right for both)."""
    hs = c.handshake
    if hs is None or hs.syn_ns is None or hs.syn_ack_ns is None or hs.ack_ns is None:
        return None
    return hs.ack_ns - hs.syn_ns


class FoldHosts(AbstractSet[str]):
    """The distinct clients (or servers) of a per-port row that the core's fold holds as
    numbers (``PortTable.add_columns``): counted there, and written as text only when iterated,
    so that a flood from a million sources is not a million Python strings (it was 160 MB and
    half a second at the end of `ports`). Hosts added as objects (``add``: a table given both
    columns and Connections) are kept beside them. Pickled, it is a set."""

    def __init__(self, fold: Any, key: tuple[int, int, int] | None, *, clients: bool,
                 added: Iterable[str] = ()) -> None:
        self._fold, self._key, self._clients = fold, key, clients
        self._added = set(added)

    def _texts(self) -> set[str]:
        return {*self._fold.hosts(self._key, clients=self._clients), *self._added}

    def __len__(self) -> int:
        if self._added:
            return len(self._texts())
        return int(self._fold.host_count(self._key, clients=self._clients))

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts())

    def __contains__(self, host: object) -> bool:
        return host in self._added or host in self._texts()

    def add(self, host: str) -> None:
        self._added.add(host)

    def joined(self, hosts: Iterable[str]) -> FoldHosts:
        """These hosts and ``hosts``, still counted by the fold."""
        return FoldHosts(self._fold, self._key, clients=self._clients,
                         added=[*self._added, *hosts])

    def __reduce__(self) -> tuple[type, tuple[list[str]]]:
        return set, (list(self._texts()),)

    def __repr__(self) -> str:
        return f"FoldHosts({len(self)} hosts)"


def _union(a: set[str] | FoldHosts, b: set[str] | FoldHosts) -> set[str] | FoldHosts:
    """Hosts of two summaries merged. A fold's hosts merged with hosts that are not stay
    counted by the fold: a live view adds its open connections' table to the folded one at
    every refresh, and would otherwise write out every host the fold holds each time."""
    if isinstance(a, FoldHosts) and not isinstance(b, FoldHosts):
        return a.joined(b)
    if isinstance(b, FoldHosts) and not isinstance(a, FoldHosts):
        return b.joined(a)
    return {*a, *b}


@dataclass
class PortSummary:
    """All connections to one (protocol, port), or (with ``proto == "all"``) the totals."""

    proto: str
    """tcp, udp, icmp, icmp6, or all (the totals)."""
    port: int
    """The server port; for ICMP rows the message type."""
    icmp_code: int | None = None
    """ICMP rows: the message code (None when the flows did not say)."""
    conns: int = 0
    server_conns: int = 0
    """Connections where this port was the responder's (the server side)."""
    client_conns: int = 0
    """Connections where it was the originator's (counted only by ``all_ports`` tables)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    conn_states: Counter[str] = field(default_factory=Counter)
    guessed: int = 0
    pkts_c2s: int = 0
    """Packets originator -> responder (client -> server)."""
    pkts_s2c: int = 0
    bytes_c2s: int = 0
    """Payload bytes (Zeek's orig_bytes: from sequence numbers for TCP)."""
    bytes_s2c: int = 0
    ip_bytes_c2s: int = 0
    ip_bytes_s2c: int = 0
    clients: set[str] | FoldHosts = field(default_factory=set)
    servers: set[str] | FoldHosts = field(default_factory=set)
    rtt: Sketch = field(default_factory=Sketch)
    """Handshake round-trip times (SYN -> completing ACK), ns."""
    retransmissions: int = 0
    tcp_pkts: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    @property
    def is_icmp(self) -> bool:
        return self.proto in ("icmp", "icmp6")

    @property
    def is_ip(self) -> bool:
        """A row of an IP protocol without ports (Zeek's unknown_transport): ``port`` is the
        protocol number."""
        return self.proto == IP_ROW

    @property
    def service(self) -> str:
        """The IANA service of the port; for ICMP rows the message's name (echo-request)."""
        if self.is_icmp:
            return icmp.icmp_name(self.port, v6=self.proto == "icmp6")
        if self.is_ip:
            return PROTO_NAMES.get(self.port, "")
        return "" if self.proto not in ("tcp", "udp") else service_name(self.proto, self.port)

    @property
    def iana_class(self) -> str:
        return "" if self.proto not in ("tcp", "udp") else iana_class(self.port)

    @property
    def role(self) -> str:
        if self.client_conns and self.server_conns:
            return "both"
        return "client" if self.client_conns else "server"

    @property
    def pkts(self) -> int:
        return self.pkts_c2s + self.pkts_s2c

    @property
    def bytes(self) -> int:
        return self.bytes_c2s + self.bytes_s2c

    @property
    def retransmission_rate(self) -> float | None:
        """Retransmitted segments per TCP packet (Wireshark's tcp.analysis.retransmission)."""
        return self.retransmissions / self.tcp_pkts if self.tcp_pkts else None

    def add(self, c: Connection, *, client_side: bool = False) -> None:
        self.conns += 1
        if client_side:
            self.client_conns += 1
        else:
            self.server_conns += 1
        self.outcomes[outcome(c)] += 1
        self.conn_states[c.conn_state] += 1
        self.guessed += guessed(c)
        self.pkts_c2s += c.orig_pkts
        self.pkts_s2c += c.resp_pkts
        self.bytes_c2s += c.orig_bytes
        self.bytes_s2c += c.resp_bytes
        self.ip_bytes_c2s += c.orig_ip_bytes
        self.ip_bytes_s2c += c.resp_ip_bytes
        self.clients.add(c.orig_h)
        self.servers.add(c.resp_h)
        rtt = handshake_rtt(c)
        if rtt is not None:
            self.rtt.add(rtt)
        if c.proto == "tcp":
            self.tcp_pkts += c.orig_pkts + c.resp_pkts
            if c.analysis is not None:
                self.retransmissions += c.analysis.retransmissions
        last = max(c.last_ns, c.ts_ns)
        self.first_ns = c.ts_ns if self.first_ns is None else min(self.first_ns, c.ts_ns)
        self.last_ns = last if self.last_ns is None else max(self.last_ns, last)

    def __add__(self, other: PortSummary) -> PortSummary:
        if (self.proto, self.port, self.icmp_code) != (other.proto, other.port, other.icmp_code):
            raise ValueError(f"cannot merge {self.proto}/{self.port} with "
                             f"{other.proto}/{other.port}")
        return PortSummary(
            proto=self.proto, port=self.port, icmp_code=self.icmp_code,
            conns=self.conns + other.conns,
            server_conns=self.server_conns + other.server_conns,
            client_conns=self.client_conns + other.client_conns,
            outcomes=self.outcomes + other.outcomes,
            conn_states=self.conn_states + other.conn_states,
            guessed=self.guessed + other.guessed, pkts_c2s=self.pkts_c2s + other.pkts_c2s,
            pkts_s2c=self.pkts_s2c + other.pkts_s2c, bytes_c2s=self.bytes_c2s + other.bytes_c2s,
            bytes_s2c=self.bytes_s2c + other.bytes_s2c,
            ip_bytes_c2s=self.ip_bytes_c2s + other.ip_bytes_c2s,
            ip_bytes_s2c=self.ip_bytes_s2c + other.ip_bytes_s2c,
            clients=_union(self.clients, other.clients),
            servers=_union(self.servers, other.servers),
            rtt=self.rtt + other.rtt, retransmissions=self.retransmissions + other.retransmissions,
            tcp_pkts=self.tcp_pkts + other.tcp_pkts,
            first_ns=_opt_min(self.first_ns, other.first_ns),
            last_ns=_opt_max(self.last_ns, other.last_ns))

    def record(self) -> dict[str, Any]:
        """Exact numbers, one flat object (fields in docs/formats.md, "ports")."""
        out: dict[str, Any] = {
            "proto": self.proto,
            "port": self.port if self.proto in ("tcp", "udp") else None,
            "icmp_type": self.port if self.is_icmp else None,
            "icmp_code": self.icmp_code if self.is_icmp else None,
            "ip_proto": self.port if self.is_ip else None,
            "service": self.service or None, "class": self.iana_class or None,
            "role": self.role if self.proto != "all" else None,
            "conns": self.conns, "server_conns": self.server_conns,
            "client_conns": self.client_conns}
        out.update({name: self.outcomes.get(name, 0) for name in OUTCOMES})
        out.update({
            "conn_states": dict(sorted(self.conn_states.items())), "guessed": self.guessed,
            "pkts_c2s": self.pkts_c2s, "pkts_s2c": self.pkts_s2c,
            "bytes_c2s": self.bytes_c2s, "bytes_s2c": self.bytes_s2c,
            "ip_bytes_c2s": self.ip_bytes_c2s, "ip_bytes_s2c": self.ip_bytes_s2c,
            "clients": len(self.clients), "servers": len(self.servers),
            "rtt_count": self.rtt.count, "rtt_p50_ns": self.rtt.quantile(0.5),
            "rtt_p95_ns": self.rtt.quantile(0.95), "rtt_max_ns": self.rtt.max,
            "rtt_exact": self.rtt.is_exact,
            "retransmissions": self.retransmissions, "tcp_pkts": self.tcp_pkts,
            "retransmission_rate": self.retransmission_rate,
            "first_ts_ns": self.first_ns, "last_ts_ns": self.last_ns})
        return out


SCAN_MIN_PORTS = 15
"""A scan: one host tried at least this many distinct TCP (or UDP) ports of another and found
them refused or unanswered. Zeek's policy/misc/scan.zeek uses the same figure
(Scan::port_scan_threshold, failed attempts to distinct ports of one host); portlens counts over
the whole capture instead of Zeek's 5-minute window. Ordinary clients stay far below it: a
browser opens one or two ports of a server, FTP's passive mode one per transfer, and those
succeed."""
FAILED = frozenset({"unanswered", "refused"})
NOT_ANSWERED = frozenset({"unanswered", "refused", "mid_stream"})


@dataclass
class Probe:
    """What one host tried on another over one protocol: the `ports` report's scan summary."""

    proto: str
    orig_h: str
    resp_h: str
    ports: set[int] = field(default_factory=set)
    failed_ports: set[int] = field(default_factory=set)
    """Ports with at least one refused or unanswered attempt."""
    answered_ports: set[int] = field(default_factory=set)
    """Ports that answered (completed, open, half-open or reset after answering)."""
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, c: Connection, result: str) -> None:
        self.ports.add(c.resp_p)
        self.outcomes[result] += 1
        if result in FAILED:
            self.failed_ports.add(c.resp_p)
        elif result not in NOT_ANSWERED:
            self.answered_ports.add(c.resp_p)

    def __add__(self, other: Probe) -> Probe:
        return Probe(self.proto, self.orig_h, self.resp_h, self.ports | other.ports,
                     self.failed_ports | other.failed_ports,
                     self.answered_ports | other.answered_ports, self.outcomes + other.outcomes)

    @property
    def is_scan(self) -> bool:
        return len(self.failed_ports) >= SCAN_MIN_PORTS

    def record(self) -> dict[str, Any]:
        """Exact values (docs/formats.md, "ports": the scan objects)."""
        return {"proto": self.proto, "orig_h": self.orig_h, "resp_h": self.resp_h,
                "ports": len(self.ports), "failed_ports": len(self.failed_ports),
                "answered_ports": sorted(self.answered_ports),
                "attempts": sum(self.outcomes.values()),
                **{name: self.outcomes.get(name, 0) for name in OUTCOMES}}


SORT_KEYS = ("conns", "bytes", "packets", "port")


class PortTable:
    """PortSummaries keyed by (proto, port), plus the totals footer. Mergeable with ``+``.

    By default only server (responder) ports get rows; ``all_ports=True`` also gives each
    originator port a row (``client_conns``), so every port seen on the wire is listed. The
    totals count each connection once either way."""

    def __init__(self, *, all_ports: bool = False) -> None:
        self.all_ports = all_ports
        self._rows: dict[tuple[str, int, int], PortSummary] = {}
        self._total = PortSummary("all", -1)
        self.not_counted: Counter[str] = Counter()
        """Frames in no connection, by why (the tracker's count): the report's footer."""
        self._probes: dict[tuple[str, str, str], Probe] = {}
        """Made by ``add``, by (proto, orig_h, resp_h)."""
        self._summands: tuple[PortTable, PortTable] | None = None
        """A sum's tables (``+``), until its probes are asked for."""
        self._fold: Any = None
        """The core's PortFold, which ``add_columns`` feeds: its figures join the rows when
        they are read (``_settle``), its probes only when asked for, and it keeps the rows'
        hosts (``FoldHosts``)."""

    @property
    def rows(self) -> dict[tuple[str, int, int], PortSummary]:
        """By (proto, port, -1), or for ICMP (icmp or icmp6, type, code)."""
        self._settle()
        return self._rows

    @property
    def total(self) -> PortSummary:
        """The footer: every connection counted once."""
        self._settle()
        return self._total

    @total.setter
    def total(self, summary: PortSummary) -> None:
        self._settle()
        self._total = summary

    @property
    def probes(self) -> dict[tuple[str, str, str], Probe]:
        """By (proto, orig_h, resp_h), TCP and UDP: what each host tried on each other. Every
        pair's Probe is made here: ``scans`` makes only the scans'. A sum's are made from its
        summands' (as they are then) when first asked for: a live view sums its table every
        refresh and reads no probe, and a flood's million host pairs were a million Probes."""
        if self._summands is not None:
            mine, theirs = (t.probes for t in self._summands)
            self._summands = None
            for pair in mine.keys() | theirs.keys():
                p, q = mine.get(pair), theirs.get(pair)
                self._probes[pair] = p + q if p is not None and q is not None else (
                    p if p is not None else q)  # type: ignore[assignment]
        if self._fold is not None:
            for p in self._fold_probes(0, take_all=True):
                pair = (p.proto, p.orig_h, p.resp_h)
                q = self._probes.get(pair)
                self._probes[pair] = p if q is None else q + p
        return self._probes

    def _settle(self) -> None:
        """What the core's fold holds, added to the rows and the footer (the fold starts
        again from nothing)."""
        if self._fold is None:
            return
        rows, total, states = self._fold.take()
        for kind, port, code, figures in rows:
            icmp_row = KIND_NAMES[kind] in ("icmp", "icmp6")
            row = self._row(KIND_NAMES[kind], port, code if icmp_row and code >= 0 else None)
            self._settle_one(row, (kind, port, code), figures, states)
        self._settle_one(self._total, None, total, states)

    def _settle_one(self, s: PortSummary, key: tuple[int, int, int] | None, f: dict[str, Any],
                    states: list[str]) -> None:
        """``PortSummary.add`` of the connections the fold summed up in ``f``; the row's hosts
        are the fold's (under ``key``), and those added as objects."""
        for name in ("conns", "server_conns", "client_conns", "guessed", "pkts_c2s",
                     "pkts_s2c", "bytes_c2s", "bytes_s2c", "ip_bytes_c2s", "ip_bytes_s2c",
                     "retransmissions", "tcp_pkts"):
            setattr(s, name, getattr(s, name) + f[name])
        s.outcomes.update({OUTCOMES[i]: n for i, n in enumerate(f["outcomes"]) if n})
        s.conn_states.update({states[i]: n for i, n in enumerate(f["conn_states"]) if n})
        if not isinstance(s.clients, FoldHosts):
            s.clients = FoldHosts(self._fold, key, clients=True, added=s.clients)
        if not isinstance(s.servers, FoldHosts):
            s.servers = FoldHosts(self._fold, key, clients=False, added=s.servers)
        s.rtt.add_many(f["rtts"])
        if f["first_ns"] is not None:
            s.first_ns = _opt_min(s.first_ns, f["first_ns"])
            s.last_ns = _opt_max(s.last_ns, f["last_ns"])

    def _fold_probes(self, min_failed: int, *, take_all: bool = False) -> list[Probe]:
        return [Probe(KIND_NAMES[kind], orig, resp, set(ports), set(failed),
                      set(answered),
                      Counter({OUTCOMES[i]: n for i, n in enumerate(outcomes) if n}))
                for kind, orig, resp, ports, failed, answered, outcomes
                in self._fold.probes(min_failed, take_all=take_all)]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the fold's figures as PortSummaries and Probes (the fold itself is
        the core's and stays in this process)."""
        self._settle()
        _ = self.probes
        state = dict(self.__dict__)
        state["_fold"] = None
        return state

    def _row(self, proto: str, port: int, code: int | None = None) -> PortSummary:
        key = (proto, port, -1 if code is None else code)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = PortSummary(proto, port, icmp_code=code)
        return row

    def add(self, c: Connection) -> None:
        if c.proto == "icmp":
            proto = "icmp6" if c.ip_version == 6 else "icmp"
            self._row(proto, c.orig_p, c.icmp_code).add(c)
        elif c.proto == UNKNOWN_TRANSPORT:
            # No ports: one row per IP protocol ("ip 89", ospf).
            self._row(IP_ROW, c.ip_proto or 0).add(c)
        else:
            self._row(c.proto, c.resp_p).add(c)
            key = (c.proto, c.orig_h, c.resp_h)
            probe = self._probes.get(key)
            if probe is None:
                probe = self._probes[key] = Probe(*key)
            probe.add(c, outcome(c))
        if self.all_ports and c.proto in ("tcp", "udp") and c.orig_p != c.resp_p:
            self._row(c.proto, c.orig_p).add(c, client_side=True)
        self._total.add(c)

    def add_columns(self, cols: dict[str, Any]) -> None:
        """``add`` of every connection of a block of the tracker's columns (at least
        ``PORT_COLUMNS``), folded in the core (crates/core/src/analysis/ports.rs) without
        making them."""
        self.core_fold().add(cols)

    def core_fold(self) -> Any:
        """The core's fold (``portlens._core.PortFold``) this table's rows come from, made
        the first time: ``add_columns`` folds a block of columns into it, the tracker of the
        core its ended rows (``Pipeline.track``'s ``core_fold``)."""
        if self._fold is None:
            from portlens.track.rust import _core_module

            self._fold = _core_module().PortFold(all_ports=self.all_ports)
        return self._fold

    def update(self, conns: Iterable[Connection]) -> PortTable:
        for c in conns:
            self.add(c)
        return self

    def __add__(self, other: PortTable) -> PortTable:
        out = PortTable(all_ports=self.all_ports or other.all_ports)
        for key in self.rows.keys() | other.rows.keys():
            a, b = self.rows.get(key), other.rows.get(key)
            out.rows[key] = a + b if a is not None and b is not None else (
                a if a is not None else b)  # type: ignore[assignment]
        out.total = self.total + other.total
        out.not_counted = self.not_counted + other.not_counted
        out._summands = (self, other)
        return out

    def scans(self) -> list[Probe]:
        """Host pairs where one probed many ports of the other (SCAN_MIN_PORTS), most ports
        first."""
        if self._fold is not None and not self._probes:
            found = self._fold_probes(SCAN_MIN_PORTS)
        else:
            found = [p for p in self.probes.values() if p.is_scan]
        return sorted(found, key=lambda p: (-len(p.ports), p.proto, p.orig_h, p.resp_h))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[PortSummary]:
        return iter(self.sorted())

    def get(self, proto: str, port: int, code: int = -1) -> PortSummary | None:
        """The row of (proto, port), or of an ICMP (proto, type, code)."""
        return self.rows.get((proto, port, code))

    def sorted(self, by: str = "conns", top: int | None = None) -> list[PortSummary]:
        """Rows biggest first (by conns, bytes or packets) or by (proto, port)."""
        rows = list(self.rows.values())
        name = {"tcp": 0, "udp": 1}

        def key_port(r: PortSummary) -> tuple[int, str, int, int]:
            return (name.get(r.proto, 2), r.proto, r.port,
                    -1 if r.icmp_code is None else r.icmp_code)

        if by == "port":
            rows.sort(key=key_port)
        elif by in ("conns", "bytes", "packets"):
            def size(r: PortSummary) -> int:
                return {"conns": r.conns, "bytes": r.bytes, "packets": r.pkts}[by]
            rows.sort(key=lambda r: (-size(r), key_port(r)))
        else:
            raise ValueError(f"unknown sort key {by!r}; one of {', '.join(SORT_KEYS)}")
        return rows[:top] if top is not None else rows

    def records(self, by: str = "conns", top: int | None = None) -> list[dict[str, Any]]:
        return [r.record() for r in self.sorted(by, top)]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(self.records("port"))


def _opt_min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _opt_max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def port_table(conns: Iterable[Connection], *, all_ports: bool = False) -> PortTable:
    return PortTable(all_ports=all_ports).update(conns)
