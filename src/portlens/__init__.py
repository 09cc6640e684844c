"""portlens: a packet-level analyzer of TCP/UDP ports, sockets and connections."""

__version__ = "0.1.0"
