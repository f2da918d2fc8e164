"""Which file each backend runs for each precision of a run folder (or a bare model file), and opening it.

``plan(run_dir, ["torch", "ort", "trt"])`` checks that every requested backend can run here *before*
anything is measured (``BackendUnavailable``, exit 3, with the backend's install hint), then lists one
:class:`Source` per backend × precision the run folder has. Which file that is belongs to the backend
(``Backend.artifact``: the checkpoint for PyTorch, ``model*.onnx`` for ONNX Runtime, ``model.<p>.engine``
for TensorRT); this module only asks. ``plan_file`` does the same for one ``.onnx`` / ``.engine`` file.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnx

from seadeploy import runfolder
from seadeploy.backends import Backend, backend_class, check_backend, create_backend
from seadeploy.errors import ConfigError, InputError
from seadeploy.graphs.load import check_external_data
from seadeploy.graphs.model_file import OnnxFile
from seadeploy.runfolder import PRECISIONS, RunFolder, has_manifest, onnx_name, read_manifest

#: the precision label of a bare model file given instead of a run folder (its graph decides its numerics)
FILE_PRECISION = "file"


@dataclasses.dataclass(frozen=True)
class Source:
    """One thing to run: backend spec, precision, and the file (or run folder) it loads."""

    backend: str
    precision: str
    path: Path
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def backend_class(self) -> type[Backend]:
        return backend_class(self.backend)


def require_backend(spec: str) -> None:
    """Raise ``ConfigError`` for an unknown spec, ``BackendUnavailable`` (exit 3, with the install hint) when
    ``spec`` cannot run on this machine."""
    check_backend(spec)


def available_precisions(run_dir: str | os.PathLike, backend: str) -> dict[str, Path]:
    """``{precision: path}`` the run folder has for ``backend`` (the backend decides which file)."""
    cls = backend_class(backend)
    failed = read_manifest(run_dir).failed if has_manifest(run_dir) else {}  # export kept them for diagnosis only
    found = {p: cls.artifact(run_dir, p) for p in cls.precisions if p not in failed}
    return {p: path for p, path in found.items() if path is not None}


def _check_plan_args(backends: Sequence[str], precisions: Sequence[str] | None) -> None:
    if not backends:
        raise ConfigError("no backends given; pass --backends torch,ort,trt")
    bad = [p for p in precisions or () if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown precision '{bad[0]}'. Valid choices: {', '.join(PRECISIONS)}")
    for spec in backends:
        require_backend(spec)


def plan(run_dir: str | os.PathLike, backends: Sequence[str], precisions: Sequence[str] | None = None,
         device: str = "cpu") -> list[Source]:
    """Sources to run, backend by backend; raises before measuring when a backend or file is missing.

    ``device`` is the torch-style device given to backends that take one when the spec names no variant.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"run folder '{run}' does not exist; train and export first (python -m seadeploy.export)")
    _check_plan_args(backends, precisions)
    out: list[Source] = []
    for spec in backends:
        cls = backend_class(spec)
        have = available_precisions(run, spec)
        chosen = [p for p in (precisions or PRECISIONS) if p in have]
        if not chosen:
            want = ",".join(precisions) if precisions else "any precision"
            runs = f" ({spec} runs {', '.join(cls.precisions)})" if precisions and not set(precisions) & set(
                cls.precisions) else ""
            raise InputError(f"the run '{run}' has no {cls.artifact_kind} for {want}{runs} (it has: "
                             f"{', '.join(have) or 'none'}); run python -m seadeploy.export with the precision you need")
        out.extend(Source(spec, p, have[p], tuple(cls.run_options(device=device if ":" not in spec else None,
                                                                  precision=p).items())) for p in chosen)
    check_graphs_belong(run, out)
    return out


def check_graphs_belong(run: Path, sources: Sequence[Source]) -> None:
    """Refuse an ONNX file that does not belong to the run, with the check validate runs (``RunFolder.onnx_path``:
    the graph must take and return the shapes of the run's checkpoint); a file changed since export warns."""
    graphs = [s for s in sources if s.path.suffix == ".onnx"]
    if not graphs or not (run / runfolder.CHECKPOINT).is_file():
        return
    folder = RunFolder.load(run)
    known = len(folder.warnings)  # the folder's own notes (no manifest) are validate's business, not timing's
    for s in graphs:
        folder.onnx_path(s.precision)
    for warning in dict.fromkeys(folder.warnings[known:]):
        print(f"warning: {warning}", file=sys.stderr)


def plan_file(path: str | os.PathLike, backends: Sequence[str], device: str = "cpu") -> list[Source]:
    """Sources for one model file (``.onnx``, ``.engine`` ...): every requested backend that runs that kind."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"model file '{p}' does not exist")
    _check_plan_args(backends, None)
    takers = [s for s in backends if p.suffix in backend_class(s).file_suffixes]
    if not takers:
        runs = "; ".join(f"{s}: {', '.join(backend_class(s).file_suffixes) or 'run folders only'}" for s in backends)
        raise InputError(f"none of --backends {','.join(backends)} runs a '{p.suffix}' file ({runs})")
    if p.suffix == ".onnx":
        _check_sidecars(p)
    return [Source(s, FILE_PRECISION, p, tuple(backend_class(s).run_options(device=device).items())
                   if ":" not in s else ()) for s in takers]


def _check_sidecars(p: Path) -> None:
    """External data outside the model's folder (or missing) is one line here, before a runtime logs about it."""
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the backend that opens it
        return
    check_external_data(p, proto)


def open_backend(src: Source, threads: int | None = None, **extra: Any):
    """``create_backend`` for a source, with pinned threads where the backend takes them."""
    opts = {**dict(src.options), **src.backend_class.run_options(threads=threads)}
    return create_backend(src.backend, src.path, **opts, **extra)


def input_shape(run_dir: str | os.PathLike) -> tuple[int, ...] | None:
    """``(C, H, W)`` of one sample from the manifest (or the checkpoint); ``None`` when neither says."""
    run = Path(run_dir)
    if not run.is_dir():
        return None
    if has_manifest(run):
        dims = (read_manifest(run).input or {}).get("shape", [])[1:]
        if dims and all(isinstance(d, int) for d in dims):
            return tuple(dims)
    if (run / runfolder.CHECKPOINT).is_file():
        return tuple(runfolder.Checkpoint.load(run).spec.input_shape)
    return None


@contextmanager
def as_run_folder(file: str | os.PathLike) -> Iterator[tuple[Path, OnnxFile]]:
    """A temporary run folder holding ``file`` as ``model.onnx`` (for stages that read run folders)."""
    of = OnnxFile.load(file)
    with tempfile.TemporaryDirectory(prefix="seadeploy-onnx-") as tmp:
        of.write(Path(tmp) / onnx_name("fp32"))
        yield Path(tmp), of
