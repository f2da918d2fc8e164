"""PyTorch → ONNX with the dynamo exporter, each node annotated with the PyTorch module it came from.

Conventions (docs/architecture.md §2): input ``x``, output ``logits``, dim 0 dynamic (``batch``) by default, opset 18,
``external_data=False``, ``torch.onnx.export(dynamo=True)``. Every node gets ``metadata_props["module"]``
(e.g. ``layer1.0.attn.fc1``) so validate/profiling can map ONNX nodes (and ORT/TensorRT layers named
after them) back to modules::

    path = export_onnx(model, "runs/x/model.onnx", (3, 32, 32))
    modules = node_module_map(onnx.load(path))   # {"node_conv2d_1": "layer1.0.attn.fc1", ...}
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from seadeploy.errors import ConfigError
from seadeploy.export.lowering import lower_for_ort
from seadeploy.fileio import atomic_path
from seadeploy.graphs.se_rewrite import se_to_tse_onnx
from seadeploy.models.structural import tiled_blocks, tse_to_se_structural
from seadeploy.models.zoo import create_model, model_defaults

INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "x", "logits", "batch"
EXPORTER = "torch.onnx.export(dynamo=True)"
MODULE_KEY = "module"
SCOPES_KEY = "pkg.torch.onnx.name_scopes"
RULE_KEY = "pkg.onnxscript.rewriter.rule_name"
SUPPORTED_OPSETS = range(18, 26)
LOWERING_KEY = "seadeploy.lowering"


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: Sequence[int] = (3, 32, 32), *,
                opset: int = 18, dynamic_batch: bool = True, example_batch: int = 2, lower: bool = True) -> Path:
    """Export ``model`` (eval mode, float32, CPU) to ``path`` atomically and return the path.

    Args:
        model: a module taking one ``(N, C, H, W)`` float32 tensor and returning logits. It is switched to eval
            mode, float32 and CPU in place (like ``torch.onnx.export``, which also sets eval mode).
        path: destination ``.onnx`` file; written through a temp file + rename, never half-written.
        input_shape: ``(C, H, W)`` of one sample.
        opset: ONNX opset (18–25); the exporter's default is not relied on.
        dynamic_batch: mark dim 0 of ``x`` and ``logits`` as the symbolic ``batch`` dimension.
        example_batch: batch of the tracing example (the static batch when ``dynamic_batch`` is False). A
            dynamic batch is traced with at least 2 samples, since torch.export specialises a size of 1.
        lower: rewrite squeeze-and-excite blocks into the form ONNX Runtime's CPU fast path keeps
            (``seadeploy.export.lowering.lower_for_ort``: GlobalAveragePool squeeze, 1×1-conv excitation, gate
            expanded to the map); the same function, so parity is unchanged. Recorded in the model's
            ``metadata_props["seadeploy.lowering"]``.

    Raises:
        ConfigError: unsupported opset or shape, or the exporter could not trace the model.
    """
    if int(opset) not in SUPPORTED_OPSETS:
        raise ConfigError(f"opset {opset} is not supported; use {SUPPORTED_OPSETS.start}–{SUPPORTED_OPSETS.stop - 1}")
    if len(input_shape) != 3 or min(input_shape) < 1 or int(example_batch) < 1:
        raise ConfigError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    batch = max(int(example_batch), 2) if dynamic_batch else int(example_batch)
    example = torch.randn((batch, *map(int, input_shape)), generator=torch.Generator().manual_seed(1234))
    # A user model converted to TSE by seadeploy.convert (its SE modules run tiled by folding tiles into the batch)
    # is exported in its SE form and given the zoo's deployable TSE lowering (graphs/se_rewrite.py).
    tiles = tiled_blocks(model)
    net = tse_to_se_structural(model) if tiles else model
    program = _run_exporter(net.eval().float().cpu(), example, int(opset), dynamic_batch)
    proto = program.model_proto
    annotate_modules(proto, program.exported_program)
    if lower:
        proto, counts = lower_for_ort(proto)
        meta = {p.key: p for p in proto.metadata_props}
        if LOWERING_KEY in meta:
            proto.metadata_props.remove(meta[LOWERING_KEY])
        proto.metadata_props.add(key=LOWERING_KEY, value=json.dumps(counts, sort_keys=True))
    if tiles:
        proto, _ = se_to_tse_onnx(proto, list(tiles.values()), per_block=True)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    return Path(path)


def _run_exporter(model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool) -> Any:
    dynamic_shapes = {INPUT_NAME: {0: torch.export.Dim(BATCH_DIM)}} if dynamic_batch else None
    quiet = io.StringIO()
    # The exporter prints progress lines on stdout and logs a warning per missing torchvision op.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(quiet), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch-internal pytree deprecation noise
            return torch.onnx.export(model, (example,), None, dynamo=True, opset_version=opset,
                                     input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                     dynamic_shapes=dynamic_shapes, external_data=False, optimize=True,
                                     verbose=False)
    except Exception as exc:  # the exporter raises many types; turn them into one readable error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"torch.onnx.export(dynamo=True) could not export {type(model).__name__}: {first}. "
                          "Set SEADEPLOY_DEBUG=1 for the traceback") from exc
    finally:
        logger.setLevel(level)


def _scopes(node: onnx.NodeProto) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            with contextlib.suppress(ValueError, SyntaxError):
                value = ast.literal_eval(prop.value)
                if isinstance(value, list):
                    return [str(v) for v in value]
    return []


def _prop(node: onnx.NodeProto, key: str) -> str | None:
    return next((p.value for p in node.metadata_props if p.key == key), None)


def _fx_module(fx_nodes: dict[str, Any], name: str) -> str | None:
    node = fx_nodes.get(name)
    stack = (node.meta.get("nn_module_stack") or {}) if node is not None else {}
    return list(stack.values())[-1][0] if stack else None


def scope_module(node: onnx.NodeProto) -> str:
    """Module path from the exporter's ``name_scopes`` (``['', 'layer1', 'layer1.0.attn', 'mean']`` → ``layer1.0.attn``)."""
    scopes = _scopes(node)
    return scopes[-2] if len(scopes) >= 2 else ""


def annotate_modules(proto: onnx.ModelProto, exported_program: Any = None) -> onnx.ModelProto:
    """Write ``metadata_props["module"]`` on every node of ``proto`` (in place) and return it.

    The module comes from the exporter's ``name_scopes``. A Conv that the onnxscript optimizer made by
    folding a BatchNorm carries the BatchNorm's scopes; it is attributed to the convolution it replaced
    (looked up in the ``exported_program`` graph), since it computes that convolution.
    """
    fx_nodes = {n.name: n for n in exported_program.graph.nodes} if exported_program is not None else {}
    for node in proto.graph.node:
        module = scope_module(node)
        rule = _prop(node, RULE_KEY) or ""
        scopes = _scopes(node)
        if "BatchNorm" in rule and scopes and scopes[-1] in fx_nodes:
            args = [a for a in fx_nodes[scopes[-1]].args if hasattr(a, "meta")]
            module = (_fx_module(fx_nodes, args[0].name) if args else None) or module
        for prop in [p for p in node.metadata_props if p.key == MODULE_KEY]:
            node.metadata_props.remove(prop)
        node.metadata_props.add(key=MODULE_KEY, value=module)
    return proto


def node_module_map(model_proto: onnx.ModelProto) -> dict[str, str]:
    """``{node name: PyTorch module path}`` from ``metadata_props["module"]``, else the exporter's name scopes.

    Nodes with neither (e.g. from a foreign exporter or added by a converter) map to ``""``.
    """
    out: dict[str, str] = {}
    for node in model_proto.graph.node:
        module = _prop(node, MODULE_KEY)
        out[node.name] = module if module is not None else scope_module(node)
    return out


def restore_modules(proto: onnx.ModelProto, original: onnx.ModelProto) -> onnx.ModelProto:
    """Re-attach ``module`` metadata (in place) after a tool that drops node metadata (onnxslim, quant_pre_process).

    Nodes are matched by name; nodes the tool created keep no ``module`` (see ``precision.propagate_modules``).
    """
    modules = node_module_map(original)
    for node in proto.graph.node:
        if node.name in modules and not any(p.key == MODULE_KEY for p in node.metadata_props):
            node.metadata_props.add(key=MODULE_KEY, value=modules[node.name])
    return proto


def model_onnx(model: str, attn: str | None, attn_kwargs: dict[str, Any], input_size: int | None,
               folder: str | os.PathLike) -> Path:
    """Export ``create_model(model, attn, attn_kwargs, input_size)`` to ``folder/model.onnx`` (batch 1, static)."""
    size = input_size or model_defaults(model).input_size
    net = create_model(model, attn=attn, attn_kwargs=attn_kwargs, input_size=size).eval()
    return export_onnx(net, Path(folder) / "model.onnx", (3, size, size), dynamic_batch=False, example_batch=1)
