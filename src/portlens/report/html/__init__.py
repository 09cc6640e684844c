"""`portlens report`: one self-contained HTML page of a capture (issue 13).

The page is page.html with its style (page.css), its script (page.js), Plotly's offline bundle
(from the ``plotly`` package, the charting library) and the data (data.py, packed by pack.py)
inlined; nothing is fetched when it is opened. Each is stored compressed, 7 bits to a
character (pack7): the data gzip-compressed, unpacked by the browser's own
``DecompressionStream``; Plotly's bundle (4.8 MB) as LZMA, a quarter smaller than gzip, which
page.js decodes itself (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import html
import json
import lzma
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from portlens import __version__
from portlens.analysis.report_input import ReportInput
from portlens.report.html.data import payload
from portlens.report.html.pack import pack_columns, unpack_columns

__all__ = ["ChartLibraryError", "ReportInput", "default_title", "page", "payload", "read_payload",
           "render"]


class ChartLibraryError(RuntimeError):
    """plotly is not installed (it is one of portlens' dependencies)."""


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


ESCAPED = (0x00, 0x0D, 0x3C, 0x7F)
"""7-bit values that cannot stand for themselves inside a <script> element: NUL (the HTML parser
replaces it), CR (turned into LF), '<' (could start "</script"), and DEL, the escape itself;
each is written as DEL followed by '0' + its index here."""


def pack7(data: bytes) -> str:
    """Bytes as text for a <script> element: 7 bits per ASCII character (base64 has 6), with
    the few characters HTML would change escaped (ESCAPED): about 17 % larger than the bytes
    where base64 is 33 %. page.js ``unpack7`` reads it back.

    Each 7 bytes are one 56-bit number cut into eight 7-bit characters (bits through 8-bit
    arrays took 0.1 CPU s a megabyte: 0.3 s of the benchmark capture's report)."""
    n = len(data)
    groups = -(-n // 7)
    padded = np.zeros(groups * 7, dtype=np.uint8)
    padded[:n] = np.frombuffer(data, dtype=np.uint8)
    words = np.zeros((groups, 8), dtype=np.uint8)
    words[:, 1:] = padded.reshape(groups, 7)
    number = words.reshape(-1).view(">u8")
    values = ((number[:, None] >> _SHIFTS) & 0x7F).astype(np.uint8).ravel()[:-(-8 * n // 7)]
    escaped = _IS_ESCAPED[values]
    at = np.arange(len(values)) + np.cumsum(escaped) - escaped  # escapes before it
    out = np.empty(len(values) + int(escaped.sum()), dtype=np.uint8)
    out[at] = np.where(escaped, 0x7F, values)
    out[at[escaped] + 1] = _ESCAPE_CODE[values[escaped]]
    return out.tobytes().decode("ascii")


_SHIFTS = np.arange(49, -1, -7, dtype=np.uint64)
_IS_ESCAPED = np.zeros(128, dtype=bool)
_IS_ESCAPED[list(ESCAPED)] = True
_ESCAPE_CODE = np.zeros(128, dtype=np.uint8)
_ESCAPE_CODE[list(ESCAPED)] = 0x30 + np.arange(len(ESCAPED))


def unpack7(text: str, size: int) -> bytes:
    """pack7's inverse: the first ``size`` bytes."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int64)
    escape = np.flatnonzero(codes == 0x7F)
    values = codes.copy()
    values[escape + 1] = np.asarray(ESCAPED, dtype=np.int64)[codes[escape + 1] - 0x30]
    keep = np.ones(len(codes), dtype=bool)
    keep[escape] = False
    bits = ((values[keep][:, None] >> np.arange(6, -1, -1)) & 1).astype(np.uint8).ravel()
    return np.packbits(bits[: len(bits) // 8 * 8]).tobytes()[:size]


def _packed(data: bytes, level: int) -> tuple[str, int]:
    """gzip, then pack7: the text and the gzip stream's length."""
    raw = gzip.compress(data, compresslevel=level, mtime=0)
    return pack7(raw), len(raw)


PLOTLY_PRESET = 6
"""xz preset of Plotly's bundle: 1.12 MB where gzip -6 gives 1.47 MB; 6 and 9 give the same
bytes (the 4.8 MB fit the dictionary either way)."""


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "portlens"


@functools.lru_cache(maxsize=1)
def plotly_packed() -> tuple[str, int, int]:
    """Plotly's offline bundle as LZMA (``lzma_alone``, which page.js ``unlzma`` reads) +
    pack7: the text, the LZMA stream's length and the bundle's. Compressing it takes 2 CPU s,
    so the stream is kept in the user's cache folder (``$XDG_CACHE_HOME/portlens``), named by
    the bundle's digest and its own, and checked against the latter when read (decompressing
    it to compare with the bundle took 0.07 CPU s a report); where no cache can be written it
    is made once per process."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise ChartLibraryError(
            "the HTML report draws its charts with plotly, which is not installed: "
            "python -m pip install plotly") from exc
    bundle = get_plotlyjs().encode("utf-8")
    digest = hashlib.sha256(bundle).hexdigest()[:20]
    folder = _cache_dir()
    stream = None
    with contextlib.suppress(OSError):
        for cache in folder.glob(f"plotly-{digest}-{PLOTLY_PRESET}-*.lzma"):
            cached = cache.read_bytes()
            if cache.stem.rsplit("-", 1)[1] == hashlib.sha256(cached).hexdigest()[:20]:
                stream = cached
                break
    if stream is None:
        stream = lzma.compress(bundle, format=lzma.FORMAT_ALONE, preset=PLOTLY_PRESET)
        own = hashlib.sha256(stream).hexdigest()[:20]
        cache = folder / f"plotly-{digest}-{PLOTLY_PRESET}-{own}.lzma"
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            part = cache.with_suffix(f".{os.getpid()}.part")
            part.write_bytes(stream)
            part.replace(cache)  # whole or not at all, should two runs write it at once
    return pack7(stream), len(stream), len(bundle)


def page(data: dict[str, Any], title: str) -> str:
    """The HTML page of ``data`` (payload())."""
    header, blob = pack_columns(data["conns"])
    rest = dict(data, conns=header)
    body = json.dumps(rest, separators=(",", ":"), allow_nan=False).encode("utf-8")
    parts = {"title": html.escape(title), "version": html.escape(__version__),
             "css": _resource("page.css"), "app": _resource("page.js")}
    plotly, parts["plotly_bytes"], parts["plotly_size"] = map(str, plotly_packed())
    parts["plotly"] = plotly
    for name, (text, size) in (("data", _packed(body, 6)), ("conns", _packed(blob, 6))):
        parts[name], parts[f"{name}_bytes"] = text, str(size)
    # One pass: what is put in (the script, the data) is never scanned for placeholders.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _resource("page.html"))


def _embedded(text: str, name: str) -> bytes:
    m = re.search(f'id="{name}" data-bytes="([0-9]+)">', text)
    assert m is not None, name
    end = text.index("</script>", m.end())
    return gzip.decompress(unpack7(text[m.end():end], int(m.group(1))))


def read_payload(text: str) -> dict[str, Any]:
    """The data embedded in a report page (for tests and for programs that read reports):
    payload()'s object, the connection columns unpacked."""
    data: dict[str, Any] = json.loads(_embedded(text, "data-gz"))
    data["conns"] = unpack_columns(data["conns"], _embedded(text, "conns-gz"))
    return data


def default_title(sources: list[str]) -> str:
    """'portlens report: a.pcap, b.pcap' (file names without their folders)."""
    import os

    names = [os.path.basename(s.rstrip(os.sep)) or s for s in sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"portlens report: {shown}"


def render(data: ReportInput, title: str | None = None) -> str:
    """The page of a report's input (pipeline/report.py collect_report)."""
    return page(payload(data), title or default_title(data.sources))
