"""The live view of `portlens sniff`: rates, drops, the per-port table, open connections with
both endpoints' states, and the latest handshakes, as one rich renderable refreshed about twice a
second."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from portlens.analysis.ports import PortTable
from portlens.report import human
from portlens.report.conns import endpoint_text, ends_text
from portlens.report.ports import outcomes_text, port_label
from portlens.track.model import Connection
from portlens.track.states import SS_NAMES


@dataclass
class Rates:
    """What the capture has seen, and how fast, for the header line."""

    interface: str
    elapsed: float
    packets: int
    bytes: int
    packets_per_s: float
    bytes_per_s: float
    received: int
    dropped: int
    ring_full: int = 0
    buffer_dropped: int = 0
    backlog_bytes: int = 0
    spooled_bytes: int = 0
    """Of the backlog, what waits on disk."""
    behind_s: float = 0.0
    """How far the analysis (and so this view) lags the capture."""
    started: str = ""
    """When the capture started, with its zone (Clock.stamp): '2026-12-02 11:52:03.120000
    UTC'."""


def header(r: Rates) -> Text:
    line = Text()
    line.append(f"portlens sniff -i {r.interface}", style="bold")
    if r.started:
        line.append(f"   since {r.started}")
    line.append(f"   {r.elapsed:6.1f} s   {r.packets:,} packets   {human.size(r.bytes)}   ")
    line.append(f"{r.packets_per_s:,.0f} pkts/s   {human.size(int(r.bytes_per_s))}/s   ")
    line.append(f"kernel: {r.received:,} received, ")
    line.append(f"{r.dropped:,} dropped", style="bold red" if r.dropped else "")
    if r.ring_full:
        line.append(f" (ring full {r.ring_full:,} times)", style="bold red")
    if r.backlog_bytes:
        line.append(f"   backlog {human.size(r.backlog_bytes)}", style="yellow")
        if r.spooled_bytes:
            line.append(f" ({human.size(r.spooled_bytes)} on disk)", style="yellow")
    if r.behind_s >= 1:
        line.append(f"   analysis {r.behind_s:,.1f} s behind", style="yellow")
    if r.buffer_dropped:
        line.append(f"   {r.buffer_dropped:,} dropped by portlens", style="bold red")
    return line


def ports_table(table: PortTable, top: int = 10) -> Table:
    t = Table(title="ports", title_justify="left", box=None, header_style="bold",
              pad_edge=False)
    for name in ("port", "service", "conns", "outcomes", "pkts c>s/s>c", "bytes c>s/s>c"):
        t.add_column(name, no_wrap=name != "outcomes",
                     justify="right" if name in ("conns",) else "left")
    for r in table.sorted("conns", top):
        t.add_row(port_label(r), r.service or "-", str(r.conns), outcomes_text(r),
                  f"{human.count(r.pkts_c2s)}/{human.count(r.pkts_s2c)}",
                  f"{human.size(r.bytes_c2s)}/{human.size(r.bytes_s2c)}")
    return t


def open_table(conns: Sequence[Connection], top: int = 10) -> Table:
    t = Table(title="open connections (most recent first)", title_justify="left", box=None,
              header_style="bold", pad_edge=False)
    for name in ("proto", "originator", "responder", "states o/r", "history", "pkts o/r"):
        t.add_column(name, no_wrap=True)
    for c in conns[:top]:
        states = (f"{SS_NAMES[c.orig_state]}/{SS_NAMES[c.resp_state]}"
                  if c.orig_state and c.resp_state else "-")
        t.add_row(c.proto, *ends_text(c), states, c.history or "-",
                  f"{c.orig_pkts}/{c.resp_pkts}")
    return t


def handshakes_table(conns: Sequence[Connection], top: int = 6) -> Table:
    t = Table(title="latest handshakes", title_justify="left", box=None, header_style="bold",
              pad_edge=False)
    for name in ("server", "client", "outcome", "server rtt", "client rtt", "SYN retries"):
        t.add_column(name, no_wrap=True)
    with_syn = [c for c in conns if c.handshake is not None and c.handshake.syn_ns is not None]
    with_syn.sort(key=lambda c: c.handshake.syn_ns or 0, reverse=True)  # type: ignore[union-attr]
    for c in with_syn[:top]:
        hs = c.handshake
        assert hs is not None
        t.add_row(endpoint_text(c.resp_h, c.resp_p), endpoint_text(c.orig_h, c.orig_p),
                  str(hs.outcome), human.duration(hs.server_rtt_ns),
                  human.duration(hs.client_rtt_ns), str(hs.syn_retransmits))
    return t


def dashboard(rates: Rates, ports: PortTable, open_conns: Sequence[Connection],
              recent: Sequence[Connection]) -> RenderableType:
    return Group(header(rates), Text(""), ports_table(ports), Text(""),
                 open_table(open_conns), Text(""),
                 handshakes_table([*open_conns, *recent]))
