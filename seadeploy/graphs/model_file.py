"""A user's ONNX file as a model: its input geometry, class count and static batch, and the per-image copy of a
fixed-batch graph.

Every stage that takes ``--onnx FILE`` (export, validate, convert, profiling) reads the file through
:class:`OnnxFile`: one NCHW input with static C×H×W (any batch), ``(N, classes)`` logits.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from seadeploy.errors import InputError
from seadeploy.fileio import atomic_path
from seadeploy.graphs.load import load_model
from seadeploy.runfolder import ModelSpec, onnx_name


@dataclasses.dataclass
class OnnxFile:
    """A loaded user ONNX file: its proto and input/output geometry."""

    path: Path
    proto: onnx.ModelProto
    input_name: str
    batch: int | None  # the static batch, None when symbolic
    shape: tuple[int, int, int]  # C, H, W
    num_classes: int

    @classmethod
    def load(cls, path: str | os.PathLike) -> OnnxFile:
        p = Path(path)
        if p.is_dir():
            hint = f"; it holds {p / onnx_name('fp32')}: pass the folder as RUN_DIR" if (p / onnx_name("fp32")).is_file() \
                else ""
            raise InputError(f"--onnx expects a .onnx file but '{p}' is a folder{hint}")
        proto = load_model(p)
        inits = {i.name for i in proto.graph.initializer}
        inputs = [v for v in proto.graph.input if v.name not in inits]
        if len(inputs) != 1:
            raise InputError(f"'{p}' has {len(inputs)} inputs; seadeploy runs image classifiers with one NCHW input")
        dims = inputs[0].type.tensor_type.shape.dim
        vals = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(vals) != 4 or any(v is None for v in vals[1:]):
            raise InputError(f"'{p}' input '{inputs[0].name}' has shape {vals}; a static N×C×H×W input (any batch) is "
                             "needed")
        out = proto.graph.output[0].type.tensor_type.shape.dim
        classes = out[-1].dim_value if len(out) == 2 and out[-1].HasField("dim_value") else 0
        if classes < 1:
            raise InputError(f"'{p}' output must be (N, classes) logits with a static class count")
        return cls(p.resolve(), proto, inputs[0].name, vals[0], (vals[1], vals[2], vals[3]), int(classes))

    def spec(self) -> ModelSpec:
        return ModelSpec(model=f"onnx:{self.path}", attn=None, attn_kwargs={}, num_classes=self.num_classes,
                         input_size=self.shape[1], in_chans=self.shape[0])

    def write(self, path: str | os.PathLike) -> Path:
        """Save as one self-contained file (external data embedded)."""
        with atomic_path(path) as tmp:
            onnx.save_model(self.proto, str(tmp), save_as_external_data=False)
        return Path(path)

    def chunks(self, x: np.ndarray) -> list[np.ndarray]:
        """Batches the file accepts: all at once when the batch is symbolic, else whole static batches."""
        if self.batch is None:
            return [x]
        b = self.batch
        if len(x) < b:
            x = np.concatenate([x] * (b // max(1, len(x)) + 1))[:b]
        return [x[i:i + b] for i in range(0, len(x) - b + 1, b)]


def static_batch(path: str | os.PathLike) -> int | None:
    """The fixed batch of an ONNX file's input (None when symbolic or not a readable file)."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX file: the stage reports it
        return None
    inits = {i.name for i in proto.graph.initializer}
    for vi in proto.graph.input:
        if vi.name not in inits:
            d = vi.type.tensor_type.shape.dim
            return int(d[0].dim_value) if d and d[0].HasField("dim_value") and d[0].dim_value > 0 else None
    return None


def rebatch_to_one(file: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write ``file`` with its fixed batch made 1 (for the per-image buffer model); checked by running it.

    The batch dimension of the input and outputs becomes 1 and a constant Reshape target whose first entry
    is the old batch is rewritten. Raises InputError when the result does not run at batch 1.
    """
    of = OnnxFile.load(file)
    proto = onnx.ModelProto.FromString(of.proto.SerializeToString())
    b = of.batch
    if b in (None, 1):
        return of.write(dst)
    for vi in [*proto.graph.input, *proto.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == b:
            dims[0].dim_value = 1
    shapes = {n.input[1] for n in proto.graph.node if n.op_type in ("Reshape", "Expand") and len(n.input) > 1}

    def fix(t: onnx.TensorProto) -> None:
        arr = numpy_helper.to_array(t)
        if arr.ndim == 1 and len(arr) and arr[0] == b:
            arr = arr.copy()
            arr[0] = 1
            t.CopyFrom(numpy_helper.from_array(arr, t.name))

    for t in proto.graph.initializer:
        if t.name in shapes:
            fix(t)
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.output[0] in shapes:
            for attr in n.attribute:
                if attr.name == "value":
                    fix(attr.t)
    proto.graph.ClearField("value_info")
    try:  # strict inference with data propagation follows every Reshape/Expand target down to the logits
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
        out = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    except Exception as exc:  # noqa: BLE001 - onnx raises InferenceError / ValidationError / RuntimeError
        out, why = [], f"{type(exc).__name__}"
    else:
        why = f"its output comes out as {out}"
    if out != [1, of.num_classes]:
        raise InputError(f"'{file}' has a fixed batch of {b} that could not be made 1 for the per-image analysis "
                         f"({why}); re-export it with batch 1 or a dynamic batch")
    with atomic_path(dst) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    return Path(dst)
