"""PacketBatch -> Connections: the flow table, its timers, and the rules that open and close
connections (Zeek's, docs/zeek-rules.md §1-§3, §12).

Packets are processed in capture order. Timers (inactivity, attempt, close delays) run on the
capture's clock: before each packet, every timer whose deadline has passed fires, so the same
file always gives the same connections. Memory stays bounded: connections leave the table when
they end, and a cap on open flows evicts the longest idle.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from functools import lru_cache

import numpy as np

from portlens.decode.fields import CSUM_BAD, FRAG_PART, SUB_CARRIER, SUB_FRAME, SUB_MSDU, addr_text
from portlens.decode.malformed import reason_label
from portlens.decode.packets import PacketBatch
from portlens.services import proto_name, service_name
from portlens.track.bulk import bulk_pass
from portlens.track.community_id import community_id, icmp_ports
from portlens.track.config import TrackerConfig
from portlens.track.flows import Flow
from portlens.track.model import (
    END_CAPTURE,
    END_CLOCK,
    END_PACKET,
    END_TIMERS,
    UNKNOWN_TRANSPORT,
    Connection,
    Endpoint,
    EndReason,
    TcpOptions,
    Transition,
)
from portlens.track.model import (
    Segment as TransitionSegment,
)
from portlens.track.states import Event, TcpState
from portlens.track.tcp import Host, Segment, TcpConnection
from portlens.track.timeouts import SECOND
from portlens.track.zeek import tcp_conn_state, udp_conn_state

BROADCAST4 = bytes(10) + b"\xff\xff" + b"\xff\xff\xff\xff"
V4_PREFIX = bytes(10) + b"\xff\xff"
DNS_PORTS = frozenset({53, 137, 5353, 5355})
NTP_PORT = 123

Key = tuple[object, ...]
AnyConn = TcpConnection | Flow


class Tracker:
    """Feed batches in capture order; connections come out as they end."""

    def __init__(self, config: TrackerConfig | None = None,
                 on_transition: Callable[[Transition], None] | None = None) -> None:
        self.config = config or TrackerConfig()
        self.table: OrderedDict[Key, AnyConn] = OrderedDict()
        self.live: dict[int, AnyConn] = {}
        """Open connections by serial number. Timer entries name connections by serial, so a
        removed connection is freed at once, not when its stale timers come due."""
        self.timers: list[tuple[int, int, int, int, str]] = []
        self.timer_seq = 0
        self.now = 0
        self.serial = 0
        self.ended: list[Connection] = []
        self.ending: list[tuple[int, Connection]] = []
        """Connections ended in the current step (``step``): they go to ``ended`` in serial
        order when it is over (``_end_step``), as in the core (columns.rs ``EndAt``)."""
        self.step = (0, END_CLOCK)
        self.last_frame = 0
        """The last frame counted (by this tracker, or in a shard by any)."""
        self.created: list[int] | None = [] if self.config.shard is not None else None
        """A shard's tracker: the first frame of each connection created, until taken
        (``created_frames``)."""
        self.user_on_transition = on_transition
        self.packets_tracked = 0
        self.packets_skipped = 0
        self.evicted = 0
        self.not_counted: Counter[str] = Counter()
        """Frames that belong to no connection, by why: not IP, malformed, other protocols."""
        self.frame_chain: tuple[tuple[int, int], list[tuple[object, ...]]] = ((0, 0), [])
        """(frame, ts_ns) of the last tunnelled frame's own row and its encapsulations,
        outermost first: the carriers its A-MSDU subframes' rows share (_carriers)."""

    # --- timers -------------------------------------------------------------------------------

    def add_timer(self, conn: AnyConn, deadline: int, name: str) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (deadline, self.timer_seq, conn.timer_gen, conn.serial, name))
        if len(self.timers) > 4 * len(self.live) + 4096:
            self._compact_timers()

    def _compact_timers(self) -> None:
        live = self.live
        self.timers = [t for t in self.timers if (c := live.get(t[3])) is not None
                       and (c.timer_gen == t[2] or t[4] == "inactivity")]
        heapq.heapify(self.timers)

    def _tcp_timer(self, conn: TcpConnection, deadline: int, name: str) -> None:
        self.add_timer(conn, deadline, name)

    def _run_timers(self, now: int) -> None:
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, _, gen, serial, name = heapq.heappop(timers)
            conn = self.live.get(serial)
            # Cancelling (a TCP close) stops the analyzer's timers, not the session's
            # inactivity timer (Zeek: Analyzer::CancelTimers vs Session::InactivityTimer),
            # which checks the idle time itself when it fires.
            if conn is None or (gen != conn.timer_gen and name != "inactivity"):
                continue
            # As in Zeek, a timer sees the network time it fires at, not its deadline: after a
            # jump in capture time it fires once, not once per period of the jump.
            cause = conn.timer(now, name)
            if cause is not None:
                self._remove(conn, cause)
            elif isinstance(conn, Flow) and (name == "dns" or (
                    name == "inactivity" and conn.inactivity)):
                self.add_timer(conn, conn.next_deadline(name, now), name)

    # --- the packets -----------------------------------------------------------------------

    def feed(self, b: PacketBatch) -> list[Connection]:
        """Track one batch; returns the connections that ended during it. A tracker of one
        shard tracks only the rows of its shard; the other shards' rows move its clock, as
        in a tracker of every flow, so that connections end where they end in one run."""
        use = tracked_rows(b, self.config)
        # A middle carrier's row is counted with its packet's row, never on its own.
        own = b.sub != SUB_CARRIER
        if self.config.shard is not None:
            k, n = self.config.shard
            shards = shard_of(b, n)
            mine = shards == k
            self._count_skipped(b, ~use & mine & own)
            # the other shards' packets are skipped here (as in the core's feed_shard)
            self.packets_skipped += int(own.sum()) - int((use & mine).sum())
            rows = np.flatnonzero(use)
            theirs = ~mine[rows]
            quoted = quoted_shard_of(b, n, shards)[rows] == k
        else:
            self._count_skipped(b, ~use & own)
            rows = np.flatnonzero(use)
            self.packets_skipped += int(own.sum()) - rows.size
            theirs = quoted = None
        if rows.size:
            self._track_rows(b, rows, theirs, quoted)
        self._end_step(self.step)
        out, self.ended = self.ended, []
        return out

    def advance(self, ts_ns: int) -> list[Connection]:
        """Move the clock to ``ts_ns`` without a packet (a live capture's wall clock while no
        packet arrives): timers due by then fire; returns the connections that ended."""
        self._end_step((self.last_frame, END_CLOCK))
        zts = ts_ns - ts_ns % 1000
        if zts > self.now:
            self.now = zts
            self._run_timers(zts)
        self._end_step(self.step)
        out, self.ended = self.ended, []
        return out

    def _end_step(self, step: tuple[int, int]) -> None:
        """The current step is over: its connections go to ``ended`` in serial (creation)
        order, tagged with where they ended; the next step is ``step``."""
        if self.ending:
            frame, phase = self.step
            self.ending.sort(key=lambda e: e[0])
            for _, c in self.ending:
                c.end_frame, c.end_phase = frame, phase
                self.ended.append(c)
            self.ending = []
        self.step = step

    def _clock(self, frame: int, zts: int) -> None:
        """One counted packet's clock: the timers due by then fire, before it is applied."""
        self._end_step((frame, END_TIMERS))
        self.last_frame = frame
        # Zeek's clock is the latest packet time so far (it never goes back), and before
        # every packet, also one of the same time or an earlier one, every timer due by
        # that clock fires (RunState.cc dispatch_packet: Advance(network_time)): a delay
        # of 0 (--timeout tcp_close=0) is due before the next packet.
        self.now = max(self.now, zts)
        if self.timers and self.timers[0][0] <= self.now:
            self._run_timers(self.now)
        self._end_step((frame, END_PACKET))

    def open_connections(self, limit: int | None = None) -> list[Connection]:
        """The open connections as they stand (most recently active first), without their
        transitions; they stay open. For live views."""
        out: list[Connection] = []
        for conn in reversed(self.table.values()):
            if limit is not None and len(out) >= limit:
                break
            c = self._connection(conn, "end", transitions=False)
            c.end_frame, c.end_phase = self.last_frame, END_CAPTURE
            out.append(c)
        return out

    def created_frames(self) -> np.ndarray:
        """A shard's tracker: the first frames of the connections created since the last
        call, in creation order (pipeline/shards.py ``ShardMerge`` ranks by them)."""
        out = np.asarray(self.created or [], dtype=np.int64)
        if self.created is not None:
            self.created = []
        return out

    def _count_skipped(self, b: PacketBatch, skipped: np.ndarray) -> None:
        """Why frames were not counted in any connection (for report footers)."""
        if not skipped.any():
            return
        part = skipped & (b.frag == FRAG_PART)
        if part.any():  # counted with the datagram they belong to
            skipped = skipped & ~part
        malformed = skipped & (b.malformed > 0)
        for code, n in zip(*np.unique(b.malformed[malformed], return_counts=True),
                           strict=True):
            self.not_counted[f"malformed: {reason_label(int(code))}"] += int(n)
        rest = skipped & ~malformed
        not_ip = rest & (b.ip_version == 0)
        if not_ip.any():
            self.not_counted["not IP"] += int(not_ip.sum())
        other = rest & (b.ip_version > 0)
        if self.config.drop_bad_checksums:
            zero = other & b.ip_len_zero
            if zero.any():
                self.not_counted["IPv4 total length 0 (dropped)"] += int(zero.sum())
            bad = other & ~zero & (b.ip_csum == CSUM_BAD)
            if bad.any():
                self.not_counted["bad IPv4 checksum (dropped)"] += int(bad.sum())
            other &= ~bad & ~zero
        for proto, n in zip(*np.unique(b.proto[other], return_counts=True), strict=True):
            self.not_counted[f"IP protocol {proto_name(int(proto))}"] += int(n)

    def finish(self) -> list[Connection]:
        """End of capture: every open connection ends now, in creation order."""
        self._end_step((self.last_frame, END_CAPTURE))
        for conn in sorted(self.table.values(), key=lambda c: c.serial):
            self._remove(conn, "end")
        self._end_step((self.last_frame, END_CLOCK))
        out, self.ended = self.ended, []
        return out

    def _track_rows(self, b: PacketBatch, rows: np.ndarray, theirs: np.ndarray | None,
                    quoted: np.ndarray | None = None) -> None:
        """``theirs``: the rows of other shards, which only move the clock; ``quoted``: the
        rows whose quoted flow (an ICMP error's) is this shard's, attached here, the error's
        own row being another shard's or not."""
        arrays = {name: getattr(b, name)[rows] for name in (
            "ts_ns", "frame", "ip_version", "l4", "sport", "dport", "tcp_flags", "seq", "ack",
            "payload", "win", "ip_len", "l4_csum", "truncated", "icmp_type",
            "icmp_code", "q_valid", "q_proto", "q_sport", "q_dport", "tunnel_depth", "out_proto",
            "out_sport", "out_dport", "out_ip_len", "car_proto", "car_sport", "car_dport",
            "car_ip_len", "vlan", "tunnel", "mss", "wscale", "sub",
            "sack_perm", "has_ts", "opt_count", "udp_len", "proto", "dns_qr", "ntp_mode")}
        arrays["unknown"] = unknown_transport(b)[rows]
        zero = b.ip_len_zero[rows]
        if zero.any():
            # ConnSize adds the IPv4 header's total length, which TSO left 0 (§8.2): the
            # frame's length stays in the packet's ip_len column only.
            arrays["ip_len"] = np.where(zero, 0, arrays["ip_len"])
        drop = self.config.drop_bad_checksums
        fast = self.config.fast_paths and not self.config.segment_marks
        # Rows applied already (by the batch pass) or of other shards: the per-packet loop
        # below only moves the clock at them, so that timers fire where they fire in one run.
        clock_only = np.zeros(rows.size, dtype=bool) if theirs is None else theirs.copy()
        if fast and not (drop and self.config.ignore_checksum_nets):
            mine = np.flatnonzero(~clock_only)
            handled = bulk_pass(self, {name: a[mine] for name, a in arrays.items()},
                                b.src[rows[mine]], b.dst[rows[mine]], self.config.vlan_in_key)
            clock_only[mine[handled]] = True
        # Python ints for the per-packet loop: much faster to index than numpy scalars. The
        # tunnel and ICMP columns are read only for such rows: converted only when there are.
        l4s = arrays["l4"]
        tunnels = bool(arrays["tunnel_depth"].any())
        icmp = bool(((l4s != 6) & (l4s != 17)).any())
        unused = ((() if tunnels else TUNNEL_COLUMNS) + (() if icmp else ICMP_COLUMNS))
        cols = {name: [] if name in unused else a.tolist() for name, a in arrays.items()}
        src = b.src[rows].tobytes()
        dst = b.dst[rows].tobytes()
        out_src = b.out_src[rows].tobytes() if tunnels else b""
        out_dst = b.out_dst[rows].tobytes() if tunnels else b""
        car_src = b.car_src[rows].tobytes() if tunnels else b""
        car_dst = b.car_dst[rows].tobytes() if tunnels else b""
        q_src = b.q_src[rows].tobytes() if icmp else b""
        q_dst = b.q_dst[rows].tobytes() if icmp else b""
        # another shard's ICMP error that quotes this shard's flow
        c_quote_here = [] if not icmp or theirs is None or quoted is None else (
            theirs & quoted & np.isin(arrays["l4"], (1, 58)) & arrays["q_valid"]
            & np.isin(arrays["q_proto"], (6, 17))).tolist()
        c_quoted = [] if not icmp or quoted is None else quoted.tolist()
        ignored = _ignored_sources(src, self.config.ignore_checksum_nets) if drop else None
        c_ack = cols["ack"]
        c_dport = cols["dport"]
        c_frame = cols["frame"]
        c_has_ts = cols["has_ts"]
        c_icmp_code = cols["icmp_code"]
        c_icmp_type = cols["icmp_type"]
        c_ip_len = cols["ip_len"]
        c_ip_version = cols["ip_version"]
        c_l4 = cols["l4"]
        c_l4_csum = cols["l4_csum"]
        c_mss = cols["mss"]
        c_opt_count = cols["opt_count"]
        c_out_dport = cols["out_dport"]
        c_out_ip_len = cols["out_ip_len"]
        c_out_proto = cols["out_proto"]
        c_out_sport = cols["out_sport"]
        c_car_dport = cols["car_dport"]
        c_car_ip_len = cols["car_ip_len"]
        c_car_proto = cols["car_proto"]
        c_car_sport = cols["car_sport"]
        c_payload = cols["payload"]
        c_q_dport = cols["q_dport"]
        c_q_proto = cols["q_proto"]
        c_q_sport = cols["q_sport"]
        c_q_valid = cols["q_valid"]
        c_sack_perm = cols["sack_perm"]
        c_seq = cols["seq"]
        c_sport = cols["sport"]
        c_tcp_flags = cols["tcp_flags"]
        c_truncated = cols["truncated"]
        c_ts_ns = cols["ts_ns"]
        c_proto = cols["proto"]
        c_unknown = cols["unknown"]
        c_tunnel = cols["tunnel"]
        c_tunnel_depth = cols["tunnel_depth"]
        c_sub = cols["sub"]
        c_udp_len = cols["udp_len"]
        c_dns_qr = cols["dns_qr"]
        c_ntp_mode = cols["ntp_mode"]
        c_vlan = cols["vlan"]
        c_win = cols["win"]
        c_wscale = cols["wscale"]
        c_clock_only = clock_only.tolist()
        for i in range(rows.size):
            ts = c_ts_ns[i]
            zts = ts - ts % 1000  # Zeek reads microseconds (§1.1)
            self._clock(c_frame[i], zts)
            if c_clock_only[i]:
                if c_quote_here and c_quote_here[i]:
                    self._attach_icmp_error(q_src[16 * i: 16 * i + 16], c_q_sport[i],
                                            q_dst[16 * i: 16 * i + 16], c_q_dport[i],
                                            c_q_proto[i], c_icmp_type[i], c_icmp_code[i],
                                            c_vlan[i] if self.config.vlan_in_key else None)
                continue
            s16, d16 = src[16 * i: 16 * i + 16], dst[16 * i: 16 * i + 16]
            encap: tuple[object, ...] | None = None
            depth = c_tunnel_depth[i]
            if depth:
                # The outermost carrier, the middle ones (three or more tunnels: the rows
                # after this one), the innermost (car_*).
                levels = [(out_src[16 * i: 16 * i + 16], c_out_sport[i],
                           out_dst[16 * i: 16 * i + 16], c_out_dport[i], c_out_proto[i],
                           c_out_ip_len[i])]
                if depth > 2:
                    levels += _middle_carriers(b, int(rows[i]))[: depth - 2]
                if depth > 1:
                    levels.append((car_src[16 * i: 16 * i + 16], c_car_sport[i],
                                   car_dst[16 * i: 16 * i + 16], c_car_dport[i],
                                   c_car_proto[i], c_car_ip_len[i]))
                encap = self._carriers(levels, c_sub[i], c_tunnel[i], ts, zts, c_frame[i])
            l4 = c_l4[i]
            vlan = c_vlan[i] if self.config.vlan_in_key else None
            version = c_ip_version[i]
            if l4 not in (1, 6, 17, 58):
                # An IP protocol without a transport analyzer is a connection of its own;
                # a tunnelled packet with nothing to track inside (a Teredo bubble) is
                # counted on its carriers only.
                if c_unknown[i]:
                    self._encapsulation(self._unknown(s16, d16, c_proto[i], ts, zts,
                                                      c_frame[i], c_ip_len[i], vlan, version),
                                        encap)
                self.packets_tracked += 1
                continue
            bad = drop and c_l4_csum[i] == CSUM_BAD and not (ignored and ignored[i])
            conn: AnyConn
            if l4 == 6:
                flags = c_tcp_flags[i]
                sport = c_sport[i]
                dport = c_dport[i]
                a, b2 = (s16, sport), (d16, dport)
                key: Key = (6, vlan, *(a + b2 if a <= b2 else b2 + a))
                found = self.table.get(key)
                if (fast and not flags & 0x02 and encap is None and not bad
                        and isinstance(found, TcpConnection) and found.fast_ok
                        and found.encap is None and found.try_fast(
                            found.orig.addr == s16 and found.orig.port == sport, ts, zts,
                            c_frame[i], flags, c_seq[i], c_ack[i], c_payload[i], c_win[i],
                            c_ip_len[i], not c_truncated[i])):
                    self.table.move_to_end(key)
                    self.packets_tracked += 1
                    continue
                options = None
                if flags & 0x02:
                    row = int(rows[i])
                    options = TcpOptions(
                        mss=c_mss[i] if c_mss[i] >= 0 else None,
                        wscale=c_wscale[i] if c_wscale[i] >= 0 else None,
                        sack_perm=c_sack_perm[i], timestamps=c_has_ts[i],
                        kinds=tuple(b.opt_kinds[row, : c_opt_count[i]].tolist()))
                seg = Segment(ts, zts, c_frame[i], flags, c_seq[i], c_ack[i],
                              c_payload[i], c_win[i], c_ip_len[i],
                              not c_truncated[i], bad, options)
                conn = self._tcp(key, found, s16, sport, d16, dport, seg, vlan, version)
            elif l4 == 17:
                conn = self._udp(s16, c_sport[i], d16, c_dport[i], ts, zts,
                                 c_frame[i], c_udp_len[i] - 8, c_ip_len[i],
                                 bad, not c_truncated[i], vlan, version,
                                 c_dns_qr[i], c_ntp_mode[i])
            else:
                conn = self._icmp(s16, d16, l4, c_icmp_type[i], c_icmp_code[i], ts,
                                  zts, c_frame[i], c_payload[i], c_ip_len[i],
                                  bad, not c_truncated[i], vlan, version)
                if c_q_valid[i] and c_q_proto[i] in (6, 17) and (not c_quoted or c_quoted[i]):
                    self._attach_icmp_error(q_src[16 * i: 16 * i + 16], c_q_sport[i],
                                            q_dst[16 * i: 16 * i + 16], c_q_dport[i],
                                            c_q_proto[i], c_icmp_type[i],
                                            c_icmp_code[i], vlan)
            self._encapsulation(conn, encap)
            self.packets_tracked += 1

    def _lookup(self, key: Key) -> AnyConn | None:
        conn = self.table.get(key)
        if conn is not None:
            self.table.move_to_end(key)
        return conn

    def _insert(self, key: Key, conn: AnyConn, ts: int, vlan: int | None, version: int) -> None:
        self.table[key] = conn
        self.serial += 1
        if self.created is not None:
            self.created.append(self.last_frame)
        conn.serial = self.serial
        self.live[self.serial] = conn
        conn.uid = _uid(self.serial, ts, key)
        conn.key = key
        conn.vlan = vlan
        conn.ip_version = version
        if len(self.table) > self.config.max_flows:
            _, victim = next(iter(self.table.items()))
            self.evicted += 1
            self._remove(victim, "evicted")

    def _likely(self, proto: str, port: int) -> bool:
        return (proto, port) in self.config.likely_server_ports

    def _tcp(self, key: Key, conn: AnyConn | None, src: bytes, sport: int, dst: bytes,
             dport: int, seg: Segment, vlan: int | None, version: int) -> TcpConnection:
        """The full path for one segment; ``conn`` is what the table holds under ``key``,
        looked up once by the caller (the fast lane needed it first)."""
        if conn is not None:
            self.table.move_to_end(key)
        if isinstance(conn, TcpConnection) and conn.is_reuse(seg.flags, seg.seq):
            self._remove(conn, "reuse")
            conn = None
        if not isinstance(conn, TcpConnection):
            conn = TcpConnection(src, sport, dst, dport, seg, self._tcp_timer,
                                 self._on_transition, self.config.timeouts)
            conn.gaps_for_partial = self.config.report_gaps_for_partial
            if self.config.segment_marks:
                conn.segment_marks = []
            self._insert(key, conn, seg.ts, vlan, version)
            conn.arm()
            flags = seg.flags
            flip = False
            # Not a plain SYN: guess the server by its port (§3.1); a plain SYN never flips.
            if (not flags & 0x02 or flags & 0x10) and self._likely("tcp", sport):
                flip = (not flags & 0x02 and sport < dport) if self._likely(
                    "tcp", dport) else True
            if flip and dst != BROADCAST4:
                conn.flip()
        from_orig = conn.orig.addr == src and conn.orig.port == sport
        conn.packet(seg, from_orig, check_csum=self.config.drop_bad_checksums)
        return conn

    def _udp(self, src: bytes, sport: int, dst: bytes, dport: int, ts: int, zts: int,
             frame: int, payload: int, ip_len: int, bad: bool, counted: bool,
             vlan: int | None, version: int, dns_qr: int = -1, ntp_mode: int = -1) -> Flow:
        a, b = (src, sport), (dst, dport)
        key: Key = (17, vlan, *(a + b if a <= b else b + a))
        conn = self._lookup(key)
        if not isinstance(conn, Flow):
            conn = Flow("udp", 17, src, sport, dst, dport, ts, zts, frame,
                        self.config.timeouts.udp_inactivity)
            self._insert(key, conn, ts, vlan, version)
            if (self._likely("udp", sport) and not self._likely("udp", dport)
                    and dst != BROADCAST4):
                conn.flip()
            if conn.inactivity:  # 0: off
                self.add_timer(conn, zts + conn.inactivity, "inactivity")
            if self.config.dns_timeout and conn.resp[1] in DNS_PORTS:
                conn.dns = True
                self.add_timer(conn, zts + 10 * SECOND, "dns")
            conn.ntp = self.config.ntp_analyzer and conn.resp[1] == NTP_PORT
        from_orig = conn.orig == (src, sport)
        conn.packet(from_orig, ts, zts, frame, payload, ip_len, bad,
                    check_csum=self.config.drop_bad_checksums, counted=True, dns_qr=dns_qr,
                    ntp_mode=ntp_mode)
        return conn

    def _icmp(self, src: bytes, dst: bytes, l4: int, itype: int, code: int, ts: int, zts: int,
              frame: int, payload: int, ip_len: int, bad: bool, counted: bool,
              vlan: int | None, version: int) -> Flow:
        oport, rport, one_way = icmp_ports(itype, code, v6=l4 == 58)
        a, b = (src, oport), (dst, rport)
        if one_way:
            key: Key = (l4, vlan, *a, *b)
        else:
            key = (l4, vlan, *(a + b if a <= b else b + a))
        conn = self._lookup(key)
        if not isinstance(conn, Flow):
            conn = Flow("icmp", l4, src, oport, dst, rport, ts, zts, frame,
                        self.config.timeouts.icmp_inactivity)
            conn.icmp_code = code
            self._insert(key, conn, ts, vlan, version)
            if conn.inactivity:  # 0: off
                self.add_timer(conn, zts + conn.inactivity, "inactivity")
        from_orig = conn.orig == (src, oport)
        conn.packet(from_orig, ts, zts, frame, payload, ip_len, bad,
                    check_csum=self.config.drop_bad_checksums, counted=counted)
        return conn

    def _unknown(self, src: bytes, dst: bytes, proto: int, ts: int, zts: int, frame: int,
                 ip_len: int, vlan: int | None, version: int) -> Flow:
        """Zeek's UnknownIPTransportAnalyzer (§11): keyed by the address pair and the protocol
        with ports 0, the first packet's sender the originator (no flips), only packets and
        IP bytes counted."""
        a, b = (src, 0), (dst, 0)
        key: Key = (proto, vlan, *(a + b if a <= b else b + a))
        conn = self._lookup(key)
        if not isinstance(conn, Flow):
            conn = Flow(UNKNOWN_TRANSPORT, proto, src, 0, dst, 0, ts, zts, frame,
                        self.config.timeouts.unknown_ip_inactivity)
            self._insert(key, conn, ts, vlan, version)
            if conn.inactivity:  # 0: off
                self.add_timer(conn, zts + conn.inactivity, "inactivity")
        conn.packet(conn.orig[0] == src, ts, zts, frame, 0, ip_len, False, check_csum=False)
        return conn

    def _attach_icmp_error(self, src: bytes, sport: int, dst: bytes, dport: int, proto: int,
                           itype: int, code: int, vlan: int | None) -> None:
        a, b = (src, sport), (dst, dport)
        key: Key = (proto, vlan, *(a + b if a <= b else b + a))
        conn = self.table.get(key)
        if isinstance(conn, (Flow, TcpConnection)):
            conn.icmp_errors.append((itype, code))

    def _encapsulation(self, conn: AnyConn, encap: tuple[object, ...] | None) -> None:
        """tunnel_parents, and Zeek's limit of 5 encapsulation changes ('X', §12)."""
        if not conn.encap_seen:
            conn.encap_seen = True
            conn.encap = encap
            if encap is not None:
                conn.parents.add(str(encap[1]))
            return
        if encap is not None and conn.encap != encap:
            if conn.encap_changes < 5:
                conn.encap_changes += 1
                conn.parents.add(str(encap[1]))
            elif "X" not in conn.history:
                conn.history += "X"
            conn.encap = encap

    def _carriers(self, levels: list[tuple[bytes, int, bytes, int, int, int]], sub: int,
                  kinds: int, ts: int, zts: int, frame: int) -> tuple[object, ...] | None:
        """Count a packet's tunnel carriers, outermost first: each UDP carrier is a
        connection of its own whose parent is the carrier around it, and the packet's parent
        is the innermost (Zeek's EncapsulationStack::Last, §12). An A-MSDU subframe's row
        shares the carriers crossed before its 802.11 header with its frame's own row, which
        counted them: Zeek pops the encapsulation stack back to that depth for each
        subframe (IEEE802_11Analyzer::AnalyzePacket)."""
        here = (frame, ts)
        shared = sub - SUB_MSDU if sub >= SUB_MSDU else 0
        chain = self.frame_chain[1] if self.frame_chain[0] == here else []
        made: list[tuple[object, ...]] = []
        encap: tuple[object, ...] | None = None
        for level, (src, sport, dst, dport, proto, ip_len) in enumerate(levels):
            if level < shared and level < len(chain):
                encap = chain[level]
                continue
            inner, carrier = self._carrier(src, sport, dst, dport, proto, ip_len, kinds, ts,
                                           zts, frame)
            if carrier is not None and level > 0:
                self._encapsulation(carrier, encap)
            encap = inner
            made.append(inner)
        if sub == SUB_FRAME:
            self.frame_chain = (here, made)
        return encap

    def _carrier(self, src: bytes, sport: int, dst: bytes, dport: int, proto: int,
                 ip_len: int, kinds: int, ts: int, zts: int,
                 frame: int) -> tuple[tuple[str, str], AnyConn | None]:
        """Count a tunnel carrier: a UDP one is a connection of its own, an IP one (GRE,
        IP-in-IP) only a tunnel record, as in Zeek. Returns the encapsulation it makes for
        what it carries, and the carrier's connection if it has one."""
        if proto != 17:
            return ("ip", self._tunnel_uid(src, dst, kinds)), None
        hdr = 20 if src[:12] == V4_PREFIX else 40
        conn = self._udp(src, sport, dst, dport, ts, zts, frame, ip_len - hdr - 8, ip_len,
                         False, False, None, 4 if hdr == 20 else 6)
        return ("udp", conn.uid), conn

    def _tunnel_uid(self, out_src: bytes, out_dst: bytes, kinds: int) -> str:
        """An IP tunnel is one record for both directions (Zeek logs no conn for it)."""
        a, b = sorted((out_src, out_dst))
        return _uid(0, kinds, ("tunnel", a, b))

    def _on_transition(self, conn: TcpConnection, seg: Segment, host: Host, event: Event,
                       old: TcpState, new: TcpState) -> None:
        if self.user_on_transition is None:
            return
        endpoint = Endpoint.ORIG if host is conn.orig else Endpoint.RESP
        o, r = conn.orig, conn.resp
        self.user_on_transition(Transition(
            seg.ts, seg.frame, endpoint, event, old, new,
            TransitionSegment(seg.flags, seg.seq, seg.ack, seg.payload),
            conn.uid, (_addr(o.addr), o.port, _addr(r.addr), r.port)))

    # --- ending ------------------------------------------------------------------------------

    def _remove(self, conn: AnyConn, cause: str) -> None:
        if conn.removed:
            return
        conn.removed = True
        self.live.pop(conn.serial, None)
        if self.table.get(conn.key) is conn:
            del self.table[conn.key]
        self.ending.append((conn.serial, self._connection(conn, cause)))
        if isinstance(conn, TcpConnection):
            conn.release()

    def _connection(self, conn: AnyConn, cause: str, *, transitions: bool = True
                    ) -> Connection:
        if isinstance(conn, TcpConnection):
            return self._tcp_connection(conn, cause, transitions=transitions)
        orig_h, resp_h = conn.orig[0], conn.resp[0]
        proto_num = conn.ip_proto
        one_way = False
        if conn.proto == "icmp":
            one_way = icmp_ports(conn.orig[1], conn.resp[1], v6=proto_num == 58)[2]
        duration = conn.last_zts - conn.start_zts
        c = Connection(
            uid=conn.uid, ts_ns=conn.first_ts, orig_h=_addr(orig_h), orig_p=conn.orig[1],
            resp_h=_addr(resp_h), resp_p=conn.resp[1], proto=conn.proto,
            service=service_name(conn.proto, conn.resp[1]) if conn.proto == "udp" else "",
            duration_ns=duration, orig_bytes=conn.bytes[0], resp_bytes=conn.bytes[1],
            conn_state=udp_conn_state(*conn.active) if conn.proto == "udp" else "OTH",
            history=conn.history, orig_pkts=conn.pkts[0], orig_ip_bytes=conn.ip_bytes[0],
            resp_pkts=conn.pkts[1], resp_ip_bytes=conn.ip_bytes[1],
            tunnel_parents=sorted(conn.parents),
            community_id=community_id(orig_h, resp_h, proto_num, *_id_ports(conn),
                                      one_way=one_way),
            ip_proto=proto_num,
            ip_version=conn.ip_version, vlan=conn.vlan,
            end_reason=_end_reason(cause, fin=False, rst=False), last_ns=conn.last_ts,
            first_frame=conn.first_frame, last_frame=conn.last_frame,
            icmp_errors=list(conn.icmp_errors),
            icmp_code=conn.icmp_code if conn.proto == "icmp" else None)
        return c

    def _tcp_connection(self, conn: TcpConnection, cause: str, *, transitions: bool = True
                        ) -> Connection:
        o, r = conn.orig, conn.resp
        orig_h, resp_h = _addr(o.addr), _addr(r.addr)
        hs = conn.handshake
        hs.outcome = conn.outcome()
        kept = []
        if self.config.keep_transitions and transitions:
            uid = conn.uid
            kept = [
                Transition(ts, frame, Endpoint.ORIG if host is o else Endpoint.RESP, event, old,
                           new, TransitionSegment(flags, seq, ack, payload), uid)
                for ts, frame, host, event, old, new, flags, seq, ack, payload
                in conn.transitions]
        return Connection(
            uid=conn.uid, ts_ns=conn.first_ts, orig_h=orig_h, orig_p=o.port,
            resp_h=resp_h, resp_p=r.port, proto="tcp", service=service_name("tcp", r.port),
            duration_ns=conn.last_zts - conn.start_zts, orig_bytes=o.ep.size(),
            resp_bytes=r.ep.size(), conn_state=tcp_conn_state(o.ep, r.ep, conn.history),
            missed_bytes=conn.missed, history=conn.history, orig_pkts=conn.pkts[0],
            orig_ip_bytes=conn.ip_bytes[0], resp_pkts=conn.pkts[1],
            resp_ip_bytes=conn.ip_bytes[1], tunnel_parents=sorted(conn.parents),
            community_id=community_id(o.addr, r.addr, 6, o.port, r.port), ip_proto=6,
            ip_version=conn.ip_version, vlan=conn.vlan, orig_state=o.rfc,
            resp_state=r.rfc, transitions=kept, handshake=hs, analysis=conn.analysis,
            completeness=conn.completeness,
            end_reason=_end_reason(cause, fin=conn.fin_hosts == 2, rst=conn.saw_rst),
            last_ns=conn.last_ts, first_frame=conn.first_frame, last_frame=conn.last_frame,
            icmp_errors=list(conn.icmp_errors), segment_marks=conn.segment_marks or [])


def _id_ports(conn: Flow) -> tuple[int | None, int | None]:
    """The ports a flow's Community ID hashes: none for a protocol without them (the spec
    hashes ports for TCP, UDP, SCTP, ICMP and ICMPv6; an SCTP flow's are Zeek's 0 and 0)."""
    if conn.proto == UNKNOWN_TRANSPORT and conn.ip_proto != 132:
        return None, None
    return conn.orig[1], conn.resp[1]


NO_CONNECTION_PROTOS = (1, 6, 17, 58, 4, 41, 47, 50, 59, 135)
"""IP protocols whose packets never make an unknown_transport connection: the transports
Zeek analyzes (a packet whose header was cut is dropped by them), the tunnels its IP analyzer
hands to the IPTunnel and GRE analyzers (IP-in-IP, 6in4, GRE: decapsulated or dropped, never
a connection), ESP and the IPv6 mobility header (IPAnalyzer::AnalyzePacket stops at them),
and IPv6's no-next-header (a weird, or a Teredo bubble)."""


def unknown_transport(b: PacketBatch) -> np.ndarray:
    """Rows that are Zeek's unknown_transport packets (§11): whole IP packets of a protocol in
    none of NO_CONNECTION_PROTOS (the decoder decoded no transport header for them)."""
    out: np.ndarray = ((b.ip_version > 0) & (b.l4 == 0) & (b.malformed == 0)
                       & ~np.isin(b.proto, NO_CONNECTION_PROTOS))
    return out


TUNNEL_COLUMNS = ("out_proto", "out_sport", "out_dport", "out_ip_len", "tunnel")
ICMP_COLUMNS = ("icmp_type", "icmp_code", "q_valid", "q_proto", "q_sport", "q_dport")


def udp_carried(b: PacketBatch) -> np.ndarray:
    """Rows inside a tunnel with a UDP carrier (out_*, car_* two tunnels deep, or a middle
    carrier): whatever is inside, the carrier's UDP connection counts the packet."""
    out: np.ndarray = (b.tunnel_depth > 0) & (
        (b.out_proto == 17) | ((b.tunnel_depth > 1) & (b.car_proto == 17)))
    middle = (b.sub == SUB_CARRIER) & (b.proto == 17)
    if middle.any():
        out[b.owner_rows()[middle]] = True
    return out


def _middle_carriers(b: PacketBatch, row: int) -> list[tuple[bytes, int, bytes, int, int, int]]:
    """The middle carriers of ``row`` (the SUB_CARRIER rows right after it), outermost
    first, as carrier levels."""
    out = []
    j = row + 1
    while j < len(b) and b.sub[j] == SUB_CARRIER:
        out.append((b.src[j].tobytes(), int(b.sport[j]), b.dst[j].tobytes(), int(b.dport[j]),
                    int(b.proto[j]), int(b.ip_len[j])))
        j += 1
    return out


def tracked_rows(b: PacketBatch, config: TrackerConfig) -> np.ndarray:
    """The rows a tracker of every flow counts in a connection (before any shard is taken)."""
    # A tunnelled packet with no transport inside (a Teredo bubble: IPv6 with no next
    # header; an inner header cut short) still counts on its carriers' UDP connections
    # (§12); an IP-level carrier (GRE, IP-in-IP) is no connection.
    # A packet of an IP protocol without a transport analyzer is Zeek's unknown_transport
    # connection (§11).
    use: np.ndarray = ((b.ip_version > 0) & (np.isin(b.l4, (6, 17, 1, 58)) | udp_carried(b)
                                             | unknown_transport(b)) & (b.frag != FRAG_PART)
                         & (b.sub != SUB_CARRIER))
    if config.drop_bad_checksums:
        bad_ip = b.ip_csum == CSUM_BAD
        if config.ignore_checksum_nets and bad_ip.any():
            flags = _ignored_sources(b.src.tobytes(), config.ignore_checksum_nets)
            bad_ip &= ~np.asarray(flags, dtype=bool)
        # Zeek validating checksums also drops an IPv4 header whose total length is 0
        # (TSO), whatever ignore_checksums_nets says: "ip_hdr_len_zero" in
        # IPAnalyzer::AnalyzePacket (§1).
        use &= ~bad_ip & ~b.ip_len_zero
    return use


def shard_of(b: PacketBatch, n: int) -> np.ndarray:
    """Worker number of each row: a symmetric hash of the host pair (the outer pair for
    tunnelled rows), so both directions, a tunnel's carrier and its inner flows, and ICMP
    errors from the probed host all land in the same worker."""
    tunnelled = b.tunnel_depth > 0
    src = np.where(tunnelled[:, None], b.out_src, b.src)
    dst = np.where(tunnelled[:, None], b.out_dst, b.dst)
    return _pair_shard(src, dst, n)


def quoted_shard_of(b: PacketBatch, n: int, shards: np.ndarray) -> np.ndarray:
    """The shard of the flow each row's ICMP error quotes (its host pair's, when the error
    is not tunnelled; else, and for other rows, the row's own, ``shards``): a router's error
    about two other hosts' flow is attached to that flow in its own shard."""
    quoting = b.q_valid & (b.tunnel_depth == 0)
    if not quoting.any():
        return shards
    out: np.ndarray = shards.copy()
    out[quoting] = _pair_shard(b.q_src[quoting], b.q_dst[quoting], n)
    return out


def _pair_shard(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    words = (src ^ dst).view(">u4").astype(np.uint64)  # XOR: the same both ways
    summed = (src.astype(np.uint64) + dst.astype(np.uint64)).sum(axis=1)
    h = words[:, 0] * 0x9E3779B1 + words[:, 1] * 0x85EBCA77 + words[:, 2] * 0xC2B2AE3D
    h += words[:, 3] * 0x27D4EB2F + summed * 0x165667B1
    h ^= h >> np.uint64(15)
    out: np.ndarray = (h % np.uint64(n)).astype(np.int64)
    return out


def _ignored_sources(src: bytes, nets: tuple[str, ...]) -> list[bool]:
    """For each 16-byte source address: is it in one of the networks?"""
    if not nets:
        return [False] * (len(src) // 16)
    networks = [ipaddress.ip_network(n) for n in nets]
    out = []
    for i in range(len(src) // 16):
        addr = ipaddress.ip_address(_addr(src[16 * i: 16 * i + 16]))
        out.append(any(addr.version == n.version and addr in n for n in networks))
    return out


def _end_reason(cause: str, *, fin: bool, rst: bool) -> EndReason:
    if rst:
        return EndReason.RST
    if fin:
        return EndReason.FIN
    if cause == "evicted":
        return EndReason.EVICTED
    if cause == "end":
        return EndReason.END_OF_CAPTURE
    return EndReason.IDLE


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _uid(serial: int, ts: int, key: object) -> str:
    """A Zeek-style uid ('C' + 17 base-62 characters), the same on every run of a file."""
    digest = hashlib.blake2b(repr((serial, ts, key)).encode(), digest_size=13).digest()
    n = int.from_bytes(digest, "big")
    chars = []
    for _ in range(17):
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return "C" + "".join(chars)


_addr = lru_cache(maxsize=65536)(addr_text)
"""Address text, cached: a connection's addresses are printed again and again."""


def track(batches: Iterator[PacketBatch], config: TrackerConfig | None = None
          ) -> Iterator[Connection]:
    """Connections of a stream of batches, as they end, then the rest at end of capture."""
    tracker = Tracker(config)
    for batch in batches:
        yield from tracker.feed(batch)
    yield from tracker.finish()
