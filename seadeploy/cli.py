"""Shared command-line pieces: argument groups, ``--attn-arg`` parsing and error → exit-code mapping.

Exit codes (ARCHITECTURE.md §3): 0 success, 1 a check failed, 2 bad input or usage, 3 a requested
backend or device is unavailable. ``run_main`` guarantees a one-line message and no traceback for
every :class:`~seadeploy.errors.SeadeployError`; ``SEADEPLOY_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from seadeploy.errors import ConfigError, SeadeployError

STAGES = ("train", "export", "validate", "profiling", "compare", "models", "reports")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ``ConfigError`` (exit 2 via ``run_main``) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def parse_value(text: str) -> Any:
    """Parse a ``--attn-arg`` value: Python literals (``7``, ``0.5``, ``(7, 7)``, ``[2, 2, 4]``,
    ``False``, ``None``), ``true``/``false``, else the plain string (``max``, ``tanh``)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def parse_kv_args(items: Sequence[str] | None, flag: str = "--attn-arg") -> dict[str, Any]:
    """Turn ``["tile=7", "squeeze=max"]`` into ``{"tile": 7, "squeeze": "max"}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got '{item}' (example: {flag} tile=7)")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def add_model_args(parser: argparse.ArgumentParser, required: bool = False) -> argparse._ArgumentGroup:
    """The shared model flags: ``--model --attn --attn-arg --input-size --num-classes``."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", required=required, help="backbone name (python -m seadeploy.models list)")
    g.add_argument("--attn", default=None, help="attention name: none, se, tse, sb, spse, rgse, cbam")
    g.add_argument("--attn-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="attention option, repeatable (tile=7, squeeze=max, reduction=16, tile=[2,2,4,7])")
    g.add_argument("--input-size", type=int, default=None, help="square input resolution (default: the model's)")
    g.add_argument("--num-classes", type=int, default=None, help="number of output classes")
    return g


def add_common_args(parser: argparse.ArgumentParser, out: bool = True) -> None:
    """``--out``, ``--json`` and ``--device``."""
    if out:
        parser.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder to write")
    parser.add_argument("--json", action="store_true", help="print the machine-readable summary as JSON")
    parser.add_argument("--device", default="cpu", help="torch device for PyTorch work (cpu, cuda, cuda:1)")


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (NaN written as null)."""
    print(json.dumps(_clean(obj), indent=2, default=str))


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _clean(obj.item())
    return obj


def run_main(fn: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Call ``fn(argv)`` and map seadeploy errors to exit codes with a one-line message on stderr."""
    try:
        code = fn(list(argv) if argv is not None else None)
        return int(code or 0)
    except SeadeployError as exc:
        if os.environ.get("SEADEPLOY_DEBUG"):
            raise
        first = str(exc).strip() or type(exc).__name__
        print(f"error: {first}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def progress_enabled(json_mode: bool = False) -> bool:
    """Progress bars only on a terminal, never in CI or with ``--json``."""
    return not json_mode and not os.environ.get("CI") and sys.stderr.isatty()


def entry_point(argv: Sequence[str] | None = None) -> int:
    """``seadeploy <stage> ...`` → ``python -m seadeploy.<stage> ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in STAGES:
        msg = f"usage: seadeploy {{{','.join(STAGES)}}} ...  (each stage has --help)"
        if args and args[0] not in ("-h", "--help"):
            print(f"error: unknown stage '{args[0]}'. Valid choices: {', '.join(STAGES)}", file=sys.stderr)
            return 2
        print(msg)
        return 0
    name = f"seadeploy.{args[0]}" if args[0] == "compare" else f"seadeploy.{args[0]}.__main__"
    return int(importlib.import_module(name).main(args[1:]) or 0)
