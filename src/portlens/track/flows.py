"""UDP and ICMP flows: connectionless, so a flow is a tuple seen within an inactivity timeout.

Zeek's rules (docs/zeek-rules.md §9, §10): the first packet's sender is the originator unless
the UDP flip rule says otherwise; bytes are the UDP length field - 8 (ICMP: IP payload - 8);
history is D/d (UDP) and C/c for bad checksums; conn_state from which sides were active.
"""

from __future__ import annotations

from portlens.track.entry import TableEntry

SECOND = 10**9


class Flow(TableEntry):
    """A UDP or ICMP flow between two sockets."""

    __slots__ = ("active", "bytes", "csum", "dns", "dns_first", "icmp_code", "ip_proto", "ntp",
                 "ntp_flipped", "orig", "proto", "resp")

    def __init__(self, proto: str, ip_proto: int, src: bytes, sport: int, dst: bytes, dport: int,
                 ts: int, zts: int, frame: int, inactivity: int) -> None:
        super().__init__(ts, zts, frame, inactivity)
        self.proto = proto
        self.ip_proto = ip_proto
        self.orig = (src, sport)
        self.resp = (dst, dport)
        self.bytes = [0, 0]
        self.active = [False, False]
        self.csum = [0, 0]
        self.dns = False
        """Zeek's DNS analyzer is attached (the responder port is a DNS port)."""
        self.dns_first = True
        """No DNS message was delivered yet (DNS_Interpreter's first_message)."""
        self.ntp = False
        """Zeek's NTP analyzer is attached (the responder port is 123)."""
        self.ntp_flipped = [False, False]
        """Per direction of delivery (the NTP analyzer's two flows): it flipped already."""
        self.icmp_code = -1
        """ICMP: the code of the originator's first message (its type is orig's port)."""

    def flip(self) -> None:
        """Connection::FlipRoles: the addresses swap and ConnSize swaps its packet and IP-byte
        counts, but the UDP session adapter has no FlipRoles: its byte counts, the sides'
        activity (conn_state) and checksum counters stay with the role, not the host
        (docs/zeek-rules.md §3.5)."""
        self.orig, self.resp = self.resp, self.orig
        for pair in (self.pkts, self.ip_bytes):
            pair.reverse()
        self.history += "^"
        self.flips += 1

    def packet(self, from_orig: bool, ts: int, zts: int, frame: int, payload: int, ip_len: int,
               csum_bad: bool, *, check_csum: bool, counted: bool = True, dns_qr: int = -1,
               ntp_mode: int = -1) -> None:
        """One packet, in Zeek's order (UDPAnalyzer::DeliverPacket): checksum, history and the
        adapter's byte count for the side that sent it, then the protocol analyzers (which
        may flip the roles), then ConnSize, which counts the packet for the side it was
        handed as, the sender's role *before* any flip."""
        i = 0 if from_orig else 1
        if check_csum and csum_bad:
            if self.proto == "udp":
                self.csum[i] += 1
                if _is_power_of_ten(self.csum[i]):
                    self.history += "C" if from_orig else "c"
            return
        self.last_ts = ts
        self.last_zts = zts
        self.last_frame = frame
        self.active[i] = True
        if self.proto == "udp":
            mask = 1 if from_orig else 2
            if not self.hist_seen & mask:
                self.hist_seen |= mask
                self.history += "D" if from_orig else "d"
        self.bytes[i] += max(payload, 0)
        if self.dns and dns_qr >= 0:
            # DNS_Interpreter::ParseMessage: the first message, a response sent by the
            # originator, flips, unless the responder address is multicast.
            if self.dns_first and dns_qr == 1 and from_orig and not _multicast(self.resp[0]):
                self.flip()
            self.dns_first = False
        # proc_ntp_message (ntp-analyzer.pac): a server message from the originator or a
        # client message from the responder flips, once per direction of delivery.
        if (self.ntp and ntp_mode in (3, 4) and not self.ntp_flipped[i]
                and (ntp_mode == 4) == from_orig):
            self.flip()
            self.ntp_flipped[i] = True
        if counted:
            self.pkts[i] += 1
            self.ip_bytes[i] += ip_len

    def timer(self, now: int, name: str) -> str | None:
        if name == "inactivity":
            if self.inactivity and self.last_zts + self.inactivity <= now:
                return "idle"
        elif name == "dns" and now - self.last_zts >= 9 * SECOND:
            return "idle"
        return None

    def next_deadline(self, name: str, now: int) -> int:
        return self.last_zts + self.inactivity if name == "inactivity" else now + 10 * SECOND


def _multicast(addr: bytes) -> bool:
    """IPAddr::IsMulticast of a 16-byte address: 224.0.0.0/4, or ff00::/8."""
    if addr[:12] == V4_MAPPED:
        return addr[12] >> 4 == 0xE
    return addr[0] == 0xFF


V4_MAPPED = bytes(10) + b"\xff\xff"


def _is_power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
