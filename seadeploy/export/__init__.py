"""Export stage: PyTorch → ONNX (fp32 / fp16 / int8-QDQ) → TensorRT engines, every file checked.

* :func:`~seadeploy.export.onnx_export.export_onnx`, :func:`~seadeploy.export.onnx_export.node_module_map` —
  dynamo export with the PyTorch module path on every node;
* :func:`~seadeploy.runfolder.read_manifest` — read ``RUN/manifest.json`` (its one reader, re-exported here);
* :func:`~seadeploy.export.runner.export_run` / :func:`~seadeploy.export.runner.export_model` — the whole stage
  (``python -m seadeploy.export``); :func:`~seadeploy.export.lint.lint_onnx` — deployment traps in any file.
"""

from seadeploy.export.onnx_export import export_onnx, node_module_map
from seadeploy.runfolder import read_manifest

__all__ = ["export_onnx", "node_module_map", "read_manifest"]
