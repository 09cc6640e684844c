"""The fast decoder: FrameBatch -> PacketBatch on whole batches with numpy.

Every frame carries a cursor (``pos``) and the kind of header found there (``kind``). Each round
of the main loop groups the rows by kind and lets that kind's handler read its fields for the
whole group with one gather per field, then move the cursors past the header and name the next
kind. Rows leave the loop when they reach a transport header, a protocol portlens does not
descend into, or a malformed point. A typical Ethernet/IPv4/TCP batch takes four rounds; the
Python cost is per round and per kind, not per packet.

The rules are in docs/decoding.md; decode/reference.py implements them packet by packet and a
test holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from portlens.decode.fields import ByteViews, fold16, ones_sum, w16, w32
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
)
from portlens.sources import linktypes as lt
from portlens.sources.frames import FrameBatch

I64 = npt.NDArray[np.int64]

# Header kinds a cursor can point at.
DONE = 0
LINK = 1
ETH = 2
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
N_KINDS = 17

VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
NULL_IPV6_FAMILIES = (10, 24, 28, 30)
IPV6_EXT_HEADERS = (0, 43, 60, 51, 44)
MAX_IPV6_EXT = 8
ICMP4_ERRORS = (3, 4, 5, 11, 12)
ICMP6_ERRORS = (1, 2, 3, 4)

# IP protocol -> the kind of the header that follows the IP header.
_IP_NEXT = np.full(256, DONE, dtype=np.uint8)
_IP_NEXT[6] = TCP
_IP_NEXT[17] = UDP
_IP_NEXT[1] = ICMP
_IP_NEXT[58] = ICMP6
_IP_NEXT[47] = GRE
_IS_V6_EXT = np.zeros(256, dtype=bool)
_IS_V6_EXT[list(IPV6_EXT_HEADERS)] = True

_SIMPLE_LINKS: dict[int, tuple[int, int, int]] = {
    # linktype: (header bytes, offset of the ethertype inside it, next kind)
    lt.ETHERNET: (14, 12, ETHERTYPE),
    lt.LINUX_SLL: (16, 14, ETHERTYPE),
    lt.LINUX_SLL2: (20, 0, ETHERTYPE),
}
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
        self.wend = self.pos + np.maximum(frames.caplen, frames.wirelen).astype(np.int64)
        self.cut = frames.caplen < frames.wirelen
        out.truncated[:] = self.cut
        self.kind = np.full(n, LINK, dtype=np.uint8)
        self.et = np.zeros(n, dtype=np.int64)  # pending ethertype / IPv6 next header
        self.l3 = np.zeros(n, dtype=np.int64)  # start of the current IP header
        self.ipend = np.zeros(n, dtype=np.int64)  # end of the current IP datagram
        self.ext_count = np.zeros(n, dtype=np.int64)
        self.mpls_raise = np.zeros(n, dtype=bool)
        self.psum = np.zeros(n, dtype=np.int64)  # pseudo-header address sum of the IP layer
        self.tunnel_pending = np.zeros(n, dtype=bool)
        self.saved_ethertype = np.zeros(n, dtype=np.uint16)
        self.saved_vlan = np.zeros(n, dtype=np.int32)
        self.saved_vlan_count = np.zeros(n, dtype=np.uint8)
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
            if rounds > 64:  # cannot happen with the bounded layer counts; never loop forever
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
            else:
                self.kind[sub] = DONE  # unknown link type: counted by the caller, not malformed

    def ethertype(self, rows: I64) -> None:
        et = self.et[rows]
        vlan = np.isin(et, VLAN_TPIDS)
        if vlan.any():
            r = self.need(rows[vlan], 4, Malformed.VLAN_TAG_SHORT)
            p = self.pos[r]
            tci = self.v.be16[p].astype(np.int32)
            first = self.out.vlan[r] < 0
            self.out.vlan[r[first]] = tci[first] & 0xFFF
            self.out.vlan_count[r] += 1
            self.et[r] = self.v.be16[p + 2]
            self.pos[r] += 4
            rows = rows[~vlan]
            et = et[~vlan]
        self.out.ethertype[rows] = et
        ipv4 = et == 0x0800
        ipv6 = et == 0x86DD
        mpls = (et == 0x8847) | (et == 0x8848)
        pppoe = et == 0x8864
        self.kind[rows[ipv4]] = IPV4
        self.kind[rows[ipv6]] = IPV6
        self.kind[rows[mpls]] = MPLS
        other = ~(ipv4 | ipv6 | mpls | pppoe)
        self.kind[rows[other]] = DONE
        if pppoe.any():
            r = self.need(rows[pppoe], 6, Malformed.PPPOE_HEADER_SHORT)
            self.pos[r] += 6
            self.kind[r] = PPP_PROTO

    def mpls(self, rows: I64) -> None:
        rows = self.need(rows, 4, Malformed.MPLS_LABEL_SHORT)
        label = self.v.be32[self.pos[rows]]
        self.out.mpls_count[rows] += 1
        self.pos[rows] += 4
        bottom = (label & 0x100) != 0
        self.kind[rows[bottom]] = MPLS_NIBBLE
        self.mpls_raise[rows[bottom]] = True

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

    def nibble(self, rows: I64) -> None:
        """Raw IP and the payload of an MPLS stack: the version nibble decides."""
        rows = self.need(rows, 1, Malformed.MPLS_PAYLOAD_UNKNOWN)
        version = self.v.u8[self.pos[rows]] >> 4
        nxt = np.where(version == 4, IPV4, np.where(version == 6, IPV6, DONE)).astype(np.uint8)
        self.kind[rows] = nxt
        unknown = rows[(nxt == DONE) & self.mpls_raise[rows]]
        self.out.malformed[unknown] = Malformed.MPLS_PAYLOAD_UNKNOWN

    # --- IP ---------------------------------------------------------------------------------

    def ipv4(self, rows: I64) -> None:
        out, v = self.out, self.v
        rows = self.need(rows, 20, Malformed.IPV4_HEADER_SHORT)
        p = self.pos[rows]
        h = v.window(p, 20)
        b0 = h[:, 0]
        bad = ((b0 >> 4) != 4) | ((b0 & 0x0F) < 5)
        if bad.any():
            self.stop(rows[bad & ((b0 >> 4) != 4)], Malformed.IPV4_VERSION_MISMATCH)
            self.stop(rows[bad & ((b0 >> 4) == 4)], Malformed.IPV4_IHL_INVALID)
            rows, p, h = rows[~bad], p[~bad], h[~bad]
        self.commit_tunnel(rows)
        ihl = (h[:, 0] & 0x0F).astype(np.int64) * 4
        total = w16(h, 2).astype(np.int64)
        room = self.wend[rows] - p
        total = np.where(total == 0, room, total)  # TSO: the capturing host had not segmented yet
        ok_len = (total >= ihl) & (total <= room)
        w = self.sel(rows)  # a plain slice when every row is here: writes become copies
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
        # Header checksum, when the whole header (options too) was captured.
        hw = h[:, :20].astype(np.uint64)
        total_sum = (hw[:, 0::2] << 8).sum(axis=1) + hw[:, 1::2].sum(axis=1)
        for k in np.flatnonzero(ihl > 20):  # options: rare, and at most 40 more bytes
            for off in range(20, int(ihl[k]), 2):
                if p[k] + off + 2 <= self.end[rows[k]]:
                    total_sum[k] += v.be16[p[k] + off]
        status = np.where(fold16(total_sum) == 0xFFFF, CSUM_GOOD, CSUM_BAD)
        status[p + ihl > self.end[rows]] = CSUM_UNVERIFIED
        out.ip_csum[w] = status
        self.pos[w] = p + ihl
        self.next_after_ip(rows, proto, outer_v6=False)

    def ipv6(self, rows: I64) -> None:
        out, v = self.out, self.v
        rows = self.need(rows, 40, Malformed.IPV6_HEADER_SHORT)
        p = self.pos[rows]
        bad_version = (v.u8[p] >> 4) != 6
        if bad_version.any():
            self.stop(rows[bad_version], Malformed.IPV6_VERSION_MISMATCH)
            rows, p = rows[~bad_version], p[~bad_version]
        self.commit_tunnel(rows)
        plen = v.be16[p + 4].astype(np.int64)
        nxt = v.u8[p + 6].astype(np.int64)
        room = self.wend[rows] - p
        total = np.where((plen == 0) & (nxt != 59), room, plen + 40)
        out.ip_version[rows] = 6
        h = v.window(p + 8, 32)
        out.src[rows] = h[:, :16]
        out.dst[rows] = h[:, 16:]
        hw = h.astype(np.uint64)
        self.psum[rows] = (hw[:, 0::2] << 8).sum(axis=1) + hw[:, 1::2].sum(axis=1)
        out.ttl[rows] = v.u8[p + 7]
        out.ip_len[rows] = total
        out.ip_id[rows] = 0
        out.ip_csum[rows] = 0
        self.is_frag[rows] = False
        self.l3[rows] = p
        self.ipend[rows] = p + total
        self.ext_count[rows] = 0
        bad_len = total > room
        if bad_len.any():
            self.stop(rows[bad_len], Malformed.IPV6_PAYLOAD_LENGTH_INVALID)
            rows, p, nxt = rows[~bad_len], p[~bad_len], nxt[~bad_len]
        self.pos[rows] = p + 40
        self.et[rows] = nxt
        self.kind[rows] = IPV6_EXT

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
        too_many = self.ext_count[rows] >= MAX_IPV6_EXT
        if too_many.any():
            self.stop(rows[too_many], Malformed.IPV6_EXT_HEADER_INVALID)
            rows = rows[~too_many]
        self.ext_count[rows] += 1
        # The next-header and length bytes; a fragment header is needed whole (8 bytes).
        rows = self.need(rows, np.where(self.et[rows] == 44, 8, 2),
                         Malformed.IPV6_EXT_HEADER_INVALID)
        nh = self.et[rows]
        p = self.pos[rows]
        hbyte = v.u8[p + 1].astype(np.int64)
        hdr_len = np.where(nh == 51, (hbyte + 2) * 4, np.where(nh == 44, 8, (hbyte + 1) * 8))
        past = p + hdr_len > self.ipend[rows]
        if past.any():
            self.stop(rows[past], Malformed.IPV6_EXT_HEADER_INVALID)
            rows, nh, hdr_len, p = rows[~past], nh[~past], hdr_len[~past], p[~past]
        self.et[rows] = v.u8[p]
        frag = nh == 44
        if frag.any():
            fr, fp = rows[frag], p[frag]
            fo = v.be16[fp + 2].astype(np.int64)
            self.is_frag[fr] = True
            self.f_off[fr] = fo & 0xFFF8
            self.f_more[fr] = (fo & 1) != 0
            self.f_unfrag[fr] = fp - self.l3[fr]
            self.f_proto[fr] = v.u8[fp]
            out.ip_id[fr] = v.be32[fp + 4]
        self.pos[rows] = p + hdr_len
        if frag.any():
            # A non-first fragment's data is not a header chain: the chain ends here.
            fr = rows[frag]
            nonfirst = fr[self.f_off[fr] != 0]
            out.proto[nonfirst] = self.et[nonfirst]
            out.ip_hlen[nonfirst] = self.pos[nonfirst] - self.l3[nonfirst]
            self.kind[nonfirst] = DONE

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
                     dport: npt.NDArray[Any] | None = None) -> None:
        out = self.out
        depth = out.tunnel_depth[rows]
        deep = depth >= MAX_TUNNEL_DEPTH
        if deep.any():
            self.stop(rows[deep], Malformed.TUNNEL_TOO_DEEP)
            rows, depth = rows[~deep], depth[~deep]
            if sport is not None and dport is not None:
                sport, dport = sport[~deep], dport[~deep]
        outer = depth == 0
        r0 = rows[outer]
        out.out_src[r0] = out.src[r0]
        out.out_dst[r0] = out.dst[r0]
        out.out_proto[r0] = out.proto[r0]
        out.out_ip_len[r0] = out.ip_len[r0]
        if sport is not None and dport is not None:
            out.out_sport[r0] = sport[outer]
            out.out_dport[r0] = dport[outer]
        out.tunnel[rows] |= np.uint32(code) << (4 * depth.astype(np.uint32))
        out.tunnel_depth[rows] = depth + 1
        # Tentative until an inner IP header is decoded (commit_tunnel); a tunnel carrying no IP
        # (VXLAN with ARP inside, say) is rolled back and the row stays its carrier.
        self.tunnel_pending[rows] = True
        self.saved_ethertype[rows] = out.ethertype[rows]
        self.saved_vlan[rows] = out.vlan[rows]
        self.saved_vlan_count[rows] = out.vlan_count[rows]
        self.kind[rows] = inner_kind

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
        out.ethertype[r] = self.saved_ethertype[r]
        out.vlan[r] = self.saved_vlan[r]
        out.vlan_count[r] = self.saved_vlan_count[r]
        outer = r[depth == 0]
        for name in ("out_src", "out_dst", "out_proto", "out_sport", "out_dport", "out_ip_len"):
            getattr(out, name)[outer] = 0

    def gre(self, rows: I64) -> None:
        v = self.v
        rows = self.need(rows, 4, Malformed.GRE_HEADER_INVALID)
        p = self.pos[rows]
        flags = v.be16[p].astype(np.int64)
        ptype = v.be16[p + 2].astype(np.int64)
        version = flags & 7
        c, k, s = (flags >> 15) & 1, (flags >> 13) & 1, (flags >> 12) & 1
        a = np.where(version == 1, (flags >> 7) & 1, 0)
        invalid = ((flags & 0x4000) != 0) | (version > 1)
        if invalid.any():
            self.stop(rows[invalid], Malformed.GRE_HEADER_INVALID)
            keep = ~invalid
            rows, p, ptype, c, k, s, a = (x[keep] for x in (rows, p, ptype, c, k, s, a))
        hlen = 4 + 4 * (c + k + s + a)
        rows_ok = self.need(rows, hlen, Malformed.GRE_HEADER_INVALID)
        if rows_ok.size != rows.size:
            keep = np.isin(rows, rows_ok)
            rows, p, ptype, hlen = rows[keep], p[keep], ptype[keep], hlen[keep]
        self.pos[rows] = p + hlen
        inner = np.select(
            [ptype == 0x0800, ptype == 0x86DD, ptype == 0x6558, ptype == 0x880B],
            [IPV4, IPV6, ETH, PPP], DONE)
        descend = inner != DONE
        self.kind[rows[~descend]] = DONE
        for kind in (IPV4, IPV6, ETH, PPP):
            r = rows[inner == kind]
            if r.size:
                self.enter_tunnel(r, TUNNEL_GRE, kind)
        eth = rows[inner == ETH]
        self._ethernet_inside(eth)

    def _ethernet_inside(self, rows: I64) -> None:
        """An Ethernet header inside a tunnel: 14 bytes, then the ethertype chain."""
        if rows.size == 0:
            return
        rows = self.need(rows, 14, Malformed.TUNNEL_HEADER_INVALID)
        self.et[rows] = self.v.be16[self.pos[rows] + 12]
        self.pos[rows] += 14
        self.kind[rows] = ETHERTYPE

    # --- transport --------------------------------------------------------------------------

    def tcp(self, rows: I64) -> None:
        out, v = self.out, self.v
        rows = self.need(rows, 20, Malformed.TCP_HEADER_SHORT)
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
        seg = self.ipend[rows] - p
        # A first fragment holds only part of the segment: its length is judged on reassembly.
        bad = (off < 20) | ((off > seg) & ~self.is_frag[rows])
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
        self.transport_checksum(rows, p, seg, 6)

    def tcp_options(self, rows: I64, cur: I64, oend: I64) -> None:
        """Walk the option lists of all rows together, one option per round."""
        out, v = self.out, self.v
        lim = np.minimum(oend, self.end[rows])
        count = np.zeros(rows.size, dtype=np.int64)
        live = np.flatnonzero(cur < lim)
        while live.size:
            r, c = rows[live], cur[live]
            kind = v.u8[c]
            out.opt_kinds[r, count[live]] = kind
            count[live] += 1
            single = kind <= 1
            step = np.ones(live.size, dtype=np.int64)
            multi = np.flatnonzero(~single)
            if multi.size:
                mi = live[multi]
                mc, mr, mk = c[multi], r[multi], kind[multi].astype(np.int64)
                has_len = mc + 1 < lim[mi]
                length = np.zeros(multi.size, dtype=np.int64)
                length[has_len] = v.u8[mc[has_len] + 1]
                invalid = has_len & ((length < 2) | (mc + length > oend[mi]))
                out.malformed[mr[invalid]] = Malformed.TCP_OPTION_INVALID
                stop_here = invalid | ~has_len
                length[stop_here] = 1 << 16  # jump past the end: this row's walk is over
                whole = ~stop_here & (mc + length <= lim[mi])
                self._option_values(mr, mc, mk, length, whole)
                step[multi] = length
            cur[live] += step
            live = live[(cur[live] < lim[live]) & (count[live] < OPT_KINDS_MAX)]
        out.opt_count[rows] = count

    def _option_values(self, r: I64, c: I64, kind: I64, length: I64, whole: npt.NDArray[np.bool_]
                       ) -> None:
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
        rows = self.need(rows, 8, Malformed.UDP_HEADER_SHORT)
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
        seg = self.ipend[rows] - p
        # A first fragment holds only part of the datagram: its length is judged on reassembly.
        bad = (ulen < 8) | ((ulen > seg) & ~self.is_frag[rows])
        out.payload[rows] = np.where(bad, seg - 8, ulen - 8)
        if bad.any():
            out.malformed[rows[bad]] = Malformed.UDP_LENGTH_INVALID
            out.l4_csum[rows[bad]] = CSUM_UNVERIFIED
        good = ~bad
        rows, p, ulen, sport, dport = rows[good], p[good], ulen[good], sport[good], dport[good]
        self.transport_checksum(rows, p, ulen, 17)
        self.udp_tunnels(rows, p, ulen, sport, dport)

    def udp_tunnels(self, rows: I64, p: I64, ulen: I64, sport: npt.NDArray[Any],
                    dport: npt.NDArray[Any]) -> None:
        v = self.v
        cand = ((dport == 4789) | (dport == 6081) | (dport == 2152) | (dport == 3544)
                | (sport == 3544)) & ~self.is_frag[rows]
        if not cand.any():
            return
        rows, p, ulen, sport, dport = rows[cand], p[cand], ulen[cand], sport[cand], dport[cand]
        body = p + 8
        body_end = np.minimum(p + ulen, self.end[rows])
        inner_at = np.full(rows.size, -1, dtype=np.int64)
        inner_kind = np.full(rows.size, DONE, dtype=np.int64)
        code = np.zeros(rows.size, dtype=np.int64)
        # VXLAN: 8-byte header with the I flag, Ethernet inside.
        m = (dport == 4789) & (body + 8 + 14 <= body_end)
        m[m] &= (v.u8[body[m]] & 0x08) != 0
        inner_at[m], inner_kind[m], code[m] = body[m] + 8, ETH, TUNNEL_VXLAN
        # Geneve: 8 bytes + options, then the protocol type says what follows.
        m = (dport == 6081) & (body + 8 <= body_end)
        if m.any():
            gb = body[m]
            optlen = (v.u8[gb] & 0x3F).astype(np.int64) * 4
            ptype = v.be16[gb + 2]
            kind = np.select([ptype == 0x6558, ptype == 0x0800, ptype == 0x86DD],
                             [ETH, IPV4, IPV6], DONE)
            idx = np.flatnonzero(m)
            ok = kind != DONE
            inner_at[idx[ok]] = gb[ok] + 8 + optlen[ok]
            inner_kind[idx[ok]] = kind[ok]
            code[idx[ok]] = TUNNEL_GENEVE
        # Teredo and GTP-U have variable headers and are rare: per packet.
        for i in np.flatnonzero(((dport == 3544) | (sport == 3544) | (dport == 2152))
                                & (inner_kind == DONE)):
            start, stop = int(body[i]), int(body_end[i])
            if dport[i] == 2152:
                at = self._gtpu_inner(start, stop)
                tcode = TUNNEL_GTPU
            else:
                at = self._teredo_inner(start, stop, int(p[i] + ulen[i]))
                tcode = TUNNEL_TEREDO
            if at >= 0:
                version = int(v.u8[at]) >> 4
                inner_at[i] = at
                inner_kind[i] = IPV4 if version == 4 else IPV6
                code[i] = tcode
        for tunnel_code in (TUNNEL_VXLAN, TUNNEL_GENEVE, TUNNEL_TEREDO, TUNNEL_GTPU):
            sel = (code == tunnel_code) & (inner_at < body_end)
            if not sel.any():
                continue
            for inner in (ETH, IPV4, IPV6):
                s2 = sel & (inner_kind == inner)
                if s2.any():
                    r = rows[s2]
                    self.pos[r] = inner_at[s2]
                    self.enter_tunnel(r, tunnel_code, inner, sport[s2], dport[s2])
                    if inner == ETH:
                        self._ethernet_inside(r)

    def _teredo_inner(self, start: int, stop: int, dgram_end: int) -> int:
        u8 = self.v.u8
        at = start
        if at + 2 <= stop and u8[at] == 0 and u8[at + 1] == 1:  # authentication indicator
            if at + 4 > stop:
                return -1
            at += 4 + int(u8[at + 2]) + int(u8[at + 3]) + 9
        if at + 2 <= stop and u8[at] == 0 and u8[at + 1] == 0:  # origin indication
            at += 8
        if at + 40 > stop or (int(u8[at]) >> 4) != 6:
            return -1
        plen = (int(u8[at + 4]) << 8) | int(u8[at + 5])
        if at + 40 + plen > dgram_end:
            return -1
        return at

    def _gtpu_inner(self, start: int, stop: int) -> int:
        u8 = self.v.u8
        if start + 8 > stop:
            return -1
        flags = int(u8[start])
        if (flags >> 5) != 1 or not flags & 0x10 or int(u8[start + 1]) != 0xFF:
            return -1
        at = start + 8
        if flags & 0x07:
            if start + 12 > stop:
                return -1
            nxt = int(u8[start + 11])
            at = start + 12
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
        out, v = self.out, self.v
        rows = self.need(rows, 4, Malformed.ICMP_HEADER_SHORT)
        self.kind[rows] = DONE
        p = self.pos[rows]
        is6 = out.proto[rows] == 58
        itype = v.u8[p].astype(np.int16)
        out.l4[rows] = np.where(is6, 58, 1)
        out.icmp_type[rows] = itype
        out.icmp_code[rows] = v.u8[p + 1]
        seg = self.ipend[rows] - p
        out.payload[rows] = np.maximum(seg - 8, 0)
        echo = np.where(is6, (itype == 128) | (itype == 129), (itype == 0) | (itype == 8))
        echo &= p + 8 <= self.end[rows]
        out.icmp_id[rows[echo]] = v.be16[p[echo] + 4]
        error = np.where(is6, np.isin(itype, ICMP6_ERRORS), np.isin(itype, ICMP4_ERRORS))
        if error.any():
            self.icmp_quote(rows[error], p[error] + 8)
        self.transport_checksum(rows, p, seg, 58, pseudo=is6)

    def icmp_quote(self, rows: I64, q: I64) -> None:
        """The IP header (and ports) an ICMP error quotes: which flow it is about."""
        out, v = self.out, self.v
        has = q + 1 <= self.end[rows]
        rows, q = rows[has], q[has]
        version = v.u8[q] >> 4
        for ver, hlen in ((4, 20), (6, 40)):
            m = (version == ver) & (q + hlen <= self.end[rows])
            r, qq = rows[m], q[m]
            if r.size == 0:
                continue
            if ver == 4:
                ihl = (v.u8[qq] & 0x0F).astype(np.int64) * 4
                proto = v.u8[qq + 9]
                a = _v4_mapped(v.be32[qq + 12])
                b = _v4_mapped(v.be32[qq + 16])
                ports_at = qq + np.maximum(ihl, 20)
            else:
                proto = v.u8[qq + 6]
                a = _v6(v, qq + 8)
                b = _v6(v, qq + 24)
                ports_at = qq + 40
            out.q_valid[r] = True
            out.q_src[r] = a
            out.q_dst[r] = b
            out.q_proto[r] = proto
            pm = ((proto == 6) | (proto == 17)) & (ports_at + 4 <= self.end[r])
            out.q_sport[r[pm]] = v.be16[ports_at[pm]]
            out.q_dport[r[pm]] = v.be16[ports_at[pm] + 2]

    # --- checksums ----------------------------------------------------------------------------

    def transport_checksum(self, rows: I64, p: I64, length: I64, proto: int,
                           pseudo: npt.NDArray[np.bool_] | bool = True) -> None:
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
            v4 = out.ip_version[rows] == 4
            out.l4_csum[rows[zero & ~v4 & whole]] = CSUM_BAD
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
        rows, start, length, pseudo, depth = (np.concatenate(x) for x in zip(*self.pending_csum))
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
    MPLS_NIBBLE: _Decoding.nibble,
    NIBBLE: _Decoding.nibble,
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
