"""SE → TSE (and back) for any SE network: ``python -m seadeploy.convert`` (PyTorch and ONNX routes).

Submodules: :mod:`.torch_rewrite` (trainable PyTorch rewrite), :mod:`.onnx_rewrite` (graph rewrite with the
zoo's deployable TSE lowering), :mod:`.stage` (the command: reports and run folder).
"""
