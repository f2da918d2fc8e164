"""The convert stage: SE → TSE (``--to tse``) or back (``--to se``) on a user's model, with before/after figures.

PyTorch route (``--model SOURCE`` or a RUN_DIR with ``checkpoint.safetensors``): the model is rewritten with
:func:`~seadeploy.models.rewrite.convert_model` (the zoo's weight conversion for zoo models, the structural
rewrite for any other); ``OUT/checkpoint.safetensors`` records the conversion in its spec
(``attn="tse"``, ``attn_kwargs={"tile", "blocks"}``) so ``train`` fine-tunes it and ``export`` rebuilds it.
ONNX route (``--onnx FILE``): :func:`~seadeploy.graphs.se_rewrite.se_to_tse_onnx`.

Both write ``OUT/model.onnx`` (the converted graph: a dynamic batch on the PyTorch route, as export writes, so
``validate`` reads it like any run folder; the ONNX route keeps the file's batch) and ``OUT/convert.json``: per block and in
total the attention buffer (dataflow/buffers.py), MACs (graphs/macs.py), ONNX Runtime CPU latency before/after (the timing core's
interleaved rounds, one thread) and top-1 before/after on a labelled dataset. Everything is staged and moved into ``OUT``
only when complete.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from seadeploy import fileio
from seadeploy.backends.ort import plain_session, shapes_by_running
from seadeploy.data import get_dataset
from seadeploy.data.base import HALF, IMAGENET_STATS
from seadeploy.data.samples import load_samples
from seadeploy.dataflow.buffers import analyse_buffers
from seadeploy.errors import ConfigError, InputError
from seadeploy.export.onnx_export import export_onnx
from seadeploy.graphs.classify import classify
from seadeploy.graphs.load import load_model as load_onnx_file
from seadeploy.graphs.macs import total_macs
from seadeploy.graphs.model_file import rebatch_to_one
from seadeploy.graphs.ops import COMPUTE_OPS
from seadeploy.graphs.se_rewrite import se_to_tse_onnx
from seadeploy.models.build import load_model
from seadeploy.models.rewrite import convert_model, tile_value
from seadeploy.models.source import ModelSource, is_external
from seadeploy.models.structural import tiled_blocks
from seadeploy.profiling.timing import Candidate, interleave
from seadeploy.runfolder import CHECKPOINT, Checkpoint

CONVERT_JSON = "convert.json"


@dataclasses.dataclass
class ConvertOptions:
    to: str = "tse"
    tile: Any = 7
    dataset: str | None = None
    data_root: str | None = None
    samples: int = 256
    latency_rounds: int = 5
    latency_runs: int = 50
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


# ------------------------------------------------------------------------------------------- figures
def onnx_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of Conv / ConvTranspose / Gemm / MatMul at batch 1 (the one MAC counter, graphs/macs.py)."""
    return total_macs(model, COMPUTE_OPS, shapes_by_running)


def _static_batch(model: onnx.ModelProto) -> bool:
    inits = {i.name for i in model.graph.initializer}
    vi = next(v for v in model.graph.input if v.name not in inits)
    return vi.type.tensor_type.shape.dim[0].HasField("dim_value")


def _input(model: onnx.ModelProto) -> tuple[str, list[int]]:
    inits = {i.name for i in model.graph.initializer}
    vi = next(v for v in model.graph.input if v.name not in inits)
    return vi.name, [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]


def latency_pair(before: onnx.ModelProto, after: onnx.ModelProto, rounds: int, runs: int) -> dict[str, float]:
    """Median ms per run of both graphs, timed side by side by the timing core (:func:`~seadeploy.profiling.timing.
    interleave`: rounds alternate the graphs, rotating which starts, so machine drift hits both alike) on one ORT
    intra-op thread, which runs in the calling thread, so its thread CPU time is measured: robust to other
    processes on the machine. Each round runs each graph ``runs`` times; the ratio is the median of per-round
    ratios with its bootstrap 95 % interval, and its min/max over rounds.
    """
    n = max(1, runs)
    name, shape = _input(before)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    def block(model: onnx.ModelProto):
        session = plain_session(model, threads=1)

        def call() -> None:
            for _ in range(n):
                session.run(None, {name: x})

        return call

    # warm-up: at least 3 runs of each graph (first runs allocate and pick kernels)
    side = interleave([Candidate("before", block(before), cpu_clock=True),
                       Candidate("after", block(after), cpu_clock=True)],
                      rounds=max(1, rounds), warmup_rounds=math.ceil(3 / n))
    per = side.cpu_ms / n
    ratio = side.ratio("after", "before")
    ratios = per[:, 1] / per[:, 0]
    return {"latency_ms_before": float(np.median(per[:, 0])), "latency_ms_after": float(np.median(per[:, 1])),
            "latency_ratio": ratio.ratio, "latency_ratio_low": ratio.low, "latency_ratio_high": ratio.high,
            "latency_ratio_min": float(ratios.min()), "latency_ratio_max": float(ratios.max()),
            "latency_rounds": ratio.rounds, "latency_clock": "thread CPU time"}


def _accuracy(models: list[onnx.ModelProto], opts: ConvertOptions, size: int, mean, std) -> list[float | None]:
    if not opts.dataset:
        return [None] * len(models)

    x, y = load_samples(opts.dataset, opts.samples, input_size=size, mean=mean, std=std, root=opts.data_root)
    if y is None:
        return [None] * len(models)
    out = []
    for m in models:
        s = plain_session(m, threads=1)
        name, shape = _input(m)
        b = shape[0] if _static_batch(m) else min(32, len(x))
        logits = np.concatenate([s.run(None, {name: x[i:i + b]})[0] for i in range(0, len(x) - b + 1, b)])
        out.append(float((logits.argmax(-1) == y[: len(logits)]).mean()))
    return out


def _buffers(model: onnx.ModelProto):
    """The buffer model (per image: a fixed batch is first made 1, graphs/model_file.py)."""
    if _input(model)[1][0] in (0, 1):
        return analyse_buffers(model)
    with tempfile.TemporaryDirectory(prefix="seadeploy-convert-") as tmp:
        onnx.save_model(model, f"{tmp}/m.onnx")
        return analyse_buffers(rebatch_to_one(f"{tmp}/m.onnx", f"{tmp}/one.onnx"))


def figures(before: onnx.ModelProto, after: onnx.ModelProto, opts: ConvertOptions, size: int, mean, std,
            blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The before/after report: totals and per block."""
    b0, b1 = _buffers(before), _buffers(after)
    acc = _accuracy([before, after], opts, size, mean, std)
    rows0, rows1 = b0.blocks.to_dict("records"), b1.blocks.to_dict("records")
    per_block = []
    for i, blk in enumerate(blocks):
        r0 = rows0[i] if len(rows0) == len(blocks) else {}
        r1 = rows1[i] if len(rows1) == len(blocks) else {}
        per_block.append({**blk, "attention_buffer_elements_before": r0.get("attention_elements"),
                          "attention_buffer_elements_after": r1.get("attention_elements")})
    return {"blocks": per_block, "attention_blocks": len(blocks),
            "attention_buffer_elements_before": b0.attention_buffer_elements,
            "attention_buffer_elements_after": b1.attention_buffer_elements,
            "total_buffer_elements_before": b0.total_buffer_elements,
            "total_buffer_elements_after": b1.total_buffer_elements,
            "macs_before": onnx_macs(before), "macs_after": onnx_macs(after),
            **latency_pair(before, after, opts.latency_rounds, opts.latency_runs),
            "dataset": opts.dataset, "top1_before": acc[0], "top1_after": acc[1]}


# -------------------------------------------------------------------------------------------- routes
def _export(net, size: int, folder: Path, name: str) -> onnx.ModelProto:
    path = export_onnx(net.eval(), folder / name, (3, size, size), dynamic_batch=True)
    return onnx.load(str(path))


def _structural_records(before: onnx.ModelProto, tiles: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per block the graph analysis finds (graphs/classify.py), in graph order: its tile when the
    PyTorch rewrite tiled it, else why it was kept; blocks tiled but not found in the graph are appended."""
    classes = classify(before)
    records = [{"block": c.block, "kind": c.kind, "tile": list(tiles[c.block]) if c.block in tiles else None,
                **({} if c.block in tiles else {"reason": c.reason or "not found by the PyTorch rewrite "
                                                "(its output is not x·g(x) with g constant over H×W)"})}
               for c in classes]
    seen = {c.block for c in classes}
    return records + [{"block": p, "tile": list(t)} for p, t in tiles.items() if p not in seen]


def convert_torch(ckpt: Checkpoint, opts: ConvertOptions, work: Path) -> tuple[Checkpoint, onnx.ModelProto,
                                                                               onnx.ModelProto, list[dict]]:
    """PyTorch route: ``(converted checkpoint, before ONNX, after ONNX, block records)``."""
    spec = ckpt.spec
    net = load_model(ckpt)
    size = spec.input_size
    before = _export(net, size, work, "before.onnx")
    try:
        new, new_spec, records = convert_model(net, spec, opts.to, opts.tile)
    except InputError as exc:  # say what the graph analysis found and why each block is kept
        classes = classify(before) if opts.to == "tse" else []
        if not classes:
            raise
        raise InputError(f"none of the {len(classes)} attention blocks can be rewritten: "
                         + "; ".join(c.describe() for c in classes[:3])
                         + (f" (+{len(classes) - 3} more)" if len(classes) > 3 else "")) from exc
    if is_external(spec.model) and opts.to == "tse":
        records = _structural_records(before, tiled_blocks(new))
    new.spec = new_spec
    state = {k: v.detach().clone() for k, v in new.state_dict().items()}
    out = Checkpoint(spec=new_spec, state_dict=state, mean=ckpt.mean, std=ckpt.std, dataset=ckpt.dataset,
                     extra={**ckpt.extra, "converted": {"to": opts.to, "tile": tile_value(opts.tile),
                                                         "from_attn": spec.attn}})
    load_model(out)  # the saved spec must rebuild these weights (raises InputError naming a misfit tensor)
    after = _export(new, size, work, "after.onnx")  # export_onnx gives a converted model the deployable lowering
    return out, before, after, records


def _normalisation(source: ModelSource, opts: ConvertOptions) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """--mean/--std, else the dataset's statistics, else ImageNet's for timm/torchvision and 0.5/0.5 otherwise."""
    if opts.dataset:
        info = get_dataset(opts.dataset, split="test", root=opts.data_root).info
        mean, std = tuple(info.mean), tuple(info.std)
    else:
        mean, std = IMAGENET_STATS if source.model.split(":")[0] in ("timm", "torchvision") else HALF
    return tuple(opts.mean or mean), tuple(opts.std or std)


def _staged(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".convert-", dir=out))


def run_convert(source: ModelSource | None, run_dir: str | os.PathLike | None, out: str | os.PathLike,
                opts: ConvertOptions) -> dict[str, Any]:
    """Convert a model source (``--model`` / ``--onnx``) or a run folder's checkpoint, measure, and write ``out``
    (checkpoint for the PyTorch route, model.onnx, convert.json)."""
    onnx_file = source.model.removeprefix("onnx:") if source is not None and not source.has_torch_model else None
    if opts.to not in ("tse", "se"):
        raise ConfigError(f"--to must be tse or se, got '{opts.to}'")
    out = Path(out)
    created = not out.exists()
    stage = _staged(out)
    try:
        names: list[str] = []
        if onnx_file is not None:
            if opts.to != "tse":
                raise ConfigError("--onnx converts SE → TSE only; to go back, convert the PyTorch model "
                                  "(--model/RUN_DIR) or keep the original ONNX file")
            before = load_onnx_file(onnx_file)
            after, records = se_to_tse_onnx(before, opts.tile)
            _, shape = _input(before)
            size = shape[-1]
            mean, std = opts.mean, opts.std
            origin = {"onnx": str(Path(onnx_file).resolve()), "sha256": fileio.sha256(onnx_file)}
        else:
            ckpt = source.checkpoint(*_normalisation(source, opts), opts.dataset) if source is not None \
                else Checkpoint.load(run_dir)
            new_ckpt, before, after, records = convert_torch(ckpt, opts, stage)
            new_ckpt.save(stage / CHECKPOINT)
            names.append(CHECKPOINT)
            size, mean, std = ckpt.spec.input_size, ckpt.mean, ckpt.std
            origin = ckpt.extra.get("source") or {"model": ckpt.spec.model}
        with fileio.atomic_path(stage / "model.onnx") as tmp:
            onnx.save_model(after, str(tmp))
        names.append("model.onnx")
        report = {"format_version": 1, "to": opts.to, "tile": tile_value(opts.tile),
                  "route": "onnx" if onnx_file else "pytorch", "source": origin,
                  **figures(before, after, opts, size, mean, std, records)}
        fileio.write_json(stage / CONVERT_JSON, report)
        names.append(CONVERT_JSON)
        for n in names:
            os.replace(stage / n, out / n)
        return report
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def format_report(r: dict[str, Any]) -> str:
    lines = [f"{'block':40s} {'tile':>8s} {'attn buf before':>16s} {'after':>10s}"]
    for b in r["blocks"]:
        tile = "x".join(map(str, b["tile"])) if b.get("tile") else "-"
        lines.append(f"{b.get('block') or b.get('pool')!s:40s} {tile:>8s} "
                     f"{b.get('attention_buffer_elements_before') or 0:>16,} {b.get('attention_buffer_elements_after') or 0:>10,}"
                     + (f"  ({b['reason']})" if b.get("reason") else ""))
    lines.append(f"{r['attention_blocks']} blocks; attention buffer {r['attention_buffer_elements_before']:,} → "
                 f"{r['attention_buffer_elements_after']:,} elements; total buffer {r['total_buffer_elements_before']:,}"
                 f" → {r['total_buffer_elements_after']:,}")
    lines.append(f"MACs {r['macs_before']:,} → {r['macs_after']:,}; ORT CPU latency {r['latency_ms_before']:.3f} → "
                 f"{r['latency_ms_after']:.3f} ms thread CPU (ratio {r['latency_ratio']:.2f}, {r['latency_ratio_min']:.2f}–"
                 f"{r['latency_ratio_max']:.2f} over {r['latency_rounds']} rounds)")
    if r.get("top1_before") is not None:
        lines.append(f"top-1 on {r['dataset']}: {r['top1_before']:.4f} → {r['top1_after']:.4f}")
    return "\n".join(lines)
