"""The backend contract, held against every backend (GPU/TensorRT variants skip themselves on CPU machines).

``OnnxRefBackend`` below is a backend that exists only in the test suite: onnx's pure-numpy reference
evaluator behind the contract. Registering it (the ``onnx_ref`` fixture) is all it takes for the contract
tests, ``profiling latency`` and ``validate`` to run it: adding a backend is one file plus its case here.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx.helper import tensor_dtype_to_np_dtype
from onnx.reference import ReferenceEvaluator

import seadeploy
from seadeploy import runfolder
from seadeploy.backends import BACKENDS, Backend, TensorSpec, backend_class, create_backend, list_backends, resolve
from seadeploy.backends.base import run_file
from seadeploy.errors import BackendUnavailable, ConfigError, InputError
from seadeploy.export.trt_engine import EngineConfig, build_engine
from seadeploy.profiling.latency import benchmark_latency
from seadeploy.profiling.per_layer import profile_layers
from seadeploy.profiling.sources import plan
from seadeploy.validate import validate_run


class OnnxRefBackend(Backend):
    """``onnx.reference.ReferenceEvaluator``: every ONNX op in numpy, slow and exact; no runtime library."""

    name = "onnx-ref"
    install_hint = "pip install onnx"
    precisions = ("fp32", "fp16")
    artifact_kind = "ONNX files"
    file_suffixes = (".onnx",)

    def __init__(self, source, threads: int | None = None) -> None:
        super().__init__()
        path = Path(source) / runfolder.onnx_name() if Path(source).is_dir() else Path(source)
        if not path.is_file():
            raise InputError(f"ONNX file '{path}' does not exist")
        self.proto = onnx.load(str(path))
        self.session = ReferenceEvaluator(self.proto)
        self.info = {"onnx": onnx.__version__, "threads": threads, "model": str(path)}

    @classmethod
    def artifact(cls, run_dir, precision):
        return run_file(run_dir, "files", precision, runfolder.onnx_name(precision))

    @property
    def input_specs(self):
        init = {i.name for i in self.proto.graph.initializer}
        return {i.name: TensorSpec(tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                         for d in i.type.tensor_type.shape.dim),
                                   np.dtype(tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)))
                for i in self.proto.graph.input if i.name not in init}

    @property
    def output_names(self):
        return [o.name for o in self.proto.graph.output]

    def _infer(self, feed):
        return dict(zip(self.output_names, (np.asarray(v) for v in self.session.run(None, feed))))


@pytest.fixture
def onnx_ref():
    """Register the test-only backend for one test (the registration line a real backend module has)."""
    BACKENDS.register("onnx-ref")(OnnxRefBackend)
    yield "onnx-ref"
    BACKENDS.unregister("onnx-ref")

INPUT_SHAPE = (3, 16, 16)  # the shared tiny net's input (tests/fixtures/tiny.py)

VARIANTS = [
    pytest.param("torch", id="torch"),
    pytest.param("torch:cuda", id="torch-cuda", marks=pytest.mark.gpu),
    pytest.param("ort", id="ort-cpu"),
    pytest.param("ort:cuda", id="ort-cuda", marks=pytest.mark.gpu),
    pytest.param("ort:tensorrt", id="ort-tensorrt", marks=[pytest.mark.gpu, pytest.mark.trt]),
    pytest.param("trt", id="trt", marks=[pytest.mark.gpu, pytest.mark.trt]),
    pytest.param("onnx-ref", id="onnx-ref"),  # the test-only backend above
    pytest.param("openvino", id="openvino", marks=pytest.mark.skipif(
        importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed (pip install 'seadeploy[openvino]')")),
]


def test_every_backend_spec_has_a_contract_case(onnx_ref):
    assert sorted(list_backends()) == sorted(p.values[0] for p in VARIANTS)


@pytest.fixture
def make(tiny_net, tiny_onnx, tmp_path, onnx_ref):
    def build(spec: str) -> Backend:
        kind = spec.split(":")[0]
        if kind == "torch":
            return create_backend(spec, tiny_net, input_shape=INPUT_SHAPE)
        if kind == onnx_ref:
            return create_backend(spec, tiny_onnx)
        if kind == "openvino":
            return create_backend(spec, tiny_onnx, threads=1)
        if kind == "ort":
            try:
                return create_backend(spec, tiny_onnx, threads=1)
            except BackendUnavailable as exc:  # a GPU machine with the CPU-only onnxruntime wheel
                pytest.skip(str(exc))

        sidecar = build_engine(tiny_onnx, tmp_path, EngineConfig(precision="fp32", max_batch=8))
        return create_backend(spec, tmp_path / sidecar["path"])

    return build


@pytest.mark.parametrize("spec", VARIANTS)
def test_backend_contract(spec, make, tiny_net):
    rng = np.random.default_rng(0)
    with make(spec) as be:
        assert isinstance(be, Backend) and be.name == spec.split(":")[0]
        (name, ts), = be.input_specs.items()
        assert name == "x" and isinstance(ts, TensorSpec) and ts.dtype == np.float32
        assert tuple(ts.shape[1:]) == INPUT_SHAPE and not isinstance(ts.shape[0], int)  # dynamic batch
        assert be.output_names == ["logits"] and isinstance(be.info, dict)
        for batch in (1, 3):  # dynamic batch
            x = rng.standard_normal((batch, *INPUT_SHAPE)).astype(np.float32)
            out = be.infer({"x": x})
            assert set(out) == {"logits"} and out["logits"].shape == (batch, 10)
            with torch.no_grad():
                ref = tiny_net(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(out["logits"], ref, atol=1e-4, rtol=1e-4)  # |a-b| <= atol + rtol*|ref|
        x = rng.standard_normal((2, *INPUT_SHAPE)).astype(np.float32)
        with pytest.raises(InputError, match=r"shape \(2, 3, 8, 16\)"):
            be.infer({"x": x[:, :, :8]})
        with pytest.raises(InputError, match="missing input 'x'"):
            be.infer({"input": x})
        with pytest.raises(InputError, match="dtype int64"):
            be.infer({"x": x.astype(np.int64)})
        bad = x.copy()
        bad[1, 2, 3, 4] = np.nan
        with pytest.raises(InputError, match=r"1 NaN/Inf values \(first at index \(1, 2, 3, 4\)\)"):
            be.infer({"x": bad})
        np.testing.assert_array_equal(be.infer({"x": x.astype(np.float64)})["logits"], be.infer({"x": x})["logits"])
        call = be.timed({"x": x})  # validated once here; the bare call runs again and again
        assert callable(call) and all(r is None or isinstance(r, dict) for r in (call(), call()))
        with pytest.raises(InputError, match="missing input 'x'"):
            be.timed({"input": x})
        assert isinstance(be.in_caller_thread, bool)
    with pytest.raises(ConfigError, match="closed"):
        be.infer({"x": x})


@pytest.mark.parametrize("spec", [p for p in VARIANTS if not any(m.name == "gpu" for m in p.marks)])
def test_backend_class_owns_its_concept(spec, onnx_ref, tiny_onnx):
    cls = backend_class(spec)
    assert cls.name == spec.split(":")[0] and cls.precisions and set(cls.precisions) <= {"fp32", "fp16", "int8"}
    assert cls.install_hint and cls.artifact_kind
    run = tiny_onnx.parent  # model.onnx (+ no checkpoint, no engine)
    found = cls.artifact(run, "fp32")
    assert found is None or (found.exists() and Path(run) in (found, found.parent))
    assert cls.artifact(run / "missing", "fp32") is None
    for target in (cls.layer_profiler, cls.layerwise):
        if target:  # "module:function" that resolves

            assert callable(resolve(target))
    opts = cls.run_options(threads=1)
    assert opts in ({}, {"threads": 1})
    assert set(cls.run_options(threads=1, precision="int8")) - set(opts) <= {"precision"}


def test_plugin_backend_runs_through_latency_and_validate(onnx_ref, tiny_run):
    """No source file names 'onnx-ref': the contract alone carries it through profiling and validate."""
    run = tiny_run
    assert [(s.backend, s.precision) for s in plan(run, [onnx_ref, "ort"])] == [(onnx_ref, "fp32"), ("ort", "fp32")]
    with pytest.raises(InputError, match="no ONNX files for int8 .onnx-ref runs fp32, fp16"):
        plan(run, [onnx_ref], ["int8"])
    report = benchmark_latency(run, [onnx_ref, "ort"], [1], threads=1, warmup_s=0.0, rounds=3)
    df = report.to_frame()
    assert sorted(df["backend"]) == ["onnx-ref", "ort"] and (df["runs"] == 3).all()
    (ratio,) = report.ratios
    assert ratio["a"] == "run ort fp32 b1" and ratio["b"] == "run onnx-ref fp32 b1" and ratio["clock"] == "wall"
    parity = validate_run(run, backends=[onnx_ref], precisions=["fp32"], samples=0, random=4, batch=4, write=False)
    (comp,) = parity.comparisons
    assert comp.backend == onnx_ref and bool(parity)
    with pytest.raises(ConfigError, match="has no per-layer profiler"):
        profile_layers(run, [onnx_ref])


# ---------------------------------------------------------------------------- nothing else switches on names
PACKAGE = Path(seadeploy.__file__).parent
# a comparison with a backend's name; ``__module__.startswith("torch")`` asks a Python module, not a backend
NAME_SWITCH = re.compile(r"""(==|!=|\bin\b|(?<!__module__\.)startswith\()\s*\(?\s*["'](torch|ort|trt)["']"""
                         r"""|["'](torch|ort|trt)["']\s*(==|!=)""")


def _sources(skip: str | None = None):
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if skip is None or not rel.startswith(skip):
            yield rel, path.read_text()


def test_no_backend_name_switches_outside_backends():
    assert NAME_SWITCH.search('if name == "trt":') and NAME_SWITCH.search('spec.startswith("torch")')
    assert NAME_SWITCH.search('if kind in ("torch", "ort"):') and not NAME_SWITCH.search('backends=("ort",)')
    assert not NAME_SWITCH.search('type(stream).__module__.startswith("torch")')
    hits = [f"{rel}:{i}: {line.strip()}" for rel, text in _sources("backends/")
            for i, line in enumerate(text.splitlines(), 1) if NAME_SWITCH.search(line)]
    assert hits == [], "switch on a backend's name outside seadeploy/backends/ (ask the backend class instead):\n" + \
        "\n".join(hits)


def test_no_private_imports_or_backend_private_members_across_modules():
    bad = []
    for rel, text in _sources():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seadeploy"):
                bad += [f"{rel}: from {node.module} import {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
        if not rel.startswith("backends/"):
            bad += [f"{rel}: {m.group(0)}" for m in re.finditer(r"\b(be|backend|plain|prof)\._[a-z]\w*", text)]
    new = sorted(set(bad))
    assert new == [], "private names used across modules:\n" + "\n".join(new)


def test_create_backend_rejects_unknown_names_and_options(tiny_onnx):
    with pytest.raises(ConfigError, match="Valid choices: openvino, ort, torch, trt"):
        create_backend("onnxruntime", tiny_onnx)
    with pytest.raises(ConfigError, match="has no option 'thread'.*threads"):
        create_backend("ort", tiny_onnx, thread=1)
    with pytest.raises(ConfigError, match="unknown onnxruntime provider 'gpu'"):
        create_backend("ort:gpu", tiny_onnx)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_and_tensorrt_unavailable_say_what_to_install(tiny_net, tiny_onnx):
    with pytest.raises(BackendUnavailable, match="CUDA build of PyTorch"):
        create_backend("torch:cuda", tiny_net)
    with pytest.raises(BackendUnavailable, match="pip install onnxruntime-gpu"):
        create_backend("ort:cuda", tiny_onnx)
    with pytest.raises(BackendUnavailable, match="pip install|pycuda"):
        create_backend("trt", tiny_onnx)
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match="TensorRT is not installed: pip install"):
            create_backend("trt", tiny_onnx)


def test_backends_import_no_optional_gpu_libraries(tiny_onnx):
    code = ("import sys, numpy as np; from seadeploy.backends import create_backend, list_backends; list_backends();"
            f"be = create_backend('ort', r'{tiny_onnx}', threads=1); be.infer({{'x': np.zeros((1, 3, 16, 16), 'f4')}});"
            "print(sorted(m for m in ('tensorrt', 'pycuda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_onnxruntime_sessions_are_built_only_in_backends():
    hits = [f"{rel}:{i}: {line.strip()}" for rel, text in _sources("backends/")
            for i, line in enumerate(text.splitlines(), 1) if "InferenceSession(" in line]
    assert hits == [], "ONNX Runtime sessions built outside seadeploy/backends/ (use backends.ort.plain_session or " \
        "the ort backend):\n" + "\n".join(hits)
