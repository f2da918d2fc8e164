"""What a user's own (third-party-style) model trips over: state-dict metadata, non-SE attention kinds, partial
exports, compare's parity rule and labels, and the messages around them (fixtures: tests/fixtures/third_party.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from seadeploy import compare
from seadeploy.compare import CompareOptions, Variant, run_variant
from seadeploy.compare import __main__ as compare_cli
from seadeploy.compare import stages as compare_stages
from seadeploy.compare.summary import exit_code
from seadeploy.convert.stage import ConvertOptions, run_convert
from seadeploy.errors import ConfigError, InputError, ParityFailure, PartialFailure
from seadeploy.export import precision as prec
from seadeploy.export import runner
from seadeploy.export.__main__ import main as export_main
from seadeploy.export.onnx_export import export_onnx
from seadeploy.models.__main__ import main as models_main
from seadeploy.models.build import load_model
from seadeploy.models.source import ModelSource
from seadeploy.parity import RuleSet, default_rule
from seadeploy.profiling.__main__ import main as profiling_main
from seadeploy.profiling.per_layer import LayerProfile
from seadeploy.profiling.schema import make_frame
from seadeploy.profiling.sources import available_precisions
from seadeploy.profiling.summaries import buffers_for, format_layers
from seadeploy.reports.readers import read_run_info
from seadeploy.runfolder import Checkpoint, read_manifest, write_buffers
from seadeploy.validate.judge import validate_run

FIXTURES = Path(__file__).parent / "fixtures"
TP = f"{FIXTURES / 'third_party.py'}"
USER = f"{FIXTURES / 'user_model.py'}:build"


@pytest.fixture(scope="module")
def mixed_onnx(tmp_path_factory):
    """SE (features.1), GlobalContext (features.3), SelectiveKernel (features.4), exported at 32 px."""
    torch.manual_seed(0)
    net = ModelSource(f"{TP}:build_mixed", input_size=32).build().eval()
    return export_onnx(net, tmp_path_factory.mktemp("mixed") / "model.onnx", (3, 32, 32))


def test_state_dict_metadata_reaches_the_models_loading_hook(tmp_path):
    """A module whose _load_from_state_dict reads `version` (torchvision's MNASNet) loads from a saved checkpoint."""
    ckpt = ModelSource(f"{TP}:build_versioned", input_size=32).checkpoint((0.5,) * 3, (0.5,) * 3, "digits")
    ckpt.save(tmp_path / "c.safetensors")
    net = load_model(Checkpoint.load(tmp_path / "c.safetensors"))  # ValueError: version ... None before
    assert all(torch.equal(v, ckpt.state_dict[k]) for k, v in net.state_dict().items())


@pytest.mark.slow
def test_validate_accepts_converts_output(tmp_path):
    """convert (PyTorch route) writes a dynamic batch; validate feeds its own batch to it (fixed batch 1 before)."""
    out = tmp_path / "tse"
    run_convert(ModelSource(f"{TP}:build_versioned", input_size=32), None, out,
                ConvertOptions(tile=4, latency_rounds=1, latency_runs=1))
    dim = onnx.load(str(out / "model.onnx")).graph.input[0].type.tensor_type.shape.dim[0]
    assert not dim.HasField("dim_value")
    report = validate_run(out, backends=("torch", "ort"), samples=8, random=4, batch=4)
    assert report and report.comparisons


def _exact_int8(monkeypatch):
    exact = default_rule("fp32", "data").override(atol=0.0, rtol=0.0)  # bit equality: int8 cannot pass it
    monkeypatch.setattr(runner, "RuleSet", lambda: RuleSet(overrides={"int8": exact}))


@pytest.mark.slow
def test_a_failed_precision_keeps_the_ones_that_passed(tmp_path, monkeypatch, capsys):
    _exact_int8(monkeypatch)
    out = tmp_path / "run"
    argv = ["--model", USER, "--model-arg", "width=4", "--input-size", "32", "--precision", "fp32,int8",
            "--eval-samples", "16", "--calib-samples", "16", "--out", str(out)]
    assert export_main(argv) == 1
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: int8 failed parity")
    assert "--precision fp32,fp16" in err[0] and "--dataset" in err[0] and "--min-top1" in err[0]
    assert f"fp32  {out / 'model.onnx'}" in cap.out and "int8  FAILED parity" in cap.out
    manifest = read_manifest(out)
    assert list(manifest.files) == ["fp32"] and manifest.failed["int8"].parity["passed"] is False
    assert (out / manifest.failed["int8"].path).is_file()  # kept for validate --layerwise
    with pytest.raises(InputError, match="failed parity at export.*--layerwise --precision int8"):
        manifest.file(out, "int8")
    assert list(available_precisions(out, "ort")) == ["fp32"]  # later stages never take it as vouched for
    report = validate_run(out, backends=("ort",), samples=8, random=4)
    assert report and {c.precision for c in report.comparisons} == {"fp32"}
    assert any(w.startswith("int8 not judged: it failed parity at export") for w in report.warnings)
    asked = validate_run(out, backends=("ort",), precisions=["int8"], samples=8, random=4)
    assert not asked  # judged (and failing) only when asked for by name


@pytest.mark.parametrize(("failure", "strict", "status", "code"), [
    ("int8", False, "warning", 0), ("int8", True, "partial", 1), ("fp32", False, "failed", 1)])
def test_compare_export_parity_rule_is_the_helps(failure, strict, status, code, tmp_path, monkeypatch):
    """--help: only an fp32 failure fails the study; an fp16/int8 one warns (and is left out) unless --strict-parity."""
    help_text = " ".join(compare_cli._parser().format_help().split())
    assert "only an fp32 failure fails it; an fp16/int8 failure is a warning" in help_text

    class Manifest:
        files, failed = {"fp32": {}, "fp16": {}}, {"int8": {}}

    def export_run(*a, **k):
        if failure == "fp32":
            raise ParityFailure("model.onnx: does not match PyTorch fp32")
        raise PartialFailure("int8 failed parity (top-1 agreement 94.72 % < 99.00 %)", Manifest())

    monkeypatch.setattr(compare_stages, "load_source", lambda run: (None, None))
    monkeypatch.setattr(compare_stages, "export_run", export_run)
    for stage in compare.STAGES:
        if stage != "export":
            monkeypatch.setitem(compare.STAGE_FNS, stage, lambda v, o: {})
    o = CompareOptions(out=str(tmp_path), strict_parity=strict, precisions=("fp32", "fp16", "int8"))
    result = run_variant(Variant("se", "se", {}, tmp_path / "se"), o, log=lambda m: None)
    assert result["export"]["status"] == status and exit_code({"se": result}) == code
    if failure == "int8":
        assert result["export"]["failed"] == ["int8"] and result["export"]["files"] == ["fp16", "fp32"]


def test_report_names_a_library_models_own_attention(tmp_path):
    """A user model without --attn is labelled by the graph analysis's kinds and count, not 'attn none'."""
    src = ModelSource(USER, model_kwargs={"width": 4}, input_size=32)
    src.checkpoint((0.5,) * 3, (0.5,) * 3, "digits").save(tmp_path / "checkpoint.safetensors")
    path = export_onnx(src.build().eval(), tmp_path / "model.onnx", (3, 32, 32))
    write_buffers(tmp_path, buffers_for(onnx_file=str(path)).summary())
    assert read_run_info(tmp_path)[0]["attn"] == "own 3 channel"


def test_stats_lists_every_attention_kind_with_the_reason(capsys):
    """models stats on a user model: SE, GlobalContext and SelectiveKernel blocks (0 non-SE blocks before)."""
    assert models_main(["stats", "--model", f"{TP}:build_mixed", "--input-size", "32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["module"]: r for r in data["attention"]}
    assert {m: r["kind"] for m, r in rows.items()} == {
        "features.1": "channel", "features.3": "global-context", "features.4": "selective-kernel"}
    assert rows["features.1"]["tse_reason"] == "" and "additive join" in rows["features.3"]["tse_reason"]
    assert data["summary"]["attn_kinds"] == "1 channel, 1 global-context, 1 selective-kernel"


def test_buffers_and_pipeline_tell_selective_kernel_from_se(mixed_onnx, capsys):
    blocks = buffers_for(onnx_file=str(mixed_onnx)).blocks.set_index("block")
    assert blocks.loc["features.4", "kind"] == "selective-kernel" and blocks.loc["features.1", "kind"] == "channel"
    assert "through other ops" in blocks.loc["features.4", "tse_reason"]
    assert profiling_main(["pipeline", "--onnx", str(mixed_onnx), "--json"]) == 0
    kinds = json.loads(capsys.readouterr().out)["attention_kinds"]
    assert [k["kind"] for k in kinds] == ["channel", "global-context", "selective-kernel"]


def test_convert_on_the_pytorch_route_gives_the_graphs_reason(tmp_path):
    with pytest.raises(InputError, match="features.2: global-context .*additive join"):
        run_convert(ModelSource(f"{TP}:build_gc", input_size=32), None, tmp_path / "o", ConvertOptions(tile=4))
    assert not (tmp_path / "o").exists()


def test_layers_json_carries_every_warning_the_text_prints():
    gaps = pd.DataFrame([{"backend": "ort", "precision": "fp32", "batch": 8, "layers": 3, "run_sum_ms": 1.0,
                          "end_to_end_ms": 2.0, "gap_pct": 50.0, "layers_sum_ms": 1.0, "interference_pct": 0.0}])
    rows = make_frame([{"layer": "conv", "op_type": "Conv", "role": "conv", "time_ms": 1.0}], backend="ort",
                      precision="fp32", batch=8)
    prof = LayerProfile(frame=rows, gaps=gaps, attention_blocks=0, warnings=["the graph has 2 attention-like op(s)"])
    warnings = prof.summary()["warnings"]
    assert prof.summary()["within_tolerance"] is False and len(warnings) == 2
    text = format_layers(prof)
    assert all(f"WARNING: {w}" in text for w in warnings)


def test_quantizer_log_lines_are_recorded_not_printed(mixed_onnx, tmp_path, monkeypatch, capsys):
    real = prec.quantize_static

    def noisy(*a, **k):
        for _ in range(2):
            logging.warning("Axis 1 is out-of-range for weight 'w' with rank 1")  # noqa: LOG015  as ORT's quantizer
        return real(*a, **k)

    monkeypatch.setattr(prec, "quantize_static", noisy)
    record = prec.quantize_int8(mixed_onnx, tmp_path / "q.onnx", np.random.rand(4, 3, 32, 32).astype(np.float32))
    assert "out-of-range" not in capsys.readouterr().err
    assert record["quantizer_log"] == ["Axis 1 is out-of-range for weight 'w' with rank 1 (×2)"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--dataset", "bogus"], "unknown dataset 'bogus'"),
    (["--attn", "se", "--baseline", "bogus"], "--baseline bogus is not a variant"),
    (["--model", USER, "--attn", "original", "--weights", "missing.pt"], "--weights 'missing.pt' does not exist"),
    (["--model", USER, "--attn", "original", "--model-arg", "bogus=1"], "unexpected keyword argument 'bogus'"),
])
def test_compare_checks_every_option_before_any_stage(argv, message, tmp_path, capsys):
    assert compare_cli.main([*argv, "--epochs", "0", "--input-size", "32", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "s").exists()


def test_compare_names_flag_values_in_the_flags_order():
    with pytest.raises(ConfigError, match=r"got --batch 0 --epochs 4\)"):
        CompareOptions(batches=(0,), epochs=4).variants()


def test_latency_refuses_external_data_outside_the_folder_in_one_line(tmp_path, capsys):
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4, 3, 3, 3],
                         data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", "../outside.bin"), ("offset", "0"), ("length", "432")):
        w.external_data.add(key=key, value=value)
    (tmp_path / "outside.bin").write_bytes(np.ones(108, np.float32).tobytes())
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Conv", ["x", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "model.onnx"
    path.write_bytes(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]).SerializeToString())
    assert profiling_main(["latency", str(path), "--duration-s", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'../outside.bin' of tensor 'w' is outside the model's folder" in err[0]
