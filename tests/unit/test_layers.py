"""The package's layers, read from its imports (module-level and inside functions alike):

    errors, timings, outpaths, inputs, version   (nothing of ours below them)
    engine, select, registry                 llama.cpp plumbing; pure numpy; the model registry
    ggufcheck, prompt, runtime, scoring,     model files; prompts; models and contexts; attention
    drafts                                   scoring (draft and target alike); --drafts lists
    methods                                  one module per method, over the shared interface
    pipeline, settings, options, preflight   one request end to end; flags -> configs
    api                                      the public Python API
    eval, bench, chat, serve                 front ends (never importing each other)
    cli, __main__, the package itself        the command line

A module may import only from its own layer's package or from a layer below, and no chain of
imports may lead back to where it started.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "specllama"
RANK = {
    "errors": 0, "timings": 0, "outpaths": 0, "inputs": 0, "version": 0,
    "engine": 1, "select": 1, "registry": 1,
    "ggufcheck": 2, "prompt": 2, "runtime": 2, "scoring": 2, "drafts": 2,
    "methods": 3,
    "pipeline": 4, "settings": 4, "options": 4, "preflight": 4,
    "api": 5,
    "eval": 6, "bench": 6, "chat": 6, "serve": 6,
    "cli": 7, "__main__": 7, "": 7, "_models": 0,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """``{module: {specllama modules it imports}}``, relative imports resolved."""
    out: dict[str, set[str]] = defaultdict(set)
    for f in PKG.rglob("*.py"):
        mod = _module(f)
        pkg = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                out[mod] |= {a.name for a in node.names if a.name.startswith("specllama")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.startswith("specllama"):
                    target = node.module
                else:
                    continue
                if node.module:
                    out[mod].add(target)
                else:  # from .. import x, y: submodules (or names) of the package
                    out[mod] |= {f"{target}.{a.name}" for a in node.names}
    return out


def _top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def _real(mod: str, known: set[str]) -> str:
    """``mod`` or, for a name imported from a module (``specllama.x.Name``), that module."""
    while mod not in known and "." in mod:
        mod = mod.rpartition(".")[0]
    return mod


def test_every_top_level_module_has_a_layer():
    tops = {_top(_module(f)) for f in PKG.rglob("*.py")}
    assert tops <= set(RANK), f"give these a layer in RANK: {sorted(tops - set(RANK))}"


def test_imports_point_down_only():
    graph = imports()
    known = set(graph) | {_module(f) for f in PKG.rglob("*.py")}
    bad = []
    for a, bs in graph.items():
        for b in {_real(b, known) for b in bs}:
            ta, tb = _top(a), _top(b)
            if ta == tb:
                continue
            if RANK[tb] > RANK[ta] or (RANK[tb] == RANK[ta] and RANK[ta] == RANK["eval"]):
                bad.append(f"{a} -> {b}")
    assert not bad, "upward or sideways imports: " + ", ".join(sorted(bad))


def test_no_import_circles():
    graph = imports()
    known = set(graph) | {_module(f) for f in PKG.rglob("*.py")}
    edges = {a: {_real(b, known) for b in bs} - {a} for a, bs in graph.items()}
    # a package's __init__ re-exporting its own submodules is not a circle
    edges = {a: {b for b in bs if not (b.startswith(a + ".") or a.startswith(b + "."))} for a, bs in edges.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, stack: list[str]) -> bool:
        state[m] = 1
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                cycle.extend(stack[stack.index(n):] + [n] if n in stack else [m, n])
                return True
            if state.get(n) is None and visit(n, stack + [n]):
                return True
        state[m] = 2
        return False

    for m in sorted(edges):
        if state.get(m) is None and visit(m, [m]):
            break
    assert not cycle, "import circle: " + " -> ".join(cycle)
