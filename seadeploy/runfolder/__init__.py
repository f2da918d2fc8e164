"""The run folder: every file the stages write, read and written in this one package.

File names are the constants of :mod:`seadeploy.artifacts`; this package says what each file holds::

    m = read_manifest(run)                      # typed Manifest; InputError when missing, corrupt or unsafe
    path = m.file(run, "int8")                  # the recorded file, resolved inside the run folder
    folder = RunFolder.load(run)                # the checkpoint + manifest as validate and profiling see them
    write_parity(run, report.to_dict(), report.to_frame(), arrays)
    frame = read_parity(run)                    # parity.csv, else parity.json's "comparisons"

* :mod:`~seadeploy.runfolder.manifest` — ``manifest.json`` (typed, every field checked on read);
* :mod:`~seadeploy.runfolder.results` — parity, latency, per-layer, buffers, pipeline and training files;
* :mod:`~seadeploy.runfolder.folder` — :class:`RunFolder`: the reference checkpoint, the files the manifest lists,
  and their consistency;
* :mod:`~seadeploy.runfolder.stages` — which stage writes which file (what a re-run removes first);
* :mod:`~seadeploy.runfolder.paths` and :mod:`~seadeploy.runfolder.fields` — recorded paths stay inside the
  folder; field and column type checks.

Paths recorded in ``manifest.json`` are relative to the run folder; reading refuses absolute paths and paths that
leave the folder (a copied or moved run folder stays valid, and a crafted manifest cannot point a stage at files
elsewhere).
"""

from seadeploy.artifacts import CHECKPOINT, MANIFEST, engine_name, onnx_name
from seadeploy.runfolder.folder import RunFolder
from seadeploy.runfolder.manifest import (
    MANIFEST_VERSION,
    MANIFEST_VERSIONS,
    Manifest,
    has_manifest,
    read_manifest,
    write_manifest,
)
from seadeploy.runfolder.paths import inside
from seadeploy.runfolder.results import (
    LAYER_COLUMNS,
    LAYER_DTYPES,
    METRICS_COLUMNS,
    read_buffers,
    read_latency,
    read_layers,
    read_layers_summary,
    read_parity,
    read_parity_inputs,
    read_pipeline,
    read_training,
    write_buffers,
    write_latency,
    write_layers,
    write_layers_summary,
    write_parity,
    write_pipeline,
)
from seadeploy.runfolder.stages import STAGE_FILES, stage_files

__all__ = ["CHECKPOINT", "LAYER_COLUMNS", "LAYER_DTYPES", "MANIFEST", "MANIFEST_VERSION", "MANIFEST_VERSIONS",
           "METRICS_COLUMNS", "STAGE_FILES", "Manifest", "RunFolder", "engine_name", "has_manifest", "inside",
           "onnx_name", "read_buffers", "read_latency", "read_layers", "read_layers_summary", "read_manifest",
           "read_parity", "read_parity_inputs", "read_pipeline", "read_training", "stage_files", "write_buffers",
           "write_latency", "write_layers", "write_layers_summary", "write_manifest", "write_parity",
           "write_pipeline"]
