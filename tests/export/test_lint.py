import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from seadeploy.errors import InputError
from seadeploy.export.__main__ import main
from seadeploy.export.lint import lint_onnx
from seadeploy.export.onnx_export import export_onnx


def _model(nodes, inits=(), opset=18, domains=()):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 7, 7])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=list(inits))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, 1) for d in domains]]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def _lint(tmp_path, proto, **save):
    path = tmp_path / "m.onnx"
    onnx.save_model(proto, str(path), **save)
    return lint_onnx(path)


def _rules(report):
    return {f.rule for f in report.findings}


def test_clean_graph_has_no_findings(tmp_path, tiny_onnx):
    report = lint_onnx(tiny_onnx)
    assert report and report.findings == []
    assert _lint(tmp_path, _model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[7, 7])])).findings == []


def test_ceil_mode_with_padding_is_an_error(tmp_path):
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                            pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1)
    report = _lint(tmp_path, _model([node]))
    assert not report
    assert {"pool-ceil-pad", "avgpool-count-include-pad", "ceil-edge-tile"} <= _rules(report)
    err = next(f for f in report.findings if f.rule == "pool-ceil-pad")
    assert err.severity == "error" and err.node == "pool" and "padding=0" in err.hint


def test_ceil_edge_tile_without_padding_is_info_only(tmp_path):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    report = _lint(tmp_path, _model([node]))
    assert report and _rules(report) == {"ceil-edge-tile"}  # 7 % 2 != 0, count_include_pad=0


def test_nearest_exact_gathernd_and_unsupported_ops(tmp_path):
    roi = numpy_helper.from_array(np.array([], np.float32), "roi")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    idx = numpy_helper.from_array(np.zeros((1, 1), np.int64), "idx")
    nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["r"], name="up", mode="nearest",
                              coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil"),
             helper.make_node("GatherND", ["r", "idx"], ["g"], name="gnd"),
             helper.make_node("Unique", ["g"], ["u"], name="uniq"),
             helper.make_node("FusedConv", ["u"], ["y"], name="fc", domain="com.microsoft")]
    report = _lint(tmp_path, _model(nodes, [roi, scales, idx], domains=["com.microsoft"]))
    by_node = {f.node: f for f in report.findings}
    assert by_node["up"].rule == "nearest-exact" and by_node["gnd"].rule == "gathernd"
    assert by_node["uniq"].rule == by_node["fc"].rule == "trt-unsupported-op"
    assert not report and all(f.hint for f in report.findings)


def test_external_data_sidecar_is_an_error(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    proto = _model([helper.make_node("Conv", ["x", "w"], ["y"])], [w])
    report = _lint(tmp_path, proto, save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    assert (tmp_path / "m.onnx.data").exists()
    assert "external-data" in _rules(report) and not report


def test_opset_outside_tensorrt_range(tmp_path):
    report = _lint(tmp_path, _model([helper.make_node("Relu", ["x"], ["y"])], opset=8))
    assert _rules(report) == {"opset-range"}


def test_real_export_of_nearest_exact_is_flagged(tmp_path):
    class Up(torch.nn.Module):
        def forward(self, x):
            return F.interpolate(x[:, :, ::2, ::2], size=x.shape[-2:], mode="nearest-exact").mean((2, 3))

    report = lint_onnx(export_onnx(Up(), tmp_path / "up.onnx", (3, 8, 8)))
    assert _rules(report) & {"gathernd", "nearest-exact"}


def test_cli_exit_codes(tmp_path, tiny_onnx, capsys):
    assert main(["lint", str(tiny_onnx)]) == 0
    bad = tmp_path / "bad.onnx"
    onnx.save_model(_model([helper.make_node("Unique", ["x"], ["y"])]), str(bad))
    assert main(["lint", str(bad), "--json"]) == 1
    assert '"trt-unsupported-op"' in capsys.readouterr().out
    truncated = tmp_path / "trunc.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:1500])
    (tmp_path / "text.onnx").write_text("hello")
    for path in (truncated, tmp_path / "text.onnx", tmp_path / "missing.onnx"):
        assert main(["lint", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    with pytest.raises(InputError):
        lint_onnx(truncated)
