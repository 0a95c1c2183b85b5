#!/usr/bin/env python3
"""The seeds' table: Transformer families on LiteRT, 1 thread, seq 128 / 224 px, per quantization mode.

Rows: BERT-base (12 layers, 768), DistilBERT (6, 768), TinyBERT-4 (4, 312), MiniLM-L6 (the real
all-MiniLM-L6-v2 checkpoint), ALBERT-base (12 shared layers, 768, embeddings 128), ViT-Tiny/16, DeiT-Tiny and DINOv2-small/14
at 224 px. All but MiniLM are keras-hub backbones at the published architecture with RANDOM weights (no weights
are downloaded): their speed and size are real, their accuracy figures say how far each mode moves the
output of the same random network, not task accuracy. Text models run as sentence embedders (mean pooling)
with MiniLM's WordPiece tokenizer; vision models output the [CLS] embedding.

Through tfedge's own path (hf:DIR -> tfedge.convert -> LiteRT). Text: calibration on the even lines of
models/text/sentences.txt, agreement on the odd lines (held out). Vision: calibration on 224 px crops of
scikit-image's astronaut/coffee/rocket photos, agreement on crops of chelsea/immunohistochemistry (held out).
Agreement = cosine of each output to the float source (keras-hub in TensorFlow), min and mean. Latency: median
invoke at 128 tokens / 224 px, the modes of one family timed in turn (interleaved). GFLOPs: 2 x MACs of the
float32 graph (tfedge.analysis). Speed-up: against float32 of the same family, same run.

Rows accumulate in OUT/results.json, so the table can be built in pieces on a shared machine:
    tools/bench_families.py --families tinybert4,vit-tiny --modes float32,dynamic,int8 --out .cache/bench
    tools/bench_families.py --table --out .cache/bench        # the table of everything measured so far
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from bench_host import cpu_model
from bench_transformer import minilm_dir  # the real all-MiniLM-L6-v2 directory

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "models" / "text" / "sentences.txt"
SEQ_LEN = 128
VOCAB = 30522  # MiniLM's (BERT uncased) WordPiece vocabulary: its tokenizer.json feeds every text row
# name -> (keras-hub backbone, constructor arguments, what it stands for)
ARCHITECTURES = {
    "bert-base": ("BertBackbone", {"vocabulary_size": VOCAB, "num_layers": 12, "num_heads": 12, "hidden_dim": 768,
                                   "intermediate_dim": 3072, "max_sequence_length": 512}, "BERT-base uncased"),
    "distilbert": ("DistilBertBackbone", {"vocabulary_size": VOCAB, "num_layers": 6, "num_heads": 12,
                                          "hidden_dim": 768, "intermediate_dim": 3072, "max_sequence_length": 512},
                   "DistilBERT-base"),
    "tinybert4": ("BertBackbone", {"vocabulary_size": VOCAB, "num_layers": 4, "num_heads": 12, "hidden_dim": 312,
                                   "intermediate_dim": 1200, "max_sequence_length": 512}, "TinyBERT-4 (312)"),
    "minilm-l6": (None, {}, "all-MiniLM-L6-v2 (real weights)"),
    "albert-base": ("AlbertBackbone", {"vocabulary_size": VOCAB, "num_layers": 12, "num_heads": 12,
                                       "embedding_dim": 128, "hidden_dim": 768, "intermediate_dim": 3072,
                                       "num_groups": 1, "num_inner_repetitions": 1, "max_sequence_length": 512},
                    "ALBERT-base v2 (vocab 30522 here, 30000 real)"),
    "vit-tiny": ("ViTBackbone", {"image_shape": (224, 224, 3), "patch_size": (16, 16), "num_layers": 12,
                                 "num_heads": 3, "hidden_dim": 192, "mlp_dim": 768}, "ViT-Tiny/16, 224 px"),
    "deit-tiny": ("DeiTBackbone", {"image_shape": (224, 224, 3), "patch_size": 16, "num_layers": 12, "num_heads": 3,
                                   "hidden_dim": 192, "intermediate_dim": 768}, "DeiT-Tiny/16 distilled, 224 px"),
    "dinov2-small": ("DINOV2Backbone", {"image_shape": (224, 224, 3), "position_embedding_shape": (518, 518, 3),
                                        "patch_size": 14, "num_layers": 12, "num_heads": 6, "hidden_dim": 384,
                                        "intermediate_dim": 1536, "layer_scale_init_value": 1.0},
                     "DINOv2-small/14, 224 px (518-px position grid)"),
}
MODES = ("float32", "dynamic", "int8", "selective-int8", "auto")
PLAIN = "-plain"  # MODE-plain: MODE without tfedge.convert.rewrites (does each family gain from them?)
MIN_COSINE = 0.99  # the budget selective-int8 and auto search against (tfedge convert --min-cosine)
# What the seeds (the project's origin) claimed: parameters, GFLOPs, speed-up over BERT-base.
SEED_CLAIMS = {"bert-base": "110M / 10 GFLOPs", "distilbert": "66M / 5.5 GFLOPs / 1.8x",
               "tinybert4": "14M / 1.2 GFLOPs / 4x", "mobilebert": "24M / 2.4 GFLOPs / 3x"}
MISSING = {"mobilebert": "keras-hub 0.32 has no MobileBERT model (no backbone, no reader): not measured"}
CALIB_PHOTOS, HELD_OUT_PHOTOS = ("astronaut", "coffee", "rocket"), ("chelsea", "immunohistochemistry")


def build_dir(name: str, out: Path) -> Path:
    """A keras-hub preset directory at the architecture (random weights), with MiniLM's tokenizer for text."""
    import shutil

    if name == "minilm-l6":
        return minilm_dir()
    root = out / name
    if (root / "config.json").exists():
        return root
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    class_name, kwargs, _ = ARCHITECTURES[name]
    getattr(keras_hub.models, class_name)(**kwargs).save_to_preset(str(root))
    if "image_shape" not in kwargs:
        shutil.copy(minilm_dir() / "tokenizer.json", root / "tokenizer.json")
    return root


def photo_crops(names, folder: Path) -> Path:
    """224 px crops (4 corners + centre) of scikit-image's photos, as PNG files."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = image.size
        for i, (x, y) in enumerate(((0, 0), (w - 224, 0), (0, h - 224), (w - 224, h - 224),
                                    ((w - 224) // 2, (h - 224) // 2))):
            image.crop((x, y, x + 224, y + 224)).save(folder / f"{name}_{i}.png")
    return folder


def data_for(name: str, out: Path) -> tuple[str, list, bool]:
    """(calibration path, held-out items, is vision)."""
    if "image_shape" in ARCHITECTURES[name][1]:
        return (str(photo_crops(CALIB_PHOTOS, out / "photos_calib")),
                sorted(photo_crops(HELD_OUT_PHOTOS, out / "photos_held_out").glob("*.png")), True)
    from tfedge.convert.hf_source import read_sentences

    sentences = read_sentences(SENTENCES)
    calib = out / "calibration.txt"
    calib.write_text("\n".join(sentences[0::2][:32]) + "\n", encoding="utf-8")
    return str(calib), sentences[1::2][:24], False


def measure(name: str, modes: list[str], out: Path, runs: int) -> dict:
    from tfedge_device.preprocess import load_image

    from tfedge.analysis.inspection import summary
    from tfedge.analysis.latency import interleaved_latency_ms
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions, load_source
    from tfedge.convert.verify import cosine

    root = build_dir(name, out)
    calib, held_out, vision = data_for(name, out)
    load = LoadOptions() if vision else LoadOptions(task="sentence-embedding", seq_len=SEQ_LEN)
    source = load_source(f"hf:{root}", load)
    if vision:
        spec = source.image_spec(source.preprocess or "unit")
        samples = [[load_image(path, spec)[None]] for path in held_out]
    else:
        samples = source.encode(held_out)
    references = [source.predict(sample)[0] for sample in samples]
    params = int(source.backbone.count_params())
    rows, files = {}, {}
    for mode in ["float32"] + [m for m in modes if m != "float32"]:
        path = files[mode] = out / f"{name}_{mode}.tflite"
        started = time.perf_counter()
        try:
            convert(ConvertRequest(source=f"hf:{root}", output=path, mode=mode.removesuffix(PLAIN),
                                   calib=calib, calib_count=32, verify_count=4,
                                   budgets={"min_cosine": MIN_COSINE} if mode in ("selective-int8", "auto") else {},
                                   load=replace(load, rewrites=not mode.endswith(PLAIN)), show_progress=False))
        except Exception as err:  # noqa: BLE001 - a row says what failed; the table goes on
            rows[mode] = {"mode": mode, "error": " ".join(str(err).split())[:160]}
            files.pop(mode)
            continue
        convert_s = time.perf_counter() - started
        manifest = json.loads(path.with_suffix(".json").read_text())
        outputs = [run_tflite(path, sample) for sample in samples]
        cosines = [cosine(ref, got) for ref, got in zip(references, outputs)]
        search = manifest.get("search") or {}
        rows[mode] = {"mode": mode if mode != "auto" else f"auto -> {(search.get('auto') or {}).get('chosen')}",
                      "size_mb": round(path.stat().st_size / 1e6, 2), "convert_s": round(convert_s, 1),
                      "cosine_min": round(min(cosines), 5), "cosine_mean": round(float(np.mean(cosines)), 5)}
        if mode == "selective-int8":
            rows[mode]["float_ops"] = (search.get("selective") or {}).get("float_ops")
    figures = summary(files["float32"])
    latencies = interleaved_latency_ms({m: files[m].read_bytes() for m in files}, samples[0], runs=runs)
    for mode, latency in latencies.items():
        rows[mode]["latency_ms"] = latency
        rows[mode]["speedup"] = round(latencies["float32"] / latency, 2)
    return {"family": name, "stands_for": ARCHITECTURES[name][2], "random_weights": name != "minilm-l6",
            "params": params, "gflops": round(figures["flops"] / 1e9, 3) if figures["flops"] else None,
            "input": "224 px" if vision else f"{SEQ_LEN} tokens", "held_out": len(samples),
            "modes": rows, "measured": stamp()}


def merge(results: dict, other: Path, out: Path) -> None:
    """Rows of OTHER/results.json into `results` (a family's modes are united; OTHER's row wins), models copied."""
    import shutil

    for name, result in json.loads((other / "results.json").read_text()).items():
        if name in results:
            results[name]["modes"].update(result["modes"])
        else:
            results[name] = result
        for path in other.glob(f"{name}_*"):
            if path.suffix in (".tflite", ".json"):
                shutil.copy(path, out / path.name)
        for path in other.glob("tokenizer.json"):
            shutil.copy(path, out / path.name)


def retime(results: dict, out: Path, runs: int) -> None:
    """Time again, interleaved, every model of each family in `results` (their .tflite files in OUT): one quiet
    moment for all rows. The first held-out input, made on the device side (tokenizer.json / the manifest's
    image preprocessing)."""
    from tfedge_device.preprocess import ImageSpec, load_image
    from tfedge_device.text import encoder_for

    from tfedge.analysis.latency import interleaved_latency_ms

    for name, result in results.items():
        files = {mode: out / f"{name}_{mode}.tflite" for mode, row in result["modes"].items() if "error" not in row}
        files = {mode: path for mode, path in files.items() if path.exists()}
        if "float32" not in files:
            continue
        manifest = json.loads(files["float32"].with_suffix(".json").read_text())
        if manifest.get("text"):
            sample = list(encoder_for(files["float32"], manifest).encode([data_for(name, out)[1][0]]))
        else:
            spec = ImageSpec.from_dict(manifest["preprocess"]["image"])
            sample = [load_image(data_for(name, out)[1][0], spec)[None]]
        latencies = interleaved_latency_ms({m: p.read_bytes() for m, p in files.items()}, sample, runs=runs)
        for mode, latency in latencies.items():
            result["modes"][mode].update(latency_ms=latency, speedup=round(latencies["float32"] / latency, 2))
        result["timed"] = stamp()
        print(f"timed {name} again", file=sys.stderr)


def run_tflite(path: Path, sample) -> np.ndarray:
    from tfedge_device.model import Model

    model = Model(path, threads=1)
    return model.predict(*sample)[0]


def stamp() -> str:
    return f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {cpu_model()}"


def print_table(results: dict) -> None:
    print(f"{'family':12s} {'params':>8s} {'GFLOPs':>7s} {'mode':22s} {'MB':>6s} {'ms':>8s} {'x fp32':>7s} "
          f"{'cos min':>8s} {'cos mean':>8s}  seeds' claim")
    for name in list(ARCHITECTURES) + list(MISSING):
        if name in MISSING:
            print(f"{name:12s} {'':8s} {'':7s} {MISSING[name]}  | claim {SEED_CLAIMS.get(name, '')}")
            continue
        if name not in results:
            continue
        result = results[name]
        tag = "" if not result["random_weights"] else " (random)"
        for i, row in enumerate(result["modes"].values()):
            head = (f"{name:12s} {result['params'] / 1e6:7.1f}M {result['gflops'] or 0:7.2f}" if i == 0
                    else f"{'':12s} {'':8s} {'':7s}")
            claim = SEED_CLAIMS.get(name, "") if i == 0 else ""
            if "error" in row:
                print(f"{head} {row['mode']:22s} failed: {row['error']}")
                continue
            print(f"{head} {row['mode']:22s} {row['size_mb']:6.1f} {row.get('latency_ms', 0):8.2f} "
                  f"{row.get('speedup', 0):7.2f} {row['cosine_min']:8.4f} {row['cosine_mean']:8.4f}  "
                  f"{claim}{tag if i == 0 else ''}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(ARCHITECTURES), help="comma-separated: "
                        + ", ".join(ARCHITECTURES))
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES) + "; MODE-plain: without export rewrites")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench_families")
    parser.add_argument("--table", action="store_true", help="print the table of OUT/results.json only")
    parser.add_argument("--retime", action="store_true", help="time OUT's models again, all in one run")
    parser.add_argument("--merge", nargs="+", type=Path, default=[], metavar="DIR",
                        help="first merge the rows (and model files) of other OUT directories into OUT")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for other in args.merge:
        merge(results, other, args.out)
    if args.retime:
        retime(results, args.out, args.runs)
        results_file.write_text(json.dumps(results, indent=2))
    elif not args.table:
        for name in args.families.split(","):
            if name not in ARCHITECTURES:
                sys.exit(f"unknown family {name!r}: choose from {', '.join(ARCHITECTURES)}")
            started = time.perf_counter()
            results[name] = measure(name, args.modes.split(","), args.out, args.runs)
            print(f"measured {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            results_file.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(json.dumps({"seq_len": SEQ_LEN, "image_px": 224, "threads": 1, "min_cosine": MIN_COSINE,
                      "results": results, "seed_claims": SEED_CLAIMS, "missing": MISSING}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
