"""The core's connection and transition columns as the model's objects (``Connection``,
``Transition``, their ``Handshake`` and options): what the reports that read objects, the
live views and the API take.

Kept apart from track/rust.py, the tracker's binding, so that a run that hands its rows on as
columns (conn.log lines, the folds of ``ports``, ``handshakes`` and ``sockets``) starts
without importing the model's classes: about a tenth of ``conns --format zeek``'s start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from portlens.services import service_name
from portlens.track.model import (
    Connection,
    Endpoint,
    EndReason,
    Handshake,
    Outcome,
    TcpAnalysis,
    TcpOptions,
    Transition,
)
from portlens.track.rust import _PROTOS, NO_CODE, NO_VLAN, NONE64, _core_module
from portlens.track.states import Event, TcpState

ANALYSIS = tuple(TcpAnalysis.__dataclass_fields__)
"""The sequence analysis counters, whose columns are ``analysis.<name>``."""

MARK_COUNTERS = (*ANALYSIS, "syn_retransmits", "syn_ack_retransmits")
"""The counters a segment mark names, in the reference's order (TcpConnection._counters)."""

_STATES = {s.value: s for s in TcpState}
_EVENTS = {e.value: e for e in Event}
_OUTCOMES = {o.value: o for o in Outcome}
_END_REASONS = {r.value: r for r in EndReason}
_ENDPOINTS = {"orig": Endpoint.ORIG, "resp": Endpoint.RESP}


def _options(cols: dict[str, Any], prefix: str, rows: list[int]) -> dict[int, TcpOptions]:
    """The option columns of ``rows`` as TcpOptions, for the rows where a SYN or SYN-ACK was
    seen."""
    present = cols[f"{prefix}.present"].tolist()
    mss, wscale = cols[f"{prefix}.mss"].tolist(), cols[f"{prefix}.wscale"].tolist()
    sack, stamps = cols[f"{prefix}.sack_perm"].tolist(), cols[f"{prefix}.timestamps"].tolist()
    kinds = cols[f"{prefix}.kinds"]
    width = kinds.shape[1] if kinds.ndim == 2 else 0
    raw, kinds_len = kinds.tobytes(), cols[f"{prefix}.kinds_len"].tolist()
    # Option lists repeat (one per operating system): one tuple per distinct list.
    seen: dict[bytes, tuple[int, ...]] = {}
    out = {}
    for i in rows:
        if present[i]:
            m, w = mss[i], wscale[i]
            b = raw[i * width:i * width + kinds_len[i]]
            kind_list = seen.get(b)
            if kind_list is None:
                kind_list = seen[b] = tuple(b)
            out[i] = TcpOptions(m if m >= 0 else None, w if w >= 0 else None, sack[i],
                                stamps[i], kind_list)
    return out


_service = lru_cache(maxsize=None)(service_name)
"""A port's service name, cached (an unknown port asks the system's services database)."""


def port_services(proto: Sequence[str], resp_p: Sequence[int]) -> list[str]:
    """Each row's ``Connection.service``: the name of the responder's TCP or UDP port ('' for
    none, and for other protocols), from a block's ``proto`` and ``id.resp_p`` (as a list)."""
    return [_service(p, port) if p in _PROTOS else "" for p, port in zip(proto, resp_p,
                                                                          strict=True)]


def _addresses(column: Any) -> list[str]:
    """n×16 address rows as text (``addr_text``'s, written by the core)."""
    texts: list[str] = _core_module().addr_texts(column)
    return texts


def connections(cols: dict[str, Any],
                kept: dict[int, list[tuple[Any, ...]]] | None = None) -> list[Connection]:
    """The core's connection columns as Connection objects; ``kept`` holds each open
    connection's transitions by serial (host, not role), taken here when it ends."""
    n = len(cols["uid"])
    if n == 0:
        return []
    proto = cols["proto"]
    resp_p = cols["id.resp_p"].tolist()
    vlan = [None if v == NO_VLAN else v for v in cols["vlan"].tolist()]
    icmp_code = [None if v == NO_CODE else v for v in cols["icmp_code"].tolist()]
    end_reason = [_END_REASONS[r] for r in cols["end_reason"]]
    service = port_services(proto, resp_p)
    rows = zip(cols["uid"], cols["ts_ns"].tolist(), _addresses(cols["id.orig_h"]),
               cols["id.orig_p"].tolist(), _addresses(cols["id.resp_h"]), resp_p, proto,
               service, cols["duration_ns"].tolist(), cols["orig_bytes"].tolist(),
               cols["resp_bytes"].tolist(), cols["conn_state"], cols["missed_bytes"].tolist(),
               cols["history"], cols["orig_pkts"].tolist(), cols["orig_ip_bytes"].tolist(),
               cols["resp_pkts"].tolist(), cols["resp_ip_bytes"].tolist(),
               cols["tunnel_parents"], cols["community_id"], cols["ip_version"].tolist(), vlan,
               end_reason, cols["completeness"].tolist(), cols["last_ns"].tolist(),
               cols["first_frame"].tolist(), cols["last_frame"].tolist(), cols["icmp_errors"],
               icmp_code, cols["ip_proto"].tolist(), cols["end_frame"].tolist(),
               cols["end_phase"].tolist(), strict=True)
    out = [Connection(uid, ts, oh, op, rh, rp, p, svc, dur, ob, rb, state, missed, hist, opk,
                      oipb, rpk, ripb, list(parents), cid, version, vl, end_reason=why,
                      completeness=compl, last_ns=last, first_frame=first, last_frame=lastf,
                      icmp_errors=list(errors), icmp_code=code, ip_proto=number,
                      end_frame=end_frame, end_phase=end_phase)
           for (uid, ts, oh, op, rh, rp, p, svc, dur, ob, rb, state, missed, hist, opk, oipb,
                rpk, ripb, parents, cid, version, vl, why, compl, last, first, lastf, errors,
                code, number, end_frame, end_phase) in rows]
    tcp = [i for i, p in enumerate(proto) if p == "tcp"]
    if not tcp:
        return out
    orig_state, resp_state = cols["orig_state"], cols["resp_state"]
    outcome = cols["handshake.outcome"]
    syn_ns = cols["handshake.syn_ns"].tolist()
    syn_ack_ns = cols["handshake.syn_ack_ns"].tolist()
    ack_ns = cols["handshake.ack_ns"].tolist()
    syn_rtx = cols["handshake.syn_retransmits"].tolist()
    syn_ack_rtx = cols["handshake.syn_ack_retransmits"].tolist()
    client = _options(cols, "handshake.client_options", tcp)
    server = _options(cols, "handshake.server_options", tcp)
    analysis = list(zip(*(cols[f"analysis.{name}"].tolist() for name in ANALYSIS),
                        strict=True))
    serial, orig_host = cols["serial"].tolist(), cols["orig_host"].tolist()
    for i in tcp:
        c = out[i]
        c.orig_state = _STATES[orig_state[i]]
        c.resp_state = _STATES[resp_state[i]]
        c.handshake = Handshake(
            None if syn_ns[i] == NONE64 else syn_ns[i],
            None if syn_ack_ns[i] == NONE64 else syn_ack_ns[i],
            None if ack_ns[i] == NONE64 else ack_ns[i],
            syn_rtx[i], syn_ack_rtx[i], client.get(i), server.get(i), _OUTCOMES[outcome[i]])
        c.analysis = TcpAnalysis(*analysis[i])
        if kept is not None:
            kept_rows = kept.pop(serial[i], None)
            if kept_rows:
                o = orig_host[i]
                c.transitions = [
                    Transition(ts, frame, Endpoint.ORIG if host == o else Endpoint.RESP,
                               event, old, new, segment, c.uid)
                    for ts, frame, host, event, old, new, segment in kept_rows]
    return out
