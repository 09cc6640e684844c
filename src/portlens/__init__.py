"""portlens: a packet-level analyzer of TCP/UDP ports, sockets and connections."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`portlens.open(...)`, `portlens.analyze(...)` without importing numpy for
    `portlens --help`."""
    if name in ("open", "analyze", "packets", "capture_stats"):
        from portlens import api

        return getattr(api, name)
    raise AttributeError(f"module 'portlens' has no attribute {name!r}")
