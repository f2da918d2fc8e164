"""Suite-wide fixtures and the gpu/trt markers' automatic skips."""

from __future__ import annotations

import importlib.util
import os

from seadeploy.export.onnx_export import export_onnx
from tests.profiling.conftest import make_run

# Under load, OpenMP threads that spin-wait slow small CPU models down many times; sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

from tests.fixtures.tiny import INPUT_SHAPE, make_tiny_net


def _has_gpu() -> bool:
    return torch.cuda.is_available()


def _has_trt() -> bool:
    return _has_gpu() and importlib.util.find_spec("tensorrt") is not None


def pytest_collection_modifyitems(config, items):
    gpu, trt = _has_gpu(), _has_trt()
    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    skip_trt = pytest.mark.skip(reason="needs TensorRT and a GPU: pip install -e '.[gpu,tensorrt]' on a CUDA machine (see README)")
    for item in items:
        if "trt" in item.keywords and not trt:
            item.add_marker(skip_trt)
        elif "gpu" in item.keywords and not gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def single_thread():
    """One intra-op thread for the session: 2 shared CI cores, and spin-waiting threads oversubscribe them.

    Directories of small-model tests opt in with an autouse fixture that requests this one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_net():
    """The suite's tiny SE network (tests/fixtures/tiny.py), seeded, eval mode, non-trivial BatchNorm statistics.
    Shared read-only: a test that changes the model builds its own with ``make_tiny_net()``."""
    return make_tiny_net()


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_net):
    """``tiny_net`` exported once per session (dynamic batch, input ``x`` (N, 3, 16, 16), output ``logits``)."""
    return export_onnx(tiny_net, tmp_path_factory.mktemp("tiny") / "model.onnx", INPUT_SHAPE)


@pytest.fixture
def run_dir(tmp_path):
    """An empty run folder."""
    d = tmp_path / "run"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder like export writes (resnet20_cifar + SE checkpoint, model.onnx, manifest.json), built once per
    session for the profiling and backend-contract tests (:func:`tests.profiling.conftest.make_run`)."""
    return make_run(tmp_path_factory.mktemp("profiling") / "run")
