"""Layers only look down (design §1): report never reaches into sources, track never imports
report or analysis, decode knows nothing of connections, sources know nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "portlens"

FORBIDDEN = {
    "sources": ("decode", "track", "analysis", "report", "cli", "api", "capture", "pipeline"),
    "decode": ("track", "analysis", "report", "cli", "api", "capture", "pipeline"),
    "track": ("analysis", "report", "cli", "api", "capture", "pipeline"),
    "analysis": ("report", "cli", "api", "capture", "pipeline"),
    "report": ("sources", "cli", "api", "capture", "pipeline"),
    "pipeline": ("report", "cli", "api"),
}


def test_only_the_pipeline_wires_decoder_and_tracker() -> None:
    """Design §1: the CLI, the API and live capture get their decoder and tracker from
    pipeline/ (the seams where the compiled core plugs in), never build their own."""
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("pipeline", "decode", "track", "analysis", "reference"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("Decoder", "Tracker", "decode_capture")):
                bad.append(f"{rel}:{node.lineno} calls {node.func.id}")
    assert not bad, "\n".join(bad)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("portlens")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_only_looks_down(layer: str) -> None:
    bad = []
    for path in sorted((SRC / layer).glob("*.py")):
        for module in imports(path):
            parts = module.split(".")
            if len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(SRC)} imports {module}")
    assert not bad, "\n".join(bad)
