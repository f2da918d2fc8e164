"""Tiny hand-built ONNX graphs for the profiling tests (conv chain, SE, TSE, residual)."""

from __future__ import annotations

import types

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from seadeploy.export.onnx_export import export_onnx
from seadeploy.export.steps import new_manifest
from seadeploy.fileio import sha256
from seadeploy.models.build import build_model
from seadeploy.runfolder import Checkpoint, FileEntry, ModelSpec, write_manifest


def _w(name: str, shape: tuple[int, ...], seed: int = 0) -> onnx.TensorProto:
    return numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 0.3, name)


def _node(op: str, ins: list[str], outs: list[str], name: str, module: str | None = None, **kw) -> onnx.NodeProto:
    n = helper.make_node(op, ins, outs, name=name, **kw)
    if module is not None:
        n.metadata_props.add(key="module", value=module)
    return n


def make_model(nodes, inits, in_shape, out_name, out_shape=None) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(m), full_check=False)
    return m


def conv_chain(c: int = 2, h: int = 8, w: int = 4) -> onnx.ModelProto:
    """x(1,c,h,w) → Conv3×3/1 pad1 → Conv3×3/2 pad1 → Conv1×1."""
    nodes = [_node("Conv", ["x", "w1"], ["a"], "conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             _node("Conv", ["a", "w2"], ["b"], "conv2", pads=[1, 1, 1, 1], kernel_shape=[3, 3], strides=[2, 2]),
             _node("Conv", ["b", "w3"], ["y"], "conv3", kernel_shape=[1, 1])]
    inits = [_w("w1", (c, c, 3, 3)), _w("w2", (c, c, 3, 3), 1), _w("w3", (c, c, 1, 1), 2)]
    return make_model(nodes, inits, (1, c, h, w), "y")


def _excite(prefix: str, src: str, c: int, hidden: int, mod: str) -> tuple[list, list]:
    nodes = [_node("Conv", [src, f"{prefix}w1", f"{prefix}b1"], [f"{prefix}h"], f"{prefix}fc1", f"{mod}.fc1"),
             _node("Relu", [f"{prefix}h"], [f"{prefix}hr"], f"{prefix}act", f"{mod}.act"),
             _node("Conv", [f"{prefix}hr", f"{prefix}w2", f"{prefix}b2"], [f"{prefix}e"], f"{prefix}fc2", f"{mod}.fc2"),
             _node("Sigmoid", [f"{prefix}e"], [f"{prefix}g"], f"{prefix}gate", mod)]
    inits = [_w(f"{prefix}w1", (hidden, c, 1, 1)), _w(f"{prefix}b1", (hidden,)), _w(f"{prefix}w2", (c, hidden, 1, 1), 3),
             _w(f"{prefix}b2", (c,), 4)]
    return nodes, inits


def se_block(c: int = 4, h: int = 6, w: int = 6, module: str = "se") -> onnx.ModelProto:
    """x → ReduceMean(H,W) → 1×1 → ReLU → 1×1 → Sigmoid → Mul(x, gate)."""
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes = [_node("ReduceMean", ["x", "axes"], ["z"], "squeeze", module)]
    exc, inits = _excite("", "z", c, 2, module)
    nodes += [*exc, _node("Mul", ["x", "g"], ["y"], "scale", module)]
    return make_model(nodes, [axes, *inits], (1, c, h, w), "y")


def tse_block(c: int = 4, h: int = 6, w: int = 6, tile: int = 2, module: str = "tse") -> onnx.ModelProto:
    """The TSE lowering of seadeploy's models: Reshape to tiles → ReduceMean(3,5) → MLP → Resize(nearest) → Mul."""
    gh, gw = h // tile, w // tile
    shape = numpy_helper.from_array(np.array([1, c, gh, tile, gw, tile], dtype=np.int64), "tshape")
    axes = numpy_helper.from_array(np.array([3, 5], dtype=np.int64), "axes")
    scales = numpy_helper.from_array(np.array([1, 1, tile, tile], dtype=np.float32), "scales")
    nodes = [_node("Reshape", ["x", "tshape"], ["xt"], "tiles", module),
             _node("ReduceMean", ["xt", "axes"], ["z"], "squeeze", module, keepdims=0)]
    exc, inits = _excite("", "z", c, 2, module)
    nodes += [*exc, _node("Resize", ["g", "", "scales"], ["gu"], "up", module, mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                    _node("Mul", ["x", "gu"], ["y"], "scale", module)]
    return make_model(nodes, [shape, axes, scales, *inits], (1, c, h, w), "y")


def tse_pool_block(c: int = 4, h: int = 6, w: int = 6, tile: int = 3) -> onnx.ModelProto:
    """TSE written with AveragePool(kernel = stride = tile) and Resize back, no module metadata."""
    scales = numpy_helper.from_array(np.array([1, 1, tile, tile], dtype=np.float32), "scales")
    nodes = [helper.make_node("AveragePool", ["x"], ["z"], name="pool", kernel_shape=[tile, tile],
                              strides=[tile, tile])]
    exc, inits = _excite("", "z", c, 2, "")
    for n in exc:
        del n.metadata_props[:]
    nodes += [*exc, helper.make_node("Resize", ["g", "", "scales"], ["gu"], name="up", mode="nearest"),
                    helper.make_node("Mul", ["x", "gu"], ["y"], name="scale")]
    return make_model(nodes, [scales, *inits], (1, c, h, w), "y")


def residual(c: int = 2, h: int = 8, w: int = 5) -> onnx.ModelProto:
    """x → Conv3×3 → ReLU → Conv3×3 → Add(x, ·)."""
    nodes = [_node("Conv", ["x", "w1"], ["a"], "conv1", "layer.conv1", pads=[1, 1, 1, 1]),
             _node("Relu", ["a"], ["ar"], "relu", "layer.relu"),
             _node("Conv", ["ar", "w2"], ["b"], "conv2", "layer.conv2", pads=[1, 1, 1, 1]),
             _node("Add", ["x", "b"], ["y"], "add", "layer")]
    return make_model(nodes, [_w("w1", (c, c, 3, 3)), _w("w2", (c, c, 3, 3), 1)], (1, c, h, w), "y")


def se_residual(c: int = 4, h: int = 6, w: int = 6) -> onnx.ModelProto:
    """x → Conv1×1 → SE → Add(x, ·): the squeeze lag also reaches the residual join."""
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes = [_node("Conv", ["x", "wc"], ["a"], "conv", "block.conv"),
             _node("ReduceMean", ["a", "axes"], ["z"], "squeeze", "block.se")]
    exc, inits = _excite("", "z", c, 2, "block.se")
    nodes += [*exc, _node("Mul", ["a", "g"], ["s"], "scale", "block.se"),
                    _node("Add", ["x", "s"], ["y"], "add", "block")]
    return make_model(nodes, [axes, _w("wc", (c, c, 1, 1), 5), *inits], (1, c, h, w), "y")


def with_dynamic_spatial(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for i, name in ((0, "batch"), (2, "height"), (3, "width")):
        dims[i].Clear()
        dims[i].dim_param = name
    return m


@pytest.fixture
def graphs():
    """The builders above as one namespace."""
    return types.SimpleNamespace(conv_chain=conv_chain, se_block=se_block, tse_block=tse_block,
                                 tse_pool_block=tse_pool_block, residual=residual, se_residual=se_residual,
                                 with_dynamic_spatial=with_dynamic_spatial, make_model=make_model)


def make_run(run, attn: str = "se", attn_kwargs: dict | None = None):
    """A run folder like export writes: resnet20_cifar + ``attn`` checkpoint, model.onnx and manifest.json."""
    torch.manual_seed(0)
    spec = ModelSpec(model="resnet20_cifar", attn=attn, attn_kwargs=dict(attn_kwargs or {}), num_classes=10,
                     input_size=32)
    model = build_model(spec).eval()
    Checkpoint(spec=spec, state_dict=model.state_dict()).save(run / "checkpoint.safetensors")
    path = export_onnx(model, run / "model.onnx", (3, 32, 32))
    manifest = new_manifest(spec, mean=(0.5,) * 3, std=(0.5,) * 3, dataset=None, opset=18)
    manifest.files["fp32"] = FileEntry("model.onnx", sha256=sha256(path))
    write_manifest(run, manifest)
    return run
