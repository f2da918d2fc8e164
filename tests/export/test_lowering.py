"""The SE lowering: the same function, in the op pattern ONNX Runtime's NCHWc fast path keeps."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from seadeploy.export.onnx_export import LOWERING_KEY, export_onnx, node_module_map


class LinearSE(nn.Module):
    """The zoo's SE form: mean over H, W → Linear → ReLU → Linear → Sigmoid → x * s[:, :, None, None]."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, c // 4), nn.Linear(c // 4, c)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]


class Block(nn.Module):
    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.attn = LinearSE(c)
        self.head = nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        r = torch.relu(self.stem(x))
        y = torch.relu(self.attn(self.conv(r)) + r)
        return self.fc(self.head(y).mean((2, 3)))  # a closing squeeze → Gemm → logits chain: must stay as it is


def _run(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_lowered_se_computes_the_same_in_the_nchwc_friendly_form(tmp_path):
    torch.manual_seed(0)
    model = Block().eval()
    plain = export_onnx(model, tmp_path / "plain.onnx", (3, 16, 16), lower=False)
    lowered = export_onnx(model, tmp_path / "lowered.onnx", (3, 16, 16))
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(lowered, x), _run(plain, x), rtol=1e-5, atol=1e-5)

    proto = onnx.load(lowered)
    assert onnx.checker.check_model(proto, full_check=True) is None
    modules = node_module_map(proto)
    attn = [(n.op_type, modules[n.name]) for n in proto.graph.node if modules[n.name].startswith("attn")]
    ops = [op for op, _ in attn]
    assert "ReduceMean" not in ops and "Gemm" not in ops and "Unsqueeze" not in ops
    assert ops.count("GlobalAveragePool") == 1 and ("Conv", "attn.fc1") in attn and ("Conv", "attn.fc2") in attn
    assert "Resize" in ops  # the gate expanded to the map, so the scale Mul has equal-shaped inputs
    assert [n for n in proto.graph.node if n.op_type == "Gemm"] and modules[
        next(n.name for n in proto.graph.node if n.op_type == "Gemm")] == "fc"
    counts = json.loads(next(p.value for p in proto.metadata_props if p.key == LOWERING_KEY))
    assert counts["gates_expanded"] == 1 and counts["residual_joins"] == 1

    # What the rewrite is for: ORT keeps the scale Mul, the residual Add and its Relu in the blocked layout
    # (the plain form reorders the full map out of NCHWc and back around them).
    # and the residual Add + Relu fuse into a Conv again (via the identity depthwise join), as without SE.
    def optimized_ops(path):
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]

    plain_ops, lowered_ops = optimized_ops(plain), optimized_ops(lowered)
    assert plain_ops.count("ReorderInput") >= 1 and lowered_ops.count("ReorderInput") == 0
    assert "Add" in plain_ops and "Add" not in lowered_ops and "Relu" not in lowered_ops
