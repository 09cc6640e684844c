"""Zeek's own bookkeeping of a TCP endpoint, so conn.log fields come out as Zeek prints them.

Zeek does not follow RFC 9293's states: each endpoint is INACTIVE, SYN_SENT, SYN_ACK_SENT,
PARTIAL, ESTABLISHED, CLOSED or RESET, and conn_state is decided from the pair. Sizes come from
sequence numbers, gaps (missed_bytes) from a model of Zeek's reassembler. docs/zeek-rules.md
gives every rule with the Zeek source it comes from (section numbers below refer to it); the
RFC 9293 observer lives beside this in track/tcp.py.
"""

from __future__ import annotations

import re
from enum import IntEnum

from portlens.track.ranges import Blocks

TOO_LARGE_SEQ_DELTA = 1048576
"""Zeek ignores SYN/RST sequence numbers that jump further than this (§8.1)."""
MASK32 = 0xFFFFFFFF
REASSEMBLY_SKIP = 16384
"""Unacknowledged bytes after which Zeek's reassembler gives up on a stream (§8.4)."""


class ZState(IntEnum):
    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


HANDSHAKE_STATES = (ZState.INACTIVE, ZState.SYN_SENT, ZState.SYN_ACK_SENT)

# One-time history letters (§5.1): bit masks; the responder's are shifted by 16.
HIST_SYN = 0x1
HIST_FIN = 0x2
HIST_RST = 0x4
HIST_FIN_RST = 0x8
HIST_DATA = 0x10
HIST_ACK = 0x20
HIST_MULTI_FLAG = 0x40


def seq_delta(a: int, b: int) -> int:
    """a - b in 32-bit sequence space, as a signed number."""
    d = (a - b) & MASK32
    return d - (1 << 32) if d >= 1 << 31 else d


class Scaled:
    """Zeek's logarithmic history entries: the letter is due at the 1st, 10th, 100th... event."""

    __slots__ = ("count", "threshold")

    def __init__(self) -> None:
        self.count = 0
        self.threshold = 1

    def hit(self) -> bool:
        self.count += 1
        if self.count == self.threshold:
            self.threshold *= 10
            return True
        return False


class Reassembler:
    """What Zeek's TCP reassembler decides for conn.log: which bytes were delivered, and the
    gaps (bytes acknowledged by the peer but never seen or not captured) (§8.4)."""

    __slots__ = ("blocks", "did_eof", "ep", "next", "skip", "trim")

    def __init__(self, ep: ZeekEndpoint) -> None:
        self.ep = ep
        self.blocks = Blocks()
        self.next = 1  # first byte not yet delivered in order
        self.trim = 1
        self.skip = False
        self.did_eof = False

    def _deliver(self) -> None:
        # A block starting exactly at the delivered position moves it to the block's end; one
        # starting below it is never delivered (Zeek's reassembler walks its list so).
        blocks = self.blocks
        end = blocks.end_of(self.next)
        while end is not None:
            self.next = end
            end = blocks.end_of(end)
        ep = self.ep
        if ep.no_data_acked() and ep.size() > REASSEMBLY_SKIP:
            self.trim_to(self.next)

    def data_sent(self, seq: int, length: int) -> None:
        if self.skip:
            return
        acked = ep_rel(self.ep, self.ep.ack_seq, self.ep.ack_wraps)
        upper = seq + length
        if seq < acked:
            if upper <= acked:
                return
            seq = acked
        if length == 0 or upper <= self.trim:
            return
        seq = max(seq, self.trim)
        self.blocks.insert(seq, upper)
        self._deliver()
        if self.ep.no_data_acked() and self.blocks and (
                self.blocks.ends[-1] - self.next) > REASSEMBLY_SKIP:
            self.blocks.clear()
            self.skip = True

    def in_order(self, length: int) -> None:
        """What data_sent does with ``length`` bytes at the delivered position when every block
        lies below it (the fast lanes' in-order data): one block, delivered at once. The block
        is kept, as data_sent keeps it, until an ACK trims it: a later segment overlapping
        these bytes then adds only its new ones, which are delivered (issue 11)."""
        upper = self.next + length
        self.blocks.append_delivered(self.next, upper)
        self.next = upper

    def all_delivered(self) -> bool:
        """Does every block lie below the delivered position (nothing waits behind a hole)?"""
        return not self.blocks or self.blocks.ends[-1] <= self.next

    def acked_to(self, seq: int) -> None:
        """What ack_received does with an ACK of delivered data only (the fast lanes)."""
        if seq > self.trim:
            self.blocks.drop_ending_by(seq)
            self.trim = seq

    def trim_to(self, seq: int) -> None:
        if seq > self.next:
            self._undelivered(seq)
        self.blocks.drop_ending_by(seq)
        if self.blocks and self.blocks.starts[0] == self.next:
            self._deliver()
        self.trim = seq

    def _undelivered(self, up_to: int) -> None:
        if up_to <= 2 and self.ep.conn_partial():
            return
        if not self.skip:
            b0 = self.blocks.first_from(self.next)
            while b0 is not None and b0 < up_to:
                self.ep.gap(b0 - self.next)
                self.next = b0
                self._deliver()
                b0 = self.blocks.first_from(self.next)
            if up_to > self.next:
                self.ep.gap(up_to - self.next)
        self.next = max(self.next, up_to)

    def ack_received(self, seq: int) -> None:
        ep = self.ep
        if ep.fin_cnt > 0 and seq >= ep.fin_seq:
            seq = ep.fin_seq - 1  # the FIN's sequence number is not data
        if seq <= self.trim:
            return
        self.trim_to(seq)
        self.check_eof()

    def data_pending(self) -> bool:
        if self.skip:
            return False
        ep = self.ep
        delivered = ep.start_seq + self.next
        last = ep.last_seq + (ep.seq_wraps << 32)
        if last < delivered:
            return False
        if delivered not in (last - 1, last):
            return True
        return ep.state != ZState.RESET and bool(ep.peer.reasm.blocks)

    def check_eof(self) -> None:
        ep = self.ep
        if (not self.did_eof and (ep.fin_cnt > 0 or ep.state in (ZState.CLOSED, ZState.RESET))
                and not self.data_pending()):
            self.did_eof = True
            ep.owner.endpoint_eof(ep)


def ep_rel(ep: ZeekEndpoint, seq: int, wraps: int) -> int:
    return (wraps << 32) + seq - ep.start_seq


class ZeekEndpoint:
    """One side of a TCP connection as Zeek's TCP_Endpoint keeps it."""

    __slots__ = (
        "ack_seq",
        "ack_wraps",
        "corrupt",
        "did_close",
        "fin_cnt",
        "fin_seq",
        "gaps",
        "hist_fin",
        "hist_rst",
        "hist_syn",
        "is_orig",
        "last_seq",
        "owner",
        "peer",
        "prev_state",
        "reasm",
        "rst_cnt",
        "rxmit",
        "seq_wraps",
        "start_seq",
        "state",
        "zero_window",
    )

    def __init__(self, owner: ZeekOwner, is_orig: bool) -> None:
        self.owner = owner
        self.is_orig = is_orig
        self.peer: ZeekEndpoint = self
        self.state = ZState.INACTIVE
        self.prev_state = ZState.INACTIVE
        self.start_seq = 0
        self.last_seq = 0
        self.ack_seq = 0
        self.seq_wraps = 0
        self.ack_wraps = 0
        self.fin_cnt = 0
        self.rst_cnt = 0
        self.fin_seq = 0
        self.did_close = False
        self.hist_syn = 0
        self.hist_fin = 0
        self.hist_rst = 0
        self.reasm = Reassembler(self)
        self.rxmit = Scaled()
        self.zero_window = Scaled()
        self.gaps = Scaled()
        self.corrupt = Scaled()

    def set_state(self, state: ZState) -> None:
        if state != self.state:
            if (state not in HANDSHAKE_STATES and self.state in HANDSHAKE_STATES
                    and self.peer.state in HANDSHAKE_STATES):
                self.owner.handshake_left()
            self.prev_state, self.state = self.state, state

    def init_seqs(self, start: int, last: int) -> None:
        self.start_seq = start
        self.ack_seq = start
        self.last_seq = last

    def update_last(self, seq: int) -> None:
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack(self, seq: int) -> None:
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq
        return ack in (self.start_seq, self.start_seq + 1)

    def size(self) -> int:
        """Zeek's orig_bytes/resp_bytes: payload bytes by sequence numbers (§8.1)."""
        if (self.prev_state == ZState.SYN_SENT and self.state == ZState.RESET
                and self.peer.state == ZState.INACTIVE and not self.no_data_acked()):
            return 0
        last = (self.seq_wraps << 32) + self.last_seq
        ack = (self.ack_wraps << 32) + self.ack_seq
        size = ((last if last > ack else ack) - self.start_seq) & 0xFFFFFFFFFFFFFFFF
        if size != 0:
            size -= 1  # the SYN's sequence number, real or assumed
        if self.fin_cnt > 0 and size != 0:
            size -= 1  # the FIN's
        return size

    def clean(self) -> bool:
        return self.state == ZState.ESTABLISHED or (
            self.state == ZState.CLOSED and self.prev_state == ZState.ESTABLISHED)

    def gap(self, n: int) -> None:
        self.owner.content_gap(self, n)

    def conn_partial(self) -> bool:
        return self.owner.is_partial


class ZeekOwner:
    """What an endpoint needs from its connection (implemented by track.tcp.TcpConnection)."""

    is_partial: bool

    def handshake_left(self) -> None:
        raise NotImplementedError

    def content_gap(self, ep: ZeekEndpoint, n: int) -> None:
        raise NotImplementedError

    def endpoint_eof(self, ep: ZeekEndpoint) -> None:
        raise NotImplementedError


CONN_STATE_DOCS = {
    "S0": "connection attempt seen, no reply",
    "S1": "established, not terminated",
    "SF": "normal establishment and termination",
    "REJ": "connection attempt rejected",
    "S2": "established, close attempt by originator seen (no reply from responder)",
    "S3": "established, close attempt by responder seen (no reply from originator)",
    "RSTO": "established, originator aborted (sent a RST)",
    "RSTR": "responder sent a RST",
    "RSTOS0": "originator sent a SYN followed by a RST, never saw a SYN-ACK",
    "RSTRH": "responder sent a SYN-ACK followed by a RST, never saw a SYN",
    "SH": "originator sent a SYN followed by a FIN, never saw a SYN-ACK",
    "SHR": "responder sent a SYN-ACK followed by a FIN, never saw a SYN",
    "OTH": "no SYN seen, just midstream traffic",
}
"""Zeek's own wording of each conn_state (base/protocols/conn/main.zeek)."""

_RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R.*")


def tcp_conn_state(orig: ZeekEndpoint, resp: ZeekEndpoint, history: str) -> str:
    """conn_state in the order of Zeek's decision procedure (§7.1)."""
    os, rs = orig.state, resp.state
    o_inactive = os in (ZState.INACTIVE, ZState.PARTIAL)
    r_inactive = rs in (ZState.INACTIVE, ZState.PARTIAL)
    if rs == ZState.RESET:
        if os in (ZState.SYN_SENT, ZState.SYN_ACK_SENT) or (
                os == ZState.RESET and orig.size() == 0 and resp.size() == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os == ZState.RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0_HISTORY.fullmatch(history) else "OTH"
        return "RSTO"
    if rs == ZState.CLOSED and os == ZState.CLOSED:
        return "SF"
    if os == ZState.CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == ZState.CLOSED:
        return "SHR" if o_inactive else "S3"
    if os == ZState.SYN_SENT and rs == ZState.INACTIVE:
        return "S0"
    if os == ZState.ESTABLISHED and rs == ZState.ESTABLISHED:
        return "S1"
    return "OTH"


def udp_conn_state(orig_active: bool, resp_active: bool) -> str:
    if orig_active:
        return "SF" if resp_active else "S0"
    return "SHR" if resp_active else "OTH"
