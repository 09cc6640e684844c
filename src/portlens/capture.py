"""A live capture as the reports see it: decoded batches from an interface, until a packet
count, a duration or a signal ends it, with what was analysed written to -w as it comes.

The capture layer (sources/live.py) delivers frames; this session adds what a user's run needs
around it: the kernel filter and the same filter in user space (so files and interfaces select
the same packets), the privilege drop right after the socket opens, the -w file flushed after
every batch and closed on every way out, and Ctrl-C / SIGTERM turned into a clean stop so the
final report is printed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np

from portlens.decode import Decoder
from portlens.decode.packets import PacketBatch
from portlens.filter import PacketFilter
from portlens.sources import linktypes
from portlens.sources.frames import FrameBatch
from portlens.sources.live import CaptureStats, LiveCapture, drop_privileges
from portlens.sources.spool import Spool, SpoolError
from portlens.sources.writer import PcapngWriter, PcapWriter

DLT_NAMES = {
    linktypes.ETHERNET: "EN10MB (Ethernet)",
    linktypes.LINUX_SLL: "LINUX_SLL (Linux cooked v1)",
    linktypes.LINUX_SLL2: "LINUX_SLL2 (Linux cooked v2)",
    linktypes.RAW: "RAW (Raw IP)",
}
"""libpcap's DLT name and description, as tcpdump's "listening on" line shows them."""


@dataclass(frozen=True)
class LiveOptions:
    interface: str
    snaplen: int = 262144
    kernel_filter: str | None = None
    count: int | None = None
    """Stop after this many packets analysed (after filtering)."""
    duration: float | None = None
    """Stop after this many seconds."""
    write: Path | None = None
    pcapng: bool = False
    backend: str = "auto"
    user: str | None = None
    """Drop root privileges to this user once the socket is open (tcpdump's -Z)."""
    buffer_bytes: int = 512 << 20
    """Packets captured but not yet analysed may wait up to this many bytes in memory."""
    spool_bytes: int = 8 << 30
    """Past ``buffer_bytes``, up to this many more wait on disk (0: never; drop instead)."""
    spool_dir: str | None = None
    """Where the (unlinked) spool file lives; the system's temporary directory by default."""
    ring_mb: int = 128
    """The kernel ring, in 1 MiB blocks: what arrives while the analysis pauses."""
    checksums: bool = True
    """Verify checksums while decoding (cli.common.wants_checksums says who needs them)."""


@dataclass
class LiveCounters:
    """What the session has seen so far, for the live view and the final line."""

    started: float = 0.0
    """time.monotonic() at the start (for rates)."""
    started_ns: int = 0
    """The wall clock at the start, ns since 1970 (for the live view's header)."""
    packets: int = 0
    bytes: int = 0
    received: int = 0
    dropped: int = 0
    ring_full: int = 0
    """How often the kernel found the capture ring full (packets then count as dropped)."""
    written: int = 0
    buffer_dropped: int = 0
    """Packets dropped because the memory buffer and the spool were both full."""
    backlog_bytes: int = 0
    """Bytes captured and waiting for the analysis right now (memory and disk)."""
    spooled_bytes: int = 0
    """Of ``backlog_bytes``, those waiting on disk."""
    spilled: int = 0
    """Packets that waited on disk before their analysis, in all."""
    spool_error: str | None = None
    """Why the spool stopped taking packets (e.g. the disk is full), once it has."""
    behind_s: float = 0.0
    """How far the analysis lags the capture: now minus the capture time of the packets
    being analysed (0 when it keeps up)."""
    abandoned: int = 0
    """Packets captured but given up unanalysed by a second Ctrl-C."""
    stopped_by: str = ""


class LiveSession:
    """Iterate :meth:`batches` once; the capture and the -w file are closed when it ends."""

    def __init__(self, options: LiveOptions, packet_filter: PacketFilter | None = None) -> None:
        self.options = options
        self.packet_filter = packet_filter
        self.counters = LiveCounters()
        # Opening the socket raises LiveCaptureError (privileges, interface, filter) here,
        # before anything else happens.
        self._abort = False
        self._error: Exception | None = None
        self.capture = LiveCapture(options.interface, snaplen=options.snaplen,
                                   bpf=options.kernel_filter, block_size=1 << 20,
                                   block_count=options.ring_mb,
                                   backend=options.backend)  # type: ignore[arg-type]
        try:
            self.spool = Spool(options.buffer_bytes, options.spool_bytes, options.spool_dir)
        except SpoolError:
            self.capture.close()
            raise
        if options.user:
            drop_privileges(options.user)

    def stop(self, reason: str = "stopped") -> None:
        if not self.counters.stopped_by:
            self.counters.stopped_by = reason
        self.capture.stop()

    def readiness_line(self) -> str:
        """tcpdump's "listening on" line, printed once the socket is open, filtered and read:
        from then on every packet is captured (scripts and tests wait for it, not a sleep)."""
        kind = DLT_NAMES.get(self.capture.linktype) or linktypes.name(self.capture.linktype)
        return (f"listening on {self.options.interface}, link-type {kind}, "
                f"snapshot length {self.options.snaplen} bytes")

    def kernel_stats(self) -> CaptureStats:
        return self.capture.stats()

    def batches(self) -> Iterator[PacketBatch]:
        """Decoded, filtered batches until the capture ends (count, duration, signal).

        A thread drains the kernel ring into the spool as fast as packets come, so traffic
        faster than the analysis is kept, not dropped by the kernel: in memory up to
        ``buffer_bytes``, then on disk up to ``spool_bytes``; the analysis catches up
        afterwards. Only when both are full are packets dropped (counted as
        ``buffer_dropped``). On Ctrl-C the waiting packets are still analysed (and written);
        a second Ctrl-C gives them up (counted as ``abandoned``).
        """
        opts = self.options
        counters = self.counters
        counters.started = time.monotonic()
        counters.started_ns = time.time_ns()
        writer = self._open_writer()
        decoder = Decoder(checksums=opts.checksums)
        spool = self.spool
        drainer = threading.Thread(target=self._drain, daemon=True, name="portlens-capture")

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.counters.stopped_by:
                self._abort = True
            self.stop(signal.Signals(signum).name)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        deadline = None if opts.duration is None else counters.started + opts.duration
        # The capture thread takes the GIL back from the analysis within 1 ms instead of 5:
        # at 400 k packets/s the kernel ring fills while it waits.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, 0.001))
        drainer.start()
        print(self.readiness_line(), file=sys.stderr, flush=True)
        announced = False
        try:
            while not self._abort:
                if deadline is not None and time.monotonic() >= deadline:
                    self.stop("duration")
                if not announced and counters.stopped_by in ("SIGINT", "SIGTERM"):
                    announced = True
                    self._announce_backlog()
                try:
                    frames = spool.get(timeout=0.1)
                except queue.Empty:
                    frames = FrameBatch.empty()  # nothing arrived: the caller keeps control
                if frames is None:
                    break
                counters.backlog_bytes = spool.backlog_bytes
                counters.spooled_bytes = spool.disk_bytes
                counters.spilled = spool.spilled_packets
                counters.spool_error = spool.disk_error
                if len(frames) == 0:
                    counters.behind_s = 0.0
                    yield PacketBatch.allocate(0)
                    continue
                counters.behind_s = max(time.time() - int(frames.ts_ns[-1]) / 1e9, 0.0)
                batch = decoder.decode(frames)
                keep = None
                if self.packet_filter is not None:
                    mask = self.packet_filter.mask(batch)
                    if not mask.all():
                        keep = np.flatnonzero(mask)
                if opts.count is not None:
                    left = opts.count - counters.packets
                    index = keep if keep is not None else np.arange(len(batch))
                    if index.size >= left:
                        keep = index[:left]
                        self.stop("count")
                if keep is not None:
                    batch = batch.take(keep)
                    frames = frames.take(keep)
                if len(batch):
                    counters.packets += len(batch)
                    counters.bytes += int(batch.wirelen.sum())
                    if writer is not None:
                        writer.write_batch(frames)
                        writer.flush()
                        counters.written += len(frames)
                yield batch
                if counters.stopped_by == "count":
                    break
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            sys.setswitchinterval(switch_interval)
            self.capture.stop()
            drainer.join(timeout=5)
            if self._abort:
                counters.abandoned += spool.waiting_packets()
            spool.close()
            stats = self.capture.stats()
            counters.received, counters.dropped = stats.received, stats.dropped
            counters.ring_full = self.capture.ring_full
            if writer is not None:
                writer.close()
            self.capture.close()
        if self._error is not None:
            raise self._error

    def _announce_backlog(self) -> None:
        """After the first Ctrl-C, say that packets still wait and how to give them up, so a
        user (or a test) knows the second one now means something. Printed from the loop, not
        the signal handler, where writing to stderr could re-enter a write in progress."""
        waiting = self.spool.waiting_packets()
        if waiting:
            print(f"portlens: interrupted: analysing the {waiting} packets still waiting; "
                  "Ctrl-C again gives them up", file=sys.stderr, flush=True)

    def _drain(self) -> None:
        """The capture thread: keep the kernel ring empty, whatever the analysis is doing."""
        # Ahead of the analysis when both want a CPU (needs CAP_SYS_NICE: root without -Z).
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        try:
            for frames in self.capture:
                if self._abort:  # given up: what is still in the ring is counted, not kept
                    self.counters.abandoned += len(frames)
                    continue
                if not self.spool.put(frames):
                    self.counters.buffer_dropped += len(frames)
        except Exception as exc:  # handed to the analysing thread, raised there
            self._error = exc
        finally:
            self.spool.close_input()

    def _open_writer(self) -> PcapWriter | PcapngWriter | None:
        opts = self.options
        if opts.write is None:
            return None
        info = self.capture.interfaces[0]
        if opts.pcapng:
            return PcapngWriter(opts.write, info.linktype, name=opts.interface,
                                snaplen=opts.snaplen)
        return PcapWriter(opts.write, info.linktype, snaplen=opts.snaplen)
