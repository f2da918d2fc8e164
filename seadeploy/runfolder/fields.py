"""Type checks for the fields of run-folder files: a wrong type or an unparsable value is one ``InputError``.

Every reader in :mod:`seadeploy.runfolder` checks what it returns with these, so a hand-edited or foreign file
fails at the door (exit 2, naming the file, the field and what was expected) instead of as a traceback deep in
a stage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from seadeploy.errors import InputError

NUMBER = "a number"
INTEGER = "an integer"
TEXT = "text"
BOOL = "true/false"
OBJECT = "an object"
LIST = "a list"


def _is(kind: str, value: Any) -> bool:
    if kind == NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == OBJECT:
        return isinstance(value, dict)
    if kind == LIST:
        return isinstance(value, list)
    raise ValueError(f"unknown field kind {kind!r}")  # programming error


def check_field(where: str, name: str, value: Any, kind: str, *, optional: bool = False) -> None:
    """Raise ``InputError`` unless ``value`` is of ``kind`` (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    if not _is(kind, value):
        raise InputError(f"'{where}' has {name} = {_show(value)}, expected {kind}; re-run the stage that writes it")


def check_fields(where: str, data: Mapping[str, Any], kinds: Mapping[str, str], *,
                 optional: Iterable[str] = ()) -> None:
    """``check_field`` for every key of ``kinds`` present in ``data`` (keys in ``optional`` may also be None)."""
    opt = set(optional)
    for name, kind in kinds.items():
        if name in data:
            check_field(where, name, data[name], kind, optional=name in opt)


def check_list_of(where: str, name: str, value: Any, kind: str) -> None:
    check_field(where, name, value, LIST)
    for i, item in enumerate(value):
        check_field(where, f"{name}[{i}]", item, kind)


def check_columns(path: Path, frame: pd.DataFrame, numeric: Iterable[str] = (), boolean: Iterable[str] = (),
                  required: Iterable[str] = ()) -> pd.DataFrame:
    """Refuse a CSV frame that lacks ``required`` columns or holds text in a numeric / true-false column.

    Empty cells are allowed (a value not measured); anything else in a numeric column must parse as a number.
    """
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"'{path.name}' lacks columns {', '.join(missing)}; re-run the stage that writes it")
    for col in numeric:
        if col not in frame.columns or pd.api.types.is_numeric_dtype(frame[col]):
            continue
        parsed = pd.to_numeric(frame[col], errors="coerce")
        bad = frame[col][parsed.isna() & frame[col].notna()]
        if len(bad):
            raise InputError(f"'{path.name}' has {_show(bad.iloc[0])} in its numeric column '{col}' "
                             f"(row {int(bad.index[0]) + 1}); re-run the stage that writes it")
        frame[col] = parsed
    for col in boolean:
        if col not in frame.columns or pd.api.types.is_bool_dtype(frame[col]):
            continue
        values = frame[col].dropna()
        bad = values[~values.astype(str).str.lower().isin({"true", "false", "1", "0", "1.0", "0.0"})]
        if len(bad):
            raise InputError(f"'{path.name}' has {_show(bad.iloc[0])} in its true/false column '{col}'; "
                             "re-run the stage that writes it")
    return frame


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
