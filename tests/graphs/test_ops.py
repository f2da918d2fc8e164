"""Op-type sets have one home, seadeploy/graphs/ops.py: a set written out anywhere else is a second copy that
drifts (SHAPE_OPS was once defined three times with different members)."""

from __future__ import annotations

import ast
from pathlib import Path

import onnx

import seadeploy
from seadeploy.graphs import ops

PACKAGE = Path(seadeploy.__file__).parent
#: The one home, and the independent pixel simulator, which classifies nodes by its own rules on purpose: a mistake in
#: the shared sets must not make the analytic model and its checker agree with each other.
OWN_SETS = {"graphs/ops.py", "dataflow/sim_rules.py"}
ONNX_OPS = {s.name for s in onnx.defs.get_all_schemas_with_history()}


def op_sets(tree: ast.Module) -> list[tuple[str, int]]:
    """Module-level names bound to a literal set/frozenset/tuple/list holding two or more ONNX op types."""
    found = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        value = node.value if targets else None
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("frozenset", "set", "tuple") \
                and value.args:
            value = value.args[0]
        if not isinstance(value, ast.Set | ast.Tuple | ast.List):
            continue
        names = [e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if sum(n in ONNX_OPS for n in names) >= 2:
            found += [(t.id, node.lineno) for t in targets if isinstance(t, ast.Name)]
    return found


def test_the_finder_sees_an_op_set_and_ignores_other_strings():
    tree = ast.parse('A = frozenset({"Reshape", "Flatten"})\nB: tuple = ("Conv", "Gemm")\nC = ("fp32", "fp16")\n'
                     'D = {"Relu"}\ndef f():\n    E = {"Mul", "Add"}\n')
    assert op_sets(tree) == [("A", 1), ("B", 2)]


def test_op_type_sets_are_defined_only_in_graphs_ops():
    assert {name for name, _ in op_sets(ast.parse(Path(ops.__file__).read_text()))} >= {
        "SHAPE_OPS", "UNARY", "BINARY", "COMPUTE_OPS", "TSE_SHAPE_OPS", "VIEW_OPS", "CONVS"}
    elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in OWN_SETS:
            continue
        elsewhere += [f"{rel}:{line}: {name}" for name, line in op_sets(ast.parse(path.read_text()))]
    assert elsewhere == [], "op-type sets outside seadeploy/graphs/ops.py (define them there, import them):\n" + \
        "\n".join(elsewhere)
