"""CPU tests of everything around the TensorRT build; the real build is the ``trt``-marked test at the end."""

import enum
import importlib.util
import json
import sys
import types

import numpy as np
import onnx
import pytest
import torch

from seadeploy.backends import trt_support
from seadeploy.errors import BackendUnavailable, InputError
from seadeploy.export.engine_inspect import (
    EngineLayer,
    expected_precisions,
    normalise_dtype,
    parse_inspector_json,
    verify_precisions,
)
from seadeploy.export.precision import convert_fp16, quantize_int8
from seadeploy.export.trt_engine import EngineConfig, build_engine, parser_errors, require_tensorrt
from seadeploy.validate.layerwise_trt import build_marked_engine

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
    assert set(expected_precisions(onnx.load(tiny_onnx)).values()) == {"fp32"}
    convert_fp16(tiny_onnx, tmp_path / "h.onnx")
    half = expected_precisions(onnx.shape_inference.infer_shapes(onnx.load(tmp_path / "h.onnx")))
    assert sorted(set(half.values())) == ["fp16", "fp32"]  # main convs fp16, excitation convs fp32
    quantize_int8(tiny_onnx, tmp_path / "q.onnx", np.ones((4, 3, 16, 16), np.float32))
    assert "int8" in expected_precisions(onnx.load(tmp_path / "q.onnx")).values()


def test_config_assembly_per_major_version():
    # TF32 is on by default in TensorRT 10 and 11: strict fp32 clears it on both majors.
    assert EngineConfig("fp16").flags(11) == {"strongly_typed": True, "builder_flags": ["-TF32"]}
    assert EngineConfig("fp32").flags(11)["builder_flags"] == ["-TF32"]
    ten = EngineConfig("int8").flags(10)
    assert not ten["strongly_typed"] and set(ten["builder_flags"]) == {"INT8", "FP16", "-TF32"}
    assert set(EngineConfig("fp16").flags(10)["builder_flags"]) == {"FP16", "PREFER_PRECISION_CONSTRAINTS", "-TF32"}
    assert EngineConfig("fp32", tf32=True).flags(10)["builder_flags"] == ["TF32"]
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
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present")
    with pytest.raises(BackendUnavailable, match="pip install|GPU"):
        require_tensorrt()
    with pytest.raises(BackendUnavailable):
        build_engine(tiny_onnx, tmp_path, EngineConfig("fp32"))
    assert not list(tmp_path.iterdir())


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_engine_on_gpu(tiny_onnx, tmp_path, precision):
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
    assert saved["precision_check"]["passed"] and saved["device_memory_bytes"] >= 0 and saved["tf32"] is False
    assert sidecar["gpu"] and sidecar["compute_capability"] and sidecar["tensorrt"]


# ------------------------------------------------------------------------------ TensorRT fakes (CPU)
# Only what needs a device is faked: the bindings below use TensorRT's real enum and member names
# (BuilderFlag.TF32 = 6 as in NvInfer.h, DataType.BF16 ...), and build_engine's own code runs unchanged.
NA = "N/A due to dynamic shapes"


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 2
    TF32 = 6
    PREFER_PRECISION_CONSTRAINTS = 12


class FakeConfig:
    def __init__(self):
        self.flags = {BuilderFlag.TF32}  # TensorRT turns TF32 on by default (10 and 11)
        self.profiles, self.cache = [], None

    def set_memory_pool_limit(self, pool, size):
        self.workspace = size

    def set_flag(self, flag):
        self.flags.add(flag)

    def clear_flag(self, flag):
        self.flags.discard(flag)

    def get_flag(self, flag):
        return flag in self.flags

    def create_timing_cache(self, blob):
        return bytes(blob)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return types.SimpleNamespace(serialize=lambda: b"cache")

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)


class FakeInspector:
    """Answers like TensorRT: without an execution context, dynamic-shape tensors read "N/A ..."."""

    def __init__(self, engine):
        self.engine, self.execution_context = engine, None

    def get_engine_information(self, fmt):
        ctx = self.execution_context
        resolved = ctx is not None and "x" in ctx.shapes
        batch = ctx.shapes["x"][0] if resolved else -1
        fmt10 = "Row major linear FP32" if resolved else NA

        def tensor(name, dims):
            if self.engine.major >= 11:
                return {"Name": name, "Dimensions": [batch, *dims], "Format": fmt10 if not resolved else "LINEAR",
                        "Datatype": "Float" if resolved else NA}
            return {"Name": name, "Dimensions": [batch, *dims], "Format/Datatype": fmt10}

        layers = [{"Name": n, "LayerType": "CaskConvolution", "Inputs": [tensor(f"{n}_in", [8, 8, 8])],
                   "Outputs": [tensor(f"{n}_out", [8, 8, 8])], "Metadata": f"[ONNX Layer: {n}]"}
                  for n in self.engine.convs]
        io = {"I/O Tensors": [{"Name": "x"}, {"Name": "logits"}]} if self.engine.major >= 11 else {"Bindings": ["x", "logits"]}
        return json.dumps({"Layers": layers, **io})


class FakeContext:
    def __init__(self):
        self.shapes = {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True


class FakeEngine:
    num_io_tensors = 2

    def __init__(self, convs, major, memory_attr):
        self.convs, self.major = convs, major
        setattr(self, memory_attr, 4096)

    def get_tensor_name(self, i):
        return ["x", "logits"][i]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "x" else "OUTPUT"

    def get_tensor_shape(self, name):
        return (-1, 3, 16, 16) if name == "x" else (-1, 10)

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16)]

    def create_execution_context(self):
        return FakeContext()

    def create_engine_inspector(self):
        return FakeInspector(self)


def fake_tensorrt(version, convs=(), memory_attr="device_memory_size_v2"):
    """A ``tensorrt`` module with the names build_engine uses; records what the build configured."""
    calls = {"plugins": 0, "configs": []}
    major = int(version.split(".")[0])

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["network_flags"] = flags
            return types.SimpleNamespace(num_layers=0)

        def create_builder_config(self):
            calls["configs"].append(FakeConfig())
            return calls["configs"][-1]

        def create_optimization_profile(self):
            return types.SimpleNamespace(set_shape=lambda name, lo, opt, hi: calls.setdefault("profile", (lo, opt, hi)))

        def build_serialized_network(self, network, config):
            return b"plan"

    def init_plugins(logger, namespace):
        calls["plugins"] += 1
        assert namespace == ""
        return True

    mod = types.SimpleNamespace(
        __version__=version, Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        init_libnvinfer_plugins=init_plugins, Builder=Builder, BuilderFlag=BuilderFlag,
        NetworkDefinitionCreationFlag=enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5}),
        OnnxParser=lambda network, logger: types.SimpleNamespace(parse_from_file=lambda path: True, num_errors=0),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE=0), ProfilingVerbosity=types.SimpleNamespace(DETAILED=2),
        LayerInformationFormat=types.SimpleNamespace(ONELINE=0, JSON=1),
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        Runtime=lambda logger: types.SimpleNamespace(
            deserialize_cuda_engine=lambda plan: FakeEngine(list(convs), major, memory_attr)),
        float32="float32")
    return mod, calls


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda as on a one-GPU machine (the device is the only thing faked)."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(d))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    return current


@pytest.mark.parametrize("version,memory_attr", [("11.4.0", "device_memory_size_v2"), ("10.16.0", "device_memory_size_v2"),
                                                 ("10.0.1", "device_memory_size")])
def test_build_engine_sidecar_records_the_truth(tiny_onnx, tmp_path, monkeypatch, fake_gpu, version, memory_attr):
    """TF32 cleared on 10 and 11 and recorded as the config reports it; plugins registered; the dynamic-batch
    engine's precisions read with a context attached (no N/A → "unknown" failure); 10.0 memory fallback."""
    convs = [n.name for n in onnx.load(tiny_onnx).graph.node if n.op_type == "Conv"]
    mod, calls = fake_tensorrt(version, convs, memory_attr)
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    sidecar = build_engine(tiny_onnx, tmp_path, EngineConfig("fp32", max_batch=4))
    (config,) = calls["configs"]
    assert not config.get_flag(BuilderFlag.TF32) and sidecar["tf32"] is False
    assert calls["plugins"] == 1 and fake_gpu == [0]
    assert sidecar["precision_check"]["passed"] and sidecar["precision_check"]["compute_layers_checked"] == len(convs)
    assert sidecar["device_memory_bytes"] == 4096 and sidecar["device_memory_api"] == memory_attr
    assert sidecar["inspector_schema"] == ("11.x" if version.startswith("11") else "10.x")
    assert json.loads((tmp_path / "model.fp32.engine.json").read_text())["tf32"] is False


def test_tf32_on_request_is_recorded(tiny_onnx, tmp_path, monkeypatch, fake_gpu):
    convs = [n.name for n in onnx.load(tiny_onnx).graph.node if n.op_type == "Conv"]
    mod, _calls = fake_tensorrt("11.4.0", convs)
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    assert build_engine(tiny_onnx, tmp_path, EngineConfig("fp32", tf32=True))["tf32"] is True


def test_inspector_without_context_reads_na_and_is_skipped():
    engine = FakeEngine(["node_conv"], 10, "device_memory_size_v2")
    text = engine.create_engine_inspector().get_engine_information(1)  # no context: what the old code read
    layers = parse_inspector_json(text, ["node_conv"])["layers"]
    assert layers[0].precision == "n/a" and normalise_dtype(NA) == "n/a"
    verdict = verify_precisions(layers, {"node_conv": "fp32"}, "fp32")
    assert verdict["violations"] == [] and verdict["unresolved_layers"] == 1 and not verdict["passed"]
    mod, _ = fake_tensorrt("10.16.0")
    attached = parse_inspector_json(trt_support.engine_information(mod, engine), ["node_conv"])["layers"]
    assert attached[0].precision == "fp32" and attached[0].inputs[0][2][0] == 2  # the profile's opt batch


def test_device_memory_fallback_for_tensorrt_10_0():
    assert trt_support.device_memory_bytes(types.SimpleNamespace(device_memory_size_v2=7, device_memory_size=5)) == \
        (7, "device_memory_size_v2")
    assert trt_support.device_memory_bytes(types.SimpleNamespace(device_memory_size=5)) == (5, "device_memory_size")
    assert trt_support.device_memory_bytes(object()) == (None, None)


def test_layerwise_build_without_gpu_is_backend_unavailable(tiny_onnx, monkeypatch):
    """TensorRT importable, no usable GPU: exit 3 (BackendUnavailable), not trt.Builder's bare TypeError."""
    mod, _ = fake_tensorrt("10.16.0")
    mod.Builder = lambda logger: (_ for _ in ()).throw(TypeError("pybind11: no GPU"))
    monkeypatch.setitem(sys.modules, "tensorrt", mod)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable, match="no CUDA GPU") as err:
        build_marked_engine(tiny_onnx, [], 1, "fp32")
    assert err.value.exit_code == 3
