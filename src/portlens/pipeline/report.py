"""The passes of the HTML report (`portlens report`, ``Capture.report``).

One pass tracks the connections and, batch by batch, counts what only packets tell (the capture
summary, top talkers, packet rates, which frames hold which address pairs); a second pass reads
the packets of the connections whose ladders the page embeds (analysis/ladders.py), decoding
only their frames where frame numbers name them (one file). A live capture cannot be read
twice, so it is also written to a temporary pcap file (or to ``-w FILE``), which the second
pass reads and which is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from portlens.analysis.capture_stats import CaptureStats
from portlens.analysis.columns import add_handshake_columns
from portlens.analysis.conn_rows import ConnRows
from portlens.analysis.handshakes import HandshakeTable
from portlens.analysis.ladders import PairFrames, ladders, pick_rows
from portlens.analysis.ports import PortTable
from portlens.analysis.rates import PacketRates
from portlens.analysis.report_input import ReportInput
from portlens.analysis.talkers import TalkerTable
from portlens.decode.packets import PacketBatch
from portlens.pipeline.run import Pipeline, Source
from portlens.track.model import Connection

DEFAULT_LADDERS = 250
"""Connections whose ladders a report embeds at most (`report --ladders N`). Each costs its
frames' decoding, its replay through a fresh tracker (one segment at a time, about 0.1 ms a
segment, where a counter moved) and about 300 bytes of the page; the second reading of the
file is paid once: on the 2 M-packet benchmark capture 250 took 0.8-1.1 CPU s and 0.09 MB,
a thousand 2.3-2.6 CPU s and 0.37 MB (docs/benchmarks.md)."""


REPORT_CHUNK_BYTES = 2 << 20
"""Bytes read per batch by the report's first pass, which reads without a read-ahead thread:
the one batch in flight holds less than the pipeline's three of 2 MiB (Options.chunk_bytes),
and half as many batches as with 1 MiB took 0.4 CPU s less of the benchmark capture's
report."""
LADDER_CHUNK_BYTES = 8 << 20
"""Bytes read per batch by the ladders' pass where it decodes only the chosen connections'
frames: a batch is then a few rows, and each costs its steps through the pipeline."""


def collect_report(pipeline: Pipeline, *, ladder_limit: int = DEFAULT_LADDERS,
                   sources: list[str] | None = None) -> tuple[ReportInput, bool]:
    """Run the report's passes over ``pipeline``'s source; the input of the page, and whether
    Ctrl-C cut the reading short (what was read is reported all the same).

    Where the tracker hands its connections over as columns (the compiled one, in this
    process), the tables are folded from those (analysis/columns.py, as `ports` and
    `handshakes` do) and no Connection is made but for the ladders' few; otherwise (workers,
    the reference tracker) from Connection objects, to the same values."""
    stats, talkers, rates = CaptureStats(), TalkerTable(), PacketRates()
    ports, handshakes = PortTable(), HandshakeTable()
    conns = ConnRows(keep=ladder_limit)
    o = pipeline.options
    # Frame numbers name the frames of one file: the ladders' pass can then decode only the
    # frames of the chosen connections' address pairs (analysis/ladders.py PairFrames).
    pair_frames = (PairFrames() if len(pipeline.source.files) == 1 and o.count is None
                   and ladder_limit > 0 else None)

    def on_packets(b: PacketBatch) -> None:
        stats.add(b)
        talkers.add(b)
        rates.add(b)
        if pair_frames is not None:
            pair_frames.add(b)

    def sink(c: Connection) -> None:
        conns.add(c)
        ports.add(c)
        handshakes.add(c)

    def on_columns(cols: dict[str, Any]) -> None:
        conns.add_columns(cols)
        ports.add_columns(cols)
        add_handshake_columns(handshakes, cols)

    if not pipeline.sharded and not pipeline.reads_in_core():
        # the counting and folding below hold the GIL on every batch: a read-ahead thread
        # would take turns with them (Options.read_ahead); with one batch in flight instead
        # of three, batches can be twice as large, and each costs the counts' fixed steps.
        # Files the core reads and decodes (in a thread of its own, without the GIL) are
        # read ahead there, and the counts read the batches it holds.
        pipeline.options = replace(pipeline.options, read_ahead=False, chunk_bytes=max(
            pipeline.options.chunk_bytes, REPORT_CHUNK_BYTES))
    temporary: str | None = None
    if pipeline.source.is_live and pipeline.options.write is None:
        fd, temporary = tempfile.mkstemp(prefix="portlens-report-", suffix=".pcap")
        os.close(fd)
        pipeline.options = replace(pipeline.options, write=temporary)
    interrupted = False
    counted = pipeline  # the pipeline whose decoder saw the packets counted here
    try:
        try:
            if pipeline.sharded:
                pipeline.track(sink)  # the workers track; packets are counted here
                counted = pipeline.first_pass()
                counted.options = replace(counted.options, read_ahead=False)
                for b in counted.packets():
                    on_packets(b)
            else:
                pipeline.track(sink, on_packets=on_packets, on_columns=on_columns)
        except KeyboardInterrupt:
            interrupted = True
        ports.not_counted.update(pipeline.not_counted)
        chosen = conns.connections(pick_rows(
            conns.texts("outcome"), conns.texts("proto"), conns.numbers("resp_p"),
            conns.numbers("ts_ns"), ladder_limit))
        drawn = {}
        if chosen and not interrupted:
            second = _second_pass(pipeline)
            second.options = replace(second.options, read_ahead=False)  # its frames only
            if pair_frames is not None and not any(counted.fragment_counters.values()):
                # no fragment reached the reassembler, the decoder's only state across frames:
                # a frame decodes alike without the frames before it; the few decoded rows
                # are held, so the chunks read can be larger (fewer steps of the pass)
                second.options = replace(second.options, frames=pair_frames.frames(chosen),
                                         chunk_bytes=max(second.options.chunk_bytes,
                                                         LADDER_CHUNK_BYTES))
            drawn = ladders(chosen, second.packets(), pipeline.options.tracker)
            for message in second.errors:
                pipeline.error(message)
        interface = pipeline.source.live.interface if pipeline.source.live else None
        live = None
        if pipeline.live_session is not None:
            c = pipeline.live_session.counters
            live = {"interface": interface, "packets": c.packets, "received": c.received,
                    "dropped_by_kernel": c.dropped, "dropped_by_portlens": c.buffer_dropped}
        files = [f.record() for f in pipeline.files] if interface is None else []
        names = sources or (list(pipeline.source.files) if interface is None else
                            [f"-i {interface}"])
        return ReportInput(
            sources=names, stats=stats, ports=ports, handshakes=handshakes,
            talkers=talkers, rates=rates, conns=conns, ladders=drawn,
            ladder_limit=ladder_limit, files=files, live=live,
            errors=list(pipeline.errors), warnings=list(pipeline.warnings)), interrupted
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                Path(temporary).unlink()


def _second_pass(pipeline: Pipeline) -> Pipeline:
    """The ladders' pass: the same files and selection, writing nothing; for a live capture,
    the file it was written to (its packets are the selected ones already, so -c is not
    applied again)."""
    if not pipeline.source.is_live:
        return pipeline.first_pass()
    assert pipeline.options.write is not None
    return Pipeline(Source(files=(os.fspath(pipeline.options.write),)),
                    replace(pipeline.options, write=None, count=None))
