"""``seadeploy doctor``: what this machine can run, what each missing piece disables, and how to install it.

Every check is cheap and never raises: a library that fails to import or a GPU that cannot be used is
reported, not fatal. ``collect()`` returns one :class:`Check` per component; ``python -m seadeploy.doctor``
(``seadeploy doctor [--json]``) prints them. It is the first command on a new machine and the first step of
``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import importlib.metadata as md
import importlib.util
import platform
import sys
from collections.abc import Callable
from typing import Any

import torch

CPU_INSTALL = 'pip install torch==2.13.0 && pip install -e ".[cpu,dev]"'
GPU_INSTALL = 'pip install torch==2.13.0 && pip install -e ".[gpu,tensorrt,dev]"'


@dataclasses.dataclass
class Check:
    """One component: whether it is usable here, its version and details, and what its absence disables."""

    name: str
    ok: bool
    version: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    problem: str | None = None  # why it is not usable (None when ok)
    disables: str = ""  # what seadeploy cannot do without it
    install: str = ""  # the line that fixes it
    required: bool = False  # the package cannot work at all without it


def _dist_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _loadable(library: str) -> bool:
    """Whether the dynamic loader finds ``library`` (as a provider loading it at run time would)."""
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def _guard(fn: Callable[[], Check], name: str) -> Check:
    try:
        return fn()
    except Exception as exc:  # a doctor reports every failure, it never crashes on one
        return Check(name, False, problem=f"{type(exc).__name__}: {exc}".splitlines()[0])


# ------------------------------------------------------------------------------------------- checks
def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, platform.python_version(), {"executable": sys.executable, "platform": platform.platform()},
                 None if ok else "seadeploy needs Python >= 3.10", "everything", "install Python 3.10 or newer",
                 required=True)


def check_torch() -> Check:
    detail: dict[str, Any] = {"cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                              "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        detail["cudnn"] = torch.backends.cudnn.version()
        detail["devices"] = [{"index": i, "name": torch.cuda.get_device_name(i),
                              "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                              "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                             for i in range(torch.cuda.device_count())]
    detail["triton"] = _dist_version("triton")
    return Check("torch", True, torch.__version__, detail, required=True)


def check_torch_cuda() -> Check:
    if torch.cuda.is_available():
        devs = [f"{torch.cuda.get_device_name(i)} (sm {'.'.join(map(str, torch.cuda.get_device_capability(i)))})"
                for i in range(torch.cuda.device_count())]
        return Check("torch-cuda", True, torch.version.cuda, {"devices": devs, "triton": _dist_version("triton")})
    why = ("this PyTorch is a CPU build" if torch.version.cuda is None
           else f"PyTorch built for CUDA {torch.version.cuda} sees no GPU (driver missing or CUDA_VISIBLE_DEVICES empty)")
    return Check("torch-cuda", False, torch.version.cuda, {}, why,
                 "torch:cuda backends (eager/compile/cudagraph, fp16/bf16, TF32), CUDA latency and per-layer CUDA "
                 "kernel times, TensorRT (needs a GPU), gpu-marked tests",
                 "on a machine with an NVIDIA GPU and driver: pip install torch==2.13.0 (the Linux PyPI wheel is a "
                 "CUDA build)")


def check_onnxruntime() -> Check:
    dists = {d: _dist_version(d) for d in ("onnxruntime", "onnxruntime-gpu")}
    installed = [d for d, v in dists.items() if v]
    if importlib.util.find_spec("onnxruntime") is None:
        return Check("onnxruntime", False, None, {"distributions": dists}, "onnxruntime is not installed",
                     "ONNX checks after export, fp16/int8 conversion, the ort backends, validate, ORT profiling",
                     'pip install -e ".[cpu]" (CPU) or pip install -e ".[gpu]" (NVIDIA GPU) — one of them, never both',
                     required=True)
    import onnxruntime as ort  # noqa: PLC0415  optional: doctor reports whether it is installed

    providers = list(ort.get_available_providers())
    detail = {"distributions": dists, "providers": providers, "device": ort.get_device()}
    if len(installed) > 1:
        return Check("onnxruntime", False, ort.__version__, detail,
                     "both onnxruntime and onnxruntime-gpu are installed: they overwrite each other's files",
                     "the CUDA and TensorRT execution providers (and possibly onnxruntime itself)",
                     "pip uninstall -y onnxruntime onnxruntime-gpu && pip install -e \".[gpu]\" (or \".[cpu]\")",
                     required=True)
    return Check("onnxruntime", True, ort.__version__, detail)


def check_ort_gpu() -> Check:
    if importlib.util.find_spec("onnxruntime") is None:
        return Check("onnxruntime-gpu", False, None, {}, "onnxruntime is not installed", "ort:cuda, ort:tensorrt",
                     'pip install -e ".[gpu]"')
    import onnxruntime as ort  # noqa: PLC0415  optional: doctor reports whether it is installed

    have = set(ort.get_available_providers())
    wanted = ["CUDAExecutionProvider", "TensorrtExecutionProvider"]
    missing = [p for p in wanted if p not in have]
    gpu_wheel = _dist_version("onnxruntime-gpu")
    if not missing:
        # ORT lists the providers it was built with; the TensorRT one loads libnvinfer.so.10 only at session creation
        if not _loadable("libnvinfer.so.10"):
            return Check("onnxruntime-gpu", False, gpu_wheel, {"providers": wanted, "libnvinfer.so.10": False},
                         "TensorrtExecutionProvider is built in but libnvinfer.so.10 is not on the loader path",
                         "backend ort:tensorrt (ort:cuda is unaffected)",
                         'pip install -e ".[tensorrt]" and export LD_LIBRARY_PATH="$(python -c \'import os, tensorrt_libs; '
                         'print(os.path.dirname(tensorrt_libs.__file__))\'):$LD_LIBRARY_PATH" (README)')
        return Check("onnxruntime-gpu", True, gpu_wheel, {"providers": wanted, "libnvinfer.so.10": True})
    why = ("the installed wheel is the CPU build (onnxruntime)" if not gpu_wheel
           else f"onnxruntime-gpu {gpu_wheel} lacks {', '.join(missing)} (CUDA/cuDNN/TensorRT libraries not found)")
    return Check("onnxruntime-gpu", False, gpu_wheel, {"missing_providers": missing}, why,
                 "backends ort:cuda and ort:tensorrt",
                 'pip uninstall -y onnxruntime && pip install -e ".[gpu,tensorrt]" (on a machine with an NVIDIA GPU)')


def check_tensorrt() -> Check:
    install = 'pip install -e ".[tensorrt]" (tensorrt 10.x; its libraries download from NVIDIA\'s index, pypi.nvidia.com)'
    disables = "the trt backend, export --engine, validate/profiling with trt, layer-wise TensorRT parity"
    if importlib.util.find_spec("tensorrt") is None:
        return Check("tensorrt", False, None, {}, "TensorRT is not installed", disables, install)
    import tensorrt as trt  # noqa: PLC0415  optional: doctor reports whether it is installed

    detail: dict[str, Any] = {"major": int(trt.__version__.split(".")[0])}
    if detail["major"] != 10:
        detail["note"] = "onnxruntime-gpu's TensorRT provider links TensorRT 10 (libnvinfer.so.10)"
    if not torch.cuda.is_available():
        return Check("tensorrt", False, trt.__version__, {**detail, "builder": False},
                     "TensorRT is installed but no CUDA GPU is usable, so no builder can be created", disables,
                     "run on a machine with an NVIDIA GPU and driver")
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    detail["builder"] = builder is not None
    if builder is None:
        return Check("tensorrt", False, trt.__version__, detail, "trt.Builder returned None (driver/CUDA mismatch?)",
                     disables, install)
    detail["platform_has_fast_fp16"] = bool(getattr(builder, "platform_has_fast_fp16", False))
    return Check("tensorrt", True, trt.__version__, detail)


def check_openvino() -> Check:
    disables = "the openvino backend (validate/profiling/compare --backends openvino, export --int8-target openvino)"
    install = 'pip install -e ".[openvino]"'
    if importlib.util.find_spec("openvino") is None:
        return Check("openvino", False, None, {}, "OpenVINO is not installed (optional)", disables, install)
    import openvino as ov  # noqa: PLC0415  optional: doctor reports whether it is installed

    core = ov.Core()
    devices = list(core.available_devices)
    detail: dict[str, Any] = {"devices": devices}
    if "CPU" in devices:  # what fp16 (the inference-precision hint) and int8 run as on this CPU
        detail["cpu_capabilities"] = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        detail["cpu_default_inference_precision"] = core.get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    return Check("openvino", bool(devices), _dist_version("openvino") or ov.get_version(), detail,
                 None if devices else "OpenVINO sees no device", disables, install)


def check_pycuda() -> Check:
    version = _dist_version("pycuda")
    if version is None:
        return Check("pycuda", False, None, {}, "pycuda is not installed (optional)",
                     "TensorRT buffers on machines whose PyTorch has no CUDA (torch CUDA tensors are used otherwise)",
                     'pip install -e ".[pycuda]" (builds against the CUDA toolkit headers)')
    return Check("pycuda", True, version)


def _library(name: str, disables: str, install: str) -> Callable[[], Check]:
    def check() -> Check:
        version = _dist_version(name)
        if version is None:
            return Check(name, False, None, {}, f"{name} is not installed", disables, install)
        try:
            importlib.import_module(name)
        except Exception as exc:  # e.g. a torchvision built for another torch
            return Check(name, False, version, {}, f"installed but fails to import: {type(exc).__name__}: {exc}"
                         .splitlines()[0], disables, install)
        return Check(name, True, version)

    return check


CHECKS: tuple[tuple[str, Callable[[], Check]], ...] = (
    ("python", check_python),
    ("torch", check_torch),
    ("torch-cuda", check_torch_cuda),
    ("onnxruntime", check_onnxruntime),
    ("onnxruntime-gpu", check_ort_gpu),
    ("tensorrt", check_tensorrt),
    ("pycuda", check_pycuda),
    ("openvino", check_openvino),
    ("timm", _library("timm", "--model timm:NAME (bring-your-own timm models)",
                      "pip install timm (with a torchvision that matches your torch)")),
    ("torchvision", _library("torchvision", "--model torchvision:NAME models",
                             "pip install torchvision matching your torch version")),
    ("kornia", _library("kornia", "GPU batch augmentation in training (seadeploy.data.augment)",
                        "pip install kornia (a base dependency: pip install -e .)")),
)


def collect() -> list[Check]:
    """Run every check (each guarded: a failing import is a finding, not a crash)."""
    return [_guard(fn, name) for name, fn in CHECKS]


def summary(checks: list[Check]) -> dict[str, Any]:
    """Machine-readable form: ``{"checks": [...], "gpu": bool, "tensorrt": bool, "missing_required": [...]}``."""
    by = {c.name: c for c in checks}
    return {"checks": [dataclasses.asdict(c) for c in checks],
            "gpu": bool(by.get("torch-cuda") and by["torch-cuda"].ok),
            "tensorrt": bool(by.get("tensorrt") and by["tensorrt"].ok),
            "missing_required": [c.name for c in checks if c.required and not c.ok],
            "install": {"cpu": CPU_INSTALL, "gpu": GPU_INSTALL}}


def render(checks: list[Check]) -> str:
    """Human-readable lines: one per component, then what is disabled and how to fix it."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok " if c.ok else ("ERR" if c.required else "-- ")
        info = _short_detail(c)
        version = c.version or ("not installed" if "not installed" in (c.problem or "") else "-")
        lines.append(f"[{mark}] {c.name:<{width}}  {version}{'  ' + info if info else ''}")
        if not c.ok:
            lines.append(f"      {'':<{width}}  why: {c.problem}")
            if c.disables:
                lines.append(f"      {'':<{width}}  disables: {c.disables}")
            if c.install:
                lines.append(f"      {'':<{width}}  install: {c.install}")
    s = summary(checks)
    lines.append("")
    lines.append(f"GPU: {'yes' if s['gpu'] else 'no'}; TensorRT usable: {'yes' if s['tensorrt'] else 'no'}"
                 + (f"; MISSING REQUIRED: {', '.join(s['missing_required'])}" if s["missing_required"] else ""))
    lines.append(f"CPU install: {CPU_INSTALL}")
    lines.append(f"GPU install: {GPU_INSTALL}  (then: python benchmarks/gpu_check.py --out runs/gpu_check)")
    return "\n".join(lines)


def _torch_detail(d: dict[str, Any]) -> str:
    cuda = f"CUDA {d['cuda_build']}" if d.get("cuda_build") else "CPU build"
    devs = "; ".join(f"{x['name']} sm{x['capability']}" for x in d.get("devices", []))
    return (f"{cuda}, cuda available: {d.get('cuda_available')}" + (f", {devs}" if devs else "")
            + (f", triton {d['triton']}" if d.get("triton") else ""))


def _ort_detail(d: dict[str, Any]) -> str:
    if "providers" not in d:
        return ""
    return f"wheel {'+'.join(k for k, v in d['distributions'].items() if v)}, providers {', '.join(d['providers'])}"


def _trt_detail(d: dict[str, Any]) -> str:
    if not d.get("builder"):
        return ""
    return f"builder ok, fast fp16: {d.get('platform_has_fast_fp16')}" + (f" ({d['note']})" if d.get("note") else "")


#: one-line summaries of a component's details, by component
_DETAIL = {"torch": _torch_detail, "onnxruntime": _ort_detail, "tensorrt": _trt_detail,
           "openvino": lambda d: (f"devices {', '.join(d.get('devices', []))}, CPU "
                                  f"{'/'.join(d.get('cpu_capabilities', []))}" if d.get("devices") else ""),
           "torch-cuda": lambda d: ", ".join(d.get("devices", []))}


def _short_detail(c: Check) -> str:
    fn = _DETAIL.get(c.name)
    return fn(c.detail) if fn else ""
