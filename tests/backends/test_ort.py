"""OrtBackend specifics: pinned threads, optimisation levels, profiling, extra outputs, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from seadeploy.backends.ort import OrtBackend, plain_session, with_extra_outputs
from seadeploy.errors import ConfigError, InputError

X = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_threads_and_graph_opt_are_applied_and_recorded(tiny_onnx, level):
    with OrtBackend(tiny_onnx, threads=1, graph_opt=level) as be:
        assert be.info["threads"] == 1 and be.info["graph_opt"] == level
        assert be.info["providers"] == ["CPUExecutionProvider"] and be.info["tf32"] is False
        assert be.session.get_session_options().intra_op_num_threads == 1
        out = be.infer({"x": X})["logits"]
    with OrtBackend(tiny_onnx, threads=1, graph_opt="disable") as ref:
        np.testing.assert_allclose(out, ref.infer({"x": X})["logits"], atol=1e-5, rtol=1e-5)


def test_bad_options_raise_config_error(tiny_onnx):
    with pytest.raises(ConfigError, match="optimisation level 'max'.*disable, basic, extended, all"):
        OrtBackend(tiny_onnx, graph_opt="max")
    with pytest.raises(ConfigError, match="threads must be ≥ 1"):
        OrtBackend(tiny_onnx, threads=0)


def test_profiling_returns_a_node_trace(tiny_onnx, tmp_path):
    with OrtBackend(tiny_onnx, threads=1, profile=True, profile_dir=tmp_path) as be:
        be.infer({"x": X})
        trace = be.end_profiling()
    assert trace.parent == tmp_path and trace.suffix == ".json"
    events = json.loads(trace.read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    assert nodes and {"op_name", "provider"} <= set(nodes[0]["args"])
    with OrtBackend(tiny_onnx, threads=1) as be, pytest.raises(ConfigError, match="profile=True"):
        be.end_profiling()


def test_extra_outputs_expose_intermediate_tensors_without_touching_the_file(tiny_onnx):
    before = tiny_onnx.read_bytes()
    proto = onnx.load(str(tiny_onnx))
    sig = next(n for n in proto.graph.node if n.op_type == "Sigmoid")
    with OrtBackend(tiny_onnx, threads=1, extra_outputs=[sig.output[0]]) as be:
        out = be.infer({"x": X})
        assert be.output_names == ["logits", sig.output[0]]
    gate = out[sig.output[0]]
    assert gate.shape == (2, 16, 1, 1) and ((gate > 0) & (gate < 1)).all()  # layer1.attn: 16 channels
    assert tiny_onnx.read_bytes() == before
    with pytest.raises(ConfigError, match="'nope' is not a tensor"):
        with_extra_outputs(proto, ["nope"])


def test_missing_and_corrupt_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        OrtBackend(tmp_path / "model.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(InputError, match="cannot load"):
        OrtBackend(bad)
    with pytest.raises(ConfigError, match="runs an .onnx path"):
        OrtBackend(42)


def test_run_folder_source_uses_model_onnx(tiny_onnx):
    with OrtBackend(tiny_onnx.parent, threads=1) as be:
        assert be.path == tiny_onnx


def test_plain_session_is_the_ort_session_for_timing_and_graph_dumps(tiny_onnx, tmp_path):
    saved = tmp_path / "opt.onnx"
    sess = plain_session(tiny_onnx, threads=1, graph_opt="extended", optimized_model_path=saved)
    assert sess.get_session_options().intra_op_num_threads == 1 and sess.get_providers() == ["CPUExecutionProvider"]
    assert saved.is_file() and onnx.load(str(saved)).graph.node  # the graph ORT runs at that level
    plain = plain_session(onnx.load(str(tiny_onnx)), graph_opt="disable", profile_prefix=tmp_path / "prof")
    np.testing.assert_allclose(plain.run(None, {"x": X})[0], sess.run(None, {"x": X})[0], atol=1e-5, rtol=1e-5)
    assert json.loads(Path(plain.end_profiling()).read_text())  # profiling on: a trace to read
    with pytest.raises(ConfigError, match="optimisation level 'max'"):
        plain_session(tiny_onnx, graph_opt="max")
    with pytest.raises(InputError, match="cannot load"):
        plain_session(b"not a protobuf at all")
