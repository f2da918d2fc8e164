"""Adding an attention is one class + one registration line: a test-only ECA-style block, defined here and
registered for the duration of the test, goes through the zoo, ``models stats`` and the ONNX export unchanged."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from torch import Tensor, nn

from seadeploy.export.onnx_export import export_onnx
from seadeploy.models import ATTENTION, create_model, list_attention
from seadeploy.models.attention import AttentionWork, register_attention
from seadeploy.models.stats import compute_stats


class EcaLike(nn.Module):
    """Efficient channel attention: GAP → Conv1d over channels → sigmoid → scale."""

    def __init__(self, channels: int, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        z = x.mean((2, 3))[:, None, :]  # N×1×C
        return x * torch.sigmoid(self.conv(z))[:, 0, :, None, None]

    def work(self, c: int, h: int, w: int) -> AttentionWork:
        return AttentionWork(c * h * w, c, c * h * w, 2 * c * h * w, c, c * h * w)


@pytest.fixture
def eca():
    register_attention("test_eca")(EcaLike)  # the one registration line a real plug-in has
    yield "test_eca"
    ATTENTION.unregister("test_eca")


def test_plugin_attention_builds_counts_and_exports(eca, tmp_path):
    assert eca in list_attention()
    model = create_model("resnet20_cifar", attn=eca, num_classes=10).eval()
    stats = compute_stats(model, 32)
    assert stats.summary["attn_blocks"] == 9  # one per residual block
    assert stats.summary["attn_reduce_ops"] == sum(int(r.C * r.H * r.W) for r in stats.attention.itertuples())
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, (3, 32, 32))
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), model(x), atol=1e-4, rtol=1e-4)


def test_attention_without_work_cannot_register():
    class NoWork(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    with pytest.raises(TypeError, match="work"):
        register_attention("test_nowork")(NoWork)
    assert "test_nowork" not in ATTENTION
