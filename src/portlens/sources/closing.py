"""One `with` behaviour for everything in sources/ that holds a file or a socket."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_C = TypeVar("_C", bound="Closing")


class Closing:
    """``with x:`` closes ``x`` on the way out, however it is left (exceptions included):
    readers, writers and live captures release their file or socket, and a writer's file is
    complete. Subclasses define ``close``; it must be safe to call twice."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
