"""Which stage writes which run-folder file: what a re-run of a stage removes first, so that no report or later
stage ever reads a previous run's output of it."""

from __future__ import annotations

from collections.abc import Iterable

from seadeploy.runfolder.names import (
    BUFFERS_JSON,
    LATENCY_CSV,
    LATENCY_JSON,
    LAYERS_SUMMARY,
    MANIFEST,
    PARITY_CSV,
    PARITY_JSON,
    PARITY_LAYERS_CSV,
    PARITY_NPZ,
    PIPELINE_JSON,
    PRECISIONS,
    engine_name,
    layers_csv,
    onnx_name,
)

#: Files each stage writes whatever the backends (``layers`` adds one ``layers_<backend>.csv`` per backend).
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "export": (MANIFEST, *(onnx_name(p) for p in PRECISIONS), *(engine_name(p) for p in PRECISIONS),
               *(f"{engine_name(p)}.json" for p in PRECISIONS)),
    "validate": (PARITY_JSON, PARITY_CSV, PARITY_NPZ, PARITY_LAYERS_CSV),
    "latency": (LATENCY_CSV, LATENCY_JSON),
    "layers": (LAYERS_SUMMARY,),
    "buffers": (BUFFERS_JSON,),
    "pipeline": (PIPELINE_JSON,),
}


def stage_files(stage: str, backends: Iterable[str] = ()) -> tuple[str, ...]:
    """The run-folder files ``stage`` writes (empty for stages that write none here).

    ``backends``: every registered backend name (``list(seadeploy.backends.BACKENDS)``), for the per-backend files;
    the caller passes it because the backends themselves read run folders through this package.
    """
    per_backend = tuple(layers_csv(b) for b in backends) if stage == "layers" else ()
    return (*per_backend, *STAGE_FILES.get(stage, ()))
