"""The Edge TPU Compiler's rules as data: statuses, tensor requirements, the op table, per compiler version.

Every rule names its source. Sources:
  REQS  = coral.ai/docs/edgetpu/models-intro, "Model requirements" (8-bit quantized tensors, sizes constant at
          compile time, parameters constant, 1-3 dimensional tensors: only the 3 innermost may exceed 1).
  OPS   = coral.ai/docs/edgetpu/models-intro, "Supported operations" (operation name, known limitations), the
          current table (runtime 14+, compiler 16), as also reproduced on developer.axis.com's ARTPEC-7 (an
          Edge TPU) "supported ops" page. Older tables limited Mean and Pad to the x/y dimensions.
  SPLIT = same page, "Compiling": the compiler makes one Edge TPU subgraph; ops that depend on an op it cannot
          map after that subgraph began run on the CPU ("More than one subgraph is not supported").
  LOG   = the Edge TPU Compiler's operation table (coral.ai/docs/edgetpu/compiler; the statuses below are
          printed verbatim by compiler versions 14-16 in published logs).
  TRUTH = the real compiler's logs and compiled models in the development set (../shared/edgetpu-truth, its
          README names each file's public repository and commit); cited as TRUTH + the file.
  GH n  = github.com/google-coral/edgetpu/issues/n (compiler output posted there, maintainers' answers).
A rule holds for the compiler versions in its `versions` (COMPILER_VERSIONS): where the real compiler 16 maps
what the documented table forbids, the documented limit is kept for 15 and relaxed for 16, with the evidence.
The checks that evaluate each constraint live in check.py (CHECKS, keyed by the same names).
"""

from __future__ import annotations

from dataclasses import dataclass

COMPILER_VERSIONS = (16, 15)  # major versions of edgetpu_compiler the rules describe (16: the last release, 2021)
DEFAULT_COMPILER = 16
BOTH = COMPILER_VERSIONS

# -- Statuses, worded exactly as the compiler prints them (LOG) so users can search for them. --------------
MAPPED = "Mapped to Edge TPU"
UNSUPPORTED_DTYPE = "Operation is working on an unsupported data type"
MORE_THAN_ONE_SUBGRAPH = "More than one subgraph is not supported"
UNSPECIFIED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
NOT_SUPPORTED = "Operation not supported"
UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
VERSION_NOT_SUPPORTED = "Operation version not supported"
UNITARY_STRIDES = "Only Strided-Slice with unitary strides supported"
# Not the compiler's words: the pre-check's own.
UNCERTAIN = "Uncertain: a size-dependent compiler limit the evidence does not pin down (predicted mapped)"
MODEL_REFUSED = "Not compiled: the compiler refuses the whole model (see refusal)"

STATUSES = (MAPPED, UNSUPPORTED_DTYPE, MORE_THAN_ONE_SUBGRAPH, UNSPECIFIED, NOT_SUPPORTED, UNSUPPORTED_RANK,
            VERSION_NOT_SUPPORTED, UNITARY_STRIDES)
ON_TPU = (MAPPED, UNCERTAIN)  # an uncertain op is predicted on the TPU: it is supported unless the limit bites

# Statuses that say the op itself has no integer kernel / is outside the TPU's op set (convert refuses these).
NO_INTEGER_KERNEL = (UNSUPPORTED_DTYPE,)

REQS = "coral.ai/docs/edgetpu/models-intro#model-requirements"
OPS = "coral.ai/docs/edgetpu/models-intro#supported-operations"
SPLIT = "coral.ai/docs/edgetpu/models-intro#compiling"
LOG = "coral.ai/docs/edgetpu/compiler (operation log)"
TRUTH = "edgetpu-truth"


def gh_issue(number: int) -> str:
    return f"github.com/google-coral/edgetpu/issues/{number}"


# A dynamic batch (-1 first in shape_signature, every Keras export) is compiled as batch 1 by compilers 15 and
# 16; any other dynamic dimension keeps the op off the TPU (REQS).
BATCH_AS_ONE = {"versions": BOTH, "source": f"{TRUTH}: franco_mlp, nrf20_mnist9 (compiler 15), kapibara_deepid "
                                             "(compiler 16): batch -1 in shape_signature, every op mapped"}

# How the compiler treats a supported op cut off by an earlier CPU op: "More than one subgraph is not
# supported", except QUANTIZE, which the maintainers single out (GH 461) and logs show as "unspecified" (GH 317).
CUT_STATUS = {"QUANTIZE": UNSPECIFIED}
CUT_SOURCE = f"{SPLIT}; {gh_issue(461)}"


@dataclass(frozen=True)
class Constraint:
    status: str  # the compiler status reported when the constraint fails
    message: str  # why, for the report; {detail} is filled by the check
    source: str
    versions: tuple = BOTH  # compiler versions the constraint holds for


# Model-wide requirements, checked on every op's non-constant tensors (in this order) before its own limits.
TENSOR_REQUIREMENTS = {
    "8bit_tensors": Constraint(UNSUPPORTED_DTYPE, "tensor {detail} is not 8-bit quantized (int8/uint8)", REQS),
    "static_size": Constraint(UNSPECIFIED, "tensor {detail} has a dynamic size (sizes must be constant at "
                              "compile time)", REQS),
    "innermost_3_dims": Constraint(UNSUPPORTED_RANK, "tensor {detail}: only the 3 innermost dimensions may "
                                   "be larger than 1", REQS),
}

# Per-op limits: the OPS table's "Known limitations" column, and what the real compiler showed.
CONSTRAINTS = {
    "no_fused_activation": Constraint(UNSPECIFIED, "fused activation {detail} (no fused activation "
                                      "function allowed)", OPS),
    "same_dilation": Constraint(UNSPECIFIED, "dilation {detail} (x and y dilation must be equal)", OPS),
    # Compiler 16 maps CONV_2D with dilation (2,1) and (4,1) (real compiler-16 logs measured in issue 17).
    "same_dilation_conv": Constraint(UNSPECIFIED, "dilation {detail} (x and y dilation must be equal)",
                                     f"{OPS}; relaxed for 16: compiler-16 logs of CONV_2D dilation 2x1/4x1 "
                                     "mapped (tfedge issue 17)", versions=(15,)),
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
                                 "only)", OPS, versions=(15,)),
    # Compiler 16 maps SOFTMAX over the last axis of multi-dimensional inputs: yunet's and YOLOv8's heads.
    "softmax_axis_16k": Constraint(UNSPECIFIED, "softmax axis of {detail} elements (at most 16,000)",
                                   f"{OPS} (the 16,000 figure); {TRUTH}: logs_only/KapiBara__yunet (compiler 16) "
                                   "and jveitchmichaelis yolov8n_192 (compiler 16): SOFTMAX on multi-dimensional "
                                   "input mapped", versions=(16,)),
    "unit_strides": Constraint(UNITARY_STRIDES, "strides {detail}", LOG),
    "integer_quantize": Constraint(UNSPECIFIED, "quantizes a {detail} tensor (float<->int conversion at the "
                                   "model's edge runs on the CPU)", f"{LOG}; {TRUTH}: kapibara_deepid log"),
    # Compiler 15 reports TF>=2.3 resize ops (op version 3+) as "Operation version not supported" (GH 420, 396).
    "resize_op_version": Constraint(VERSION_NOT_SUPPORTED, "op version {detail} (compiler 15 maps RESIZE_* up "
                                    "to version 2)", f"{gh_issue(420)}; {gh_issue(396)}", versions=(15,)),
}


@dataclass(frozen=True)
class OpRule:
    constraints: tuple = ()  # names in CONSTRAINTS, checked in order (each only for its versions)
    caveat: str | None = None  # a documented "may not be mapped" the pre-check cannot decide
    source: str = OPS
    versions: tuple = BOTH  # compiler versions that map the op at all
    data_io_8bit: tuple = ()  # versions where only input 0 / output 0 need 8 bits (internal state may be wider)


# The supported-operations table (TFLite builtin names). Ops absent here: "Operation not supported".
OP_RULES = {
    "ADD": OpRule(),
    "AVERAGE_POOL_2D": OpRule(("no_fused_activation",)),
    "CONCATENATION": OpRule(("no_fused_activation", "concat_constant_input")),
    "CONV_2D": OpRule(("same_dilation_conv", "constant_weights")),
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
    "RESIZE_BILINEAR": OpRule(("io_3d", "resize_op_version")),
    "RESIZE_NEAREST_NEIGHBOR": OpRule(("io_3d", "resize_op_version")),
    "RSQRT": OpRule(),
    "SLICE": OpRule(),
    "SOFTMAX": OpRule(("softmax_1d_16k", "softmax_axis_16k")),
    "SPACE_TO_DEPTH": OpRule(),
    "SPLIT": OpRule(("not_batch_axis",)),
    "SQUARED_DIFFERENCE": OpRule(),
    "SQUEEZE": OpRule(),
    "STRIDED_SLICE": OpRule(("unit_strides",)),
    "SUB": OpRule(),
    "SUM": OpRule(("not_batch_axis",)),
    "TANH": OpRule(),
    # Not in the published table, yet inside the compiled TPU subgraph of Coral's own deeplab model.
    "TILE": OpRule(source=f"{TRUTH}: coral_deeplab_mobilenet_edgetpu_slim_cityscapes_quant (compiled, compiler "
                          "16): TILE [1,1,1,128]->[1,33,33,128] mapped", versions=(16,)),
    # Added in compiler 16 (maintainer, GH 193); compiler 15 logs say "Operation not supported" (GH 317).
    "TRANSPOSE": OpRule(source=f"{OPS}; {gh_issue(193)}; {gh_issue(317)}", versions=(16,)),
    "TRANSPOSE_CONV": OpRule(("constant_weights",)),
    "LSTM": OpRule(),  # "Unidirectional LSTM only" (the bidirectional op is absent from this table)
    # int16 cell state and int32 gate biases stay inside the compiled op in Coral's keras_lstm_mnist_ptq.
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OpRule(source=f"{OPS}; {TRUTH}: coral_keras_lstm_mnist_ptq (compiled, "
                                                  "compiler 16): int16/int32 internal tensors, mapped",
                                           data_io_8bit=(16,)),
}

# Custom ops that run on the CPU by design, after the Edge TPU subgraph: an integer mode does not refuse them.
# TFLite_Detection_PostProcess (SSD box decoding + NMS) stays on the CPU in Coral's own detection models
# (github.com/google-coral/edgetpu/issues/515: "yes, the TFLite_Detection_PostProcess Op runs on the CPU").
CPU_BY_DESIGN = ("TFLite_Detection_PostProcess",)


@dataclass(frozen=True)
class SizeLimit:
    """A size the compiler's op table does not state. `measure` names a function in check.py (MEASURES).

    measure <= mapped_up_to: mapped (the largest size seen mapped); >= unmapped_from: not mapped (the smallest
    seen refused, status UNSPECIFIED); in between, or with no bound on a side: UNCERTAIN with this reason."""
    measure: str
    mapped_up_to: float | None
    unmapped_from: float | None
    source: str
    versions: tuple = BOTH


SIZE_LIMITS = {
    # YOLOv8's head transposes [1, H, W, 144] (64 box + 80 class channels): mapped at 192 px (24x24, largest
    # 82,944 elements; the 192 px log maps all 6 TRANSPOSEs), refused at 640 px (80x80: 921,600 elements).
    "TRANSPOSE": SizeLimit("input_elements", 24 * 24 * 144, 80 * 80 * 144,
                           f"{TRUTH}: logs_only jveitchmichaelis yolov8n_192 (all TRANSPOSE mapped) and "
                           "hatef2003 model_int8 (TRANSPOSE 'unspecified limitation'; 80x80x144 per tfedge issue "
                           "17); compiler 16", versions=(16,)),
    # MEAN over 256x128 positions refused, over 64x128 mapped after splitting the input (GH 461, compiler 16).
    "MEAN": SizeLimit("reduced_elements", 64 * 128, 256 * 128, gh_issue(461)),
    # Scale = output/input size along y/x. 1x (deeplab 33->33) and 2x (MiDaS, YOLO upsampling) mapped; 33->513
    # (15.5x, deeplab) on the CPU; OPS: "depending on input/output size ... may not be mapped".
    "RESIZE_BILINEAR": SizeLimit("resize_scale", 2, 513 / 33,
                                 f"{OPS}; {TRUTH}: coral_deeplab (33->33 mapped, 33->513 on the CPU), logs_only "
                                 "KapiBara__Midas (RESIZE_BILINEAR 5 mapped, 2x)"),
    "RESIZE_NEAREST_NEIGHBOR": SizeLimit("resize_scale", 2, None,
                                         f"{OPS}; {TRUTH}: logs_only jveitchmichaelis yolov5s_160/yolov8 (2x "
                                         "mapped); no refused size known"),
}


@dataclass(frozen=True)
class UnknownOpVersion:
    first_unknown: int  # this op version and later ones are unknown to the compiler's TFLite
    source: str


# Op versions newer than the TFLite inside the compiler: it refuses the whole model with
# "Didn't find op for builtin opcode 'X' version 'N'" (no operation log, no output model).
_UNKNOWN_16 = {
    "CONV_2D": UnknownOpVersion(6, f"{gh_issue(631)} (compiler 16, TF 2.9)"),
    "EXP": UnknownOpVersion(2, "github.com/google-coral/libedgetpu/issues/71 (compiler 16, TF 2.16)"),
    "QUANTIZE": UnknownOpVersion(3, f"{gh_issue(879)} (compiler 16)"),
    "RSQRT": UnknownOpVersion(2, f"{gh_issue(384)} (compiler 15, TF 2.5; listed for 16 in tfedge issue 17)"),
    "TRANSPOSE_CONV": UnknownOpVersion(4, f"{gh_issue(845)} (compiler 16)"),
}
UNKNOWN_OP_VERSIONS = {
    16: _UNKNOWN_16,
    15: {**_UNKNOWN_16,  # an older compiler knows no more than a newer one
         "REVERSE_V2": UnknownOpVersion(3, f"{gh_issue(340)} (compiler 15)")},
}
UNKNOWN_OP_MESSAGE = "Didn't find op for builtin opcode '{op}' version '{version}'"

# A model with no quantized tensor at all: "Invalid model: NAME / Model not quantized" (GH 168 compiler 14,
# GH 313 compiler 15). Either way such a model runs wholly on the CPU: a float model the compiler did take
# reports every op "unsupported data type" (TRUTH: logs_only hatef2003 lane_keeper, compiler 16).
NOT_QUANTIZED = {"message": "Model not quantized", "source": f"{gh_issue(168)}; {gh_issue(313)}", "versions": BOTH}

# The custom op edgetpu_compiler writes: a model that already has it was compiled (check says so).
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
