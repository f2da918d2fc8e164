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
import pandas as pd

from seadeploy.backends import backend_class, check_backend, create_backend
from seadeploy.backends.torch_backend import TorchBackend
from seadeploy.data import get_dataset
from seadeploy.data.samples import load_samples
from seadeploy.errors import ConfigError, InputError
from seadeploy.fileio import library_versions
from seadeploy.models.build import load_model
from seadeploy.parity import (
    Comparison,
    NoiseProbe,
    RuleSet,
    compare_backend,
    infer_batches,
    is_trained,
    noise_notes,
    reference_noise,
)
from seadeploy.parity.int8 import int8_noise
from seadeploy.runfolder import RunFolder, read_parity_inputs, write_parity
from seadeploy.validate.layerwise_run import run_layerwise
from seadeploy.validate.report import ParityReport

Inputs = dict[str, tuple[np.ndarray, np.ndarray | None]]


def make_inputs(folder: RunFolder, *, dataset: str | None, samples: int, random: int, seed: int = 0,
                root: str | None = None, replay: str | os.PathLike | None = None) -> tuple[Inputs, list[str]]:
    """The input sets ``{"random": (x, None), "data": (x, y)}`` and notes about what was left out.

    ``replay`` loads them from a ``parity.npz`` (keys ``x_random``, ``x_data``, ``y_data``) or any ``.npz``
    with ``x`` (and optionally ``y``) instead.
    """
    if replay is not None:
        return check_replay(read_parity_inputs(replay), Path(replay), folder.spec.num_classes), []
    size, notes, out = folder.spec.input_size, [], {}
    if random > 0:
        out["random"] = (load_samples("synthetic", random, input_size=size, seed=seed)[0], None)
    name = folder.dataset if dataset is None else dataset
    if name in (None, "", "none"):
        notes.append("no dataset: accuracy parity skipped (pass --dataset digits or cifar10)")
    elif samples > 0:
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


def check_replay(sets: Inputs, path: Path, classes: int) -> Inputs:
    """Refuse replayed inputs no comparison can use: not float images ``(N ≥ 1, C, H, W)``, not finite, or labels
    that are not integers in ``[0, classes)`` with one per sample."""
    for kind, (x, y) in sets.items():
        if x.dtype.kind != "f" or x.ndim != 4 or len(x) == 0:
            raise InputError(f"'{path}' {kind} inputs are {x.dtype} {x.shape}; expected float images (N ≥ 1, C, H, W)")
        if not np.isfinite(x).all():
            raise InputError(f"'{path}' {kind} inputs hold NaN/Inf; replay finite inputs")
        if y is None:
            continue
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise InputError(f"'{path}' {kind} labels are {y.dtype} {y.shape}; expected {len(x)} integer class ids")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise InputError(f"'{path}' {kind} labels range {int(y.min())}..{int(y.max())}, outside the model's "
                             f"classes 0..{classes - 1}; pass the inputs saved for this run")
    return sets


def _backend_for(spec: str, precision: str, folder: RunFolder, opts: dict[str, Any]) -> Any:
    """Create backend ``spec`` on the run's file of ``precision`` (the backend says which) and check it fits."""
    cls = backend_class(spec)
    path = cls.artifact(folder.path, precision)
    if path is None and folder.manifest is not None and precision in folder.manifest.failed \
            and ".onnx" in cls.file_suffixes:
        path = folder.onnx_path(precision)  # a file that failed at export is judged when asked for by name
    if path is None:
        raise InputError(f"'{folder.path}' has no {cls.artifact_kind} for {precision}; run python -m seadeploy.export "
                         f"--out {folder.path} --precision {precision}")
    checks = {".onnx": folder.onnx_path, ".engine": folder.engine_path}  # by file kind: shapes, engine sidecar
    if path.suffix in checks:
        checks[path.suffix](precision)
    be = create_backend(spec, path, **cls.run_options(threads=opts.get("threads"), precision=precision))
    folder.check_io({k: v.shape for k, v in be.input_specs.items()}, None, f"'{folder.path.name}/{path.name}'")
    return be


def validate_run(run_dir: str | os.PathLike, *, backends: Sequence[str] = ("ort",),
                 precisions: Sequence[str] | None = None, dataset: str | None = None, samples: int = 512,
                 random: int = 32, batch: int = 64, atol: float | None = None, rtol: float | None = None,
                 layerwise: bool = False, device: str = "cpu", threads: int | None = None, seed: int = 0,
                 root: str | None = None, inputs: str | os.PathLike | None = None, trained: bool | None = None,
                 rules: RuleSet | None = None, progress: bool = False,
                 out_dir: str | os.PathLike | None = None, write: bool = True,
                 log: Callable[[str], None] | None = None) -> ParityReport:
    """Compare each backend × precision of ``run_dir`` with the PyTorch fp32 reference and write the results.

    Args:
        backends: backend specs (``torch``, ``torch:cuda``, ``ort``, ``ort:cuda``, ``ort:tensorrt``, ``trt``).
        precisions: subset of fp32/fp16/int8 (default: every ONNX precision present in the folder).
        dataset / samples / root: labelled samples for accuracy parity (default: the run's dataset).
        random: number of seeded random inputs. batch: inference batch size.
        atol / rtol: override the documented rules (and make the element-wise check binding); see ``rules``.
        layerwise: also localise the first divergent layer of every ORT (and TensorRT) comparison.
        device: torch device of the reference. threads: ORT intra-op threads (pinned; recorded).
        inputs: replay the inputs saved in a ``parity.npz``. trained: override the trained-model detection.
        rules: how comparisons are judged (:class:`seadeploy.parity.RuleSet`: command-line bounds, per-precision
            overrides such as the CI matrix's per-family int8 floors); default: the documented rules.
        progress: tqdm bars over the inference batches.
        out_dir: where parity.* go (default ``run_dir``). write: write files at all.
        log: called with progress lines.

    Raises:
        InputError (mismatched/missing files, bad inputs), ConfigError, BackendUnavailable.
    """
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
    ruleset = RuleSet(trained=trained, atol=atol, rtol=rtol) if rules is None else rules
    ruleset = ruleset.for_model(is_trained(folder.checkpoint.metrics) if trained is None else bool(trained))
    judged_trained = bool(ruleset.trained)
    sets, notes = make_inputs(folder, dataset=dataset, samples=samples, random=random, seed=seed, root=root,
                              replay=inputs)
    failed = [p for p in (folder.manifest.failed if folder.manifest else {}) if p not in precisions]
    notes += [f"{p} not judged: it failed parity at export (manifest 'failed'); --precision {p} judges it"
              for p in failed]
    refs, reference, noise = reference_outputs(folder, sets, device, batch, progress, noise_precisions=precisions)
    comparisons, outputs, warnings = compare_backends(folder, backends, precisions, sets, refs, ruleset, batch=batch,
                                                      threads=threads, log=say, progress=progress, noise=noise)
    skipped = [f"{name} is in the folder but not in its manifest (left by an earlier export): not judged"
               for name in folder.skipped_files()]
    warnings = [*folder.warnings, *skipped, *notes, *warnings, *_judging_notes(precisions, sets, judged_trained),
                *noise_notes(comparisons)]
    settings = {"backends": list(backends), "precisions": precisions, "samples": {k: len(v[0]) for k, v in sets.items()},
                "dataset": dataset or folder.dataset, "seed": seed, "batch": batch, "trained": judged_trained,
                "rules": ruleset.to_dict(), "spec": folder.spec.to_dict(), "versions": library_versions(),
                "replayed_from": str(inputs) if inputs else None}
    report = ParityReport(comparisons, str(folder.path), reference, settings, warnings)
    if layerwise:
        report.layerwise = run_layerwise(folder, backends, precisions, sets, threads=threads, log=say)
    if write:
        write_report(report, Path(out_dir or folder.path), sets, refs, outputs)
    return report


def reference_outputs(folder: RunFolder, sets: Inputs, device: str, batch: int, progress: bool = False,
                      noise_precisions: Sequence[str] = ("fp32",)
                      ) -> tuple[dict[str, np.ndarray], dict, dict[str, dict[str, NoiseProbe]]]:
    """PyTorch fp32 logits for every input set (TF32 off on CUDA, in batches), the reference's description, and what
    each of ``noise_precisions`` itself does to the model, for the rules' noise floors (``seadeploy/parity.py``)."""
    model = load_model(folder.checkpoint)
    with TorchBackend(model, device=device, input_shape=folder.spec.input_shape) as be:
        refs = {k: infer_batches(be, x, batch, progress, desc=f"reference {k}") for k, (x, _) in sets.items()}
        reference = {"backend": "torch", "precision": "fp32", **be.info}
    noise = reference_noise(model, refs, sets, noise_precisions)
    if "int8" in noise_precisions and "int8" in folder.available_precisions():  # the int8 rounding, the file's scales
        noise["int8"] = int8_noise(model, refs, sets, folder.onnx_path("int8"))
    return refs, reference, noise


def compare_backends(folder: RunFolder, backends: Sequence[str], precisions: Sequence[str], sets: Inputs,
                     refs: dict[str, np.ndarray], rules: RuleSet, *, batch: int = 64,
                     threads: int | None = None, log: Callable[[str], None] = print, progress: bool = False,
                     noise: dict[str, dict[str, NoiseProbe]] | None = None
                     ) -> tuple[list[Comparison], dict[str, np.ndarray], list[str]]:
    """Run every backend × precision on every input set (in batches), judged by ``rules``."""
    comparisons: list[Comparison] = []
    outputs: dict[str, np.ndarray] = {}
    warnings: list[str] = []
    for spec in backends:
        for precision in precisions:
            runs = backend_class(spec).precisions
            if precision not in runs:
                warnings.append(f"{spec} runs {', '.join(runs)} only; {precision} skipped")
                continue
            log(f"running {spec} {precision}")
            with _backend_for(spec, precision, folder, {"threads": threads}) as be:
                tf32 = bool(be.info.get("tf32"))
                if tf32 and precision == "fp32":
                    warnings.append(f"TF32 is on for {spec} (a TensorRT default it cannot turn off): its fp32 is "
                                    "judged like fp16 unless --atol/--rtol are given")
                kept: dict[str, np.ndarray] = {}
                comparisons += compare_backend(be, refs, sets, lambda kind, p=precision, t=tf32: rules.rule(p, kind, t),
                                               name=spec, precision=precision, batch=batch, progress=progress,
                                               keep=kept, noise=(noise or {}).get(precision))
                outputs.update({f"out_{spec.replace(':', '-')}_{precision}_{k}": v for k, v in kept.items()})
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
    """parity.json, parity.csv, parity.npz (and parity_layers.csv after --layerwise), through the run-folder writer."""
    arrays = {f"x_{k}": x for k, (x, _) in sets.items()}
    arrays.update({f"y_{k}": y for k, (_, y) in sets.items() if y is not None})
    arrays.update({f"ref_{k}": v for k, v in refs.items()})
    arrays.update(outputs)
    layers = pd.concat([lw.to_frame() for lw in report.layerwise], ignore_index=True) if report.layerwise else None
    return write_parity(out_dir, report.to_dict(), report.to_frame(), arrays, layers)
