"""The int8 noise floor: what int8 rounding itself does to the PyTorch model, simulated with the QDQ file's own scales.

:func:`int8_probe` copies the reference model and fake-quantises, at every convolution and linear layer the int8
file quantises, the layer's input with the file's activation scale and zero point (``torch.fake_quantize_per_tensor_
affine``, the file's integer range) and its weight per output channel (``torch.fake_quantize_per_channel_affine``,
symmetric, with the file's integer weights' range: a per-channel symmetric code is unchanged by the BatchNorm the
exporter folds into the weight, so the scale for the unfolded weight is max|w_c| / max|q_c|), and the output of every
module the file quantises at its last node (an attention's gate and scale, a block's output). It runs the real samples
and measures against the float32 reference what :class:`~seadeploy.parity.FloatNoise` measures for fp32/fp16, plus the
top-1 disagreement. The int8 rules widen their cosine, centred-cosine and top-1 floors to a multiple of that loss
(``parity.INT8_NOISE_COSINE_FACTOR`` / ``INT8_NOISE_TOP1_FACTOR``, docs/parity.md); a quantised tensor inside a
module (not its output) or of a module that runs more than once is not simulated.

A wrong file must not excuse itself: each activation scale is checked against the range the layer's input takes on
the samples (a representable range more than ``SCALE_SLACK``× wider or narrower), and each int8 weight against the
model's own weight rounded the same way (a transposed kernel, a weight from another checkpoint); a file that fails
either gets no floor (``Int8Probe.problem`` says which layer), so it is judged by the plain bounds.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from seadeploy.graphs.index import node_modules
from seadeploy.graphs.ops import QUANTISED_OPS
from seadeploy.parity.metrics import cosine_per_sample, output_scale
from seadeploy.parity.noise import FloatNoise

#: the representable range of an activation Q/DQ may differ from the samples' range by this factor either way
#: (calibration ran on other samples of the dataset; MinMax ranges of post-ReLU maps vary by well under 2×)
SCALE_SLACK = 4.0
#: fraction of a layer's int8 weight codes that may differ from the model's own rounding by more than 1 (ties and the
#: calibration tool's rounding differ by 1 at most): beyond it the file does not hold this model's weights
WEIGHT_MISMATCH = 0.01
_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


@dataclasses.dataclass(frozen=True)
class LayerQuant:
    """The int8 file's quantisation of one layer: input scale/zero point/range, weight integer range per channel."""

    module: str
    scale: float
    zero_point: int
    qmin: int
    qmax: int
    weight_qmax: np.ndarray | None  # max |q| per output channel of the int8 weight, None: weight not quantised
    weight_codes: np.ndarray | None = None  # the int8 weight, output channel first


@dataclasses.dataclass
class Int8Probe:
    """What int8 rounding does to the reference model on one input set (``summary``, or None with ``problem``)."""

    summary: FloatNoise | None
    layers: int
    problem: str | None = None

    def rel(self, idx: Any) -> np.ndarray:  # the int8 rules have no element-wise bound to widen
        return np.zeros(len(idx))


def _activation(q: onnx.NodeProto, inits: Mapping[str, onnx.TensorProto]) -> tuple[float, int, int, int] | None:
    """``(scale, zero point, qmin, qmax)`` of a Q or DQ node with constant per-tensor parameters."""
    if len(q.input) < 2 or q.input[1] not in inits:
        return None
    zp = numpy_helper.to_array(inits[q.input[2]]) if len(q.input) > 2 and q.input[2] in inits \
        else np.zeros((), np.uint8)
    return (float(numpy_helper.to_array(inits[q.input[1]]).reshape(-1)[0]), int(zp.reshape(-1)[0]),
            *_RANGE[np.dtype(zp.dtype)])


def output_quantisation(int8_path: str | os.PathLike) -> dict[str, tuple[float, int, int, int]]:
    """``{module path: (scale, zero point, qmin, qmax)}`` for each module whose output (the output of its last node in
    the graph) the int8 file quantises: the attention's gate and scale, a block's residual output."""
    proto = onnx.load(str(int8_path))
    modules = node_modules(proto)
    inits = {t.name: t for t in proto.graph.initializer}
    last: dict[str, onnx.NodeProto] = {}
    for node in proto.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") and modules.get(node.name):
            last[modules[node.name]] = node
    quantised = {n.input[0]: n for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    out = {}
    for module, node in last.items():
        q = quantised.get(node.output[0]) if node.output else None
        params = _activation(q, inits) if q is not None else None
        if params is not None:
            out[module] = params
    return out


def file_quantisation(int8_path: str | os.PathLike) -> dict[str, LayerQuant]:
    """``{module path: LayerQuant}`` of every Conv / Gemm / MatMul whose data input the int8 file dequantises."""
    proto = onnx.load(str(int8_path))
    modules = node_modules(proto)
    inits = {t.name: t for t in proto.graph.initializer}
    dq = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    out: dict[str, LayerQuant] = {}
    for node in proto.graph.node:
        act = dq.get(node.input[0]) if node.op_type in QUANTISED_OPS and node.input else None
        params = _activation(act, inits) if act is not None and modules.get(node.name) else None
        if params is None:
            continue
        weight = dq.get(node.input[1]) if len(node.input) > 1 else None
        wq = codes = None
        if weight is not None and weight.input[0] in inits:
            q = np.abs(numpy_helper.to_array(inits[weight.input[0]]).astype(np.int32))
            axis = next((a.i for a in weight.attribute if a.name == "axis"), 1)
            per_channel = numpy_helper.to_array(inits[weight.input[1]]).size > 1
            # torch's channel axis is the output axis, the axis the file quantises per channel
            wq = np.moveaxis(q, axis, 0).reshape(q.shape[axis], -1).max(1) if per_channel else np.array([q.max()])
            codes = np.moveaxis(numpy_helper.to_array(inits[weight.input[0]]).astype(np.int32), axis if per_channel
                                else (0 if node.op_type == "Conv" else 1), 0)
        out[modules[node.name]] = LayerQuant(modules[node.name], *params, wq, codes)
    return out


def _fake_weight(name: str, module: nn.Module, quant: LayerQuant) -> str | None:
    """Fake-quantise ``module``'s weight as the file does; the reason when the file's codes are not this weight's."""
    w = module.weight.data
    if quant.weight_qmax is None or quant.weight_qmax.shape[0] not in (1, w.shape[0]):
        return None
    amax = w.reshape(w.shape[0], -1).abs().amax(1).double()
    if quant.weight_qmax.shape[0] == 1:  # one scale for the whole tensor
        amax = amax.max().expand(w.shape[0])
    qmax = torch.as_tensor(quant.weight_qmax, dtype=torch.float64).clamp(min=1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax)).float()
    mine = torch.round(w.reshape(w.shape[0], -1) / scale[:, None]).numpy()
    theirs = quant.weight_codes.reshape(mine.shape) if quant.weight_codes is not None and \
        quant.weight_codes.size == mine.size else None
    if theirs is not None:  # the same weight rounded: codes agree to ±1 (a folded BatchNorm may flip a channel's sign)
        sign = np.where((mine * theirs).sum(1, keepdims=True) < 0, -1.0, 1.0)
        off = float(np.mean(np.abs(sign * theirs - mine) > 1))
        if off > WEIGHT_MISMATCH:
            return (f"the int8 file's weights of {name} are not the model's weights rounded ({off:.0%} of the codes "
                    "differ by more than 1): no int8 noise floor")
    module.weight.data = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(len(scale), dtype=torch.int32),
                                                                0, -128, 127)
    return None


def int8_probe(model: nn.Module, x: np.ndarray, ref: np.ndarray, int8_path: str | os.PathLike, *,
               limit: int | None = None, batch: int = 32) -> Int8Probe:
    """Simulate the int8 file's quantisation on the first ``limit`` samples of ``x`` (default: all; ``ref``: their
    float32 logits). All by default: a top-1 disagreement of 1 % needs hundreds of samples to be seen at all."""
    quant = file_quantisation(int8_path)
    sim = copy.deepcopy(model).eval().float()
    named = dict(sim.named_modules())
    layers = {name: q for name, q in quant.items() if isinstance(named.get(name), nn.Conv2d | nn.Linear)}
    ranges: dict[str, list[float]] = {name: [math.inf, -math.inf] for name in layers}

    def pre_hook(name: str, q: LayerQuant):
        def fn(_module: nn.Module, args: tuple) -> tuple:
            t = args[0]
            ranges[name][0], ranges[name][1] = min(ranges[name][0], float(t.min())), max(ranges[name][1], float(t.max()))
            return (torch.fake_quantize_per_tensor_affine(t, q.scale, q.zero_point, q.qmin, q.qmax), *args[1:])
        return fn

    mismatch = [why for name, q in layers.items() if (why := _fake_weight(name, named[name], q))]
    if mismatch:
        return Int8Probe(None, len(layers), mismatch[0])
    for name, q in layers.items():
        named[name].register_forward_pre_hook(pre_hook(name, q))
    n = len(x) if limit is None else min(int(limit), len(x))
    for name, (scale, zp, qmin, qmax) in output_quantisation(int8_path).items():
        # a conv's node also computes the BatchNorm and ReLU folded into it, so its Q/DQ is not the module's output
        # (the next layer's input quantisation covers it); a reused module's outputs are other tensors
        if name in named and not isinstance(named[name], nn.Conv2d) and _calls(sim, named[name], x[:1]) == 1:
            named[name].register_forward_hook(lambda _m, _a, out, s=scale, z=zp, lo=qmin, hi=qmax:
                                              torch.fake_quantize_per_tensor_affine(out, s, z, lo, hi)
                                              if isinstance(out, torch.Tensor) else out)
    if not layers or n < 2:
        return Int8Probe(None, len(layers), "no convolution or linear layer of the model is quantised in the file")
    with torch.no_grad():
        out = np.concatenate([sim(torch.as_tensor(np.asarray(x[i:i + batch]), dtype=torch.float32)).numpy()
                              for i in range(0, n, batch)]).reshape(n, -1).astype(np.float64)
    bad = _inconsistent_scale(layers, ranges)
    if bad:
        return Int8Probe(None, len(layers), bad)
    exact = np.asarray(ref[:n], np.float64).reshape(n, -1)
    if not np.isfinite(out).all():
        return Int8Probe(None, len(layers), "the simulated int8 model gives NaN/Inf")
    mu = exact.mean(axis=0, keepdims=True)
    rel = float((np.abs(out - exact).max(axis=1) / output_scale(exact).reshape(-1)).max())
    return Int8Probe(FloatNoise("int8", rel, max(0.0, 1.0 - float(cosine_per_sample(out, exact).mean())),
                                max(0.0, 1.0 - float(cosine_per_sample(out - mu, exact - mu).mean())), n,
                                top1_loss=float(np.mean(out.argmax(1) != exact.argmax(1)))), len(layers))


def _calls(model: nn.Module, module: nn.Module, x: np.ndarray) -> int:
    """How many times ``module`` runs in one forward of ``model``."""
    count = [0]
    handle = module.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        with torch.no_grad():
            model(torch.as_tensor(np.asarray(x), dtype=torch.float32))
    finally:
        handle.remove()
    return count[0]


def _inconsistent_scale(layers: Mapping[str, LayerQuant], ranges: Mapping[str, list[float]]) -> str | None:
    """The first layer whose file scale does not fit the range its input takes on the samples (None: all fit)."""
    for name, q in layers.items():
        low, high = ranges[name]
        seen = max(high, 0.0) - min(low, 0.0)
        span = q.scale * (q.qmax - q.qmin)
        if seen > 0 and not (seen / SCALE_SLACK <= span <= seen * SCALE_SLACK):
            return (f"the int8 file's input scale of {name} covers {span:.3g} while its input spans {seen:.3g} on "
                    f"these samples (more than {SCALE_SLACK:g}× apart): no int8 noise floor")
    return None


def int8_noise(model: nn.Module, refs: Mapping[str, np.ndarray], sets: Mapping[str, tuple[np.ndarray, Any]],
               int8_path: str | os.PathLike | None) -> dict[str, Int8Probe]:
    """``{"data": Int8Probe}`` for the real samples (int8 is judged on real data only); ``{}`` without a file or data."""
    if int8_path is None or "data" not in sets:
        return {}
    return {"data": int8_probe(model, sets["data"][0], refs["data"], int8_path)}
