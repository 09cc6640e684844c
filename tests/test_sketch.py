"""The RTT sketch's bucket counts (analysis/sketch.py ``_bucket_counts``): with numpy's one
log for many values, or value by value where numpy is not imported (`ports` and `handshakes`
of a file never import it), the counts are ``_bucket`` of each value, exactly."""

from __future__ import annotations

import random
import sys
from collections import Counter

import pytest

from portlens.analysis import sketch


def values() -> list[int]:
    rng = random.Random(7)
    # values on and beside bucket edges (γ^i), where numpy's log may round the other way
    edges = [round(sketch.GAMMA ** i) + d for i in range(0, 2000, 7) for d in (-1, 0, 1)]
    return [*edges, 0, -5, *(rng.randrange(1, 10**12) for _ in range(5000))]


@pytest.mark.parametrize("numpy_loaded", [True, False])
def test_bucket_counts_are_each_values_bucket(numpy_loaded: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401  (loaded, as in a run that read columns)

    if not numpy_loaded:
        monkeypatch.delitem(sys.modules, "numpy")
    v = values()
    assert len(v) >= sketch._MANY
    assert sketch._bucket_counts(v) == Counter(map(sketch._bucket, v))
