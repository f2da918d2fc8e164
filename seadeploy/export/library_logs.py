"""Library log lines kept off the user's terminal: collected while a library call runs, then recorded.

ONNX Runtime's quantizer reports through the root logger (``logging.warning``), which prints ``WARNING:root:...``
lines on stderr between seadeploy's own output; a stage records them (the manifest's quantization record) instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def captured_root_logs() -> Iterator[list[str]]:
    """Collect what is logged to the root logger (as ``"text (×n)"`` lines) instead of printing it.

    Hand-written because ``logging.warning`` from a library configures a stderr handler on first use; the root's
    handlers are swapped for a collecting one for the duration and restored after.
    """
    records: dict[str, int] = {}

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            records[text] = records.get(text, 0) + 1

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [_Collect(logging.WARNING)]
    out: list[str] = []
    try:
        yield out
    finally:
        root.handlers[:] = saved
        out.extend(f"{t} (×{n})" if n > 1 else t for t, n in records.items())
