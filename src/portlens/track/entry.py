"""What the flow table keeps for every entry, TCP connection or UDP/ICMP flow alike: times,
frames, packet counters, history, timers, and the identity the tracker gives it (uid, key,
VLAN, tunnel parents). One definition, so the tracker and the reports read both kinds the same
way."""

from __future__ import annotations


class TableEntry:
    """The fields common to TcpConnection and Flow; each adds its own protocol's state."""

    __slots__ = (
        "encap",
        "encap_changes",
        "encap_seen",
        "first_frame",
        "first_ts",
        "flips",
        "hist_seen",
        "history",
        "icmp_errors",
        "inactivity",
        "ip_bytes",
        "ip_version",
        "key",
        "last_frame",
        "last_ts",
        "last_zts",
        "parents",
        "pkts",
        "removed",
        "serial",
        "start_zts",
        "timer_gen",
        "uid",
        "vlan",
    )

    def __init__(self, ts: int, zts: int, frame: int, inactivity: int) -> None:
        self.first_ts = self.last_ts = ts
        self.start_zts = self.last_zts = zts
        """Zeek's times (microsecond resolution) for durations and timers."""
        self.first_frame = self.last_frame = frame
        self.inactivity = inactivity
        self.pkts = [0, 0]
        """Per direction: originator, responder."""
        self.ip_bytes = [0, 0]
        self.history = ""
        self.hist_seen = 0
        """Bits of the history letters already given (each letter once per direction)."""
        self.flips = 0
        self.removed = False
        self.timer_gen = 0
        """Bumped to cancel the timers armed so far (a heap entry of another generation is
        ignored when it fires)."""
        self.icmp_errors: list[tuple[int, int]] = []
        """(type, code) of ICMP errors that quoted this connection."""
        # Set by the tracker.
        self.serial = 0
        self.uid = ""
        self.key: tuple[object, ...] = ()
        self.vlan: int | None = None
        self.ip_version = 4
        self.parents: set[str] = set()
        """uids of the tunnels that carried it (Zeek's tunnel_parents)."""
        self.encap: tuple[object, ...] | None = None
        self.encap_changes = 0
        self.encap_seen = False
