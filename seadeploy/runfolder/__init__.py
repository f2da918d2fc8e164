"""The run folder: every file the stages write, read and written in this one package.

Every file name, the checkpoint format and what each result file holds live here::

    m = read_manifest(run)                      # typed Manifest; InputError when missing, corrupt or unsafe
    path = m.file(run, "int8")                  # the recorded file, resolved inside the run folder
    folder = RunFolder.load(run)                # the checkpoint + manifest as validate and profiling see them
    write_parity(run, report.to_dict(), report.to_frame(), arrays)
    frame = read_parity(run)                    # parity.csv, else parity.json's "comparisons"

* :mod:`~seadeploy.runfolder.names` — the file names (``CHECKPOINT``, ``onnx_name(precision)`` ...) and ``PRECISIONS``;
* :mod:`~seadeploy.runfolder.checkpoint` — :class:`ModelSpec` (the model recipe) and the self-describing
  :class:`Checkpoint` (safetensors: loading never runs code);
* :mod:`~seadeploy.runfolder.manifest` — ``manifest.json`` (typed, every field checked on read);
* :mod:`~seadeploy.runfolder.results` — parity, latency, per-layer, buffers, pipeline and training files;
* :mod:`~seadeploy.runfolder.folder` — :class:`RunFolder`: the reference checkpoint, the files the manifest lists,
  and their consistency;
* :mod:`~seadeploy.runfolder.stage_files` — which stage writes which file (what a re-run removes first);
* :mod:`~seadeploy.runfolder.paths` and :mod:`~seadeploy.runfolder.fields` — recorded paths stay inside the
  folder; field and column type checks.

Paths recorded in ``manifest.json`` are relative to the run folder; reading refuses absolute paths and paths that
leave the folder (a copied or moved run folder stays valid, and a crafted manifest cannot point a stage at files
elsewhere).
"""

from seadeploy.runfolder.checkpoint import (
    MAX_INPUT_FACTOR,
    Checkpoint,
    ModelSpec,
    check_input_size,
    load_state_checked,
)
from seadeploy.runfolder.folder import RunFolder
from seadeploy.runfolder.manifest import (
    MANIFEST_VERSION,
    MANIFEST_VERSIONS,
    Check,
    EngineEntry,
    FileEntry,
    Manifest,
    has_manifest,
    read_manifest,
    write_manifest,
)
from seadeploy.runfolder.names import (
    BUFFERS_JSON,
    CHECKPOINT,
    CURVES_PNG,
    FORMAT_VERSION,
    LAST_CHECKPOINT,
    LATENCY_CSV,
    LATENCY_JSON,
    LAYERS_SUMMARY,
    MANIFEST,
    METRICS_CSV,
    PARITY_CSV,
    PARITY_JSON,
    PARITY_LAYERS_CSV,
    PARITY_NPZ,
    PIPELINE_JSON,
    PRECISIONS,
    REPORT_HTML,
    REPORT_MD,
    TRAIN_STATE,
    engine_name,
    layers_csv,
    onnx_name,
)
from seadeploy.runfolder.paths import inside
from seadeploy.runfolder.results import (
    LAYER_COLUMNS,
    LAYER_DTYPES,
    METRICS_COLUMNS,
    read_buffers,
    read_latency,
    read_latency_ratios,
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
from seadeploy.runfolder.stage_files import STAGE_FILES, stage_files

__all__ = ["BUFFERS_JSON", "CHECKPOINT", "CURVES_PNG", "FORMAT_VERSION", "LAST_CHECKPOINT", "LATENCY_CSV",
           "LATENCY_JSON", "LAYERS_SUMMARY", "LAYER_COLUMNS", "LAYER_DTYPES", "MANIFEST", "MANIFEST_VERSION",
           "MANIFEST_VERSIONS", "MAX_INPUT_FACTOR", "METRICS_COLUMNS", "METRICS_CSV", "PARITY_CSV", "PARITY_JSON",
           "PARITY_LAYERS_CSV", "PARITY_NPZ", "PIPELINE_JSON", "PRECISIONS", "REPORT_HTML", "REPORT_MD", "STAGE_FILES",
           "TRAIN_STATE", "Check", "Checkpoint", "EngineEntry", "FileEntry", "Manifest", "ModelSpec", "RunFolder", "check_input_size", "engine_name",
           "has_manifest", "inside", "layers_csv", "load_state_checked", "onnx_name", "read_buffers", "read_latency", "read_latency_ratios",
           "read_layers", "read_layers_summary", "read_manifest", "read_parity", "read_parity_inputs", "read_pipeline",
           "read_training", "stage_files", "write_buffers", "write_latency", "write_layers", "write_layers_summary",
           "write_manifest", "write_parity", "write_pipeline"]
