"""`portlens ladder`: one connection as a sequence diagram in the terminal.

  CpxJd3lFxxbmBdYU3d  tcp 192.0.2.10:49152 -> 198.51.100.20:80 (http)
  started 2023-11-15 23:13:20.000000 EST (UTC-05:00); times are seconds since then

      time   frame  client 192.0.2.10:49152                          server 198.51.100.20:80
                    CLOSED                                                            LISTEN
  0.000000       1  |-- [SYN] seq=0 len=0 ------------------------------------------------>|
                    SYN-SENT

The client (Zeek's originator) is on the left, the server (responder) on the right; one arrow
per segment with its flags, sequence and acknowledgement numbers relative to each side's
initial sequence number, payload length and marks such as (retransmission); time is seconds
since the connection's first packet. Each endpoint's RFC 9293 state is printed under the
segment that changed it. Plain ASCII, so the text can be pasted anywhere and compared in tests.
Long connections fold their middle (state changes stay visible); ``full=True`` shows all.
"""

from __future__ import annotations

from collections import Counter

from portlens.analysis.icmp import conn_message
from portlens.analysis.icmp import outcome as icmp_outcome
from portlens.analysis.ladder import Ladder, Step
from portlens.decode.fields import endpoint_text
from portlens.report.clock import Clock
from portlens.track.model import Connection

WIDTH = 72
"""Columns from the client's lifeline to the server's, both included."""
PREFIX = 20
"""Time (10), two spaces, frame (6), two spaces."""
HEAD = 20
TAIL = 20
FOLD_OVER = 50
"""Connections with more segments than this are folded unless full=True."""

VERDICTS = {
    "S0": "the client sent a SYN and got no reply",
    "S1": "the connection was established and not closed",
    "SF": "both sides sent FIN and it was acknowledged",
    "REJ": "the server answered the SYN with RST",
    "S2": "established; the client sent FIN, the server never closed its side",
    "S3": "established; the server sent FIN, the client never closed its side",
    "RSTO": "established, then the client aborted it with RST",
    "RSTR": "the server aborted it with RST",
    "RSTOS0": "the client sent a SYN, then RST; no SYN-ACK was seen",
    "RSTRH": "the server sent a SYN-ACK, then RST; the client's SYN was not seen",
    "SH": "the client sent a SYN, then FIN; no SYN-ACK was seen",
    "SHR": "the server sent a SYN-ACK, then FIN; the client's SYN was not seen",
    "OTH": "no SYN seen, just midstream traffic",
}
"""Zeek's conn_state meanings (track.zeek.CONN_STATE_DOCS), in client/server words."""
UDP_VERDICTS = {
    "S0": "the client sent, the server never answered",
    "SF": "both sides sent",
    "SHR": "only the server sent (the request was before the capture)",
    "OTH": "nothing countable was seen",
}


def _prefix(time: str = "", frame: str = "") -> str:
    return f"{time:>10}  {frame:>6}  "


def _states_line(left: str, right: str, width: int = WIDTH) -> str:
    gap = max(1, width - len(left) - len(right))
    line = " " * PREFIX + left + " " * gap + right
    return line.rstrip()


def arrow(step: Step, width: int = WIDTH) -> str:
    text = step.label + "".join(f" ({m})" for m in step.marks)
    if step.from_orig:
        head = f"|-- {text} "
        return head + "-" * max(1, width - len(head) - 2) + ">|"
    tail = f" {text} --|"
    return "|<" + "-" * max(1, width - len(tail) - 2) + tail


def _seconds(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9 // 1000:06d}"


def _visible(ladder: Ladder, full: bool) -> list[bool]:
    n = len(ladder.steps)
    if full or n <= FOLD_OVER:
        return [True] * n
    return [i < HEAD or i >= n - TAIL or s.orig_state is not None or s.resp_state is not None
            for i, s in enumerate(ladder.steps)]


def _fold_line(hidden: list[Step]) -> str:
    marks: Counter[str] = Counter(m for s in hidden for m in s.marks)
    text = f"... {len(hidden)} segment{'s' if len(hidden) != 1 else ''} not shown"
    if marks:
        text += " (" + ", ".join(f"{n} {m}" for m, n in sorted(marks.items())) + ")"
    return " " * PREFIX + text + " ..."


def icmp_verdict(c: Connection) -> str:
    """Zeek's conn_state of every ICMP flow is OTH, which says nothing: what the exchange was."""
    message = conn_message(c)
    words = {
        "completed": f"{message} answered ({c.orig_pkts} sent, {c.resp_pkts} answered)",
        "unanswered": f"{message} not answered ({c.orig_pkts} sent)",
        "mid_stream": f"{message} alone (the request was before the capture)",
        "one_way": f"{message}, a message that expects no answer",
    }[icmp_outcome(c)]
    return f"verdict: {words}; conn_state {c.conn_state}, as Zeek logs every ICMP flow"


def verdict(ladder: Ladder) -> str:
    c = ladder.conn
    if c.proto == "icmp":
        return icmp_verdict(c)
    words = (VERDICTS if c.proto == "tcp" else UDP_VERDICTS).get(c.conn_state, "")
    return f"verdict: {c.conn_state}: {words}" if words else f"verdict: {c.conn_state}"


def render(ladder: Ladder, *, full: bool = False, width: int = WIDTH,
           clock: Clock | None = None) -> list[str]:
    """The diagram's lines; ``clock`` names the first packet's moment in the header (local
    time, or UTC with Clock(utc=True), the default), from which the time column counts."""
    c = ladder.conn
    if c.proto == "icmp":  # no ports: the message names the flow
        client, server, service = c.orig_h, c.resp_h, f" ({conn_message(c)})"
    else:
        client, server = endpoint_text(c.orig_h, c.orig_p), endpoint_text(c.resp_h, c.resp_p)
        service = f" ({c.service})" if c.service else ""
    started = (clock or Clock(utc=True)).stamp(c.ts_ns)
    lines = [f"{c.uid}  {c.proto} {client} -> {server}{service}",
             f"started {started}; times are seconds since then", ""]
    left, right = f"client {client}", f"server {server}"
    lines.append((_prefix("time", "frame") + left + " " * max(1, width - len(left) - len(right))
                  + right).rstrip())
    if ladder.orig_initial is not None or ladder.resp_initial is not None:
        lines.append(_states_line(str(ladder.orig_initial or ""), str(ladder.resp_initial or ""),
                                  width))
    visible = _visible(ladder, full)
    hidden: list[Step] = []
    start = c.ts_ns
    for step, show in zip(ladder.steps, visible, strict=True):
        if not show:
            hidden.append(step)
            continue
        if hidden:
            lines.append(_fold_line(hidden))
            hidden = []
        lines.append(_prefix(_seconds(step.ts_ns - start), str(step.frame)) + arrow(step, width))
        if step.orig_state is not None or step.resp_state is not None:
            lines.append(_states_line(str(step.orig_state or ""), str(step.resp_state or ""),
                                      width))
    if hidden:
        lines.append(_fold_line(hidden))
    lines.append("")
    lines.append(verdict(ladder))
    end = [f"end: {c.end_reason}"]
    if c.orig_state is not None and c.resp_state is not None:
        end.append(f"client {c.orig_state}, server {c.resp_state}")
    total = c.orig_pkts + c.resp_pkts
    end.append(f"{total} packet{'' if total == 1 else 's'} ({c.orig_pkts} from the client, "
               f"{c.resp_pkts} from the server) in {_seconds(max(c.last_ns - c.ts_ns, 0))} s")
    lines.append("; ".join(end))
    return lines


def text(ladder: Ladder, *, full: bool = False, clock: Clock | None = None) -> str:
    return "\n".join(render(ladder, full=full, clock=clock)) + "\n"
