"""Paths recorded in run-folder files: relative to the folder, never absolute, never leaving it."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from seadeploy.errors import InputError
from seadeploy.runfolder.names import MANIFEST


def inside(run_dir: str | os.PathLike, rel: Any, what: str = "file") -> Path:
    """``run_dir / rel`` for a relative path that stays inside ``run_dir``.

    Raises:
        InputError: ``rel`` is not a string, is absolute, or leaves the folder (``..``, a link pointing out).
    """
    run = Path(run_dir)
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"'{run / MANIFEST}' records a {what} path {rel!r}, not a file name; re-run export")
    if PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise InputError(f"'{run / MANIFEST}' records the absolute {what} path '{rel}': run-folder paths must be "
                         "relative to the folder; re-run export")
    path = run / rel
    root = run.resolve()
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts or not path.resolve().is_relative_to(root):
        raise InputError(f"'{run / MANIFEST}' records the {what} path '{rel}', which leaves the run folder; "
                         "re-run export")
    return path


