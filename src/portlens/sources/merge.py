"""Several capture files as one stream in time order, as mergecap writes them.

mergecap keeps one record of each file at hand and always writes the earliest; within a file,
records keep their order even where time runs backwards. That rule is the same as a stable sort
of every frame by the *running maximum* of its file's timestamps (ties: the file named first,
then file order): a frame waits behind any later-stamped frame before it in its own file, and
two files compare by the heads they present. ``merged_frames`` applies it one batch at a time,
so memory stays bounded: a frame is released once every file still open has reached a later
running maximum, and a file is only opened once the merge has reached its first timestamp, so
rotated files (``tcpdump -C/-G``, ring buffers) are read one after another whatever order they
were named in.

Frames are renumbered 1, 2, 3 ... across the merged stream, as in mergecap's output file; with
one file these are the file's own frame numbers. A directory stands for the capture files in it,
told by their first bytes, not their names (``scan_directory``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np

from portlens.sources.files import CaptureError, CaptureReader, open_capture
from portlens.sources.filestats import FileStats
from portlens.sources.frames import FrameBatch

PEEK_CHUNK_BYTES: Final = 1 << 16
"""Chunk size used to read a file's first timestamp before the merge needs the file."""

MAGIC_BYTES: Final = 8
"""Bytes read from each file of a directory to tell a capture (or a compressed one)."""
_COMPRESSED: Final = ((b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"))
_PCAP_MAGICS: Final = (b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                       b"\x4d\x3c\xb2\xa1")
_PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"


def capture_kind(path: str) -> str | None:
    """What a file holds by its first bytes, not its name: "pcap", "pcapng", or either after
    the compression ("pcap.gz", "pcapng.xz", "pcap.bz2"), whose first bytes are decompressed
    to look; None for anything else (notes, logs, a capture still being written with no
    header yet, an unreadable file)."""
    try:
        with open(path, "rb") as f:
            lead = f.read(MAGIC_BYTES)
    except OSError:
        return None
    suffix = ""
    for magic, name in _COMPRESSED:
        if lead.startswith(magic):
            import bz2
            import gzip
            import lzma

            opener: Any = {"gzip": gzip.open, "xz": lzma.open, "bzip2": bz2.open}[name]
            try:
                with opener(path, "rb") as z:
                    lead = z.read(4)
            except (OSError, EOFError, lzma.LZMAError):
                return None
            suffix = {"gzip": ".gz", "xz": ".xz", "bzip2": ".bz2"}[name]
            break
    if lead[:4] in _PCAP_MAGICS:
        return "pcap" + suffix
    if lead[:4] == _PCAPNG_MAGIC:
        return "pcapng" + suffix
    return None


@dataclass
class DirectoryScan:
    """The capture files of a directory (by content) and how many other files it holds."""

    path: str
    files: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    """Capture files by kind (capture_kind), e.g. {"pcap": 10, "pcapng.gz": 2}."""
    skipped: int = 0
    """Files that are no captures (hidden files included), passed over."""

    def note(self) -> str:
        """One line saying what was taken, for stderr."""
        n = len(self.files)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items()))
        line = f"{self.path}: {n} capture file{'' if n == 1 else 's'} ({kinds})"
        if self.skipped:
            line += (f"; {self.skipped} other file{'' if self.skipped == 1 else 's'} "
                     "skipped (not pcap or pcapng by their first bytes)")
        return line


def scan_directory(path: str) -> DirectoryScan:
    """The capture files directly in ``path`` (not recursing), told by their first bytes,
    sorted by name; the merge reads them in timestamp order whatever their names."""
    scan = DirectoryScan(path)
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        kind = None if name.startswith(".") else capture_kind(full)
        if kind is None:
            scan.skipped += 1
            continue
        scan.files.append(full)
        scan.kinds[kind] = scan.kinds.get(kind, 0) + 1
    return scan


def capture_paths(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files as given; a directory stands for its capture files (scan_directory). A directory
    without captures gives nothing (the caller says so)."""
    out: list[str] = []
    for p in paths:
        path = os.fspath(p)
        if os.path.isdir(path):
            out.extend(scan_directory(path).files)
        else:
            out.append(path)
    return out


@dataclass
class _Open:
    """A file being merged: its reader, its frames not yet released, their sort keys."""

    index: int
    stats: FileStats
    reader: CaptureReader | None
    batches: Iterator[FrameBatch] | None
    pending: list[FrameBatch] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    running_max: int = -(1 << 63)
    last_ts: int | None = None
    done: bool = False

    @property
    def horizon(self) -> int:
        """Every frame this file gives from now on has a key at least this."""
        return self.running_max


def _first_timestamp(path: str, stats: FileStats) -> int | None:
    """The first frame's time, or None for a file without frames; raises CaptureError."""
    with open_capture(path, chunk_bytes=PEEK_CHUNK_BYTES) as reader:
        stats.format, stats.compression = reader.format, reader.compression
        if reader.interfaces:
            stats.linktype = reader.interfaces[0].linktype
        for batch in reader:
            if len(batch):
                return int(batch.ts_ns[0])
    return None


def merged_frames(paths: Sequence[str], on_error: Callable[[str], None],
                  stats: list[FileStats] | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  chunk_bytes: int = 8 << 20,
                  on_file_done: Callable[[FileStats], None] | None = None
                  ) -> Generator[FrameBatch, None, None]:
    """The frames of ``paths`` in mergecap's order, renumbered across the stream.

    A file that cannot be read is reported through ``on_error`` (one line, the reader's
    CaptureError text) after its good frames; the others are read all the same. ``stats``
    receives one FileStats per path, in argument order. ``progress(done, total)`` counts
    file bytes over all files; ``on_file_done(stats)`` is called as each file is read to its
    end (or its error).
    """
    if len(paths) == 1:
        yield from _single(paths[0], on_error, stats, progress, chunk_bytes, on_file_done)
        return
    files: list[_Open] = []
    starts: list[tuple[int, int]] = []
    for i, path in enumerate(paths):
        fs = FileStats(path)
        if stats is not None:
            stats.append(fs)
        try:
            first = _first_timestamp(path, fs)
        except CaptureError as exc:
            fs.error = str(exc)
            on_error(str(exc))
            continue
        f = _Open(i, fs, None, None)
        files.append(f)
        if first is not None:
            starts.append((first, i))
        else:
            f.done = True  # a valid file without frames
    starts.sort()
    waiting = [next(f for f in files if f.index == i) for _, i in starts]
    opened: list[_Open] = []
    total_bytes = sum(_size(p) for p in paths)
    finished_bytes = 0
    frame_no = 0

    def read_more(f: _Open) -> None:
        nonlocal finished_bytes
        assert f.batches is not None and f.reader is not None
        try:
            batch = next(f.batches)
        except StopIteration:
            f.done = True
        except CaptureError as exc:
            f.done = True
            f.stats.error = str(exc)
            on_error(str(exc))
        else:
            _take(f, batch)
            return
        finished_bytes += f.reader.total_bytes
        f.reader.close()
        if on_file_done is not None:
            on_file_done(f.stats)

    try:
        while waiting or any(not f.done for f in opened):
            live = [f for f in opened if not f.done]
            next_start = starts[len(starts) - len(waiting)][0] if waiting else None
            # The earliest (key, file) any unread frame can still have: what is not after it in
            # the merge order can go.
            reach = [(f.horizon, f.index) for f in live]
            if waiting:
                reach.append((starts[len(starts) - len(waiting)][0], waiting[0].index))
            out = _release(opened, min(reach))
            if out is not None:
                frame_no += len(out)
                yield _renumbered(out, frame_no - len(out))
                del out  # not kept alive while the next chunk is read
            laggard = min(live, key=lambda f: (f.horizon, f.index), default=None)
            if laggard is not None and (next_start is None or laggard.horizon < next_start):
                read_more(laggard)  # the open file that holds the merge back
            else:
                f = waiting.pop(0)
                try:
                    f.reader = open_capture(f.stats.path, chunk_bytes=chunk_bytes)
                except CaptureError as exc:  # changed since it was first looked at
                    f.done = True
                    f.stats.error = str(exc)
                    on_error(str(exc))
                    continue
                f.batches = iter(f.reader)
                opened.append(f)
                read_more(f)
            if progress is not None:
                reading = sum(f.reader.bytes_read for f in opened
                              if f.reader is not None and not f.done)
                progress(finished_bytes + reading, total_bytes)
            opened = [f for f in opened if not f.done or f.pending]
        out = _release(opened, None)
        if out is not None:
            yield _renumbered(out, frame_no)
    finally:  # also when the reader of the merge stops early (-c, a closed pipe)
        for f in opened:
            if f.reader is not None:
                f.reader.close()


def _single(path: str, on_error: Callable[[str], None], stats: list[FileStats] | None,
            progress: Callable[[int, int], None] | None, chunk_bytes: int,
            on_file_done: Callable[[FileStats], None] | None = None
            ) -> Generator[FrameBatch, None, None]:
    """One file needs no merge: its batches as they are read, opened once. A FIFO or a
    terminal's stdin cannot be read twice, so the first frame is not looked at beforehand."""
    fs = FileStats(path)
    if stats is not None:
        stats.append(fs)
    try:
        reader = open_capture(path, chunk_bytes=chunk_bytes)
    except CaptureError as exc:
        fs.error = str(exc)
        on_error(str(exc))
        return
    f = _Open(0, fs, reader, iter(reader))
    fs.format, fs.compression = reader.format, reader.compression
    if reader.interfaces:
        fs.linktype = reader.interfaces[0].linktype
    try:
        while True:
            try:
                batch = next(f.batches)  # type: ignore[arg-type]
            except StopIteration:
                if on_file_done is not None:
                    on_file_done(fs)
                return
            except CaptureError as exc:
                fs.error = str(exc)
                on_error(str(exc))
                if on_file_done is not None:
                    on_file_done(fs)
                return
            _take(f, batch)  # counted in the file's stats; frames already in file order
            f.pending.clear()
            f.keys.clear()
            if progress is not None:
                progress(reader.bytes_read, reader.total_bytes)
            if len(batch):
                yield batch
    finally:
        reader.close()


def _take(f: _Open, batch: FrameBatch) -> None:
    """Queue a batch of the file, with its running-maximum keys, and count it."""
    n = len(batch)
    if not n:
        return
    ts = batch.ts_ns
    s = f.stats
    s.frames += n
    if f.reader is not None:
        s.frames_cut = f.reader.frames_cut
    s.wire_bytes += int(batch.wirelen.sum(dtype=np.int64))
    before = f.running_max
    keys = np.maximum.accumulate(np.concatenate([[before], ts]))[1:]
    back = ts < np.concatenate([[before], keys[:-1]])
    if f.last_ts is None:
        back[0] = False
        s.first_ns = int(ts[0])
    if back.any():
        prev = np.concatenate([[before], keys[:-1]])
        s.backwards += int(back.sum())
        s.largest_step_back_ns = max(s.largest_step_back_ns, int((prev - ts)[back].max()))
        if s.first_backwards_frame is None:
            s.first_backwards_frame = int(batch.frame[np.flatnonzero(back)[0]])
    f.running_max = int(keys[-1])
    f.last_ts = int(ts[-1])
    s.last_ns = f.last_ts if s.last_ns is None else max(s.last_ns, int(ts.max()))
    s.first_ns = min(s.first_ns if s.first_ns is not None else int(ts.min()), int(ts.min()))
    f.pending.append(batch)
    f.keys.append(keys)


def _release(files: list[_Open], upto: tuple[int, int] | None) -> FrameBatch | None:
    """The pending frames at or before ``upto`` (key, file index) in merge order (all with
    None). A frame of a file named before ``upto``'s may share its key; one named after may
    not, since that file's frame comes first."""
    parts: list[tuple[int, FrameBatch, np.ndarray]] = []
    for f in files:
        while f.pending:
            batch, keys = f.pending[0], f.keys[0]
            if upto is None:
                cut = len(keys)
            else:
                side: Literal["left", "right"] = "right" if f.index <= upto[1] else "left"
                cut = int(np.searchsorted(keys, upto[0], side))
            if cut == 0:
                break
            if cut == len(keys):
                f.pending.pop(0)
                f.keys.pop(0)
                parts.append((f.index, batch, keys))
                continue
            parts.append((f.index, batch.take(slice(0, cut)), keys[:cut]))
            f.pending[0], f.keys[0] = batch.take(slice(cut, None)), keys[cut:]
            break
    if not parts:
        return None
    if len({i for i, _, _ in parts}) == 1:
        batches = [b for _, b, _ in parts]
        return batches[0] if len(batches) == 1 else _concat(batches)
    # Several files: a stable sort by (key, file), each file's frames already in order.
    merged = _concat([b for _, b, _ in parts])
    keys = np.concatenate([k for _, _, k in parts])
    index = np.concatenate([np.full(len(k), i, dtype=np.int64) for i, _, k in parts])
    order = np.lexsort((index, keys))
    return merged.take(order)


def _concat(batches: list[FrameBatch]) -> FrameBatch:
    """One batch over one new buffer holding the frames of all (the frames are copied)."""
    if len(batches) == 1:
        return batches[0]
    datas, offsets = [], []
    base = 0
    for b in batches:
        lengths = b.caplen.astype(np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # Byte j of the new buffer comes from data[offset[i] + (j - starts[i])] of frame i.
        gather = np.repeat(b.offset - starts, lengths) + np.arange(int(ends[-1]) if len(b)
                                                                   else 0)
        datas.append(b.data[gather])
        offsets.append(starts + base)
        base += int(ends[-1]) if len(b) else 0
    return FrameBatch(
        data=np.concatenate(datas), offset=np.concatenate(offsets).astype(np.int64),
        caplen=np.concatenate([b.caplen for b in batches]),
        wirelen=np.concatenate([b.wirelen for b in batches]),
        ts_ns=np.concatenate([b.ts_ns for b in batches]),
        linktype=np.concatenate([b.linktype for b in batches]),
        interface=np.concatenate([b.interface for b in batches]),
        frame=np.concatenate([b.frame for b in batches]))


def _renumbered(batch: FrameBatch, before: int) -> FrameBatch:
    """The batch with its frames numbered on from ``before``."""
    numbers = np.arange(before + 1, before + len(batch) + 1, dtype=np.int64)
    if np.array_equal(batch.frame, numbers):
        return batch
    return replace(batch, frame=numbers)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
