"""CPU tests of everything around the TensorRT build; the real build is the ``trt``-marked test at the end."""

import json

import onnx
import pytest

from seadeploy.errors import BackendUnavailable, InputError
from seadeploy.export.engine_inspect import (
    EngineLayer,
    expected_precisions,
    normalise_dtype,
    parse_inspector_json,
    verify_precisions,
)
from seadeploy.export.trt_engine import EngineConfig, build_engine, parser_errors, require_tensorrt

# Hand-written in the shape TensorRT 10.x writes (trtexec --exportLayerInfo / get_engine_information(JSON)).
TRT10 = {
    "Layers": [
        {"Name": "node_conv2d + node_relu", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "x", "Location": "Device", "Dimensions": [1, 3, 32, 32],
                     "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
         "Outputs": [{"Name": "relu", "Location": "Device", "Dimensions": [1, 16, 32, 32],
                      "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
         "ParameterType": "Convolution", "Metadata": "[ONNX Layer: node_conv2d]\x1e[ONNX Layer: node_relu]",
         "TacticValue": "0x1"},
        {"Name": "node_mean", "LayerType": "Reduce",
         "Inputs": [{"Name": "relu", "Dimensions": [1, 16, 32, 32], "Format/Datatype": "Row major linear FP32"}],
         "Outputs": [{"Name": "mean", "Dimensions": [1, 16, 1, 1], "Format/Datatype": "Row major linear FP32"}],
         "Metadata": "[ONNX Layer: node_mean]"},
        {"Name": "node_conv2d_1", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "mean", "Dimensions": [1, 16, 1, 1], "Format/Datatype": "Row major linear FP32"}],
         "Outputs": [{"Name": "c1", "Dimensions": [1, 4, 1, 1], "Format/Datatype": "Row major linear FP32"}],
         "Metadata": "[ONNX Layer: node_conv2d_1]"},
    ],
    "Bindings": ["x", "logits"],
}
# TensorRT 11.x: "I/O Tensors" objects, Format and Datatype split.
TRT11 = {
    "Layers": [
        {"Name": "node_conv2d", "LayerType": "kgen",
         "Inputs": [{"Name": "x_dq", "Dimensions": [-1, 3, 32, 32], "Format": "NHWC", "Datatype": "Int8"}],
         "Outputs": [{"Name": "relu", "Dimensions": [-1, 16, 32, 32], "Format": "NHWC", "Datatype": "Int8"}],
         "Metadata": "[ONNX Layer: node_conv2d]"},
        {"Name": "node_linear", "LayerType": "gemm",
         "Inputs": [{"Name": "m", "Dimensions": [-1, 16], "Format": "LINEAR", "DataType": "Float"}],
         "Outputs": [{"Name": "logits", "Dimensions": [-1, 10], "Format": "LINEAR", "Datatype": "Float"}],
         "Metadata": ""},
    ],
    "I/O Tensors": [{"Name": "x", "IOMode": "INPUT", "Datatype": "Float", "Dimensions": [-1, 3, 32, 32]},
                    {"Name": "logits", "IOMode": "OUTPUT", "Datatype": "Float", "Dimensions": [-1, 10]}],
}


@pytest.mark.parametrize("text,dtype", [("Row major linear FP32", "fp32"), ("Half", "fp16"), ("INT8", "int8"),
                                        ("Channel major FP16 format where channel % 8 == 0", "fp16"),
                                        ("Thirty-two wide channel vectorized row major Int8 format", "int8"),
                                        ("Float", "fp32"), ("BFloat16", "bf16"), ("", "unknown")])
def test_normalise_dtype(text, dtype):
    assert normalise_dtype(text) == dtype


def test_parse_10x_schema():
    parsed = parse_inspector_json(json.dumps(TRT10), ["node_conv2d", "node_relu", "node_mean", "node_conv2d_1"])
    assert parsed["schema"] == "10.x" and parsed["io"] == ["x", "logits"]
    conv, mean, fc1 = parsed["layers"]
    assert conv.onnx_nodes == ["node_conv2d", "node_relu"] and conv.precision == "fp16"
    assert mean.precision == "fp32" and fc1.inputs[0] == ("mean", "fp32", [1, 16, 1, 1])


def test_parse_11x_schema():
    parsed = parse_inspector_json(TRT11, ["node_conv2d", "node_linear"])
    assert parsed["schema"] == "11.x" and parsed["io"] == ["x", "logits"]
    conv, gemm = parsed["layers"]
    assert conv.precision == "int8" and gemm.precision == "fp32"
    assert gemm.onnx_nodes == ["node_linear"]  # from the layer name when Metadata is empty


@pytest.mark.parametrize("bad", ["not json", json.dumps({"Bindings": []}), json.dumps({"Layers": ["a", "b"]})])
def test_parse_rejects_unusable_json(bad):
    with pytest.raises(InputError):
        parse_inspector_json(bad)


def test_verify_precisions_fp16_with_fp32_islands():
    layers = parse_inspector_json(TRT10, ["node_conv2d", "node_mean", "node_conv2d_1"])["layers"]
    expected = {"node_conv2d": "fp16", "node_conv2d_1": "fp32"}  # the excitation conv stays fp32 by policy
    ok = verify_precisions(layers, expected, "fp16")
    assert ok["passed"] and ok["compute_layers_checked"] == 2 and ok["precision_counts"] == {"fp16": 1, "fp32": 1}
    bad = verify_precisions(layers, {"node_conv2d": "int8", "node_conv2d_1": "fp32"}, "int8")
    assert not bad["passed"] and bad["violations"][0]["actual"] == "fp16"


def test_verify_fails_when_nothing_runs_in_the_requested_precision():
    layer = EngineLayer("node_conv2d", "CaskConvolution", [("x", "fp32", [1])], [], ["node_conv2d"])
    verdict = verify_precisions([layer], {"node_conv2d": "fp16"}, "fp16")
    assert not verdict["passed"] and verdict["violations"][0]["expected"] == "fp16"
    assert not verify_precisions([], {"node_conv2d": "fp32"}, "fp32")["passed"]  # nothing checked


def test_expected_precisions_from_exported_graphs(tiny_onnx, tmp_path):
    import numpy as np

    from seadeploy.export.precision import convert_fp16, quantize_int8

    assert set(expected_precisions(onnx.load(tiny_onnx)).values()) == {"fp32"}
    convert_fp16(tiny_onnx, tmp_path / "h.onnx")
    half = expected_precisions(onnx.shape_inference.infer_shapes(onnx.load(tmp_path / "h.onnx")))
    assert sorted(set(half.values())) == ["fp16", "fp32"]  # main convs fp16, excitation convs fp32
    quantize_int8(tiny_onnx, tmp_path / "q.onnx", np.ones((4, 3, 16, 16), np.float32))
    assert "int8" in expected_precisions(onnx.load(tmp_path / "q.onnx")).values()


def test_config_assembly_per_major_version():
    assert EngineConfig("fp16").flags(11) == {"strongly_typed": True, "builder_flags": []}
    ten = EngineConfig("int8").flags(10)
    assert not ten["strongly_typed"] and set(ten["builder_flags"]) == {"INT8", "FP16", "-TF32"}
    assert set(EngineConfig("fp16").flags(10)["builder_flags"]) == {"FP16", "PREFER_PRECISION_CONSTRAINTS", "-TF32"}
    assert EngineConfig("fp32", tf32=True).flags(10)["builder_flags"] == []
    assert EngineConfig("fp16", strongly_typed=True).flags(10)["builder_flags"] == ["-TF32"]
    with pytest.raises(InputError, match="strongly typed"):
        EngineConfig("fp16", strongly_typed=False).flags(11)
    cfg = EngineConfig(opt_batch=8, max_batch=64)
    assert cfg.profile_shapes(["batch", 3, 32, 32]) == ((1, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32))
    assert cfg.profile_shapes([4, 3, 32, 32]) == ((4, 3, 32, 32),) * 3
    with pytest.raises(InputError):
        EngineConfig(opt_batch=8, max_batch=4).profile_shapes(["batch", 3, 8, 8])


def test_parser_errors_name_nodes_and_hint():
    class Err:
        def code(self):
            return "ErrorCode.UNSUPPORTED_NODE"

        def desc(self):
            return "No importer registered for op: Unique"

        def node_name(self):
            return "node_unique"

        def node_operator(self):
            return "Unique"

    class Parser:
        num_errors = 1

        def get_error(self, i):
            return Err()

    (line,) = parser_errors(Parser())
    assert line.startswith("node_unique (Unique): No importer") and "seadeploy.export lint" in line


def test_without_tensorrt_or_gpu_is_backend_unavailable(tiny_onnx, tmp_path):
    import importlib.util

    import torch

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(BackendUnavailable, match="pip install"):
        require_tensorrt()
    with pytest.raises(BackendUnavailable):
        build_engine(tiny_onnx, tmp_path, EngineConfig("fp32"))
    assert not list(tmp_path.iterdir())


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_engine_on_gpu(tiny_onnx, tmp_path, precision):
    import numpy as np

    from seadeploy.export.precision import convert_fp16, quantize_int8

    src = tmp_path / f"m.{precision}.onnx"
    if precision == "fp16":
        convert_fp16(tiny_onnx, src)
    elif precision == "int8":
        quantize_int8(tiny_onnx, src, np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32))
    else:
        src.write_bytes(tiny_onnx.read_bytes())
    cache = tmp_path / "timing.cache"
    sidecar = build_engine(src, tmp_path, EngineConfig(precision, max_batch=4, timing_cache=str(cache)))
    assert (tmp_path / f"model.{precision}.engine").stat().st_size > 0 and cache.exists()
    saved = json.loads((tmp_path / f"model.{precision}.engine.json").read_text())
    assert saved["precision_check"]["passed"] and saved["device_memory_size_v2"] >= 0
    assert sidecar["gpu"] and sidecar["compute_capability"] and sidecar["tensorrt"]
