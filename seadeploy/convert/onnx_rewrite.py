"""The ONNX SE → TSE rewrite lives in :mod:`seadeploy.graphs.se_rewrite`."""

from seadeploy.graphs.se_rewrite import se_to_tse_onnx  # merge: re-export for the dataflow move

__all__ = ["se_to_tse_onnx"]
