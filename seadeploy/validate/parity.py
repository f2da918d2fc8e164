"""``validate_run``: every backend × precision of a run folder against PyTorch fp32, on identical inputs.

Two input sets: ``random`` (seeded standard-normal batches, which reach activations real images do not)
and ``data`` (seeded real samples of the run's dataset, labelled, so accuracy parity is measured too).
The PyTorch fp32 model from ``checkpoint.safetensors`` is the reference. Results go to ``parity.json``,
``parity.csv`` and ``parity.npz`` (inputs, labels, reference and every backend's outputs, so a failure
can be replayed with ``--inputs parity.npz`` and attached to a bug report), all written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seadeploy.artifacts import PARITY_CSV, PARITY_JSON, PARITY_NPZ, atomic_path, library_versions, write_json
from seadeploy.errors import ConfigError, InputError
from seadeploy.validate.compare import Comparison, ParityReport, Tolerance, compare_outputs, default_tolerance
from seadeploy.validate.runfolder import RunFolder

LAYERS_CSV = "parity_layers.csv"
Inputs = dict[str, tuple[np.ndarray, np.ndarray | None]]


def make_inputs(folder: RunFolder, *, dataset: str | None, samples: int, random: int, seed: int = 0,
                root: str | None = None, replay: str | os.PathLike | None = None) -> tuple[Inputs, list[str]]:
    """The input sets ``{"random": (x, None), "data": (x, y)}`` and notes about what was left out.

    ``replay`` loads them from a ``parity.npz`` (keys ``x_random``, ``x_data``, ``y_data``) or any ``.npz``
    with ``x`` (and optionally ``y``) instead.
    """
    if replay is not None:
        return _load_replay(Path(replay)), []
    from seadeploy.data.samples import load_samples

    size, notes, out = folder.spec.input_size, [], {}
    if random > 0:
        out["random"] = (load_samples("synthetic", random, input_size=size, seed=seed)[0], None)
    name = folder.dataset if dataset is None else dataset
    if name in (None, "", "none"):
        notes.append("no dataset: accuracy parity skipped (pass --dataset digits or cifar10)")
    elif samples > 0:
        from seadeploy.data import get_dataset

        n = min(int(samples), len(get_dataset(name, split="test", root=root, input_size=size)))
        x, y = load_samples(name, n, split="test", input_size=size, mean=folder.mean, std=folder.std, seed=seed,
                            root=root)
        if y is not None and int(y.max(initial=0)) >= folder.spec.num_classes:
            raise InputError(f"dataset '{name}' has labels up to {int(y.max())} but the model has "
                             f"{folder.spec.num_classes} classes; pass the dataset it was trained on")
        out["data"] = (x, y)
    if not out:
        raise ConfigError("nothing to compare: --samples and --random are both 0")
    return out, notes


def _load_replay(path: Path) -> Inputs:
    if not path.is_file():
        raise InputError(f"inputs file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"'{path}' is not a readable .npz file ({exc})") from exc
    if "x" in arrays:
        return {"data" if "y" in arrays else "random": (arrays["x"], arrays.get("y"))}
    out = {k: (arrays[f"x_{k}"], arrays.get(f"y_{k}")) for k in ("random", "data") if f"x_{k}" in arrays}
    if not out:
        raise InputError(f"'{path}' has no 'x' (or x_random / x_data) array to replay")
    return out


def infer_batches(backend: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Run ``x`` through ``backend`` in chunks of ``batch`` and return the first output, concatenated."""
    name = next(iter(backend.input_specs))
    out_name = backend.output_names[0]
    parts = [backend.infer({name: x[i:i + batch]})[out_name] for i in range(0, len(x), max(1, int(batch)))]
    return np.concatenate(parts, axis=0)


def _backend_for(spec: str, precision: str, folder: RunFolder, opts: dict[str, Any]) -> Any:
    """Create backend ``spec`` on the run's file of ``precision`` and check it fits the model."""
    from seadeploy.backends import create_backend, parse_backend_spec

    name, _ = parse_backend_spec(spec)
    if name == "torch":
        be = create_backend(spec, folder.checkpoint.build_model(), input_shape=folder.spec.input_shape)
    elif name == "ort":
        be = create_backend(spec, folder.onnx_path(precision), threads=opts.get("threads"),
                            graph_opt=opts.get("graph_opt", "all"))
    else:
        be = create_backend(spec, folder.engine_path(precision))
        outs = {n: tuple(be.engine.get_tensor_shape(n)) for n in be.output_names}
        folder.check_io(be.input_specs, outs, f"engine '{folder.path.name}/{Path(be.info['engine']).name}'")
    return be


def validate_run(run_dir: str | os.PathLike, *, backends: Sequence[str] = ("ort",),
                 precisions: Sequence[str] | None = None, dataset: str | None = None, samples: int = 512,
                 random: int = 32, batch: int = 64, atol: float | None = None, rtol: float | None = None,
                 layerwise: bool = False, device: str = "cpu", threads: int | None = None, seed: int = 0,
                 root: str | None = None, inputs: str | os.PathLike | None = None, trained: bool | None = None,
                 tolerances: dict[str, Tolerance] | None = None,
                 out_dir: str | os.PathLike | None = None, write: bool = True,
                 log: Callable[[str], None] | None = None) -> ParityReport:
    """Compare each backend × precision of ``run_dir`` with the PyTorch fp32 reference and write the results.

    Args:
        backends: backend specs (``torch``, ``torch:cuda``, ``ort``, ``ort:cuda``, ``ort:tensorrt``, ``trt``).
        precisions: subset of fp32/fp16/int8 (default: every ONNX precision present in the folder).
        dataset / samples / root: labelled samples for accuracy parity (default: the run's dataset).
        random: number of seeded random inputs. batch: inference batch size.
        atol / rtol: override the per-precision defaults (and make the element-wise check binding).
        layerwise: also localise the first divergent layer of every ORT (and TensorRT) comparison.
        device: torch device of the reference. threads: ORT intra-op threads (pinned; recorded).
        inputs: replay the inputs saved in a ``parity.npz``. trained: override the trained-model detection.
        tolerances: ``{precision: Tolerance}`` replacing the defaults (the CI matrix uses per-family values).
        out_dir: where parity.* go (default ``run_dir``). write: write files at all.
        log: called with progress lines.

    Raises:
        InputError (mismatched/missing files, bad inputs), ConfigError, BackendUnavailable.
    """
    from seadeploy.backends import check_backend

    say = log or (lambda _msg: None)
    if int(batch) < 1 or int(samples) < 0 or int(random) < 0:
        raise ConfigError(f"--batch must be ≥ 1 and --samples/--random ≥ 0 (got {batch}, {samples}, {random})")
    if not backends:
        raise ConfigError("no backend given; pass --backends ort (or torch, trt, ort:cuda ...)")
    for spec in backends:
        check_backend(spec)  # a missing library or GPU fails now (exit 3), not after the reference ran
    folder = RunFolder.load(run_dir)
    precisions = list(precisions or folder.available_precisions())
    if not precisions:
        raise InputError(f"'{folder.path}' has no model*.onnx; run python -m seadeploy.export --out {folder.path} first")
    is_trained = folder.trained if trained is None else bool(trained)
    sets, notes = make_inputs(folder, dataset=dataset, samples=samples, random=random, seed=seed, root=root,
                              replay=inputs)
    refs, reference = reference_outputs(folder, sets, device, batch)

    def rule(precision: str, tf32: bool) -> Tolerance:
        if tf32 and precision == "fp32" and atol is None and rtol is None:
            return default_tolerance("fp16", trained=is_trained)  # TF32 keeps fp16's 10-bit mantissa
        return (tolerances or {}).get(precision) or default_tolerance(precision, is_trained, atol, rtol)

    comparisons, outputs, warnings = compare_backends(folder, backends, precisions, sets, refs, rule, batch=batch,
                                                      threads=threads, log=say)
    warnings = [*folder.warnings, *notes, *warnings, *_judging_notes(precisions, sets, is_trained)]
    settings = {"backends": list(backends), "precisions": precisions, "samples": {k: len(v[0]) for k, v in sets.items()},
                "dataset": dataset or folder.dataset, "seed": seed, "batch": batch, "trained": is_trained,
                "spec": folder.spec.to_dict(), "versions": library_versions(), "replayed_from": str(inputs) if inputs else None}
    report = ParityReport(str(folder.path), comparisons, reference, settings, warnings)
    if layerwise:
        from seadeploy.validate.layerwise_run import run_layerwise

        report.layerwise = run_layerwise(folder, backends, precisions, sets, threads=threads, log=say)
    if write:
        write_report(report, Path(out_dir or folder.path), sets, refs, outputs)
    return report


def reference_outputs(folder: RunFolder, sets: Inputs, device: str, batch: int) -> tuple[dict[str, np.ndarray], dict]:
    """PyTorch fp32 logits for every input set (TF32 off on CUDA) and the reference's description."""
    from seadeploy.backends.torch_backend import TorchBackend

    with TorchBackend(folder.checkpoint.build_model(), device=device, input_shape=folder.spec.input_shape) as be:
        refs = {k: infer_batches(be, x, batch) for k, (x, _) in sets.items()}
        return refs, {"backend": "torch", "precision": "fp32", **be.info}


def compare_backends(folder: RunFolder, backends: Sequence[str], precisions: Sequence[str], sets: Inputs,
                     refs: dict[str, np.ndarray], rule: Callable[[str, bool], Tolerance], *, batch: int = 64,
                     threads: int | None = None, log: Callable[[str], None] = print
                     ) -> tuple[list[Comparison], dict[str, np.ndarray], list[str]]:
    """Run every backend × precision on every input set; ``rule(precision, tf32_on)`` gives the tolerance."""
    comparisons: list[Comparison] = []
    outputs: dict[str, np.ndarray] = {}
    warnings: list[str] = []
    for spec in backends:
        for precision in precisions:
            if spec.split(":")[0] == "torch" and precision != "fp32":
                warnings.append(f"{spec} runs fp32 only; {precision} skipped")
                continue
            log(f"running {spec} {precision}")
            with _backend_for(spec, precision, folder, {"threads": threads}) as be:
                tf32 = bool(be.info.get("tf32"))
                if tf32 and precision == "fp32":
                    warnings.append(f"TF32 is on for {spec} (a TensorRT default it cannot turn off): its fp32 is "
                                    "judged like fp16 unless --atol/--rtol are given")
                for kind, (x, y) in sets.items():
                    out = infer_batches(be, x, batch)
                    outputs[f"out_{spec.replace(':', '-')}_{precision}_{kind}"] = out
                    comparisons.append(compare_outputs(refs[kind], out, rule(precision, tf32), backend=spec,
                                                       precision=precision, inputs=kind, labels=y, info=be.info))
    return comparisons, outputs, warnings


def _judging_notes(precisions: Sequence[str], sets: Inputs, trained: bool) -> list[str]:
    notes = []
    if "int8" in precisions and "data" not in sets:
        notes.append("int8 is judged on dataset samples only (calibrated ranges); without them only NaN/Inf is checked")
    if not trained:
        notes.append("untrained (random-weight) model: fp16/int8 judged on cosine only, top-1 reported "
                     "(near-uniform logits flip top-1 on tiny errors)")
    return notes


def write_report(report: ParityReport, out_dir: Path, sets: Inputs, refs: dict[str, np.ndarray],
                 outputs: dict[str, np.ndarray]) -> list[Path]:
    """Atomically write parity.json, parity.csv, parity.npz (and parity_layers.csv after --layerwise)."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_json(out_dir / PARITY_JSON, report.to_dict())]
    with atomic_path(out_dir / PARITY_CSV) as tmp:
        report.to_frame().to_csv(tmp, index=False)
    written.append(out_dir / PARITY_CSV)
    arrays = {f"x_{k}": x for k, (x, _) in sets.items()}
    arrays.update({f"y_{k}": y for k, (_, y) in sets.items() if y is not None})
    arrays.update({f"ref_{k}": v for k, v in refs.items()})
    arrays.update(outputs)
    with atomic_path(out_dir / PARITY_NPZ) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
        np.savez_compressed(f, **arrays)
    written.append(out_dir / PARITY_NPZ)
    if report.layerwise:
        frame = pd.concat([lw.to_frame() for lw in report.layerwise], ignore_index=True)
        with atomic_path(out_dir / LAYERS_CSV) as tmp:
            frame.to_csv(tmp, index=False)
        written.append(out_dir / LAYERS_CSV)
    return written
