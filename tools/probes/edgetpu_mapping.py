#!/usr/bin/env python3
"""How much of a model the Edge TPU pre-check predicts on the TPU: docs/edgetpu.md's "Measured here" figures.

A one-off question kept as a probe (about 2 min on 2 shared cores): the digits CNN, and keras-app MobileNetV2
and MobileNetV3Small with random weights at 96x96 (no weights can be downloaded; only the op mapping matters),
each converted with `--quant edgetpu` (random image-like calibration for the keras-app models, the digits
calibration images for digits), then `tfedge edgetpu check`. Prints a table, then the JSON on the last line.

Usage: .venv/bin/python tools/probes/edgetpu_mapping.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {  # name -> (source, input shape or None, calibration)
    "digits CNN": (str(ROOT / "models" / "digits" / "digits.keras"), None, str(ROOT / "models" / "digits" / "calib")),
    "MobileNetV2 96x96": ("keras-app:MobileNetV2", (1, 96, 96, 3), "random-images"),
    "MobileNetV3Small 96x96": ("keras-app:MobileNetV3Small", (1, 96, 96, 3), "random-images"),
}


def probe(name: str, out: Path, images: Path) -> dict:
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions
    from tfedge.edgetpu.check import check

    source, shape, calib = SOURCES[name]
    path = out / (name.split()[0] + "_edgetpu.tflite")
    options = LoadOptions(weights="none", input_shapes=[shape]) if shape else LoadOptions()
    convert(ConvertRequest(source=source, output=path, mode="edgetpu", load=options,
                           calib=str(images) if calib == "random-images" else calib, verify_count=2,
                           show_progress=False))
    report = check(path)
    first_cpu = next((op for op in report["ops"] if not op["on_tpu"]), None)
    return {"model": name, "ops_on_tpu": report["ops_on_tpu"], "ops_total": report["ops_total"],
            "share_macs_on_tpu": report["share_macs_on_tpu"], "macs_total": report["macs_total"],
            "tpu_subgraphs": report["tpu_subgraphs"],
            "first_cpu_op": None if first_cpu is None else f"#{first_cpu['index']} {first_cpu['op']}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Keep the converted models here (default: a temp dir).")
    args = parser.parse_args(argv)
    import numpy as np

    with tempfile.TemporaryDirectory() as temp:
        out = args.out or Path(temp)
        out.mkdir(parents=True, exist_ok=True)
        images = out / "random_images.npy"
        np.save(images, np.random.default_rng(0).random((8, 96, 96, 3), dtype=np.float32))
        rows = [probe(name, out, images) for name in SOURCES]
    print(f"{'model':<24} {'ops on TPU':>12} {'MACs on TPU':>12} {'M MACs':>8} {'subgraphs':>9}  first CPU op")
    for row in rows:
        share = "-" if row["share_macs_on_tpu"] is None else f"{row['share_macs_on_tpu'] * 100:.1f} %"
        print(f"{row['model']:<24} {row['ops_on_tpu']:>5} of {row['ops_total']:<4} {share:>12} "
              f"{(row['macs_total'] or 0) / 1e6:>8.1f} {row['tpu_subgraphs']:>9}  {row['first_cpu_op'] or '-'}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
