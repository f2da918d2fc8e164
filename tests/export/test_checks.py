import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from seadeploy.errors import InputError, ParityFailure
from seadeploy.export import checks
from seadeploy.export.steps import check_file
from seadeploy.graphs.load import load_model
from seadeploy.parity import default_rule


def _relu_model(declared_out: list) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])
    mid = helper.make_tensor_value_info("mid", TensorProto.FLOAT, declared_out)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["mid"], name="r1"),
                               helper.make_node("Neg", ["mid"], ["logits"], name="n1")], "g", [x], [y], value_info=[mid])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def test_declared_vs_runtime_shapes_catches_a_wrong_declaration():
    feed = {"x": np.ones((3, 4), np.float32)}
    assert checks.check_declared_shapes(_relu_model(["batch", 4]), feed)
    bad = checks.check_declared_shapes(_relu_model(["batch", 5]), feed)
    assert not bad and "mid: declared [3, 5], runtime [3, 4]" in bad.detail


def test_full_check_and_strict_inference_pass_on_export(tiny_onnx):
    assert checks.check_model_full(tiny_onnx)
    inferred, result = checks.infer_shapes_strict(onnx.load(tiny_onnx))
    assert result and inferred is not None
    from_file, file_result = checks.infer_shapes_strict(tiny_onnx)  # inferred in C++ from the file
    assert file_result.to_dict() == {**result.to_dict(), "file": tiny_onnx.name}
    assert from_file.SerializeToString(deterministic=True) == inferred.SerializeToString(deterministic=True)


def test_strict_inference_reports_inconsistent_shapes(tmp_path):
    proto = _relu_model(["batch", 5])  # Relu cannot change 4 into 5
    inferred, result = checks.infer_shapes_strict(proto)
    assert inferred is None and not result and result.detail
    onnx.save(proto, tmp_path / "bad.onnx")
    inferred, from_file = checks.infer_shapes_strict(tmp_path / "bad.onnx")
    assert inferred is None and not from_file and from_file.detail == result.detail and from_file.file == "bad.onnx"


def test_file_checks_refuse_an_unreadable_file_as_input_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not an onnx model at all")
    record: list = []
    with pytest.raises(InputError, match="truncated or not ONNX"):
        check_file(path, 1, record)
    assert record == []


def test_file_checks_record_every_check_and_stop_on_a_wrong_declaration(tmp_path):
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(_relu_model(["batch", 4]), good)
    record: list = []
    check_file(good, 3, record)
    assert [r.name for r in record] == ["onnx.checker.full_check", "shape_inference.strict",
                                           "declared_vs_runtime_shapes"] and all(r.passed for r in record)
    onnx.save(_relu_model(["batch", 5]), bad)
    with pytest.raises(ParityFailure, match="bad.onnx: check"):
        check_file(bad, 3, record)


def test_parity_fails_beyond_tolerance(tiny_net, tiny_onnx):
    def off_by_a_bit(x):
        return tiny_net(torch.from_numpy(x)).detach().numpy() + 1e-2

    inputs = checks.seeded_inputs((3, 16, 16), (2,))
    result = checks.check_parity(off_by_a_bit, tiny_onnx, inputs)
    assert not result and result.metrics["max_abs"] == pytest.approx(1e-2, rel=1e-3)
    assert result.name == "parity.ort_vs_torch" and "FAIL" in result.detail and result.metrics["batches"] == [2]
    looser = default_rule("fp32", "random").override(atol=2e-2, min_cosine=0.99)  # command-line bounds
    assert checks.check_parity(off_by_a_bit, tiny_onnx, inputs, rule=looser)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all", None])
def test_the_onnx_loader_rejects_bad_files(tmp_path, tiny_onnx, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(tiny_onnx.read_bytes()[:2000] if content is None else content)
    with pytest.raises(InputError, match="truncated or not ONNX"):
        load_model(path)


def test_the_onnx_loader_names_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")
