"""Run-folder file names, the self-describing checkpoint, atomic writes and the manifest.

A run folder ties the stages together; each stage reads only what the stage before it wrote::

    RUN/checkpoint.safetensors   weights + JSON metadata (ModelSpec, normalisation, metrics, versions)
    RUN/last.safetensors         last epoch (train); RUN/train_state.pt resumable optimiser/RNG state
    RUN/metrics.csv, curves.png  training history
    RUN/model.onnx, model.fp16.onnx, model.int8.onnx, model.<precision>.engine(.json)
    RUN/manifest.json            what export wrote and the checks that ran
    RUN/parity.json|csv|npz      validate;  RUN/latency.*, layers_<backend>.csv, buffers.json  profiling
    RUN/report.html|md           reports

Weights live in safetensors (loading can never run code); metadata is a JSON string in the
safetensors header under the key ``seadeploy``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seadeploy.errors import InputError

CHECKPOINT = "checkpoint.safetensors"
LAST_CHECKPOINT = "last.safetensors"
TRAIN_STATE = "train_state.pt"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
MANIFEST = "manifest.json"
PARITY_JSON, PARITY_CSV, PARITY_NPZ = "parity.json", "parity.csv", "parity.npz"
LATENCY_CSV, LATENCY_JSON = "latency.csv", "latency.json"
BUFFERS_JSON = "buffers.json"
REPORT_HTML, REPORT_MD = "report.html", "report.md"
FORMAT_VERSION = 1


def onnx_name(precision: str = "fp32") -> str:
    """``model.onnx`` for fp32, ``model.<precision>.onnx`` otherwise."""
    return "model.onnx" if precision == "fp32" else f"model.{precision}.onnx"


def engine_name(precision: str = "fp32") -> str:
    """``model.<precision>.engine``."""
    return f"model.{precision}.engine"


def layers_csv(backend: str) -> str:
    """``layers_<backend>.csv``."""
    return f"layers_{backend}.csv"


# --------------------------------------------------------------------------------------------- writes
@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or exception never leaves a half-written file under the final name.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise InputError(f"cannot write to '{final.parent}': {exc.strerror or exc}. Choose a writable --out folder") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN → null)."""
    from seadeploy.cli import _clean

    return write_text(path, json.dumps(_clean(obj), indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising ``InputError`` for a missing or corrupt one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"'{p}' does not exist")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"'{p}' is not valid JSON ({exc}); re-create it with the stage that writes it") from exc


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide numerics, for manifests and checkpoints."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("seadeploy", "torch", "numpy", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "tensorrt"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


# --------------------------------------------------------------------------------------- model spec
def _encode(obj: Any) -> Any:
    """JSON-encode kwargs keeping tuples (a tile ``(kh, kw)``) apart from lists (per-stage values)."""
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(_decode(v) for v in obj["__tuple__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


@dataclasses.dataclass
class ModelSpec:
    """Everything needed to rebuild a model: ``create_model(**spec.build_kwargs())``."""

    model: str
    attn: str | None = None
    attn_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_classes: int = 10
    input_size: int = 32
    in_chans: int = 3
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Record the backbone's attention defaults (e.g. the CIFAR TSE tile) explicitly, so a saved spec keeps
        # its meaning even if a default changes later. Unknown names are left for build() to report.
        from seadeploy.models import MODELS, _ensure_registered

        _ensure_registered()
        if self.model in MODELS:
            entry = MODELS.get(self.model)
            attn = entry.default_attn if self.attn is None else self.attn
            self.attn_kwargs = {**entry.attn_defaults.get(attn, {}), **dict(self.attn_kwargs)}

    def build(self):
        """Instantiate the PyTorch model this spec describes."""
        from seadeploy.models import create_model

        return create_model(self.model, attn=self.attn, attn_kwargs=dict(self.attn_kwargs),
                            num_classes=self.num_classes, input_size=self.input_size, **self.model_kwargs)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_chans, self.input_size, self.input_size)

    def to_dict(self) -> dict[str, Any]:
        return _encode(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = _decode(d)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---------------------------------------------------------------------------------------- checkpoint
@dataclasses.dataclass
class Checkpoint:
    """A self-describing checkpoint: spec + weights + normalisation + dataset + metrics + versions."""

    spec: ModelSpec
    state_dict: dict[str, Any]
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    dataset: str | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "spec": self.spec.to_dict(), "mean": list(self.mean),
                "std": list(self.std), "dataset": self.dataset, "metrics": self.metrics, "extra": self.extra,
                "versions": library_versions()}

    def save(self, path: str | os.PathLike) -> Path:
        """Atomically write weights + metadata to ``path`` (a ``.safetensors`` file)."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"seadeploy": json.dumps(self.metadata())})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Load a checkpoint file, or ``checkpoint.safetensors`` inside a run folder. Never unpickles."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(path)
        if p.is_dir():
            p = p / CHECKPOINT
        if not p.is_file():
            raise InputError(f"checkpoint '{p}' does not exist; train one (python -m seadeploy.train) or pass --model")
        try:
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as f:
                meta = (f.metadata() or {}).get("seadeploy")
            state = load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"checkpoint '{p}' is corrupt or not a safetensors file ({exc})") from exc
        if not meta:
            raise InputError(f"checkpoint '{p}' has no seadeploy metadata; it was not written by seadeploy")
        try:
            m = json.loads(meta)
            spec = ModelSpec.from_dict(m["spec"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"checkpoint '{p}' has unreadable metadata ({exc})") from exc
        return cls(spec=spec, state_dict=state, mean=tuple(m.get("mean", (0.5,) * 3)), std=tuple(m.get("std", (0.5,) * 3)),
                   dataset=m.get("dataset"), metrics=m.get("metrics", {}), extra=m.get("extra", {}))

    def build_model(self, strict: bool = True):
        """Rebuild the model from the spec and load the weights, with a clear error on any mismatch."""
        model = self.spec.build()
        load_state_checked(model, self.state_dict, source="checkpoint", hint=self.spec)
        return model.eval()


def load_state_checked(model, state: dict[str, Any], source: str = "checkpoint", hint: Any = None) -> None:
    """``model.load_state_dict`` with one readable ``InputError`` for missing/unexpected/mis-shaped tensors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or bad:
        parts = []
        if bad:
            k, got, want = bad[0]
            parts.append(f"tensor '{k}' has shape {got}, expected {want}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""))
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. '{missing[0]}')")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. '{unexpected[0]}')")
        note = f" The weights do not fit {hint}; pass the same --model/--attn/--attn-arg it was trained with." if hint else ""
        raise InputError(f"{source} weights do not fit the model: {'; '.join(parts)}.{note}")
    model.load_state_dict(state, strict=True)
