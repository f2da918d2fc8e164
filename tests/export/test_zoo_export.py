"""Every attention exports through the export stage and passes its checks: this file owns that property.

One ``export_model`` per case (random weights from the case's seed, fp32): ONNX checker (full), strict shape
inference with data propagation, declared-vs-runtime shapes, ONNX Runtime vs PyTorch at batch 1 and 3 (the export
example is batch 2) and on seeded samples (all fatal inside the export); here on top: lint clean, no GatherND, the
manifest as read back. The exports run in a process pool (tests/export/conftest.py ``zoo_exports``).

"Every attention × backbone exports and matches ONNX Runtime" is checked once per case, in one of three places:
- default set (here): TSE on odd maps (partial edge tiles), which no other place exports;
- slow set (here, ``-m slow``; .ci/run runs it once): the backbones the CI gate leaves out, resnet18 (ImageNet
  ResNet) at 64 px × every attention and efficientnet_b0 × sb at 64 px;
- the CI numerics gate (``seadeploy validate matrix`` in .ci/run): every attention × vgg16_cifar and resnet20_cifar,
  efficientnet_b0 at 64 px × none/se/tse/spse/rgse/cbam, each exported (the same checks, lint clean) and validated
  at fp32/fp16/int8.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from seadeploy.export.onnx_export import export_onnx
from seadeploy.export.steps import ExportOptions
from seadeploy.graphs.attention import find_attention
from seadeploy.models import create_attention, create_model, list_attention
from seadeploy.models.rewrite import attention_paths
from seadeploy.models.stats import compute_stats
from seadeploy.runfolder import ModelSpec, read_manifest
from tests.fixtures.tiny import INPUT_SHAPE, make_tiny_net


class ZooCase(NamedTuple):
    model: str
    size: int
    attn: str
    seed: int
    attn_kwargs: dict[str, Any] = {}  # noqa: RUF012  a NamedTuple field default, never mutated

    @property
    def key(self) -> str:
        kw = "".join(f"-{k}{v}" for k, v in sorted(self.attn_kwargs.items()))
        return f"{self.model}-{self.size}-{self.attn}{kw}"

    def spec(self) -> ModelSpec:
        return ModelSpec(self.model, attn=self.attn, attn_kwargs=dict(self.attn_kwargs), input_size=self.size)

    def options(self) -> ExportOptions:
        return ExportOptions(dataset="synthetic", eval_samples=2, seed=self.seed)


def _cases(model: str, size: int, attns: list[str], slow: bool = False) -> list:
    # several seeds across the cases (seed = attention index mod 3): fp32 parity, relative to the output scale and
    # above the model's own float32 noise, holds for whatever random weights a seed draws (docs/parity.md); the
    # seed is recorded in the manifest. Random-weight SB on resnet18/efficientnet_b0 at 64 px once sat at the edge
    # of the fp32 rule (PyTorch's own float32 error there is ~1e-4 of the scale); the noise floor judges it.
    return [pytest.param(ZooCase(model, size, attn, i % 3), id=f"{model}-{attn}-seed{i % 3}",
                         marks=[pytest.mark.slow] if slow else [])
            for i, attn in enumerate(attns)]


#: resnet20_cifar at 40 / 36 px: maps 40/20/10 and 36/18/9, partial edge tiles at every stage.
ODD_MAPS = [pytest.param(ZooCase("resnet20_cifar", size, "tse", 0, {"tile": tile}), id=f"tse-{size}px-tile{tile}")
            for size, tile in ((40, 7), (36, 5))]
CASES = [*ODD_MAPS,
         *_cases("resnet18", 64, list_attention(), slow=True),
         *_cases("efficientnet_b0", 64, ["sb"], slow=True)]
REQUIRED = {"onnx.checker.full_check", "shape_inference.strict", "declared_vs_runtime_shapes", "parity.fp32.random",
            "parity.fp32.data"}


def _fp32_graph(out, manifest) -> onnx.GraphProto:
    return onnx.load(str(out / manifest.files["fp32"].path), load_external_data=False).graph


@pytest.mark.parametrize("case", CASES)
def test_export_passes_checks(case, zoo_exports):
    out, job = zoo_exports[case.key]
    job.result(timeout=1800)  # re-raises the export's own error (ParityFailure, ConfigError, ...)
    manifest = read_manifest(out)  # what the later stages read (the round trip itself: tests/test_runfolder.py)
    passed = {c.name for c in manifest.checks if c.passed}
    assert passed >= REQUIRED, [c for c in manifest.checks if not c.passed]
    lint = next(c for c in manifest.checks if c.name == "lint")
    assert lint.passed, lint.detail  # no error-level deployment trap in any zoo model
    assert manifest.input["shape"] == ["batch", 3, case.size, case.size] and manifest.seed == case.seed
    # one attention block per attention module, found by graph structure (names never decide it)
    model = create_model(case.model, case.attn, dict(case.attn_kwargs), input_size=case.size)
    proto = onnx.load(str(out / manifest.files["fp32"].path), load_external_data=False)
    assert len(find_attention(proto).blocks) == len(attention_paths(model))
    assert "GatherND" not in {n.op_type for n in proto.graph.node}  # slow on every runtime: never in the zoo
    assert manifest.files["fp32"].parity["comparisons"][0]["batches"] == [1, 3]


@pytest.mark.parametrize("case", ODD_MAPS)
def test_tse_on_odd_maps_keeps_the_fast_lowering(case, zoo_exports):
    out, job = zoo_exports[case.key]
    job.result(timeout=1800)
    graph = _fp32_graph(out, read_manifest(out))
    ops = [n.op_type for n in graph.node]
    assert "Resize" in ops and "AveragePool" in ops
    assert not {"Expand", "GatherND", "Gather", "Tile"} & set(ops)  # no repeat_interleave-style broadcast
    for node in graph.node:
        if node.op_type == "AveragePool":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert not attrs.get("ceil_mode", 0) and not any(attrs.get("pads", [])), attrs


def test_random_squeeze_exports_and_runs(tmp_path):
    # random squeeze: fresh noise at every call, so parity cannot hold; only the export and the statistics are checked.
    # The export on the tiny net (the attention is what matters, seconds less than a zoo backbone); stats on the zoo.
    model = make_tiny_net()
    model.layer1.attn = create_attention("se", 16, squeeze="random", bias=False, reduction=4)
    path = export_onnx(model.eval(), tmp_path / "model.onnx", input_shape=INPUT_SHAPE)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for batch in (3, 5):
        out = sess.run(None, {"x": np.random.default_rng(batch).standard_normal((batch, *INPUT_SHAPE), np.float32)})[0]
        assert out.shape == (batch, 10) and np.isfinite(out).all()
    assert [b.squeeze_ops for b in find_attention(path).blocks] == [("RandomUniformLike",)]  # found by structure
    stats = compute_stats(create_model("resnet20_cifar", "se", {"squeeze": "random", "bias": False}).eval(), 32)
    assert stats.summary["attn_blocks"] == 9 and stats.summary["attn_reduce_ops"] == 0
