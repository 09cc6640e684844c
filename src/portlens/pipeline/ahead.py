"""Reading and decoding in a thread of their own, a few batches ahead of the tracker.

The compiled reader, decoder and tracker all release the GIL while they work, so a second
thread that reads and decodes the next batches while the caller's thread tracks the one
before makes the two halves of the analysis run side by side when the machine has a core to
spare (docs/benchmarks.md). The batches still come out one at a time in the order the
source gives them, and a problem the source raises comes out after every batch before it,
so what the caller sees is what it would see iterating the source itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Final, Generic, TypeVar

T = TypeVar("T")

DEPTH: Final = 2
"""Batches made before the caller takes them: enough to ride out an uneven batch, few enough
that the memory in flight stays a few chunks."""

_END: Final = object()


class _Raised:
    """What the source raised, passed to the caller's thread to raise there."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Ahead(Generic[T]):
    """Iterates ``source`` in a daemon thread, ``DEPTH`` items ahead. ``close()`` (also on
    leaving a ``with`` block, or when the caller stops early) stops the thread and closes the
    source there, so its ``finally`` blocks (files closed) have run when ``close`` returns."""

    def __init__(self, source: Generator[T, None, None], depth: int = DEPTH) -> None:
        self._source = source
        self._items: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portlens-read-ahead",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Waits for room, unless the caller has stopped: False then."""
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as exc:  # passed on to the caller's thread, raised there
            self._put(_Raised(exc))
        finally:
            self._source.close()

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._items.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
