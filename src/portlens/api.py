"""The Python entry point: ``portlens.open(source)``, in the spirit of nfstream's
``NFStreamer(source=...)``; the command line reads packets through the same pipeline.

    >>> import portlens
    >>> cap = portlens.open("captures/loopback-sample.pcap", filter="tcp")
    >>> cap.ports().to_pandas()[["proto", "port", "conns", "completed"]]
    >>> for c in cap.connections():
    ...     print(c.uid, c.conn_state, c.history)

``source`` is a capture file (str or Path), a list of them, a directory (the captures in it),
or an interface (``interface="eth0"``, or a name that is no file but an interface). Several
files are one stream in time order, as mergecap would write them. Each view has
``records()`` (exactly the objects of the command's ``--json``) and ``to_pandas()`` (the same
names as columns; times ``datetime64[ns, UTC]``, durations ``timedelta64[ns]``, missing values
``pd.NA``/``NaT``: report/dataframes.py).

Connections are tracked once per ``Capture`` and kept: ``ports()``, ``handshakes()``,
``sockets()``, ``connections()`` and ``events()`` share that pass. ``packets()`` reads the
files again each time it is iterated (a live interface is captured once: by the first view
asked for).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from portlens.analysis.capture_stats import CaptureStats
from portlens.analysis.combined import Analysis
from portlens.analysis.handshakes import HandshakeTable
from portlens.analysis.ports import PortSummary, PortTable
from portlens.analysis.sockets import SocketTable
from portlens.decode.packets import PacketBatch
from portlens.pipeline import Options, Pipeline, Source, parse_time
from portlens.report import dataframes
from portlens.report.conns import record as conn_record
from portlens.report.conns import transition_record
from portlens.report.packets import iter_rows
from portlens.report.packets import record as packet_record
from portlens.sources.files import CaptureError
from portlens.sources.filestats import FileStats
from portlens.track.config import TrackerConfig
from portlens.track.model import Connection, Transition

PathLike = str | os.PathLike[str]
TimeLike = str | int | float | dt.datetime


def open(source: PathLike | Sequence[PathLike] | None = None, *,
         interface: str | None = None, filter: str | None = None,
         workers: int = 1, count: int | None = None, start: TimeLike | None = None,
         end: TimeLike | None = None, conn: str | None = None,
         config: TrackerConfig | None = None, reference: bool = False,
         duration: float | None = None, dask: str | None = None) -> Capture:
    """Open a capture (files, a directory, or an interface) for analysis.

    ``filter`` is a tcpdump expression (raises portlens.filter.FilterError); ``count`` keeps
    the first N selected packets; ``start``/``end`` a time window [start, end) given as ISO 8601
    text, epoch seconds or a datetime; ``conn`` the packets of one connection (by uid);
    ``workers`` tracks with that many processes; ``dask`` on a Dask cluster (a scheduler
    address, or "local" for a local cluster of ``workers`` processes: docs/scale.md), with the
    same result; ``config`` sets timeouts and the rest of
    the tracker's options; ``duration`` (seconds) ends a live capture (so do ``count`` and
    Ctrl-C); ``reference`` decodes and tracks with the slow Python reference implementations
    instead of the compiled core (for cross-checking).
    """
    src = Source.of(source, interface=interface)
    if duration is not None:
        if src.live is None:
            raise ValueError("duration is for a live capture (interface=)")
        src = Source(live=replace(src.live, duration=duration))
    options = Options(filter=filter, start_ns=_time_ns(start), end_ns=_time_ns(end),
                      count=count, conn=conn, tracker=config or TrackerConfig(),
                      workers=workers, dask=dask, reference=reference)
    if workers < 1:
        raise ValueError("workers must be at least 1")
    return Capture(Pipeline(src, options))


def _time_ns(value: TimeLike | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.astimezone()
        delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, (int, float)):
        return int(Decimal(str(value)) * 1_000_000_000)
    return parse_time(value)


class Capture:
    """A source opened for analysis (what ``portlens.open`` returns)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._connections: list[Connection] | None = None
        self._events: list[Transition] | None = None

    @property
    def errors(self) -> list[str]:
        """Input problems met so far, one line each (reading went on past them)."""
        return self.pipeline.errors

    @property
    def warnings(self) -> list[str]:
        """E.g. time running backwards inside a file."""
        return self.pipeline.warnings

    @property
    def files(self) -> list[FileStats]:
        """Per-file counts of the last pass over the files."""
        return self.pipeline.files

    def _raise_errors(self) -> None:
        if self.pipeline.errors:
            raise CaptureError("; ".join(self.pipeline.errors))

    def packets(self) -> Packets:
        """The decoded, selected packets (columnar batches; ``to_pandas()``: one row each)."""
        return Packets(self)

    def _track(self) -> None:
        if self._connections is not None:
            return
        conns: list[Connection] = []
        events: list[Transition] = []
        o = self.pipeline.options
        single = o.workers == 1 and o.dask is None  # one tracker: its transitions in order
        self.pipeline.track(conns.append, events.append if single else None)
        self._connections = conns
        self._events = events if single else None
        self._raise_errors()

    def connections(self) -> Connections:
        """Every connection, in the order they ended (Zeek's conn.log order)."""
        self._track()
        assert self._connections is not None
        return Connections(self._connections)

    def events(self) -> Events:
        """Every TCP endpoint state transition, in capture order."""
        self._track()
        if self._events is None:  # tracked by workers: follow transitions in one process
            events: list[Transition] = []
            single = Pipeline(self.pipeline.source, _one_process(self.pipeline.options))
            single.track(lambda _c: None, events.append)
            self._events = events
        return Events(self._events)

    def ports(self, *, all_ports: bool = False) -> Ports:
        """The `portlens ports` table."""
        table = PortTable(all_ports=all_ports).update(self.connections())
        table.not_counted.update(self.pipeline.not_counted)
        return Ports(table)

    def handshakes(self) -> Handshakes:
        return Handshakes(HandshakeTable().update(self.connections()))

    def sockets(self) -> Sockets:
        return Sockets(SocketTable().update(self.connections()))

    def report(self, path: PathLike | None = None, *, ladders: int | None = None,
               title: str | None = None) -> str:
        """The `portlens report` page of the source (one self-contained HTML document), also
        written to ``path`` when given. It reads the source afresh (its own passes: the
        connections, the packets' counts, the ladders' packets); on an interface it captures,
        as long as ``duration``/``count`` of ``open`` say. ``ladders``: embed at most this many
        connections' ladders (default 250)."""
        from portlens.pipeline.report import DEFAULT_LADDERS, collect_report
        from portlens.report.html import render

        limit = DEFAULT_LADDERS if ladders is None else ladders
        if limit < 0:
            raise ValueError("ladders must be 0 or more")
        pipeline = Pipeline(self.pipeline.source, replace(self.pipeline.options, checksums=True))
        data, _ = collect_report(pipeline, ladder_limit=limit)
        if pipeline.errors:
            raise CaptureError("; ".join(pipeline.errors))
        text = render(data, title)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def analyze(self) -> Analysis:
        """Every summary at once (one object, mergeable with ``+``)."""
        result = Analysis(ports=PortTable())
        for c in self.connections():
            result.add(c)
        result.events = list(self.events())
        result.ports.not_counted.update(self.pipeline.not_counted)
        return result


def _one_process(options: Options) -> Options:
    return replace(options, workers=1, dask=None)


class Packets:
    """Iterate for PacketBatch (columns); ``records()`` for `packets --json` objects."""

    def __init__(self, capture: Capture) -> None:
        self._capture = capture

    def __iter__(self) -> Iterator[PacketBatch]:
        yield from self._capture.pipeline.packets()
        self._capture._raise_errors()

    def records(self) -> Iterator[dict[str, Any]]:
        for batch in self:
            for row in iter_rows(batch):
                yield packet_record(row)

    def stats(self) -> CaptureStats:
        """The `packets --stats` summary."""
        stats = CaptureStats()
        self._capture.pipeline.count_stats(stats)
        self._capture._raise_errors()
        return stats

    def to_pandas(self) -> Any:
        """One row per packet: the `packets --json` keys as columns (nested ones dotted:
        ``quoted.sport``, ``checksum.tcp``)."""
        return dataframes.packets_frame(self)


class Connections(Sequence[Connection]):
    def __init__(self, conns: list[Connection]) -> None:
        self._conns = conns

    def __len__(self) -> int:
        return len(self._conns)

    def __getitem__(self, i: Any) -> Any:
        return self._conns[i]

    def records(self) -> list[dict[str, Any]]:
        """The `conns --json` objects."""
        return [conn_record(c) for c in self._conns]

    def to_pandas(self) -> Any:
        """One row per connection: the `conns --json` keys (``handshake.*``, ``analysis.*``
        dotted); the transitions are ``events().to_pandas()``."""
        return dataframes.from_records((conn_record(c) for c in self._conns),
                                       columns=CONN_COLUMNS, drop=("transitions",))


CONN_COLUMNS = ("ts", "ts_ns", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
                "proto", "ip_proto", "service", "duration", "duration_ns", "orig_bytes",
                "resp_bytes", "conn_state", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
                "resp_pkts", "resp_ip_bytes")
"""Present even in an empty result."""


class Events(Sequence[Transition]):
    def __init__(self, events: list[Transition]) -> None:
        self._events = events

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, i: Any) -> Any:
        return self._events[i]

    def records(self) -> list[dict[str, Any]]:
        """The `events --json` objects."""
        return [transition_record(t) for t in self._events]

    def to_pandas(self) -> Any:
        return dataframes.from_records(self.records(), columns=(
            "ts_ns", "frame", "uid", "endpoint", "event", "from", "to", "flags", "flags_text",
            "seq", "ack", "payload"))


class Ports:
    """The per-port table (``.table``); ``.total`` is the totals row, kept apart."""

    def __init__(self, table: PortTable) -> None:
        self.table = table

    def __iter__(self) -> Iterator[PortSummary]:
        return iter(self.table.sorted())

    def __len__(self) -> int:
        return len(self.table)

    @property
    def total(self) -> PortSummary:
        return self.table.total

    def records(self, by: str = "conns", top: int | None = None) -> list[dict[str, Any]]:
        """The `ports --json` port rows (the totals are ``total.record()``)."""
        return self.table.records(by, top)

    def to_pandas(self, by: str = "conns") -> Any:
        from portlens.analysis.ports import OUTCOMES

        return dataframes.from_records(self.records(by), columns=(
            "proto", "port", "ip_proto", "service", "class", "role", "conns", *OUTCOMES))


class Handshakes:
    def __init__(self, table: HandshakeTable) -> None:
        self.table = table

    def __iter__(self) -> Iterator[Any]:
        return iter(self.table.sorted())

    def __len__(self) -> int:
        return len(self.table)

    def records(self) -> list[dict[str, Any]]:
        """The `handshakes --json` rows (per server port)."""
        return self.table.records()

    def to_pandas(self) -> Any:
        return dataframes.from_records(self.records(), columns=("port", "handshakes"))


class Sockets:
    """Listening sockets and connection ends; ``type`` tells them apart, as in the JSON."""

    def __init__(self, table: SocketTable) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.listener_count() + self.table.socket_count()

    def records(self) -> list[dict[str, Any]]:
        from portlens.report.sockets import json_records

        return json_records(self.table)

    def to_pandas(self) -> Any:
        return dataframes.from_records(self.records(), columns=(
            "type", "proto", "state", "local_addr", "local_port", "peer_addr", "peer_port",
            "uid", "side", "conns", "peers", "peer_addrs"))


# --- the entry points of earlier versions, kept working --------------------------------------

def packets(paths: PathLike | Iterable[PathLike], *, reference: bool = False
            ) -> Iterator[PacketBatch]:
    """Decoded batches of the files as one stream (a single path may be a str); raises
    CaptureError on bad input, after yielding what was read before the problem."""
    yield from open(_paths(paths), reference=reference).packets()


def capture_stats(paths: PathLike | Iterable[PathLike]) -> CaptureStats:
    """The `packets --stats` summary of files, as an object."""
    return open(_paths(paths)).packets().stats()


def analyze(paths: PathLike | Iterable[PathLike], *, filter: str | None = None,
            config: TrackerConfig | None = None, all_ports: bool = False) -> Analysis:
    """Track the files as one stream and summarize (``open(paths).analyze()``).

        >>> result = api.analyze("captures/tcp-session.pcap")
        >>> result.ports.get("tcp", 80).outcomes
        Counter({'completed': 1})
    """
    cap = open(_paths(paths), filter=filter, config=config)
    result = cap.analyze()
    if all_ports:
        result.ports = cap.ports(all_ports=True).table
    return result


def _paths(paths: PathLike | Iterable[PathLike]) -> list[PathLike]:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return [Path(p) if isinstance(p, os.PathLike) else p for p in paths]
