"""An ONNX file as a model source: ``--onnx FILE`` for export, validate, convert and every profiling command.

A user's ONNX file has no PyTorch model behind it, so its fp32 graph is the reference: ``export --onnx``
writes ``model.onnx`` (external-data sidecars embedded: only sidecars inside the model's own folder are read),
lowers it to fp16/int8 with the export precision pipeline, compares each with the fp32 graph on the same
inputs (:mod:`seadeploy.parity` rules; top-1 when the dataset is labelled), lints every file and writes a
manifest whose spec is ``model="onnx:<absolute path>"`` with the graph's input size and classes. ``validate
--onnx`` runs exactly that into ``--out`` (default: a temporary folder) and prints the verdicts. Any static
batch is kept: inputs are fed in chunks of that batch.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from seadeploy import runfolder
from seadeploy.backends.ort import plain_session
from seadeploy.data.samples import load_samples
from seadeploy.errors import ConfigError, InputError, ParityFailure
from seadeploy.export import precision as prec
from seadeploy.export.lint import lint_onnx
from seadeploy.export.pipeline import staging
from seadeploy.fileio import atomic_path, sha256
from seadeploy.graphs.load import load_model as load_onnx_file
from seadeploy.parity import compare, default_rule
from seadeploy.runfolder import MANIFEST, PRECISIONS, ModelSpec, onnx_name


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
        proto = load_onnx_file(p)
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


def _run(path: Path, of: OnnxFile, x: np.ndarray) -> np.ndarray:
    sess = plain_session(path)
    return np.concatenate([sess.run(None, {of.input_name: b})[0] for b in of.chunks(x)])


def _samples(of: OnnxFile, dataset: str | None, n: int, split: str, seed: int, root: str | None,
             mean: Sequence[float] | None, std: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray | None]:
    return load_samples(dataset or "synthetic", n, split=split, input_size=of.shape[1], mean=mean, std=std, seed=seed,
                        root=root)


def export_onnx_file(file: str | os.PathLike, out: str | os.PathLike, precisions: Sequence[str] = ("fp32",), *,
                     dataset: str | None = None, data_root: str | None = None, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, eval_samples: int = 256, calib_samples: int = 64,
                     fp16_policy: str = "attention-fp32", int8_target: str = "ort-cpu",
                     progress: bool = False) -> dict[str, Any]:
    """fp32 copy + fp16/int8 lowering + checks + lint of a user's ONNX file into run folder ``out``.

    Returns the manifest as a dict. Raises ParityFailure (exit 1) when a lowered file misses its rule.
    """
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown precision '{bad[0]}'. Valid choices: {', '.join(PRECISIONS)}")
    of = OnnxFile.load(file)
    out = Path(out)
    x, y = _samples(of, dataset, eval_samples, "test", 0, data_root, mean, std)
    spec = of.spec()
    dim0: Any = of.batch if of.batch is not None else "batch"
    manifest = runfolder.Manifest(
        spec=spec, checkpoint=None, mean=[float(v) for v in (mean or [])], std=[float(v) for v in (std or [])],
        dataset=dataset or "synthetic", input={"name": of.input_name, "shape": [dim0, *of.shape], "dtype": "float32"},
        output={"name": of.proto.graph.output[0].name, "shape": [dim0, of.num_classes]},
        opset=max((o.version for o in of.proto.opset_import if o.domain in ("", "ai.onnx")), default=0),
        exporter=f"user file {of.path.name} (sha256 {sha256(of.path)})")
    with staging(out) as stage:  # the export stage's staging: stale folders of killed runs swept, nothing half-written
        fp32 = of.write(stage / onnx_name("fp32"))
        ref = _run(fp32, of, x)
        labels = y[: len(ref)] if y is not None else None
        acc32 = None if labels is None else float((ref.argmax(-1) == labels).mean())
        names = [fp32.name]
        manifest.files["fp32"] = {"path": fp32.name, "precision": "fp32", "sha256": sha256(fp32),
                                  "bytes": fp32.stat().st_size, "accuracy": acc32,
                                  "parity": {"passed": True, "reference": "the user's ONNX file itself"}}
        for precision in [p for p in precisions if p != "fp32"]:
            path = stage / onnx_name(precision)
            if precision == "fp16":
                record = {"policy": prec.convert_fp16(fp32, path, prec.Fp16Policy.named(fp16_policy))}
            else:
                calib, _ = _samples(of, dataset, calib_samples, "train", 1, data_root, mean, std)
                calib = np.concatenate(of.chunks(calib))
                record = {"quantization": prec.quantize_int8(fp32, path, calib, target=int8_target, progress=progress,
                                                             batch=of.batch or 32)}
            got = _run(path, of, x)
            trained = acc32 is not None and acc32 > 2.0 / of.num_classes
            verdict = compare(ref, got, default_rule(precision, "data" if y is not None else "random", trained=trained),
                              backend="ort", precision=precision, inputs="data" if y is not None else "random",
                              labels=labels)
            manifest.checks.append({"name": f"parity.{precision}_vs_fp32", "file": path.name, "passed": bool(verdict),
                                    "detail": verdict.detail(), "metrics": verdict.to_row()})
            if not verdict:
                raise ParityFailure(f"{path.name}: {precision} does not match the fp32 ONNX: {verdict.detail()}")
            acc = None if labels is None else float((got.argmax(-1) == labels).mean())
            manifest.files[precision] = {"path": path.name, "precision": precision, "sha256": sha256(path),
                                         "bytes": path.stat().st_size, "accuracy": acc,
                                         "parity": {"passed": True, "reference": "model.onnx (fp32) on ONNX Runtime CPU",
                                                    "comparisons": [verdict.to_row()]}, **record}
            names.append(path.name)
        for name in names:
            report = lint_onnx(stage / name)
            manifest.checks.append({"name": "lint", "file": name, "passed": bool(report),
                                    "detail": f"{len(report.errors)} errors, {len(report.findings)} findings",
                                    "metrics": {}})
        runfolder.write_manifest(stage, manifest)
        umask = os.umask(0)
        os.umask(umask)
        for name in [*names, MANIFEST]:
            os.chmod(stage / name, 0o666 & ~umask)
            os.replace(stage / name, out / name)
    return manifest.to_dict()


def summary(manifest: dict[str, Any], out: str | os.PathLike) -> list[str]:
    """One line per file: accuracy and the fp32 comparison verdict."""
    lines = []
    checks = {c["name"]: c for c in manifest["checks"]}
    for precision, f in manifest["files"].items():
        acc = f", top-1 {f['accuracy']:.4f}" if f.get("accuracy") is not None else ""
        c = checks.get(f"parity.{precision}_vs_fp32")
        verdict = f": {'PASS' if c['passed'] else 'FAIL'} {c['detail']}" if c else " (reference)"
        lines.append(f"{precision:5s} {Path(out) / f['path']}{acc}{verdict}")
    return lines


@contextmanager
def as_run_folder(file: str | os.PathLike) -> Iterator[tuple[Path, OnnxFile]]:
    """A temporary run folder holding ``file`` as ``model.onnx`` (for stages that read run folders)."""
    of = OnnxFile.load(file)
    with tempfile.TemporaryDirectory(prefix="seadeploy-onnx-") as tmp:
        of.write(Path(tmp) / onnx_name("fp32"))
        yield Path(tmp), of


def onnx_argument(run_dir: str | None, onnx_file: str | None) -> tuple[str | None, str | None]:
    """``(run_dir, onnx_file)`` with a ``.onnx`` file given where a folder is expected moved to ``onnx_file``."""
    if run_dir and onnx_file:
        raise ConfigError("give either RUN_DIR or --onnx FILE, not both")
    if run_dir and Path(run_dir).is_file():
        if Path(run_dir).suffix != ".onnx":
            raise InputError(f"'{run_dir}' is a file but not an .onnx file; pass a run folder or --onnx FILE.onnx")
        return None, run_dir
    if onnx_file and Path(onnx_file).is_dir():
        if (Path(onnx_file) / onnx_name("fp32")).is_file():
            return onnx_file, None  # a run folder passed as --onnx
        raise InputError(f"--onnx expects a .onnx file but '{onnx_file}' is a folder without {onnx_name('fp32')}")
    return run_dir, onnx_file


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
    try:
        x = np.zeros((1, *of.shape), np.float32)
        plain_session(proto).run(None, {of.input_name: x})
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types for a graph that does not run
        raise InputError(f"'{file}' has a fixed batch of {b} that could not be made 1 for the per-image analysis "
                         f"({type(exc).__name__}); re-export it with batch 1 or a dynamic batch") from exc
    with atomic_path(dst) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    return Path(dst)
