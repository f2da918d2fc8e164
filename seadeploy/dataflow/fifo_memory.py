"""On-chip memory blocks a FIFO of ``depth`` words of ``width`` bits takes (docs/dataflow.md §4).

BRAM18 count as FINN's ``StreamingFIFO.bram_estimation`` (src/finn/custom_op/fpgadataflow/streamingfifo.py): the
18 Kb block's aspect ratios 16K×1, 8K×2, 4K×4, 2K×9, 1K×18, 512×36, a deep (> 512) FIFO kept at 1K×18; URAM as
its ``uram_estimation``: 4K × 72 bit blocks. A FIFO of at most :data:`SRL_MAX_DEPTH` words is built from shift
registers in LUTs and takes no block (``max_qsrl_depth`` of FINN's InsertAndSetFIFODepths,
src/finn/transformation/fpgadataflow/set_fifo_depths.py).
"""

from __future__ import annotations

import math

SRL_MAX_DEPTH = 256


def bram18(depth: int, width: int) -> int:
    """BRAM18 blocks of a ``depth`` × ``width``-bit FIFO (0 for an empty one)."""
    if depth <= 0 or width <= 0:
        return 0
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / 9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / 18)
    return math.ceil(depth / 512) * math.ceil(width / 36)


def uram(depth: int, width: int) -> int:
    """URAM blocks (4096 × 72 bit) of a ``depth`` × ``width``-bit FIFO."""
    if depth <= 0 or width <= 0:
        return 0
    return math.ceil(depth / 4096) * math.ceil(width / 72)


def blocks(depth: int, width: int) -> tuple[int, int]:
    """(BRAM18, URAM) of a FIFO, each the whole FIFO in that memory; (0, 0) for a shift-register FIFO."""
    if depth <= SRL_MAX_DEPTH:
        return 0, 0
    return bram18(depth, width), uram(depth, width)
