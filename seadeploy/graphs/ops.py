"""ONNX op-type sets shared by the graph analyses (one home: the attention detector, the fp16 keep list, the
row-arrival model and the per-layer roles all read these)."""

from __future__ import annotations

#: Pooling over the whole map (an SE squeeze).
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"})
#: Reductions over given axes (a squeeze written as ReduceMean, ...).
REDUCES = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                     "ReduceLogSumExp", "ReduceLogSum", "ReduceProd"})
#: Windowed pooling (a tiled squeeze when kernel == stride: TSE lowers its tiles to AveragePool).
TILE_POOLS = frozenset({"AveragePool", "MaxPool", "LpPool", "QLinearAveragePool"})
#: Normalisations.
NORMS = frozenset({"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"})
