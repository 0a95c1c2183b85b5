"""The Edge TPU's documented rules as data: statuses, model-wide tensor requirements, the supported-op table.

Sources (cited per entry):
  REQS  = coral.ai/docs/edgetpu/models-intro, "Model requirements" (8-bit quantized tensors, sizes constant at
          compile time, parameters constant, 1-3 dimensional tensors: only the 3 innermost may exceed 1).
  OPS   = coral.ai/docs/edgetpu/models-intro, "Supported operations" (operation name, known limitations), the
          current table (runtime 14+, compiler 16), as also reproduced on developer.axis.com's ARTPEC-7 (an
          Edge TPU) "supported ops" page. Older tables limited Mean and Pad to the x/y dimensions.
  SPLIT = same page, "Compiling": the compiler partitions the graph once; at the first unsupported op the
          Edge TPU subgraph ends and that op and everything after it run on the CPU, even supported ops.
  LOG   = the Edge TPU Compiler's operation table (coral.ai/docs/edgetpu/compiler; the statuses below are
          printed verbatim by compiler versions 14-16 in published logs).
The checks that evaluate each constraint live in check.py (CHECKS, keyed by the same names).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- Statuses, worded exactly as the compiler prints them (LOG) so users can search for them. --------------
MAPPED = "Mapped to Edge TPU"
UNSUPPORTED_DTYPE = "Operation is working on an unsupported data type"
MORE_THAN_ONE_SUBGRAPH = "More than one subgraph is not supported"
UNSPECIFIED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
NOT_SUPPORTED = "Operation not supported"
UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
VERSION_NOT_SUPPORTED = "Operation version not supported"
UNITARY_STRIDES = "Only Strided-Slice with unitary strides supported"

STATUSES = (MAPPED, UNSUPPORTED_DTYPE, MORE_THAN_ONE_SUBGRAPH, UNSPECIFIED, NOT_SUPPORTED, UNSUPPORTED_RANK,
            VERSION_NOT_SUPPORTED, UNITARY_STRIDES)

# Statuses that say the op itself has no integer kernel / is outside the TPU's op set (convert refuses these).
NO_INTEGER_KERNEL = (UNSUPPORTED_DTYPE,)

REQS = "coral.ai/docs/edgetpu/models-intro#model-requirements"
OPS = "coral.ai/docs/edgetpu/models-intro#supported-operations"
SPLIT = "coral.ai/docs/edgetpu/models-intro#compiling"
LOG = "coral.ai/docs/edgetpu/compiler (operation log)"


@dataclass(frozen=True)
class Constraint:
    status: str  # the compiler status reported when the constraint fails
    message: str  # why, for the report; {detail} is filled by the check
    source: str


# Model-wide requirements, checked on every op's non-constant tensors (in this order) before its own limits.
TENSOR_REQUIREMENTS = {
    "8bit_tensors": Constraint(UNSUPPORTED_DTYPE, "tensor {detail} is not 8-bit quantized (int8/uint8)", REQS),
    "static_size": Constraint(UNSPECIFIED, "tensor {detail} has a dynamic size (sizes must be constant at "
                              "compile time)", REQS),
    "innermost_3_dims": Constraint(UNSUPPORTED_RANK, "tensor {detail}: only the 3 innermost dimensions may "
                                   "be larger than 1", REQS),
}

# Per-op limits named in the OPS table's "Known limitations" column.
CONSTRAINTS = {
    "no_fused_activation": Constraint(UNSPECIFIED, "fused activation {detail} (no fused activation "
                                      "function allowed)", OPS),
    "same_dilation": Constraint(UNSPECIFIED, "dilation {detail} (x and y dilation must be equal)", OPS),
    "constant_weights": Constraint(UNSPECIFIED, "{detail} is not a compile-time constant (parameters must "
                                   "be constant)", REQS),
    "default_weights_format": Constraint(UNSPECIFIED, "weights format {detail} (only the default "
                                         "fully-connected weights format)", OPS),
    "one_dim_output": Constraint(UNSPECIFIED, "output shape {detail} (output tensor must be one-dimensional)",
                                 OPS),
    "concat_constant_input": Constraint(UNSPECIFIED, "{detail} (a constant input is allowed only with exactly "
                                        "2 inputs, as zero padding)", OPS),
    "z_reduction_multiple_of_4": Constraint(UNSPECIFIED, "reduces over the z (channel) dimension of size "
                                            "{detail} (must be a multiple of 4)", OPS),
    "pad_not_batch": Constraint(UNSPECIFIED, "pads dimensions {detail} (no padding in the batch dimension)", OPS),
    "not_batch_axis": Constraint(UNSPECIFIED, "works along axis {detail}, the batch dimension", OPS),
    "prelu_alpha_1d": Constraint(UNSPECIFIED, "alpha shape {detail} (alpha must be 1-dimensional: for Keras PReLU "
                                 "on 4-D input use shared_axes=[1, 2])", OPS),
    "io_3d": Constraint(UNSUPPORTED_RANK, "tensor shape {detail} (input/output must be 3-dimensional)", OPS),
    "softmax_1d_16k": Constraint(UNSPECIFIED, "input shape {detail} (1-D input of at most 16,000 elements "
                                 "only)", OPS),
    "unit_strides": Constraint(UNITARY_STRIDES, "strides {detail}", LOG),
    "integer_quantize": Constraint(UNSPECIFIED, "quantizes a {detail} tensor (float<->int conversion at the "
                                   "model's edge runs on the CPU)", LOG),
}

RESIZE_CAVEAT = ("depending on input/output size the compiler may leave this op on the CPU to avoid loss of "
                 f"precision; only the compiler can tell [{OPS}]")


@dataclass(frozen=True)
class OpRule:
    constraints: tuple = ()  # names in CONSTRAINTS, checked in order
    caveat: str | None = None  # a documented "may not be mapped" the pre-check cannot decide
    source: str = OPS


# The supported-operations table (TFLite builtin names). Ops absent here: "Operation not supported".
OP_RULES = {
    "ADD": OpRule(),
    "AVERAGE_POOL_2D": OpRule(("no_fused_activation",)),
    "CONCATENATION": OpRule(("no_fused_activation", "concat_constant_input")),
    "CONV_2D": OpRule(("same_dilation", "constant_weights")),
    "DEPTHWISE_CONV_2D": OpRule(("same_dilation", "constant_weights")),
    "EXPAND_DIMS": OpRule(),
    "FULLY_CONNECTED": OpRule(("default_weights_format", "constant_weights", "one_dim_output")),
    "L2_NORMALIZATION": OpRule(),
    "LOGISTIC": OpRule(),
    "MAXIMUM": OpRule(),
    "MAX_POOL_2D": OpRule(("no_fused_activation",)),
    "MEAN": OpRule(("not_batch_axis", "z_reduction_multiple_of_4")),
    "MINIMUM": OpRule(),
    "MUL": OpRule(),
    "PACK": OpRule(("not_batch_axis",)),
    "PAD": OpRule(("pad_not_batch",)),
    "PRELU": OpRule(("prelu_alpha_1d",)),
    "QUANTIZE": OpRule(("integer_quantize",)),
    "REDUCE_MAX": OpRule(("not_batch_axis",)),
    "REDUCE_MIN": OpRule(("not_batch_axis",)),
    "RELU": OpRule(),
    "RELU6": OpRule(),
    "RELU_N1_TO_1": OpRule(),
    "RESHAPE": OpRule(caveat=f"certain reshapes of large tensors may not be mapped [{OPS}]"),
    "RESIZE_BILINEAR": OpRule(("io_3d",), caveat=RESIZE_CAVEAT),
    "RESIZE_NEAREST_NEIGHBOR": OpRule(("io_3d",), caveat=RESIZE_CAVEAT),
    "RSQRT": OpRule(),
    "SLICE": OpRule(),
    "SOFTMAX": OpRule(("softmax_1d_16k",)),
    "SPACE_TO_DEPTH": OpRule(),
    "SPLIT": OpRule(("not_batch_axis",)),
    "SQUARED_DIFFERENCE": OpRule(),
    "SQUEEZE": OpRule(),
    "STRIDED_SLICE": OpRule(("unit_strides",)),
    "SUB": OpRule(),
    "SUM": OpRule(("not_batch_axis",)),
    "TANH": OpRule(),
    "TRANSPOSE": OpRule(),
    "TRANSPOSE_CONV": OpRule(("constant_weights",)),
    "LSTM": OpRule(),  # "Unidirectional LSTM only" (the bidirectional op is absent from this table)
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OpRule(),
}

# Custom ops that run on the CPU by design, after the Edge TPU subgraph: an integer mode does not refuse them.
# TFLite_Detection_PostProcess (SSD box decoding + NMS) stays on the CPU in Coral's own detection models
# (github.com/google-coral/edgetpu/issues/515: "yes, the TFLite_Detection_PostProcess Op runs on the CPU").
CPU_BY_DESIGN = ("TFLite_Detection_PostProcess",)

# The custom op edgetpu_compiler writes: a model that already has it was compiled (check says so).
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
