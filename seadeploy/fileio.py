"""Safe file writes and reads: atomic replacement (never a half-written file), stale temporary files of killed
writers swept, JSON that refuses NaN, checksums, and the library versions recorded beside results."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seadeploy.errors import ConfigError, InputError

_OWNER = re.compile(r"[.-](\d+)-[A-Za-z0-9_]+(?:\.tmp)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else
    return True


def sweep_stale(folder: str | os.PathLike, patterns: tuple[str, ...] | list[str]) -> list[Path]:
    """Remove the litter a killed run left in ``folder``: entries matching ``patterns`` (globs such as
    ``.export-*`` staging folders or ``.<name>.*.tmp`` files) whose owner process is gone.

    Temp names carry the writing process id (``.<name>.<pid>-<random>.tmp``, ``.export-<pid>-<random>``), so
    the files of a run still alive — this process or another — are left alone; names without an id are
    from an older version and always stale. Returns what was removed. Never raises: cleanup must not turn
    a good run into a failed one.
    """
    removed: list[Path] = []
    base = Path(folder)
    if not base.is_dir():
        return removed
    for pattern in patterns:
        for entry in base.glob(pattern):
            m = _OWNER.search(entry.name)
            if m and _pid_alive(int(m.group(1))):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def check_out_folder(path: str | os.PathLike | None, flag: str = "--out", file: bool = False) -> None:
    """Refuse, before any work, an output folder that is a file or lies under a file (``ConfigError``);
    ``file=True``: ``path`` is an output *file*, which must not be a folder nor lie under a file."""
    if path is None:
        return
    p = Path(path)
    if file and p.is_dir():
        raise ConfigError(f"{flag} '{p}' is a folder; give a file name (e.g. {p / 'report.xml'})")
    for q in (p.parent, *p.parent.parents) if file else (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                what = "is a file" if q == p else f"lies under the file '{q}'"
                raise ConfigError(f"{flag} '{p}' {what}; give {'a path in a folder' if file else 'a folder'}")
            return


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or exception never leaves a half-written file under the final name; the temp file of an
    earlier, killed write of the same name is removed first (:func:`sweep_stale`).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(final.parent, (f".{glob.escape(final.name)}.*.tmp",))
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise InputError(f"cannot write to '{final.parent}': {exc.strerror or exc}. Choose a writable --out folder") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN → null)."""
    return write_text(path, json.dumps(json_safe(obj), indent=2, default=str) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` ready for JSON: NaN → None, dict keys as strings, tuples as lists, 0-d arrays/tensors as numbers."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return json_safe(obj.item())
    return obj


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising ``InputError`` for a missing or corrupt one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"'{p}' does not exist")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"'{p}' is not valid JSON ({exc}); re-create it with the stage that writes it") from exc


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide numerics, for manifests and checkpoints."""
    import importlib.metadata as md  # noqa: PLC0415  ~40 ms: kept off the CLI's start-up path (cli imports fileio)

    out = {"python": platform.python_version()}
    for name in ("seadeploy", "torch", "numpy", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "tensorrt"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out
