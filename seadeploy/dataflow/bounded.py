"""Bounded FIFOs of the row model: depths from ``--fifo-depths`` and where they stall or deadlock."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from seadeploy.dataflow.pipeline import PipelineReport
from seadeploy.errors import InputError


def read_depth_spec(spec: str, unit: str) -> object:
    """The JSON a ``--fifo-depths FILE`` holds (one-line ``InputError`` when it is missing or not JSON); ``unit``
    names what a bare number would have meant (rows or words) for the message."""
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"--fifo-depths '{spec}' is neither auto, a number of {unit} nor an existing JSON file")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"FIFO depth file '{path}' is not JSON ({exc})") from None


def resolve_depths(report: PipelineReport, spec: str | int | dict | None) -> dict[tuple[str, int], int]:
    """FIFO depths in rows for every FIFO of ``report``: ``"auto"`` (the zero-stall depths), an int cap
    (``min(auto, N)``), a dict or a JSON file ``{"node/operand": rows}`` (unlisted FIFOs stay at auto; a
    ``"default"`` entry applies to them instead)."""
    auto = report.auto_depths()
    if spec is None or spec == "auto":
        return dict(auto)
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        cap = int(spec)
        return {k: min(v, cap) for k, v in auto.items()}
    if isinstance(spec, str):
        spec = read_depth_spec(spec, "rows")
    if not isinstance(spec, dict):
        raise InputError("FIFO depths must be a JSON object {\"node/operand\": rows}")
    by_name = {f"{r.node}/{r.operand}": (r.node, int(r.input_index)) for r in report.fifos.itertuples()}
    unknown = [k for k in spec if k not in by_name and k != "default"]
    if unknown:
        raise InputError(f"FIFO depths name {len(unknown)} FIFO(s) that hold no rows here (e.g. '{unknown[0]}'); "
                         f"the FIFOs are node/operand pairs, e.g. '{next(iter(by_name), 'conv/x')}'")
    out = {k: int(spec.get("default", v)) for k, v in auto.items()}
    for key, rows in spec.items():
        if key != "default":
            if not isinstance(rows, (int, float)) or rows < 0:
                raise InputError(f"FIFO depth of '{key}' must be a number of rows ≥ 0, got {rows!r}")
            out[by_name[key]] = int(rows)
    return out


def bounded_fifos(report: PipelineReport, depths: dict[tuple[str, int], int]) -> pd.DataFrame:
    """Per FIFO: the given depth against the zero-stall depth and the lead; ``deadlock`` where the depth
    cannot hold the lead, ``stall`` where it is below the zero-stall depth.
    ``deficit_rows`` × the consumer's row period is a first-order estimate of the producer's blocked cycles
    per frame (the simulator measures them)."""
    nodes = report.nodes.set_index("node") if len(report.nodes) else None
    period = report.figures["initiation_interval_cycles"]
    rows = []
    for r in report.fifos.itertuples():
        d = depths.get((r.node, int(r.input_index)), int(r.fifo_rows))
        rows_n = int(nodes.loc[r.node, "rows"]) if nodes is not None and r.node in nodes.index else 1
        deficit = max(0, int(r.fifo_rows) - d)
        rows.append({"node": r.node, "operand": r.operand, "kind": r.kind, "depth_rows": d,
                     "zero_stall_rows": int(r.fifo_rows), "lead_rows": float(r.lead_rows),
                     "deadlock": bool(d < r.lead_rows - 1e-9), "stall": bool(d < r.fifo_rows),
                     "deficit_rows": deficit, "est_blocked_cycles_per_frame": deficit * period / max(rows_n, 1)})
    return pd.DataFrame(rows, columns=["node", "operand", "kind", "depth_rows", "zero_stall_rows", "lead_rows",
                                       "deadlock", "stall", "deficit_rows", "est_blocked_cycles_per_frame"])
