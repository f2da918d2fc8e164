"""Where a non-zoo PyTorch model comes from: a ``pkg.mod:fn`` / ``file.py:fn`` factory or a ``timm:`` /
``torchvision:`` name (optional libraries, exit 3 with the install hint), called with one-line errors, and
``--weights`` files read without unpickling code (safetensors, or ``torch.load(weights_only=True)``)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from seadeploy.errors import BackendUnavailable, ConfigError, InputError

LIBRARIES = {"timm": "pip install timm (it needs a torchvision-compatible PyTorch; CPU wheels of torchvision "
                     "may not import)",
             "torchvision": "pip install torchvision matching your torch version"}


def _import_library(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything (OSError, RuntimeError) on import
        raise BackendUnavailable(f"'{name}:' models need {name}, which does not import here "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
                                 f"{LIBRARIES[name]}") from exc


def _load_file_module(path: Path):
    # A stable unique module name per file, so two factories in same-named files do not clash in sys.modules.
    name = "seadeploy_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import '{path}' as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file may raise anything at import
        del sys.modules[name]
        raise InputError(f"importing model file '{path}' failed: {type(exc).__name__}: {exc}") from exc
    return module


def resolve_factory(model: str):
    """The callable behind ``pkg.mod:fn`` / ``file.py:fn`` (``timm:``/``torchvision:`` give a library wrapper)."""
    ref, _, fn = str(model).partition(":") if str(model).startswith("onnx:") else str(model).rpartition(":")
    if ref == "onnx":
        raise InputError(f"this run was exported from an ONNX file ({fn}) and has no PyTorch model: use the ONNX "
                         "Runtime backend (its fp32 model.onnx is the reference)")
    if ref in LIBRARIES:
        lib = _import_library(ref)
        if ref == "timm":
            return lambda **kw: lib.create_model(fn, pretrained=False, **kw)
        tv_models = importlib.import_module("torchvision.models")
        return lambda **kw: tv_models.get_model(fn, weights=None, **kw)
    if not ref or not fn:
        raise ConfigError(f"model source '{model}' must be NAME, package.module:factory, file.py:factory, "
                          "timm:NAME or torchvision:NAME")
    if ref.endswith(".py"):
        module = _load_file_module(Path(ref))
    else:
        try:
            module = importlib.import_module(ref)
        except ImportError as exc:
            raise InputError(f"cannot import module '{ref}' of model source '{model}': {exc}") from exc
    factory = getattr(module, fn, None)
    if not callable(factory):
        raise InputError(f"'{ref}' has no callable '{fn}' (model source '{model}')")
    return factory


def accepts(factory: Any, name: str) -> bool:
    """Whether ``factory`` takes keyword ``name`` (explicitly or through ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def call_factory(model: str, kwargs: dict[str, Any]) -> nn.Module:
    """Call the factory of ``model`` with ``kwargs``; one-line errors for raising / bad signature / non-modules."""
    factory = resolve_factory(model)
    sig = None
    with contextlib.suppress(TypeError, ValueError):  # builtins without a signature: just call
        sig = inspect.signature(factory)
    if sig is not None:
        try:
            sig.bind(**kwargs)
        except TypeError as exc:
            raise InputError(f"model factory '{model}' cannot be called with {kwargs or 'no arguments'}: {exc}; "
                             f"its signature is {sig} — pass arguments with --model-arg KEY=VALUE") from exc
    try:
        net = factory(**kwargs)
    except (BackendUnavailable, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - the user's factory may raise anything
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(f"model factory '{model}' raised {type(exc).__name__}: {first}") from exc
    if not isinstance(net, nn.Module):
        raise InputError(f"model factory '{model}' returned {type(net).__name__}, not a torch.nn.Module")
    return net


# ------------------------------------------------------------------------------------------------ weights
def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a PyTorch file (``weights_only=True``: loading runs no code).

    ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers and a DataParallel ``module.`` prefix are unwrapped.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--weights '{p}' does not exist")
    if p.suffix == ".safetensors":
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"--weights '{p}' is not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--weights '{p}' is not a PyTorch state dict loadable with weights_only=True ({first})") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"--weights '{p}' holds a {type(obj).__name__}, not a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def parse_floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"{flag} expects comma-separated numbers such as 0.485,0.456,0.406, got '{text}'") from exc
    if len(vals) not in (1, 3):
        raise ConfigError(f"{flag} needs 1 or 3 values (one per input channel), got {len(vals)}")
    return vals * 3 if len(vals) == 1 else vals
