"""Tile specs of tiled squeeze-excite: one home for parsing ``--tile`` / ``tile=`` values, used by the TSE module,
the PyTorch rewrite and the ONNX rewrite alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seadeploy.errors import ConfigError


def parse_tile(tile: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``7`` → ``(7, 7)``; ``(kh, kw)`` kept; anything < 1 or malformed raises ``ConfigError``."""
    if isinstance(tile, bool):
        raise ConfigError(f"tile must be an int or (kh, kw), got {tile!r}")
    if isinstance(tile, int | float) and float(tile).is_integer():
        kh = kw = int(tile)
    elif (
        isinstance(tile, tuple | list)
        and len(tile) == 2
        and all(isinstance(t, int | float) and not isinstance(t, bool) and float(t).is_integer() for t in tile)
    ):
        kh, kw = int(tile[0]), int(tile[1])
    else:
        raise ConfigError(
            f"tile must be an int or a pair (kh, kw) of ints, got {tile!r} "
            "(per-stage tiles: a list such as tile=[2, 2, 4, 7])"
        )
    if kh < 1 or kw < 1:
        raise ConfigError(f"tile must be ≥ 1 in both directions, got {(kh, kw)}")
    return kh, kw


def stage_tiles(tile: Any, shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, int]]:
    """One tile per block: a single tile for all, or a list with one entry per distinct map size (stage)."""
    if isinstance(tile, list):
        sizes = list(dict.fromkeys((s[2], s[3]) for s in shapes))
        if len(tile) != len(sizes):
            raise ConfigError(f"--tile lists {len(tile)} values but the attention blocks see {len(sizes)} map sizes "
                              f"({', '.join(f'{h}x{w}' for h, w in sizes)}); give one tile per size or a single tile")
        per = {sz: parse_tile(t) for sz, t in zip(sizes, tile, strict=True)}
        return [per[(s[2], s[3])] for s in shapes]
    return [parse_tile(tile)] * len(shapes)
