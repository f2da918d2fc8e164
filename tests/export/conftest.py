"""Tiny models and exported files shared by the export tests (exports are the slow part: do each once)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch
from torch import nn


class TinySE(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // 4, 1), 1)
        self.fc2 = nn.Conv2d(max(c // 4, 1), c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class TinyNet(nn.Module):
    """conv-bn-relu → attn → conv-bn-relu → GAP → fc, with the ``attn`` naming convention of the zoo."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1.attn = TinySE(16)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.layer1.attn(self.layer1(self.stem(x))).mean((2, 3)))


@pytest.fixture(scope="session")
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():  # non-trivial BN statistics so BN folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model, tmp_path_factory):
    from seadeploy.export.onnx_export import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("tiny") / "model.onnx", (3, 16, 16))


def _export(spec, out, opts):
    """``export_model`` in a pool worker: the weights come from ``opts.seed`` (export seeds the model it builds)."""
    from seadeploy.export.runner import export_model

    return export_model(spec, out, opts)


@pytest.fixture(scope="session")
def zoo_exports(request, tmp_path_factory):
    """Start the exports of every selected ``test_zoo_export`` case at once in a process pool (one worker per
    CPU); tests wait for their own future. Nothing starts when no zoo case is selected."""
    from seadeploy.artifacts import ModelSpec
    from seadeploy.export.pipeline import ExportOptions
    selected = [item.callspec.params for item in request.session.items
                if getattr(item, "originalname", "") == "test_export_passes_checks"]
    if not selected:
        yield {}
        return
    root = tmp_path_factory.mktemp("zoo")
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(1,))
    jobs = {}
    for p in sorted(selected, key=lambda p: -p["size"]):  # the 224-px ones (slowest) first
        out = root / f"{p['model']}-{p['attn']}"
        spec = ModelSpec(p["model"], attn=p["attn"], input_size=p["size"])
        opts = ExportOptions(dataset="synthetic", eval_samples=2, seed=p["seed"])
        jobs[(p["model"], p["size"], p["attn"])] = (out, pool.submit(_export, spec, out, opts))
    yield jobs
    pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def _start_zoo_exports_early(zoo_exports):
    """Overlap the zoo exports with the other export tests (they use one core; the pool the rest)."""
    return zoo_exports
