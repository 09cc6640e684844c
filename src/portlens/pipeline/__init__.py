"""The one wiring of portlens: source -> decode -> select -> track -> connections.

The CLI, the Python API (``portlens.open``), the worker processes of a sharded run and live
capture all read packets through :class:`Pipeline`; nothing else joins the layers. The decode
and track steps are made by ``new_decoder`` and ``new_tracker`` (pipeline/stages.py), the seams
where the compiled core plugs in.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portlens.pipeline.run import (
        ConnectionNotFoundError,
        Options,
        Pipeline,
        Source,
        WriteError,
    )
    from portlens.pipeline.select import Selection, Selector, connection_rows, parse_time
    from portlens.pipeline.stages import Decoder, Tracker, new_decoder, new_tracker

_HOME = {
    "ConnectionNotFoundError": "run", "Options": "run", "Pipeline": "run", "Source": "run",
    "WriteError": "run", "Selection": "select", "Selector": "select",
    "connection_rows": "select", "parse_time": "select", "Decoder": "stages",
    "Tracker": "stages", "new_decoder": "stages", "new_tracker": "stages",
}


def __getattr__(name: str) -> Any:
    """Every name imported when first asked for, so that a run imports only the stages it
    uses: `packets --stats` of one file needs neither the selection (numpy), the decoder nor
    the trackers."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"portlens.pipeline.{module}"), name)


__all__ = [
    "ConnectionNotFoundError",
    "Decoder",
    "Options",
    "Pipeline",
    "Selection",
    "Selector",
    "Source",
    "Tracker",
    "WriteError",
    "connection_rows",
    "new_decoder",
    "new_tracker",
    "parse_time",
]
