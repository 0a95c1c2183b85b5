"""`tfedge-run info MODEL [--edgetpu] [--json]`: what runs here and what the model is.

Runtime in use (LiteRT or tflite-runtime), its version and known limitations; whether the Edge TPU library
loads; the model's inputs and outputs with their signature names, shape signatures (-1 where dynamic),
dtypes and quantization; whether it was compiled for the Edge TPU (then it needs the delegate); its custom ops
and which of them this runtime lacks (a throwaway interpreter is prepared to find out); and the manifest beside
it. The model's own interpreter is never allocated or run: a model whose dynamic input the runtime cannot prepare at
its placeholder shape is described all the same (with the --input-shape its commands need). An Edge TPU
model is described without loading it when the delegate is absent (its tensors then come from the manifest).
"""

from __future__ import annotations

import json

from .options import add_model, take_model


def add_arguments(parser) -> None:
    add_model(parser, "The .tflite model (or a bundle).")
    parser.add_argument("--edgetpu", action="store_true", help="Load the model with the Edge TPU delegate.")
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only."
    )


def real_range(tensor: dict) -> list | None:
    """The real values a quantized tensor can hold, [low, high]; None when it is not quantized."""
    import numpy as np

    if not tensor.get("scale") or tensor["dtype"] not in ("int8", "uint8", "int16", "int32"):
        return None
    info = np.iinfo(tensor["dtype"])
    return [round((bound - tensor["zero_point"]) * tensor["scale"], 6) for bound in (info.min, info.max)]


def model_info(path, edgetpu: bool = False) -> dict:
    from pathlib import Path

    from ..bundle import edgetpu_library_loads
    from ..manifest import find_manifest
    from ..model import Model, custom_ops, needs_edgetpu, read_model_bytes
    from ..runtime import describe
    from ..shapes import batch_default, flag_example, manifest_defaults

    path = Path(path)
    data = read_model_bytes(path)
    manifest, manifest_name = find_manifest(path)
    loads, why = edgetpu_library_loads()
    compiled = needs_edgetpu(data)
    info = {
        "runtime": describe(),
        "edgetpu_library": {"loads": loads, "detail": why},
        "model": {
            "path": str(path),
            "size_bytes": len(data),
            "edgetpu_custom_op": compiled,
            "needs_edgetpu_delegate": compiled,
            "custom_ops": custom_ops(data),
            "custom_ops_missing": None,  # told below when the model is loaded here
        },
        "manifest_file": manifest_name,
        "manifest": manifest,
    }
    if compiled and not edgetpu:
        source = manifest or {}
        tensors = "tensors from the manifest" if manifest else "no manifest describes its tensors"
        info["model"].update(
            {
                "loaded": False,
                "inputs": source.get("inputs", []),
                "outputs": source.get("outputs", []),
                "note": f"compiled for the Edge TPU: not loaded without --edgetpu; {tensors}",
            }
        )
    else:
        model = Model(path, edgetpu=edgetpu, allocate=False)  # described, never allocated nor invoked
        info["model"].update({**model.describe(), "loaded": True, "needs_edgetpu_delegate": compiled})
        info["model"]["custom_ops_missing"] = model.unresolved_custom_ops()  # a throwaway interpreter prepares it
        defaults = manifest_defaults(model, manifest)
        for position, (tensor, spec) in enumerate(zip(info["model"]["inputs"], model.inputs)):
            if spec.dynamic:
                default = defaults.get(position) or batch_default(spec)
                tensor["default_shape"] = list(default) if default else None
                tensor["default_from"] = "manifest" if position in defaults else ("batch 1" if default else None)
                tensor["needs"] = None if default else flag_example(spec)
    for tensor in info["model"]["inputs"] + info["model"]["outputs"]:
        tensor["shape_signature"] = tensor.get("shape")
        tensor["real_range"] = real_range(tensor)
    return info


def tensor_line(tensor: dict) -> str:
    name = tensor.get("signature_name") or tensor["name"]
    if tensor.get("signature_name") and tensor["signature_name"] != tensor["name"]:
        name += f" (tensor {tensor['name']})"
    text = f"{name} {tensor['shape']} {tensor['dtype']}"
    if tensor.get("default_shape"):
        text += f" (dynamic; {tensor['default_shape']} unless --input-shape: {tensor['default_from']})"
    elif tensor.get("needs"):
        text += f" (dynamic: run, bench and verify need {tensor['needs']})"
    if tensor.get("real_range"):
        low, high = tensor["real_range"]
        text += f" scale {tensor['scale']:.6g} zero_point {tensor['zero_point']} (real {low:g}..{high:g})"
    return text


def manifest_line(manifest: dict) -> str:
    image = (manifest.get("preprocess") or {}).get("image")
    verified = manifest.get("verification") or {}
    parts = [f"task {manifest.get('task', '?')}", f"mode {manifest.get('mode', '?')}"]
    if image:
        parts.append(
            f"preprocess {image['height']}x{image['width']}x{image['channels']} {image.get('preset')} "
            f"{image.get('resize', 'bilinear')}"
        )
    if manifest.get("labels"):
        parts.append(f"{len(manifest['labels'])} labels")
    if verified.get("top1_agreement") is not None:
        parts.append(
            f"verified top-1 agreement {verified['top1_agreement']:.1%}, cosine min "
            f"{verified.get('cosine_min', float('nan')):.5f} on {verified.get('samples')} samples"
        )
    if (manifest.get("versions") or {}).get("tensorflow"):
        parts.append(f"converted with TensorFlow {manifest['versions']['tensorflow']}")
    return ", ".join(parts)


def custom_ops_line(names: list[str], missing: list[str] | None) -> str:
    if missing is None:
        return f"{', '.join(names)} (whether this runtime has them shows when the model is prepared: run, bench)"
    if not missing:
        return f"{', '.join(names)} (this runtime runs them)"
    unchecked = " (the first it met; the others are not checked)" if len(missing) < len(names) else ""
    return (f"{', '.join(names)}: this runtime lacks {', '.join(missing)}{unchecked}; run it where the op's "
            "implementation is registered (the framework that made the model)")


def print_info(info: dict) -> None:
    runtime, model = info["runtime"], info["model"]
    kind = (
        "Edge TPU model: needs the Edge TPU delegate (--edgetpu)"
        if model["needs_edgetpu_delegate"]
        else "CPU model (no Edge TPU custom op)"
    )
    rows = [
        (
            "runtime",
            (
                f"{runtime['runtime']} {runtime['version']} ({runtime['distribution']}) on "
                f"{runtime['machine']}, Python {runtime['python']}"
            ),
        ),
        ("limitations", runtime["limitations"] or "none known"),
        (
            "edgetpu",
            (
                f"{'loads' if info['edgetpu_library']['loads'] else 'absent'}: "
                f"{info['edgetpu_library']['detail']}"
            ),
        ),
        ("model", f"{model['path']} ({model['size_bytes'] / 1e3:.1f} kB), {kind}"),
    ]
    if model.get("note"):
        rows.append(("", model["note"]))
    from ..model import EDGETPU_OP_NAME

    others = [name for name in model.get("custom_ops", []) if name != EDGETPU_OP_NAME]  # said by "model"
    if others:
        rows.append(("custom ops", custom_ops_line(others, model.get("custom_ops_missing"))))
    rows += [(f"input {i}", tensor_line(t)) for i, t in enumerate(model["inputs"])]
    rows += [(f"output {i}", tensor_line(t)) for i, t in enumerate(model["outputs"])]
    rows.append(
        (
            "manifest",
            f"{info['manifest_file']}: {manifest_line(info['manifest'])}"
            if info["manifest"]
            else "none (classify derives preprocessing from the input tensor)",
        )
    )
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


def run(args) -> int:
    from ..bundle import resolve_model_args

    take_model(args)
    resolve_model_args(args)  # a bundle -> its checked model variant
    info = model_info(args.model, args.edgetpu)
    if args.as_json:
        print(json.dumps(info))
    else:
        print_info(info)
    return 0
