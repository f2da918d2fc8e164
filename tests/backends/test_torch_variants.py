"""torch backend variants: the spec grammar, autocast, torch.compile (Inductor, CPU here) and CUDA graphs (GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seadeploy.backends import check_backend, create_backend, parse_backend_spec
from seadeploy.backends.torch_backend import TorchBackend
from seadeploy.errors import BackendUnavailable, ConfigError

INPUT_SHAPE = (3, 16, 16)


def _x(batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, *INPUT_SHAPE)).astype(np.float32)


def _ref(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_variant_grammar():
    assert parse_backend_spec("torch:cuda+compile+bf16") == ("torch", {"device": "cuda", "mode": "compile", "amp": "bf16"})
    assert parse_backend_spec("torch:compile") == ("torch", {"mode": "compile"})
    assert parse_backend_spec("torch:cudagraph+fp16+tf32") == ("torch", {"mode": "cudagraph", "amp": "fp16",
                                                                          "allow_tf32": True, "device": "cuda"})
    assert parse_backend_spec("torch:cuda:1") == ("torch", {"device": "cuda:1"})
    with pytest.raises(ConfigError, match="unknown torch variant 'fast'"):
        parse_backend_spec("torch:cuda+fast")
    with pytest.raises(ConfigError, match="Valid choices: eager, compile, cudagraph"):
        TorchBackend.check_available(mode="jit")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU answer")
def test_cuda_graphs_without_a_gpu_are_unavailable():
    with pytest.raises(BackendUnavailable) as err:
        check_backend("torch:cudagraph")
    assert err.value.exit_code == 3
    with pytest.raises(BackendUnavailable, match="CUDA graphs need a CUDA device"):
        TorchBackend.check_available(device="cpu", mode="cudagraph")


def test_bf16_autocast_on_cpu(tiny_net):
    x = _x()
    with create_backend("torch:cpu+bf16", tiny_net, input_shape=INPUT_SHAPE) as be:
        out = be.infer({"x": x})["logits"]
        assert be.info["amp"] == "bf16" and be.info["mode"] == "eager" and out.dtype == np.float32
    ref = _ref(tiny_net, x)
    cos = float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref))
    assert cos > 0.999 and not np.array_equal(out, ref)  # bf16 arithmetic: close, not bit-equal


@pytest.mark.slow  # Inductor compiles C++ kernels: 20-120 s on 2 shared cores (cold cache)
def test_compile_on_cpu_matches_eager(tiny_net):
    x = _x(batch=2, seed=1)
    with create_backend("torch:compile", tiny_net, input_shape=INPUT_SHAPE, threads=1) as be:
        assert be.info["mode"] == "compile" and be._compiled is not None
        out = be.infer({"x": x})["logits"]
        np.testing.assert_allclose(out, _ref(tiny_net, x), atol=1e-5, rtol=1e-5)
        call = be.timed({"x": x})  # same shape: no recompilation
        assert call() is None


@pytest.mark.gpu
@pytest.mark.parametrize("spec,tol", [("torch:cuda", 1e-4), ("torch:cuda+tf32", 1e-2), ("torch:cuda+cudagraph", 1e-4),
                                      ("torch:cuda+cudagraph+fp16", 5e-2), ("torch:cuda+compile+bf16", 1e-1)])
def test_cuda_variants_match_cpu_and_time_stages(tiny_net, spec, tol):
    x = _x(batch=3, seed=2)
    ref = _ref(tiny_net, x)
    with create_backend(spec, tiny_net, input_shape=INPUT_SHAPE) as be:
        assert be.info["tf32"] == ("tf32" in spec)
        for _ in range(2):  # replay reuses the captured graph
            np.testing.assert_allclose(be.infer({"x": x})["logits"], ref, atol=tol, rtol=tol)
        stages = be.timed({"x": x})()
        assert set(stages) == {"h2d", "gpu_compute", "d2h"} and all(v > 0 for v in stages.values())
