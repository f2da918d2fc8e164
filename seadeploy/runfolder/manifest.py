"""``manifest.json``: what export wrote (files and engines by precision, paths relative) and the checks that ran.

Every field is type-checked on read (:meth:`Manifest.from_dict`), so a hand-edited or foreign manifest is one
``InputError`` (exit 2) naming the field, never a traceback in a later stage.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from seadeploy.errors import ConfigError, InputError
from seadeploy.fileio import library_versions, read_json, write_json
from seadeploy.runfolder.checkpoint import ModelSpec
from seadeploy.runfolder.fields import (
    BOOL,
    INTEGER,
    LIST,
    NUMBER,
    OBJECT,
    TEXT,
    check_field,
    check_fields,
    check_list_of,
)
from seadeploy.runfolder.names import CHECKPOINT, MANIFEST
from seadeploy.runfolder.paths import inside

#: manifest.json schema: 2 records the model seed and per-input-kind parity verdicts; 1 (no seed, one export-only
#: parity dict per file) is still read.
MANIFEST_VERSION = 2
MANIFEST_VERSIONS = (1, 2)

#: The kind of every top-level field (``spec`` is checked by :class:`~seadeploy.runfolder.ModelSpec`).
_FIELDS = {"input": OBJECT, "output": OBJECT, "opset": INTEGER, "dataset": TEXT, "seed": INTEGER, "weights": TEXT,
           "checkpoint": TEXT, "checkpoint_sha256": TEXT, "exporter": TEXT, "dynamic_axes": OBJECT, "files": OBJECT,
           "engines": OBJECT, "failed": OBJECT, "checks": LIST, "versions": OBJECT}
_OPTIONAL = ("dataset", "seed", "weights", "checkpoint", "checkpoint_sha256", "exporter")
#: The kinds of the keys a file / engine entry and a check record may carry (``path`` is checked by ``inside``).
_ENTRY = {"precision": TEXT, "sha256": TEXT, "bytes": INTEGER, "parity": OBJECT,
          "quantization": OBJECT, "policy": OBJECT, "simplified": OBJECT}
_PARITY = {"passed": BOOL, "reference": TEXT, "comparisons": LIST, "rules": OBJECT, "notes": LIST}
_CHECK = {"name": TEXT, "file": TEXT, "passed": BOOL, "detail": TEXT, "metrics": OBJECT}


@dataclasses.dataclass
class Check:
    """One check that ran on one file (``manifest.checks``)."""

    name: str
    file: str
    passed: bool
    detail: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FileEntry:
    """``manifest.files[precision]`` (and ``failed``): one ONNX file, how it was made and its parity verdict.

    ``parity`` = ``{"passed", "reference", "rules", "comparisons": [row per input kind], "notes"}``; ``policy`` (fp16),
    ``quantization`` (int8) and ``simplified`` (onnxslim) record the recipe; keys a newer seadeploy added are kept in
    ``extra`` and written back.
    """

    path: str
    precision: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    parity: dict[str, Any] = dataclasses.field(default_factory=dict)
    policy: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    simplified: dict[str, Any] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v not in (None, {})}
        return {**self.extra, **d}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


@dataclasses.dataclass
class EngineEntry:
    """``manifest.engines[precision]``: a TensorRT engine, its ``sha256`` and its build sidecar (TensorRT version,
    GPU, device memory, the precision check)."""

    path: str
    sha256: str | None = None
    sidecar: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.sidecar, "path": self.path, **({"sha256": self.sha256} if self.sha256 else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineEntry:
        return cls(path=data["path"], sha256=data.get("sha256"),
                   sidecar={k: v for k, v in data.items() if k not in ("path", "sha256")})


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
    files: dict[str, FileEntry] = dataclasses.field(default_factory=dict)
    engines: dict[str, EngineEntry] = dataclasses.field(default_factory=dict)
    #: precisions whose file failed parity at export: kept for ``validate --layerwise`` but never used as vouched for
    failed: dict[str, FileEntry] = dataclasses.field(default_factory=dict)
    checks: list[Check] = dataclasses.field(default_factory=list)
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    format_version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.update(spec=self.spec.to_dict(), files={p: e.to_dict() for p, e in self.files.items()},
                 failed={p: e.to_dict() for p, e in self.failed.items()},
                 engines={p: e.to_dict() for p, e in self.engines.items()}, checks=[c.to_dict() for c in self.checks])
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
        _check_payload(data, where)
        try:
            spec = ModelSpec.from_dict(data["spec"])
        except (TypeError, KeyError, ValueError, ConfigError) as exc:
            raise InputError(f"'{where}' has an unreadable model spec ({exc}); re-run export") from exc
        known = {f.name for f in dataclasses.fields(cls)} - {"spec", "files", "failed", "engines", "checks"}
        return cls(spec=spec, **{k: v for k, v in data.items() if k in known},
                   files={p: FileEntry.from_dict(e) for p, e in data["files"].items()},
                   failed={p: FileEntry.from_dict(e) for p, e in (data.get("failed") or {}).items()},
                   engines={p: EngineEntry.from_dict(e) for p, e in (data.get("engines") or {}).items()},
                   checks=[Check(**{k: c[k] for k in ("name", "file", "passed", "detail", "metrics") if k in c})
                           for c in data.get("checks") or []])

    def entry(self, precision: str, kind: str = "files") -> FileEntry | EngineEntry | None:
        return (self.engines if kind == "engines" else self.files).get(precision)

    def file(self, run_dir: str | os.PathLike, precision: str = "fp32", kind: str = "files") -> Path:
        """The ONNX file (``kind="files"``) or engine (``"engines"``) recorded for ``precision``, inside ``run_dir``.

        Raises:
            InputError: no such entry, an unsafe path, or the file is gone.
        """
        entries = self.engines if kind == "engines" else self.files
        if precision in self.failed and kind == "files":
            raise InputError(f"the {precision} file of '{run_dir}' failed parity at export (manifest 'failed'); "
                             f"see why with python -m seadeploy.validate {run_dir} --layerwise --precision {precision}")
        if precision not in entries:
            have = ", ".join(entries) or "none"
            raise InputError(f"the run in '{run_dir}' has no {precision} "
                             f"{'engine' if kind == 'engines' else 'ONNX file'} (it has: {have}); re-run export with "
                             f"--precision {precision}" + (" --engine" if kind == "engines" else ""))
        path = inside(run_dir, entries[precision].path, "engine" if kind == "engines" else "ONNX file")
        if not path.is_file():
            raise InputError(f"'{path}' listed in the manifest does not exist; re-run export")
        return path


def write_manifest(run_dir: str | os.PathLike, manifest: Manifest) -> Path:
    """Atomically write ``RUN/manifest.json``; refuses entries whose paths are not inside the folder."""
    for kind in ("files", "engines", "failed"):
        for entry in getattr(manifest, kind).values():
            inside(run_dir, entry.path, "file" if kind == "failed" else kind[:-1])
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
    for kind in ("files", "engines", "failed"):
        for entry in getattr(m, kind).values():
            inside(path.parent, entry.path, "file" if kind == "failed" else kind[:-1])
    return m


def has_manifest(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / MANIFEST).is_file()




def _check_payload(data: dict[str, Any], where: str) -> None:
    """Every field of a manifest payload has its kind (InputError naming the first that does not)."""
    check_field(where, "spec", data["spec"], OBJECT)
    check_fields(where, data, _FIELDS, optional=_OPTIONAL)
    for key in ("mean", "std"):
        if key in data:
            check_list_of(where, key, data[key], NUMBER)
    for kind in ("files", "engines", "failed"):
        for precision, entry in (data.get(kind) or {}).items():
            if not isinstance(entry, dict) or "path" not in entry:
                raise InputError(f"'{where}' has a malformed {kind} entry for {precision}; re-run export")
            check_fields(where, entry, _ENTRY)
            check_fields(where, entry.get("parity") or {}, _PARITY)
    for i, record in enumerate(data.get("checks") or []):
        check_field(where, f"checks[{i}]", record, OBJECT)
        check_fields(where, record, _CHECK)
    check_field(where, "input.shape", (data["input"]).get("shape", []), LIST)
