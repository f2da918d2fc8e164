"""The ONNX SE → TSE rewrite on the structural detector's blocks: a block the lowering has no form for is kept
and noted while the others are rewritten (the exactness of plain SE nets is tested in test_byom.py)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seadeploy.errors import InputError
from seadeploy.graphs.se_rewrite import se_to_tse_onnx
from seadeploy.models.structural import se_to_tse_structural
from tests.graphs.attention_nets import CBAM, SIZE, SEMeanConv, TwoBlockNet, export


def test_cbam_block_is_kept_with_a_note_and_se_block_rewritten(tmp_path):
    torch.manual_seed(0)
    net = TwoBlockNet(SEMeanConv, "se").eval()
    net.stage2.se = CBAM(net.stem[0].out_channels).eval()
    export(net, tmp_path / "m.onnx", dynamo=False)
    graph = onnx.load(str(tmp_path / "m.onnx"))
    new, records = se_to_tse_onnx(graph, 3)
    assert [r["rewritten"] for r in records] == [True, False]
    assert "CBAM" in records[1]["reason"] and records[1]["tile"] is None
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    name = new.graph.input[0].name
    got = ort.InferenceSession(new.SerializeToString()).run(None, {name: x})[0]
    with torch.no_grad():  # the PyTorch route tiles the SE module only: CBAM's output is not x·g(pool(x))
        want = se_to_tse_structural(net, 3, SIZE)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_graph_output_without_a_shape_is_inferred_and_a_graph_the_checker_refuses_is_bad_input(tmp_path):
    torch.manual_seed(0)
    export(TwoBlockNet(SEMeanConv, "se").eval(), tmp_path / "m.onnx", dynamo=False)
    graph = onnx.load(str(tmp_path / "m.onnx"))
    graph.graph.output[0].type.tensor_type.ClearField("shape")  # some exporters leave it out; the checker refuses
    del graph.graph.value_info[:]
    new, records = se_to_tse_onnx(graph, 3)
    assert all(r["rewritten"] for r in records) and new.graph.output[0].type.tensor_type.HasField("shape")
    graph.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(InputError, match="fails the ONNX checker before conversion"):
        se_to_tse_onnx(graph, 3)
