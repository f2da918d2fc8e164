"""torch.profiler rows attributed to modules, with roles for the attention's parts."""

from __future__ import annotations

from seadeploy.profiling import schema
from seadeploy.profiling.layers import profile_layers
from seadeploy.profiling.layers_torch import onnx_op, sequence_roles


def test_aten_names_map_to_onnx_ops():
    assert onnx_op("aten::relu_") == "Relu" and onnx_op("aten::mean") == "ReduceMean"
    assert onnx_op("aten::upsample_nearest2d") == "Resize" and onnx_op("aten::weird") == "aten::weird"


def test_sequence_roles_put_shape_ops_in_squeeze_or_scale():
    mods = ["b.se", "b.se", "b.se.fc1", "b.se.gate", "b.se", "b.se", "b.conv"]
    blocks = ["b.se"] * 6 + [None]  # from the ONNX graph's structure (module_blocks), not from the names
    ops = ["aten::view", "aten::mean", "aten::linear", "aten::sigmoid", "aten::unsqueeze", "aten::mul", "aten::view"]
    roles = ["attention.excite", "attention.squeeze", "attention.excite", "attention.gate", "attention.excite",
             "attention.scale", "other"]
    assert sequence_roles(mods, ops, roles, blocks) == ["attention.squeeze", "attention.squeeze", "attention.excite",
                                                 "attention.gate", "attention.scale", "attention.scale", "other"]


def test_profile_torch_attributes_ops_to_modules(tiny_run):
    from seadeploy.artifacts import Checkpoint

    prof = profile_layers(tiny_run, ["torch"], batch=2, threads=1, runs=2, warmup_runs=1, duration_s=0.1)
    frame = schema.check_frame(prof.frame)
    model = Checkpoint.load(tiny_run).build_model()
    assert frame["params"].sum() == sum(p.numel() for p in model.parameters())
    names = {n for n, _ in model.named_modules()}
    assert set(frame["module"]) <= names
    att = frame[frame["block"].notna()]
    assert set(att["role"]) == set(schema.ATTENTION_ROLES)
    convs = frame[frame["op_type"] == "aten::conv2d"]
    assert (convs["role"] == "conv").all() and convs["onnx_node"].notna().all()  # matched to exported Conv nodes
    assert (frame["time_ms"] > 0).all() and prof.gaps.loc[0, "backend"] == "torch"
