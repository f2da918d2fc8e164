"""``manifest.json``: what export wrote and the checks that ran (schema in CONTRACTS.md).

Written by export, read by validate / profiling / compare::

    m = load_manifest("runs/x")               # InputError when missing or corrupt
    onnx_file = manifest_file(m, "runs/x", "int8")
    spec = ModelSpec.from_dict(m["spec"])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seadeploy.artifacts import CHECKPOINT, FORMAT_VERSION, MANIFEST, ModelSpec, library_versions, read_json, write_json
from seadeploy.errors import InputError
from seadeploy.export.onnx_export import BATCH_DIM, EXPORTER, INPUT_NAME, OUTPUT_NAME

REQUIRED_KEYS = ("format_version", "spec", "input", "output", "opset", "files")


def new_manifest(spec: ModelSpec, *, mean: Any, std: Any, dataset: str | None, opset: int,
                 dynamic_batch: bool = True, batch: int = 1, checkpoint: str | None = CHECKPOINT) -> dict[str, Any]:
    """A manifest with everything known before any file is written (files/checks/engines start empty)."""
    dim0: Any = BATCH_DIM if dynamic_batch else int(batch)
    return {
        "format_version": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "checkpoint": checkpoint,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "dataset": dataset,
        "input": {"name": INPUT_NAME, "shape": [dim0, *spec.input_shape], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": [dim0, int(spec.num_classes)]},
        "opset": int(opset),
        "exporter": EXPORTER,
        "dynamic_axes": {INPUT_NAME: {"0": BATCH_DIM}, OUTPUT_NAME: {"0": BATCH_DIM}} if dynamic_batch else {},
        "files": {},
        "engines": {},
        "checks": [],
        "versions": library_versions(),
    }


def write_manifest(run_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Atomically write ``RUN/manifest.json``."""
    return write_json(Path(run_dir) / MANIFEST, manifest)


def load_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``RUN/manifest.json`` (or a manifest file path given directly).

    Raises:
        InputError: the manifest is missing, not JSON, or lacks the required keys / has another format version.
    """
    p = Path(run_dir)
    path = p / MANIFEST if p.is_dir() else p
    if not path.is_file():
        raise InputError(f"no {MANIFEST} in '{p}'; run `python -m seadeploy.export ... --out {p}` first")
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"'{path}' is not a seadeploy manifest (top level is not an object); re-run export")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise InputError(f"'{path}' is missing {', '.join(missing)}; it is corrupt or not a seadeploy manifest, re-run export")
    if data["format_version"] != FORMAT_VERSION:
        raise InputError(f"'{path}' has format_version {data['format_version']}, this seadeploy reads "
                         f"{FORMAT_VERSION}; re-run export with this version")
    if not isinstance(data["files"], dict) or not isinstance(data["spec"], dict):
        raise InputError(f"'{path}' has malformed 'files'/'spec' entries; re-run export")
    return data


def manifest_file(manifest: dict[str, Any], run_dir: str | os.PathLike, precision: str = "fp32",
                  kind: str = "files") -> Path:
    """Path of the ONNX file (``kind="files"``) or engine (``kind="engines"``) recorded for ``precision``.

    Raises:
        InputError: the manifest has no such entry or the file is gone.
    """
    entries = manifest.get(kind) or {}
    if precision not in entries:
        have = ", ".join(entries) or "none"
        raise InputError(f"the run in '{run_dir}' has no {precision} {'engine' if kind == 'engines' else 'ONNX file'} "
                         f"(it has: {have}); re-run export with --precision {precision}"
                         + (" --engine" if kind == "engines" else ""))
    path = Path(run_dir) / entries[precision]["path"]
    if not path.is_file():
        raise InputError(f"'{path}' listed in the manifest does not exist; re-run export")
    return path
