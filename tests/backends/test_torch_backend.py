"""TorchBackend specifics: run-folder sources, TF32 handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seadeploy.backends.torch_backend import TorchBackend, tf32_enabled, tf32_mode
from seadeploy.errors import ConfigError, InputError
from seadeploy.models.build import build_model
from seadeploy.runfolder import Checkpoint, ModelSpec


def test_run_folder_source_rebuilds_the_checkpoint(run_dir):
    torch.manual_seed(0)
    spec = ModelSpec("resnet20_cifar", attn="se", num_classes=10, input_size=32)
    model = build_model(spec).eval()
    Checkpoint(spec, model.state_dict()).save(run_dir / "checkpoint.safetensors")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with TorchBackend(run_dir) as be:
        assert be.input_specs["x"].shape == ("batch", 3, 32, 32)
        assert be.info["device"] == "cpu" and be.info["tf32"] is False
        out = be.infer({"x": x})["logits"]
    with torch.no_grad():
        np.testing.assert_array_equal(out, model(torch.from_numpy(x)).numpy())


def test_bad_sources_and_devices(tmp_path, tiny_net):
    with pytest.raises(InputError, match="does not exist"):
        TorchBackend(tmp_path)
    with pytest.raises(ConfigError, match="nn.Module or a run folder"):
        TorchBackend(3.0)
    with pytest.raises(ConfigError, match="unknown torch device 'gpu0'"):
        TorchBackend(tiny_net, device="gpu0")
    with pytest.raises(ConfigError, match="cpu and cuda"):
        TorchBackend(tiny_net, device="meta")


def test_bare_module_accepts_any_spatial_size(tiny_net):
    with TorchBackend(tiny_net) as be:
        assert be.input_specs["x"].shape == ("batch", None, None, None)
        assert be.infer({"x": np.zeros((1, 3, 20, 24), np.float32)})["logits"].shape == (1, 10)


def test_tf32_mode_switches_and_restores():
    before = tf32_enabled()
    with tf32_mode(False):
        assert tf32_enabled() is False
    with tf32_mode(True):
        assert tf32_enabled() is True
    assert tf32_enabled() == before
    with tf32_mode(None):
        assert tf32_enabled() == before


@pytest.mark.gpu
def test_cuda_tf32_is_off_by_default_and_reported_when_on(tiny_net):
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    with TorchBackend(tiny_net, device="cuda") as strict:
        assert strict.info["tf32"] is False
        out = strict.infer({"x": x})["logits"]
    with torch.no_grad():
        ref = tiny_net.cpu()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    with pytest.warns(UserWarning, match="TF32 is on"):
        fast = TorchBackend(tiny_net, device="cuda", allow_tf32=True)
    assert fast.info["tf32"] is True
    fast.close()
