"""Shared command-line pieces: argument groups, ``--attn-arg`` parsing and error → exit-code mapping.

Exit codes (docs/architecture.md §3, docs/promises.md): 0 success, 1 a check failed, 2 bad input, usage or
resources (disk full, out of memory), 3 a requested backend or device is unavailable, 130 interrupted.
``run_main`` guarantees a one-line message and no traceback for every
:class:`~seadeploy.errors.SeadeployError`, and is the safety net for disk-full and out-of-memory
failures wherever they happen; ``SEADEPLOY_DEBUG=1`` shows the traceback.

The typed flag validators (:func:`positive_int`, :func:`non_negative_int`, :func:`positive_float`,
:func:`non_negative_float`, :func:`finite_float`, :func:`device`) are argparse ``type=`` callables shared by
every stage, so a bad value is refused while parsing, before any file is read or written.
"""

from __future__ import annotations

import argparse
import ast
import errno
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from seadeploy.errors import ConfigError, SeadeployError
from seadeploy.fileio import json_safe
from seadeploy.parity.rules import RuleSet

STAGES = ("train", "export", "validate", "profiling", "compare", "models", "reports", "convert", "doctor")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises ``ConfigError`` (exit 2 via ``run_main``) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message} (see --help)")


# ------------------------------------------------------------------------------------------ validators
# argparse turns the ValueError/ArgumentTypeError of a ``type=`` callable into "argument --flag: <message>",
# which ArgumentParser.error reports as one ConfigError line (exit 2).
def _number(text: str, kind: type) -> Any:
    try:
        value = kind(str(text).strip())
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got '{text}'") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    return value


def positive_int(text: str) -> int:
    """``type=`` for counts and sizes: an integer ≥ 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """``type=`` for an integer ≥ 0 (0 = off)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {value}")
    return value


def finite_float(text: str) -> float:
    """``type=`` for any finite number (no nan, inf)."""
    return _number(text, float)


def positive_float(text: str) -> float:
    """``type=`` for a finite number > 0 (durations, tolerances)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """``type=`` for a finite number ≥ 0 (warm-up seconds, probabilities)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {value}")
    return value


DEVICE_FORMS = "cpu, cuda, cuda:N, mps"
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def device(text: str) -> str:
    """``type=`` for a torch device string: cpu, cuda, cuda:N or mps (availability is checked where it is used)."""
    value = str(text).strip().lower()
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a device; valid forms: {DEVICE_FORMS}")
    return value


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
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r} (example: {flag} tile=7)")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def add_model_args(parser: argparse.ArgumentParser, required: bool = False, onnx: bool = False) -> argparse._ArgumentGroup:
    """The shared model flags (a model source, seadeploy/models/source.py): ``--model --model-arg --weights --attn
    --attn-arg --input-size --num-classes --mean --std`` (+ ``--onnx FILE`` when the stage takes ONNX files)."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", required=required, metavar="SOURCE",
                   help="zoo name (python -m seadeploy.models list), package.module:factory, path/file.py:factory, "
                        "timm:NAME or torchvision:NAME")
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="factory argument, repeatable (width=8, pretrained=false)")
    g.add_argument("--weights", default=None, metavar="FILE",
                   help="weights: .safetensors or a PyTorch state dict (loaded with weights_only=True)")
    g.add_argument("--mean", default=None, help="input normalisation mean, e.g. 0.485,0.456,0.406 (default: the dataset's)")
    g.add_argument("--std", default=None, help="input normalisation std, e.g. 0.229,0.224,0.225 (default: the dataset's)")
    if onnx:
        g.add_argument("--onnx", default=None, metavar="FILE", help="an ONNX file instead of a model or run folder")
    g.add_argument("--attn", default=None, help="attention name: none, se, tse, sb, spse, rgse, cbam")
    g.add_argument("--attn-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="attention option, repeatable (tile=7, squeeze=max, reduction=16, tile=[2,2,4,7])")
    g.add_argument("--input-size", type=positive_int, default=None,
                   help="square input resolution (default: the model's; at most 16x the model's default)")
    g.add_argument("--num-classes", type=positive_int, default=None, help="number of output classes")
    return g


def add_common_args(parser: argparse.ArgumentParser, out: bool = True) -> None:
    """``--out``, ``--json`` and ``--device``."""
    if out:
        parser.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder to write")
    parser.add_argument("--json", action="store_true", help="print the machine-readable summary as JSON")
    parser.add_argument("--device", type=device, default="cpu", help=f"torch device for PyTorch work ({DEVICE_FORMS})")


def print_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (NaN written as null)."""
    print(json.dumps(json_safe(obj), indent=2, default=str))


RESOURCE_EXIT = 2  # disk full / out of memory: the input asked for more than this machine has (docs/promises.md)
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_OOM = re.compile(r"out of memory|not enough memory|can't allocate memory|cannot allocate memory|unable to allocate|"
                  r"failed to allocate", re.IGNORECASE)
_NO_SPACE = re.compile(r"no space left on device|disk quota exceeded|os error 28\b", re.IGNORECASE)
_BYTES = re.compile(r"(\d[\d,]*)\s*bytes", re.IGNORECASE)
_SIZE = re.compile(r"(?:tried to allocate|allocate)\s+([\d.]+\s*[KMGTP]i?B)", re.IGNORECASE)


def one_line(text: str) -> str:
    """The message on one line: lines joined with ' | ' (a library's multi-line text stays readable)."""
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def resource_message(exc: BaseException) -> str | None:
    """The one-line message for a disk-full or out-of-memory failure, with the size asked for where known;
    ``None`` for any other exception."""
    text = str(exc)
    os_full = isinstance(exc, OSError) and exc.errno in _DISK_FULL
    if os_full or _NO_SPACE.search(text):  # libraries (safetensors, torch.save) re-raise ENOSPC as their own types
        name = getattr(exc, "filename", None) if os_full else None
        where = f" writing '{name}'" if name else ""
        return (f"disk full{where} (no space left on device); free space or choose an --out folder on another disk. "
                "Nothing was half-written: files are renamed into place only when complete")
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and _OOM.search(text)):
        size = ""
        if m := _BYTES.search(text):
            size = f" ({_gib(int(m.group(1).replace(',', '')))} requested)"
        elif m := _SIZE.search(text):
            size = f" ({m.group(1)} requested)"
        return (f"out of memory{size}; lower --batch / --batch-size / --input-size, or use a machine with more "
                "memory")
    return None


def run_main(fn: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Call ``fn(argv)`` and map seadeploy errors to exit codes with a one-line message on stderr.

    Also the central safety net for resources: disk full (``ENOSPC``/``EDQUOT``) and out of memory
    (``MemoryError``, torch's "out of memory" / "can't allocate memory") exit ``RESOURCE_EXIT`` (2) with one line.
    """
    try:
        code = fn(list(argv) if argv is not None else None)
        return int(code or 0)
    except SeadeployError as exc:
        if os.environ.get("SEADEPLOY_DEBUG"):
            raise
        print(f"error: {one_line(exc) or type(exc).__name__}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - only disk-full and out-of-memory are handled here, the rest re-raised
        message = resource_message(exc)
        if message is None or os.environ.get("SEADEPLOY_DEBUG"):
            raise
        print(f"error: {message}", file=sys.stderr)
        return RESOURCE_EXIT
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
    name = f"seadeploy.{args[0]}.__main__"
    return int(importlib.import_module(name).main(args[1:]) or 0)


# -------------------------------------------------------------------------------------------- parity rules
def add_rule_args(parser: Any) -> None:
    """``--atol --rtol --min-cosine --min-top1`` (Polygraphy-style bounds that replace the documented defaults)."""
    parser.add_argument("--atol", type=non_negative_float, default=None,
                        help="absolute tolerance, times each sample's output scale: |out-ref| <= atol*max(1,max|ref_i|) "
                             "+ rtol*|ref| (makes the element-wise check binding at every precision)")
    parser.add_argument("--rtol", type=non_negative_float, default=None, help="relative tolerance (see --atol)")
    parser.add_argument("--min-cosine", type=finite_float, default=None, help="per-sample cosine floor (mean over samples)")
    parser.add_argument("--min-top1", type=finite_float, default=None, help="top-1 agreement floor on labelled samples (0-1)")


def any_rule_args(args: Any) -> bool:
    """Whether any :func:`add_rule_args` flag was given."""
    return any(getattr(args, k, None) is not None for k in ("atol", "rtol", "min_cosine", "min_top1"))


def rules_from_args(args: Any, trained: bool | None = None) -> RuleSet:
    """The :class:`RuleSet` of parsed :func:`add_rule_args` flags."""
    rs = RuleSet(trained=trained, atol=args.atol, rtol=args.rtol, min_cosine=args.min_cosine, min_top1=args.min_top1)
    rs.rule("fp32", "data")  # validates the values (ConfigError, exit 2)
    return rs
