"""CPU seconds of decoding alone: the compiled decoder, and the Python reference for scale.

Reads a capture with the project's reader and times, with the process's CPU clock, only the
decode calls of each decoder on the very same batches (reading is not counted): the Rust
decoder with and without checksum verification, and (on small captures: it is per-packet
Python) the reference decoder with its fragment reassembler. Every decoder sees every batch,
in turn, so a load change on a shared machine hits them alike. CPU seconds, not wall time:
the machine is shared.

    python scripts/bench_decode.py /tmp/portlens-bench-2M.pcap
    python scripts/bench_decode.py captures/tcp-session.pcap --decoders rust,rust-no-csum,reference
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from portlens.decode import Decoder
from portlens.decode.packets import PacketBatch
from portlens.decode.rust import RustDecoder
from portlens.sources.files import open_capture
from portlens.sources.frames import FrameBatch

Decode = Callable[[FrameBatch], PacketBatch]


def reference_decoder() -> Decode:
    return Decoder(reference=True).decode


def rust_decoder(checksums: bool) -> Decode:
    engine = RustDecoder()
    return lambda frames: engine.decode(frames, checksums=checksums)


DECODERS: dict[str, Callable[[], Decode]] = {
    "rust": lambda: rust_decoder(True),
    "rust-no-csum": lambda: rust_decoder(False),
    "reference": reference_decoder,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--decoders", default="rust,rust-no-csum",
                        help="comma-separated: " + ", ".join(DECODERS))
    parser.add_argument("--chunk-mb", type=int, default=8, help="reader chunk (default 8)")
    args = parser.parse_args()
    names = [n.strip() for n in args.decoders.split(",") if n.strip()]
    unknown = set(names) - set(DECODERS)
    if unknown:
        parser.error(f"unknown decoder(s): {', '.join(sorted(unknown))}")
    decoders = {name: DECODERS[name]() for name in names}
    cpu = dict.fromkeys(names, 0.0)
    packets = 0
    with open_capture(args.capture, chunk_bytes=args.chunk_mb << 20) as reader:
        for frames in reader:
            packets += len(frames)
            for name, decode in decoders.items():
                start = time.process_time()
                decode(frames)
                cpu[name] += time.process_time() - start
    print(f"{args.capture}: {packets:,} packets")
    print(f"{'decoder':<14} {'CPU s':>8} {'ns/packet':>10} {'M packets/CPU s':>16}")
    for name in names:
        per = cpu[name] / packets * 1e9 if packets else 0.0
        rate = packets / cpu[name] / 1e6 if cpu[name] else 0.0
        print(f"{name:<14} {cpu[name]:>8.2f} {per:>10.0f} {rate:>16.2f}")


if __name__ == "__main__":
    main()
