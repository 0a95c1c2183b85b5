"""`tfedge-run verify BUNDLE`: is this bundle intact and does it run here, before anything relies on it?

Checks, in order, stopping at the first failure (one line, exit code):
  checksums (exit 2) -> runtime present (3) -> variant: Edge TPU library when only that variant exists (3)
  -> every runnable variant loads in the runtime, i.e. it has every op version (3)
  -> one inference on the stored sample equals the stored expected output within tolerance (4).
"""

from __future__ import annotations

import json
import platform
import time

from ..errors import BudgetNotMet
from .options import add_input_shape


def add_arguments(parser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="A bundle directory NAME.tfedge or its zip archive.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--edgetpu", dest="edgetpu", action="store_const", const=True, default=None,
                       help="Verify the Edge TPU variant (default: it when the delegate loads, else the CPU one).")
    where.add_argument("--cpu", dest="edgetpu", action="store_const", const=False,
                       help="Verify the CPU variant.")
    parser.add_argument("--threads", type=int, default=None, help="Interpreter threads.")
    add_input_shape(parser)
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only.")


def verify_bundle(path, edgetpu: bool | None = None, threads: int | None = None, input_shapes=()) -> dict:
    """Run every check; raises the first failure as a TfedgeError, returns the report when all pass.
    input_shapes: `--input-shape` texts for dynamic inputs (else the stored sample's shapes, the manifest's
    default, a dynamic batch 1: shapes.resolve_input_shapes)."""
    from ..bundle import choose_variant, compare_sample, load_arrays, open_bundle, variant_manifest
    from ..model import Model
    from ..runtime import get_runtime
    from ..shapes import resolve_input_shapes

    bundle = open_bundle(path)
    runtime = get_runtime()
    variant, why = choose_variant(bundle, edgetpu)
    report = {"bundle": str(path), "name": bundle.name, "checksums": f"ok ({bundle.files_checked} files)",
              "runtime": f"{runtime.name} {runtime.version}", "machine": platform.machine(),
              "python": platform.python_version(), "variant": variant, "why": why, "loaded": [],
              "min_runtime_release": (bundle.data.get("requires") or {}).get("min_runtime_release"),
              "sample": None}
    models = {}
    sample = bundle.data.get("sample")
    for name in ("cpu", variant):  # the CPU variant is the fallback: it must load too
        if bundle.variant(name) and name not in models:
            model = Model(bundle.path(bundle.variant(name)["model"]), threads, edgetpu=name == "edgetpu",
                          allocate=False)
            inputs = load_arrays(bundle.path(sample["input"]), model.inputs) if sample else []  # by name
            data_shapes = {p: a.shape for p, a in enumerate(inputs)} if len(inputs) == len(model.inputs) else None
            model.allocate(resolve_input_shapes(model, input_shapes, variant_manifest(bundle, name), data_shapes))
            models[name] = model
            report["loaded"].append(f"{name}: {models[name].path.name} ({len(bundle.variant(name).get('ops', []))} "
                                    f"op kinds)")
    if sample:
        model = models[variant]
        inputs = load_arrays(bundle.path(sample["input"]), model.inputs, sample.get("inputs"))  # by name: the
        expected = load_arrays(bundle.path(sample["expected"]), model.outputs, sample.get("outputs"))  # variants
        # may order their tensors differently
        started = time.perf_counter()
        outputs = model.predict(*inputs)
        elapsed_ms = (time.perf_counter() - started) * 1000
        result = compare_sample(outputs, expected, model.outputs, variant)
        report["sample"] = {**result, "origin": sample.get("origin"), "ms": round(elapsed_ms, 3)}
        if not result["ok"]:
            raise BudgetNotMet(
                f"bundle {bundle.name}: the {variant} variant's output on the stored sample differs from the "
                f"expected one by {result['max_abs_diff']:.4g} (tolerance {result['tolerance']:.4g}"
                f"{'; ' + result['reason'] if result.get('reason') else ''})",
                hint="the runtime on this device computes differently; check `tfedge-run info` and the runtime")
    return report


def run(args) -> int:
    report = verify_bundle(args.bundle, args.edgetpu, args.threads, args.input_shapes)
    if args.as_json:
        print(json.dumps(report, indent=2))
        return 0
    sample = report["sample"]
    rows = [
        ("checksums", report["checksums"]),
        ("runtime", (f"{report['runtime']} ({report['machine']}, Python {report['python']}); bundle needs "
                    f"TFLite runtime >= {report['min_runtime_release'] or 'unknown'}")),
        ("variant", f"{report['variant']} ({report['why']})"),
        ("loads", "; ".join(report["loaded"])),
        ("sample", "none stored (Edge TPU-only bundle)" if sample is None else
         f"matches ({sample['origin']}): max abs diff {sample['max_abs_diff']:.3g} <= tolerance "
         f"{sample['tolerance']:.3g}, {sample['ms']:.2f} ms"),
    ]
    width = max(len(key) for key, _ in rows)
    print(f"verify {report['name']}:")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    print("ok")
    return 0
