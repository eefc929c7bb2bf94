"""The package layers stay true: asr_base <- data_prep <- asr_kd, and no import cycle between files.

Every ``import`` / ``from ... import`` of every module is read with ``ast`` (function-level imports
included: a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("asr_base", "data_prep", "asr_kd")
# what each package may import from the others
ALLOWED = {"asr_base": set(), "data_prep": {"asr_base"}, "asr_kd": {"asr_base", "data_prep"}}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a module attribute) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for n in names:
            if n.split(".")[0] in PACKAGES:
                target = _resolve(n)
                if target and target != module:
                    found.add(target)
    # a module's own package __init__ files are implied by importing it; they are not edges of ours
    return {t for t in found if not module.startswith(t + ".")}


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative enough for our size)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_modules_found():
    assert {"asr_base.io", "data_prep.features.store", "asr_kd.training.distill"} <= set(MODULES)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_imports_only_lower_layers(pkg):
    bad = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if m.split(".")[0] == pkg
                 for t in ts if t.split(".")[0] not in ALLOWED[pkg] | {pkg})
    assert not bad, f"{pkg} may import only {sorted(ALLOWED[pkg])}:\n" + "\n".join(bad)


def test_no_import_cycle_between_files():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_detector_sees_a_cycle_and_a_lazy_import():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(g) == [["a", "b", "c"]]
    # lazy (function-level) imports count: asr_kd.decoding.decode imports the feature store inside main()
    assert "data_prep.features.store" in GRAPH["asr_kd.decoding.decode"]
