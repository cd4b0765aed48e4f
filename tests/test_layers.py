"""The house's rules, read from the source: floors only import downwards (imports inside
functions count too), no import circles, and Streamlit only in digitlab/ui/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "digitlab"

# Floors from the bottom (docs/architecture.md); a module may import its own floor or lower.
FLOORS = [
    {"data", "files", "models", "augment", "preprocess", "charts", "pendigits", "explain", "words"},
    {"training", "store"},
    {"crossval", "explore", "room", "teach"},
    {"engine", "jobs", "work", "serverload"},
    {"cli", "ui", "__main__"},
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0] if rel.parts[0] != "__init__" else "__init__"


def imports_of(path: Path) -> set[str]:
    """digitlab modules (top level under digitlab/) that this file imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "digitlab":
                if len(parts) > 1:
                    out.add(parts[1])
                else:  # from digitlab import x, y
                    out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "digitlab" and len(parts) > 1:
                    out.add(parts[1])
    return out


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        g.setdefault(name, set()).update(imports_of(path) - {name})
    g.pop("__init__", None)
    return g


def floor(name: str) -> int:
    for i, names in enumerate(FLOORS):
        if name in names:
            return i
    raise AssertionError(f"digitlab/{name} is on no floor: add it to FLOORS and the doc")


def test_every_import_points_down_or_level():
    upward = [
        f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
        for a, targets in graph().items()
        for b in targets
        if floor(b) > floor(a)
    ]
    assert not upward, upward


def test_no_import_circles():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(n, trail):
        state[n] = 1
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                cycles.append(trail[trail.index(m) :] + [m])
            elif m not in state:
                visit(m, trail + [m])
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    assert not cycles, cycles


def test_streamlit_only_in_the_ui():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "ui" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "streamlit" for n in names):
                offenders.append(str(path.relative_to(PACKAGE)))
    assert not offenders, offenders
