"""The convert stage: SE → TSE (``--to tse``) or back (``--to se``) on a user's model, with before/after figures.

PyTorch route (``--model SOURCE`` or a RUN_DIR with ``checkpoint.safetensors``): the model is rewritten with
:func:`~seadeploy.convert.torch_rewrite.se_to_tse_structural` (zoo models with ``attn=se|tse`` use the zoo's
weight conversion, models/convert.py); ``OUT/checkpoint.safetensors`` records the conversion in its spec
(``attn="tse"``, ``attn_kwargs={"tile", "blocks"}``) so ``train`` fine-tunes it and ``export`` rebuilds it.
ONNX route (``--onnx FILE``): :func:`~seadeploy.convert.onnx_rewrite.se_to_tse_onnx`.

Both write ``OUT/model.onnx`` (the converted graph, static batch 1) and ``OUT/convert.json``: per block and in
total the attention buffer (dataflow/buffers.py), MACs, ONNX Runtime CPU latency before/after (interleaved
rounds, one thread) and top-1 before/after on a labelled dataset. Everything is staged and moved into ``OUT``
only when complete.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from seadeploy import artifacts
from seadeploy.artifacts import CHECKPOINT, Checkpoint
from seadeploy.convert.onnx_rewrite import load_onnx_file, se_to_tse_onnx
from seadeploy.convert.torch_rewrite import se_to_tse_structural, tiled_blocks, tse_to_se_structural
from seadeploy.data import get_dataset
from seadeploy.data.base import HALF, IMAGENET_STATS
from seadeploy.data.samples import load_samples
from seadeploy.dataflow.buffers import analyse_buffers
from seadeploy.errors import ConfigError
from seadeploy.export.onnx_export import export_onnx
from seadeploy.models import convert as zoo
from seadeploy.models.build import load_model
from seadeploy.models.onnx_source import rebatch_to_one
from seadeploy.models.source import ModelSource, is_external

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
    """Multiply-accumulates of Conv / Gemm / MatMul at batch 1 (from inferred shapes)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
              for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    total = 0
    for n in model.graph.node:
        out = shapes.get(n.output[0])
        w = inits.get(n.input[1]) if len(n.input) > 1 else None
        if out is None:
            continue
        if n.op_type == "Conv" and w is not None:
            total += int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif n.op_type in ("Gemm", "MatMul"):
            a = shapes.get(n.input[0])
            k = (a or [1])[-1] if n.op_type == "MatMul" or not any(
                at.name == "transA" and at.i for at in n.attribute) else (a or [1])[-2]
            total += int(np.prod(out[1:])) * int(k)
    return total


def _session(model: onnx.ModelProto):
    import onnxruntime as ort  # noqa: PLC0415  optional: onnxruntime comes with the cpu/gpu extra (train runs without it)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _input(model: onnx.ModelProto) -> tuple[str, list[int]]:
    inits = {i.name for i in model.graph.initializer}
    vi = next(v for v in model.graph.input if v.name not in inits)
    return vi.name, [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]


def latency_pair(before: onnx.ModelProto, after: onnx.ModelProto, rounds: int, runs: int) -> dict[str, float]:
    """Median ms per run of both graphs, measured in interleaved rounds in this process (one ORT intra-op thread,
    which runs in the calling thread, so its thread CPU time is measured: robust to other processes on the machine).

    Hand-written (not profiling/timing.py's single-candidate ``measure``) because the two graphs must
    alternate round by round so machine drift hits both alike; the ratio is the median of per-round ratios.
    """
    sessions = [_session(before), _session(after)]
    name, shape = _input(before)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    per: list[list[float]] = [[], []]
    for s in sessions:  # warm-up: first runs allocate and pick kernels
        for _ in range(max(3, runs)):
            s.run(None, {name: x})
    for _ in range(max(1, rounds)):
        for i, s in enumerate(sessions):
            t0 = time.thread_time()
            for _ in range(max(1, runs)):
                s.run(None, {name: x})
            per[i].append((time.thread_time() - t0) * 1e3 / max(1, runs))
    ratios = [a / b for a, b in zip(per[1], per[0], strict=True)]
    return {"latency_ms_before": statistics.median(per[0]), "latency_ms_after": statistics.median(per[1]),
            "latency_ratio": statistics.median(ratios), "latency_ratio_min": min(ratios),
            "latency_ratio_max": max(ratios), "latency_rounds": len(ratios), "latency_clock": "thread CPU time"}


def _accuracy(models: list[onnx.ModelProto], opts: ConvertOptions, size: int, mean, std) -> list[float | None]:
    if not opts.dataset:
        return [None] * len(models)

    x, y = load_samples(opts.dataset, opts.samples, input_size=size, mean=mean, std=std, root=opts.data_root)
    if y is None:
        return [None] * len(models)
    out = []
    for m in models:
        s = _session(m)
        name, shape = _input(m)
        b = shape[0]
        logits = np.concatenate([s.run(None, {name: x[i:i + b]})[0] for i in range(0, len(x) - b + 1, b)])
        out.append(float((logits.argmax(-1) == y[: len(logits)]).mean()))
    return out


def _buffers(model: onnx.ModelProto):
    """The buffer model (per image: a fixed batch is first made 1, models/onnx_source.py)."""
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
    path = export_onnx(net.eval(), folder / name, (3, size, size), dynamic_batch=False, example_batch=1)
    return onnx.load(str(path))


def _tile_value(tile: Any) -> Any:
    return [list(t) if isinstance(t, tuple) else t for t in tile] if isinstance(tile, list) else tile


def convert_torch(ckpt: Checkpoint, opts: ConvertOptions, work: Path) -> tuple[Checkpoint, onnx.ModelProto,
                                                                               onnx.ModelProto, list[dict]]:
    """PyTorch route: ``(converted checkpoint, before ONNX, after ONNX, block records)``."""
    spec = ckpt.spec
    net = load_model(ckpt)
    size = spec.input_size
    if not is_external(spec.model):
        new = zoo.se_to_tse(net, tile=opts.tile) if opts.to == "tse" else zoo.tse_to_se(net)
        new_spec = new.spec
        paths = zoo.attention_paths(new)
        records = [{"block": p, "tile": list(new_spec.attn_kwargs.get("tile", ())) if opts.to == "tse" else None}
                   for p in paths]
    elif opts.to == "tse":
        if spec.attn == "tse":
            raise ConfigError("the model is already TSE (converted before); use --to se to go back first")
        new = se_to_tse_structural(net, tile=opts.tile, input_size=size)
        tiles = tiled_blocks(new)
        new_spec = dataclasses.replace(spec, attn="tse", attn_kwargs={"tile": _tile_value(opts.tile),
                                                                      "blocks": list(tiles)})
        records = [{"block": p, "tile": list(t)} for p, t in tiles.items()]
    else:
        if spec.attn != "tse":
            raise ConfigError(f"--to se needs a model converted to TSE by seadeploy.convert; '{spec.model}' is not")
        records = [{"block": p, "tile": None} for p in tiled_blocks(net)]
        new = tse_to_se_structural(net)
        new_spec = dataclasses.replace(spec, attn=None, attn_kwargs={})
    new.spec = new_spec
    state = {k: v.detach().clone() for k, v in new.state_dict().items()}
    out = Checkpoint(spec=new_spec, state_dict=state, mean=ckpt.mean, std=ckpt.std, dataset=ckpt.dataset,
                     extra={**ckpt.extra, "converted": {"to": opts.to, "tile": _tile_value(opts.tile),
                                                         "from_attn": spec.attn}})
    load_model(out)  # the saved spec must rebuild these weights (raises InputError naming a misfit tensor)
    before = _export(net, size, work, "before.onnx")
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


def run_convert(source: ModelSource | str | os.PathLike | None, onnx_file: str | None, out: str | os.PathLike,
                opts: ConvertOptions) -> dict[str, Any]:
    """Convert, measure, and write ``out`` (checkpoint for the PyTorch route, model.onnx, convert.json)."""
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
            origin = {"onnx": str(Path(onnx_file).resolve()), "sha256": artifacts.sha256(onnx_file)}
        else:
            if isinstance(source, ModelSource):
                ckpt = source.checkpoint(*_normalisation(source, opts), opts.dataset)
            else:
                ckpt = Checkpoint.load(source)
            new_ckpt, before, after, records = convert_torch(ckpt, opts, stage)
            new_ckpt.save(stage / CHECKPOINT)
            names.append(CHECKPOINT)
            size, mean, std = ckpt.spec.input_size, ckpt.mean, ckpt.std
            origin = ckpt.extra.get("source") or {"model": ckpt.spec.model}
        with artifacts.atomic_path(stage / "model.onnx") as tmp:
            onnx.save_model(after, str(tmp))
        names.append("model.onnx")
        report = {"format_version": 1, "to": opts.to, "tile": _tile_value(opts.tile),
                  "route": "onnx" if onnx_file else "pytorch", "source": origin,
                  **figures(before, after, opts, size, mean, std, records)}
        artifacts.write_json(stage / CONVERT_JSON, report)
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
