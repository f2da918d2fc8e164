"""The model recipe (:class:`ModelSpec`) and the self-describing checkpoint (:class:`Checkpoint`).

Weights live in safetensors (loading can never run code); metadata is a JSON string in the safetensors header
under the key ``seadeploy``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from seadeploy.errors import ConfigError, InputError
from seadeploy.fileio import atomic_path, library_versions
from seadeploy.runfolder.names import CHECKPOINT, FORMAT_VERSION


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
    """Everything needed to rebuild a model, as plain data (its fields are type-checked, nothing else).

    :func:`seadeploy.models.build_model` builds it; :func:`seadeploy.models.resolve_spec` writes a backbone's
    attention defaults into it where a spec is made from flags.
    """

    model: str
    attn: str | None = None
    attn_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_classes: int = 10
    input_size: int = 32
    in_chans: int = 3
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_spec_types(self)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_chans, self.input_size, self.input_size)

    def to_dict(self) -> dict[str, Any]:
        return _encode(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        if not isinstance(d, dict):
            raise ConfigError(f"a model spec must be a JSON object, got {type(d).__name__} {str(d)[:40]!r}")
        d = _decode(d)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


MAX_INPUT_FACTOR = 16  # --input-size may be up to 16x the model's default side (CIFAR 512 px, ImageNet 3584 px)


def check_input_size(model: str, size: Any, default: int) -> None:
    """Refuse an input side that is not a positive integer or beyond ``MAX_INPUT_FACTOR`` x the model's default.

    The bound keeps a typo (``--input-size 100000``: a 120 GB activation) from reaching an allocation.
    """
    limit = MAX_INPUT_FACTOR * int(default)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"--input-size must be a positive integer, got {size!r}")
    if size > limit:
        raise ConfigError(f"--input-size {size} is too large for {model}: at most {limit} px "
                          f"({MAX_INPUT_FACTOR}x its {default} px default)")


def _check_spec_types(spec: ModelSpec) -> None:
    """Refuse fields of the wrong type (a hand-edited or foreign checkpoint/manifest) with one ``ConfigError``."""
    want = {"model": (str,), "attn": (str, type(None)), "attn_kwargs": (dict,), "num_classes": (int,),
            "input_size": (int,), "in_chans": (int,), "model_kwargs": (dict,)}
    for name, kinds in want.items():
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise ConfigError(f"model spec field '{name}' must be {kind}, got {type(value).__name__} {value!r:.40}")
    for name in ("num_classes", "in_chans"):
        if getattr(spec, name) < 1:
            raise ConfigError(f"model spec field '{name}' must be ≥ 1, got {getattr(spec, name)}")


def _floats(value: Any, field: str, where: Path, n: int) -> tuple[float, ...]:
    """Metadata ``mean``/``std``: ``n`` finite numbers (std > 0)."""
    ok = isinstance(value, list | tuple) and len(value) == n and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if ok and field == "std":
        ok = all(v > 0 for v in value)
    if not ok:
        raise InputError(f"checkpoint '{where}' has unreadable metadata: '{field}' must be {n} finite numbers"
                         f"{' > 0' if field == 'std' else ''}, got {value!r:.60}")
    return tuple(float(v) for v in value)


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
        from safetensors.torch import save_file  # noqa: PLC0415  the run folder stays torch-free: reports and run-folder readers import it (torch: ~1.8 s)

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"seadeploy": json.dumps(self.metadata())})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Load a checkpoint file, or ``checkpoint.safetensors`` inside a run folder. Never unpickles."""
        from safetensors.torch import load_file  # noqa: PLC0415  the run folder stays torch-free: reports and run-folder readers import it (torch: ~1.8 s)

        p = Path(path)
        if p.is_dir():
            p = p / CHECKPOINT
        if not p.is_file():
            raise InputError(f"checkpoint '{p}' does not exist; train one (python -m seadeploy.train) or pass --model")
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = (f.metadata() or {}).get("seadeploy")
            state = load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"checkpoint '{p}' is corrupt or not a safetensors file ({exc})") from exc
        if not meta:
            raise InputError(f"checkpoint '{p}' has no seadeploy metadata; it was not written by seadeploy")
        try:
            m = json.loads(meta)
            if not isinstance(m, dict):
                raise TypeError(f"the metadata is a JSON {type(m).__name__}, not an object")
            spec = ModelSpec.from_dict(m["spec"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"checkpoint '{p}' has unreadable metadata ({exc})") from exc
        n = spec.in_chans
        mean, std = _floats(m.get("mean", [0.5] * n), "mean", p, n), _floats(m.get("std", [0.5] * n), "std", p, n)
        for key, kinds in (("dataset", (str, type(None))), ("metrics", (dict,)), ("extra", (dict,))):
            if not isinstance(m.get(key, kinds[0]()), kinds):
                raise InputError(f"checkpoint '{p}' has unreadable metadata: '{key}' is a {type(m[key]).__name__}")
        return cls(spec=spec, state_dict=state, mean=mean, std=std, dataset=m.get("dataset"),
                   metrics=m.get("metrics") or {}, extra=m.get("extra") or {})


def load_state_checked(model, state: dict[str, Any], source: str = "checkpoint", hint: Any = None) -> None:
    """``model.load_state_dict`` with one readable ``InputError`` for missing/unexpected/mis-shaped tensors.

    Also refused, never cast: a tensor whose dtype differs from the model's own (float weights stored as
    int32 would be truncated to integers by ``load_state_dict``), and a floating tensor holding NaN/Inf.
    """
    import torch  # noqa: PLC0415  the run folder stays torch-free: reports and run-folder readers import it (torch: ~1.8 s)

    own = model.state_dict()
    if not isinstance(state, dict):
        raise InputError(f"{source} weights are a {type(state).__name__}, not a dict of tensors")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    not_tensor = [k for k in own if k in state and not isinstance(state[k], torch.Tensor)]
    if not_tensor:
        raise InputError(f"{source} entry '{not_tensor[0]}' is a {type(state[not_tensor[0]]).__name__}, not a tensor; "
                         "re-create the file with the stage that writes it")
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if k in state and state[k].shape != v.shape]
    dtypes = [(k, state[k].dtype, v.dtype) for k, v in own.items() if k in state and state[k].dtype != v.dtype]
    if dtypes and not (missing or unexpected or bad):
        k, got, want = dtypes[0]
        more = f" (+{len(dtypes) - 1} more)" if len(dtypes) > 1 else ""
        raise InputError(f"{source} tensor '{k}' is stored as {str(got).removeprefix('torch.')} but the model's is "
                         f"{str(want).removeprefix('torch.')}{more}; refused rather than cast (a cast would change the "
                         "weights); re-save the weights in their own dtype")
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
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise InputError(f"{source} holds NaN/Inf in tensor '{k}' ({int((~torch.isfinite(v)).sum())} of {v.numel()} "
                             "values): the weights are broken (training diverged?); train again or use another checkpoint")
    if getattr(state, "_metadata", None) is None and hasattr(own, "_metadata"):
        # safetensors keeps tensors only; a module's own loading hook (MNASNet's) reads its version from here
        state = type(own)(state)
        state._metadata = own._metadata
    model.load_state_dict(state, strict=True)
