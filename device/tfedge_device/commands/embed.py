"""`tfedge-run embed MODEL --text "..." [--text ...] [--json]`: sentence embeddings on the device.

Tokenizes with the bundled tokenizer.json (`tokenizers`, extra `tfedge-device[text]`), runs the model on the
device runtime, prints each embedding's size and time and, for several texts, their cosine similarities.
A text classifier (task sequence-classification) gets its top class and score per text instead
(`tfedge-run classify MODEL --text ...` gives its top-k with pycoral's options).
"""

from __future__ import annotations

import json
import time

from ..errors import BadInput


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="A text model (.tflite) converted by tfedge convert hf:DIR.")
    parser.add_argument("-t", "--text", action="append", default=[], help="A sentence (repeat for several).")
    parser.add_argument("-f", "--file", help="A UTF-8 file of sentences, one a line.")
    parser.add_argument("--fixed", action="store_true",
                        help="Always run at the full sequence length (default: each sentence's real length "
                             "when the model allows it).")
    parser.add_argument("--threads", type=int, default=None, help="Interpreter threads.")
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only.")


def read_texts(args) -> list[str]:
    texts = list(args.text)
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as handle:
                texts += [line.strip() for line in handle if line.strip()]
        except FileNotFoundError:
            raise BadInput(f"text file not found: {args.file}") from None
        except UnicodeDecodeError:
            raise BadInput(f"{args.file} is not UTF-8 text") from None
    if not texts:
        raise BadInput("no text given", hint='pass --text "a sentence" (repeatable) or --file FILE')
    return texts


def embed(model_path, texts: list[str], threads: int | None = None, adaptive: bool = True) -> dict:
    from ..text import TextModel

    return embed_texts(TextModel(model_path, threads=threads, adaptive=adaptive), texts, model_path)


def embed_texts(model, texts: list[str], model_path) -> dict:
    """Texts through a loaded TextModel -> the result `--json` prints (also the server's :embed answer)."""
    import numpy as np

    from ..text import cosine_matrix

    task = model.manifest.get("task") or "sentence-embedding"
    vectors, times = [], []
    for text in texts:
        started = time.perf_counter()
        vectors.append(np.asarray(model.run(text)[0], np.float32).reshape(-1))
        times.append((time.perf_counter() - started) * 1e3)
    matrix = np.stack(vectors)
    if task == "sequence-classification":
        from ..classify import probabilities

        matrix = probabilities(matrix, model.manifest)
        labels = model.manifest.get("labels") or [str(i) for i in range(matrix.shape[1])]
        best = matrix.argmax(axis=1)
        return {"model": str(model_path), "task": task, "texts": texts, "length_adaptive": model.adaptive,
                "ms": [round(t, 3) for t in times], "scores": matrix.round(6).tolist(),
                "classes": [{"id": int(i), "label": labels[i], "score": round(float(row[i]), 6)}
                            for i, row in zip(best, matrix)]}
    return {"task": task, "model": str(model_path), "dim": int(matrix.shape[1]), "texts": texts,
            "length_adaptive": model.adaptive, "ms": [round(t, 3) for t in times],
            "embeddings": matrix.round(6).tolist(), "cosine": cosine_matrix(matrix).round(6).tolist()}


def run(args) -> int:
    from ..bundle import resolve_model_args

    resolve_model_args(args, edgetpu_allowed=False)  # a bundle -> its checked CPU model
    result = embed(args.model, read_texts(args), args.threads, adaptive=not args.fixed)
    if args.as_json:
        print(json.dumps(result))
        return 0
    if "classes" in result:
        for text, ms, top in zip(result["texts"], result["ms"], result["classes"]):
            print(f"{top['label']} {top['score']:.4f}  {ms:.2f} ms  {text[:70]}")
        return 0
    for i, (text, ms) in enumerate(zip(result["texts"], result["ms"])):
        print(f"[{i}] dim {result['dim']}  {ms:.2f} ms  {text[:70]}")
    if len(result["texts"]) > 1:
        print("cosine similarity:")
        for i, row in enumerate(result["cosine"]):
            print(f"  [{i}] " + " ".join(f"{value:6.3f}" for value in row))
    return 0
