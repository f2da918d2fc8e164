"""The int8 noise floor: the QDQ file's quantisation simulated in PyTorch, and a wrong scale refused a floor."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from seadeploy.backends import create_backend
from seadeploy.export.precision import quantize_int8
from seadeploy.parity import FloatNoise, default_rule, parity_metrics
from seadeploy.parity.int8 import file_quantisation, int8_probe
from tests.fixtures.tiny import INPUT_SHAPE, make_tiny_net


@pytest.fixture(scope="module")
def quantised(tiny_onnx, tmp_path_factory):
    x = np.random.default_rng(0).standard_normal((48, *INPUT_SHAPE)).astype(np.float32)
    path = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    quantize_int8(tiny_onnx, path, x[:32], target="ort-cpu")
    return path, x


def _ref(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_simulation_uses_the_files_scales_and_tracks_the_runtime(tiny_net, quantised):
    path, x = quantised
    layers = file_quantisation(path)
    assert {"stem.0", "layer1.attn.fc1", "fc"} <= set(layers)  # convolutions and linear layers, by module
    assert all(q.qmin == 0 and q.qmax == 255 for q in layers.values())  # the u8 form's integer range
    ref = _ref(tiny_net, x)
    probe = int8_probe(tiny_net, x, ref, path)
    assert probe.problem is None and probe.summary.n == 48 and probe.summary.precision == "int8"
    assert 0 < probe.summary.centered_loss < 0.1 and 0 <= probe.summary.top1_loss <= 1
    with create_backend("ort", path, threads=1) as be:
        out = be.infer({"x": x})["logits"]
    runtime_loss = 1 - parity_metrics(ref, out)["cosine_centered"]
    # the floor's premise: the file on a runtime loses about what its rounding loses in PyTorch (4× is the rule's)
    assert probe.summary.centered_loss / 4 <= runtime_loss <= 4 * probe.summary.centered_loss
    assert _ref(tiny_net, x[:2]) == pytest.approx(ref[:2])  # the reference model is untouched


def test_a_wrong_scale_in_the_file_gets_no_floor(tiny_net, quantised, tmp_path):
    path, x = quantised
    proto = onnx.load(path)
    inits = {t.name: t for t in proto.graph.initializer}
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    dq = next(n for n in proto.graph.node if n.output[0] == conv.input[0])
    scale = inits[dq.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 16, scale.name))
    onnx.save(proto, tmp_path / "bad.onnx")
    probe = int8_probe(tiny_net, x, _ref(tiny_net, x), tmp_path / "bad.onnx")
    assert probe.summary is None and "no int8 noise floor" in probe.problem and "stem.0" in probe.problem


def test_int8_floors_widen_by_the_stated_factor_and_explicit_bounds_stay_exact():
    rule = default_rule("int8", "data", trained=True)
    m = {"top1": 0.95, "cosine": 0.97, "cosine_centered": 0.96, "accuracy": 0.9, "ref_accuracy": 0.9,
         "violations": 0.0, "max_abs": 1.0}
    assert any("top-1" in f for f in rule.failures(m, labelled=True))
    noise = FloatNoise("int8", 0.1, 0.01, 0.012, 64, top1_loss=0.02)
    m.update(float_noise_cosine=noise.cosine_loss, float_noise_centered=noise.centered_loss,
             float_noise_top1=noise.top1_loss)
    assert rule.top1_floor(m) == pytest.approx(1 - 4 * 0.02) and rule.cosine_floor(m) == pytest.approx(1 - 4 * 0.01)
    assert rule.failures(m, labelled=True) == []
    assert any("top-1" in f for f in rule.override(min_top1=0.99).failures(m, labelled=True))


def test_a_file_that_does_not_hold_the_models_weights_gets_no_floor(quantised):
    """The reference with one kernel transposed (a layout bug): the file's codes are not its weights rounded."""
    path, x = quantised
    net = make_tiny_net()
    conv = net.layer1[0]
    conv.weight.data = conv.weight.data.transpose(2, 3).contiguous()
    probe = int8_probe(net, x, _ref(net, x), path)
    assert probe.summary is None and "are not the model's weights rounded" in probe.problem
