"""Small but schema-valid study frames (ResNet-20-like: 3 stages × 3 blocks) for the report tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seadeploy.profiling.schema import check_frame, make_frame
from seadeploy.reports import write_study_report
from seadeploy.reports.study import StudyData

BLOCKS = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
SIZES = {1: (16, 32), 2: (32, 16), 3: (64, 8)}  # stage -> (channels, map side)


def layer_rows(variant: str, backend: str, rng: np.random.Generator) -> list[dict]:
    """Per-layer rows in execution order: stem conv, then conv/norm/act ×2, attention, residual add per block."""
    rows = [{"layer": "conv1", "module": "conv1", "op_type": "Conv", "role": "conv", "time_ms": 0.05}]
    for blk in BLOCKS:
        stage = int(blk[5])
        for i in (1, 2):
            rows.append({"layer": f"{blk}.conv{i}", "module": f"{blk}.conv{i}", "op_type": "Conv", "role": "conv",
                         "time_ms": 0.04 * stage * rng.uniform(0.9, 1.1)})
            rows.append({"layer": f"{blk}.relu{i}", "module": f"{blk}.relu{i}", "op_type": "Relu", "role": "act",
                         "time_ms": 0.004})
        if variant != "none":
            slow = 1.6 if variant == "tse" else 1.0
            for op, role, t in (("ReduceMean", "attention.squeeze", 0.003), ("Conv", "attention.excite", 0.002),
                                ("Sigmoid", "attention.gate", 0.001), ("Mul", "attention.scale", 0.004)):
                rows.append({"layer": f"{blk}.attn.{op}", "module": f"{blk}.attn", "op_type": op, "role": role,
                             "block": f"{blk}.attn", "time_ms": t * slow})
        rows.append({"layer": f"{blk}.add", "module": blk, "op_type": "Add", "role": "other", "time_ms": 0.003})
    rows += [{"layer": "pool", "module": "pool", "op_type": "ReduceMean", "role": "pool", "time_ms": 0.002},
             {"layer": "fc", "module": "fc", "op_type": "Gemm", "role": "linear", "time_ms": 0.001}]
    if backend == "torch":
        for r in rows:
            r["time_ms"] *= 1.8
    return rows


def make_layers(variants=("none", "se", "tse"), backends=("ort", "torch")) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frames = []
    for v in variants:
        for b in backends:
            df = make_frame(layer_rows(v, b, rng), backend=b, precision="fp32", batch=1)
            df.insert(0, "variant", v)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def make_latency(variants=("none", "se", "tse")) -> pd.DataFrame:
    rows = []
    for v, k in zip(variants, (1.0, 1.1, 1.3)):
        for backend, bk in (("ort", 1.0), ("torch", 1.8)):
            for batch in (1, 8):
                med = 0.9 * k * bk * (1 + 0.6 * (batch - 1))
                rows.append({"variant": v, "backend": backend, "precision": "fp32", "batch": batch, "median_ms": med,
                             "iqr_ms": 0.05 * med, "p90_ms": 1.1 * med})
        rows.append({"variant": v, "backend": "ort", "precision": "int8", "batch": 1, "median_ms": 0.6 * k,
                     "iqr_ms": 0.03})
    return pd.DataFrame(rows)


def make_buffers() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for v in ("se", "tse"):
        for blk in BLOCKS:
            c, side = SIZES[int(blk[5])]
            held = side if v == "se" else 2
            rows.append({"variant": v, "block": f"{blk}.attn", "held_rows": held, "elements": held * side * c,
                         "bytes": 4 * held * side * c})
    blocks = pd.DataFrame(rows)
    att = blocks.groupby("variant")["elements"].sum()
    totals = pd.DataFrame({"variant": ["none", "se", "tse"], "attention_buffer_elements": [0, att["se"], att["tse"]],
                           "total_buffer_elements": [30000, 30000 + att["se"], 30000 + att["tse"]]})
    return blocks, totals


def make_study() -> StudyData:
    blocks, totals = make_buffers()
    runs = pd.DataFrame({"variant": ["none", "se", "tse"], "attn": ["none", "se", "tse"],
                         "accuracy": [95.8, 97.2, 96.9], "acc_ort_fp32": [95.8, 97.2, 96.9],
                         "acc_ort_int8": [95.6, 97.0, 96.9], "params": [272474, 275066, 275066]})
    parity = pd.DataFrame([{"variant": v, "backend": "ort", "precision": p, "max_abs": 1e-5 if p == "fp32" else 3e-3,
                            "cosine": 0.99999, "top1": 1.0, "passed": True}
                           for v in ("none", "se", "tse") for p in ("fp32", "fp16", "int8")])
    training = pd.DataFrame([{"variant": v, "epoch": e, "train_loss": 1.0 / e, "train_top1": 80 + 5 * e,
                              "test_loss": 1.1 / e, "test_top1": 85 + 4 * e, "epoch_time_s": 10.0}
                             for v in ("none", "se", "tse") for e in (1, 2)])
    layers = make_layers()
    check_frame(layers)
    return StudyData(runs=runs, latency=make_latency(), layers=layers, buffer_blocks=blocks, buffer_totals=totals,
                     parity=parity, training=training,
                     meta={"model": "resnet20_cifar", "dataset": "digits", "baseline": "se", "test_samples": 360,
                           "versions": {"torch": "2.13"}})


@pytest.fixture
def study() -> StudyData:
    return make_study()


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """The synthetic study rendered once per session: ``(study, {"html": path, "md": path})``."""
    s = make_study()
    return s, write_study_report(s, tmp_path_factory.mktemp("report"))
