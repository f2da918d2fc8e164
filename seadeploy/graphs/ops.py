"""ONNX op-type sets, each defined once (the attention detector, the fp16 keep list, the TSE rewrite, the
row-arrival model, the per-layer roles, the MAC counter and the lint all read these; a test keeps op-type
sets out of every other module).

Where two uses need different members, each gets its own name saying what it is for.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------ reductions
#: Pooling over the whole map (an SE squeeze).
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"})
#: Reductions over given axes (a squeeze written as ReduceMean, ...).
REDUCES = frozenset({"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                     "ReduceLogSumExp", "ReduceLogSum", "ReduceProd"})
#: Windowed pooling (a tiled squeeze when kernel == stride: TSE lowers its tiles to AveragePool).
TILE_POOLS = frozenset({"AveragePool", "MaxPool", "LpPool", "QLinearAveragePool"})
#: Normalisations.
NORMS = frozenset({"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"})

# ------------------------------------------------------------------------------------ attention detector
#: Data-free "squeezes": SsENet's random squeeze draws the channel descriptor instead of pooling it.
RANDOMS = frozenset({"RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike"})
MATMULS = frozenset({"MatMul", "QLinearMatMul", "MatMulInteger", "FusedMatMul"})
#: Channel mixing with a weight: the excitation's FC, 1×1 conv or ECA's Conv1d.
MIXING = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "FusedConv", "Gemm", "FusedGemm", "Einsum",
                    *MATMULS})
#: Re-expansion of a (tiled) squeeze back to the map.
BROADCASTS = frozenset({"Resize", "Upsample", "Expand", "Tile"})
#: Data-movement ops: they move values without computing (transparent between X and the join / squeeze).
SHAPE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Cast", "CastLike",
                       "Slice", "Pad", "Concat", "Gather", "Split", "Dropout", "QuantizeLinear", "DequantizeLinear",
                       *BROADCASTS})
GATE_FUNCS = frozenset({"Sigmoid", "HardSigmoid", "Tanh", "Softmax", "LogSoftmax", "Softsign", "Clip", "Relu",
                        "Min", "Max", "HardSwish"})
POINTWISE = frozenset({"Abs", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Exp", "Log", "Erf",
                       "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "Tanh",
                       "HardSwish", "Softplus", "Softsign", "Mish", "Swish", "Clip", "Min", "Max", "Softmax",
                       "LogSoftmax", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
                       "GroupNormalization", "Identity", "Cast", "Dropout", "QuantizeLinear", "DequantizeLinear"})
JOINS = frozenset({"Mul", "Add"})
#: Ops whose outputs are known without data (with ``Constant`` the sources of static values).
SHAPE_READS = frozenset({"Shape", "Size"})
STATIC_SOURCES = frozenset({"Constant", "ConstantOfShape", "Range", *SHAPE_READS})

# ------------------------------------------------------------------------------------------- TSE rewrite
#: Shape ops on an excitation path the TSE rewrite drops: they only reshape or broadcast the (N, C, 1, 1) gate.
TSE_SHAPE_OPS = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Expand", "Identity", "Resize", "Tile"})
#: Pointwise ops the rewrite keeps unchanged on 4-D tile descriptors.
TSE_POINTWISE = frozenset({"Add", "Mul", "Sub", "Div", "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Tanh",
                           "LeakyRelu", "Relu6", "Elu", "Selu", "Softplus", "Neg", "Cast"})
#: Channel mixing the rewrite can give a 4-D tiled form (Gemm/MatMul become 1×1 Conv).
TSE_MIXING = frozenset({"Gemm", "MatMul", "Conv", "BatchNormalization"})

# ------------------------------------------------------------------------------------ export lowering
#: Elementwise ops that work unchanged on (N, C) and on (N, C, 1, 1) (the gate lowering lifts chains of them).
LIFTABLE_UNARY = frozenset({"Relu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Erf", "LeakyRelu", "Elu", "Selu",
                            "Softplus", "Identity", "Neg", "Abs", "Exp", "Sqrt", "Reciprocal", "Gelu", "Mish", "Clip",
                            "BatchNormalization"})
LIFTABLE_BINARY = frozenset({"Mul", "Add", "Sub", "Div", "Pow", "Max", "Min"})
#: Gate functions the fp16 policy keeps in fp32 (Tanh: the SB attention gate); a tuple because the manifest's
#: precision recipe lists them in this order.
FP16_GATES = ("Sigmoid", "HardSigmoid", "Softmax", "Tanh")

# ---------------------------------------------------------------------------------- row-arrival model
# The dataflow model (seadeploy/dataflow) reads these.
#: Elementwise ops with one data input: output row r needs input row r.
UNARY = frozenset({"Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BatchNormalization", "Cast", "CastLike",
                   "Ceil", "Celu", "Clip", "Cos", "Cosh", "Dropout", "DequantizeLinear", "DynamicQuantizeLinear",
                   "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "IsInf", "IsNaN",
                   "LeakyRelu", "Log", "Mish", "Neg", "Not", "PRelu", "QuantizeLinear", "Reciprocal", "Relu", "Round",
                   "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Swish", "Tan",
                   "Tanh", "ThresholdedRelu", "FastGelu", "QuickGelu", "BiasGelu"})
#: Elementwise ops with several (broadcast) data inputs.
BINARY = frozenset({"Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Div", "Equal", "Greater",
                    "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "Pow", "Sub",
                    "Sum", "Where", "Xor"})

# ---------------------------------------------------------------------------- memory, MACs, precision
#: Reshape-like ops that alias their input instead of allocating (liveness).
ALIAS_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})
#: Reshape-like ops a torch profile folds into the squeeze before it or the scale after it.
VIEW_OPS = frozenset({"Reshape", "Flatten", "Unsqueeze", "Squeeze", "Expand", "Slice"})
#: Convolutions counted in MACs (kernel volume × output elements); QLinearConv's weight is input 3.
CONV_MACS = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger"})
#: Matrix products counted in MACs (inner dimension × output elements).
MATMUL_MACS = frozenset({"Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"})
#: Attention ops counted one op per output element in the MAC model (the gate, broadcast and scale).
ELEMENT_MACS = frozenset({"Mul", "Add", "Sigmoid", "HardSigmoid", "Resize", "Expand"})
#: The compute node a fused TensorRT layer is charged to, and the ops ``convert``'s MAC total counts.
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: Compute nodes whose engine-layer precision is checked against the graph's request.
CONVS = frozenset({"Conv", "ConvTranspose"})
#: Ops whose outputs are int8 codes, not values comparable with the reference.
INTEGER_OUTPUTS = frozenset({"QuantizeLinear", "DynamicQuantizeLinear"})

# ---------------------------------------------------------------------------------- per-layer roles
# ONNX op types (and ORT fused / TensorRT layer types) per plain role of the per-layer frame.
ROLE_CONV = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "FusedConv", "NhwcFusedConv", "NhwcConv",
                       "Convolution", "Deconvolution", "CaskConvolution", "CaskDeconvolution"})
ROLE_NORM = frozenset({"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LRN",
                       "SimplifiedLayerNormalization", "Normalization", "Scale"})
ROLE_ACT = frozenset({"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Gelu",
                      "FastGelu", "Softplus", "Softsign", "Clip", "PRelu", "Mish", "Swish", "QuickGelu", "Softmax",
                      "LogSoftmax", "ThresholdedRelu", "Activation"})
ROLE_POOL = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool",
                       "ReduceMean", "ReduceMax", "QLinearAveragePool", "QLinearGlobalAveragePool", "Pooling", "Reduce"})
ROLE_LINEAR = frozenset({"Gemm", "MatMul", "FusedMatMul", "QLinearMatMul", "MatMulInteger", "FusedGemm",
                         "MatrixMultiply", "FullyConnected", "Einsum"})
#: Reductions (op types, and TensorRT's Pooling/Reduce layers) whose cost counts per input element in the MAC model.
SQUEEZE_OPS = REDUCES | GLOBAL_POOLS | TILE_POOLS | {"Pooling", "Reduce"}

# ----------------------------------------------------------------------------------------------- lint
# Ops the TensorRT 10 ONNX parser does not import (onnx-tensorrt docs/operators.md, "N" rows), plus ops
# with no TensorRT meaning (training, strings, sequences, optionals).
TRT_UNSUPPORTED = frozenset({
    "Bernoulli", "BitShift", "Col2Im", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det",
    "DynamicQuantizeLinear", "ImageDecoder", "LabelEncoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool",
    "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement",
    "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RandomNormal", "RandomNormalLike", "RegexFullMatch",
    "STFT", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
    "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer", "StringSplit",
    "TfIdfVectorizer", "Unique",
})

#: Ops whose outputs are constants for the dataflow model (no streamed data).
CONSTANT_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape", "Range", "EyeLike", "RandomNormal",
                          "RandomUniform"})
#: Sliding-window ops: output row/position r needs the input window that ends at s·r + k − 1 − p.
WINDOW_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool",
                        "QLinearAveragePool", "FusedConv"})
#: Normalisations over a whole axis the dataflow model treats as a reduction over what they normalise.
NORMALISE_OPS = frozenset({"Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "InstanceNormalization",
                           "GroupNormalization", "LpNormalization", "MeanVarianceNormalization"})
#: Ops a streaming accelerator runs on a MAC array (matrix-vector units).
MAC_OPS = frozenset({"Conv", "ConvTranspose", "QLinearConv", "ConvInteger", "FusedConv", "Gemm", "MatMul",
                     "MatMulInteger", "QLinearMatMul"})
#: Ops that only move or relabel data (no arithmetic): free in the dataflow model's timing.
MOVE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile", "Slice", "Split",
                      "Gather", "Concat", "Identity", "Cast", "Dropout", "Shape", "Constant"})
#: Ops whose int8 QDQ form quantises an activation input (the int8 noise floor simulates their input rounding).
QUANTISED_OPS = frozenset({"Conv", "Gemm", "MatMul"})
