"""SE → TSE (and back) for any SE network: ``python -m seadeploy.convert`` (PyTorch and ONNX routes).

Submodules: :mod:`.torch_rewrite` (trainable PyTorch rewrite), :mod:`.stage` (the command: reports and run
folder). The ONNX graph rewrite with the zoo's deployable TSE lowering is :mod:`seadeploy.graphs.se_rewrite`.
"""
