"""Every attention × backbone exports with the dynamo exporter and matches ONNX Runtime on CPU.

The export traces batch 2 (seadeploy.export.onnx_export.export_onnx); ONNX Runtime then runs batches 3 and 5,
compared with PyTorch by ``|ort − torch| ≤ atol + rtol·|torch|`` (atol 1e-4, rtol 1e-3). Models get random
BatchNorm statistics first so the logits are O(1) and the comparison is meaningful.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seadeploy.export.onnx_export import export_onnx
from seadeploy.graphs.attention import find_attention
from seadeploy.models import create_model, list_attention
from seadeploy.models.convert import attention_paths
from seadeploy.models.stats import compute_stats

ATTNS = [a for a in list_attention() if a != "none"]
SMALL = [("vgg16_cifar", 32), ("resnet20_cifar", 32)]
LARGE = [("resnet18", 64), ("efficientnet_b0", 64)]  # the larger graphs: a few seconds per export each


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_and_compare(name: str, size: int, attn: str, tmp_path, randomized, kw=None) -> onnx.ModelProto:
    model = randomized(create_model(name, attn, kw or {}, num_classes=10, input_size=size)).eval()
    path = export_onnx(model, tmp_path / "model.onnx", input_shape=(3, size, size))
    proto = onnx.load(str(path))
    # every attention block is found by graph structure (names never decide it), one per attention module
    assert len(find_attention(proto).blocks) == len(attention_paths(model))
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"GatherND", "AveragePoolCeil"}, f"slow/untrusted ops in the graph: {ops}"
    sess = _session(path)
    for batch in (3, 5):
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = model(x).numpy()
        out = sess.run(None, {"x": x.numpy()})[0]
        assert out.shape == (batch, 10)
        assert np.abs(ref).max() > 1e-3, "logits too small for a meaningful comparison"
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3)
    return proto


@pytest.mark.parametrize("attn", ATTNS)
@pytest.mark.parametrize(("name", "size"), SMALL)
def test_export_matches_onnxruntime_small(name, size, attn, tmp_path, randomized):
    export_and_compare(name, size, attn, tmp_path, randomized)


@pytest.mark.slow
@pytest.mark.parametrize("attn", ATTNS)
@pytest.mark.parametrize(("name", "size"), LARGE)
def test_export_matches_onnxruntime_large(name, size, attn, tmp_path, randomized):
    export_and_compare(name, size, attn, tmp_path, randomized)


@pytest.mark.parametrize(("size", "tile"), [(40, 7), (36, 5)])
def test_tse_export_on_odd_maps_has_fast_lowering(size, tile, tmp_path, randomized):
    # resnet20_cifar at 40 / 36 px: maps 40/20/10 and 36/18/9 — partial edge tiles at every stage.
    proto = export_and_compare("resnet20_cifar", size, "tse", tmp_path, randomized, {"tile": tile})
    ops = [n.op_type for n in proto.graph.node]
    assert "Resize" in ops and "AveragePool" in ops
    assert not {"Expand", "GatherND", "Gather", "Tile"} & set(ops)  # no repeat_interleave-style broadcast
    for node in proto.graph.node:
        if node.op_type == "AveragePool":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert not attrs.get("ceil_mode", 0) and not any(attrs.get("pads", [])), attrs


def test_random_squeeze_exports_and_runs(tmp_path):
    # random squeeze: fresh noise at every call, so only the export and the statistics are checked.
    model = create_model("resnet20_cifar", "se", {"squeeze": "random", "bias": False}).eval()
    path = export_onnx(model, tmp_path / "model.onnx", input_shape=(3, 32, 32))
    sess = _session(path)
    for batch in (3, 5):
        out = sess.run(None, {"x": np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), np.float32)})[0]
        assert out.shape == (batch, 10) and np.isfinite(out).all()
    stats = compute_stats(model, 32)
    assert stats.summary["attn_blocks"] == 9 and stats.summary["attn_reduce_ops"] == 0
    assert [b.squeeze_ops for b in find_attention(path).blocks] == [("RandomUniformLike",)] * 9
