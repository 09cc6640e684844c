"""pipeline/ahead.py: a source iterated in a thread gives what iterating it here gives."""

from __future__ import annotations

import threading
from collections.abc import Generator

import pytest

from portlens.pipeline.ahead import Ahead


class SourceError(Exception):
    pass


def numbers(n: int, closed: list[str], fail_at: int | None = None
            ) -> Generator[int, None, None]:
    try:
        for i in range(n):
            if i == fail_at:
                raise SourceError(f"at {i}")
            yield i
    finally:
        closed.append(threading.current_thread().name)


def test_every_item_in_order_then_the_source_closed() -> None:
    closed: list[str] = []
    with Ahead(numbers(1000, closed)) as ahead:
        assert list(ahead) == list(range(1000))
    assert closed == ["portlens-read-ahead"]


def test_a_problem_comes_after_every_item_before_it() -> None:
    closed: list[str] = []
    got: list[int] = []
    ahead = Ahead(numbers(100, closed, fail_at=37))
    with ahead, pytest.raises(SourceError, match="at 37"):
        for i in ahead:
            got.append(i)
    assert got == list(range(37))
    assert closed == ["portlens-read-ahead"]


def test_stopping_early_stops_the_thread_and_closes_the_source() -> None:
    closed: list[str] = []
    ahead = Ahead(numbers(10**9, closed))
    for i in ahead:
        if i == 5:
            break
    ahead.close()
    assert closed == ["portlens-read-ahead"]
    assert not ahead._thread.is_alive()
