"""The backend contract, held against every backend (GPU/TensorRT variants skip themselves on CPU machines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seadeploy.backends import Backend, TensorSpec, create_backend, list_backends
from seadeploy.errors import BackendUnavailable, ConfigError, InputError

INPUT_SHAPE = (3, 16, 16)  # tests/backends/conftest.py's tiny net

VARIANTS = [
    pytest.param("torch", id="torch"),
    pytest.param("torch:cuda", id="torch-cuda", marks=pytest.mark.gpu),
    pytest.param("ort", id="ort-cpu"),
    pytest.param("ort:cuda", id="ort-cuda", marks=pytest.mark.gpu),
    pytest.param("ort:tensorrt", id="ort-tensorrt", marks=[pytest.mark.gpu, pytest.mark.trt]),
    pytest.param("trt", id="trt", marks=[pytest.mark.gpu, pytest.mark.trt]),
]


def test_every_backend_spec_has_a_contract_case():
    assert sorted(list_backends()) == sorted(p.values[0] for p in VARIANTS)


@pytest.fixture
def make(tiny_net, tiny_onnx, tmp_path):
    def build(spec: str) -> Backend:
        kind = spec.split(":")[0]
        if kind == "torch":
            return create_backend(spec, tiny_net, input_shape=INPUT_SHAPE)
        if kind == "ort":
            try:
                return create_backend(spec, tiny_onnx, threads=1)
            except BackendUnavailable as exc:  # a GPU machine with the CPU-only onnxruntime wheel
                pytest.skip(str(exc))
        from seadeploy.export.trt_engine import EngineConfig, build_engine

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
    with pytest.raises(ConfigError, match="closed"):
        be.infer({"x": x})


def test_create_backend_rejects_unknown_names_and_options(tiny_onnx):
    with pytest.raises(ConfigError, match="Valid choices: ort, torch, trt"):
        create_backend("onnxruntime", tiny_onnx)
    with pytest.raises(ConfigError, match="has no option 'thread'.*threads"):
        create_backend("ort", tiny_onnx, thread=1)
    with pytest.raises(ConfigError, match="unknown onnxruntime provider 'gpu'"):
        create_backend("ort:gpu", tiny_onnx)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_and_tensorrt_unavailable_say_what_to_install(tiny_net, tiny_onnx):
    import importlib.util

    with pytest.raises(BackendUnavailable, match="CUDA build of PyTorch"):
        create_backend("torch:cuda", tiny_net)
    with pytest.raises(BackendUnavailable, match="pip install onnxruntime-gpu"):
        create_backend("ort:cuda", tiny_onnx)
    with pytest.raises(BackendUnavailable, match="pip install tensorrt|pycuda"):
        create_backend("trt", tiny_onnx)
    if importlib.util.find_spec("tensorrt") is None:
        with pytest.raises(BackendUnavailable, match="TensorRT is not installed: pip install tensorrt"):
            create_backend("trt", tiny_onnx)


def test_backends_import_no_optional_gpu_libraries(tiny_onnx):
    import subprocess
    import sys

    code = ("import sys, numpy as np; from seadeploy.backends import create_backend, list_backends; list_backends();"
            f"be = create_backend('ort', r'{tiny_onnx}', threads=1); be.infer({{'x': np.zeros((1, 3, 16, 16), 'f4')}});"
            "print(sorted(m for m in ('tensorrt', 'pycuda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
