"""What the HTML report is made of, as the analyses leave it: filled by the report's passes
(pipeline/report.py), turned into the page by report/html."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portlens.analysis.capture_stats import CaptureStats
from portlens.analysis.conn_rows import ConnRows
from portlens.analysis.handshakes import HandshakeTable
from portlens.analysis.ladder import Ladder
from portlens.analysis.ports import PortTable
from portlens.analysis.rates import PacketRates
from portlens.analysis.talkers import TalkerTable


@dataclass
class ReportInput:
    """Everything the page is made of, as the analyses left it."""

    sources: list[str]
    stats: CaptureStats
    ports: PortTable
    handshakes: HandshakeTable
    talkers: TalkerTable
    rates: PacketRates
    conns: ConnRows
    ladders: dict[str, Ladder] = field(default_factory=dict)
    ladder_limit: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    """`packets --stats --json`'s ``files`` records (capture files only)."""
    live: dict[str, Any] | None = None
    """A live capture's counters (packets analysed, dropped by the kernel and by portlens)."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
