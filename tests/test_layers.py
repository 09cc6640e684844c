"""Layers only look down (design §1): report never reaches into sources, track never imports
report or analysis, decode knows nothing of connections, sources know nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "portlens"

FORBIDDEN = {
    "sources": ("decode", "track", "analysis", "report", "cli", "api", "capture", "parallel"),
    "decode": ("track", "analysis", "report", "cli", "api", "capture", "parallel"),
    "track": ("analysis", "report", "cli", "api", "capture", "parallel"),
    "analysis": ("report", "cli", "api", "capture", "parallel"),
    "report": ("sources", "cli", "api", "capture", "parallel"),
}


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
