"""The one wiring of portlens: source -> decode -> select -> track -> connections.

The CLI, the Python API (``portlens.open``), the worker processes of a sharded run and live
capture all read packets through :class:`Pipeline`; nothing else joins the layers. The decode
and track steps are made by ``new_decoder`` and ``new_tracker`` (pipeline/stages.py), the seams
where the compiled core plugs in.
"""

from portlens.pipeline.run import ConnectionNotFoundError, Options, Pipeline, Source, WriteError
from portlens.pipeline.select import Selection, Selector, connection_rows, parse_time
from portlens.pipeline.stages import Decoder, Tracker, new_decoder, new_tracker

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
