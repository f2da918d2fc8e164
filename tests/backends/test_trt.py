"""TrtBackend specifics (GPU + TensorRT): the split phases, dynamic batch limits, pycuda buffers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from seadeploy.backends.trt import TrtBackend
from seadeploy.errors import InputError
from seadeploy.export.trt_engine import EngineConfig, build_engine

pytestmark = [pytest.mark.gpu, pytest.mark.trt]


@pytest.fixture(scope="module")
def engine(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("engine")
    sidecar = build_engine(tiny_onnx, out, EngineConfig(precision="fp32", min_batch=1, opt_batch=4, max_batch=8))
    return out / sidecar["path"]


def _reference(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_phases_match_infer_and_reuse_buffers(engine, tiny_net):
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    with TrtBackend(engine) as be:
        assert be.profile_range("x") == ((1, 3, 16, 16), (8, 3, 16, 16))
        be.stage_inputs({"x": x})
        be.execute()
        staged = be.fetch_outputs()["logits"]
        np.testing.assert_allclose(staged, be.infer({"x": x})["logits"], atol=0, rtol=0)
        np.testing.assert_allclose(staged, _reference(tiny_net, x), atol=1e-4, rtol=1e-4)
        with pytest.raises(InputError, match="outside the engine's optimisation profile"):
            be.infer({"x": np.zeros((9, 3, 16, 16), np.float32)})
        assert be.info["buffers"] == "torch" and be.info["tensorrt"]


@pytest.mark.skipif(importlib.util.find_spec("pycuda") is None, reason="pycuda is not installed")
def test_pycuda_buffers(engine, tiny_net):
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with TrtBackend(engine, buffers="pycuda") as be:
        assert be.info["buffers"] == "pycuda"
        np.testing.assert_allclose(be.infer({"x": x})["logits"], _reference(tiny_net, x), atol=1e-4, rtol=1e-4)


def test_corrupt_engine_is_an_input_error(tmp_path):
    bad = tmp_path / "model.fp32.engine"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(InputError, match="cannot deserialize"):
        TrtBackend(bad)


def test_torch_cuda_tensors_in_and_out(engine, tiny_net):
    """No pycuda and no host hop: torch CUDA tensors go straight into the bound buffers."""
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32))
    with TrtBackend(engine, buffers="torch", device=0) as be:
        out = be.infer_torch({"x": x.cuda()})["logits"]
        assert out.is_cuda and torch.cuda.current_device() == 0
        np.testing.assert_allclose(out.cpu().numpy(), _reference(tiny_net, x.numpy()), atol=1e-4, rtol=1e-4)
