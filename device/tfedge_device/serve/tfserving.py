"""TensorFlow Serving's REST API as a client sees it: request bodies -> named input arrays, outputs -> response
bodies, model status and metadata. Follows https://www.tensorflow.org/tfx/serving/api_rest:

- row format `{"instances": [...]}`: one item per example, without the batch dimension; an item is the value
  of the only input, or an object {input name: value}. Answer `{"predictions": [...]}`, one item per example:
  the only output's value, or an object {output name: value}.
- columnar format `{"inputs": value | {name: value}}`: values with the batch dimension. Answer
  `{"outputs": value | {name: value}}`.
- `{"b64": "..."}` anywhere stands for bytes (base64), as TF Serving's JSON mapping says.
- errors: HTTP 4xx with `{"error": "..."}`.

Values are real numbers: a quantized tensor is quantized/dequantized with its scale and zero point, as every
tfedge-run command does (Model.set_inputs / get_outputs).
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

# numpy dtype name -> TensorFlow's DataType enum name (tensorflow/core/framework/types.proto)
TF_DTYPES = {
    "float32": "DT_FLOAT", "float16": "DT_HALF", "float64": "DT_DOUBLE", "int8": "DT_INT8", "uint8": "DT_UINT8",
    "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64", "bool": "DT_BOOL", "bytes_": "DT_STRING",
    "object_": "DT_STRING",
}


class RequestError(Exception):
    """A request the server refuses: its HTTP status and the one-line `error` of the JSON body."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = " ".join(message.split())
        self.status = status


def decode_b64(value):
    """Replace every {"b64": "..."} in a JSON value by its bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise RequestError("a {\"b64\": ...} value is not valid base64") from None
        return {key: decode_b64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_b64(item) for item in value]
    return value


def _array(value, name: str, dtype) -> np.ndarray:
    """A JSON value -> an array for input `name` (real values for numeric inputs)."""
    real = np.float32 if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) else dtype
    try:
        array = np.asarray(value, dtype=real)
    except (ValueError, TypeError):
        raise RequestError(f"input {name!r}: expected a (nested) list of numbers of one shape") from None
    if array.dtype == object:
        raise RequestError(f"input {name!r}: ragged lists (rows of different lengths)")
    return array


def parse_predict(body, names: list[str], dtypes: list) -> tuple[str, list[dict[str, np.ndarray]] | dict]:
    """A :predict body -> ("row", [per-example {name: array without batch dim}]) or
    ("columnar", {name: array with batch dim}). `names`/`dtypes`: the model's inputs in its order."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object with \"instances\" or \"inputs\"")
    keys = {"instances", "inputs"} & set(body)
    if len(keys) != 1:
        raise RequestError("the body must have exactly one of \"instances\" (row format) or \"inputs\" "
                           "(columnar format)")
    body = decode_b64(body)
    dtype_of = dict(zip(names, dtypes))
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError("\"instances\" must be a non-empty list")
        examples = []
        for number, instance in enumerate(instances):
            if len(names) > 1 or isinstance(instance, dict):  # a JSON object is never a tensor value
                if not isinstance(instance, dict):
                    raise RequestError(f"instance {number}: this model takes {len(names)} inputs "
                                       f"({', '.join(names)}): give an object keyed by input name")
                examples.append(_named(instance, names, dtype_of, f"instance {number}"))
            else:
                examples.append({names[0]: _array(instance, names[0], dtype_of[names[0]])})
        return "row", examples
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        return "columnar", _named(inputs, names, dtype_of, "\"inputs\"")
    if len(names) > 1:
        raise RequestError(f"this model takes {len(names)} inputs ({', '.join(names)}): give \"inputs\" as an "
                           "object keyed by input name")
    return "columnar", {names[0]: _array(inputs, names[0], dtype_of[names[0]])}


def _named(values: dict, names: list[str], dtype_of: dict, where: str) -> dict[str, np.ndarray]:
    unknown = sorted(set(values) - set(names))
    missing = [name for name in names if name not in values]
    if unknown or missing:
        raise RequestError(f"{where}: inputs must be exactly {', '.join(names)}"
                           + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                           + (f"; missing: {', '.join(missing)}" if missing else ""))
    return {name: _array(values[name], name, dtype_of[name]) for name in names}


def predict_response(form: str, outputs, names: list[str]) -> dict:
    """Outputs -> the response body. Row form: `outputs` is [per-example [arrays without batch dim]];
    columnar: [arrays with batch dim]."""
    if form == "row":
        if len(names) == 1:
            return {"predictions": [example[0].tolist() for example in outputs]}
        return {"predictions": [{name: value.tolist() for name, value in zip(names, example)}
                                for example in outputs]}
    if len(names) == 1:
        return {"outputs": outputs[0].tolist()}
    return {"outputs": {name: value.tolist() for name, value in zip(names, outputs)}}


def tensor_info(name: str, spec) -> dict:
    """A TensorInfo as TF Serving's metadata prints it (-1 where a dimension is dynamic). A quantized tensor
    is exchanged as real values: DT_FLOAT, with its quantization under "tfedge_quantization"."""
    info = {"dtype": "DT_FLOAT" if spec.quantized else TF_DTYPES.get(np.dtype(spec.dtype).name, "DT_INVALID"),
            "tensor_shape": {"dim": [{"size": str(int(size)), "name": ""} for size in spec.shape],
                             "unknown_rank": False},
            "name": name}
    if spec.quantized:
        info["tfedge_quantization"] = {"dtype": np.dtype(spec.dtype).name, "scale": spec.scale,
                                       "zero_point": spec.zero_point}
    return info


def status_body(version: str, state: str = "AVAILABLE") -> dict:
    """GET /v1/models/NAME. TF Serving's versions are numbers; ours is the bundle's (or model's) hash."""
    return {"model_version_status": [{"version": version, "state": state,
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def metadata_body(name: str, version: str, inputs: list[dict], outputs: list[dict], extra: dict) -> dict:
    """GET /v1/models/NAME/metadata: the serving_default SignatureDef, plus tfedge's own fields."""
    signature = {"inputs": {item["name"]: item for item in inputs},
                 "outputs": {item["name"]: item for item in outputs},
                 "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": name, "signature_name": "", "version": version},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}, "tfedge": extra}}
