"""Which file each backend runs for each precision in a run folder, and opening it.

``plan(run_dir, ["torch", "ort", "trt"])`` checks that every requested backend can run here *before*
anything is measured (``BackendUnavailable``, exit 3, with the install hint), then lists one
:class:`Source` per backend × precision the run folder has: the checkpoint for PyTorch, the
``model*.onnx`` files for ONNX Runtime, the ``model.<precision>.engine`` files for TensorRT.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seadeploy import artifacts
from seadeploy.errors import BackendUnavailable, ConfigError, InputError

PRECISIONS = ("fp32", "fp16", "int8")
TRT_HINT = "pip install 'seadeploy[gpu]' (tensorrt, pycuda) on a machine with an NVIDIA GPU and driver"
ORT_GPU_HINT = "pip uninstall onnxruntime && pip install onnxruntime-gpu on a machine with an NVIDIA GPU"


@dataclasses.dataclass(frozen=True)
class Source:
    """One thing to run: backend spec, precision, and the file (or run folder) it loads."""

    backend: str
    precision: str
    path: Path
    options: tuple[tuple[str, Any], ...] = ()


def require_backend(spec: str) -> None:
    """Raise ``BackendUnavailable`` (exit 3) with the install hint when ``spec`` cannot run on this machine."""
    name, _, variant = spec.partition(":")
    if name not in ("torch", "ort", "trt"):
        raise ConfigError(f"unknown backend '{spec}'. Valid choices: torch, torch:cuda, ort, ort:cuda, ort:tensorrt, trt")
    if name == "trt" and importlib.util.find_spec("tensorrt") is None:
        raise BackendUnavailable(f"TensorRT is not installed, so backend 'trt' cannot run: {TRT_HINT}")
    if name == "torch" or name == "trt":
        import torch

        no_cuda = not torch.cuda.is_available()
        if name == "torch" and variant.startswith("cuda") and no_cuda:
            raise BackendUnavailable(f"backend '{spec}' needs an NVIDIA GPU but torch.cuda.is_available() is False: "
                                     "install a CUDA build of PyTorch on a machine with an NVIDIA GPU")
        if name == "trt" and no_cuda and importlib.util.find_spec("pycuda") is None:
            raise BackendUnavailable(f"backend 'trt' needs CUDA buffers: neither CUDA PyTorch nor pycuda is usable "
                                     f"here: {TRT_HINT}")
    if name == "ort":
        if importlib.util.find_spec("onnxruntime") is None:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime")
        if variant:
            import onnxruntime as ort

            wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
            missing = [wanted.get(v, v) for v in variant.split("+") if wanted.get(v, v) not in
                       ort.get_available_providers() and v != "cpu"]
            if missing:
                raise BackendUnavailable(f"onnxruntime here has no {missing[0]} (it has "
                                         f"{', '.join(ort.get_available_providers())}): {ORT_GPU_HINT}")


def _manifest(run_dir: Path) -> dict | None:
    if not (run_dir / artifacts.MANIFEST).is_file():
        return None
    from seadeploy.export.manifest import load_manifest

    return load_manifest(run_dir)


def available_precisions(run_dir: str | os.PathLike, backend: str) -> dict[str, Path]:
    """``{precision: path}`` the run folder has for ``backend`` (manifest entries, else files on disk)."""
    run = Path(run_dir)
    name = backend.split(":")[0]
    if name == "torch":
        return {"fp32": run} if (run / artifacts.CHECKPOINT).is_file() else {}
    manifest = _manifest(run)
    kind, namer = ("engines", artifacts.engine_name) if name == "trt" else ("files", artifacts.onnx_name)
    found: dict[str, Path] = {}
    for p in PRECISIONS:
        entry = (manifest or {}).get(kind, {}).get(p)
        path = run / entry["path"] if isinstance(entry, dict) and entry.get("path") else run / namer(p)
        if path.is_file():
            found[p] = path
    return found


def plan(run_dir: str | os.PathLike, backends: Sequence[str], precisions: Sequence[str] | None = None,
         device: str = "cpu") -> list[Source]:
    """Sources to run, backend by backend; raises before measuring when a backend or file is missing."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"run folder '{run}' does not exist; train and export first (python -m seadeploy.export)")
    if not backends:
        raise ConfigError("no backends given; pass --backends torch,ort,trt")
    bad = [p for p in precisions or () if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown precision '{bad[0]}'. Valid choices: {', '.join(PRECISIONS)}")
    for spec in backends:
        require_backend(spec)
    out: list[Source] = []
    for spec in backends:
        have = available_precisions(run, spec)
        chosen = [p for p in (precisions or PRECISIONS) if p in have]
        if not chosen:
            what = "a checkpoint.safetensors" if spec.startswith("torch") else (
                "TensorRT engines (python -m seadeploy.export --engine)" if spec.startswith("trt") else "ONNX files")
            want = ",".join(precisions) if precisions else "any precision"
            raise InputError(f"the run '{run}' has no {what} for {want} (it has: {', '.join(have) or 'none'}); "
                             f"run python -m seadeploy.export with the precision you need")
        opts = (("device", device),) if spec.startswith("torch") and ":" not in spec else ()
        out.extend(Source(spec, p, have[p], opts) for p in chosen)
    return out


def open_backend(src: Source, threads: int | None = None, **extra: Any):
    """``create_backend`` for a source, with pinned threads where the backend takes them."""
    from seadeploy.backends import create_backend

    opts = dict(src.options)
    if threads is not None and src.backend.split(":")[0] in ("torch", "ort"):
        opts["threads"] = int(threads)
    return create_backend(src.backend, src.path, **opts, **extra)


def input_shape(run_dir: str | os.PathLike) -> tuple[int, ...] | None:
    """``(C, H, W)`` of one sample from the manifest (or the checkpoint); ``None`` when neither says."""
    run = Path(run_dir)
    manifest = _manifest(run)
    if manifest:
        dims = manifest.get("input", {}).get("shape", [])[1:]
        if dims and all(isinstance(d, int) for d in dims):
            return tuple(dims)
    if (run / artifacts.CHECKPOINT).is_file():
        return tuple(artifacts.Checkpoint.load(run).spec.input_shape)
    return None
