"""fp16 and int8-QDQ ONNX graphs from the fp32 export (docs/architecture.md §4).

Precision is decided in the graph, so the same files serve ONNX Runtime and TensorRT 10/11:

* fp16: ``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)`` with a
  :class:`Fp16Policy` that keeps the squeeze reductions, the excitation and the sigmoid inputs in fp32
  (an SE squeeze sums H×W values and can overflow 65504; sigmoid saturates early in fp16);
* int8: ``quant_pre_process`` then ``quantize_static`` (QDQ, per-channel symmetric int8 weights), in the form
  of its deployment target (``INT8_TARGETS``): asymmetric uint8 activations for ONNX Runtime CPU (and OpenVINO,
  attention left in float), symmetric int8 for TensorRT; calibrated (MinMax, streamed in batches) on real data.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
from tqdm import tqdm

from seadeploy.errors import ConfigError, InputError
from seadeploy.export.library_logs import captured_root_logs
from seadeploy.export.lowering import drop_gate_broadcasts
from seadeploy.export.onnx_export import INPUT_NAME, MODULE_KEY, restore_modules
from seadeploy.fileio import atomic_path
from seadeploy.graphs.attention import find_attention, keep_fp32_nodes
from seadeploy.graphs.index import GraphIndex
from seadeploy.graphs.ops import FP16_GATES, GLOBAL_POOLS, NORMS, REDUCES

REDUCE_OPS = tuple(sorted(REDUCES | GLOBAL_POOLS))
GATE_OPS = FP16_GATES
NORM_OPS = tuple(sorted(NORMS))


@dataclasses.dataclass
class Fp16Policy:
    """Which nodes stay fp32 in the fp16 graph.

    Attributes:
        fp32_ops: op types always kept in fp32 (reductions, gates, normalisations by default).
        keep_excitation: inside each attention block (found by graph structure), also keep every node
            on the path from a squeeze reduction to the gate (the excitation MLP/conv) in fp32. The broadcast
            and the scale multiply on the full feature map run in fp16.
        extra_nodes: node names to keep in fp32 in addition.
    """

    fp32_ops: tuple[str, ...] = (*REDUCE_OPS, *GATE_OPS, *NORM_OPS)
    keep_excitation: bool = True
    extra_nodes: tuple[str, ...] = ()

    @classmethod
    def named(cls, name: str) -> Fp16Policy:
        """``attention-fp32`` (default), ``reductions-fp32`` (no excitation), ``all-fp16`` (nothing blocked)."""
        policies = {"attention-fp32": cls(), "reductions-fp32": cls(keep_excitation=False),
                    "all-fp16": cls(fp32_ops=(), keep_excitation=False)}
        if name not in policies:
            raise ConfigError(f"unknown fp16 policy '{name}'. Valid choices: {', '.join(policies)}")
        return policies[name]

    def blocked_nodes(self, proto: onnx.ModelProto) -> list[str]:
        """Node names this policy keeps in fp32 (the ones matched by op type included)."""
        names = {n.name for n in proto.graph.node if n.op_type in self.fp32_ops} | set(self.extra_nodes)
        if self.keep_excitation:
            names |= excitation_nodes(proto)
        return sorted(names)


def excitation_nodes(proto: onnx.ModelProto) -> set[str]:
    """Nodes of each attention block from its squeeze reductions to its gate (included), found by graph
    structure (:func:`seadeploy.graphs.attention.keep_fp32_nodes`), whatever the modules are called. The
    broadcast and the scale multiply on the full feature map are not included (they run in fp16).
    """
    return keep_fp32_nodes(proto)


def propagate_modules(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give nodes a converter added (Cast, Q/DQ) the ``module`` of the node they feed, else of their producer."""
    index = GraphIndex(onnx_ir.from_proto(proto))  # the graph's producers/consumers (one node per proto node, in order)
    modules = {id(n): n.metadata_props.get(MODULE_KEY) for n in index.nodes}
    for _ in range(8):  # Q→DQ→Cast chains are at most a few nodes long
        changed = False
        for node in index.nodes:
            if modules[id(node)] is not None:
                continue
            near = [c for out in node.outputs for c in index.consumers(out)]
            near += [p for i in node.inputs if (p := index.producer(i)) is not None]
            found = next((modules[id(n)] for n in near if modules.get(id(n)) is not None), None)
            if found is not None:
                modules[id(node)] = found
                changed = True
        if not changed:
            break
    for node, ir_node in zip(proto.graph.node, index.nodes, strict=True):
        found = modules[id(ir_node)]
        if found is not None and not any(p.key == MODULE_KEY for p in node.metadata_props):
            node.metadata_props.add(key=MODULE_KEY, value=found)
    return proto


def fold_cast_round_trips(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Remove ``Cast(fp16) → Cast(fp32)`` pairs the converter puts between two fp32 (blocked) nodes.

    Hand-written: such a pair rounds an fp32 value to fp16 and back, exactly what the block list is meant to
    avoid, and neither the converter nor onnxslim removes it. A pair is folded only when the fp16 tensor
    feeds nothing else and is not a graph output.
    """
    graph = proto.graph
    index = GraphIndex.of(proto, shapes=False)  # one ir node per proto node, in order
    at = {id(n): i for i, n in enumerate(index.nodes)}
    rename: dict[str, str] = {}
    drop: set[int] = set()  # positions in graph order
    for i, node in enumerate(index.nodes):
        out = node.outputs[0] if node.outputs else None
        if (node.op_type != "Cast" or index.attr(node, "to") != onnx.TensorProto.FLOAT16 or out is None
                or out.is_graph_output()):
            continue
        users = index.consumers(out)
        if users and all(u.op_type == "Cast" and index.attr(u, "to") == onnx.TensorProto.FLOAT
                         and not u.outputs[0].is_graph_output() for u in users):
            drop.update([i, *(at[id(u)] for u in users)])
            rename.update({u.outputs[0].name: node.inputs[0].name for u in users})
    kept = [n for i, n in enumerate(graph.node) if i not in drop]
    for node in kept:
        node.input[:] = [rename.get(i, i) for i in node.input]
    del graph.node[:]
    graph.node.extend(kept)
    return proto


def drop_duplicate_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Remove nodes computing the same as an earlier one (same op, inputs, outputs, attributes; names and
    metadata may differ).

    Hand-written: ``convert_float_to_float16`` emits one ``<tensor>_cast_to_fp32_node`` Cast per blocked consumer,
    so a tensor feeding two blocked nodes (CBAM's mean+max, SB, std squeezes) gets two identical Casts writing the
    same name, which makes the graph invalid (a value with two producers).
    """
    seen: set[bytes] = set()
    kept = []
    for node in proto.graph.node:
        attrs = b"".join(a.SerializeToString(deterministic=True) for a in node.attribute)
        key = repr((node.op_type, node.domain, tuple(node.input), tuple(node.output))).encode() + attrs
        if key not in seen:
            seen.add(key)
            kept.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    return proto


def sort_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Topologically sort the nodes (converters append Casts at the end; onnx.checker requires order)."""
    model = onnx_ir.from_proto(proto)
    model.graph.sort()
    return onnx_ir.to_proto(model)


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike, policy: Fp16Policy | None = None) -> dict[str, Any]:
    """Write the fp16 graph of ``src`` to ``dst`` (atomically); returns the policy record for the manifest."""
    policy = policy or Fp16Policy()
    proto = onnx.load(str(src))
    blocked = policy.blocked_nodes(proto)
    # The converter turns every float value_info to fp16; the dynamo exporter writes value_info for
    # initializers too, which would make blocked nodes cast their (still fp32) weights. Drop those entries.
    weights = {t.name for t in proto.graph.initializer}
    kept = [v for v in proto.graph.value_info if v.name not in weights]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)
    ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(policy.fp32_ops))
    half = convert_float_to_float16(proto, keep_io_types=True, op_block_list=ops, node_block_list=blocked)
    try:
        half = sort_graph(fold_cast_round_trips(drop_duplicate_nodes(propagate_modules(half))))
    except Exception as exc:  # onnx_ir raises its own error types for a graph it cannot sort
        raise InputError(f"fp16 conversion of '{src}' produced an invalid graph ({type(exc).__name__}: {exc}); "
                         "export without fp16 (--precision fp32,int8) or try --fp16-policy reductions-fp32") from exc
    with atomic_path(dst) as tmp:
        onnx.save_model(half, str(tmp), save_as_external_data=False)
    return {"fp32_ops": list(policy.fp32_ops), "keep_excitation": policy.keep_excitation, "fp32_nodes": len(blocked)}


class SampleReader(CalibrationDataReader):
    """``CalibrationDataReader`` streaming normalised samples in batches, with an optional tqdm bar.

    ``source`` is an (N, C, H, W) array (sliced lazily: each batch is a view, nothing is copied up front) or a
    callable returning a fresh iterable of batches (e.g. reading a dataset from disk; it is iterated once
    more to count the batches). ``len`` and ``set_range`` (in batches) serve ORT's ``CalibStridedMinMax``:
    the calibrator then runs a few batches, folds their activation ranges into running min/max and drops
    them, so memory holds ``CALIB_GROUP`` batches of activations, not the whole calibration set.
    """

    def __init__(self, source: np.ndarray | Callable[[], Iterable[np.ndarray]], batch: int = 32,
                 progress: bool = False) -> None:
        if isinstance(source, np.ndarray):
            array = source
            self._make = lambda: (array[i:i + batch] for i in range(0, len(array), batch))
            self._count, self.samples = -(-len(array) // batch), len(array)
        else:
            self._make = source
            sizes = [len(b) for b in source()]
            self._count, self.samples = len(sizes), sum(sizes)
        self._range = (0, self._count)
        self._it: Iterator[np.ndarray] = self._iter()
        self._bar = None
        if progress:
            self._bar = tqdm(total=self.samples, desc="int8 calibration", unit="img", leave=False)

    def _iter(self) -> Iterator[np.ndarray]:
        start, end = self._range
        for i, batch in enumerate(self._make()):
            if i >= end:
                break
            if i >= start:
                yield batch

    def __len__(self) -> int:
        return self._count

    def set_range(self, start_index: int, end_index: int) -> None:
        self._range = (int(start_index), int(end_index))
        self._it = self._iter()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        if batch is None:
            return None
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._bar is not None:
            self._bar.update(len(batch))
        return {INPUT_NAME: batch}

    def rewind(self) -> None:
        self._range = (0, self._count)
        self._it = self._iter()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def calib_stride(batches: int, group: int) -> int:
    """The largest number of batches ≤ ``group`` that divides ``batches`` (ORT requires an exact division)."""
    return next(k for k in range(max(1, min(group, batches)), 0, -1) if batches % k == 0)


@dataclasses.dataclass(frozen=True)
class Int8Target:
    """The Q/DQ form one deployment target runs fast and accepts.

    Attributes:
        name: ``--int8-target`` value.
        activation_type: ``QUInt8`` or ``QInt8``.
        symmetric_activations: zero point 0 (TensorRT's explicit quantization supports nothing else).
        quantize_bias: int32 bias (ORT fuses it into QLinearConv); TensorRT imports only int8 Q/DQ, so float.
        runs_on: what the form is for, shown in reports.
        float_attention: leave every node of the attention blocks (found by graph structure) unquantised.
    """

    name: str
    activation_type: str
    symmetric_activations: bool
    quantize_bias: bool
    runs_on: str
    float_attention: bool = False

    @property
    def activations(self) -> str:
        return f"{self.activation_type} {'symmetric' if self.symmetric_activations else 'asymmetric'}"


#: ``ort-cpu``: asymmetric uint8 activations, int8 symmetric per-channel weights, int32 bias: ORT's x86 CPU
#: kernels fuse DQ → Conv → Q into QLinearConv (u8s8). Symmetric int8 activations would run there as
#: DequantizeLinear → fp32 Conv → QuantizeLinear, slower than fp32 (1.4–7×, benchmarks/int8_latency.py).
#: ``tensorrt``: symmetric int8 activations and weights, float bias, as TensorRT's explicit quantization needs.
#: ``openvino``: ort-cpu's form with attention unquantised, the fastest on OpenVINO (benchmarks/openvino_int8.py).
INT8_TARGETS: dict[str, Int8Target] = {
    "ort-cpu": Int8Target("ort-cpu", "QUInt8", False, True, "ONNX Runtime CPU (x86, QLinearConv u8s8)"),
    "tensorrt": Int8Target("tensorrt", "QInt8", True, False, "TensorRT (explicit Q/DQ, symmetric int8)"),
    "openvino": Int8Target("openvino", "QUInt8", False, True, "OpenVINO CPU (u8s8 conv, attention in float)", True),
}
INT8_ACTIVATIONS = {"u8": "ort-cpu", "s8": "tensorrt"}  # old ``--int8-activations`` spellings
CALIB_GROUP = 4  # calibration batches ORT's MinMax calibrator keeps before folding them into running min/max
CALIB_MAX_BATCH, CALIB_MEMORY_BYTES = 32, 512 << 20  # largest calibration batch, its activation bytes (calib_batch)
NO_CALIBRATION_SAMPLES = "int8 calibration needs at least one sample (--calib-samples N)"


def activation_bytes(proto: onnx.ModelProto) -> int:
    """Bytes of every intermediate tensor the graph declares, for one sample (symbolic dims count as 1)."""
    total, weights = 0, {t.name for t in proto.graph.initializer}
    for v in proto.graph.value_info:
        t = v.type.tensor_type
        if v.name in weights or not v.type.HasField("tensor_type") or not t.HasField("shape"):
            continue
        size = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize if t.elem_type else 4
        for d in t.shape.dim:
            size *= d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
        total += size
    return total


def calib_batch(proto: onnx.ModelProto, budget: int = CALIB_MEMORY_BYTES) -> int:
    """The calibration batch (≤ ``CALIB_MAX_BATCH``) whose activations fit ``budget`` bytes, at least 1.

    ORT's MinMax calibrator reduces every calibrated tensor inside the graph, so a batch costs about 1.6× the
    declared :func:`activation_bytes` per sample (resnet50+se at 224 px: 158 MiB declared, 252 MiB measured):
    calibrating it at batch 32 peaked at 9.4 GB, at batch 8 at 3.4 GB, at batch 3 (this budget) at 2.0 GB and
    27 % more CPU time than batch 8. Min/max over all samples does not depend on the batch, so the ranges are
    the same; 32-px models keep batch 32.
    """
    per_sample = activation_bytes(proto)
    return max(1, min(CALIB_MAX_BATCH, budget // per_sample if per_sample else CALIB_MAX_BATCH))


def int8_target(name: str) -> Int8Target:
    """The :class:`Int8Target` named ``name`` (``s8``/``u8`` accepted as aliases), else ``ConfigError``."""
    key = INT8_ACTIVATIONS.get(name, name)
    if key not in INT8_TARGETS:
        raise ConfigError(f"unknown int8 target '{name}'. Valid choices: {', '.join(INT8_TARGETS)}")
    return INT8_TARGETS[key]


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike,
                  calib: np.ndarray | Callable[[], Iterable[np.ndarray]], *, target: str = "ort-cpu",
                  per_channel: bool = True, exclude_nodes: Sequence[str] = (), progress: bool = False,
                  batch: int | None = None, activations: str | None = None) -> dict[str, Any]:
    """Write the int8 QDQ graph of ``src`` for ``target`` to ``dst`` (atomically); returns the manifest record.

    ``calib``: normalised real samples (N, C, H, W), or a callable returning an iterable of such batches.
    Weights are symmetric per-channel int8 for every target; activations and bias follow ``INT8_TARGETS``.
    Calibration is MinMax over every sample: activations here are post-ReLU/post-BN maps whose extremes are
    real (a percentile would clip the large activations the classifier's decision depends on), and MinMax
    is the calibrator ORT can run with bounded memory (``CalibStridedMinMax``: ranges merged every
    ``CALIB_GROUP`` batches, exactly the global min/max); the histogram calibrators keep every batch's
    outputs until the end. ``batch`` (an array ``calib``'s calibration batch) defaults to :func:`calib_batch`
    of the graph. ``activations`` (``s8``/``u8``) is the old spelling of ``target``.
    """
    spec = int8_target(activations if activations is not None else target)
    if isinstance(calib, np.ndarray) and len(calib) < 1:
        raise ConfigError(NO_CALIBRATION_SAMPLES)
    with tempfile.TemporaryDirectory(prefix="seadeploy-int8-") as work:
        pre = Path(work) / "pre.onnx"
        # ONNX shape inference is enough (static spatial sizes); ORT's symbolic inference fails on some
        # Resize graphs and then drops a stray sym_shape_infer_temp.onnx into the working directory.
        source = onnx.load(str(src))
        dropped = drop_gate_broadcasts(source) if spec.name == "ort-cpu" else 0
        blocks = find_attention(source).blocks if spec.float_attention else []
        excluded = [*exclude_nodes, *(n for b in blocks for n in b.nodes)]
        onnx.save_model(source, str(Path(work) / "src.onnx"))
        quant_pre_process(str(Path(work) / "src.onnx"), str(pre), skip_symbolic_shape=True)
        onnx_pre = onnx.load(str(pre))
        restore_modules(onnx_pre, source)
        onnx.save_model(onnx_pre, str(pre))
        batch = int(batch) if batch is not None else calib_batch(onnx_pre)  # quant_pre_process inferred the shapes
        del source, onnx_pre
        reader = SampleReader(calib, batch=batch, progress=progress)
        if len(reader) < 1:
            raise ConfigError(NO_CALIBRATION_SAMPLES)
        out = Path(work) / "int8.onnx"
        with captured_root_logs() as log:  # ORT's quantizer logs through the root logger; recorded, not printed
            quantize_static(str(pre), str(out), reader, quant_format=QuantFormat.QDQ,
                            activation_type=getattr(QuantType, spec.activation_type), weight_type=QuantType.QInt8,
                            per_channel=per_channel, nodes_to_exclude=excluded,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": spec.symmetric_activations, "WeightSymmetric": True,
                                           "QuantizeBias": spec.quantize_bias,
                                           # a BatchNormalization scale is 1-D (channels on axis 0); ORT's default
                                           # axis 1 is out of range there, so it logged a warning per BN and fell
                                           # back to one scale per tensor
                                           "QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0},
                                           # not CalibMaxIntermediateOutputs: ORT 1.32 drops those batches
                                           # unmerged (MinMaxCalibrater.collect_data clears before computing)
                                           "CalibStridedMinMax": calib_stride(len(reader), CALIB_GROUP)})
        reader.close()
        proto = propagate_modules(onnx.load(str(out)))
        with atomic_path(dst) as tmp:
            onnx.save_model(proto, str(tmp), save_as_external_data=False)
    n_q = sum(1 for n in proto.graph.node if n.op_type == "QuantizeLinear")
    return {"target": spec.name, "runs_on": spec.runs_on, "format": "QDQ", "activations": spec.activations,
            "weights": "QInt8 symmetric", "per_channel": per_channel,
            "bias": "int32" if spec.quantize_bias else "float32", "calibration": "MinMax",
            "calib_samples": int(reader.samples), "calib_batch": batch, "quantize_nodes": n_q,
            "excluded_nodes": excluded, "float_attention": spec.float_attention, "gate_broadcasts_dropped": dropped,
            **({"quantizer_log": log} if log else {})}
