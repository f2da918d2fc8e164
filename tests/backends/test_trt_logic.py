"""TrtBackend's shape/binding/copy logic on CPU, against a fake TensorRT 10 runtime and host-memory buffers.

The real library is exercised by the gpu/trt-marked tests; this one checks what seadeploy adds around it
(dynamic batch via set_input_shape, buffer reuse, addresses, the three phases) on every machine.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from seadeploy.errors import InputError

MEMORY: dict[int, np.ndarray] = {}  # fake device memory: address → array


class FakeEngine:
    """x (N, 3, 4, 4) float32 → logits (N, 2) = per-sample [sum, max], N in 1..8."""

    num_io_tensors = 2

    def get_tensor_name(self, i):
        return ["x", "logits"][i]

    def get_tensor_mode(self, name):
        return "IN" if name == "x" else "OUT"

    def get_tensor_shape(self, name):
        return (-1, 3, 4, 4) if name == "x" else (-1, 2)

    def get_tensor_dtype(self, name):
        return "float32"

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

    def device_empty(self, shape, dtype):
        arr = np.zeros(shape, dtype)
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


@pytest.fixture
def backend(monkeypatch, tmp_path):
    fake = types.SimpleNamespace(
        __version__="10.99-fake", Logger=type("Logger", (), {"WARNING": 0, "__init__": lambda self, level: None}),
        Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda blob: FakeEngine()),
        TensorIOMode=types.SimpleNamespace(INPUT="IN"), nptype=lambda dtype: np.float32)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    from seadeploy.backends import trt

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
