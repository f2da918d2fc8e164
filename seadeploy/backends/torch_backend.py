"""PyTorch eager backend (CPU or CUDA): the reference every other backend is compared against.

On CUDA, cuDNN convolutions use TF32 by default (PyTorch ≥ 1.12), which changes fp32 results at the
1e-3 level. For strict fp32 parity this backend turns TF32 off around every ``infer`` (and restores the
global setting afterwards); with ``allow_tf32=True`` it leaves TF32 on, warns, and records
``info["tf32"] = True`` so reports can say so.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seadeploy.backends.base import BACKENDS, Backend, TensorSpec
from seadeploy.errors import BackendUnavailable, ConfigError

CUDA_HINT = ("install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/) on a machine with an "
             "NVIDIA GPU and driver")


@BACKENDS.register("torch")
class TorchBackend(Backend):
    """Eager PyTorch on ``device``.

    Args:
        source: an ``nn.Module``, a run folder or a ``checkpoint.safetensors`` file.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        allow_tf32: keep TF32 on for CUDA fp32 math (faster, ~1e-3 relative error); reported in ``info``.
        input_shape: ``(C, H, W)`` of one sample; default: the checkpoint's (unknown for a bare module).
        input_name: name of the input in feeds. output_name: name of the returned output.
        threads: pin ``torch.set_num_threads`` (CPU) to this value; default: leave PyTorch's setting.
    """

    name = "torch"

    def __init__(self, source: nn.Module | str | os.PathLike, device: str = "cpu", allow_tf32: bool = False,
                 input_shape: Sequence[int] | None = None, input_name: str = "x", output_name: str = "logits",
                 threads: int | None = None) -> None:
        super().__init__()
        self.device = _check_device(device)
        if isinstance(source, nn.Module):
            model, ckpt_shape = source, None
        elif isinstance(source, str | os.PathLike):
            from seadeploy.artifacts import Checkpoint

            ckpt = Checkpoint.load(Path(source))
            model, ckpt_shape = ckpt.build_model(), ckpt.spec.input_shape
        else:
            raise ConfigError(f"torch backend runs an nn.Module or a run folder, got {type(source).__name__}")
        self.model = model.eval().to(self.device)
        shape = tuple(input_shape) if input_shape is not None else ckpt_shape
        dims = tuple(int(d) for d in shape) if shape is not None else (None, None, None)
        self._specs = {input_name: TensorSpec(("batch", *dims), np.dtype(np.float32))}
        self._output = output_name
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.allow_tf32 = bool(allow_tf32)
        cuda = self.device.type == "cuda"
        self.info = {"device": str(self.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                     "tf32": cuda and self.allow_tf32}
        if cuda:
            self.info["gpu"] = torch.cuda.get_device_name(self.device)
            if self.allow_tf32:
                warnings.warn("TF32 is on for the torch backend: fp32 results differ from strict fp32 by ~1e-3 "
                              "relative; pass allow_tf32=False for parity checks", stacklevel=2)

    @property
    def input_specs(self) -> dict[str, TensorSpec]:
        return dict(self._specs)

    @property
    def output_names(self) -> list[str]:
        return [self._output]

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        return {"device": variant}

    @classmethod
    def variants(cls) -> list[str]:
        return ["torch", "torch:cuda"]

    @classmethod
    def check_available(cls, device: str = "cpu", **_: Any) -> None:
        _check_device(device)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (name,) = self._specs
        x = torch.from_numpy(feed[name]).to(self.device)
        with torch.inference_mode(), tf32_mode(self.allow_tf32 if self.device.type == "cuda" else None):
            out = self.model(x)
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"the model returned {type(out).__name__}; seadeploy models return one logits tensor")
        return {self._output: out.detach().float().cpu().numpy()}

    def _release(self) -> None:
        if self.device.type == "cuda":
            self.model.to("cpu")
            torch.cuda.empty_cache()


def _check_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown torch device '{device}'; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"torch device '{device}' requested but torch.cuda.is_available() is False; "
                                     f"{CUDA_HINT}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendUnavailable(f"torch device '{device}' does not exist ({torch.cuda.device_count()} GPUs)")
    elif dev.type != "cpu":
        raise ConfigError(f"torch backend supports cpu and cuda devices, got '{device}'")
    return dev


def tf32_enabled() -> bool:
    """Whether PyTorch currently lets cuDNN convolutions or CUDA matmuls use TF32."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    matmul = getattr(torch.backends.cuda.matmul, "fp32_precision", None)
    if conv is not None and matmul is not None:  # the PyTorch ≥ 2.9 API; do not mix it with the legacy flags
        return conv == "tf32" or matmul == "tf32" or (matmul == "none" and torch.get_float32_matmul_precision() != "highest")
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


@contextlib.contextmanager
def tf32_mode(allow: bool | None) -> Iterator[None]:
    """Set TF32 on/off for cuDNN conv and CUDA matmul inside the block, restoring the previous state.

    ``allow=None`` leaves everything as it is (CPU work).
    """
    if allow is None:
        yield
        return
    conv_ns = getattr(torch.backends.cudnn, "conv", None)
    if conv_ns is not None and hasattr(conv_ns, "fp32_precision"):
        targets = [(conv_ns, "fp32_precision"), (torch.backends.cuda.matmul, "fp32_precision")]
        value = "tf32" if allow else "ieee"
    else:
        targets = [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]
        value = bool(allow)
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in targets]
    try:
        for obj, attr in targets:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, old in saved:
            setattr(obj, attr, old)
