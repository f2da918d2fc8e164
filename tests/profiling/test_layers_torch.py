"""torch.profiler rows attributed to modules, with roles for the attention's parts."""

from __future__ import annotations

import os

import pytest
import torch

from seadeploy.errors import ConfigError
from seadeploy.models.build import load_model
from seadeploy.profiling import schema
from seadeploy.profiling.layers_torch import kineto_lines_dropped, onnx_op, sequence_roles
from seadeploy.profiling.per_layer import profile_layers
from seadeploy.runfolder import Checkpoint


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
    prof = profile_layers(tiny_run, ["torch"], batch=2, threads=1, runs=2, warmup_runs=1, duration_s=0.1)
    frame = schema.check_frame(prof.frame)
    model = load_model(Checkpoint.load(tiny_run))
    assert frame["params"].sum() == sum(p.numel() for p in model.parameters())
    names = {n for n, _ in model.named_modules()}
    assert set(frame["module"]) <= names
    att = frame[frame["block"].notna()]
    assert set(att["role"]) == set(schema.ATTENTION_ROLES)
    convs = frame[frame["op_type"] == "aten::conv2d"]
    assert (convs["role"] == "conv").all() and convs["onnx_node"].notna().all()  # matched to exported Conv nodes
    assert (frame["time_ms"] > 0).all() and prof.gaps.loc[0, "backend"] == "torch"


def test_fused_variants_have_no_per_layer_rows(tiny_run):
    """torch.compile fuses across modules (and a CUDA graph replays without them): refused with a pointer."""
    with pytest.raises(ConfigError, match="eager module structure"):
        profile_layers(tiny_run, ["torch:compile"], batch=1, threads=1, runs=1, warmup_runs=0, duration_s=0.05)


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["torch:cuda", "torch:cuda+fp16"])
def test_cuda_kernel_times_per_module_and_role(tiny_run, spec):
    prof = profile_layers(tiny_run, [spec], batch=4, runs=3, warmup_runs=2, duration_s=0.2)
    frame = schema.check_frame(prof.frame)
    assert (frame["backend"] == spec).all() and set(frame["precision"]) == {"fp16" if "fp16" in spec else "fp32"}
    convs = frame[frame["op_type"] == "aten::conv2d"]
    assert (convs["time_ms"] > 0).all() and convs["onnx_node"].notna().all()  # CUDA kernel time of each conv
    assert set(frame.loc[frame["block"].notna(), "role"]) == set(schema.ATTENTION_ROLES)


def test_profiler_chatter_is_dropped_and_other_stderr_kept(capfd):
    with kineto_lines_dropped():
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
            torch.randn(3).sum()
        os.write(2, b"USDT: a line libkineto writes natively\n")  # native writes go to fd 2, as libkineto's do
        os.write(2, b"a real warning\n")
    err = capfd.readouterr().err
    assert "USDT" not in err and "a real warning" in err
