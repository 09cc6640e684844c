"""The RFC 9293 endpoint state machine, as a passive observer can infer it.

Every segment on the wire is an event for both endpoints: "sent" for its source and
"received" for its destination (the observer assumes what it saw was delivered). One table
maps (state, event) to the next state; pairs that are not in the table leave the state as it
is. The names are RFC 9293's (§3.3.2), which `ss` and `netstat` print in their own spelling
(see ``SS_NAMES``).
"""

from __future__ import annotations

from enum import Enum


class Named(str, Enum):
    """An enum whose members print as their value ("SYN-SENT", "refused"): what tables, CSV
    and conn.log show. (``enum.StrEnum`` does this from Python 3.11; we support 3.10.)"""

    def __str__(self) -> str:
        return str.__str__(self)  # the str payload, which is the value


class TcpState(Named):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


class Event(Named):
    """What an endpoint did or had done to it, as seen in one segment."""

    SND_SYN = "send SYN"
    RCV_SYN = "receive SYN"
    SND_SYN_ACK = "send SYN-ACK"
    RCV_SYN_ACK = "receive SYN-ACK"
    RCV_ACK_OF_SYN = "receive ACK of its SYN"
    SND_FIN = "send FIN"
    SND_FIN_CROSSED = "send FIN crossing the peer's"
    """A FIN that does not acknowledge the peer's FIN was sent before it arrived: the
    simultaneous close the observer could not see as such when it delivered the peer's FIN."""
    RCV_FIN = "receive FIN"
    RCV_ACK_OF_FIN = "receive ACK of its FIN"
    SND_RST = "send RST"
    RCV_RST = "receive RST"


S = TcpState
E = Event

TRANSITIONS: dict[tuple[TcpState, Event], TcpState] = {
    # Opening (RFC 9293 §3.5). A responder is presumed LISTENing until it shows otherwise.
    (S.CLOSED, E.SND_SYN): S.SYN_SENT,
    (S.LISTEN, E.SND_SYN): S.SYN_SENT,
    (S.LISTEN, E.SND_SYN_ACK): S.SYN_RECEIVED,
    (S.CLOSED, E.SND_SYN_ACK): S.SYN_RECEIVED,
    (S.SYN_SENT, E.RCV_SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, E.RCV_SYN): S.SYN_RECEIVED,  # simultaneous open
    (S.SYN_RECEIVED, E.RCV_ACK_OF_SYN): S.ESTABLISHED,
    (S.SYN_RECEIVED, E.RCV_SYN_ACK): S.ESTABLISHED,  # simultaneous open, the peer's SYN-ACK
    # Closing (§3.6).
    (S.SYN_RECEIVED, E.SND_FIN): S.FIN_WAIT_1,
    (S.ESTABLISHED, E.SND_FIN): S.FIN_WAIT_1,
    (S.ESTABLISHED, E.RCV_FIN): S.CLOSE_WAIT,
    (S.FIN_WAIT_1, E.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, E.RCV_FIN): S.CLOSING,  # simultaneous close
    (S.FIN_WAIT_2, E.RCV_FIN): S.TIME_WAIT,
    (S.CLOSE_WAIT, E.SND_FIN): S.LAST_ACK,
    (S.CLOSE_WAIT, E.SND_FIN_CROSSED): S.CLOSING,
    (S.ESTABLISHED, E.SND_FIN_CROSSED): S.FIN_WAIT_1,
    (S.CLOSING, E.RCV_ACK_OF_FIN): S.TIME_WAIT,
    (S.LAST_ACK, E.RCV_ACK_OF_FIN): S.CLOSED,
    # Reset (§3.10.7): any synchronized or opening state goes to CLOSED.
    **{(state, ev): S.CLOSED
       for state in (S.LISTEN, S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1,
                     S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT)
       for ev in (E.SND_RST, E.RCV_RST)},
}

SS_NAMES = {
    S.CLOSED: "CLOSED",
    S.LISTEN: "LISTEN",
    S.SYN_SENT: "SYN-SENT",
    S.SYN_RECEIVED: "SYN-RECV",
    S.ESTABLISHED: "ESTAB",
    S.FIN_WAIT_1: "FIN-WAIT-1",
    S.FIN_WAIT_2: "FIN-WAIT-2",
    S.CLOSE_WAIT: "CLOSE-WAIT",
    S.CLOSING: "CLOSING",
    S.LAST_ACK: "LAST-ACK",
    S.TIME_WAIT: "TIME-WAIT",
}
"""The spelling `ss` uses for each state."""

SYNCHRONIZED = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING,
                          S.LAST_ACK, S.TIME_WAIT})


def next_state(state: TcpState, event: Event) -> TcpState:
    return TRANSITIONS.get((state, event), state)
