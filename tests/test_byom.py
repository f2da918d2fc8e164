"""Bring your own model: model sources, bad input, structural SE → TSE (PyTorch and ONNX routes)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

from seadeploy.convert.__main__ import main as convert_main
from seadeploy.convert.stage import latency_pair
from seadeploy.errors import InputError
from seadeploy.export.onnx_export import export_onnx
from seadeploy.graphs.load import load_model
from seadeploy.graphs.model_file import OnnxFile, static_batch
from seadeploy.graphs.se_rewrite import find_blocks, se_to_tse_onnx
from seadeploy.models.attention.pooling import tile_broadcast, tile_mean
from seadeploy.models.build import build_model
from seadeploy.models.source import ModelSource, onnx_argument
from seadeploy.models.structural import find_se_modules, se_to_tse_structural, tse_to_se_structural

FIXTURE = Path(__file__).parent / "fixtures" / "user_model.py"
SRC = f"{FIXTURE}:build"


def _net(**kw):
    torch.manual_seed(0)
    return ModelSource(SRC, input_size=32, **kw).build()


def test_source_records_and_rebuilds_from_spec(tmp_path):
    src = ModelSource(SRC, model_kwargs={"width": 4}, input_size=32)
    net = src.build()
    spec = src.spec()
    assert spec.model == f"{FIXTURE.resolve()}:build" and spec.model_kwargs == {"width": 4}
    assert spec.num_classes == 10 and spec.input_size == 32
    assert list(build_model(spec).state_dict()) == list(net.state_dict())


def test_weights_safetensors_and_torch_and_mismatch(tmp_path):
    net = _net()
    state = {k: v + 1 for k, v in net.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "w.pt")
    for f in ("w.safetensors", "w.pt"):
        got = ModelSource(SRC, input_size=32, weights=str(tmp_path / f)).build().state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state)
    save_file({k: v for k, v in state.items() if "head" not in k}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError, match="missing .* tensors .*head"):
        ModelSource(SRC, input_size=32, weights=str(tmp_path / "bad.safetensors")).build()


@pytest.mark.parametrize(("factory", "message"), [
    ("broken", "raised RuntimeError: this factory is broken"),
    ("not_a_module", "returned dict, not a torch.nn.Module"),
    ("needs_args", "cannot be called with no arguments.*--model-arg"),
])
def test_bad_factories_are_one_line_errors(factory, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = convert_main(["--model", f"{FIXTURE}:{factory}", "--to", "tse", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1

    assert re.search(message, err), err
    assert not out.exists()


def test_missing_library_exits_3(capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "timm", None)  # importing timm now fails, installed or not
    code = convert_main(["--model", "timm:seresnext26d_32x4d", "--out", "/nonexistent/x"])
    assert code == 3 and "pip install timm" in capsys.readouterr().err


def test_detector_finds_both_styles_not_the_head():
    found = find_se_modules(_net(), 32)
    assert [p for p, _ in found] == ["recal.0.squeeze_gate", "recal.1.squeeze_gate", "recal.2.squeeze_gate"]


def test_torch_route_is_tse_exact_on_whole_map_and_inverts():
    net = _net().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        assert torch.equal(se_to_tse_structural(net, 16, 32)(x), ref)  # a tile covering every map: SE
        tse = se_to_tse_structural(net, 4, 32)
        assert not torch.allclose(tse(x), ref)
        assert torch.equal(tse_to_se_structural(tse)(x), ref)
    assert list(tse.state_dict()) == list(net.state_dict())
    assert any(p.requires_grad for p in tse.parameters())


def test_torch_route_matches_the_tse_definition_with_edge_tiles():
    """One block, tile 3 on a 16×16 map (edge tiles): x ⊙ up(σ(MLP(tile_mean(x)))) with the block's weights."""
    net = _net().eval()
    block = net.recal[1].squeeze_gate  # MeanGate: 1×1 convs, hard-sigmoid
    lift = torch.nn.Conv2d(3, 16, 1)
    tiled = se_to_tse_structural(torch.nn.Sequential(lift, block), 3, 16)
    with torch.no_grad():
        x = lift(torch.rand(2, 3, 16, 16))
        z = tile_mean(x, (3, 3))
        gate = torch.nn.functional.hardsigmoid(block.expand(torch.relu(block.reduce(z))))
        want = x * tile_broadcast(gate, (3, 3), (16, 16))
        torch.testing.assert_close(tiled[1](x), want, rtol=1e-5, atol=1e-6)


def _export(net, path):
    export_onnx(net, path, (3, 32, 32), dynamic_batch=False, example_batch=1)
    return onnx.load(str(path))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = _net().eval()
    return net, _export(net, tmp_path_factory.mktemp("onnx") / "m.onnx")


@pytest.mark.parametrize("tile", [16, 3, [5, 3]])
def test_onnx_route_equals_torch_route(tile, exported):
    net, graph = exported
    assert [b.convertible for b in find_blocks(graph)] == [True] * 3
    new, records = se_to_tse_onnx(graph, tile)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = ort.InferenceSession(new.SerializeToString()).run(None, {"x": x})[0]
    with torch.no_grad():
        want = se_to_tse_structural(net, tile, 32)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert [r["rewritten"] for r in records] == [tile != 16] * 3


def test_convert_onnx_without_attention_is_one_line_exit_2(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 1, 1])
    g = helper.make_graph([helper.make_node("GlobalAveragePool", ["x"], ["y"])], "gap", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "gap.onnx"))
    code = convert_main(["--onnx", str(tmp_path / "gap.onnx"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no squeeze-excite" in err
    assert not (tmp_path / "o").exists()


def _tiny_onnx(path: Path, external: str | None = None) -> Path:
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3, 8, 8])
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, location=external, size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


def test_external_data_only_inside_the_model_folder(tmp_path):
    ok = _tiny_onnx(tmp_path / "m" / "ok.onnx", external="ok.data")
    assert load_model(ok).graph.initializer[0].raw_data  # the sidecar was read
    bad = _tiny_onnx(tmp_path / "m" / "bad.onnx", external="bad.data")
    proto = onnx.load(str(bad), load_external_data=False)
    for e in proto.graph.initializer[0].external_data:
        if e.key == "location":
            e.value = "../secret.data"
    (tmp_path / "secret.data").write_bytes((tmp_path / "m" / "bad.data").read_bytes())
    onnx.save_model(proto, str(bad))
    with pytest.raises(InputError, match="outside the model's folder"):
        load_model(bad)


def test_file_and_folder_mixups(tmp_path):
    f = _tiny_onnx(tmp_path / "run" / "model.onnx")
    assert onnx_argument(str(f), None) == (None, str(f))  # a file where a folder is expected
    assert onnx_argument(None, str(f.parent)) == (str(f.parent), None)  # a run folder given as --onnx
    assert static_batch(f) == 4
    with pytest.raises(InputError, match="is a folder; it holds .*model.onnx: pass the folder as RUN_DIR"):
        OnnxFile.load(f.parent)
    with pytest.raises(InputError, match="not an .onnx file"):
        onnx_argument(str(tmp_path / "run" / "x.txt") if (tmp_path / "run" / "x.txt").write_text("x") else "", None)


def test_convert_latency_pair_times_with_the_timing_core():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    one = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "one", [x], [y]))
    two = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["t"]),
                                               helper.make_node("Relu", ["t"], ["y"])], "two", [x], [y]))
    r = latency_pair(one, two, rounds=5, runs=2)
    assert r["latency_rounds"] == 5 and r["latency_clock"] == "thread CPU time"
    # the paired ratio with its bootstrap interval (profiling/timing.py) and its range over rounds
    assert r["latency_ratio_low"] <= r["latency_ratio"] <= r["latency_ratio_high"]
    assert r["latency_ratio_min"] <= r["latency_ratio"] <= r["latency_ratio_max"]
    assert r["latency_ms_before"] > 0 and r["latency_ms_after"] > 0
