"""Helpers of the fault suite (tests/test_faults*.py): run a stage in-process, snapshot a folder, build bad files.

Every bad input must give the documented exit code, exactly one stderr line starting with ``error:``, no
traceback, and leave every file of the folder it targets untouched (no file created, changed or removed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file

#: stage name → the module whose ``main(argv)`` runs it (each wraps its work in ``seadeploy.cli.run_main``)
STAGE_MODULES = {
    "train": "seadeploy.train.__main__",
    "export": "seadeploy.export.__main__",
    "validate": "seadeploy.validate.__main__",
    "profiling": "seadeploy.profiling.__main__",
    "reports": "seadeploy.reports.__main__",
    "compare": "seadeploy.compare.__main__",
    "models": "seadeploy.models.__main__",
}


def stage_main(stage: str) -> Callable[[list[str]], int]:
    """The stage's ``main``; imported when a case runs, so one stage's import error fails only its cases."""
    return importlib.import_module(STAGE_MODULES[stage]).main


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (size, sha256)}`` of every file under ``folder`` (hidden temp files included)."""
    out: dict[str, tuple[int, str]] = {}
    if not folder.exists():
        return out
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            out[str(p.relative_to(folder))] = (len(data), hashlib.sha256(data).hexdigest())
        elif not p.is_dir() and not p.is_symlink():
            out[str(p.relative_to(folder))] = (-1, "special")
    return out


@dataclasses.dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run_stage(stage: str, argv: list[str], capfd) -> Outcome:
    """Run ``stage`` in-process through its ``main`` and capture stdout/stderr at the file-descriptor level
    (so a library's own C++ log line would be seen too)."""
    capfd.readouterr()
    code = stage_main(stage)(list(argv))
    captured = capfd.readouterr()
    return Outcome(int(code), captured.out, captured.err)


def assert_one_line_error(o: Outcome, code: int, match: str | None = None, warnings: int = 0) -> None:
    """Exit ``code``, exactly one non-empty stderr line starting with ``error:`` (after exactly ``warnings`` lines
    starting with ``warning:``, for the cases where a warning is part of the story), no traceback."""
    assert "Traceback" not in o.err, o.err
    assert o.code == code, f"exit {o.code}, expected {code}; stderr: {o.err!r}"
    assert len(o.err_lines) == 1 + warnings, f"expected {1 + warnings} stderr line(s), got {o.err_lines!r}"
    assert all(line.startswith("warning: ") for line in o.err_lines[:warnings]), o.err_lines
    assert o.err_lines[-1].startswith("error: "), o.err_lines
    if match is not None:
        assert match.lower() in o.err_lines[-1].lower(), f"{match!r} not in {o.err_lines[-1]!r}"


# ------------------------------------------------------------------------------------------- bad files
def rewrite_checkpoint(path: Path, meta: Any = None, tensors: Callable[[dict], dict] | None = None,
                       raw_meta: str | None = None) -> None:
    """Rewrite a safetensors checkpoint in place with changed metadata and/or tensors (as a hostile user would)."""
    with safe_open(str(path), framework="pt") as f:
        old = json.loads((f.metadata() or {})["seadeploy"])
    state = load_file(str(path))
    if tensors is not None:
        state = tensors(state)
    if raw_meta is None:
        new = meta(old) if callable(meta) else old
        raw_meta = json.dumps(new)
    save_file(state, str(path), metadata={"seadeploy": raw_meta})


def edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# ------------------------------------------------------------------------------------------ kill -9
# Runs ``python -m seadeploy.<stage> ARGS`` and SIGKILLs itself at the Nth call of the patched function.
LAUNCHER = """
import os, signal, sys
stage, target, nth, args = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
calls = [0]
if target == "train_state":
    real = os.replace
    def replace(src, dst, *a, **k):
        if str(dst).endswith("train_state.pt"):
            calls[0] += 1
            if calls[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    os.replace = replace
else:  # "staging": killed as soon as export has made its .export-<pid>-* folder, long before its commit
    import tempfile
    real_mkdtemp = tempfile.mkdtemp
    def mkdtemp(*a, **k):
        path = real_mkdtemp(*a, **k)
        if os.path.basename(path).startswith(".export-"):
            open(os.path.join(path, "model.onnx"), "wb").write(b"half-written")
            os.kill(os.getpid(), signal.SIGKILL)
        return path
    tempfile.mkdtemp = mkdtemp
import importlib
main = importlib.import_module(f"seadeploy.{stage}.__main__").main
sys.exit(main(args))
"""


def killed_run(stage: str, target: str, nth: int, args: list[str]) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, stage, target, str(nth), *args], env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode


