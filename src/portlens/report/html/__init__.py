"""`portlens report`: one self-contained HTML page of a capture (issue 13).

The page is page.html with its style (page.css), its script (page.js), Plotly's offline bundle
(from the ``plotly`` package, the charting library) and the data (data.py) inlined; nothing is
fetched when it is opened. Plotly's bundle (4.8 MB) and the data are stored gzip-compressed and
base64-encoded and unpacked by the browser (``DecompressionStream``), which keeps the page of
the 2 M-packet benchmark capture under 5 MB (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import re
from importlib import resources
from typing import Any

from portlens import __version__
from portlens.report.html.data import ReportInput, payload

__all__ = ["ChartLibraryMissing", "ReportInput", "default_title", "page", "payload", "read_payload",
           "render"]


class ChartLibraryMissing(RuntimeError):
    """plotly is not installed (it is one of portlens' dependencies)."""


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _packed(data: bytes, level: int) -> str:
    return base64.b64encode(gzip.compress(data, compresslevel=level, mtime=0)).decode("ascii")


@functools.lru_cache(maxsize=1)
def plotly_packed() -> str:
    """Plotly's offline bundle, gzip + base64 (made once per process: it takes a while)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise ChartLibraryMissing(
            "the HTML report draws its charts with plotly, which is not installed: "
            "python -m pip install plotly") from exc
    return _packed(get_plotlyjs().encode("utf-8"), 6)


def page(data: dict[str, Any], title: str) -> str:
    """The HTML page of ``data`` (payload())."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode("utf-8")
    parts = {
        "title": html.escape(title), "version": html.escape(__version__),
        "css": _resource("page.css"), "app": _resource("page.js"),
        "plotly": plotly_packed(), "data": _packed(body, 6),
    }
    # One pass: what is put in (the script, the data) is never scanned for placeholders.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], _resource("page.html"))


def read_payload(text: str) -> dict[str, Any]:
    """The data embedded in a report page (for tests and for programs that read reports)."""
    start = text.index('id="data-gz">') + len('id="data-gz">')
    end = text.index("</script>", start)
    return json.loads(gzip.decompress(base64.b64decode(text[start:end])))  # type: ignore[no-any-return]


def default_title(sources: list[str]) -> str:
    """'portlens report: a.pcap, b.pcap' (file names without their folders)."""
    import os

    names = [os.path.basename(s.rstrip(os.sep)) or s for s in sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"portlens report: {shown}"


def render(data: ReportInput, title: str | None = None) -> str:
    """The page of a report's input (pipeline/report.py collect_report)."""
    return page(payload(data), title or default_title(data.sources))
