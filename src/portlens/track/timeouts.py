"""Named timeouts, with Zeek's defaults (scripts/base/init-bare.zeek), settable on the CLI.

All values are nanoseconds of *capture* time: a connection expires when the capture's clock
passes its deadline, never by wall-clock time, so the same file always gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

SECOND = 10**9


@dataclass(frozen=True, slots=True)
class Timeouts:
    tcp_inactivity: int = 300 * SECOND
    """An established TCP connection idle this long ends (end reason ``idle``)."""
    udp_inactivity: int = 60 * SECOND
    icmp_inactivity: int = 60 * SECOND
    tcp_attempt: int = 5 * SECOND
    """A SYN that got no answer within this time is logged as an attempt (S0); later packets on
    the same tuple start a new connection (Zeek's tcp_attempt_delay)."""
    tcp_close: int = 5 * SECOND
    """After both FINs, the connection lingers this long for the last ACKs (tcp_close_delay)."""
    tcp_reset: int = 5 * SECOND
    """After a RST, the connection lingers this long (tcp_reset_delay)."""
    tcp_partial_close: int = 3 * SECOND
    """After a FIN from one side with nothing from the other (tcp_partial_close_delay)."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_seconds(self, **seconds: float) -> Timeouts:
        """A copy with some timeouts given in (possibly fractional) seconds."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in seconds.items():
            if name not in values:
                raise ValueError(f"unknown timeout {name!r}; known: {', '.join(values)}")
            values[name] = round(value * SECOND)
        return Timeouts(**values)
