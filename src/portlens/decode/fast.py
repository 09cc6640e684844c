"""The fast decoder: FrameBatch -> PacketBatch on whole batches with numpy.

Every frame carries a cursor (``pos``) and the kind of header found there (``kind``). Each round
of the main loop groups the rows by kind and lets that kind's handler read its fields for the
whole group with one gather per field, then move the cursors past the header and name the next
kind. Rows leave the loop when they reach a transport header, a protocol portlens does not
descend into, or a malformed point. A typical Ethernet/IPv4/TCP batch takes four rounds; the
Python cost is per round and per kind, not per packet.

The rules are in docs/decoding.md; decode/reference.py implements them packet by packet and
tests/test_fast_vs_reference.py holds the two together, column by column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from portlens.decode.app import DNS_HEADER, DNS_PORTS, NTP_HEADER, NTP_PORT, ntp_mode
from portlens.decode.fields import ByteViews, fold16, ones_sum, w16, w32, word_sum
from portlens.decode.fragments import FragmentRecord
from portlens.decode.malformed import Malformed
from portlens.decode.packets import (
    CSUM_BAD,
    CSUM_GOOD,
    CSUM_UNVERIFIED,
    OPT_KINDS_MAX,
    SACK_BLOCKS_MAX,
    PacketBatch,
)
from portlens.decode.tunnels import (
    MAX_TUNNEL_DEPTH,
    TUNNEL_4IN6,
    TUNNEL_6IN4,
    TUNNEL_6IN6,
    TUNNEL_GENEVE,
    TUNNEL_GRE,
    TUNNEL_GTPU,
    TUNNEL_IPIP,
    TUNNEL_TEREDO,
    TUNNEL_VXLAN,
    UDP_TUNNEL_PORTS,
)
from portlens.sources import linktypes as lt
from portlens.sources.frames import FrameBatch

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Header kinds a cursor can point at.
DONE = 0
LINK = 1
ETH = 2
"""An Ethernet header inside a tunnel (handled on entry, never a cursor's kind)."""
ETHERTYPE = 3
MPLS = 4
MPLS_NIBBLE = 5
PPP = 6
PPP_PROTO = 7
NIBBLE = 8
IPV4 = 9
IPV6 = 10
IPV6_EXT = 11
GRE = 12
TCP = 13
UDP = 14
ICMP = 15
ICMP6 = 16
PPPOE = 17
N_KINDS = 18

MAX_ROUNDS = 256
"""Every round moves each live row past one header, and layer counts are bounded (tunnels,
IPv6 extension headers; VLAN tags and MPLS labels are walked inside one round): a guard only."""
MAX_IPV6_EXT = 8
COUNT_MAX = 0xFF
"""vlan_count / mpls_count saturate here (uint8)."""
TEREDO_PORT = 3544
SAVED_LINK_COLUMNS = ("ethertype", "vlan", "vlan_count", "mpls_count", "ppp_proto")
"""What an Ethernet or PPP header inside a tunnel writes: restored if no IP header follows."""
SAVED_CARRIER_COLUMNS = ("car_src", "car_dst", "car_proto", "car_sport", "car_dport",
                         "car_ip_len")
"""A tunnel inside a tunnel writes its carrier here: restored if no IP header follows."""

# Ethertype -> the kind of header that follows.
_ET_NEXT = np.full(0x10000, DONE, dtype=np.uint8)
_ET_NEXT[[0x0800, 0x86DD, 0x8847, 0x8848, 0x8864]] = [IPV4, IPV6, MPLS, MPLS, PPPOE]
_IS_VLAN = np.zeros(0x10000, dtype=bool)
_IS_VLAN[[0x8100, 0x88A8, 0x9100, 0x9200]] = True
NULL_IPV6_FAMILIES = (10, 24, 28, 30)
# IP protocol -> the kind of the header that follows the IP header.
_IP_NEXT = np.full(256, DONE, dtype=np.uint8)
_IP_NEXT[[6, 17, 1, 58, 47]] = [TCP, UDP, ICMP, ICMP6, GRE]
_IS_V6_EXT = np.zeros(256, dtype=bool)
_IS_V6_EXT[[0, 43, 60, 51, 44]] = True
_ICMP4_ERROR = np.zeros(256, dtype=bool)
_ICMP4_ERROR[[3, 4, 5, 11, 12]] = True
_ICMP6_ERROR = np.zeros(256, dtype=bool)
_ICMP6_ERROR[[1, 2, 3, 4]] = True
# UDP destination port -> tunnel (Teredo is also recognised by its source port).
_UDP_TUNNEL = np.zeros(0x10000, dtype=np.uint8)
for _port, _code in UDP_TUNNEL_PORTS.items():
    _UDP_TUNNEL[_port] = _code

_SIMPLE_LINKS: dict[int, tuple[int, int, int]] = {
    # linktype: (header bytes, offset of the ethertype inside it, next kind)
    lt.ETHERNET: (14, 12, ETHERTYPE),
    lt.LINUX_SLL: (16, 14, ETHERTYPE),
    lt.LINUX_SLL2: (20, 0, ETHERTYPE),
}
FDDI_HEADER = 13
"""Frame control, destination and source MAC; 802.2 LLC follows (reference.py ``llc``)."""
LLC_SNAP_HEADER = 8
_RAW_LINKS = {lt.RAW_12: NIBBLE, lt.RAW_14: NIBBLE, lt.RAW: NIBBLE, lt.IPV4: IPV4, lt.IPV6: IPV6}


class _Decoding:
    """The state of one batch being decoded: cursors, per-row scratch, and the output."""

    def __init__(self, frames: FrameBatch) -> None:
        n = len(frames)
        self.n = n
        self.v = ByteViews(frames.data)
        out = PacketBatch.allocate(n)
        out.frame[:] = frames.frame
        out.ts_ns[:] = frames.ts_ns
        out.wirelen[:] = frames.wirelen
        out.caplen[:] = frames.caplen
        out.linktype[:] = frames.linktype
        out.interface[:] = frames.interface
        self.out = out
        self.pos = frames.offset.astype(np.int64, copy=True)
        self.end = self.pos + frames.caplen.astype(np.int64)
        # Lengths are judged against the wire length; a record claiming fewer bytes on the wire
        # than it captured is taken at its captured length (as tshark does).
        self.wend = self.pos + np.maximum(frames.caplen, frames.wirelen).astype(np.int64)
        self.cut = frames.caplen < frames.wirelen
        out.truncated[:] = self.cut
        self.kind = np.full(n, LINK, dtype=np.uint8)
        self.et = np.zeros(n, dtype=np.int64)  # pending ethertype / IPv6 next header
        self.l3 = np.zeros(n, dtype=np.int64)  # start of the current IP header
        self.ipend = np.zeros(n, dtype=np.int64)  # end of the current IP datagram
        self.ext_count = np.zeros(n, dtype=np.int64)
        self.psum = np.zeros(n, dtype=np.int64)  # pseudo-header address sum of the IP layer
        self.tunnel_pending = np.zeros(n, dtype=bool)
        self.saved: dict[str, npt.NDArray[Any]] = {}
        """Link columns a tentative tunnel's inside may overwrite before an IP header is found
        (allocated on the first tunnel entry)."""
        self.pending_csum: list[tuple[I64, I64, I64, npt.NDArray[np.uint64],
                                      npt.NDArray[np.uint8]]] = []
        # Fragment facts of the innermost IP layer.
        self.is_frag = np.zeros(n, dtype=bool)
        self.f_off = np.zeros(n, dtype=np.int64)
        self.f_more = np.zeros(n, dtype=bool)
        self.f_unfrag = np.zeros(n, dtype=np.int64)
        self.f_proto = np.zeros(n, dtype=np.int64)

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        rounds = 0
        while True:
            active = np.flatnonzero(self.kind != DONE)
            if active.size == 0:
                return
            rounds += 1
            if rounds > MAX_ROUNDS:  # cannot happen with the bounded layer counts
                self.stop(active, Malformed.TUNNEL_TOO_DEEP)
                return
            kinds = self.kind[active]
            present = np.flatnonzero(np.bincount(kinds, minlength=N_KINDS))
            if present.size == 1:
                HANDLERS[int(present[0])](self, active)
                continue
            for k in present:
                HANDLERS[int(k)](self, active[kinds == k])

    def stop(self, rows: I64, reason: Malformed | None = None) -> None:
        """End decoding of these rows, recording why unless it is a plain end."""
        self.kind[rows] = DONE
        if reason is not None and rows.size:
            self.out.malformed[rows] = reason

    def sel(self, rows: I64) -> I64 | slice:
        """Index for writing these rows: a slice when they are all rows (sorted, no repeats)."""
        return slice(None) if rows.size == self.n else rows

    def need(self, rows: I64, nbytes: int | I64, short: Malformed, at: I64 | None = None) -> I64:
        """The rows whose next ``nbytes`` (from ``at``, default the cursor) were captured.

        The others stop: silently when snaplen cut the frame, as malformed when not.
        """
        p = self.pos[rows] if at is None else at
        ok = p + nbytes <= self.end[rows]
        if ok.all():
            return rows
        bad = rows[~ok]
        self.kind[bad] = DONE
        self.out.malformed[bad[~self.cut[bad]]] = short
        return rows[ok]

    def need_within(self, rows: I64, nbytes: int | I64, limit: I64, short: Malformed,
                    at: I64 | None = None) -> Mask:
        """Which rows' next ``nbytes`` end within ``limit`` (the enclosing IP datagram or UDP
        payload) and were captured. The others stop: past ``limit`` as malformed whatever
        snaplen kept; past the captured bytes as ``need`` does."""
        p = self.pos[rows] if at is None else at
        stop = p + nbytes
        inside = stop <= limit
        ok: Mask = inside & (stop <= self.end[rows])
        if ok.all():
            return ok
        bad = ~ok
        r = rows[bad]
        self.kind[r] = DONE
        self.out.malformed[r[~inside[bad] | ~self.cut[r]]] = short
        return ok

    # --- link layer -------------------------------------------------------------------------

    def link(self, rows: I64) -> None:
        linktypes = self.out.linktype[rows]
        for ltype in np.unique(linktypes):
            sub = rows if linktypes[0] == linktypes[-1] and (linktypes == ltype).all() \
                else rows[linktypes == ltype]
            t = int(ltype)
            if t in _SIMPLE_LINKS:
                hlen, et_off, nxt = _SIMPLE_LINKS[t]
                sub = self.need(sub, hlen, Malformed.LINK_HEADER_SHORT)
                self.et[sub] = self.v.be16[self.pos[sub] + et_off]
                self.pos[sub] += hlen
                self.kind[sub] = nxt
            elif t in _RAW_LINKS:
                self.kind[sub] = _RAW_LINKS[t]
            elif t in (lt.NULL, lt.LOOP):
                sub = self.need(sub, 4, Malformed.LINK_HEADER_SHORT)
                p = self.pos[sub]
                if t == lt.LOOP:
                    fam = self.v.be32[p].astype(np.int64)
                else:
                    fam = self.v.le32[p].astype(np.int64)
                    fam = np.where(fam > 0xFFFF, self.v.be32[p].astype(np.int64), fam)
                self.pos[sub] += 4
                is4 = fam == 2
                is6 = np.isin(fam, NULL_IPV6_FAMILIES)
                self.kind[sub] = np.where(is4, IPV4, np.where(is6, IPV6, DONE))
            elif t in (lt.PPP, lt.PPP_SERIAL):
                self.kind[sub] = PPP
            elif t == lt.FDDI:
                self.fddi(sub)
            else:
                self.kind[sub] = DONE  # unknown link type: counted by the caller, not malformed

    def fddi(self, rows: I64) -> None:
        """FDDI then 802.2 LLC: only SNAP (AA AA 03, OUI, ethertype) goes on to an ethertype."""
        rows = self.need(rows, FDDI_HEADER + 3, Malformed.LINK_HEADER_SHORT)
        p = self.pos[rows] + FDDI_HEADER
        u8 = self.v.u8
        snap = (u8[p] == 0xAA) & (u8[p + 1] == 0xAA) & (u8[p + 2] == 0x03)
        self.kind[rows[~snap]] = DONE
        rows = self.need(rows[snap], FDDI_HEADER + LLC_SNAP_HEADER, Malformed.LINK_HEADER_SHORT)
        p = self.pos[rows] + FDDI_HEADER
        self.et[rows] = self.v.be16[p + 6]
        self.pos[rows] = p + LLC_SNAP_HEADER
        self.kind[rows] = ETHERTYPE

    def ethertype(self, rows: I64) -> None:
        out, v = self.out, self.v
        et = self.et[rows]
        out.ethertype[rows] = et
        vlan = _IS_VLAN[et]
        if vlan.any():
            # Any number of tags, walked here so that a stack of them costs no extra rounds.
            tagged = rows[vlan]
            while tagged.size:
                tagged = self.need(tagged, 4, Malformed.VLAN_TAG_SHORT)
                p = self.pos[tagged]
                first = out.vlan[tagged] < 0
                out.vlan[tagged[first]] = v.be16[p[first]] & 0x0FFF
                out.vlan_count[tagged] = np.minimum(out.vlan_count[tagged], COUNT_MAX - 1) + 1
                nxt = v.be16[p + 2]
                self.et[tagged] = nxt
                out.ethertype[tagged] = nxt
                self.pos[tagged] = p + 4
                tagged = tagged[_IS_VLAN[nxt]]
            rows = rows[self.kind[rows] == ETHERTYPE]  # not the rows a short tag stopped
            et = self.et[rows]
        self.kind[rows] = _ET_NEXT[et]

    def mpls(self, rows: I64) -> None:
        """The label stack, to the bottom-of-stack bit (walked here, one label per step)."""
        out, v = self.out, self.v
        while rows.size:
            rows = self.need(rows, 4, Malformed.MPLS_LABEL_SHORT)
            p = self.pos[rows]
            bottom = (v.u8[p + 2] & 0x01) != 0
            out.mpls_count[rows] = np.minimum(out.mpls_count[rows], COUNT_MAX - 1) + 1
            self.pos[rows] = p + 4
            self.kind[rows[bottom]] = MPLS_NIBBLE
            rows = rows[~bottom]

    def pppoe(self, rows: I64) -> None:
        rows = self.need(rows, 6, Malformed.PPPOE_HEADER_SHORT)
        self.pos[rows] += 6
        self.kind[rows] = PPP_PROTO

    def ppp(self, rows: I64) -> None:
        rows = self.need(rows, 2, Malformed.PPP_HEADER_SHORT)
        hdlc = self.v.be16[self.pos[rows]] == 0xFF03
        self.pos[rows[hdlc]] += 2
        self.kind[rows] = PPP_PROTO

    def ppp_proto(self, rows: I64) -> None:
        rows = self.need(rows, 2, Malformed.PPP_HEADER_SHORT)
        proto = self.v.be16[self.pos[rows]]
        self.out.ppp_proto[rows] = proto
        self.pos[rows] += 2
        self.kind[rows] = np.where(proto == 0x0021, IPV4, np.where(proto == 0x0057, IPV6, DONE))

    def raw_nibble(self, rows: I64) -> None:
        """Raw IP link types: the version nibble decides; neither 4 nor 6 is not IP."""
        rows = self.need(rows, 1, Malformed.LINK_HEADER_SHORT)
        version = self.v.u8[self.pos[rows]] >> 4
        self.kind[rows] = np.where(version == 4, IPV4, np.where(version == 6, IPV6, DONE))

    def mpls_nibble(self, rows: I64) -> None:
        """After the bottom label: IPv4 or IPv6 by the version nibble, else unknown."""
        rows = self.need(rows, 1, Malformed.MPLS_PAYLOAD_UNKNOWN)
        version = self.v.u8[self.pos[rows]] >> 4
        nxt = np.where(version == 4, IPV4, np.where(version == 6, IPV6, DONE)).astype(np.uint8)
        self.kind[rows] = nxt
        self.out.malformed[rows[nxt == DONE]] = Malformed.MPLS_PAYLOAD_UNKNOWN

    # --- IP ---------------------------------------------------------------------------------

    def ipv4(self, rows: I64) -> None:
        out, v = self.out, self.v
        rows = self.need(rows, 20, Malformed.IPV4_HEADER_SHORT)
        p = self.pos[rows]
        h = v.window(p, 20)
        b0 = h[:, 0]
        bad = ((b0 >> 4) != 4) | ((b0 & 0x0F) < 5)
        if bad.any():  # no IP columns at all
            self.stop(rows[bad & ((b0 >> 4) != 4)], Malformed.IPV4_VERSION_MISMATCH)
            self.stop(rows[bad & ((b0 >> 4) == 4)], Malformed.IPV4_IHL_INVALID)
            rows, p, h = rows[~bad], p[~bad], h[~bad]
        self.commit_tunnel(rows)
        ihl = (h[:, 0] & 0x0F).astype(np.int64) * 4
        total = w16(h, 2).astype(np.int64)
        room = self.wend[rows] - p
        zero = total == 0
        total = np.where(zero, room, total)  # TSO: the capturing host had not segmented yet
        w = self.sel(rows)  # a plain slice when every row is here: writes become copies
        out.ip_len_zero[w] = zero
        src, dst = w32(h, 12), w32(h, 16)
        out.ip_version[w] = 4
        out.src[w] = _v4_mapped(src)
        out.dst[w] = _v4_mapped(dst)
        proto = h[:, 9]
        out.proto[w] = proto
        out.ttl[w] = h[:, 8]
        out.ip_id[w] = w16(h, 4)
        out.ip_hlen[w] = ihl
        out.ip_len[w] = total
        self.l3[w] = p
        self.ipend[w] = p + total
        s32, d32 = src.astype(np.int64), dst.astype(np.int64)
        self.psum[w] = (s32 >> 16) + (s32 & 0xFFFF) + (d32 >> 16) + (d32 & 0xFFFF)
        # Header checksum (of the fixed header even when the total length is invalid, as
        # tshark shows it), when the whole header, options too, was captured.
        total_sum = word_sum(h[:, :20])
        whole = p + ihl <= self.end[rows]
        opts = np.flatnonzero((ihl > 20) & whole)  # options: rare, at most 40 more bytes
        for off in range(20, int(ihl[opts].max(initial=20)), 2):
            o = opts[ihl[opts] > off]
            total_sum[o] += v.be16[p[o] + off]
        status = np.where(fold16(total_sum) == 0xFFFF, CSUM_GOOD, CSUM_BAD)
        status[~whole] = CSUM_UNVERIFIED
        out.ip_csum[w] = status
        ok_len = (total >= ihl) & (total <= room)
        if not ok_len.all():
            self.stop(rows[~ok_len], Malformed.IPV4_TOTAL_LENGTH_INVALID)
            rows, p, ihl, proto, h = rows[ok_len], p[ok_len], ihl[ok_len], proto[ok_len], h[ok_len]
            w = self.sel(rows)
        fragw = w16(h, 6)
        frag = (fragw & 0x3FFF) != 0
        self.is_frag[w] = frag
        if frag.any():
            fr = rows[frag]
            self.f_off[fr] = (fragw[frag] & 0x1FFF).astype(np.int64) * 8
            self.f_more[fr] = (fragw[frag] & 0x2000) != 0
            self.f_unfrag[fr] = ihl[frag]
            self.f_proto[fr] = proto[frag]
        self.pos[w] = p + ihl
        self.next_after_ip(rows, proto, outer_v6=False)

    def ipv6(self, rows: I64) -> None:
        out, v = self.out, self.v
        rows = self.need(rows, 40, Malformed.IPV6_HEADER_SHORT)
        p = self.pos[rows]
        h = v.window(p, 40)
        bad_version = (h[:, 0] >> 4) != 6
        if bad_version.any():
            self.stop(rows[bad_version], Malformed.IPV6_VERSION_MISMATCH)
            rows, p, h = rows[~bad_version], p[~bad_version], h[~bad_version]
        self.commit_tunnel(rows)
        plen = w16(h, 4).astype(np.int64)
        nxt = h[:, 6]
        room = self.wend[rows] - p
        total = np.where((plen == 0) & (nxt != 59), room, plen + 40)  # jumbogram / TSO
        w = self.sel(rows)
        out.ip_version[w] = 6
        out.src[w] = h[:, 8:24]
        out.dst[w] = h[:, 24:40]
        self.psum[w] = word_sum(h[:, 8:40])
        out.ttl[w] = h[:, 7]
        out.ip_len[w] = total
        # An IPv6 header replaces every IP column of the layer it follows (a tunnel's carrier).
        out.proto[w] = 0
        out.ip_hlen[w] = 0
        out.ip_id[w] = 0
        out.ip_csum[w] = 0
        out.ip_len_zero[w] = False
        self.is_frag[w] = False
        self.l3[w] = p
        self.ipend[w] = p + total
        bad_len = (total < 40) | (total > room)
        if bad_len.any():
            self.stop(rows[bad_len], Malformed.IPV6_PAYLOAD_LENGTH_INVALID)
            rows, p, nxt = rows[~bad_len], p[~bad_len], nxt[~bad_len]
            w = self.sel(rows)
        self.pos[w] = p + 40
        ext = _IS_V6_EXT[nxt]
        if ext.any():
            er = rows[ext]
            self.ext_count[er] = 0
            self.et[er] = nxt[ext]
            self.kind[er] = IPV6_EXT
            plain = ~ext
            rows, nxt = rows[plain], nxt[plain]
            w = self.sel(rows)
        out.proto[w] = nxt
        out.ip_hlen[w] = 40
        self.next_after_ip(rows, nxt, outer_v6=True)

    def ipv6_ext(self, rows: I64) -> None:
        """One extension header per round, or the end of the chain: the transport's kind."""
        out, v = self.out, self.v
        nh = self.et[rows]
        ext = _IS_V6_EXT[nh]
        # End of chain.
        done = rows[~ext]
        if done.size:
            proto = nh[~ext]
            out.proto[done] = proto
            out.ip_hlen[done] = self.pos[done] - self.l3[done]
            self.next_after_ip(done, proto, outer_v6=True)
        rows, nh = rows[ext], nh[ext]
        if rows.size == 0:
            return
        # proto / ip_hlen say where the chain stopped, should it stop here.
        out.proto[rows] = nh
        out.ip_hlen[rows] = self.pos[rows] - self.l3[rows]
        too_many = self.ext_count[rows] >= MAX_IPV6_EXT
        if too_many.any():
            self.stop(rows[too_many], Malformed.IPV6_EXT_HEADER_INVALID)
            rows, nh = rows[~too_many], nh[~too_many]
        self.ext_count[rows] += 1
        ok = self.need_within(rows, 8, self.ipend[rows], Malformed.IPV6_EXT_HEADER_INVALID)
        if not ok.all():
            rows, nh = rows[ok], nh[ok]
        p = self.pos[rows]
        hbyte = v.u8[p + 1].astype(np.int64)
        hdr_len = np.where(nh == 51, (hbyte + 2) * 4, np.where(nh == 44, 8, (hbyte + 1) * 8))
        ok = self.need_within(rows, hdr_len, self.ipend[rows], Malformed.IPV6_EXT_HEADER_INVALID,
                              at=p)
        if not ok.all():
            rows, nh, hdr_len, p = rows[ok], nh[ok], hdr_len[ok], p[ok]
        nxt = v.u8[p]
        routing = nh == 43
        if routing.any():
            self.routing_destination(rows[routing], p[routing], hdr_len[routing])
        # The first fragment header counts (an atomic one, offset 0 and M clear, is no fragment).
        frag = (nh == 44) & ~self.is_frag[rows]
        if frag.any():
            fr, fp = rows[frag], p[frag]
            out.ip_id[fr] = v.be32[fp + 4]
            fo = v.be16[fp + 2].astype(np.int64)
            real = (fo & 0xFFF9) != 0
            fr, fp, fo = fr[real], fp[real], fo[real]
            self.is_frag[fr] = True
            self.f_off[fr] = fo & 0xFFF8
            self.f_more[fr] = (fo & 1) != 0
            self.f_unfrag[fr] = fp - self.l3[fr]
            self.f_proto[fr] = v.u8[fp]
            # A non-first fragment's data is not a header chain: the chain ends here.
            nonfirst = (fo & 0xFFF8) != 0
            nf, nfp = fr[nonfirst], fp[nonfirst]
            out.proto[nf] = v.u8[nfp]
            out.ip_hlen[nf] = nfp + 8 - self.l3[nf]
            self.kind[nf] = DONE
        self.et[rows] = nxt
        self.pos[rows] = p + hdr_len

    def routing_destination(self, rows: I64, p: I64, hdr_len: I64) -> None:
        """RFC 8200 §8.1: while segments are left, transport pseudo-headers carry the final
        destination: the last address (routing types 0 and 2), segment list [0] (type 4)."""
        v = self.v
        rtype, left = v.u8[p + 2], v.u8[p + 3]
        m = (left > 0) & (hdr_len >= 24) & ((rtype == 0) | (rtype == 2) | (rtype == 4))
        if not m.any():
            return
        rows, p, hdr_len, rtype = rows[m], p[m], hdr_len[m], rtype[m]
        final = np.where(rtype == 4, p + 8, p + hdr_len - 16)
        self.psum[rows] = (word_sum(self.out.src[rows])
                           + word_sum(v.bytes_at(final, 16))).astype(np.int64)

    def next_after_ip(self, rows: I64, proto: npt.NDArray[Any], *, outer_v6: bool) -> None:
        """Name the header after an IP header. A fragment is not descended into tunnels, and a
        non-first fragment has no transport header at all."""
        kind = _IP_NEXT[proto]
        frag = self.is_frag[rows]
        if frag.any():
            nonfirst = frag & (self.f_off[rows] != 0)
            kind = np.where(nonfirst | (frag & (kind == GRE)), DONE, kind)
            self.kind[rows] = kind
            plain = ~frag
            rows, proto = rows[plain], proto[plain]
        else:
            self.kind[rows] = kind
        self.descend_ip_in_ip(rows, proto, outer_v6=outer_v6)

    # --- tunnels ----------------------------------------------------------------------------

    def descend_ip_in_ip(self, rows: I64, proto: npt.NDArray[Any], *,
                         outer_v6: bool) -> None:
        for inner_proto, kind, code4, code6 in ((4, IPV4, TUNNEL_IPIP, TUNNEL_4IN6),
                                                 (41, IPV6, TUNNEL_6IN4, TUNNEL_6IN6)):
            r = rows[proto == inner_proto]
            if r.size:
                self.enter_tunnel(r, code6 if outer_v6 else code4, kind)

    def enter_tunnel(self, rows: I64, code: int, inner_kind: int,
                     sport: npt.NDArray[Any] | None = None,
                     dport: npt.NDArray[Any] | None = None) -> I64:
        """Enter a tunnel whose inside starts at the cursor; returns the rows that did (the
        others were one tunnel too deep)."""
        out = self.out
        depth = out.tunnel_depth[rows]
        deep = depth >= MAX_TUNNEL_DEPTH
        if deep.any():
            self.stop(rows[deep], Malformed.TUNNEL_TOO_DEEP)
            rows, depth = rows[~deep], depth[~deep]
            if sport is not None and dport is not None:
                sport, dport = sport[~deep], dport[~deep]
        for name in SAVED_LINK_COLUMNS + SAVED_CARRIER_COLUMNS:
            column = getattr(out, name)
            if name not in self.saved:
                self.saved[name] = np.zeros_like(column)
            self.saved[name][rows] = column[rows]
        outer = depth == 0
        for prefix, r, inside in (("out_", rows[outer], outer), ("car_", rows[~outer], ~outer)):
            # The first tunnel's carrier is the outermost (out_*), a later one the innermost so
            # far (car_*, overwritten by any deeper tunnel; restored if that one is rolled back).
            getattr(out, prefix + "src")[r] = out.src[r]
            getattr(out, prefix + "dst")[r] = out.dst[r]
            getattr(out, prefix + "proto")[r] = out.proto[r]
            getattr(out, prefix + "ip_len")[r] = out.ip_len[r]
            getattr(out, prefix + "sport")[r] = 0 if sport is None else sport[inside]
            getattr(out, prefix + "dport")[r] = 0 if dport is None else dport[inside]
        out.tunnel[rows] |= np.uint32(code) << (4 * depth.astype(np.uint32))
        out.tunnel_depth[rows] = depth + 1
        # Tentative until an inner IP header is decoded (commit_tunnel); a tunnel carrying no IP
        # (VXLAN with ARP inside, say) is rolled back and the row stays its carrier.
        self.tunnel_pending[rows] = True
        self.kind[rows] = inner_kind
        return rows

    def commit_tunnel(self, rows: I64) -> None:
        """An inner IP header was found: the inner layers own the transport columns now."""
        pending = self.tunnel_pending[rows]
        if not pending.any():
            return
        out = self.out
        r = rows[pending]
        self.tunnel_pending[r] = False
        out.l4[r] = 0
        out.sport[r] = 0
        out.dport[r] = 0
        out.payload[r] = -1
        out.udp_len[r] = 0
        out.dns_qr[r] = -1
        out.ntp_mode[r] = -1
        out.l4_csum[r] = 0
        out.ip_csum[r] = 0

    def roll_back_tunnels(self) -> None:
        """Undo tunnel entries that never reached an inner IP header."""
        r = np.flatnonzero(self.tunnel_pending)
        if r.size == 0:
            return
        out = self.out
        depth = out.tunnel_depth[r].astype(np.uint32) - 1
        out.tunnel_depth[r] = depth
        out.tunnel[r] &= ~(np.uint32(0xF) << (4 * depth))
        for name, saved in self.saved.items():
            getattr(out, name)[r] = saved[r]
        outer = r[depth == 0]
        for name in ("out_src", "out_dst", "out_proto", "out_sport", "out_dport", "out_ip_len"):
            getattr(out, name)[outer] = 0

    def gre(self, rows: I64) -> None:
        v = self.v
        ok = self.need_within(rows, 4, self.ipend[rows], Malformed.GRE_HEADER_INVALID)
        rows = rows[ok]
        p = self.pos[rows]
        flags = v.be16[p].astype(np.int64)
        ptype = v.be16[p + 2].astype(np.int64)
        version = flags & 7
        c, k, s = (flags >> 15) & 1, (flags >> 13) & 1, (flags >> 12) & 1
        a = np.where(version == 1, (flags >> 7) & 1, 0)
        invalid = ((flags & 0x4000) != 0) | (version > 1)  # routing, or neither GRE nor PPTP
        if invalid.any():
            self.stop(rows[invalid], Malformed.GRE_HEADER_INVALID)
            keep = ~invalid
            rows, p, ptype, c, k, s, a = (x[keep] for x in (rows, p, ptype, c, k, s, a))
        hlen = 4 + 4 * (c + k + s + a)
        ok = self.need_within(rows, hlen, self.ipend[rows], Malformed.GRE_HEADER_INVALID, at=p)
        if not ok.all():
            rows, p, ptype, hlen = rows[ok], p[ok], ptype[ok], hlen[ok]
        self.pos[rows] = p + hlen
        inner = np.select(
            [ptype == 0x0800, ptype == 0x86DD, ptype == 0x6558, ptype == 0x880B],
            [IPV4, IPV6, ETH, PPP], DONE)
        self.kind[rows[inner == DONE]] = DONE  # not descended: the row stays the GRE packet
        for kind in (IPV4, IPV6, ETH, PPP):
            r = rows[inner == kind]
            if r.size:
                r = self.enter_tunnel(r, TUNNEL_GRE, kind)
                if kind == ETH:
                    self.ethernet_inside(r)

    def ethernet_inside(self, rows: I64) -> None:
        """An Ethernet header inside a tunnel: 14 bytes, then the ethertype chain."""
        if rows.size == 0:
            return
        rows = self.need(rows, 14, Malformed.LINK_HEADER_SHORT)
        self.et[rows] = self.v.be16[self.pos[rows] + 12]
        self.pos[rows] += 14
        self.kind[rows] = ETHERTYPE

    # --- transport --------------------------------------------------------------------------

    def tcp(self, rows: I64) -> None:
        out, v = self.out, self.v
        ipend = self.ipend[rows]
        ok = self.need_within(rows, 20, ipend, Malformed.TCP_HEADER_SHORT)
        if not ok.all():
            rows, ipend = rows[ok], ipend[ok]
        self.kind[rows] = DONE
        p = self.pos[rows]
        h = v.window(p, 24)  # the fixed header and, usually, the first 4 option bytes
        w = self.sel(rows)
        out.l4[w] = 6
        out.sport[w] = w16(h, 0)
        out.dport[w] = w16(h, 2)
        out.seq[w] = w32(h, 4)
        out.ack[w] = w32(h, 8)
        off = (h[:, 12] >> 4).astype(np.int64) * 4
        out.tcp_flags[w] = w16(h, 12) & 0x0FFF
        out.tcp_hlen[w] = off
        out.win[w] = w16(h, 14)
        out.urp[w] = w16(h, 18)
        seg = ipend - p
        # What the checksum covers comes from the IP header, whatever the data offset says.
        checked = (rows, p, seg)
        bad = (off < 20) | (off > seg)
        if bad.any():
            self.stop(rows[bad], Malformed.TCP_OFFSET_INVALID)
            keep = ~bad
            rows, p, off, seg, h = rows[keep], p[keep], off[keep], seg[keep], h[keep]
            w = self.sel(rows)
        out.payload[w] = seg - off
        opts = off > 20
        if opts.any():
            # Most segments of a connection carry exactly NOP, NOP, timestamps: take them
            # without the general option walk.
            nnt = opts & (off == 32) & (w32(h, 20) == 0x0101080A) & (p + 32 <= self.end[rows])
            if nnt.any():
                r, q = rows[nnt], p[nnt]
                out.opt_kinds[r, 0] = 1
                out.opt_kinds[r, 1] = 1
                out.opt_kinds[r, 2] = 8
                out.opt_count[r] = 3
                out.has_ts[r] = True
                out.tsval[r] = v.be32[q + 24]
                out.tsecr[r] = v.be32[q + 28]
                opts &= ~nnt
            if opts.any():
                self.tcp_options(rows[opts], p[opts] + 20, p[opts] + off[opts])
        self.transport_checksum(*checked, 6)

    def tcp_options(self, rows: I64, cur: I64, oend: I64) -> None:
        """Walk the option lists of all rows together, one option per round.

        EOL and NOP are one byte; after EOL every zero byte is listed as another EOL and the
        first non-zero byte ends the list (as tshark lists them). Other kinds have a length byte:
        none (the kind is the option area's last byte) or a length below 2 or past the area is
        tcp-option-invalid; snaplen cutting the length or the value ends the walk quietly.
        """
        out, v = self.out, self.v
        lim = np.minimum(oend, self.end[rows])
        count = np.zeros(rows.size, dtype=np.int64)
        after_eol = np.zeros(rows.size, dtype=bool)
        live = np.flatnonzero(cur < lim)
        while live.size:
            c = cur[live]
            kind = v.u8[c]
            if after_eol.any():
                padding_ends = after_eol[live] & (kind != 0)
                if padding_ends.any():
                    keep = ~padding_ends
                    live, c, kind = live[keep], c[keep], kind[keep]
            r = rows[live]
            out.opt_kinds[r, count[live]] = kind
            count[live] += 1
            step = np.ones(live.size, dtype=np.int64)
            eol = kind == 0
            if eol.any():
                after_eol[live[eol]] = True
            multi = np.flatnonzero(kind > 1)
            if multi.size:
                mi = live[multi]
                mc, mr, mk = c[multi], r[multi], kind[multi].astype(np.int64)
                no_room = mc + 1 >= oend[mi]
                has_len = mc + 1 < lim[mi]  # captured (and so inside the area)
                length = np.zeros(multi.size, dtype=np.int64)
                length[has_len] = v.u8[mc[has_len] + 1]
                invalid = no_room | (has_len & ((length < 2) | (mc + length > oend[mi])))
                out.malformed[mr[invalid]] = Malformed.TCP_OPTION_INVALID
                whole = has_len & ~invalid & (mc + length <= lim[mi])
                self._option_values(mr, mc, mk, length, whole)
                # A row whose option was invalid or cut jumps past its end: its walk is over.
                step[multi] = np.where(whole, length, 1 << 16)
            cur[live] += step
            live = live[(cur[live] < lim[live]) & (count[live] < OPT_KINDS_MAX)]
        out.opt_count[rows] = count

    def _option_values(self, r: I64, c: I64, kind: I64, length: I64, whole: Mask) -> None:
        out, v = self.out, self.v
        m = whole & (kind == 2) & (length == 4)
        out.mss[r[m]] = v.be16[c[m] + 2]
        m = whole & (kind == 3) & (length == 3)
        out.wscale[r[m]] = v.u8[c[m] + 2]
        m = whole & (kind == 4) & (length == 2)
        out.sack_perm[r[m]] = True
        m = whole & (kind == 8) & (length == 10)
        out.has_ts[r[m]] = True
        out.tsval[r[m]] = v.be32[c[m] + 2]
        out.tsecr[r[m]] = v.be32[c[m] + 6]
        m = whole & (kind == 5) & (length >= 10) & ((length - 2) % 8 == 0)
        if m.any():
            sr, sc = r[m], c[m]
            blocks = np.minimum((length[m] - 2) // 8, SACK_BLOCKS_MAX)
            out.sack_count[sr] = blocks
            for b in range(SACK_BLOCKS_MAX):
                has = blocks > b
                out.sack[sr[has], 2 * b] = v.be32[sc[has] + 2 + 8 * b]
                out.sack[sr[has], 2 * b + 1] = v.be32[sc[has] + 6 + 8 * b]

    def udp(self, rows: I64) -> None:
        out, v = self.out, self.v
        ipend = self.ipend[rows]
        ok = self.need_within(rows, 8, ipend, Malformed.UDP_HEADER_SHORT)
        if not ok.all():
            rows, ipend = rows[ok], ipend[ok]
        self.kind[rows] = DONE
        p = self.pos[rows]
        h = v.window(p, 8)
        sport = w16(h, 0)
        dport = w16(h, 2)
        ulen = w16(h, 4).astype(np.int64)
        out.l4[rows] = 17
        out.sport[rows] = sport
        out.dport[rows] = dport
        out.udp_len[rows] = ulen
        seg = ipend - p
        # A first fragment holds only part of the datagram: its length is judged on reassembly.
        short = ulen < 8
        bad = short | ((ulen > seg) & ~self.is_frag[rows])
        out.payload[rows] = np.where(bad, seg - 8, ulen - 8)
        if bad.any():
            br = rows[bad]
            out.malformed[br] = Malformed.UDP_LENGTH_INVALID
            out.l4_csum[br] = CSUM_UNVERIFIED  # what the checksum covers is unknown
            # ... but a zero checksum over IPv6 is bad (as tshark, once the length is >= 8).
            zero6 = bad & ~short & (w16(h, 6) == 0) & (out.ip_version[rows] == 6)
            out.l4_csum[rows[zero6]] = CSUM_BAD
            good = ~bad
            rows, p, ulen, sport, dport = rows[good], p[good], ulen[good], sport[good], dport[good]
        self.transport_checksum(rows, p, ulen, 17)
        self.app_hints(rows, p, sport, dport)
        self.udp_tunnels(rows, p, ulen, sport, dport)

    def app_hints(self, rows: I64, p: I64, sport: npt.NDArray[Any],
                  dport: npt.NDArray[Any]) -> None:
        """dns_qr and ntp_mode (decode/app.py) of the datagrams captured whole, not
        fragments, on a DNS or NTP port: what Zeek's DNS and NTP analyzers would read."""
        out, u8 = self.out, self.v.u8
        ipend = self.ipend[rows]
        body = p + 8
        n = ipend - body
        # An IPv4 total length of 0 (TSO) hands them a negative length: nothing.
        whole = ~self.is_frag[rows] & (ipend <= self.end[rows]) & ~out.ip_len_zero[rows]
        dns = (whole & (n >= DNS_HEADER)
               & (np.isin(sport, DNS_PORTS) | np.isin(dport, DNS_PORTS)))
        out.dns_qr[rows[dns]] = u8[body[dns] + 2] >> 7
        ntp = whole & (n >= NTP_HEADER) & ((sport == NTP_PORT) | (dport == NTP_PORT))
        ntp[ntp] &= np.isin(u8[body[ntp]] & 7, (1, 2, 3, 4, 5))
        plain = ntp & (n <= NTP_HEADER + 24)  # no extension fields: the header decides
        out.ntp_mode[rows[plain]] = u8[body[plain]] & 7
        for i in np.flatnonzero(ntp & ~plain):  # extension fields: rare, per packet
            out.ntp_mode[rows[i]] = ntp_mode(bytes(u8[int(body[i]): int(ipend[i])]))

    def udp_tunnels(self, rows: I64, p: I64, ulen: I64, sport: npt.NDArray[Any],
                    dport: npt.NDArray[Any]) -> None:
        """VXLAN, Geneve, Teredo and GTP-U inside the UDP payload [p + 8, p + ulen)."""
        code = _UDP_TUNNEL[dport]
        code = np.where((code == 0) & (sport == TEREDO_PORT), TUNNEL_TEREDO, code)
        cand = (code != 0) & ~self.is_frag[rows]
        if not cand.any():
            return
        rows, p, ulen, sport, dport, code = (x[cand] for x in (rows, p, ulen, sport, dport, code))
        body = p + 8
        uend = p + ulen
        # VXLAN: an 8-byte header (the I flag is not required, as tshark), Ethernet inside.
        m = code == TUNNEL_VXLAN
        if m.any():
            r, b, sp, dp = rows[m], body[m], sport[m], dport[m]
            ok = self.need_within(r, 8, uend[m], Malformed.TUNNEL_HEADER_INVALID, at=b)
            r, b, sp, dp = r[ok], b[ok], sp[ok], dp[ok]
            self.pos[r] = b + 8
            self.ethernet_inside(self.enter_tunnel(r, TUNNEL_VXLAN, ETH, sp, dp))
        # Geneve: 8 bytes + options, then the protocol type says what follows.
        m = code == TUNNEL_GENEVE
        if m.any():
            r, b, e, sp, dp = rows[m], body[m], uend[m], sport[m], dport[m]
            ok = self.need_within(r, 8, e, Malformed.TUNNEL_HEADER_INVALID, at=b)
            r, b, e, sp, dp = r[ok], b[ok], e[ok], sp[ok], dp[ok]
            hlen = 8 + (self.v.u8[b] & 0x3F).astype(np.int64) * 4
            ok = self.need_within(r, hlen, e, Malformed.TUNNEL_HEADER_INVALID, at=b)
            r, b, hlen, sp, dp = r[ok], b[ok], hlen[ok], sp[ok], dp[ok]
            ptype = self.v.be16[b + 2]
            inner = np.select([ptype == 0x6558, ptype == 0x0800, ptype == 0x86DD],
                              [ETH, IPV4, IPV6], DONE)
            self.pos[r] = b + hlen
            for kind in (ETH, IPV4, IPV6):
                s = inner == kind
                if s.any():
                    entered = self.enter_tunnel(r[s], TUNNEL_GENEVE, kind, sp[s], dp[s])
                    if kind == ETH:
                        self.ethernet_inside(entered)
        # Teredo and GTP-U have variable headers and are rare: per packet.
        found: dict[tuple[int, int], list[int]] = {}
        for i in np.flatnonzero((code == TUNNEL_TEREDO) | (code == TUNNEL_GTPU)):
            start, stop = int(body[i]), min(int(uend[i]), int(self.end[rows[i]]))
            if code[i] == TUNNEL_GTPU:
                at = self._gtpu_inner(start, stop)
            else:
                at = self._teredo_inner(start, stop, int(uend[i]))
            if at >= 0:
                self.pos[rows[i]] = at
                inner_kind = IPV4 if int(self.v.u8[at]) >> 4 == 4 else IPV6
                found.setdefault((int(code[i]), inner_kind), []).append(int(i))
        for (tunnel_code, inner_kind), idx in found.items():
            sel = np.asarray(idx, dtype=np.int64)
            self.enter_tunnel(rows[sel], tunnel_code, inner_kind, sport[sel], dport[sel])

    def _teredo_inner(self, start: int, stop: int, dgram_end: int) -> int:
        """Where a plausible IPv6 header starts after Teredo's optional headers, or -1."""
        u8 = self.v.u8
        at = start
        if at + 4 <= stop and u8[at] == 0 and u8[at + 1] == 1:
            # authentication: id length, auth length, id, auth, 8-byte nonce, confirmation
            at += 4 + int(u8[at + 2]) + int(u8[at + 3]) + 9
        if at + 2 <= stop and u8[at] == 0 and u8[at + 1] == 0:  # origin indication
            at += 8
        if at + 6 > stop or at + 40 > dgram_end or (int(u8[at]) >> 4) != 6:
            return -1
        plen = (int(u8[at + 4]) << 8) | int(u8[at + 5])
        if at + 40 + plen > dgram_end:
            return -1
        return at

    def _gtpu_inner(self, start: int, stop: int) -> int:
        """Where the IP packet of a GTP-U G-PDU (version 1, PT 1, type 0xff) starts, or -1."""
        u8 = self.v.u8
        if start + 8 > stop:
            return -1
        flags = int(u8[start])
        if (flags >> 5) != 1 or not flags & 0x10 or int(u8[start + 1]) != 0xFF:
            return -1
        at = start + 8
        if flags & 0x07:  # E, S or PN: sequence, N-PDU and next-extension-type follow
            at = start + 12
            if at > stop:
                return -1
            nxt = int(u8[start + 11]) if flags & 0x04 else 0
            while nxt:
                if at + 1 > stop:
                    return -1
                ext_len = int(u8[at]) * 4
                if ext_len == 0 or at + ext_len > stop:
                    return -1
                nxt = int(u8[at + ext_len - 1])
                at += ext_len
        if at >= stop or (int(u8[at]) >> 4) not in (4, 6):
            return -1
        return at

    def icmp(self, rows: I64) -> None:
        out = self.out
        ipend = self.ipend[rows]
        ok = self.need_within(rows, 8, ipend, Malformed.ICMP_HEADER_SHORT)
        if not ok.all():
            rows, ipend = rows[ok], ipend[ok]
        self.kind[rows] = DONE
        p = self.pos[rows]
        h = self.v.window(p, 8)
        is6 = out.proto[rows] == 58
        itype = h[:, 0]
        out.l4[rows] = np.where(is6, 58, 1)
        out.icmp_type[rows] = itype
        out.icmp_code[rows] = h[:, 1]
        seg = ipend - p
        out.payload[rows] = seg - 8
        echo = np.where(is6, (itype == 128) | (itype == 129), (itype == 0) | (itype == 8))
        out.icmp_id[rows[echo]] = w16(h, 4)[echo]
        error = np.where(is6, _ICMP6_ERROR[itype], _ICMP4_ERROR[itype])
        if error.any():
            q = p[error] + 8
            limit = np.minimum(ipend[error], self.end[rows[error]])
            self.icmp_quote(rows[error], q, limit, is6[error])
        self.transport_checksum(rows, p, seg, 58, pseudo=is6)

    def icmp_quote(self, rows: I64, q: I64, limit: I64, is6: Mask) -> None:
        """The IP header (and ports) an ICMP error quotes, all or nothing (q_valid): ICMP quotes
        IPv4, ICMPv6 IPv6 (its extension headers followed); TCP/UDP ports are required, and
        so a first fragment."""
        v = self.v
        m = ~is6 & (q + 20 <= limit)
        if m.any():
            r, qq, lim = rows[m], q[m], limit[m]
            b0 = v.u8[qq]
            ok = ((b0 >> 4) == 4) & ((b0 & 0x0F) >= 5)
            r, qq, lim, b0 = r[ok], qq[ok], lim[ok], b0[ok]
            first = (v.be16[qq + 6] & 0x1FFF) == 0
            self._quoted(r, _v4_mapped(v.be32[qq + 12]), _v4_mapped(v.be32[qq + 16]),
                         proto=v.u8[qq + 9].astype(np.int64), first=first,
                         ports_at=qq + (b0 & 0x0F).astype(np.int64) * 4, limit=lim)
        m = is6 & (q + 40 <= limit)
        if m.any():
            r, qq, lim = rows[m], q[m], limit[m]
            ok = (v.u8[qq] >> 4) == 6
            r, qq, lim = r[ok], qq[ok], lim[ok]
            proto = v.u8[qq + 6].astype(np.int64)
            at = qq + 40
            first = np.ones(r.size, dtype=bool)
            valid = np.ones(r.size, dtype=bool)
            for _ in range(MAX_IPV6_EXT):
                ext = valid & _IS_V6_EXT[proto]
                if not ext.any():
                    break
                valid &= ~(ext & (at + 8 > lim))
                i = np.flatnonzero(ext & valid)
                o, pr = at[i], proto[i]
                fragment = pr == 44
                first[i[fragment]] &= (v.be16[o[fragment] + 2] & 0xFFF8) == 0
                hbyte = v.u8[o + 1].astype(np.int64)
                at[i] = o + np.where(fragment, 8,
                                     np.where(pr == 51, (hbyte + 2) * 4, (hbyte + 1) * 8))
                proto[i] = v.u8[o]
            valid &= ~_IS_V6_EXT[proto]  # more than 8 extension headers
            r, qq, lim, proto, at, first = (x[valid] for x in (r, qq, lim, proto, at, first))
            self._quoted(r, _v6(v, qq + 8), _v6(v, qq + 24), proto=proto, first=first,
                         ports_at=at, limit=lim)

    def _quoted(self, rows: I64, src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8], *,
                proto: I64, first: Mask, ports_at: I64, limit: I64) -> None:
        out, v = self.out, self.v
        ports = (proto == 6) | (proto == 17)
        ok = ~ports | (first & (ports_at + 4 <= limit))
        if not ok.all():
            rows, src, dst, proto, ports, ports_at = (
                x[ok] for x in (rows, src, dst, proto, ports, ports_at))
        out.q_valid[rows] = True
        out.q_src[rows] = src
        out.q_dst[rows] = dst
        out.q_proto[rows] = proto
        out.q_sport[rows[ports]] = v.be16[ports_at[ports]]
        out.q_dport[rows[ports]] = v.be16[ports_at[ports] + 2]

    # --- checksums ----------------------------------------------------------------------------

    def transport_checksum(self, rows: I64, p: I64, length: I64, proto: int,
                           pseudo: Mask | bool = True) -> None:
        """Queue TCP/UDP/ICMP checksum checks: all are summed in one pass at the end.

        The pseudo-header part is summed now, while the IP columns hold this layer.
        """
        out = self.out
        if rows.size == 0:
            return
        frag = self.is_frag[rows]
        whole = (p + length <= self.end[rows]) & ~frag
        out.l4_csum[rows] = CSUM_UNVERIFIED
        if proto == 17:
            zero = self.v.be16[p + 6] == 0
            # None sent over IPv4; forbidden over IPv6 (RFC 8200 §8.1).
            out.l4_csum[rows[zero & ~frag & (out.ip_version[rows] == 6)]] = CSUM_BAD
            whole &= ~zero
        r, pp, ln = rows[whole], p[whole], length[whole]
        if r.size == 0:
            return
        use_pseudo = np.broadcast_to(np.asarray(pseudo), rows.shape)[whole]
        # A 32-bit IPv6 length folds to its two 16-bit words: 2**16 == 1 in one's complement.
        nxt = out.proto[r].astype(np.uint64) if proto == 58 else np.uint64(proto)
        ph = self.psum[r].astype(np.uint64) + ln.astype(np.uint64) + nxt
        self.pending_csum.append((r, pp, ln, np.where(use_pseudo, ph, 0).astype(np.uint64),
                                  out.tunnel_depth[r].copy()))

    def finish_checksums(self) -> None:
        if not self.pending_csum:
            return
        rows, start, length, pseudo, depth = (np.concatenate(x) for x in zip(*self.pending_csum,
                                                                        strict=True))
        # A row that entered a tunnel after its carrier's check keeps only its innermost check.
        current = depth == self.out.tunnel_depth[rows]
        total = fold16(ones_sum(self.v.u8, start[current], length[current]) + pseudo[current])
        self.out.l4_csum[rows[current]] = np.where(total == 0xFFFF, CSUM_GOOD, CSUM_BAD)

    # --- fragments -----------------------------------------------------------------------------

    def fragment_records(self) -> list[FragmentRecord]:
        out = self.out
        records = []
        for i in np.flatnonzero(self.is_frag & (out.ip_version > 0)):
            row = int(i)
            version = int(out.ip_version[row])
            off = int(self.f_off[row])
            unfrag = int(self.f_unfrag[row])
            data_start = unfrag + (8 if version == 6 else 0)
            length = int(out.ip_len[row]) - data_start
            key = (bytes((version,)) + out.src[row].tobytes() + out.dst[row].tobytes()
                   + bytes((int(self.f_proto[row]),)) + int(out.ip_id[row]).to_bytes(4, "big"))
            records.append(FragmentRecord(row=row, key=key, offset=off, length=length,
                                          more=bool(self.f_more[row]), unfrag_len=unfrag))
        return records


HANDLERS: dict[int, Callable[[_Decoding, I64], None]] = {
    # A class-level table: bound methods kept on the instance would make a reference cycle that
    # holds each batch (and its buffer) until the cyclic garbage collector happens to run.
    LINK: _Decoding.link,
    ETHERTYPE: _Decoding.ethertype,
    MPLS: _Decoding.mpls,
    MPLS_NIBBLE: _Decoding.mpls_nibble,
    NIBBLE: _Decoding.raw_nibble,
    PPPOE: _Decoding.pppoe,
    PPP: _Decoding.ppp,
    PPP_PROTO: _Decoding.ppp_proto,
    IPV4: _Decoding.ipv4,
    IPV6: _Decoding.ipv6,
    IPV6_EXT: _Decoding.ipv6_ext,
    GRE: _Decoding.gre,
    TCP: _Decoding.tcp,
    UDP: _Decoding.udp,
    ICMP: _Decoding.icmp,
    ICMP6: _Decoding.icmp,
}


def _v4_mapped(addr: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint8]:
    """IPv4 addresses as 16-byte IPv4-mapped IPv6 rows (::ffff:a.b.c.d)."""
    words = np.zeros((addr.shape[0], 4), dtype=">u4")
    words[:, 2] = 0xFFFF
    words[:, 3] = addr
    return words.view(np.uint8)


def _v6(v: ByteViews, at: I64) -> npt.NDArray[np.uint8]:
    """16-byte addresses at the given offsets, gathered as four 32-bit words."""
    words = np.empty((at.shape[0], 4), dtype=">u4")
    for k in range(4):
        words[:, k] = v.be32[at + 4 * k]
    return words.view(np.uint8)


def decode_fast(frames: FrameBatch) -> tuple[PacketBatch, list[FragmentRecord]]:
    """Decode a batch of frames; fragments are reported for the Reassembler."""
    state = _Decoding(frames)
    if state.n:
        state.run()
        state.roll_back_tunnels()
        state.finish_checksums()
    return state.out, state.fragment_records()
