"""The compare study: argument checks, stage failure handling, and one end-to-end run on a tiny configuration
(2 variants, 1 epoch on 64 images, 64 parity samples: ~50 s on 2 busy cores, so not marked slow)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from seadeploy import compare
from seadeploy.compare import CompareOptions, Variant, run_variant, study_int8_target
from seadeploy.compare import stages as compare_stages
from seadeploy.compare.__main__ import main as compare_main
from seadeploy.compare.summary import apply_stage_notes, exit_code, format_summary
from seadeploy.data import get_dataset
from seadeploy.parity import is_trained
from seadeploy.reports.study import StudyData, load_run
from seadeploy.runfolder import Checkpoint


@pytest.mark.parametrize(("argv", "message"), [
    (["--attn", "se,nope"], "unknown attention 'nope'"),
    (["--attn", "se,se"], "duplicate variants"),
    (["--attn", "se", "--attn-arg", "tile"], "expects [VARIANT:]KEY=VALUE"),
    (["--attn", "se,tse", "--attn-arg", "sb:tile=2"], "no variant 'sb'"),
    (["--attn", "none,se", "--attn-arg", "tile=2"], "takes option 'tile'"),
    (["--attn", "tse", "--attn-arg", "tile=0"], "tile"),
    (["--batch", "1,x"], "comma-separated list of int"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2_before_any_work(argv, message, tmp_path, capsys):
    assert compare_main([*argv, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_unavailable_backend_exits_3(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: backend trt may be available")
    assert compare_main(["--attn", "se", "--backends", "ort,trt", "--out", str(tmp_path / "s")]) == 3
    assert "TensorRT" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_attn_args_are_routed_to_the_variants_that_take_them():
    o = CompareOptions(attn=("none", "se", "tse"), attn_args=("tile=4", "se:reduction=8"), out="unused")
    kw = {v.name: v.attn_kwargs for v in o.variants()}
    assert kw == {"none": {}, "se": {"reduction": 8}, "tse": {"tile": 4}}


def test_failed_stage_skips_dependants_and_is_reported(tmp_path, monkeypatch):
    def broken_export(v, o):
        raise RuntimeError("exporter exploded\nsecond line")

    monkeypatch.setitem(compare.STAGE_FNS, "train", lambda v, o: {"epochs": 0})
    monkeypatch.setitem(compare.STAGE_FNS, "export", broken_export)
    v = Variant("se", "se", {}, tmp_path / "se")
    status = run_variant(v, CompareOptions(out=str(tmp_path)), log=lambda m: None)
    assert status["train"]["status"] == "ok"
    assert status["export"] == {"status": "failed", "error": "RuntimeError: exporter exploded", "exit_code": 1,
                                "seconds": status["export"]["seconds"]}
    assert all(status[s]["status"] == "skipped" for s in ("validate", "latency", "layers", "buffers"))
    study = StudyData()
    study.note("latency", "se: no latency.csv (python -m seadeploy.profiling latency ...)")
    study.note("latency", "tse: no latency.csv")
    apply_stage_notes(study, {"se": status})
    assert study.notes["latency"] == ["tse: no latency.csv", "se: latency skipped (export did not finish)"]
    assert study.notes["parity"] == ["se: export failed: RuntimeError: exporter exploded",
                                     "se: validate skipped (export did not finish)"]
    assert exit_code({"se": status}) == 1 and exit_code({"se": {"train": {"status": "ok"}}}) == 0


def _check_study_outputs(out, summary, variants):
    html = (out / "report.html").read_text()
    for anchor in ("answer", "variants", "latency", "attention-share", "layers", "buffers", "parity", "training",
                   "method"):
        assert f'<section id="{anchor}">' in html
    assert html.count("data:image/png;base64,") >= 5
    csv = pd.read_csv(out / "summary.csv")
    assert csv["variant"].tolist() == variants
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["exit_code"] == summary["exit_code"] and on_disk["baseline"] == "se"
    for v in variants:
        for name in ("checkpoint.safetensors", "model.onnx", "manifest.json", "parity.json", "latency.csv",
                     "layers_ort.csv", "buffers.json"):
            assert (out / v / name).is_file(), f"{v}/{name}"


@pytest.mark.slow  # every stage for two variants; the default study is CI's first command as well
def test_compare_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["--attn", "se,tse", "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--batch", "1,2",
            "--duration-s", "0.05", "--parity-samples", "64", "--calib-samples", "16", "--out", str(out), "--json"]
    code = compare_main(argv)
    summary = json.loads(capsys.readouterr().out)
    assert code == summary["exit_code"] == 0  # the study succeeded (an int8 miss only warns: the test below)
    stages = summary["stages"]
    assert {s: i["status"] for s, i in stages["se"].items()} == dict.fromkeys(compare.STAGES, "ok")
    assert all(stages["tse"][s]["status"] in ("ok", "partial") for s in compare.STAGES)
    _check_study_outputs(out, summary, ["se", "tse"])
    rows = {r["variant"]: r for r in summary["variants"]}
    assert rows["se"]["latency_x"] == pytest.approx(1.0) and rows["tse"]["latency_ms"] > 0
    assert 0 < rows["tse"]["attention_buffer_elements"] < rows["se"]["attention_buffer_elements"]
    assert 0 < rows["se"]["attention_pct"] < 100
    text = format_summary(summary)
    assert re.search(r"tse vs se: accuracy .*attention buffering 0\.\d+×", text)


def test_skip_train_without_checkpoints_is_refused_before_any_stage(tmp_path, capsys):
    out = tmp_path / "study"
    assert compare_main(["--attn", "se", "--skip-train", "--out", str(out), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: --skip-train: no ") and "run once without --skip-train" in captured.err
    assert not out.exists()


class _Comparison:
    def __init__(self, precision: str, failures: list[str]) -> None:
        self.precision, self.failures, self.name = precision, failures, f"ort/{precision}/data"

    def __bool__(self) -> bool:
        return not self.failures


@pytest.mark.parametrize(("failing", "strict", "outcome"), [
    ({}, False, "ok"),
    ({"int8": "top-1 agreement 98.89% < 99.00%"}, False, "warning"),
    ({"int8": "top-1 agreement 98.89% < 99.00%"}, True, "failed"),
    ({"fp32": "max_abs 0.1 > atol"}, False, "failed"),
])
def test_validate_fails_on_fp32_and_warns_on_lower_precisions(failing, strict, outcome, tmp_path, monkeypatch):
    class Report:
        comparisons = [_Comparison(p, [failing[p]] if p in failing else []) for p in ("fp32", "fp16", "int8")]  # noqa: RUF012  a stand-in report, read only

    monkeypatch.setattr(compare_stages, "validate_run", lambda *a, **k: Report())
    for stage in compare.STAGES:
        if stage != "validate":
            monkeypatch.setitem(compare.STAGE_FNS, stage, lambda v, o: {})
    o = CompareOptions(out=str(tmp_path), strict_parity=strict)
    status = run_variant(Variant("se", "se", {}, tmp_path / "se"), o, log=lambda m: None)
    assert status["validate"]["status"] == outcome
    assert exit_code({"se": status}) == (1 if outcome == "failed" else 0)
    if outcome == "warning":
        assert status["validate"]["error"] == "ort/int8/data: top-1 agreement 98.89% < 99.00%"
        study = StudyData()
        apply_stage_notes(study, {"se": status})
        assert study.warnings == {"parity": ["se: validate: ort/int8/data: top-1 agreement 98.89% < 99.00%"]}
        assert study.notes == {}


def test_epochs_0_evaluates_the_source_and_sizes_a_random_head_for_the_dataset(tmp_path):
    """--epochs 0: the variant's accuracy is measured and recorded in its checkpoint (the report's column); a model
    from random initialisation gets the dataset's head where its factory takes num_classes; a head the user fixed
    at another size is a stage warning naming both counts."""
    imagenet = CompareOptions(model="resnet18", attn=("se",), epochs=0, out=str(tmp_path / "z"))
    assert imagenet.source(imagenet.variants()[0], classes=10).spec().num_classes == 10
    with_weights = dataclasses.replace(imagenet, weights="w.safetensors")
    assert with_weights.source(with_weights.variants()[0], classes=10).num_classes is None  # the weights' head

    src = f"{Path(__file__).parent / 'fixtures' / 'user_model.py'}:build"
    o = CompareOptions(model=src, model_args=("width=8", "num_classes=12"), input_size=32, attn=("original",),
                       epochs=0, limit_test=32, out=str(tmp_path / "u"))
    v = o.variants()[0]
    v.run_dir.mkdir(parents=True)
    with pytest.raises(compare.StageWarning, match="outputs 12 classes and 'digits' has 10") as warned:
        compare_stages._train(v, o)
    metrics = Checkpoint.load(v.run_dir).metrics
    assert metrics["test_samples"] == 32 and metrics["top1"] == warned.value.info["top1"]
    assert not is_trained(metrics)  # random initialisation keeps the untrained parity rules; --weights would not

    pair = dataclasses.replace(o, model_args=("width=8",), attn=("original", "tse:tile=4"), out=str(tmp_path / "p"))
    states = []
    for variant in pair.variants():
        variant.run_dir.mkdir(parents=True)
        compare_stages._source_checkpoint(variant, pair, get_dataset("digits", split="test").info)
        states.append(Checkpoint.load(variant.run_dir).state_dict)
    assert states[0].keys() == states[1].keys()  # the same seeded initialisation, converted: same weights
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert load_run(v.run_dir, "original").runs.set_index("variant").at["original", "accuracy"] == metrics["top1"]


def test_the_study_int8_form_follows_the_timed_runtimes():
    """One int8 file per variant: TensorRT's form when trt is timed, else ONNX Runtime CPU's when ort is, else the
    one form the timed backends name (an OpenVINO-only study gets OpenVINO's)."""
    assert study_int8_target(("torch", "ort")) == "ort-cpu"
    assert study_int8_target(("ort", "openvino")) == "ort-cpu"
    assert study_int8_target(("torch", "openvino")) == "openvino"
    assert study_int8_target(("ort", "trt")) == "tensorrt"
