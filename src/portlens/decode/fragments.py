"""IP fragment reassembly, shared by the fast and the reference decoder.

Decoders decode each frame on its own (a first fragment gets its transport header decoded like
any packet) and report every fragment as a FragmentRecord; the Reassembler then rewrites the
fragment rows of the batch as docs/decoding.md (*Fragments*) describes. Fragments are rare, so
this runs per fragment in Python; it keeps state across batches.
"""

from __future__ import annotations

from dataclasses import dataclass
