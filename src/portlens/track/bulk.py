"""The bulk path: ordinary segments of established connections, applied with array reductions.

Most packets of a capture are in-order data and ACKs of established connections. For them the
per-packet state machine (track/tcp.py) does nothing but move counters, sequence and ACK marks
forward: no history letter, no state change, no gap, no analysis mark. This module finds, for
each connection in a batch, the longest run of such segments at the start of its rows (its
"prefix") and applies the run at once. The rows after the first segment that might do anything
else go through the per-packet path as before, so results are identical; a test runs both paths
on the same captures and compares every field.

A segment of connection C from host X (peer Y) is ordinary when, with C's state at the start
of the batch and all earlier segments of the prefix applied:
- C is established on both sides (Zeek and RFC 9293), no FIN/RST yet, nothing waiting behind
  a hole in Zeek's reassembler, both sides seen, never tunnelled;
- it carries ACK and no SYN/FIN/RST, a non-zero window, is not a tunnel packet;
- its sequence number is exactly X's next byte (no loss, no retransmission, no keep-alive);
- it acknowledges nothing beyond Y's next byte (no gap) and no less than X's previous ACK
  (strictly more for a pure ACK: an equal one could be a duplicate ACK or window update);
- X already has its 'A' (pure ACK) or 'D' (data) history letter; data is fully captured and
  X's data has been acknowledged before (Zeek's reassembler start-up rule);
- it comes less than C's inactivity timeout after C's previous packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from portlens.track.tcp import TcpConnection
from portlens.track.zeek import HIST_ACK, HIST_DATA, MASK32, ZState

if TYPE_CHECKING:
    from portlens.track.tracker import Key

I64 = npt.NDArray[np.int64]
SYN_FIN_RST = 0x07
ACK = 0x10
V4_PREFIX = bytes(10) + b"\xff\xff"
NEVER = 1 << 62
"""The gap no packet reaches: an inactivity timeout of 0 is off (track/timeouts.py)."""


def _eligible_conn(c: TcpConnection) -> bool:
    o, r = c.orig, c.resp
    oe, re_ = o.ep, r.ep
    return (oe.state == ZState.ESTABLISHED and re_.state == ZState.ESTABLISHED
            and not c.removed and c.first_seen == 3 and not c.close_deferred
            and oe.fin_cnt == 0 and re_.fin_cnt == 0 and not oe.did_close
            and not re_.did_close and oe.reasm.all_delivered() and re_.reasm.all_delivered()
            and not oe.reasm.skip and not re_.reasm.skip
            and o.rfc.value == "ESTABLISHED" and r.rfc.value == "ESTABLISHED"
            and o.fin_abs is None and r.fin_abs is None and c.encap is None
            and o.high is not None and r.high is not None and o.isn is not None
            and r.isn is not None and o.last_ack is not None and r.last_ack is not None
            and o.last_win is not None and r.last_win is not None
            and o.last_win != 0 and r.last_win != 0)


def eligible_for_bulk(c: TcpConnection) -> bool:
    """The connection-level conditions of the bulk path and the per-packet fast lane."""
    return _eligible_conn(c) and _start_state(c) is not None


def _start_state(c: TcpConnection) -> tuple[int, ...] | None:
    """Per-direction start values, or None when a direction's marks disagree (then the
    connection stays on the per-packet path this batch)."""
    out: list[int] = []
    for host in (c.orig, c.resp):
        ep = host.ep
        assert host.high is not None and host.last_ack is not None
        assert host.last_win is not None
        # Everything X sent is delivered in order, and Zeek's and the observer's marks agree.
        if ep.last_seq != host.high or (ep.start_seq + ep.reasm.next) & MASK32 != ep.last_seq:
            return None
        # Zeek's highest ACK from X's peer equals the observer's last ACK from the peer.
        peer = c.resp if host is c.orig else c.orig
        if ep.ack_seq != peer.last_ack:
            return None
        mask = 1 if ep.is_orig else 1 << 16
        out += [host.high, host.last_ack, host.last_win,
                int(bool(c.hist_seen & (HIST_ACK * mask))),
                int(bool(c.hist_seen & (HIST_DATA * mask))),
                int(not ep.no_data_acked()),
                host.wscale if (host.wscale is not None and peer.wscale is not None) else 0]
    out += [c.last_zts, c.inactivity or NEVER]
    return tuple(out)


def bulk_pass(tracker: object, cols: Mapping[str, npt.NDArray[Any]],
              src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8],
              vlan_in_key: bool) -> npt.NDArray[np.bool_]:
    """Apply the ordinary prefix of every connection; returns a mask of the rows it handled.

    ``cols`` (the batch's columns) and ``src``/``dst`` (16-byte addresses, one row each) are
    the tracker's views of the rows it tracks, in capture order."""
    from portlens.track.tracker import Tracker

    assert isinstance(tracker, Tracker)
    n = len(cols["ts_ns"])
    handled = np.zeros(n, dtype=bool)
    flags = cols["tcp_flags"].astype(np.int64)
    cand_mask = ((cols["l4"] == 6) & (cols["tunnel_depth"] == 0)
                 & ((flags & SYN_FIN_RST) == 0) & ((flags & ACK) != 0)
                 & (cols["win"] != 0))
    if tracker.config.drop_bad_checksums:
        cand_mask &= cols["l4_csum"] != 2
    cand = np.flatnonzero(cand_mask)
    if cand.size < 64:
        return handled
    # Group candidate rows by connection: canonical 36-byte keys, then one dict lookup per key.
    s16 = src[cand]
    d16 = dst[cand]
    sport = cols["sport"][cand].astype(np.int64)
    dport = cols["dport"][cand].astype(np.int64)
    a = np.concatenate([s16, sport.astype(">u2").view(np.uint8).reshape(-1, 2)], axis=1)
    b = np.concatenate([d16, dport.astype(">u2").view(np.uint8).reshape(-1, 2)], axis=1)
    a_first = _lex_le(a, b)
    lo = np.where(a_first[:, None], a, b)
    hi = np.where(a_first[:, None], b, a)
    keys = np.ascontiguousarray(np.concatenate([lo, hi], axis=1))
    vlans = cols["vlan"][cand].astype(np.int64) if vlan_in_key else None
    kv = keys.view(np.dtype((np.void, 36))).ravel()
    uniq, first_idx, inverse = np.unique(kv, return_index=True, return_inverse=True)
    conns: list[TcpConnection | None] = []
    starts: list[tuple[int, ...]] = []
    orig_is_lo: list[bool] = []
    for u in range(uniq.size):
        raw = keys[first_idx[u]].tobytes()
        vlan = int(vlans[first_idx[u]]) if vlans is not None else None
        lo_addr, lo_port = raw[:16], int.from_bytes(raw[16:18], "big")
        key: Key = (6, vlan, lo_addr, lo_port, raw[18:34], int.from_bytes(raw[34:36], "big"))
        found = tracker.table.get(key)
        c = found if isinstance(found, TcpConnection) else None
        st = _start_state(c) if c is not None and _eligible_conn(c) else None
        if st is None or c is None:
            conns.append(None)
            starts.append((0,) * 16)
            orig_is_lo.append(False)
        else:
            conns.append(c)
            starts.append(st)
            orig_is_lo.append(c.orig.addr == lo_addr and c.orig.port == lo_port)
    start = np.asarray(starts, dtype=np.int64)  # (U, 16)
    ok_conn = np.fromiter((c is not None for c in conns), dtype=bool, count=len(conns))
    g = inverse.astype(np.int64).ravel()
    keep = ok_conn[g]
    if keep.sum() < 32:
        return handled
    cand, g = cand[keep], g[keep]
    # Direction: 0 when the row's source is the connection's originator (the row's source is
    # the lower endpoint exactly when a_first).
    lo_is_orig = np.asarray(orig_is_lo, dtype=bool)
    d = np.where(a_first[keep] == lo_is_orig[g], 0, 1)
    order = np.lexsort((cand, g))  # by connection, then capture order
    cand, g, d = cand[order], g[order], d[order]
    m = cand.size
    pos = np.arange(m, dtype=np.int64)
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    gs_of = np.repeat(group_start, np.diff(np.r_[group_start, m]))

    seq = cols["seq"][cand].astype(np.int64)
    ack = cols["ack"][cand].astype(np.int64)
    pay = cols["payload"][cand].astype(np.int64)
    win = cols["win"][cand].astype(np.int64)
    zts = cols["ts_ns"][cand].astype(np.int64)
    zts -= zts % 1000
    captured = ~cols["truncated"][cand].astype(bool)

    st = start[g]  # per row: the connection's start values
    col = {name: i for i, name in enumerate(("high", "last_ack", "last_win", "hist_a", "hist_d",
                                              "acked", "wscale"))}

    def mine(name: str) -> I64:
        i = col[name]
        out: I64 = np.where(d == 0, st[:, i], st[:, 7 + i])
        return out

    def theirs(name: str) -> I64:
        i = col[name]
        out: I64 = np.where(d == 0, st[:, 7 + i], st[:, i])
        return out

    # Payload sent before each row by each direction, within its connection.
    sent = []
    for dd in (0, 1):
        x = np.where(d == dd, pay, 0)
        cs = np.cumsum(x)
        excl = cs - x
        sent.append(excl - (cs[gs_of] - x[gs_of]))
    my_sent = np.where(d == 0, sent[0], sent[1])
    peer_sent = np.where(d == 0, sent[1], sent[0])
    expected = (mine("high") + my_sent) & MASK32
    peer_high = (theirs("high") + peer_sent) & MASK32

    # The previous row of the same direction, and of the other, within the connection.
    last_resp = _previous(d, gs_of)  # the last earlier row from the responder
    last_orig = _previous(1 - d, gs_of)  # ... and from the originator
    prev_same = np.where(d == 1, last_resp, last_orig)
    prev_other = np.where(d == 1, last_orig, last_resp)
    prev_ack = np.where(prev_same >= 0, ack[np.maximum(prev_same, 0)], mine("last_ack"))
    peer_ack = np.where(prev_other >= 0, ack[np.maximum(prev_other, 0)], theirs("last_ack"))
    peer_win = np.where(prev_other >= 0, win[np.maximum(prev_other, 0)], theirs("last_win"))
    prev_zts = np.where(pos > gs_of, zts[np.maximum(pos - 1, 0)], st[:, 14])

    ack_move = _seq_delta(ack, prev_ack)
    data = pay > 0
    ok = ((seq == expected)
          & np.where(data, mine("hist_d") == 1, mine("hist_a") == 1)
          & np.where(data, ack_move >= 0, ack_move > 0)
          & (_seq_delta(ack, peer_high) <= 0)
          & (~data | (captured & (mine("acked") == 1)))
          & (zts - prev_zts < st[:, 15]))
    first_bad = np.minimum.reduceat(np.where(ok, m, pos), group_start)
    prefix = pos < np.repeat(first_bad, np.diff(np.r_[group_start, m]))
    if not prefix.any():
        return handled
    scale = np.where(d == 0, st[:, 7 + col["wscale"]], st[:, col["wscale"]])
    window_end = (peer_ack + (peer_win << scale)) & MASK32
    full = prefix & data & ((seq + pay) & MASK32 == window_end)

    _apply(tracker, conns, prefix, g, d, cand, seq, ack, pay, win, zts, full, cols)
    handled[cand[prefix]] = True
    return handled


def _apply(tracker: object, conns: list[TcpConnection | None], prefix: npt.NDArray[np.bool_],
           g: I64, d: I64, cand: I64, seq: I64, ack: I64, pay: I64, win: I64, zts: I64,
           full: npt.NDArray[np.bool_], cols: Mapping[str, npt.NDArray[Any]]) -> None:
    """Move each connection's state past its prefix rows."""
    from portlens.track.tracker import Tracker

    assert isinstance(tracker, Tracker)
    idx = np.flatnonzero(prefix)
    gg, dd = g[idx], d[idx]
    u = len(conns)
    slot = gg * 2 + dd
    count = np.bincount(slot, minlength=2 * u)
    ip_len = cols["ip_len"][cand[idx]].astype(np.int64)
    ip_sum = np.bincount(slot, weights=ip_len, minlength=2 * u).astype(np.int64)
    pay_sum = np.bincount(slot, weights=pay[idx], minlength=2 * u).astype(np.int64)
    full_sum = np.bincount(gg, weights=full[idx], minlength=u).astype(np.int64)
    last_of = np.full(2 * u, -1, dtype=np.int64)
    np.maximum.at(last_of, slot, idx)
    last_any = np.full(u, -1, dtype=np.int64)
    np.maximum.at(last_any, gg, idx)
    frames = cols["frame"]
    ts_all = cols["ts_ns"]
    touched = np.flatnonzero(last_any >= 0)
    for gi in touched[np.argsort(last_any[touched])]:
        c = conns[gi]
        assert c is not None
        for di, host in ((0, c.orig), (1, c.resp)):
            k = 2 * gi + di
            if count[k] == 0:
                continue
            ep = host.ep
            c.pkts[di] += int(count[k])
            c.ip_bytes[di] += int(ip_sum[k])
            sent = int(pay_sum[k])
            if sent:
                assert host.high is not None and host.isn is not None
                old_high = host.high
                new_high = (old_high + sent) & MASK32
                ep.update_last(new_high)
                ep.reasm.in_order(sent)
                host.high = new_high
                base = (old_high - host.isn) & MASK32
                host.seen.add(base, base + sent)
        # The ACKs after all the data: a run's data was sent before the ACKs that trim it, so
        # trimming first would keep blocks the per-packet path drops (then a FIN waits for
        # them: data_pending).
        for di, host in ((0, c.orig), (1, c.resp)):
            k = 2 * gi + di
            if count[k] == 0:
                continue
            peer = c.resp if di == 0 else c.orig
            last = int(last_of[k])
            new_ack = int(ack[last])
            if new_ack != host.last_ack:
                host.dup_acks = 0
                peer.ep.update_ack(new_ack)
                peer.ep.reasm.acked_to(
                    (peer.ep.ack_wraps << 32) + peer.ep.ack_seq - peer.ep.start_seq)
            host.last_ack = new_ack
            host.last_win = int(win[last])
            host.window_zero = False
        last_row = int(last_any[gi])
        r = int(cand[last_row])
        c.last_ts = int(ts_all[r])
        c.last_frame = int(frames[r])
        c.last_zts = int(zts[last_row])
        c.analysis.window_full += int(full_sum[gi])
        c.completeness |= 8 if pay_sum[2 * gi] + pay_sum[2 * gi + 1] else 0
        if c.saw_syn_ack:
            c.completeness |= 4
        tracker.table.move_to_end(c.key)
        tracker.packets_tracked += int(count[2 * gi] + count[2 * gi + 1])


def _previous(mask_dir: I64, group_start_of_row: I64) -> I64:
    """For each row, the index of the last earlier row with mask_dir == 1 in its group, or -1."""
    m = mask_dir.shape[0]
    idx = np.where(mask_dir == 1, np.arange(m, dtype=np.int64), -1)
    acc = np.maximum.accumulate(idx)
    prev = np.empty(m, dtype=np.int64)
    prev[0] = -1
    prev[1:] = acc[:-1]
    prev[prev < group_start_of_row] = -1
    return prev


def _seq_delta(a: I64, b: I64) -> I64:
    diff = (a - b) & MASK32
    out: I64 = np.where(diff >= 1 << 31, diff - (1 << 32), diff)
    return out


def _lex_le(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Row-wise a <= b, comparing the rows as byte strings."""
    diff = a.astype(np.int16) - b.astype(np.int16)
    nz = diff != 0
    first = np.argmax(nz, axis=1)
    any_nz = nz.any(axis=1)
    sign = diff[np.arange(a.shape[0]), first]
    out: npt.NDArray[np.bool_] = ~any_nz | (sign < 0)
    return out
