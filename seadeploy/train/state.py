"""Resumable training state (``train_state.pt``) and random-number-generator snapshots.

The state file holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no arbitrary unpickling). It is written atomically after every
complete epoch, last of the epoch's files: a run killed at any moment resumes from the last epoch
whose state reached the disk, and no file is ever half-written.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seadeploy.errors import InputError
from seadeploy.fileio import atomic_path
from seadeploy.runfolder import CHECKPOINT, TRAIN_STATE

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
    if not Path(run_dir).is_dir():
        raise InputError(f"cannot resume: run folder '{run_dir}' does not exist")
    if not path.is_file():
        # A run killed before its first epoch's state reached the disk may have left checkpoints: --overwrite
        # starts it again (a plain re-run would refuse the non-empty folder), so the message leads out.
        raise InputError(f"cannot resume: '{path}' does not exist (no epoch of that run completed); start the run "
                         f"again with the same flags and --overwrite --out {run_dir} instead of --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a refused object: plain garbage ("operand 103")
            raise InputError(f"cannot resume: '{path}' is corrupt or not a seadeploy training state (not a "
                             "readable tensor file); start the run again with --overwrite") from exc
        # weights_only refused a global: a crafted or foreign file, never loaded (torch's own 3-line message
        # advises weights_only=False, which seadeploy never does)
        raise InputError(f"cannot resume: '{path}' is refused: it contains non-tensor objects that seadeploy never "
                         "unpickles (it was not written by seadeploy's train); start the run again with "
                         "--overwrite") from exc
    except Exception as exc:  # torch raises many types for corrupt files (zip, runtime errors)
        raise InputError(f"cannot resume: '{path}' is corrupt or not a seadeploy training state "
                         f"({_first_line(exc)})") from exc
    if not isinstance(state, dict) or state.get("format_version") != STATE_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise InputError(f"cannot resume: '{path}' has format version {version}, expected {STATE_VERSION}")
    check_state_fields(state, path)
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# field → the types it must have; checked before any is used, so a damaged file fails in one line
STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "epoch": (int,), "config": (dict,), "model": (dict,), "optimizer": (dict,), "scheduler": (dict,),
    "scaler": (dict,), "history": (list,), "best": (dict,), "rng": (list,), "world_size": (int,),
    "steps_per_epoch": (int,)}


def check_state_fields(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise ``InputError`` naming the first missing or mistyped field of a training state."""
    for key, kinds in STATE_FIELDS.items():
        if key not in state:
            raise InputError(f"cannot resume: '{path}' has no '{key}' field; it is damaged or not a seadeploy "
                             "training state; start the run again with --overwrite")
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise InputError(f"cannot resume: '{path}' field '{key}' is a {type(value).__name__}, expected "
                             f"{' or '.join(k.__name__ for k in kinds)}; start the run again with --overwrite")
    if state["epoch"] < 0 or state["steps_per_epoch"] < 1 or state["world_size"] < 1:
        raise InputError(f"cannot resume: '{path}' has impossible counters (epoch {state['epoch']}, steps per epoch "
                         f"{state['steps_per_epoch']}, world size {state['world_size']}); start again with --overwrite")


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a checkpoint (of a finished or a killed run)."""
    return (Path(run_dir) / CHECKPOINT).is_file()
