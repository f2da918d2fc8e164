"""The manifest export starts from: everything known before any file is written.

The schema, the reader and the writer of ``manifest.json`` live in :mod:`seadeploy.runfolder`
(:class:`~seadeploy.runfolder.Manifest`, :func:`~seadeploy.runfolder.read_manifest`,
:func:`~seadeploy.runfolder.write_manifest`); this module fills in what only export knows (tensor names,
the exporter, the batch dimension)::

    m = new_manifest(spec, mean=ckpt.mean, std=ckpt.std, dataset="digits", opset=18, seed=0)
"""

from __future__ import annotations

from typing import Any

from seadeploy.export.onnx_export import BATCH_DIM, EXPORTER, INPUT_NAME, OUTPUT_NAME
from seadeploy.runfolder import CHECKPOINT, Manifest, ModelSpec


def new_manifest(spec: ModelSpec, *, mean: Any, std: Any, dataset: str | None, opset: int,
                 dynamic_batch: bool = True, batch: int = 1, checkpoint: str | None = CHECKPOINT,
                 seed: int | None = None, weights: str | None = None) -> Manifest:
    """A manifest with files/checks/engines empty; ``seed``: the seed the weights were drawn with (from flags)."""
    dim0: Any = BATCH_DIM if dynamic_batch else int(batch)
    return Manifest(
        spec=spec,
        checkpoint=checkpoint,
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        dataset=dataset,
        seed=seed,
        weights=weights,
        input={"name": INPUT_NAME, "shape": [dim0, *spec.input_shape], "dtype": "float32"},
        output={"name": OUTPUT_NAME, "shape": [dim0, int(spec.num_classes)]},
        opset=int(opset),
        exporter=EXPORTER,
        dynamic_axes={INPUT_NAME: {"0": BATCH_DIM}, OUTPUT_NAME: {"0": BATCH_DIM}} if dynamic_batch else {},
    )
