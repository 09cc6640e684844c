"""The live view of `portlens sniff`: rates, drops, the per-port table, open connections with
both endpoints' states, and the latest handshakes, as one rich renderable refreshed about twice a
second. The tables are laid out by report/tables.py like every other table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text

from portlens.analysis.ports import PortTable
from portlens.decode.fields import endpoint_text
from portlens.report import human
from portlens.report.conns import ends_text
from portlens.report.ports import outcomes_text, port_label
from portlens.report.tables import Column, render
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


class TextTable:
    """A table of the live view, laid out (report/tables.py) at the width rich offers when it
    draws the view: columns are left out to fit, never cut, and a line under the table says
    which. Cells reach rich as Text, so addresses are never read as markup or emoji."""

    def __init__(self, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]],
                 drop_order: Sequence[str] = (), *, wide: bool = False) -> None:
        self.title = title
        self.columns = columns
        self.rows = rows
        self.drop_order = drop_order
        self.wide = wide

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = None if self.wide else options.max_width
        head, lines, left_out = render(self.columns, self.rows, width,
                                       drop_order=self.drop_order)
        yield Text(self.title, style="bold")
        for line in head:
            yield Text(line, style="bold")
        for line in lines:
            yield Text(line)
        if left_out:
            yield Text(f"({', '.join(left_out)} left out to fit; --wide shows every column)",
                       style="dim")


def ports_table(table: PortTable, top: int = 10, *, wide: bool = False) -> TextTable:
    columns = [Column("port"), Column("service"), Column("conns", right=True),
               Column("outcomes", fold=True), Column("pkts c>s/s>c", right=True),
               Column("bytes c>s/s>c", right=True)]
    rows = [(port_label(r), r.service or "-", str(r.conns), outcomes_text(r),
             f"{human.count(r.pkts_c2s)}/{human.count(r.pkts_s2c)}",
             f"{human.size(r.bytes_c2s)}/{human.size(r.bytes_s2c)}")
            for r in table.sorted("conns", top)]
    return TextTable("ports", columns, rows, ("bytes c>s/s>c", "pkts c>s/s>c", "service"),
                     wide=wide)


def open_table(conns: Sequence[Connection], top: int = 10, *, wide: bool = False) -> TextTable:
    rows = []
    for c in conns[:top]:
        states = (f"{SS_NAMES[c.orig_state]}/{SS_NAMES[c.resp_state]}"
                  if c.orig_state and c.resp_state else "-")
        rows.append((c.proto, *ends_text(c), states, c.history or "-",
                     f"{c.orig_pkts}/{c.resp_pkts}"))
    columns = [Column("proto"), Column("originator"), Column("responder"),
               Column("states o/r"), Column("history"), Column("pkts o/r", right=True)]
    return TextTable("open connections (most recent first)", columns, rows,
                     ("pkts o/r", "history"), wide=wide)


def handshakes_table(conns: Sequence[Connection], top: int = 6, *,
                     wide: bool = False) -> TextTable:
    with_syn = [c for c in conns if c.handshake is not None and c.handshake.syn_ns is not None]
    with_syn.sort(key=lambda c: c.handshake.syn_ns or 0, reverse=True)  # type: ignore[union-attr]
    rows = []
    for c in with_syn[:top]:
        hs = c.handshake
        assert hs is not None
        rows.append((endpoint_text(c.resp_h, c.resp_p), endpoint_text(c.orig_h, c.orig_p),
                     str(hs.outcome), human.duration(hs.server_rtt_ns),
                     human.duration(hs.client_rtt_ns), str(hs.syn_retransmits)))
    columns = [Column("server"), Column("client"), Column("outcome"),
               Column("server rtt", right=True), Column("client rtt", right=True),
               Column("SYN retries", right=True)]
    return TextTable("latest handshakes", columns, rows,
                     ("SYN retries", "client rtt", "server rtt"), wide=wide)


def dashboard(rates: Rates, ports: PortTable, open_conns: Sequence[Connection],
              recent: Sequence[Connection], *, wide: bool = False) -> RenderableType:
    return Group(header(rates), Text(""), ports_table(ports, wide=wide), Text(""),
                 open_table(open_conns, wide=wide), Text(""),
                 handshakes_table([*open_conns, *recent], wide=wide))
