"""ONNX graph analyses shared by export, profiling and the model statistics.

* :mod:`~seadeploy.graphs.attention` — channel-attention blocks and per-node roles found by structure,
  and the graph index (producers, consumers, constants) the walks use.
"""
