"""The backlog of a live capture: captured batches waiting for the analysis, in memory first,
then on disk.

The capture thread must empty the kernel ring whatever the analysis is doing, or the kernel
drops packets. When traffic comes faster than portlens analyses it, the difference has to wait
somewhere. Memory alone only delays the loss (a sustained 200 k packets/s outruns any sane
buffer within seconds), so past ``memory_limit`` the batches are appended to an unlinked
temporary file and read back in order: the analysis falls behind, visibly, but loses nothing
until ``disk_limit`` is reached. This is tcpdump -w followed by an offline run, done in one
process with the live view showing how far behind it is.

Order is strict: batches come out exactly in the order they went in, whichever side held them.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from portlens.sources.closing import Closing
from portlens.sources.frames import FrameBatch
from portlens.sources.live import LiveCaptureError

# The columns of a FrameBatch after its data, in the order they are written, with their dtypes.
_COLUMNS = (("offset", np.int64), ("caplen", np.uint32), ("wirelen", np.uint32),
            ("ts_ns", np.int64), ("linktype", np.uint16), ("interface", np.uint16),
            ("frame", np.int64))
_PER_FRAME = sum(np.dtype(t).itemsize for _, t in _COLUMNS)
_TRUNCATE_ABOVE = 64 << 20
"""When the disk backlog empties, a file grown past this is cut back to free the disk."""


class SpoolError(LiveCaptureError):
    """The spool file cannot be created or read back; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class _OnDisk:
    """A batch written to the spool file at ``pos``: ``data_bytes`` of frame data, then the
    per-frame columns of ``count`` frames."""

    pos: int
    count: int
    data_bytes: int

    @property
    def size(self) -> int:
        return self.data_bytes + self.count * _PER_FRAME


class Spool(Closing):
    """A FIFO of FrameBatches for one producer (the capture thread) and one consumer (the
    analysis), bounded by ``memory_limit`` bytes in memory plus ``disk_limit`` bytes on disk.

    ``put`` never blocks: it refuses a batch (returns False, the caller counts the packets as
    dropped) only when both sides are full. ``disk_limit=0`` keeps everything in memory; the
    disk part never takes more than half the space its file system has free at the start.
    """

    def __init__(self, memory_limit: int, disk_limit: int = 0,
                 directory: str | None = None) -> None:
        self.memory_limit = memory_limit
        self.disk_limit = disk_limit
        self.memory_bytes = 0
        """Bytes of the batches waiting in memory."""
        self.disk_bytes = 0
        """Bytes of the batches waiting in the spool file."""
        self.spilled_packets = 0
        """Packets that have waited on disk, in all."""
        self.disk_error: str | None = None
        """Why the disk stopped taking batches (e.g. no space left), once it has."""
        self._entries: deque[FrameBatch | _OnDisk | None] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._write_pos = 0
        self._writing = False
        """A spill is under way at ``_write_pos``: the file must not be rewound meanwhile."""
        self._file: IO[bytes] | None = None
        if disk_limit > 0:
            # Created now, before any privilege drop, and unlinked at once (O_TMPFILE where
            # the file system has it): only this process can read what was captured.
            where = directory or tempfile.gettempdir()
            try:
                # Lives as long as the spool; close() closes it.
                self._file = tempfile.TemporaryFile(  # noqa: SIM115
                    dir=where, prefix="portlens-spool-")
            except OSError as exc:
                raise SpoolError(f"cannot create the spool file in {where}: "
                                 f"{exc.strerror or exc}") from None
            # Never more than half the space free now: /tmp is often a tmpfs, in memory.
            fs = os.fstatvfs(self._file.fileno())
            self.disk_limit = min(disk_limit, fs.f_bavail * fs.f_frsize // 2)

    @property
    def backlog_bytes(self) -> int:
        return self.memory_bytes + self.disk_bytes

    def put(self, frames: FrameBatch) -> bool:
        """Queue a batch; False when it did not fit (then nothing was queued).

        An empty batch is an idle tick (it lets the analysis advance its timers): it is queued
        only when nothing else waits, and always accepted."""
        size = frames.data.nbytes
        with self._ready:
            if not len(frames):
                if not self._entries:
                    self._entries.append(frames)
                    self._ready.notify()
                return True
            if self.disk_bytes == 0 and self.memory_bytes + size <= self.memory_limit:
                self._entries.append(frames)
                self.memory_bytes += size
                self._ready.notify()
                return True
            pos = self._write_pos
            self._writing = True
        # The disk write happens outside the lock (the consumer reads only entries queued
        # before, at positions below this one) and releases the GIL while it runs.
        entry = self._spill(frames, pos)
        with self._ready:
            self._writing = False
            if entry is None:
                return False
            self._write_pos = entry.pos + entry.size
            self.disk_bytes += entry.size
            self.spilled_packets += entry.count
            self._entries.append(entry)
            self._ready.notify()
        return True

    def waiting_packets(self) -> int:
        """Packets queued and not yet taken out."""
        with self._ready:
            return sum(len(e) if isinstance(e, FrameBatch) else e.count
                       for e in self._entries if e is not None)

    def close_input(self) -> None:
        """The producer is done: ``get`` returns None once everything queued is out."""
        with self._ready:
            self._entries.append(None)
            self._ready.notify()

    def get(self, timeout: float) -> FrameBatch | None:
        """The oldest batch; None after ``close_input`` and the last batch; queue.Empty when
        nothing arrives within ``timeout`` seconds."""
        with self._ready:
            if not self._entries and not self._ready.wait_for(lambda: bool(self._entries),
                                                              timeout):
                raise queue.Empty
            entry = self._entries.popleft()
            if entry is None:
                self._entries.appendleft(None)  # stays the answer for later calls
                return None
            if isinstance(entry, FrameBatch):
                self.memory_bytes -= entry.data.nbytes
                return entry
        frames = self._read_back(entry)
        with self._ready:
            self.disk_bytes -= entry.size
            if self.disk_bytes == 0 and not self._writing:  # nothing left on disk
                self._rewind()
        return frames

    def close(self) -> None:
        """Drop whatever still waits and remove the spool file (it was never linked)."""
        with self._ready:
            self._entries.clear()
            self.memory_bytes = self.disk_bytes = 0
            if self._file is not None:
                self._file.close()
                self._file = None

    # --- the file ---------------------------------------------------------------------------

    def _spill(self, frames: FrameBatch, pos: int) -> _OnDisk | None:
        entry = _OnDisk(pos, len(frames), frames.data.nbytes)
        if (self._file is None or self.disk_error is not None
                or self.disk_bytes + entry.size > self.disk_limit):
            return None
        parts: list[npt.NDArray[Any]] = [np.ascontiguousarray(frames.data)]
        parts += [np.ascontiguousarray(getattr(frames, name), dtype=dtype)
                  for name, dtype in _COLUMNS]
        fd = self._file.fileno()
        views = [part.data.cast("B") for part in parts]
        try:
            # One system call (and one release of the GIL) for the whole batch: the capture
            # thread competes for the GIL with the analysis, and every re-acquisition costs it.
            done = os.pwritev(fd, views, pos)
            if done < entry.size:  # short write (rare on regular files): finish piece by piece
                rest = memoryview(b"".join(views))[done:]
                while rest:
                    n = os.pwrite(fd, rest, pos + done)
                    rest, done = rest[n:], done + n
        except OSError as exc:
            self.disk_error = exc.strerror or str(exc)
            return None
        return entry

    def _read_back(self, entry: _OnDisk) -> FrameBatch:
        assert self._file is not None
        data = np.empty(entry.data_bytes, dtype=np.uint8)
        columns: dict[str, Any] = {name: np.empty(entry.count, dtype=dtype)
                                   for name, dtype in _COLUMNS}
        buffers = [data, *columns.values()]
        try:
            got = os.preadv(self._file.fileno(), buffers, entry.pos)
        except OSError as exc:
            raise SpoolError(f"cannot read the spool file back: {exc.strerror or exc}"
                             ) from None
        if got != entry.size:
            raise SpoolError(f"the spool file is short: {got} of {entry.size} bytes at "
                             f"offset {entry.pos}")
        return FrameBatch(data=data, **columns)

    def _rewind(self) -> None:
        """Nothing waits on disk: write from the start again, and give big files' space back."""
        if self._write_pos > _TRUNCATE_ABOVE and self._file is not None:
            os.ftruncate(self._file.fileno(), 0)
        self._write_pos = 0
