"""The package's import graph: no cycles between seadeploy's own modules, and folders only import the layers below them.

Every ``import``/``from ... import`` of a ``seadeploy`` module counts, wherever it sits in the file (a
function-level import only hides a cycle until the function runs). Importing ``pkg.sub`` from outside ``pkg``
also runs ``pkg/__init__`` first, so that is an edge too; inside ``pkg`` it is not (a registry package importing
its members at the top of its ``__init__`` is the intended shape). Imports under ``if TYPE_CHECKING:``
(annotations only) do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import seadeploy

ROOT = Path(seadeploy.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["seadeploy", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module name → the seadeploy modules it imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test).endswith("TYPE_CHECKING") for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # annotations only: never imported at run time
                continue
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in mods:
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(mods)
                deps |= subs
                if len(subs) < len(node.names):  # a name defined in the module itself (not a submodule)
                    deps.add(node.module)
        # pkg.sub imported from outside pkg: pkg/__init__ runs first
        parents = {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)}
        deps |= {p for p in parents if p in mods and not (name == p or name.startswith(p + "."))}
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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


def test_no_import_cycles_between_seadeploy_modules():
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# ------------------------------------------------------------------------------------------- layer order
DOCS = ROOT.parent / "docs" / "architecture.md"


def layer_order() -> dict[str, int]:
    """``{folder or top-level module: layer}`` from the ``layer N: a, b`` lines of docs/architecture.md."""
    layers = {}
    for line in DOCS.read_text().splitlines():
        head, sep, names = line.strip().partition(":")
        if sep and head.startswith("layer ") and head[6:].isdigit():
            layers.update({n.strip(): int(head[6:]) for n in names.split(",") if n.strip()})
    return layers


def unit(module: str) -> str:
    """The folder (or top-level module) a module belongs to: ``seadeploy.export.runner`` → ``export``; a command's
    ``__main__`` is the top layer (it parses arguments and may call any stage)."""
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "__main__"
    return parts[1] if len(parts) > 1 else "seadeploy"


def layer_violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Every import of a folder that is not in a strictly lower layer (an arrow running up or sideways)."""
    out = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            a, b = unit(module), unit(dep)
            if a != b and a != "seadeploy" and layers[a] <= layers[b]:
                out.append(f"{module} (layer {layers[a]} {a}) imports {dep} (layer {layers[b]} {b})")
    return out


def test_every_folder_has_a_layer_and_imports_only_layers_below_it():
    layers, graph = layer_order(), import_graph()
    units = {unit(m) for m in graph} - {"seadeploy"}
    assert units <= set(layers), f"not in the layer order of docs/architecture.md: {sorted(units - set(layers))}"
    found = layer_violations(graph, layers)
    assert found == [], "imports against the layer order of docs/architecture.md:\n" + "\n".join(found)


def test_layer_check_sees_an_upward_import():
    graph = {"seadeploy.models.source": {"seadeploy.export.runner"}, "seadeploy.export.runner": set()}
    assert layer_violations(graph, {"models": 4, "export": 6}) == [
        "seadeploy.models.source (layer 4 models) imports seadeploy.export.runner (layer 6 export)"]
    assert layer_violations(graph, {"models": 6, "export": 6})  # the same layer is sideways: refused too
