import numpy as np
import onnx
import pytest
import torch

from seadeploy.backends.ort import plain_session
from seadeploy.errors import ConfigError
from seadeploy.export import checks
from seadeploy.export.onnx_export import MODULE_KEY, export_onnx, node_module_map, restore_modules


def test_io_names_dynamic_batch_and_opset(tiny_onnx):
    proto = onnx.load(tiny_onnx)
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert next(o.version for o in proto.opset_import if o.domain == "") == 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert [p.name for p in tiny_onnx.parent.iterdir()] == ["model.onnx"]  # no sidecar, no temp file left


def test_every_node_names_its_module(tiny_onnx):
    proto = onnx.load(tiny_onnx)
    modules = node_module_map(proto)
    assert set(modules) == {n.name for n in proto.graph.node}
    assert all(any(p.key == MODULE_KEY for p in n.metadata_props) for n in proto.graph.node)
    by_op = {}
    for node in proto.graph.node:
        by_op.setdefault(node.op_type, set()).add(modules[node.name])
    # BatchNorm is folded into the convolutions; the fused Conv is attributed to the conv it replaced.
    assert {"stem.0", "layer1.0", "layer1.attn.fc1", "layer1.attn.fc2"} <= by_op["Conv"]
    assert "layer1.attn" in by_op["Sigmoid"] and "layer1.attn" in by_op["GlobalAveragePool"]  # lowered squeeze
    assert by_op["Gemm"] == {"fc"}


def test_map_falls_back_to_exporter_name_scopes(tiny_onnx):
    proto = onnx.load(tiny_onnx)
    for node in proto.graph.node:
        for prop in [p for p in node.metadata_props if p.key == MODULE_KEY]:
            node.metadata_props.remove(prop)
    modules = node_module_map(proto)
    assert "layer1.attn.fc1" in modules.values()
    restored = restore_modules(proto, onnx.load(tiny_onnx))
    assert node_module_map(restored) == node_module_map(onnx.load(tiny_onnx))


def test_runs_at_other_batch_sizes(tiny_net, tiny_onnx):
    ref = lambda x: tiny_net(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    result = checks.check_parity(ref, tiny_onnx, checks.seeded_inputs((3, 16, 16), (1, 5)))
    assert result, result.detail
    assert result.metrics["batches"] == [1, 5] and result.metrics["max_abs"] < 1e-4


def test_static_batch(tiny_net, tmp_path):
    path = export_onnx(tiny_net, tmp_path / "s.onnx", (3, 16, 16), dynamic_batch=False, example_batch=1)
    dim0 = onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_value == 1
    sess = plain_session(path)
    assert sess.run(None, {"x": np.zeros((1, 3, 16, 16), np.float32)})[0].shape == (1, 10)


@pytest.mark.parametrize("bad", [{"opset": 12}, {"opset": 30}, {"input_shape": (3, 16)}])
def test_bad_arguments_raise_config_error(tiny_net, tmp_path, bad):
    kwargs = {"input_shape": (3, 16, 16), **bad}
    with pytest.raises(ConfigError):
        export_onnx(tiny_net, tmp_path / "x.onnx", kwargs.pop("input_shape"), **kwargs)
    assert not list(tmp_path.iterdir())


def test_untraceable_model_is_a_config_error(tmp_path):
    class Bad(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return x.mean((1, 2, 3))[:, None]
            return x.amax((1, 2, 3))[:, None]

    with pytest.raises(ConfigError, match="could not export"):
        export_onnx(Bad(), tmp_path / "bad.onnx", (3, 8, 8))
    assert not list(tmp_path.iterdir())
