"""Layer-wise localisation on a small residual SE net: matching, folding, first divergence, TensorRT boundaries."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from seadeploy.export.onnx_export import export_onnx
from seadeploy.validate.layerwise import LayerwiseResult, capture_modules, layerwise_ort, plan_points
from seadeploy.validate.layerwise_trt import fusion_boundaries, layerwise_trt

X = np.random.default_rng(0).standard_normal((4, 3, 12, 12)).astype(np.float32)


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(c, c // 2), nn.ReLU(), nn.Linear(c // 2, c)

    def forward(self, x):
        a = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean((2, 3))))))
        return x * a[:, :, None, None]


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)
        self.attn, self.drop = Gate(c), nn.Dropout(0.1)

    def forward(self, x):
        return self.relu(self.drop(self.attn(self.relu(self.bn1(self.conv1(x))))) + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.layer1(self.stem(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def net_and_onnx(tmp_path_factory):
    torch.manual_seed(0)
    net = Net().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    return net, export_onnx(net, tmp_path_factory.mktemp("lw") / "model.onnx", (3, 12, 12))


def test_capture_keeps_outputs_safe_from_inplace_ops(net_and_onnx):
    net, _ = net_and_onnx
    calls = capture_modules(net, X)
    bn = calls["layer1.0.bn1"].output
    assert (bn < 0).any()  # the in-place ReLU that follows did not overwrite the recorded BatchNorm output
    assert calls["layer1.0.relu"].calls == 2 and calls["layer1.0.bn1"].order < calls["layer1.0.attn"].order


def test_points_fold_batchnorm_and_follow_graph_order(net_and_onnx):
    net, path = net_and_onnx
    points, unmatched = plan_points(net, onnx.load(str(path)), X)
    labels = [p.module for p in points]
    assert "layer1.0.conv1+bn1" in labels and "layer1.0.attn.fc1" in labels and labels[-1] == "fc"
    assert [p.index for p in points] == sorted(p.index for p in points)
    by_label = {p.module: p for p in points}
    attn = by_label["layer1.0.attn+drop"]  # eval-mode Dropout has no ONNX node: absorbed like a folded BN
    assert attn.container and attn.op_type == "Mul" and not by_label["layer1.0.attn.fc1"].container
    assert "layer1.0.relu" in unmatched  # called twice per block: ambiguous, reported and skipped
    assert not any(label.split(".")[-1] == "bn1" for label in labels)


def test_clean_export_has_no_divergence(net_and_onnx):
    net, path = net_and_onnx
    result = layerwise_ort(net, path, X, "fp32")
    assert result and result.first is None and len(result.rows) >= 10
    assert max(r["rel"] for r in result.rows) < 1e-5
    assert "no layer diverges" in result.summary()


@pytest.mark.parametrize(("weight", "expected"), [("layer1.1.attn.fc2.weight", "layer1.1.attn.fc2"),
                                                  ("layer1.0.conv1.weight", "layer1.0.conv1+bn1")])
def test_first_divergence_names_the_altered_layer(net_and_onnx, tmp_path, weight, expected):
    net, path = net_and_onnx
    proto = onnx.load(str(path))
    init = next(i for i in proto.graph.initializer if i.name == weight)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.3), weight))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    result = layerwise_ort(net, bad, X, "fp32")
    assert not result and result.first["module"] == expected
    node = next(n for n in proto.graph.node if weight in n.input)
    assert result.first["onnx_node"] == node.name and result.first["rel"] > 1e-3
    before = [r for r in result.rows if r["index"] < result.first["index"]]
    assert before and not any(r["diverged"] for r in before)
    d = result.to_dict()
    assert d["first_divergence"]["module"] == expected and f"first divergence at {expected}" in d["summary"]
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["backend", "precision", "index", "module"]


def test_trt_boundaries_are_blocks_attention_and_branch_points(net_and_onnx):
    net, path = net_and_onnx
    proto = onnx.load(str(path))
    points, _ = plan_points(net, proto, X)
    chosen = {p.module for p in fusion_boundaries(points, proto)}
    assert {"layer1.0.attn+drop", "layer1.1.attn+drop", "layer1.0", "stem"} <= chosen  # stem output feeds conv + residual
    assert "layer1.0.attn.fc1" not in chosen and "layer1.0.conv1+bn1" not in chosen  # conv→relu fuses: not marked


def test_empty_result_is_a_pass():
    assert LayerwiseResult("ort", "fp32", 1e-3, [])


@pytest.mark.gpu
@pytest.mark.trt
def test_trt_layerwise_names_engine_layers(net_and_onnx):
    net, path = net_and_onnx
    result = layerwise_trt(net, path, X, "fp32")
    assert result, result.summary()
    assert result.rows and all(r["engine_layer"] for r in result.rows)
