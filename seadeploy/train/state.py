"""Resumable training state (``train_state.pt``) and random-number-generator snapshots.

The state file holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no arbitrary unpickling). It is written atomically after every
complete epoch, last of the epoch's files: a run killed at any moment resumes from the last epoch
whose state reached the disk, and no file is ever half-written.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seadeploy.artifacts import TRAIN_STATE, atomic_path
from seadeploy.errors import InputError

STATE_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Snapshot of the torch (CPU and CUDA), numpy and Python generators, as weights-only-loadable values."""
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_train_state(run_dir: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write ``RUN/train_state.pt``."""
    path = Path(run_dir) / TRAIN_STATE
    with atomic_path(path) as tmp:
        torch.save({"format_version": STATE_VERSION, **state}, tmp)
    return path


def load_train_state(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``RUN/train_state.pt`` with ``weights_only=True``.

    Raises:
        InputError: the folder has no state, or the file is corrupt or from another format version.
    """
    path = Path(run_dir) / TRAIN_STATE
    if not path.is_file():
        raise InputError(f"cannot resume: '{path}' does not exist (no epoch of that run completed). "
                         f"Start the run again without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files (pickle, zip, runtime errors)
        raise InputError(f"cannot resume: '{path}' is corrupt or not a seadeploy training state ({exc})") from exc
    if not isinstance(state, dict) or state.get("format_version") != STATE_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise InputError(f"cannot resume: '{path}' has format version {version}, expected {STATE_VERSION}")
    return state
