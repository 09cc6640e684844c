"""Named timeouts, with Zeek's defaults (scripts/base/init-bare.zeek), settable on the CLI.

All values are nanoseconds of *capture* time: a connection expires when the capture's clock
passes its deadline, never by wall-clock time, so the same file always gives the same result.
Each is used where Zeek uses its namesake (docs/zeek-rules.md §2.3 cites the code):
``tcp_inactivity`` is ``tcp_inactivity_timeout``, ``tcp_attempt`` is ``tcp_attempt_delay``, and
so on. As in Zeek, 0 turns an inactivity timeout and the attempt timer off (``if (timeout)``
guards them), while a close or reset delay of 0 ends the connection at the next packet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

SECOND = 10**9
MAX_SECONDS = 100 * 365 * 86400
"""Longer than any capture (a century): beyond it a value is a typo, and 2^63 ns is near."""
TCP_SYN_TIMEOUT = 5 * SECOND
"""Zeek's first expire check after a connection is created (tcp_SYN_timeout)."""
TCP_SESSION_TIMER = 6 * SECOND
"""Zeek's period of the expire check (tcp_session_timer)."""
TCP_CONNECTION_LINGER = 5 * SECOND
"""Zeek's quiet time before the expire check removes a closed connection
(tcp_connection_linger); the three are constants in Zeek's policy, not timeouts a user
sets."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    tcp_inactivity: int = 300 * SECOND
    """A TCP connection past its handshake (an endpoint has left INACTIVE/SYN_SENT/
    SYN_ACK_SENT) and idle this long ends (end reason ``idle``); 0: never."""
    udp_inactivity: int = 60 * SECOND
    """A UDP flow idle this long ends; 0: never. Zeek also gives it to a TCP connection until
    its handshake is over (``TCPAnalyzer::MakeSessionAdapter``), so it ends an unanswered SYN
    when ``tcp_attempt`` is 0."""
    icmp_inactivity: int = 60 * SECOND
    """An ICMP flow idle this long ends; 0: never."""
    unknown_ip_inactivity: int = 60 * SECOND
    """A flow of an IP protocol without a transport analyzer (OSPF, SCTP, VRRP ...: Zeek's
    ``unknown_transport``) idle this long ends (unknown_ip_inactivity_timeout); 0: never."""
    tcp_attempt: int = 5 * SECOND
    """This long after the originator's SYN, a connection whose responder sent nothing is
    logged as an attempt (S0, end reason ``idle``); later packets on the tuple start a new
    connection (Zeek's tcp_attempt_delay); 0: never."""
    tcp_close: int = 5 * SECOND
    """Once the close is complete (both FINs, a RST, or a FIN with the peer never heard), the
    connection ends this long after its last packet (tcp_close_delay)."""
    tcp_reset: int = 5 * SECOND
    """A RST from an endpoint that had sent a FIN, while its peer had not: the connection ends
    this long after that RST (tcp_reset_delay)."""
    tcp_partial_close: int | None = None
    """An endpoint whose first packet seen is a FIN, with the peer active and not closed: the
    connection ends this long after its last packet (tcp_partial_close_delay). None: off, as
    in Zeek, which arms this timer only when a script handles ``connection_partial_close`` (no
    base script does; Zeek's delay is then 3 s)."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_seconds(self, **seconds: float) -> Timeouts:
        """A copy with some timeouts given in (possibly fractional) seconds.

        ValueError (one line, naming the timeout) for an unknown name or a value that is not
        a finite number of seconds from 0 to MAX_SECONDS."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in seconds.items():
            if name not in values:
                raise ValueError(f"unknown timeout {name!r}; known: {', '.join(values)}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"timeout {name} must be a finite number of seconds, 0 or "
                                 f"more, not {value}")
            if value > MAX_SECONDS:
                raise ValueError(f"timeout {name}: {value} s is more than a century")
            values[name] = round(value * SECOND)
        return Timeouts(**values)
