"""FIFOs at pixel granularity: zero-stall depths, leads, memory blocks, given depths and the FINN depth file.

Per input edge of every stage (join operands, window inputs, streams): the steady-state zero-stall depth in
positions (the most positions resident at once over several frames, the arriving one included; a position leaves
when the last output position that reads it starts), the first frame's depth, and the *lead*: that depth in the
order-keeping infinite-speed limit — the positions an early operand must hold before the late one can exist; a
FIFO below its lead deadlocks or, where other FIFOs on its path have slack, stalls (docs/dataflow.md §3). A window's depth includes its sliding-window buffer of ``(k−1)·W + k`` positions,
which FINN builds inside the window generator; the FIFO in front of it is the rest.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seadeploy import fileio
from seadeploy.dataflow.arrival import POOL_OPS, window_spec
from seadeploy.dataflow.bounded import read_depth_spec
from seadeploy.dataflow.fifo_memory import blocks
from seadeploy.dataflow.fifos import peak_resident
from seadeploy.dataflow.pixel import PixelDesign, Stage, Timing
from seadeploy.errors import InputError
from seadeploy.graphs.ops import WINDOW_OPS

FIFO_COLUMNS = ["node", "op_type", "kind", "block", "operand", "input_index", "H", "W", "C", "skew_cycles",
                "buffer_positions", "buffer_rows", "buffer_elements", "attention_elements", "lead_positions", "lead_capped",
                "lead_rows", "fifo_positions", "fifo_rows", "fifo_elements", "window_positions", "words_per_position",
                "word_bits", "fifo_words", "fifo_bits", "fifo_bytes", "dtype_bytes", "in_fifo_words", "bram18", "uram"]


def window_buffer(st: Stage, shapes: dict, j: int) -> int:
    """Positions a sliding-window generator holds for input ``j``: ``(k_h−1)·W_in + k_w`` (0 for a 1×1 window or a
    non-window input; FINN convolutioninputgenerator's line buffer)."""
    n = st.node
    if j != 0 or n.op_type not in WINDOW_OPS:
        return 0
    x, y = shapes[n.input[0]][0], shapes[n.output[0]][0]
    if len(x) != 4:
        return 0
    w = shapes[n.input[1]][0] if n.op_type not in POOL_OPS else None
    (kh, *_), (kw, *_) = window_spec(n, x, y, w)
    return 0 if kh * kw == 1 else (kh - 1) * x[3] + kw


def resident_peak(arrive: np.ndarray, release: np.ndarray) -> int:
    """``max_τ #{p : arrive_p ≤ τ < release_p}`` with exact comparisons (at least 1): the positions a FIFO holds at
    once in the order-keeping limit (:func:`~seadeploy.dataflow.pixel.ordered_limit`), where the spacing of
    positions released together is far below any tolerance."""
    if not arrive.size:
        return 0
    a, c = np.sort(arrive), np.sort(release)
    return int(max(1, np.max(np.searchsorted(a, a, side="right") - np.searchsorted(c, a, side="right"))))


def _geometry(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) >= 3:
        return int(np.prod(shape[2:-1])), shape[-1], shape[1]
    return 1, 1, int(np.prod(shape[1:])) if len(shape) > 1 else 1


def word_elements(d: PixelDesign, st: Stage, tensor: str) -> int:
    """Elements per word on an edge: the consumer's read width where it reads by SIMD / window PE (MVAU, VVAU,
    pooling, padding), else the producer's PE (the graph input: the consumer's width)."""
    if st.fold.kind in ("mvau", "vvau", "pool", "pad"):
        return st.fold.in_width()
    prod = next((s for s in d.stages if tensor in s.node.output), None)
    while prod is not None and prod.fold.kind == "move" and prod.edges:
        prod = next((s for s in d.stages if prod.edges[0].tensor in s.node.output), None)
    return prod.fold.pe if prod is not None else st.fold.in_width()


def fifo_table(d: PixelDesign, steady: Timing, zero: Timing, dtype_bits: int) -> pd.DataFrame:
    """One row per input edge of every stage (see the module)."""
    g = d.graph
    rows = []
    for st in d.stages:
        joins = len(st.edges) >= 2
        for e in st.edges:
            a, rel = steady.arrive[e.tensor], steady.release[(st.name, e.index)]
            fifo = peak_resident(a, rel)
            first = peak_resident(a[:e.n], rel[:e.n])
            # Never above the zero-stall depth: where it would be, FIFOs upstream on the same path (a strided
            # layer's input) hold the rest at the computed depths.
            lead_inf = resident_peak(zero.arrive[e.tensor], zero.release[(st.name, e.index)])
            lead = min(lead_inf, fifo)
            skew = float(np.max(rel[-e.n:] - a[-e.n:])) if e.n else 0.0
            H, W, C = _geometry(g.base.shape(e.tensor))
            win = window_buffer(st, g.shapes, e.index)
            width = max(1, min(word_elements(d, st, e.tensor), C))
            wpp = math.ceil(C / width)
            words = fifo * wpp
            in_words = max(fifo - win, 1) * wpp
            n_bram, n_uram = blocks(in_words, width * dtype_bits)
            kind = "join" if joins else "window" if win else "stream"
            block = g.blocks.get(st.name)
            rows.append({"node": st.name, "op_type": st.node.op_type, "kind": kind, "block": block,
                         "operand": e.tensor, "input_index": e.index, "H": H, "W": W, "C": C, "skew_cycles": skew,
                         "buffer_positions": first, "buffer_rows": first / W, "buffer_elements": first * C,
                         "attention_elements": fifo * C if joins and block else 0,
                         "lead_positions": lead, "lead_capped": lead_inf > fifo, "lead_rows": lead / W, "fifo_positions": fifo, "fifo_rows": fifo / W,
                         "fifo_elements": fifo * C, "window_positions": win, "words_per_position": wpp,
                         "word_bits": width * dtype_bits, "fifo_words": words, "fifo_bits": fifo * C * dtype_bits,
                         "fifo_bytes": math.ceil(fifo * C * dtype_bits / 8), "dtype_bytes": dtype_bits / 8,
                         "in_fifo_words": in_words, "bram18": n_bram, "uram": n_uram})
    return pd.DataFrame(rows, columns=FIFO_COLUMNS)


def fifo_memory(fifos: pd.DataFrame) -> dict:
    """Totals: the FIFOs in front of the layers (bits, BRAM18, URAM) and the window generators' line buffers."""
    win_bits = int((fifos["window_positions"] * fifos["C"] * fifos["dtype_bytes"] * 8).sum()) if len(fifos) else 0
    in_bits = int((fifos["in_fifo_words"] * fifos["word_bits"]).sum()) if len(fifos) else 0
    return {"fifo_bits": in_bits, "fifo_bytes": math.ceil(in_bits / 8), "bram18": int(fifos["bram18"].sum()),
            "uram": int(fifos["uram"].sum()), "window_buffer_bits": win_bits,
            "total_bits": in_bits + win_bits, "fifos": len(fifos)}


def attention_table(fifos: pd.DataFrame, blocks: list[str]) -> pd.DataFrame:
    """Per attention block: its bypass FIFO (the scale join's feature-map operand) in elements, bits and blocks."""
    rows = []
    for b in blocks:
        part = fifos[(fifos["block"] == b) & (fifos["kind"] == "join")]
        top = part.sort_values("fifo_elements").iloc[-1] if len(part) else None
        rows.append({"block": b, "node": None if top is None else top["node"],
                     "bypass_positions": 0 if top is None else int(top["fifo_positions"]),
                     "bypass_rows": 0.0 if top is None else float(top["fifo_rows"]),
                     "bypass_elements": 0 if top is None else int(top["fifo_elements"]),
                     "bypass_bits": 0 if top is None else int(top["fifo_bits"]),
                     "bram18": 0 if top is None else int(top["bram18"]), "uram": 0 if top is None else int(top["uram"])})
    return pd.DataFrame(rows, columns=["block", "node", "bypass_positions", "bypass_rows", "bypass_elements",
                                       "bypass_bits", "bram18", "uram"])


def depth_file(fifos: pd.DataFrame) -> dict:
    """``{node: {"inFIFODepths": [words per input]}}`` (FINN's folding-config attribute; a window input's depth
    leaves out the window generator's own line buffer)."""
    out: dict[str, dict[str, list[int]]] = {}
    for node, part in fifos.groupby("node", sort=False):
        n = int(part["input_index"].max()) + 1
        depths = [0] * n
        for r in part.itertuples():
            depths[int(r.input_index)] = int(r.in_fifo_words)
        out[str(node)] = {"inFIFODepths": depths}
    return out


def write_depth_file(fifos: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write :func:`depth_file` atomically."""
    return fileio.write_json(Path(path), depth_file(fifos))


def resolve_depths(fifos: pd.DataFrame, spec: str | int | dict | None) -> dict[tuple[str, int], int]:
    """FIFO capacities in positions (window buffer included) per ``(node, input index)``: ``auto`` (the zero-stall
    depths), ``N`` (each FIFO in front of a layer capped at N words), or a depth file / dict in the
    :func:`depth_file` format (words; unlisted FIFOs at auto). ``words`` hold ``ceil(words / words per position)``
    positions, at least one."""
    auto = {(r.node, int(r.input_index)): int(r.fifo_positions) for r in fifos.itertuples()}
    if spec is None or spec == "auto":
        return auto
    info = {(r.node, int(r.input_index)): (int(r.words_per_position), int(r.window_positions), int(r.in_fifo_words))
            for r in fifos.itertuples()}

    def positions_of(key, words):
        wpp, win, _ = info[key]
        return max(1, math.ceil(words / wpp)) + win

    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        cap = int(spec)
        return {k: min(v, positions_of(k, cap)) for k, v in auto.items()}
    if isinstance(spec, str):
        spec = read_depth_spec(spec, "words")
    if not isinstance(spec, dict):
        raise InputError('FIFO depths must be a JSON object {"node": {"inFIFODepths": [words, ...]}}')
    out = dict(auto)
    for node, val in spec.items():
        depths = val.get("inFIFODepths") if isinstance(val, dict) else None
        if not isinstance(depths, list) or not all(isinstance(v, int) and v >= 0 for v in depths):
            raise InputError(f"FIFO depths of '{node}' must be {{\"inFIFODepths\": [words ≥ 0, ...]}}, got {val!r}")
        for j, words in enumerate(depths):
            if (node, j) in info:
                out[(node, j)] = positions_of((node, j), words)
            elif words:
                raise InputError(f"FIFO depths name '{node}' input {j}, which is not a streamed input of a node here")
    return out


def bounded_table(fifos: pd.DataFrame, depths: dict[tuple[str, int], int], service: dict[str, float]) -> pd.DataFrame:
    """Per FIFO at the given capacity: ``deadlock`` below the lead (unless the lead is capped at the zero-stall depth:
    then FIFOs upstream hold the rest and it stalls), ``stall`` below the zero-stall depth, and a
    first-order estimate of the producer's blocked cycles per frame: each missing position costs one service time
    of the consumer (``service``: cycles per output position per node)."""
    rows = []
    for r in fifos.itertuples():
        d = depths.get((r.node, int(r.input_index)), int(r.fifo_positions))
        deficit = max(0, int(r.fifo_positions) - d)
        rows.append({"node": r.node, "operand": r.operand, "kind": r.kind, "depth_positions": d,
                     "zero_stall_positions": int(r.fifo_positions), "lead_positions": int(r.lead_positions),
                     "deadlock": bool(d < r.lead_positions and not r.lead_capped), "stall": bool(d < r.fifo_positions),
                     "deficit_positions": deficit,
                     "est_blocked_cycles_per_frame": deficit * float(service.get(r.node, 0.0))})
    return pd.DataFrame(rows, columns=["node", "operand", "kind", "depth_positions", "zero_stall_positions",
                                       "lead_positions", "deadlock", "stall", "deficit_positions",
                                       "est_blocked_cycles_per_frame"])
