"""TrtBackend's shape/binding/copy logic on CPU, against a fake TensorRT 10 runtime and host-memory buffers.

The real library is exercised by the gpu/trt-marked tests; this one checks what seadeploy adds around it
(dynamic batch via set_input_shape, buffer reuse, addresses, the three phases) on every machine.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import types

import numpy as np
import pytest
import torch

from seadeploy.backends import trt, trt_support
from seadeploy.backends.trt_support import dtype_map
from seadeploy.errors import BackendUnavailable, ConfigError, InputError

MEMORY: dict[int, np.ndarray] = {}  # fake device memory: address → array
# TensorRT's DataType members by their real names (pyFoundationalTypes.cpp); nptype fails on BF16/FP8 as the
# real one does (numpy has no such dtype), so the backend must not call it.
DataType = enum.Enum("DataType", ["FLOAT", "HALF", "BF16", "INT8", "INT32", "INT64", "BOOL", "UINT8", "FP8", "INT4",
                                  "FP4"])


def nptype(dtype):
    table = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8}
    if dtype not in table:
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {dtype}")
    return table[dtype]


class FakeEngine:
    """x (N, 3, 4, 4) float32 → logits (N, 2) = per-sample [sum, max], N in 1..8."""

    num_io_tensors = 2
    out_dtype = DataType.FLOAT

    def get_tensor_name(self, i):
        return ["x", "logits"][i]

    def get_tensor_mode(self, name):
        return "IN" if name == "x" else "OUT"

    def get_tensor_shape(self, name):
        return (-1, 3, 4, 4) if name == "x" else (-1, 2)

    def get_tensor_dtype(self, name):
        return DataType.FLOAT if name == "x" else self.out_dtype

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 3, 4, 4), (4, 3, 4, 4), (8, 3, 4, 4)]

    def create_execution_context(self):
        return FakeContext()


class FakeContext:
    def __init__(self):
        self.shapes, self.addresses, self.runs = {}, {}, 0

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return (self.shapes["x"][0], 2)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        x = MEMORY[self.addresses["x"]]
        out = MEMORY[self.addresses["logits"]]
        out[:] = np.stack([x.reshape(len(x), -1).sum(1), x.reshape(len(x), -1).max(1)], axis=1)
        self.runs += 1
        return True


class HostMemory:
    kind, stream, stream_handle = "host", None, 0

    def device_name(self):
        return "fake"

    def device_empty(self, shape, types):
        arr = np.zeros(shape, types.host)  # host-typed stand-in for the device buffer
        MEMORY[id(arr)] = arr
        return arr

    def host_empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def pointer(self, buf):
        return id(buf)

    def to_device(self, buf, host):
        buf[...] = host

    def to_host(self, host, buf):
        host[...] = buf

    def synchronize(self):
        pass

    def close(self):
        pass


    def active(self):
        return contextlib.nullcontext()


def fake_tensorrt(engine=None, plugins=None):
    def init_plugins(logger, namespace):
        if plugins is not None:
            plugins.append(namespace)
        return True

    return types.SimpleNamespace(
        __version__="10.99-fake", Logger=type("Logger", (), {"WARNING": 0, "__init__": lambda self, level: None}),
        Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda blob: engine or FakeEngine()),
        TensorIOMode=types.SimpleNamespace(INPUT="IN"), nptype=nptype, DataType=DataType,
        init_libnvinfer_plugins=init_plugins)


@pytest.fixture
def backend(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt())

    monkeypatch.setattr(trt, "_make_allocator", lambda kind, device: HostMemory())
    engine = tmp_path / "model.fp32.engine"
    engine.write_bytes(b"fake")
    with trt.TrtBackend(engine) as be:
        yield be


def test_dynamic_batch_phases_and_buffer_reuse(backend):
    assert backend.input_specs["x"].shape == ("batch", 3, 4, 4) and backend.output_names == ["logits"]
    x = np.arange(2 * 48, dtype=np.float32).reshape(2, 3, 4, 4)
    backend.stage_inputs({"x": x})
    backend.execute()
    out = backend.fetch_outputs()["logits"]
    np.testing.assert_array_equal(out, [[x[0].sum(), x[0].max()], [x[1].sum(), x[1].max()]])
    first_addresses = dict(backend.context.addresses)
    again = backend.infer({"x": x + 1})["logits"]  # same shape: the device buffers are reused
    assert backend.context.addresses == first_addresses and again[0, 1] == x[0].max() + 1
    bigger = backend.infer({"x": np.ones((5, 3, 4, 4), np.float32)})["logits"]  # new batch: new buffers
    assert bigger.shape == (5, 2) and backend.context.addresses != first_addresses
    assert backend.context.shapes["x"] == (5, 3, 4, 4) and backend.context.runs == 3
    out[0, 0] = -1  # returned arrays are copies, not the reused host buffers
    assert backend.infer({"x": x})["logits"][0, 0] == x[0].sum()


def test_profile_limits_and_feed_checks(backend):
    assert backend.profile_range("x") == ((1, 3, 4, 4), (8, 3, 4, 4))
    with pytest.raises(InputError, match=r"outside the engine's optimisation profile"):
        backend.infer({"x": np.zeros((9, 3, 4, 4), np.float32)})
    with pytest.raises(InputError, match="expected \\(batch, 3, 4, 4\\)"):
        backend.stage_inputs({"x": np.zeros((2, 3, 5, 4), np.float32)})
    assert backend.info["tensorrt"] == "10.99-fake" and backend.info["buffers"] == "host"


@pytest.mark.parametrize("out_dtype", [DataType.BF16, DataType.FP8])
def test_bf16_and_fp8_outputs_exchange_as_float32(monkeypatch, tmp_path, out_dtype):
    """trt.nptype raises TypeError for BF16/FP8: the backend maps TensorRT types by name instead."""
    engine = FakeEngine()
    engine.out_dtype = out_dtype
    plugins: list[str] = []
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(engine, plugins))

    monkeypatch.setattr(trt_support, "_PLUGINS_READY", {})
    monkeypatch.setattr(trt, "_make_allocator", lambda kind, device: HostMemory())
    blob = tmp_path / "m.engine"
    blob.write_bytes(b"fake")
    with trt.TrtBackend(blob) as be:
        assert be.info["io_types"]["logits"] == {DataType.BF16: "bfloat16", DataType.FP8: "float8_e4m3fn"}[out_dtype]
        assert isinstance(getattr(torch, be.info["io_types"]["logits"]), torch.dtype)
        out = be.infer({"x": np.ones((2, 3, 4, 4), np.float32)})["logits"]
        assert out.dtype == np.float32 and out.shape == (2, 2)
    assert plugins == [""]  # init_libnvinfer_plugins(logger, "") ran before deserializing

    class PycudaMemory(HostMemory):
        kind = "pycuda"

    monkeypatch.setattr(trt, "_make_allocator", lambda kind, device: PycudaMemory())
    with pytest.raises(ConfigError, match="only torch buffers convert"):
        trt.TrtBackend(blob)


def test_packed_io_types_are_rejected_with_a_message():
    assert dtype_map(DataType.HALF).host == np.float16 and not dtype_map(DataType.FLOAT).converted
    with pytest.raises(InputError, match="INT4"):
        dtype_map(DataType.INT4, "x")


def test_torch_buffers_make_the_requested_device_current(monkeypatch):
    """TrtBackend(device=N): N becomes the current CUDA device before TensorRT deserializes (torch buffers)."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: types.SimpleNamespace(cuda_stream=7, device=device))
    mem = trt._make_allocator("auto", 1)
    assert mem.kind == "torch" and current == [torch.device("cuda", 1)] and mem.stream.device == torch.device("cuda", 1)
    with pytest.raises(BackendUnavailable, match="device 2 does not exist"):
        trt._make_allocator("torch", 2)


def test_each_tensorrt_module_object_registers_its_plugins(monkeypatch):
    """A fresh ``tensorrt`` module (a reinstall, or a test's fake) registers its plugins even when an earlier,
    collected one had the same ``id`` — CPython reuses the address of a freed object at once, so a cache keyed
    by a bare id skipped registration (the CI failure of test_build_engine_sidecar_records_the_truth)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # restored after the test; the loop assigns directly so
    for _ in range(20):                                  # that monkeypatch's undo list keeps no module alive
        registered: list[str] = []
        mod = types.SimpleNamespace(init_libnvinfer_plugins=lambda log, ns, seen=registered: seen.append(ns),
                                    Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}))
        sys.modules["tensorrt"] = mod
        assert trt_support.import_tensorrt() is mod
        assert registered == [""] and isinstance(trt_support.logger(mod), mod.Logger)
        trt_support.import_tensorrt()
        assert registered == [""]  # once per module object
        sys.modules["tensorrt"] = None
        del mod, registered
