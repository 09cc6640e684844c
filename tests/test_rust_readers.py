"""The Rust capture readers against the Python ones, batch for batch and message for message.

``open_capture`` reads with ``portlens._core`` (crates/core/src/capture); the Python readers
(``open_capture(path, reference=True)``) are the oracle. For every file and chunk size both
must give the same batches (every FrameBatch column, including the chunk buffer and the offsets
into it), the same reader attributes after each batch, and the same CaptureError message after
the same frames. Files: every public capture, every capture in ./captures, and crafted ones
(both byte orders, ns, pcapng with many sections, interfaces and resolutions, every block type,
gzip/xz/bzip2 of each, cut at many offsets, damaged lengths), with chunks down to 64 bytes.

The one thing allowed to differ is how a corrupt compressed stream ends. gzip and bzip2 are
inflated by pure-Rust code (miniz_oxide, libbz2-rs-sys), xz by liblzma as in Python; CRC, size,
header and truncation errors read exactly as Python's, but an inflater may notice bad deflate
data at a different byte than zlib (miniz_oxide does not check a distance against the start of
the output: the damage then surfaces later, at the CRC or as a damaged record) and liblzma hands
over a few more bytes before its error than Python's buffering does. There the test asks that
both stop with one line and that the reader which stopped first read the same frames as the
other up to there.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from portlens.sources import CaptureError, open_capture
from tests.corpus import corpus_dir
from tests.test_sources import (
    COMPLEX,
    COMPLEX_BLOCKS,
    T0,
    B,
    L,
    block,
    epb,
    idb,
    opt,
    pb,
    pcap_file,
    random_pcapng,
    shb,
    small_pcap,
    spb,
)

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ("data", "offset", "caplen", "wirelen", "ts_ns", "linktype", "interface", "frame")
DTYPES = {
    "data": np.uint8,
    "offset": np.int64,
    "caplen": np.uint32,
    "wirelen": np.uint32,
    "ts_ns": np.int64,
    "linktype": np.uint16,
    "interface": np.uint16,
    "frame": np.int64,
}
COMPRESS = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}


@dataclass
class Outcome:
    """Everything a reader showed: batches, attributes along the way, and how it ended."""

    opened: str | None
    """The CaptureError message of open_capture, if it refused the file."""
    batches: list[dict[str, np.ndarray]]
    progress: list[tuple[int, int]]
    """(frames_read, bytes_read) after each batch."""
    error: str | None
    attrs: dict[str, object]


def read(path: Path, chunk: int, *, reference: bool) -> Outcome:
    try:
        r = open_capture(path, chunk_bytes=chunk, reference=reference)
    except CaptureError as exc:
        return Outcome(str(exc), [], [], None, {})
    batches, progress, error = [], [], None
    with r:
        attrs_at_open = {"interfaces": list(r.interfaces)}
        try:
            for b in r:
                batches.append({c: getattr(b, c) for c in COLUMNS})
                progress.append((r.frames_read, r.bytes_read))
        except CaptureError as exc:
            error = str(exc)
        attrs: dict[str, object] = {
            **attrs_at_open,
            "format": r.format,
            "compression": r.compression,
            "compressed": r.compressed,
            "interfaces_at_end": list(r.interfaces),
            "frames_read": r.frames_read,
            "bytes_read": r.bytes_read,
            "total_bytes": r.total_bytes,
            "skipped_blocks": r.skipped_blocks,
        }
    return Outcome(None, batches, progress, error, attrs)


def same_error(rust: str | None, python: str | None) -> bool:
    return rust == python


def assert_same(path: Path, chunk: int) -> Outcome:
    """Read ``path`` both ways and fail on any difference; returns the Rust outcome."""
    rust = read(path, chunk, reference=False)
    python = read(path, chunk, reference=True)
    compressed = bool(python.attrs.get("compressed")) or path.read_bytes()[:2] in (
        b"\x1f\x8b",
        b"\xfd7",
        b"BZ",
    )
    where = f"{path.name} chunk={chunk}"
    python_end, rust_end = python.opened or python.error, rust.opened or rust.error
    if (
        compressed
        and rust_end != python_end
        and (corrupt_stream(python_end) or corrupt_stream(rust_end))
    ):
        # The decompressors noticed the damage at different points (see the module docstring):
        # both stop with one line, and the frames of the earlier stop are the other's first.
        assert rust_end is not None and "\n" not in rust_end, where
        assert python_end is not None, where
        ours, theirs = frames(rust), frames(python)
        n = min(len(ours), len(theirs))
        assert ours[:n] == theirs[:n], where
        return rust
    assert rust.opened == python.opened, where
    assert same_error(rust.error, python.error), (where, rust.error, python.error)
    assert len(rust.batches) == len(python.batches), where
    for i, (rb, pb_) in enumerate(zip(rust.batches, python.batches, strict=True)):
        for c in COLUMNS:
            assert rb[c].dtype == DTYPES[c], (where, i, c, rb[c].dtype)
            assert rb[c].ndim == 1
            assert np.array_equal(rb[c], pb_[c]), (where, i, c)
    if compressed:
        # The decompressors read ahead by different amounts: only the totals must agree.
        assert [f for f, _ in rust.progress] == [f for f, _ in python.progress], where
        ra = {k: v for k, v in rust.attrs.items() if k != "bytes_read"}
        pa = {k: v for k, v in python.attrs.items() if k != "bytes_read"}
        assert ra == pa, where
        if rust.error is None and rust.opened is None:
            assert rust.attrs["bytes_read"] == python.attrs["bytes_read"], where
    else:
        assert rust.progress == python.progress, where
        assert rust.attrs == python.attrs, where
    return rust


def corrupt_stream(message: str | None) -> bool:
    return message is not None and bool(re.search(r": corrupt \w+ stream after \d+ ", message))


def frames(out: Outcome) -> list[tuple[int, ...]]:
    """Every frame as (number, time, lengths, link type, interface, bytes...)."""
    rows = []
    for b in out.batches:
        for i in range(len(b["frame"])):
            start, length = int(b["offset"][i]), int(b["caplen"][i])
            rows.append(
                (
                    *(int(b[c][i]) for c in ("frame", "ts_ns", "caplen", "wirelen", "linktype")),
                    int(b["interface"][i]),
                    *b["data"][start : start + length].tolist(),
                )
            )
    return rows


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- real captures -------------------------------------------------------------------------------


def real_captures() -> list[object]:
    root = corpus_dir()
    public = sorted(p for p in root.iterdir() if p.suffix in (".pcap", ".pcapng")) if root else []
    own = sorted(p for p in (REPO / "captures").iterdir() if p.is_file() and p.suffix != ".md")
    params: list[object] = [pytest.param(p, id=f"own-{p.name}") for p in own]
    if public:
        params += [pytest.param(p, id=f"public-{p.name}", marks=pytest.mark.corpus) for p in public]
    else:
        reason = (
            "public captures not found: set PORTLENS_CORPUS or provide ../shared/captures/public"
        )
        params.append(pytest.param(None, id="public", marks=pytest.mark.skip(reason=reason)))
    return params


@pytest.mark.parametrize("capture", real_captures())
def test_real_captures(capture: Path) -> None:
    small = 64 if capture.stat().st_size < 64 << 10 else 4096
    for chunk in (8 << 20, small, 1000):
        assert_same(capture, chunk)


def test_public_corpus_is_read_whole() -> None:
    """Every public capture and every own capture opens and reads to the end with Rust."""
    root = corpus_dir()
    if root is None:
        pytest.skip("public captures not found: set PORTLENS_CORPUS")
    files = [p for p in root.iterdir() if p.suffix in (".pcap", ".pcapng")]
    read_frames = oracle_frames = 0
    for p in files:
        out = read(p, 8 << 20, reference=False)
        assert out.opened is None and out.error is None, (p.name, out.opened, out.error)
        tsv = p.with_name(p.name.rsplit(".", 1)[0] + ".tshark-packets.tsv")
        if tsv.exists():
            read_frames += sum(len(b["frame"]) for b in out.batches)
            oracle_frames += len(tsv.read_text().splitlines()) - 1
    assert len(files) == 70
    assert read_frames == oracle_frames > 0


@pytest.mark.parametrize("kind", ["gzip", "xz", "bzip2"])
def test_real_captures_compressed(tmp_path: Path, kind: str) -> None:
    own = sorted(p for p in (REPO / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))
    root = corpus_dir()
    extra = sorted(root.glob("*.pcapng"))[:5] if root else []
    for p in own[:12] + extra:
        path = write(tmp_path, p.name + "." + kind, COMPRESS[kind](p.read_bytes()))
        for chunk in (8 << 20, 512):
            assert_same(path, chunk)


# -- crafted files -------------------------------------------------------------------------------


def crafted() -> dict[str, bytes]:
    """Files of every variant both readers accept, and a few they refuse."""
    rng = random.Random(11)
    files: dict[str, bytes] = {}
    records = [
        (T0 + i, rng.randrange(10**6), rng.randbytes(rng.randrange(0, 120)), 0) for i in range(40)
    ]
    records = [(s, f, d, len(d) + rng.randrange(3)) for s, f, d, _ in records]
    for order in (L, B):
        for ns in (False, True):
            name = f"pcap-{'le' if order == L else 'be'}-{'ns' if ns else 'us'}"
            files[name] = pcap_file(
                records, order=order, ns=ns, snaplen=rng.choice([0, 64, 65535])
            )[0]
        files[f"kuznetzov-{order == L}"] = pcap_file(
            records[:9], order=order, magic=0xA1B2CD34, extra=b"\x07" * 8
        )[0]
        files[f"fcs-{order == L}"] = pcap_file(
            records[:3], order=order, linktype=(2 << 28) | (1 << 26) | 1
        )[0]
    files["pcap-v3"] = pcap_file([], version=(3, 0))[0]
    files["pcap-header-only"] = pcap_file([])[0]
    files["pcap-small"] = small_pcap()[0]
    files["pcap-big-record"] = pcap_file(
        [(T0, 1, b"s" * 10, 10), (T0, 2, bytes(range(256)) * 40, 70000), (T0, 3, b"t", 1)]
    )[0]
    files["complex"] = COMPLEX
    for seed in range(8):
        files[f"random-pcapng-{seed}"] = random_pcapng(seed)[0]
    # Every if_tsresol kind, both orders, with offsets, and several IDBs per section.
    for o in (L, B):
        body = shb(o)
        for i, resol in enumerate(
            (6, 9, 3, 12, 0x80 | 20, 0x80 | 30, 0, 0x80 | 0, 19, 0x80 | 41, 127)
        ):
            options = opt(o, 9, bytes([resol])) + opt(o, 2, f"if{i}".encode())
            if i % 3 == 0:
                options += opt(o, 14, struct.pack(o + "q", [-7, 10, 2**40][i % 3 and 1]))
            if i % 4 == 1:
                options += opt(o, 13, bytes([4])) + opt(o, 3, b"desc\xff\xfeok")
            body += idb(o, [1, 113, 228, 101][i % 4], [0, 64, 65535][i % 3], options)
        for i in range(11):
            body += epb(o, i, rng.randrange(1 << 64), rng.randbytes(rng.randrange(70)))
            body += pb(o, i, 3, rng.randrange(1 << 64), rng.randbytes(9), wirelen=40)
            body += spb(o, rng.randrange(200), rng.randbytes(rng.randrange(90)))
            body += block(o, rng.choice([4, 5, 10, 0xBAD, 0x40000BAD, 0x999]), rng.randbytes(8))
        files[f"resolutions-{o == L}"] = body
    # An IDB whose options are damaged part way: it keeps what came before.
    files["idb-bad-options"] = (
        shb(L) + idb(L, 1, 0, opt(L, 2, b"eth0") + struct.pack("<HH", 9, 400)) + epb(L, 0, 5, b"x")
    )
    files["pcapng-header-only"] = shb(B) + idb(B, 228, 0)
    files["pcapng-v2"] = shb(L, major=2) + idb(L, 1, 0)
    files["spb-first"] = shb(L) + spb(L, 3, b"abc")
    files["epb-before-shb"] = epb(L, 0, 1, b"x") + COMPLEX
    files["bad-bom"] = shb(L)[:8] + b"abcd" + shb(L)[12:]
    files["not-a-capture"] = b"<html><body>404</body></html>\n"
    files["empty"] = b""
    files["zstd"] = b"\x28\xb5\x2f\xfd" + bytes(40)
    files["lz4"] = b"\x04\x22\x4d\x18" + bytes(40)
    files["short"] = pcap_file([])[0][:10]
    return files


CRAFTED = crafted()
CHUNKS = (64, 72, 100, 333, 4096, 8 << 20)


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, CRAFTED[name])
    for chunk in CHUNKS:
        assert_same(path, chunk)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_crafted_compressed(tmp_path: Path, kind: str) -> None:
    for name, data in CRAFTED.items():
        if not data:
            continue
        path = write(tmp_path, f"{name}.{kind}", COMPRESS[kind](data))
        for chunk in (64, 4096, 8 << 20):
            assert_same(path, chunk)


def test_crafted_refusals_are_worded(tmp_path: Path) -> None:
    """The crafted set reaches each kind of refusal (so the comparisons above are not vacuous)."""
    expected = {
        "pcap-v3": ("opened", "unsupported pcap version 3.0"),
        "short": ("opened", "cut off inside the pcap file header (10 of 24 bytes)"),
        "empty": ("opened", "empty file, not a pcap or pcapng file"),
        "zstd": ("opened", "zstd-compressed; decompress it first (starts with 28 b5 2f fd)"),
        "lz4": ("opened", "lz4-compressed; decompress it first (starts with 04 22 4d 18)"),
        "not-a-capture": ("opened", "not a pcap or pcapng file (starts with 3c 68 74 6d)"),
        "pcapng-v2": ("opened", "unsupported pcapng version 2.0 at byte 0"),
        "bad-bom": (
            "opened",
            "corrupt section header block at byte 0: byte-order magic 61 62 63 64",
        ),
        "epb-before-shb": ("opened", "not a pcap or pcapng file (starts with 06 00 00 00)"),
        "spb-first": (
            "error",
            "corrupt record 1 (simple packet block) at byte 28: no interface is defined in "
            "this section (0 packets read)",
        ),
    }
    for name, (when, message) in expected.items():
        path = write(tmp_path, name, CRAFTED[name])
        out = read(path, 64, reference=False)
        assert getattr(out, "opened" if when == "opened" else "error") == f"{path}: {message}"
    out = read(write(tmp_path, "r", CRAFTED["resolutions-True"]), 64, reference=False)
    assert out.error is None
    assert sum(len(b["frame"]) for b in out.batches) == 33
    skipped = out.attrs["skipped_blocks"]
    assert isinstance(skipped, dict) and sum(skipped.values()) == 11
    interfaces = out.attrs["interfaces"]
    assert isinstance(interfaces, list)
    assert [i.ticks_per_second for i in interfaces] == [
        10**6,
        10**9,
        10**3,
        10**12,
        2**20,
        2**30,
        1,
        1,
        10**19,
        2**41,
        10**127,
    ]


def cut_points(size: int, rng: random.Random, count: int) -> list[int]:
    every = list(range(min(size, 200)))
    return sorted(set(every + [rng.randrange(size + 1) for _ in range(count)] + [size - 1, size]))


@pytest.mark.parametrize(
    "name",
    [
        "pcap-le-us",
        "pcap-be-ns",
        "kuznetzov-True",
        "complex",
        "random-pcapng-3",
        "resolutions-False",
    ],
)
def test_cut_at_many_offsets(tmp_path: Path, name: str) -> None:
    data = CRAFTED[name]
    rng = random.Random(name)
    path = tmp_path / name
    for cut in cut_points(len(data), rng, 150):
        path.write_bytes(data[:cut])
        for chunk in (64, 100, 8 << 20):
            assert_same(path, chunk)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_cut_at_many_offsets(tmp_path: Path, kind: str) -> None:
    rng = random.Random(kind)
    records = [(T0, i, rng.randbytes(200), 200) for i in range(300)]
    for data in (pcap_file(records)[0], COMPLEX * 1):
        packed = COMPRESS[kind](data)
        path = tmp_path / f"cut.{kind}"
        for cut in sorted({rng.randrange(len(packed)) for _ in range(40)} | {10, len(packed) - 1}):
            path.write_bytes(packed[:cut])
            for chunk in (64, 4096):
                assert_same(path, chunk)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_corrupted(tmp_path: Path, kind: str) -> None:
    """Bytes flipped inside the compressed stream: bad checksums, bad codes, bad headers."""
    rng = random.Random(f"flip-{kind}")
    records = [(T0, i, rng.randbytes(150), 150) for i in range(200)]
    path = tmp_path / f"flipped.{kind}"
    for data in (pcap_file(records)[0], COMPLEX):
        packed = COMPRESS[kind](data)
        for _ in range(60):
            broken = bytearray(packed)
            i = rng.randrange(len(broken))
            broken[i] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(broken))
            for chunk in (64, 4096):
                assert_same(path, chunk)


def test_corrupted_lengths_and_bytes(tmp_path: Path) -> None:
    """Block and record lengths set to damage values, and random bytes flipped."""
    rng = random.Random(2026)
    path = tmp_path / "damaged"
    pcap, offsets = small_pcap()
    cases: list[bytes] = []
    for off in offsets:
        for value in (0, 1, 0xFFFFFFF0, 300000, 262145, 7, 1 << 31):
            broken = bytearray(pcap)
            struct.pack_into("<I", broken, off + 8, value)
            cases.append(bytes(broken))
    pos = 0
    for blk, _ in COMPLEX_BLOCKS:
        for value in (0, 4, 13, 28, 36, 0xFFFFFFF0, (256 << 20) + 4, len(blk) + 4, len(blk) - 4):
            for at in (4, len(blk) - 4):
                broken = bytearray(COMPLEX)
                o = "<" if pos < len(b"".join(b for b, _ in COMPLEX_BLOCKS[:11])) else ">"
                struct.pack_into(o + "I", broken, pos + at, value)
                cases.append(bytes(broken))
        pos += len(blk)
    for _ in range(300):
        base = bytearray(
            rng.choice([pcap, COMPLEX, CRAFTED["resolutions-True"], CRAFTED["pcap-be-ns"]])
        )
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(base))
            base[i] = rng.choice([0, 0xFF, rng.randrange(256), base[i] ^ 0x80])
        cases.append(bytes(base))
    for data in cases:
        path.write_bytes(data)
        for chunk in (64, 8 << 20):
            assert_same(path, chunk)
