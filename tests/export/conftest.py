"""The export tests' process pool of zoo exports (the tiny net and its export are suite-wide: tests/conftest.py)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from seadeploy.export.runner import export_model
from seadeploy.models.source import ModelSource


def _export(spec, out, opts):
    """``export_model`` in a pool worker: the weights come from ``opts.seed`` (export seeds the model it builds)."""
    return export_model(ModelSource.from_spec(spec), out, opts)


@pytest.fixture(scope="session")
def zoo_exports(request, tmp_path_factory):
    """Start the export of every selected zoo case (tests/export/test_zoo_export.py, a ``case`` parameter with
    ``key``, ``spec()``, ``options()`` and ``size``) at once in a process pool, one worker per CPU; maps
    ``case.key`` → ``(out_dir, future)``. Each case is exported once, whichever tests share it; nothing starts when
    no zoo case is selected."""
    selected = {}
    for item in request.session.items:
        case = getattr(item, "callspec", None) and item.callspec.params.get("case")
        if case is not None and "zoo_exports" in getattr(item, "fixturenames", ()):
            selected[case.key] = case
    if not selected:
        yield {}
        return
    root = tmp_path_factory.mktemp("zoo")
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=torch.set_num_threads, initargs=(1,))
    jobs = {}
    for key, case in sorted(selected.items(), key=lambda kv: -kv[1].size):  # the larger inputs (slowest) first
        out = root / key
        jobs[key] = (out, pool.submit(_export, case.spec(), out, case.options()))
    yield jobs
    pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def _start_zoo_exports_early(zoo_exports):
    """Overlap the zoo exports with the other export tests (they use one core; the pool the rest)."""
    return zoo_exports
