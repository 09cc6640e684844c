"""A live capture as the reports see it: decoded batches from an interface, until a packet
count, a duration or a signal ends it, with what was captured written to -w as it comes.

The capture layer (sources/live.py) delivers frames; this session adds what a user's run needs
around it: the kernel filter and the same filter in user space (so files and interfaces select
the same packets), the privilege drop right after the socket opens, the -w file written by the
capture thread (so the file keeps up with the capture, as tcpdump's does, however far behind
the analysis is) and closed on every way out, and Ctrl-C / SIGTERM turned into a clean stop so
the final report is printed.
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

from portlens.decode.packets import PacketBatch
from portlens.filter import PacketFilter
from portlens.pipeline.select import Selection, Selector
from portlens.pipeline.stages import new_decoder
from portlens.sources import linktypes
from portlens.sources.frames import FrameBatch
from portlens.sources.live import CaptureStats, LiveCapture, LiveCaptureError, drop_privileges
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
    """Stop after this many packets analysed (after filtering); -w holds as many, the first
    captured (tcpdump's -c)."""
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
    captured: int = 0
    """Packets the capture thread took from the kernel (before any user-space selection)."""
    packets: int = 0
    """Packets analysed: decoded, selected and handed to the report."""
    bytes: int = 0
    received: int = 0
    """The kernel's "received by filter" when the capture socket closed, right after the
    stop: captured + dropped + ``late`` (+ loopback duplicates removed in user space)."""
    late: int = 0
    """Packets the kernel took between the stop and the socket's close: never captured."""
    dropped: int = 0
    ring_full: int = 0
    """How often the kernel found the capture ring full (packets then count as dropped)."""
    written: int = 0
    """Packets in the -w file: written by the capture thread as they were captured."""
    write_error: str | None = None
    """Why -w stopped taking packets (one line naming the file), once it has."""
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


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler of SIGINT and SIGTERM during a capture: nothing to do (the
    signal thread acts on the wake-up byte); it only keeps the default handlers away."""


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
        self._writer: PcapWriter | PcapngWriter | None = None
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
        ``buffer_dropped``). The same thread writes -w before it queues a batch, so the file
        holds everything captured, whatever the analysis is doing. On Ctrl-C the capture
        stops (the socket closes at once, so its counts are those of the stop) and the waiting
        packets are still analysed; a second Ctrl-C gives them up (counted as ``abandoned``).
        """
        opts = self.options
        counters = self.counters
        counters.started = time.monotonic()
        counters.started_ns = time.time_ns()
        try:
            self._writer = self._open_writer()
        except OSError as exc:  # nothing captured yet: refuse to start, in one line
            self.capture.close()
            self.spool.close()
            raise LiveCaptureError(f"-w {opts.write}: {exc.strerror or exc}") from None
        decoder = new_decoder(checksums=opts.checksums)
        selector = Selector(Selection(self.packet_filter, count=opts.count))
        spool = self.spool
        drainer = threading.Thread(target=self._drain, daemon=True, name="portlens-capture")
        # Ctrl-C and SIGTERM are taken by a thread of their own, never by this one: a Python
        # handler that interrupts a write to a pipe (the report's output, read by a slow
        # consumer) makes the io module lose the rest of that write (seen: 4,000 JSON lines
        # of one batch). The signals are blocked here; the kernel delivers them to another
        # thread, whose C-level handler writes the number to the wake-up pipe; the watcher
        # reads it and stops the capture at once, whatever this thread is blocked in.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(wake_r, True)
        watcher = threading.Thread(target=self._watch_signals, args=(wake_r,), daemon=True,
                                   name="portlens-signals")
        stops = {signal.SIGINT, signal.SIGTERM}
        previous = {s: signal.signal(s, _noted) for s in stops}
        previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        deadline = None if opts.duration is None else counters.started + opts.duration
        # The capture thread takes the GIL back from the analysis within 1 ms instead of 5:
        # at 400 k packets/s the kernel ring fills while it waits.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, 0.001))
        watcher.start()
        drainer.start()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
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
                keep = selector.rows(batch)
                if keep is not None:
                    # a frame may give more rows than one (column sub): its rows go with it
                    frames = frames.take(keep if len(batch) == len(frames)
                                         else np.unique(batch.frame_index()[keep]))
                    batch = batch.take(keep)
                if selector.done:
                    self.stop("count")
                if len(frames):
                    counters.packets += len(frames)
                    counters.bytes += int(frames.wirelen.sum())
                yield batch
                if counters.stopped_by == "count":
                    break
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            signal.set_wakeup_fd(previous_wakeup)
            os.write(wake_w, b"\0")  # the watcher's end
            watcher.join(timeout=5)
            os.close(wake_w)
            os.close(wake_r)
            for s, handler in previous.items():
                signal.signal(s, handler)
            sys.setswitchinterval(switch_interval)
            self.capture.stop()
            drainer.join(timeout=5)
            if self._abort:
                counters.abandoned += spool.waiting_packets()
            spool.close()
            self.capture.close()  # already closed by the capture thread, unless it hung
            if not drainer.is_alive():  # (a capture thread still writing keeps its file)
                self._close_writer()
            stats = self.capture.stats()
            counters.received, counters.dropped = stats.received, stats.dropped
            counters.ring_full = self.capture.ring_full
            counters.late = max(0, stats.received - stats.dropped - counters.captured
                                - self.capture.duplicates_dropped)
        if self._error is not None:
            raise self._error

    def _watch_signals(self, fd: int) -> None:
        """The signal thread: each SIGINT or SIGTERM the wake-up pipe reports stops the
        capture; one after the stop gives the waiting packets up. A 0 byte ends it."""
        while True:
            try:
                got = os.read(fd, 64)
            except OSError:
                return
            for signum in got:
                if signum == 0:
                    return
                if signum not in (signal.SIGINT, signal.SIGTERM):
                    continue
                if self.counters.stopped_by:
                    self._abort = True
                self.stop(signal.Signals(signum).name)

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
        counters = self.counters
        try:
            for frames in self.capture:
                counters.captured += len(frames)
                self._record(frames)
                if self._abort:  # given up: what is still in the ring is counted, not kept
                    counters.abandoned += len(frames)
                    continue
                if not self.spool.put(frames):
                    counters.buffer_dropped += len(frames)
        except Exception as exc:  # handed to the analysing thread, raised there
            self._error = exc
        finally:
            # The capture has ended (stop, count, error): close the socket now, so that its
            # counts stop at the stop and packets arriving later are neither received nor
            # dropped; then the file is complete whatever the analysis still has to do.
            self.capture.close()
            self._close_writer()
            self.spool.close_input()

    def _record(self, frames: FrameBatch) -> None:
        """-w: the captured frames, flushed with every batch (a reader of the file sees whole
        records, as with tcpdump -U); with -c N, the first N. A write that fails (a full disk)
        ends the file, not the capture: the error is kept for the closing lines."""
        writer = self._writer
        if writer is None or not len(frames):
            return
        count = self.options.count
        if count is not None:
            room = count - self.counters.written
            if room <= 0:
                return
            if room < len(frames):
                frames = frames.take(np.arange(room))
        try:
            writer.write_batch(frames)
            writer.flush()
        except OSError as exc:
            self.counters.write_error = (f"-w {self.options.write}: {exc.strerror or exc} "
                                         f"after {self.counters.written} packets")
            self._writer = None
            with contextlib.suppress(OSError):
                writer.close()
            return
        self.counters.written += len(frames)

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except OSError as exc:
            self.counters.write_error = (f"-w {self.options.write}: {exc.strerror or exc} "
                                         f"after {self.counters.written} packets")

    def _open_writer(self) -> PcapWriter | PcapngWriter | None:
        opts = self.options
        if opts.write is None:
            return None
        info = self.capture.interfaces[0]
        if opts.pcapng:
            return PcapngWriter(opts.write, info.linktype, name=opts.interface,
                                snaplen=opts.snaplen)
        return PcapWriter(opts.write, info.linktype, snaplen=opts.snaplen)
