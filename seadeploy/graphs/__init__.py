"""Everything that knows ONNX graphs; export, profiling, validate and convert use these modules.

* :mod:`~seadeploy.graphs.ops` — every op-type set, defined once.
* :mod:`~seadeploy.graphs.load` — the one ONNX loader (and the ``onnx_ir`` model with symbolic shapes).
* :mod:`~seadeploy.graphs.shapes` — static shapes: the one shape-inference entry for sizes and MACs.
* :mod:`~seadeploy.graphs.index` — the graph index (producers, consumers, constants, shapes, module paths),
  built once per graph.
* :mod:`~seadeploy.graphs.macs` — the one MAC / parameter counter over ONNX nodes.
* :mod:`~seadeploy.graphs.squeeze`, :mod:`~seadeploy.graphs.blocks`, :mod:`~seadeploy.graphs.attention` — channel
  attention found by structure: squeezes, the result types, the detector.
* :mod:`~seadeploy.graphs.se_rewrite` — SE → TSE on an ONNX graph with the zoo's deployable lowering.
"""
