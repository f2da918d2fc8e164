"""PyTorch backend (CPU or CUDA): eager — the reference every other backend is compared against — plus
``torch.compile`` (Inductor) and CUDA-graph replay as variants, with autocast fp16/bf16 and TF32 control.

Specs: ``torch`` (CPU eager), ``torch:cuda`` / ``torch:cuda:1``, and ``+``-joined modifiers after the device:
``compile`` (Inductor: C++/OpenMP kernels on CPU, Triton on CUDA), ``cudagraph`` (capture once per input
shape, then replay; CUDA only), ``fp16`` / ``bf16`` (``torch.autocast``), ``tf32`` — e.g.
``torch:compile``, ``torch:cuda+compile+bf16``, ``torch:cuda+cudagraph+fp16``.

On CUDA, cuDNN convolutions use TF32 by default (PyTorch ≥ 1.12), which changes fp32 results at the
1e-3 level. For strict fp32 parity this backend turns TF32 off around every ``infer`` (and restores the
global setting afterwards); with ``allow_tf32=True`` (``+tf32``) it leaves TF32 on, warns, and records
``info["tf32"] = True`` so reports can say so.

``timed(feed)`` on CUDA times each call with CUDA events on the backend's stream in the TensorRT report's
stages: ``h2d`` (pinned host → device), ``gpu_compute`` (forward or graph replay), ``d2h`` (device → pinned host).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seadeploy import runfolder
from seadeploy.backends.base import BACKENDS, Backend, TensorSpec, check_feed
from seadeploy.errors import BackendUnavailable, ConfigError
from seadeploy.models.build import load_model
from seadeploy.runfolder import Checkpoint

CUDA_HINT = ("install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/) on a machine with an "
             "NVIDIA GPU and driver")
MODES = ("eager", "compile", "cudagraph")
AMP = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
        mode: ``eager``, ``compile`` (``torch.compile``, Inductor; compiles once per input shape) or
            ``cudagraph`` (CUDA only: one captured graph per input shape, replayed).
        amp: ``None`` (fp32), ``fp16`` or ``bf16``: the forward runs under ``torch.autocast``; outputs are float32.
    """

    name = "torch"
    install_hint = CUDA_HINT
    artifact_kind = "a checkpoint.safetensors"
    file_suffixes = (".safetensors",)
    layer_profiler = "seadeploy.profiling.layers_torch:profile_torch"
    # layerwise: None. PyTorch is the reference the others are compared against, layer by layer too.

    def __init__(self, source: nn.Module | str | os.PathLike, device: str = "cpu", allow_tf32: bool = False,
                 input_shape: Sequence[int] | None = None, input_name: str = "x", output_name: str = "logits",
                 threads: int | None = None, mode: str = "eager", amp: str | None = None) -> None:
        super().__init__()
        self.device = _check_device(device)
        self.mode, self.amp = _check_mode(mode, amp, self.device)
        if isinstance(source, nn.Module):
            model, ckpt_shape = source, None
        elif isinstance(source, str | os.PathLike):
            ckpt = Checkpoint.load(Path(source))
            model, ckpt_shape = load_model(ckpt), ckpt.spec.input_shape
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
                     "tf32": cuda and self.allow_tf32, "mode": self.mode, "amp": self.amp or "fp32"}
        self._compiled = torch.compile(self.model, backend="inductor", dynamic=False) if self.mode == "compile" else None
        self._graphs: dict[tuple[int, ...], tuple[Any, torch.Tensor, torch.Tensor]] = {}
        self._stream = torch.cuda.Stream(device=self.device) if self.mode == "cudagraph" else None
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
        """``cuda+compile+bf16`` → ``{"device": "cuda", "mode": "compile", "amp": "bf16"}`` (see the module doc)."""
        opts: dict[str, Any] = {}
        for token in (t.strip() for t in variant.split("+")):
            if token in ("cpu", "cuda") or token.startswith("cuda:"):
                opts["device"] = token
            elif token in ("compile", "cudagraph", "eager"):
                opts["mode"] = token
            elif token in AMP:
                opts["amp"] = token
            elif token == "tf32":
                opts["allow_tf32"] = True
            else:
                raise ConfigError(f"unknown torch variant '{token}' in 'torch:{variant}'. Valid: cpu, cuda, cuda:N, "
                                  "compile, cudagraph, fp16, bf16, tf32 joined with '+' (torch:cuda+compile+bf16)")
        if opts.get("mode") == "cudagraph":
            opts.setdefault("device", "cuda")
        return opts

    @classmethod
    def variants(cls) -> list[str]:
        return ["torch", "torch:cuda"]

    @classmethod
    def check_available(cls, device: str = "cpu", mode: str = "eager", amp: str | None = None, **_: Any) -> None:
        _check_mode(mode, amp, _check_device(device))

    @classmethod
    def artifact(cls, run_dir: str | os.PathLike, precision: str) -> Path | None:
        """The run folder itself (its checkpoint), for fp32 only."""
        run = Path(run_dir)
        return run if precision in cls.precisions and (run / runfolder.CHECKPOINT).is_file() else None

    @classmethod
    def run_options(cls, *, threads: int | None = None, device: str | None = None,
                    precision: str | None = None) -> dict[str, Any]:
        return {**super().run_options(threads=threads, precision=precision), **({"device": device} if device else {})}

    @property
    def in_caller_thread(self) -> bool:
        return self.device.type == "cpu" and torch.get_num_threads() == 1

    def timed(self, feed):
        """The call to time, feed validated and compiled/captured once outside it.

        CPU: the forward on a tensor made once (no validation or numpy conversion per call). CUDA: one call is
        H2D (pinned host → device) + forward/replay + D2H (→ pinned host), each bracketed by CUDA events on the
        current stream; the call returns ``{"h2d", "gpu_compute", "d2h"}`` in ms (the caller's clock gives latency).
        """
        (name,) = self._specs
        checked = check_feed(feed, self._specs, self.name)
        self._infer(checked)  # compile / capture / cuDNN autotune outside the timing
        if self.device.type != "cuda":
            x = torch.from_numpy(checked[name])

            def call() -> None:
                with torch.inference_mode():
                    self._forward(x)

            return call
        host_in = torch.from_numpy(checked[name]).pin_memory()
        dev_in = torch.empty_like(host_in, device=self.device)
        with torch.inference_mode():
            host_out = torch.empty(tuple(self._forward(dev_in).shape), dtype=torch.float32).pin_memory()
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        stream = torch.cuda.current_stream(self.device)

        def call() -> dict[str, float]:
            with torch.inference_mode():
                events[0].record(stream)
                dev_in.copy_(host_in, non_blocking=True)
                events[1].record(stream)
                out = self._forward(dev_in)
                events[2].record(stream)
                host_out.copy_(out, non_blocking=True)
                events[3].record(stream)
            events[3].synchronize()
            return {"h2d": events[0].elapsed_time(events[1]), "gpu_compute": events[1].elapsed_time(events[2]),
                    "d2h": events[2].elapsed_time(events[3])}

        return call

    def forward_context(self) -> contextlib.AbstractContextManager:
        """TF32 and autocast as this backend runs them (for profilers that call ``model`` themselves)."""
        stack = contextlib.ExitStack()
        stack.enter_context(tf32_mode(self.allow_tf32 if self.device.type == "cuda" else None))
        if self.amp:
            # a captured graph must not rely on autocast's weight-cast cache, which is freed when the context exits
            stack.enter_context(torch.autocast(self.device.type, dtype=AMP[self.amp],
                                               cache_enabled=self.mode != "cudagraph"))
        return stack

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """One forward of ``x`` (already on the device) in this backend's mode; float32 output on the device."""
        if self.mode == "cudagraph":
            graph, static_in, static_out = self._graph(tuple(x.shape))
            static_in.copy_(x, non_blocking=True)
            graph.replay()
            return static_out
        with self.forward_context():
            fn = self._compiled if self._compiled is not None else self.model  # (an OptimizedModule has no bool())
            out = fn(x.to(self.device, non_blocking=True))
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"the model returned {type(out).__name__}; seadeploy models return one logits tensor")
        return out.float()

    def _graph(self, shape: tuple[int, ...]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """The CUDA graph captured for ``shape`` (warm-up on a side stream, then capture, as PyTorch documents)."""
        if shape not in self._graphs:
            with torch.cuda.device(self.device):  # capture on the model's device, whatever device is current
                static_in = torch.zeros(shape, device=self.device)
                self._stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(self._stream), self.forward_context():
                    for _ in range(3):  # cuDNN/cuBLAS autotuning and lazy init must happen before capture
                        self.model(static_in)
                torch.cuda.current_stream(self.device).wait_stream(self._stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), self.forward_context():
                    static_out = self.model(static_in).float()
            self._graphs[shape] = (graph, static_in, static_out)
        return self._graphs[shape]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        (name,) = self._specs
        x = torch.from_numpy(feed[name]).to(self.device)
        with torch.inference_mode():
            out = self._forward(x)
        return {self._output: out.detach().cpu().numpy().copy()}

    def _release(self) -> None:
        self._graphs.clear()
        self._compiled = None
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


def _check_mode(mode: str, amp: str | None, device: torch.device) -> tuple[str, str | None]:
    """Validate ``mode``/``amp`` for ``device``; ``BackendUnavailable`` when this machine cannot run them."""
    if mode not in MODES:
        raise ConfigError(f"unknown torch mode '{mode}'. Valid choices: {', '.join(MODES)}")
    if amp not in (None, "fp32", *AMP):
        raise ConfigError(f"unknown autocast precision '{amp}'. Valid choices: fp16, bf16 (or none for fp32)")
    if mode == "cudagraph" and device.type != "cuda":
        raise BackendUnavailable(f"CUDA graphs need a CUDA device (got '{device}'); use torch:cuda+cudagraph on a GPU")
    if mode == "compile":
        if device.type == "cuda" and importlib.util.find_spec("triton") is None:
            raise BackendUnavailable("torch.compile on CUDA needs Triton (it ships with the CUDA PyTorch wheel: "
                                     "pip install torch==2.13.0 on Linux)")
        if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise BackendUnavailable("torch.compile on CPU (Inductor) needs a C++ compiler: apt-get install g++")
    if device.type == "cuda" and amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise BackendUnavailable(f"{torch.cuda.get_device_name(device)} has no bf16 support; use fp16")
    return mode, (None if amp == "fp32" else amp)


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
