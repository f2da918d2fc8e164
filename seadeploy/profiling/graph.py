"""The profilers' former graph helpers; they live in :mod:`seadeploy.graphs` now. These names stay only until the
dataflow move (profiling's buffer and pipeline modules read them as ``graph.<name>``)."""

from seadeploy.graphs.attention import find_attention as attention  # merge: re-export for the dataflow move
from seadeploy.graphs.attention import node_blocks  # merge: re-export for the dataflow move
from seadeploy.graphs.index import attrs, constant_values, node_modules  # merge: re-export for the dataflow move
from seadeploy.graphs.load import load_model  # merge: re-export for the dataflow move
from seadeploy.graphs.macs import node_params_macs  # merge: re-export for the dataflow move
from seadeploy.graphs.shapes import elem_size, infer_shapes, make_static  # merge: re-export for the dataflow move

__all__ = ["attention", "attrs", "constant_values", "elem_size", "infer_shapes", "load_model", "make_static",
           "node_blocks", "node_modules", "node_params_macs"]
