"""One TCP connection, followed packet by packet.

Two views are kept side by side:
- Zeek's (track/zeek.py): endpoint states, history letters, sizes, gaps, timers, so that
  conn.log fields equal Zeek's (docs/zeek-rules.md, whose section numbers are cited below);
- an RFC 9293 observer (track/states.py): both endpoints' states with every transition, the
  handshake record and Wireshark-style sequence analysis, which Zeek does not give.

Roles can flip (Zeek's rules); everything per host lives in a Host that moves with the flip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portlens.track.entry import TableEntry
from portlens.track.model import Handshake, Outcome, TcpAnalysis, TcpOptions
from portlens.track.ranges import Coverage
from portlens.track.states import Event, TcpState, next_state
from portlens.track.timeouts import (
    TCP_CONNECTION_LINGER,
    TCP_SESSION_TIMER,
    TCP_SYN_TIMEOUT,
    Timeouts,
)
from portlens.track.zeek import (
    HIST_ACK,
    HIST_DATA,
    HIST_FIN,
    HIST_FIN_RST,
    HIST_MULTI_FLAG,
    HIST_RST,
    HIST_SYN,
    MASK32,
    TOO_LARGE_SEQ_DELTA,
    ZeekEndpoint,
    ZeekOwner,
    ZState,
    seq_delta,
)

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
ANALYSIS_FIELDS = tuple(TcpAnalysis.__dataclass_fields__)
DEFAULT_TIMEOUTS = Timeouts()


@dataclass(slots=True)
class Segment:
    """The fields of one TCP packet the tracker uses."""

    ts: int
    """Capture time (ns)."""
    zts: int
    """Zeek's time: microseconds, as Zeek reads them (§1.1), in ns units."""
    frame: int
    flags: int
    seq: int
    ack: int
    payload: int
    win: int
    ip_len: int
    captured: bool
    """The whole payload was captured (not cut by snaplen)."""
    csum_bad: bool
    options: TcpOptions | None = None
    """Only for SYN and SYN-ACK segments."""


class Host:
    """One end of the connection: Zeek's endpoint plus the RFC 9293 observer's view."""

    __slots__ = (
        "addr",
        "dup_acks",
        "ep",
        "fin_abs",
        "high",
        "isn",
        "last_ack",
        "last_win",
        "port",
        "rfc",
        "seen",
        "window_zero",
        "wscale",
    )

    def __init__(self, addr: bytes, port: int, ep: ZeekEndpoint, rfc: TcpState) -> None:
        self.addr = addr
        self.port = port
        self.ep = ep
        self.rfc = rfc
        self.isn: int | None = None
        self.fin_abs: int | None = None
        """Sequence number of this host's FIN."""
        self.high: int | None = None
        """One past the highest sequence number this host sent (absolute, 32-bit)."""
        self.seen = Coverage()
        """Sequence ranges sent, relative to isn (merged), for retransmission analysis."""
        self.last_ack: int | None = None
        self.last_win: int | None = None
        self.window_zero = False
        self.wscale: int | None = None
        self.dup_acks = 0


TimerFn = Callable[["TcpConnection", int, str], None]


class TcpConnection(ZeekOwner, TableEntry):
    """A TCP connection keyed by its 4-tuple, from its first packet until it is removed."""

    def __init__(self, src: bytes, sport: int, dst: bytes, dport: int, first: Segment,
                 add_timer: TimerFn, on_transition: Callable[..., None] | None,
                 timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
        super().__init__(first.ts, first.zts, first.frame, 0)
        self.add_timer = add_timer
        self.timeouts = timeouts
        self.on_transition = on_transition
        o_ep = ZeekEndpoint(self, True)
        r_ep = ZeekEndpoint(self, False)
        o_ep.peer, r_ep.peer = r_ep, o_ep
        syn_only = first.flags & (SYN | ACK) == SYN
        syn_ack = first.flags & (SYN | ACK) == SYN | ACK
        # The observer's starting states (documented in docs/tracking.md): a SYN opens from
        # CLOSED towards a LISTENing peer; a first SYN-ACK implies a SYN we missed; anything
        # else is a connection picked up mid-stream, both sides ESTABLISHED.
        if syn_only:
            o_rfc, r_rfc = TcpState.CLOSED, TcpState.LISTEN
        elif syn_ack:
            o_rfc, r_rfc = TcpState.LISTEN, TcpState.SYN_SENT
        else:
            o_rfc = r_rfc = TcpState.ESTABLISHED
        self.orig = Host(src, sport, o_ep, o_rfc)
        self.resp = Host(dst, dport, r_ep, r_rfc)
        self.missed = 0
        self.is_partial = False
        self.first_seen = 0
        self.close_deferred = False
        self.deferred_gen = False
        self.is_active = True
        self.timers_cancelled = False
        self.saw_syn = False
        self.saw_syn_ack = False
        self.saw_rst = False
        self.fin_hosts = 0
        self.completeness = 0
        self.transitions: list[tuple[int, int, Host, Event, TcpState, TcpState, int, int, int,
                                     int]] = []
        self.handshake = Handshake()
        self.client: Host | None = None
        """The host that sent the first SYN (the handshake's client)."""
        self.last_syn_ts: int | None = None
        self.analysis = TcpAnalysis()
        self.fast_ok = False
        """Both sides established and consistent: ordinary segments may take try_fast."""
        self.segment_marks: list[tuple[int, int, tuple[str, ...]]] | None = None
        """Set to a list to record, per segment, the analysis counters it moved."""
        self.gaps_for_partial = False
        self.pending_inactivity: int | None = None

    def arm(self) -> None:
        """The timers of a new connection, once the tracker has numbered it (timers name
        connections by serial number). Zeek gives a new TCP connection the UDP inactivity
        timeout until its handshake is over (TCPAnalyzer::MakeSessionAdapter, then
        TCP_Endpoint::SetState), and checks it first tcp_SYN_timeout after its creation."""
        self.set_inactivity(self.timeouts.udp_inactivity)
        self.add_timer(self, self.start_zts + TCP_SYN_TIMEOUT, "expire")

    # --- Zeek: timers and owner callbacks ----------------------------------------------------

    def set_inactivity(self, timeout: int) -> None:
        """Zeek's Session::SetInactivityTimeout; 0 arms no timer (an older one, still in the
        heap, then finds the timeout off and does nothing)."""
        if timeout == self.inactivity:
            return
        self.inactivity = timeout
        if timeout:
            self.add_timer(self, self.last_zts + timeout, "inactivity")

    def handshake_left(self) -> None:
        self.set_inactivity(self.timeouts.tcp_inactivity)

    def content_gap(self, ep: ZeekEndpoint, n: int) -> None:
        clean = ep.clean() and ep.peer.clean()
        if clean and ep.gaps.hit():
            self._add_letter("G", ep.is_orig)
        if clean or self.gaps_for_partial:
            self.missed += n

    def endpoint_eof(self, ep: ZeekEndpoint) -> None:
        if self.close_deferred:
            self.close_deferred = False
            self._connection_closed(ep, self.deferred_gen)

    def release(self) -> None:
        """Break the reference cycles (endpoints point at their peer and their connection,
        reassemblers at their endpoint) once the connection is reported, so it is freed at
        once instead of by the cycle collector, whose pauses would stall a live capture."""
        for host in (self.orig, self.resp):
            ep = host.ep
            ep.peer = None  # type: ignore[assignment]
            ep.owner = None  # type: ignore[assignment]
            ep.reasm.ep = None  # type: ignore[assignment]
        self.transitions = []
        self.on_transition = None
        self.add_timer = _no_timer

    def cancel_timers(self) -> None:
        self.timer_gen += 1
        self.timers_cancelled = True

    def timer(self, now: int, name: str) -> str | None:
        """A timer fired at capture time ``now``: the removal cause, or None to keep going."""
        o, r = self.orig.ep, self.resp.ep
        if name == "inactivity":
            if not self.inactivity:
                return None
            if self.last_zts + self.inactivity <= now:
                return "idle"
            self.add_timer(self, self.last_zts + self.inactivity, "inactivity")
        elif name == "attempt":
            if (self.is_active and o.state in (ZState.SYN_SENT, ZState.SYN_ACK_SENT)
                    and r.state == ZState.INACTIVE):
                self.is_active = False
                return "idle"
        elif name == "expire":
            if not self.is_active:
                return None
            if self.last_zts + TCP_CONNECTION_LINGER < now:
                if (o.did_close or r.did_close) and (
                        (o.did_close and r.did_close)
                        or ZState.RESET in (o.state, r.state)
                        or ZState.INACTIVE in (o.state, r.state)):
                    self.is_active = False
                    return "closed"
                if r.state == ZState.INACTIVE and o.state == ZState.INACTIVE:
                    return "idle"
            self._timer_guarded(now + TCP_SESSION_TIMER, "expire")
        elif name in ("close", "reset"):
            return "closed"
        elif (name == "partial_close" and self.is_active
              and ZState.INACTIVE not in (o.state, r.state)
              and not (o.did_close and r.did_close) and ZState.RESET not in (o.state, r.state)):
            return "idle"  # Zeek's PartialCloseTimer: both heard from, not both closed, no RST
        return None

    def _timer_guarded(self, deadline: int, name: str) -> None:
        if not self.timers_cancelled:
            self.add_timer(self, deadline, name)

    # --- Zeek: history ---------------------------------------------------------------------

    def _add_letter(self, code: str, is_orig: bool) -> None:
        self.history += code if is_orig else code.lower()

    def _check_history(self, ep: ZeekEndpoint, mask: int, code: str) -> bool:
        """Add a one-time letter; True if it had been added before (Zeek's CheckHistory)."""
        if not ep.is_orig:
            mask <<= 16
        if self.hist_seen & mask:
            return True
        self.hist_seen |= mask
        self._add_letter(code, ep.is_orig)
        return False

    def add_scaled(self, letter: str, is_orig: bool, counter_ok: bool) -> None:
        if counter_ok:
            self._add_letter(letter, is_orig)

    def flip(self) -> None:
        """Swap the roles (§3.5): hosts, counters; history gets '^', older letters stay."""
        self.orig, self.resp = self.resp, self.orig
        self.orig.ep.is_orig = True
        self.resp.ep.is_orig = False
        self.pkts.reverse()
        self.ip_bytes.reverse()
        fs = self.first_seen
        self.first_seen = (2 if fs & 1 else 0) | (1 if fs & 2 else 0)
        self.is_partial = False
        self.history += "^"
        self.flips += 1

    # --- the packet ---------------------------------------------------------------------------

    def is_reuse(self, flags: int, seq: int) -> bool:
        """Would this packet start a new connection on the same tuple (§2.2)?"""
        if not flags & SYN:
            return False
        ref = self.orig.ep
        if flags & ACK:
            if self.orig.ep.state != ZState.INACTIVE:
                return False
            ref = self.resp.ep
        if not (self.orig.ep.did_close or self.resp.ep.did_close):
            if seq == ref.start_seq & MASK32:
                return False
            return not (not flags & ACK and ref.state == ZState.SYN_ACK_SENT
                        and self.resp.ep.state == ZState.INACTIVE
                        and seq == self.resp.ep.start_seq & MASK32)
        return True

    def packet(self, s: Segment, from_orig: bool, *, check_csum: bool) -> None:
        host = self.orig if from_orig else self.resp
        if check_csum and s.csum_bad:
            if host.ep.corrupt.hit():
                self._add_letter("C", host.ep.is_orig)
            return
        # The second-packet flip (§3.2): a connection that began with a SYN-ACK.
        if self.history == "H" and not s.flags & (SYN | RST) and (s.flags & ACK or s.payload):
            self.flip()  # the sending host keeps its object; its role changed
            self.history = "^h"
            from_orig = not from_orig
        peer = self.resp if from_orig else self.orig
        self.last_ts = s.ts
        self.last_frame = s.frame
        before = self._counters() if self.segment_marks is not None else None
        self._observe(s, host, peer)
        self._zeek(s, host, peer)
        i = 0 if host is self.orig else 1
        self.pkts[i] += 1
        self.ip_bytes[i] += s.ip_len
        self.fast_ok = fast_lane_ready(self)
        if before is not None and self.segment_marks is not None:
            after = self._counters()
            self.segment_marks.append((s.frame, s.ts, tuple(
                name for name, value in after.items() if value > before[name])))

    def _counters(self) -> dict[str, int]:
        out = {name: getattr(self.analysis, name) for name in ANALYSIS_FIELDS}
        out["syn_retransmits"] = self.handshake.syn_retransmits
        out["syn_ack_retransmits"] = self.handshake.syn_ack_retransmits
        return out

    def _zeek(self, s: Segment, host: Host, peer_host: Host) -> None:
        ep, peer = host.ep, peer_host.ep
        flags = s.flags
        is_syn, is_fin, is_rst, is_ack = (bool(flags & SYN), bool(flags & FIN),
                                          bool(flags & RST), bool(flags & ACK))
        length = s.payload
        self._set_partial(flags, ep.is_orig)
        seg_len = length + is_syn + is_fin
        if is_rst:
            seg_len -= length
        base = s.seq
        end_seq = (base + seg_len) & MASK32
        self._init_endpoint(ep, is_syn, base, end_seq)
        rel_seq, underflow = self._relative(ep, base)
        self._history(ep, flags, rel_seq, length)
        if s.win == 0 and not is_rst and peer.state != ZState.CLOSED and ep.state != ZState.RESET:
            self.add_scaled("W", ep.is_orig, ep.zero_window.hit())
        if not (self.orig.ep.did_close and self.resp.ep.did_close):
            self.last_zts = s.zts
        if is_fin:
            ep.fin_cnt += 1
            ep.fin_seq = rel_seq + seg_len
        if is_rst:
            ep.rst_cnt += 1
        rel_ack = self._ack_bookkeeping(peer, s.ack, is_ack, is_rst) if is_ack else 0
        self._update_last_seq(ep, end_seq, is_syn, is_fin, is_rst, length)
        do_close, gen = self._state_machine(s, ep, peer, is_syn, is_fin, is_rst, is_ack, base)
        if is_ack:
            peer.reasm.ack_received(rel_ack)
        self.first_seen |= 1 if ep.is_orig else 2
        if length > 0 and s.captured and not is_rst and not underflow:
            ep.reasm.data_sent(rel_seq + 1 if is_syn else rel_seq, length)
        ep.reasm.check_eof()
        if do_close:
            self._connection_closed(ep, gen)

    def _set_partial(self, flags: int, is_orig: bool) -> None:
        syn, ack = flags & SYN, flags & ACK
        if is_orig:
            if not self.first_seen & 1:
                self.is_partial = (not syn) or bool(ack)
        elif not self.first_seen & 2 and not self.is_partial:
            self.is_partial = not syn

    @staticmethod
    def _init_endpoint(ep: ZeekEndpoint, is_syn: bool, base: int, end_seq: int) -> None:
        st = ep.state
        if st == ZState.INACTIVE:
            if is_syn:
                ep.init_seqs(base, end_seq)
            else:
                ep.init_seqs((base - 1) & MASK32, base)
        elif is_syn and (
                (st in (ZState.SYN_SENT, ZState.SYN_ACK_SENT) and base != ep.start_seq & MASK32)
                or st in (ZState.ESTABLISHED, ZState.PARTIAL)
                or (st == ZState.RESET and ep.prev_state == ZState.INACTIVE)):
            ep.init_seqs(base, end_seq)

    @staticmethod
    def _relative(ep: ZeekEndpoint, base: int) -> tuple[int, bool]:
        _, wraps = _wraps_near(base, ep.last_seq, ep.seq_wraps)
        if wraps == 0:
            rel = seq_delta(base, ep.start_seq & MASK32)
            return rel, rel < 0
        return (wraps << 32) + base - ep.start_seq, False

    def _history(self, ep: ZeekEndpoint, flags: int, rel_seq: int, length: int) -> None:
        is_syn, is_fin, is_rst = flags & SYN, flags & FIN, flags & RST
        bits = bool(is_syn) + bool(is_fin) + bool(is_rst)
        if bits > 1:
            if is_fin and is_rst:
                self._check_history(ep, HIST_FIN_RST, "I")
            else:
                self._check_history(ep, HIST_MULTI_FLAG, "Q")
        elif bits == 1:
            if is_syn:
                code = "H" if flags & ACK else "S"
                if self._check_history(ep, HIST_SYN, code) and rel_seq != ep.hist_syn:
                    self._add_letter(code, ep.is_orig)
                ep.hist_syn = rel_seq
            if is_fin:
                if self._check_history(ep, HIST_FIN, "F") and rel_seq + length != ep.hist_fin:
                    self._add_letter("F", ep.is_orig)
                ep.hist_fin = rel_seq + length
            if is_rst:
                if self._check_history(ep, HIST_RST, "R") and rel_seq != ep.hist_rst:
                    self._add_letter("R", ep.is_orig)
                ep.hist_rst = rel_seq
        elif length:
            self._check_history(ep, HIST_DATA, "D")
        elif flags & ACK:
            self._check_history(ep, HIST_ACK, "A")

    @staticmethod
    def _ack_bookkeeping(peer: ZeekEndpoint, ack: int, is_ack: bool, is_rst: bool) -> int:
        """The ACK field moves the peer's acknowledged sequence (§8.1); returns it relative."""
        if peer.state == ZState.INACTIVE:
            v = (ack - 1) & MASK32
            peer.start_seq = peer.ack_seq = peer.last_seq = v
            return 1
        d, wraps = _wraps_near(ack, peer.ack_seq, peer.ack_wraps)
        if wraps == 0:
            rel = seq_delta(ack, peer.start_seq & MASK32)
            if rel < 0:
                return 0
        else:
            rel = (wraps << 32) + ack - peer.start_seq
        if not is_rst and not (ack == 0 and d > TOO_LARGE_SEQ_DELTA) and d > 0:
            peer.update_ack(ack)
        return rel

    def _update_last_seq(self, ep: ZeekEndpoint, end_seq: int, is_syn: bool, is_fin: bool,
                         is_rst: bool, length: int) -> None:
        d = seq_delta(end_seq, ep.last_seq)
        if (is_syn or is_rst) and (d > TOO_LARGE_SEQ_DELTA or d < -TOO_LARGE_SEQ_DELTA):
            return
        if is_fin and ep.last_seq == (ep.start_seq + 1) & MASK32:
            ep.update_last(end_seq)
        elif ep.state == ZState.RESET:
            return
        elif d > 0:
            ep.update_last(end_seq)
        elif length > 0:
            self.add_scaled("T", ep.is_orig, ep.rxmit.hit())

    def _state_machine(self, s: Segment, ep: ZeekEndpoint, peer: ZeekEndpoint, is_syn: bool,
                       is_fin: bool, is_rst: bool, is_ack: bool, base: int) -> tuple[bool, bool]:
        """Zeek's endpoint transitions (§6); returns (close requested, generate event)."""
        do_close = gen = False
        st = ep.state
        if st == ZState.INACTIVE:
            if is_syn:
                if ep.is_orig:
                    ep.set_state(ZState.SYN_ACK_SENT if is_ack else ZState.SYN_SENT)
                    if self.timeouts.tcp_attempt:
                        self._timer_guarded(s.zts + self.timeouts.tcp_attempt, "attempt")
                else:
                    if (not is_ack and peer.state == ZState.SYN_ACK_SENT
                            and base == ep.start_seq & MASK32):
                        self.is_partial = False
                        self.flip()  # SYN/SYN-ACK reversal (§3.3)
                        peer.set_state(ZState.ESTABLISHED)
                        self.first_seen |= 1
                    if peer.state == ZState.SYN_SENT:
                        peer.set_state(ZState.ESTABLISHED)
                    ep.set_state(ZState.ESTABLISHED)
            if is_fin:
                ep.set_state(ZState.CLOSED)
                do_close = gen = True
            if is_rst:
                ep.set_state(ZState.RESET)
                if ep.is_orig:
                    reject = peer.state == ZState.ESTABLISHED
                else:
                    reject = peer.state in (ZState.SYN_SENT, ZState.SYN_ACK_SENT)
                do_close = True
                gen = not reject
            if ep.state == ZState.INACTIVE:
                if not ep.is_orig and s.payload == 0 and self.orig.ep.state == ZState.SYN_SENT:
                    pass
                elif is_ack and peer.state == ZState.ESTABLISHED:
                    ep.set_state(ZState.ESTABLISHED)
                    self.is_partial = False
                    self.first_seen |= 1 if ep.is_orig else 2
                else:
                    ep.set_state(ZState.PARTIAL)
        elif st in (ZState.SYN_SENT, ZState.SYN_ACK_SENT):
            if is_fin:
                ep.set_state(ZState.CLOSED)
                do_close = gen = True
            if is_rst:
                ep.set_state(ZState.RESET)
                self.is_active = False
                do_close = True
        elif st in (ZState.ESTABLISHED, ZState.PARTIAL):
            if is_syn and st == ZState.PARTIAL and peer.state == ZState.INACTIVE and not is_ack:
                ep.set_state(ZState.SYN_SENT)
            if is_fin and not is_rst:
                ep.set_state(ZState.CLOSED)
                if peer.state == ZState.RESET and peer.prev_state == ZState.CLOSED:
                    peer.set_state(ZState.CLOSED)
                do_close = gen = True
            if is_rst:
                ep.set_state(ZState.RESET)
                do_close = True
                if peer.state != ZState.RESET or peer.prev_state != ZState.ESTABLISHED:
                    self.is_active = False
        elif st == ZState.CLOSED and is_rst and peer.state != ZState.CLOSED:
            ep.set_state(ZState.RESET)
            if not ep.did_close:
                do_close = True
            self._timer_guarded(s.zts + self.timeouts.tcp_reset, "reset")
        return do_close, gen

    def _connection_closed(self, ep: ZeekEndpoint, gen: bool) -> None:
        """Zeek's ConnectionClosed (§8.5): did_close, and the timers that remove the conn."""
        peer = ep.peer
        if ep.reasm.data_pending():
            self.close_deferred = True
            self.deferred_gen = self.deferred_gen or gen
            return
        self.close_deferred = False
        if ep.did_close:
            return
        ep.did_close = True
        if ep.state == ZState.RESET or peer.did_close or peer.state == ZState.INACTIVE:
            if (ep.prev_state != ZState.INACTIVE or peer.state != ZState.INACTIVE) and (
                    gen or self.deferred_gen):
                self.deferred_gen = False
                self.is_active = False
            self.cancel_timers()
            # A delay of 0 removes the connection before the next packet, as Zeek's
            # DeleteTimer at LastTime() does.
            self.add_timer(self, self.last_zts + self.timeouts.tcp_close, "close")
        elif ep.prev_state != ZState.INACTIVE:
            self._timer_guarded(self.last_zts + TCP_SESSION_TIMER, "expire")
        elif self.timeouts.tcp_partial_close is not None:
            # The first packet heard from this side is its FIN (Zeek arms PartialCloseTimer
            # only when a script handles connection_partial_close: see Timeouts).
            self._timer_guarded(self.last_zts + self.timeouts.tcp_partial_close,
                                "partial_close")

    def try_fast(self, from_orig: bool, ts: int, zts: int, frame: int, flags: int, seq: int,
                 ack: int, payload: int, win: int, ip_len: int, captured: bool) -> bool:
        """Apply an ordinary segment cheaply, or return False for the full path.

        Ordinary (the same rules as track/bulk.py): ACK without SYN/FIN/RST, non-zero window,
        exactly the sender's next byte, acknowledging no more than the peer sent and no less
        than the sender's previous ACK (strictly more for a pure ACK), the sender's 'A'/'D'
        letter already recorded, data fully captured and the sender's data acknowledged
        before, within the inactivity timeout. For such a segment the full path only moves
        counters and sequence marks, which is all this does.
        """
        if flags & 0x07 or not flags & ACK or win == 0:
            return False
        host, peer = (self.orig, self.resp) if from_orig else (self.resp, self.orig)
        if seq != host.high or (self.inactivity and zts - self.last_zts >= self.inactivity):
            return False
        last_ack = host.last_ack
        assert last_ack is not None and peer.high is not None
        d_ack = seq_delta(ack, last_ack)
        ep = host.ep
        mask = 1 if ep.is_orig else 1 << 16
        if payload:
            if d_ack < 0 or not captured or not self.hist_seen & (HIST_DATA * mask) or (
                    ep.no_data_acked()):
                return False
        elif d_ack <= 0 or not self.hist_seen & (HIST_ACK * mask):
            return False
        if seq_delta(ack, peer.high) > 0:
            return False
        i = 0 if from_orig else 1
        self.pkts[i] += 1
        self.ip_bytes[i] += ip_len
        if payload:
            assert host.isn is not None
            new_high = (seq + payload) & MASK32
            ep.update_last(new_high)
            ep.reasm.in_order(payload)
            host.high = new_high
            base = (seq - host.isn) & MASK32
            host.seen.add(base, base + payload)
            self.completeness |= 8
            plw = peer.last_win
            if plw and peer.last_ack is not None:
                scale = peer.wscale if (peer.wscale is not None
                                        and host.wscale is not None) else 0
                if new_high == (peer.last_ack + (plw << scale)) & MASK32:
                    self.analysis.window_full += 1
        if d_ack:
            host.dup_acks = 0
            pep = peer.ep
            pep.update_ack(ack)
            pep.reasm.acked_to((pep.ack_wraps << 32) + pep.ack_seq - pep.start_seq)
            host.last_ack = ack
        host.last_win = win
        if self.saw_syn_ack:
            self.completeness |= 4
        self.last_ts = ts
        self.last_frame = frame
        self.last_zts = zts
        return True

    # --- the RFC 9293 observer, handshake and analysis --------------------------------------

    def _transition(self, s: Segment, host: Host, event: Event) -> None:
        new = next_state(host.rfc, event)
        if new is host.rfc:
            return
        self.transitions.append((s.ts, s.frame, host, event, host.rfc, new, s.flags, s.seq,
                                 s.ack, s.payload))
        if self.on_transition is not None:
            self.on_transition(self, s, host, event, host.rfc, new)
        host.rfc = new

    def _observe(self, s: Segment, host: Host, peer: Host) -> None:
        flags = s.flags
        hs = self.handshake
        if flags & SYN:
            if flags & ACK:
                self.completeness |= 2
                if not self.saw_syn_ack:
                    self.saw_syn_ack = True
                    hs.syn_ack_ns = s.ts
                    hs.server_options = s.options
                    if self.last_syn_ts is not None:
                        hs.syn_ns = self.last_syn_ts
                elif host.isn == s.seq:
                    hs.syn_ack_retransmits += 1
                host.isn = s.seq
                host.wscale = s.options.wscale if s.options else None
                self._transition(s, host, Event.SND_SYN_ACK)
                self._transition(s, peer, Event.RCV_SYN_ACK)
            else:
                self.completeness |= 1
                if not self.saw_syn:
                    self.saw_syn = True
                    self.client = host
                    hs.client_options = s.options
                    hs.syn_ns = s.ts
                elif host.isn == s.seq:
                    hs.syn_retransmits += 1
                if not self.saw_syn_ack:
                    self.last_syn_ts = s.ts
                host.isn = s.seq
                host.wscale = s.options.wscale if s.options else None
                self._transition(s, host, Event.SND_SYN)
                self._transition(s, peer, Event.RCV_SYN)
        if flags & ACK:
            if (peer.rfc == TcpState.SYN_RECEIVED and peer.isn is not None
                    and not flags & SYN and seq_delta(s.ack, peer.isn) >= 1
                    and (peer.high is None or seq_delta(s.ack, peer.high) <= 0)):
                if hs.ack_ns is None and host is self.client:
                    hs.ack_ns = s.ts
                self.completeness |= 4
                self._transition(s, peer, Event.RCV_ACK_OF_SYN)
            elif self.saw_syn_ack and not flags & SYN:
                self.completeness |= 4
            if peer.fin_abs is not None and seq_delta(s.ack, peer.fin_abs) >= 1:
                self._transition(s, peer, Event.RCV_ACK_OF_FIN)
        if s.payload > 0 and not flags & RST:
            self.completeness |= 8
        self._analyse(s, host, peer)
        if flags & FIN:
            self.completeness |= 16
            if host.fin_abs is None:
                self.fin_hosts += 1
            host.fin_abs = (s.seq + s.payload + (1 if flags & SYN else 0)) & MASK32
            crossed = (peer.fin_abs is not None
                       and not (flags & ACK and seq_delta(s.ack, peer.fin_abs) >= 1))
            self._transition(s, host, Event.SND_FIN_CROSSED if crossed else Event.SND_FIN)
            self._transition(s, peer, Event.RCV_FIN)
        if flags & RST:
            self.completeness |= 32
            self.saw_rst = True
            self._transition(s, host, Event.SND_RST)
            self._transition(s, peer, Event.RCV_RST)

    def _analyse(self, s: Segment, host: Host, peer: Host) -> None:
        """Wireshark's tcp.analysis flags, counted (per segment, as Wireshark marks them)."""
        a = self.analysis
        flags = s.flags
        control = flags & (SYN | FIN | RST)
        seg = s.payload + (1 if flags & (SYN | FIN) else 0)
        if s.win == 0 and not control:
            a.zero_windows += 1
        if host.isn is None:
            host.isn = (s.seq - 1) & MASK32  # mid-stream: pretend a SYN just before
        rel = (s.seq - host.isn) & MASK32
        if host.high is not None:
            nxt = (host.high - host.isn) & MASK32
            if seg <= 1 and not control and rel == (nxt - 1) & MASK32:
                a.keep_alives += 1
                seg = 0
            elif (seg and not flags & SYN and peer.window_zero and rel == nxt
                    and s.payload <= 1):
                a.zero_window_probes += 1
            elif seg:
                end = rel + seg
                if end <= nxt:
                    if host.seen.covers(rel, end):
                        a.retransmissions += 1
                        if peer.dup_acks >= 2 and peer.last_ack == s.seq:
                            a.fast_retransmissions += 1
                        elif peer.last_ack is not None and seq_delta(
                                peer.last_ack, s.seq + seg) >= 0:
                            a.spurious_retransmissions += 1
                    else:
                        a.out_of_order += 1
                elif rel > nxt:
                    a.lost_segments += 1
        if seg:
            host.seen.add(rel, rel + seg)
            end_abs = (s.seq + seg) & MASK32
            if host.high is None or seq_delta(end_abs, host.high) > 0:
                host.high = end_abs
        elif host.high is None:
            host.high = s.seq
        if flags & ACK:
            pure = s.payload == 0 and not control
            # Wireshark: a duplicate ACK has no data, the same ACK and the same non-zero window.
            if pure and s.win and host.last_ack == s.ack and host.last_win == s.win and (
                    peer.high is not None and seq_delta(peer.high, s.ack) > 0):
                a.dup_acks += 1
                host.dup_acks += 1
            elif pure and host.last_ack == s.ack and host.last_win is not None and (
                    host.last_win != s.win):
                a.window_updates += 1
            if host.last_ack != s.ack:
                host.dup_acks = 0
            host.last_ack = s.ack
        if (s.payload and peer.last_ack is not None and peer.last_win is not None
                and not control):
            scale = peer.wscale if (peer.wscale is not None and host.wscale is not None) else 0
            window_end = (peer.last_ack + (peer.last_win << scale)) & MASK32
            if (s.seq + s.payload) & MASK32 == window_end and peer.last_win:
                a.window_full += 1
        host.last_win = s.win
        host.window_zero = s.win == 0 and not flags & RST

    def outcome(self) -> Outcome:
        hs = self.handshake
        if not self.saw_syn and not self.saw_syn_ack:
            return Outcome.MID_STREAM
        if self.completeness & 4 or hs.ack_ns is not None:
            return Outcome.ESTABLISHED
        if self.saw_syn_ack:
            return Outcome.RESET if self.saw_rst else Outcome.HALF_OPEN
        server = self.resp if self.client is self.orig else self.orig
        if server.ep.state == ZState.RESET or (self.saw_rst and server.ep.rst_cnt):
            return Outcome.REFUSED
        return Outcome.UNANSWERED


def _wraps_near(value: int, mark: int, wraps: int) -> tuple[int, int]:
    """How often the 32-bit sequence space had wrapped at ``value``, which lies near ``mark``
    (wrapped ``wraps`` times): one less just before a wrap, one more just after. Also returns
    value - mark in sequence space."""
    d = seq_delta(value, mark)
    if d < 0:
        if wraps and value > mark:
            wraps -= 1
    elif d > 0 and value < mark:
        wraps += 1
    return d, wraps


def _no_timer(conn: TcpConnection, deadline: int, name: str) -> None:
    """A released connection arms no timer."""


def fast_lane_ready(c: TcpConnection) -> bool:
    """May ordinary segments of c take the fast lane? (established, consistent marks)"""
    from portlens.track.bulk import eligible_for_bulk

    return eligible_for_bulk(c)
