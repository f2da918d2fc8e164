"""A run folder as validate and profiling see it: the PyTorch reference, the files the manifest lists, the
engines, and their consistency.

Everything is checked before a single number is computed, so a folder that mixes runs fails with one
clear message (exit 2) instead of a confusing parity failure:

- with a manifest, only the files it lists are judged or timed: a ``model.int8.onnx`` left by an earlier export
  that no manifest vouches for is not this run's file;

- ``checkpoint.safetensors`` must exist (it is the reference) and agree with ``manifest.json``'s spec;
- every ONNX file / engine used must take ``(batch, C, H, W)`` and return ``(batch, classes)`` of that spec;
- an engine must be the file export recorded in the manifest (sha256), and when its sidecar records the
  sha256 of the ONNX file it was built from, that file must still match — otherwise it belongs to
  another model or export;
- an ONNX file whose sha256 differs from the manifest's record only warns: it was changed after export
  (validate exists precisely to judge such files by their numbers).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import onnx

from seadeploy.errors import ConfigError, InputError
from seadeploy.fileio import read_json, sha256
from seadeploy.runfolder.checkpoint import Checkpoint, ModelSpec
from seadeploy.runfolder.manifest import Manifest, has_manifest, read_manifest
from seadeploy.runfolder.names import CHECKPOINT, MANIFEST, PRECISIONS, engine_name, onnx_name
from seadeploy.runfolder.paths import inside


@dataclasses.dataclass
class RunFolder:
    """The files of one run folder and what they claim to be."""

    path: Path
    checkpoint: Checkpoint
    manifest: Manifest | None
    warnings: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> RunFolder:
        """Read the checkpoint and (when present) the manifest of ``path``.

        Raises:
            InputError: not a folder, no checkpoint, or the manifest describes another model.
        """
        p = Path(path)
        if not p.is_dir():
            raise InputError(f"run folder '{p}' does not exist; pass the --out folder of export")
        if not (p / CHECKPOINT).is_file():
            raise InputError(f"'{p}' has no {CHECKPOINT}: validate compares every backend with the PyTorch model it "
                             "holds; train into this folder or export with --out to it")
        ckpt = Checkpoint.load(p)
        manifest, warnings = None, []
        if has_manifest(p):
            manifest = read_manifest(p)
            spec = manifest.spec
            if spec != ckpt.spec:
                raise InputError(f"'{p}' mixes runs: {MANIFEST} describes {_describe(spec)} but {CHECKPOINT} holds "
                                 f"{_describe(ckpt.spec)}; re-run export into this folder")
        else:
            warnings.append(f"no {MANIFEST}: ONNX files are not cross-checked against what export recorded")
        return cls(p, ckpt, manifest, warnings)

    @property
    def spec(self) -> ModelSpec:
        return self.checkpoint.spec

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple((self.manifest.mean if self.manifest else None) or self.checkpoint.mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple((self.manifest.std if self.manifest else None) or self.checkpoint.std)

    @property
    def dataset(self) -> str | None:
        return (self.manifest.dataset if self.manifest else None) or self.checkpoint.dataset

    def available_precisions(self) -> list[str]:
        """The precisions whose ONNX file this run holds: those the manifest lists (not those export recorded as
        failed: judged only when asked for by name), else the files by their names."""
        if self.manifest is not None:
            return [p for p in PRECISIONS if p in self.manifest.files]
        return [p for p in PRECISIONS if (self.path / onnx_name(p)).is_file()]

    def skipped_files(self) -> list[str]:
        """ONNX files in the folder that the manifest does not list (left by an earlier export; never judged)."""
        if self.manifest is None:
            return []
        listed = {Path(e.path).name for e in [*self.manifest.files.values(), *self.manifest.failed.values()]}
        return [onnx_name(p) for p in PRECISIONS if onnx_name(p) not in listed and (self.path / onnx_name(p)).is_file()]

    def onnx_path(self, precision: str) -> Path:
        """The checked ONNX file of ``precision``.

        Raises:
            InputError: missing, unreadable, or shaped for another model.
        """
        _check_precision(precision)
        flag = "" if precision == "fp32" else f" --precision {precision}"
        if self.manifest is not None:
            entries = {**self.manifest.failed, **self.manifest.files}  # a failed file is judged when asked for by name
            if precision not in entries:
                raise InputError(f"the manifest of '{self.path}' lists no {precision} file (it lists: "
                                 f"{', '.join(self.manifest.files) or 'none'}); run python -m seadeploy.export "
                                 f"--out {self.path}{flag}")
            path = inside(self.path, entries[precision].path, "ONNX file")
        else:
            path = self.path / onnx_name(precision)
        if not path.is_file():
            raise InputError(f"'{path}' does not exist; run python -m seadeploy.export --out {self.path}{flag}")
        self._check_onnx(path, precision)
        return path

    def engine_path(self, precision: str) -> Path:
        """The engine of ``precision`` after checking its sidecar against the ONNX file it claims to come from."""
        _check_precision(precision)
        path = self.path / engine_name(precision)
        if not path.is_file():
            raise InputError(f"'{path}' does not exist; build it with python -m seadeploy.export --out {self.path} "
                             f"--precision {precision} --engine (on a GPU machine)")
        entry = self.manifest.entry(precision, "engines") if self.manifest else None
        if entry is not None and entry.sha256 and entry.sha256 != sha256(path):
            raise InputError(f"'{path.name}' is not the engine export built for this run (sha256 differs from "
                             f"{MANIFEST}): it belongs to another model or export; rebuild it with export --engine")
        sidecar_file = path.with_suffix(".engine.json")
        sidecar = read_json(sidecar_file) if sidecar_file.is_file() else {}
        onnx_file = self.path / str(sidecar.get("onnx", onnx_name(precision)))
        recorded = sidecar.get("onnx_sha256")
        if recorded and onnx_file.is_file() and sha256(onnx_file) != recorded:
            raise InputError(f"'{path.name}' was built from another {onnx_file.name} (sha256 differs): the engine "
                             "belongs to a different model or export; rebuild it with export --engine")
        return path

    def check_io(self, inputs: dict[str, tuple[Any, ...]], outputs: dict[str, tuple[Any, ...]] | None,
                 what: str) -> None:
        """Raise ``InputError`` when a model's input (or output) shape does not fit this run's model.

        ``inputs`` / ``outputs``: name → shape (batch first; a dimension may be a name or None).
        """
        want = tuple(self.spec.input_shape)
        (name, shape), *_ = inputs.items()
        got = tuple(shape[1:])
        if any(isinstance(g, int) and g > 0 and g != w for g, w in zip(got, want)) or len(got) != len(want):
            dims = ", ".join(str(d) if d is not None else "?" for d in shape)
            raise InputError(f"{what} takes input {name} ({dims}) but the checkpoint's model takes "
                             f"(batch, {', '.join(map(str, want))}): it belongs to another model; re-run export")
        for out_name, shape in (outputs or {}).items():
            if len(shape) != 2:
                raise InputError(f"{what} returns {out_name} of rank {len(shape)} but the checkpoint's model returns "
                                 f"(batch, {self.spec.num_classes}): it belongs to another model; re-run export")
            if isinstance(shape[1], int) and shape[1] > 0 and shape[1] != self.spec.num_classes:
                raise InputError(f"{what} returns {out_name} with {shape[1]} classes but the checkpoint's model has "
                                 f"{self.spec.num_classes}: it belongs to another model; re-run export")

    def _check_onnx(self, path: Path, precision: str) -> None:
        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # protobuf DecodeError and friends
            raise InputError(f"'{path}' is not a readable ONNX file ({exc}); re-run export") from exc
        ins = {i.name: _dims(i) for i in graph.input}
        outs = {o.name: _dims(o) for o in graph.output}
        if not ins:
            raise InputError(f"'{path}' has no inputs; it is not a model exported by seadeploy")
        self.check_io(ins, outs, f"'{path.name}'")
        entry = self.manifest.entry(precision) if self.manifest else None
        if entry is not None and entry.sha256 and entry.sha256 != sha256(path):
            self.warnings.append(f"{path.name} changed after export (sha256 differs from {MANIFEST})")


def _dims(value_info: Any) -> tuple[Any, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in value_info.type.tensor_type.shape.dim)


def _describe(spec: ModelSpec) -> str:
    kw = f" {spec.attn_kwargs}" if spec.attn_kwargs else ""
    return f"{spec.model} attn={spec.attn}{kw} classes={spec.num_classes} input={spec.input_size}"


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'. Valid choices: {', '.join(PRECISIONS)}")
