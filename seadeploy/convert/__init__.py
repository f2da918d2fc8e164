"""The convert stage: SE → TSE (and back) for any SE network, ``python -m seadeploy.convert``.

The rewrites themselves are libraries below the stages: :mod:`seadeploy.models.rewrite` (PyTorch, any model) and
the ONNX graph rewrite in :mod:`seadeploy.graphs`; :mod:`.stage` runs them and writes the before/after report.
"""
