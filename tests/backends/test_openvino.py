"""The openvino backend beyond the contract: precision hints, thread settings, artifacts and its int8 form.

The precision choice and the availability message are tested without OpenVINO; the rest skips where it is absent
(it is an optional extra: pip install 'seadeploy[openvino]').
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from seadeploy.backends import backend_class, create_backend
from seadeploy.backends.openvino import OpenVinoBackend, precision_hint
from seadeploy.errors import BackendUnavailable, ConfigError

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="OpenVINO is not installed (pip install 'seadeploy[openvino]')")


class FakeCore:
    def __init__(self, caps):
        self.caps = caps

    def get_property(self, device, key):
        assert key == "OPTIMIZATION_CAPABILITIES"
        return self.caps


@pytest.mark.parametrize(("caps", "precision", "hint"), [
    (["FP32", "BF16", "FP16", "INT8"], "fp16", "f16"),  # FP16 arithmetic (AMX-FP16, Arm): f16 itself
    (["FP32", "BF16", "INT8"], "fp16", "bf16"),  # AVX-512 BF16 without FP16: the lowest native precision
    (["FP32", "INT8"], "fp16", "f32"),
    (["FP32", "BF16", "FP16"], "fp32", "f32"),  # fp32 is asked for explicitly: the CPU default may be bf16
    (["FP32", "BF16", "FP16"], "int8", "f32"),  # the QDQ file decides what runs in int8; the rest in f32
    (["FP32", "BF16", "FP16"], "file", "f32"),
])
def test_precision_hint_per_run_folder_precision(caps, precision, hint):
    assert precision_hint(FakeCore(caps), "CPU", precision) == hint


def test_run_folder_precision_reaches_the_constructor_through_the_contract():
    assert backend_class("openvino").run_options(threads=1, precision="fp16") == {"threads": 1, "precision": "fp16"}
    assert backend_class("ort").run_options(threads=1, precision="fp16") == {"threads": 1}  # its files decide
    assert OpenVinoBackend.int8_target("openvino") == "openvino"


def test_missing_openvino_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(BackendUnavailable, match=r"pip install 'seadeploy\[openvino\]'"):
        OpenVinoBackend.check_available()


@needs_openvino
def test_settings_are_pinned_and_recorded(tiny_onnx):
    with create_backend("openvino", tiny_onnx, threads=1) as be:
        assert be.info["threads"] == 1 and be.info["streams"] == 1
        assert be.info["inference_precision"] == "f32" and be.info["inference_precision_asked"] == "f32"
        assert be.in_caller_thread is False  # OpenVINO's stream thread computes: only wall time measures it
    with create_backend("openvino", tiny_onnx, threads=1, precision="fp16") as be:
        assert be.info["inference_precision_asked"] == precision_hint(__import__("openvino").Core(), "CPU", "fp16")
    with pytest.raises(ConfigError, match="Valid choices: f32, f16, bf16"):
        create_backend("openvino", tiny_onnx, inference_precision="fp8")


@needs_openvino
def test_extra_outputs_return_intermediate_tensors(tiny_onnx):
    import onnx  # noqa: PLC0415

    conv = next(n for n in onnx.load(tiny_onnx).graph.node if n.op_type == "Conv")
    with create_backend("openvino", tiny_onnx, threads=1, extra_outputs=[conv.output[0]]) as be:
        out = be.infer({"x": np.zeros((2, 3, 16, 16), np.float32)})
    assert set(out) == {"logits", conv.output[0]} and out[conv.output[0]].shape[0] == 2


@needs_openvino
def test_timed_calls_at_several_batches_share_one_backend(tiny_onnx):
    """``profiling latency`` times one backend at each batch in turn; shared memory must not pin a shape."""
    with create_backend("openvino", tiny_onnx, threads=1) as be:
        calls = [be.timed({"x": np.zeros((b, 3, 16, 16), np.float32)}) for b in (1, 8)]
        for call in (*calls, *calls):
            call()
        assert be.infer({"x": np.zeros((3, 3, 16, 16), np.float32)})["logits"].shape == (3, 10)
