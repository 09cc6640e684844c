"""Where the public conformance captures are, and how to read their tshark oracles.

Tests read ``../shared/captures/public`` (or ``$PORTLENS_CORPUS``) and skip with a visible
reason when it is absent; the files are never copied into the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def corpus_dir() -> Path | None:
    env = os.environ.get("PORTLENS_CORPUS")
    path = Path(env) if env else REPO.parent / "shared" / "captures" / "public"
    return path if path.is_dir() else None


def require_corpus() -> Path:
    path = corpus_dir()
    if path is None:
        pytest.skip("public capture corpus not found: set PORTLENS_CORPUS or provide "
                    "../shared/captures/public")
    return path


def corpus_captures() -> list[Path]:
    """Every capture of the corpus that has a tshark per-packet oracle."""
    path = corpus_dir()
    if path is None:
        return []
    out = []
    for tsv in sorted(path.glob("*.tshark-packets.tsv")):
        name = tsv.name.split(".")[0]
        caps = [p for p in path.glob(name + ".pcap*") if p.suffix in (".pcap", ".pcapng")]
        if caps:
            out.append(caps[0])
    return out


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz", ".ntar")


def every_capture_params() -> list[object]:
    """Every capture file the project has: its own (captures/, ids ``own/...``) and every one
    of the public corpus (``public/...``), or a visible skip where the corpus is absent."""
    own = sorted(p for p in (REPO / "captures").rglob("*") if p.is_file()
                 and p.suffix in CAPTURE_SUFFIXES)
    root = corpus_dir()
    public = sorted(root.glob("*.pcap*")) if root is not None else []
    params: list[object] = [pytest.param(p, id=f"own/{p.relative_to(REPO / 'captures')}")
                            for p in own]
    params += [pytest.param(p, id=f"public/{p.name}") for p in public]
    if root is None:
        params.append(pytest.param(None, marks=pytest.mark.skip(
            reason="public capture corpus not found: ../shared/captures/public")))
    return params


def corpus_params() -> list[object]:
    caps = corpus_captures()
    if not caps:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="public capture corpus not found: set PORTLENS_CORPUS or provide "
                   "../shared/captures/public"))]
    return [pytest.param(p, id=p.name.split(".")[0]) for p in caps]


def epoch_ns(text: str) -> int:
    """An epoch timestamp string like '1362692526.869344000' as exact integer nanoseconds."""
    seconds, _, frac = text.partition(".")
    return int(seconds) * 10**9 + int((frac + "000000000")[:9])


@dataclass
class TsharkFrame:
    """One row of NAME.tshark-packets.tsv; multi-layer values are lists, outermost first."""

    values: dict[str, list[str]]
    protocols: list[str] | None = None
    """frame.protocols split on ':' (NAME.tshark-protocols.tsv), where the corpus has it."""

    def innermost(self) -> list[str] | None:
        """The layers after the last IP header (the innermost transport, if any), or None
        without a protocols file. An ICMP error's quoted header is not looked through."""
        if self.protocols is None:
            return None
        ips = [i for i, p in enumerate(self.protocols) if p in ("ip", "ipv6")]
        if not ips:
            return []
        first_icmp = next((i for i, p in enumerate(self.protocols) if p in ("icmp", "icmpv6")),
                          len(self.protocols))
        inner = [i for i in ips if i < first_icmp]
        return self.protocols[(inner or ips)[-1] + 1:]

    def all(self, column: str) -> list[str]:
        return self.values.get(column, [])

    def last(self, column: str) -> str | None:
        v = self.values.get(column)
        return v[-1] if v else None

    def int_last(self, column: str, base: int = 10) -> int | None:
        v = self.last(column)
        return None if v is None else int(v, base)


def tshark_frames(capture: Path) -> list[TsharkFrame]:
    name = capture.name.split(".")[0]
    tsv = capture.parent / f"{name}.tshark-packets.tsv"
    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t")
    protocols: dict[int, list[str]] = {}
    names = capture.parent / f"{name}.tshark-protocols.tsv"
    if names.exists():
        for line in names.read_text().splitlines():
            number, _, stack = line.partition("\t")
            protocols[int(number)] = stack.split(":")
    frames = []
    for line in lines[1:]:
        cells = line.split("\t")
        values = {h: c.split(",") for h, c in zip(header, cells, strict=False) if c != ""}
        if "tcp_option_kinds" in values:
            values["tcp_option_kinds"] = [line.split("\t")[header.index("tcp_option_kinds")]]
        frames.append(TsharkFrame(values, protocols.get(int(cells[0])) if protocols else None))
    return frames


IPV4_TOTAL_LENGTH_INVALID = 10
"""portlens.decode.malformed.Malformed.IPV4_TOTAL_LENGTH_INVALID (tests name it to stay
independent of the decoder's numbering; test_malformed_reasons_agree_with_tshark checks it)."""

TRANSPORTS = ("tcp", "udp", "icmp", "icmpv6")


def malformed_disagreements(frames: list[TsharkFrame], reasons: list[int]) -> list[str]:
    """Frames where portlens's malformed reason and tshark's `_ws.malformed` mark disagree.

    Agreement is per frame, with two documented exceptions (docs/decoding.md):
    - an IPv4 total length beyond the frame is malformed to portlens; tshark reports it as an
      expert note, not `_ws.malformed`, and stops at the IP header just the same (no transport);
    - tshark's marks from layers portlens does not decode need no portlens reason: application
      dissectors (a protocol after the transport in NAME.tshark-protocols.tsv; any mark in a
      capture without that file, whose marks all come from there) and TCP reassembly (a frame
      carrying TCP payload).
    """
    out = []
    for i, (t, reason) in enumerate(zip(frames, reasons, strict=True)):
        marked = t.last("malformed") is not None
        if reason and not marked:
            stack = t.protocols or []
            if reason == IPV4_TOTAL_LENGTH_INVALID and not set(stack) & set(TRANSPORTS):
                continue
            out.append(f"frame {i + 1}: portlens malformed ({reason}), tshark not")
        elif marked and not reason:
            stack = t.protocols
            if stack is None:
                continue
            last_transport = max((j for j, p in enumerate(stack) if p in TRANSPORTS),
                                 default=None)
            if last_transport is not None and last_transport < len(stack) - 1:
                continue
            if (t.int_last("tcp_len") or 0) > 0:
                continue  # TCP reassembly's mark ("new fragment overlaps old data"...)
            out.append(f"frame {i + 1}: tshark malformed ({':'.join(stack)}), portlens not")
    return out
