"""One definition of every run-folder result file: its name, its keys, its schema version, one writer, one reader.

File names are the constants of :mod:`seadeploy.artifacts` (their one home); this module says what each file holds
and is the only code that reads or writes them::

    m = read_manifest(run)                      # typed Manifest; InputError when missing, corrupt or unsafe
    path = m.file(run, "int8")                  # the recorded file, resolved inside the run folder
    write_parity(run, report.to_dict(), report.to_frame(), arrays)
    frame = read_parity(run)                    # parity.csv, else parity.json's "comparisons"

Every JSON result carries ``format_version``. Paths recorded in ``manifest.json`` are relative to the run folder;
reading refuses absolute paths and paths that leave the folder (a copied or moved run folder stays valid, and a
crafted manifest cannot point a stage at files elsewhere). Which stage writes which file is :data:`STAGE_FILES`;
``compare`` removes a stage's files before re-running it (:func:`stage_files`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd

from seadeploy.artifacts import (
    BUFFERS_JSON,
    CHECKPOINT,
    LATENCY_CSV,
    LATENCY_JSON,
    LAYERS_SUMMARY,
    MANIFEST,
    METRICS_CSV,
    PARITY_CSV,
    PARITY_JSON,
    PARITY_LAYERS_CSV,
    PARITY_NPZ,
    PIPELINE_JSON,
    PRECISIONS,
    ModelSpec,
    atomic_path,
    engine_name,
    layers_csv,
    library_versions,
    onnx_name,
    read_json,
    write_json,
)
from seadeploy.errors import InputError

#: manifest.json schema: 2 records the model seed and per-input-kind parity verdicts; 1 (no seed, one export-only
#: parity dict per file) is still read.
MANIFEST_VERSION = 2
MANIFEST_VERSIONS = (1, 2)
PARITY_VERSION = 2  # 2: "comparisons" rows with the rule; 1 wrote the same rows (readers accept both)
LATENCY_VERSION = 1
BUFFERS_VERSION = 1
PIPELINE_VERSION = 1
LAYER_BACKENDS = ("ort", "torch", "trt")

#: Files each stage writes into a run folder (what ``compare`` clears before re-running that stage).
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "export": (MANIFEST, *(onnx_name(p) for p in PRECISIONS)),
    "validate": (PARITY_JSON, PARITY_CSV, PARITY_NPZ, PARITY_LAYERS_CSV),
    "latency": (LATENCY_CSV, LATENCY_JSON),
    "layers": (*(layers_csv(b) for b in LAYER_BACKENDS), LAYERS_SUMMARY),
    "buffers": (BUFFERS_JSON,),
    "pipeline": (PIPELINE_JSON,),
}


def stage_files(stage: str) -> tuple[str, ...]:
    """The run-folder files ``stage`` writes (empty for stages that write none here)."""
    return STAGE_FILES.get(stage, ())


def inside(run_dir: str | os.PathLike, rel: Any, what: str = "file") -> Path:
    """``run_dir / rel`` for a relative path that stays inside ``run_dir``.

    Raises:
        InputError: ``rel`` is not a string, is absolute, or leaves the folder (``..``, a link pointing out).
    """
    run = Path(run_dir)
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"'{run / MANIFEST}' records a {what} path {rel!r}, not a file name; re-run export")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise InputError(f"'{run / MANIFEST}' records the absolute {what} path '{rel}': run-folder paths must be "
                         "relative to the folder; re-run export")
    path = run / rel
    root = run.resolve()
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts or not path.resolve().is_relative_to(root):
        raise InputError(f"'{run / MANIFEST}' records the {what} path '{rel}', which leaves the run folder; "
                         "re-run export")
    return path


# ----------------------------------------------------------------------------------------------- manifest
@dataclasses.dataclass
class Manifest:
    """``manifest.json``: what export wrote (``files``/``engines`` by precision, paths relative) and the checks.

    ``files[precision]`` = ``{"path", "precision", "sha256", "bytes", "parity", ...}`` where ``parity`` is
    ``{"passed", "reference", "comparisons": [row per input kind]}`` (rows as :meth:`seadeploy.parity.Comparison.
    to_row`); ``engines[precision]`` = the engine sidecar plus ``sha256``; ``checks`` = ``Check.to_dict()`` records.
    """

    spec: ModelSpec
    input: dict[str, Any]
    output: dict[str, Any]
    opset: int
    mean: list[float] = dataclasses.field(default_factory=list)
    std: list[float] = dataclasses.field(default_factory=list)
    dataset: str | None = None
    seed: int | None = None
    weights: str | None = None
    checkpoint: str | None = CHECKPOINT
    checkpoint_sha256: str | None = None
    exporter: str | None = None
    dynamic_axes: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    format_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        return {"format_version": d.pop("format_version"), **d}

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST) -> Manifest:
        """Check and type a manifest payload (InputError names what is wrong and says to re-run export)."""
        if not isinstance(data, dict):
            raise InputError(f"'{where}' is not a seadeploy manifest (top level is not an object); re-run export")
        missing = [k for k in ("format_version", "spec", "input", "output", "opset", "files") if k not in data]
        if missing:
            raise InputError(f"'{where}' is missing {', '.join(missing)}; it is corrupt or not a seadeploy manifest, "
                             "re-run export")
        if data["format_version"] not in MANIFEST_VERSIONS:
            raise InputError(f"'{where}' has format_version {data['format_version']}, this seadeploy reads "
                             f"{', '.join(map(str, MANIFEST_VERSIONS))}; re-run export with this version")
        if not isinstance(data["files"], dict) or not isinstance(data["spec"], dict) \
                or not isinstance(data.get("engines", {}), dict):
            raise InputError(f"'{where}' has malformed 'files'/'engines'/'spec' entries; re-run export")
        for kind in ("files", "engines"):
            for precision, entry in (data.get(kind) or {}).items():
                if not isinstance(entry, dict) or "path" not in entry:
                    raise InputError(f"'{where}' has a malformed {kind} entry for {precision}; re-run export")
        try:
            spec = ModelSpec.from_dict(data["spec"])
        except (TypeError, KeyError, ValueError) as exc:
            raise InputError(f"'{where}' has an unreadable model spec ({exc}); re-run export") from exc
        known = {f.name for f in dataclasses.fields(cls)} - {"spec"}
        return cls(spec=spec, **{k: v for k, v in data.items() if k in known})

    def entry(self, precision: str, kind: str = "files") -> dict[str, Any] | None:
        return (self.engines if kind == "engines" else self.files).get(precision)

    def file(self, run_dir: str | os.PathLike, precision: str = "fp32", kind: str = "files") -> Path:
        """The ONNX file (``kind="files"``) or engine (``"engines"``) recorded for ``precision``, inside ``run_dir``.

        Raises:
            InputError: no such entry, an unsafe path, or the file is gone.
        """
        entries = self.engines if kind == "engines" else self.files
        if precision not in entries:
            have = ", ".join(entries) or "none"
            raise InputError(f"the run in '{run_dir}' has no {precision} "
                             f"{'engine' if kind == 'engines' else 'ONNX file'} (it has: {have}); re-run export with "
                             f"--precision {precision}" + (" --engine" if kind == "engines" else ""))
        path = inside(run_dir, entries[precision]["path"], "engine" if kind == "engines" else "ONNX file")
        if not path.is_file():
            raise InputError(f"'{path}' listed in the manifest does not exist; re-run export")
        return path


def write_manifest(run_dir: str | os.PathLike, manifest: Manifest) -> Path:
    """Atomically write ``RUN/manifest.json``; refuses entries whose paths are not inside the folder."""
    for kind in ("files", "engines"):
        for entry in getattr(manifest, kind).values():
            inside(run_dir, entry["path"], kind[:-1])
    return write_json(Path(run_dir) / MANIFEST, manifest.to_dict())


def read_manifest(run_dir: str | os.PathLike) -> Manifest:
    """Read ``RUN/manifest.json`` (or a manifest file given directly) and check every recorded path.

    Raises:
        InputError: missing, not JSON, an unknown schema version, malformed, or a path outside the folder.
    """
    p = Path(run_dir)
    path = p / MANIFEST if p.is_dir() else p
    if not path.is_file():
        raise InputError(f"no {MANIFEST} in '{p}'; run `python -m seadeploy.export ... --out {p}` first")
    m = Manifest.from_dict(read_json(path), str(path))
    for kind in ("files", "engines"):
        for entry in getattr(m, kind).values():
            inside(path.parent, entry["path"], kind[:-1])
    return m


def has_manifest(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / MANIFEST).is_file()


# ------------------------------------------------------------------------------------------------- parity
def write_parity(out_dir: str | os.PathLike, payload: dict[str, Any], frame: pd.DataFrame,
                 arrays: dict[str, np.ndarray] | None = None, layers: pd.DataFrame | None = None) -> list[Path]:
    """Atomically write ``parity.json`` (``payload`` with ``"comparisons"``), ``parity.csv`` (``frame``, one row per
    comparison), ``parity.npz`` (inputs/labels/reference/outputs, for ``--inputs`` replay) and, with layer-wise
    results, ``parity_layers.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "comparisons" not in payload:
        raise ValueError("parity payload needs 'comparisons'")  # programming error: the schema's one key
    written = [write_json(out / PARITY_JSON, {"format_version": PARITY_VERSION, **payload})]
    written.append(_write_csv(out / PARITY_CSV, frame))
    if arrays is not None:
        with atomic_path(out / PARITY_NPZ) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
            np.savez_compressed(f, **arrays)
        written.append(out / PARITY_NPZ)
    if layers is not None and not layers.empty:
        written.append(_write_csv(out / PARITY_LAYERS_CSV, layers))
    return written


def read_parity(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per comparison: ``parity.csv``, else the ``comparisons`` of ``parity.json``.

    Raises:
        InputError: neither file is there, a file is unreadable, or it holds no comparisons.
    """
    run = Path(run_dir)
    if (run / PARITY_CSV).is_file():
        return _read_csv(run / PARITY_CSV)
    if not (run / PARITY_JSON).is_file():
        raise InputError(f"no {PARITY_CSV} or {PARITY_JSON} (python -m seadeploy.validate {run})")
    data = read_json(run / PARITY_JSON)
    rows = data.get("comparisons") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{PARITY_JSON} holds no comparisons")
    frame = pd.json_normalize(rows)
    return frame.drop(columns=[c for c in frame.columns if c.startswith(("tolerance.", "info."))])


def read_parity_inputs(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The input sets of a ``parity.npz`` (``x_random``, ``x_data``, ``y_data``) or any ``.npz`` with ``x`` [and ``y``]."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"inputs file '{p}' does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"'{p}' is not a readable .npz file ({exc})") from exc
    if "x" in arrays:
        return {"data" if "y" in arrays else "random": (arrays["x"], arrays.get("y"))}
    out = {k: (arrays[f"x_{k}"], arrays.get(f"y_{k}")) for k in ("random", "data") if f"x_{k}" in arrays}
    if not out:
        raise InputError(f"'{p}' has no 'x' (or x_random / x_data) array to replay")
    return out


# -------------------------------------------------------------------------------------------- training
def read_training(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``metrics.csv`` (one row per epoch, written by :func:`seadeploy.train.history.write_metrics_csv`)."""
    return _read_csv(Path(run_dir) / METRICS_CSV)


# --------------------------------------------------------------------------------------- latency, layers
def write_latency(run_dir: str | os.PathLike, frame: pd.DataFrame, **meta: Any) -> tuple[Path, Path]:
    """``latency.csv`` (one row per backend × precision × batch × metric) and ``latency.json`` (rows + ``meta``)."""
    run = Path(run_dir)
    csv = _write_csv(run / LATENCY_CSV, frame)
    js = write_json(run / LATENCY_JSON, {"format_version": LATENCY_VERSION, **meta, "rows": frame.to_dict("records"),
                                         "versions": library_versions()})
    return csv, js


def read_latency(run_dir: str | os.PathLike) -> pd.DataFrame:
    """``latency.csv`` as written (InputError when missing, unreadable or empty)."""
    return _read_csv(Path(run_dir) / LATENCY_CSV, f"python -m seadeploy.profiling latency {run_dir}")


def write_layers(run_dir: str | os.PathLike, backend: str, frame: pd.DataFrame) -> Path:
    """``layers_<backend>.csv`` (the per-layer schema of :mod:`seadeploy.profiling.schema`)."""
    return _write_csv(Path(run_dir) / layers_csv(backend), frame)


def read_layers(run_dir: str | os.PathLike) -> list[pd.DataFrame]:
    """Every ``layers_<backend>.csv`` of the run that holds rows (InputError when there is none)."""
    run = Path(run_dir)
    frames = []
    for path in sorted(run.glob(layers_csv("*"))):
        try:
            frames.append(_read_csv(path))
        except InputError:
            continue
    if not frames:
        raise InputError(f"no {layers_csv('<backend>')} (python -m seadeploy.profiling layers {run})")
    return frames


def write_layers_summary(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """``layers_summary.json``: per-layer sum vs end-to-end (``gaps``) of a layer profile."""
    return write_json(Path(run_dir) / LAYERS_SUMMARY, {"format_version": 1, **summary})


def read_layers_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    return _read_json_obj(Path(run_dir) / LAYERS_SUMMARY)


# ------------------------------------------------------------------------------------------------ buffers
def write_buffers(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """``buffers.json``: ``attention_buffer_elements``, ``total_buffer_elements``, ``blocks`` [, ...]."""
    return write_json(Path(run_dir) / BUFFERS_JSON, {**summary, "format_version": BUFFERS_VERSION})


def read_buffers(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``buffers.json`` (InputError when missing, not JSON, or without ``attention_buffer_elements``)."""
    data = _read_json_obj(Path(run_dir) / BUFFERS_JSON, f"python -m seadeploy.profiling buffers {run_dir}")
    if "attention_buffer_elements" not in data.get("summary", data):
        raise InputError(f"{BUFFERS_JSON} has no attention_buffer_elements")
    return data


def write_pipeline(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """``pipeline.json``: the streaming-accelerator timing summary (``seadeploy/dataflow``): ``fps``,
    ``initiation_interval_cycles``, ``fill_latency_cycles``, ``fifo_elements``, ``hardware`` [, ...]."""
    return write_json(Path(run_dir) / PIPELINE_JSON, {**summary, "format_version": PIPELINE_VERSION})


def read_pipeline(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``pipeline.json`` (InputError when missing, not JSON, or without ``fps``)."""
    data = _read_json_obj(Path(run_dir) / PIPELINE_JSON, f"python -m seadeploy.profiling pipeline {run_dir}")
    if "fps" not in data:
        raise InputError(f"{PIPELINE_JSON} has no fps")
    return data


# ------------------------------------------------------------------------------------------------ helpers
def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _read_csv(path: Path, hint: str = "") -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"no {path.name}" + (f" ({hint})" if hint else ""))
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} is unreadable ({exc})") from exc
    if df.empty:
        raise InputError(f"{path.name} is empty")
    return df


def _read_json_obj(path: Path, hint: str = "") -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"no {path.name}" + (f" ({hint})" if hint else ""))
    try:
        data = read_json(path)
    except InputError as exc:
        raise InputError(f"{path.name} is not valid JSON; re-run the stage that writes it") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path.name} is not a JSON object")
    return data


__all__ = ["CHECKPOINT", "MANIFEST", "Manifest", "STAGE_FILES", "engine_name", "inside", "onnx_name", "read_buffers",
           "read_latency", "read_layers", "read_layers_summary", "read_manifest", "read_parity", "read_parity_inputs",
           "read_training",
           "stage_files", "write_buffers", "write_latency", "write_layers", "write_layers_summary", "write_manifest",
           "write_parity"]
