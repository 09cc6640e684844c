"""The pure-Python reference implementations: slow, obvious, and the oracle of the tests.

* :mod:`portlens.reference.decode`: the per-packet decoder (``decode_reference``) and
  :mod:`portlens.reference.fragments`, its reassembler; ``Decoder(reference=True)`` (and
  ``--reference`` on the command line) decodes with them.
* :mod:`portlens.reference.files`, :mod:`~portlens.reference.pcap`,
  :mod:`~portlens.reference.pcapng`: the capture file readers behind
  ``open_capture(path, reference=True)``.
* :mod:`portlens.reference.ring`: the numpy walk of TPACKET_V3 ring blocks that the live
  capture's compiled one (``_core.RingWalker``) must equal (tests/test_ring.py).

The compiled core (``portlens._core``, crates/) is what every command runs;
tests/test_rust_decoder.py, tests/test_rust_readers.py and tests/test_ring.py hold it to
these, column for column and message for message. Nothing outside this package imports these
modules but through those two switches (the ring walk has none: only its test uses it).
"""
