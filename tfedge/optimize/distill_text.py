"""Embedding distillation: a small keras-hub BERT learns to reproduce a sentence-embedding teacher (hf:DIR).

On unlabeled sentences (DATA: a .txt, one a line), the student (token_ids, padding_mask -> backbone ->
the teacher's pooling -> a Dense projection to the teacher's width when they differ -> L2 normalisation
when the teacher normalises) is trained to maximise cosine similarity with the teacher's embeddings,
computed once. Temperature and alpha do not apply (there are no classes). The student is built from
`--student bert:LAYERS,HIDDEN[,HEADS]` with the teacher's vocabulary and tokenizer, and is written as a
SavedModel directory or converted to OUT.tflite with the teacher's tokenizer and `text` manifest section,
so `tfedge-run` embeds with it like with the teacher.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from tfedge_device.fileio import atomic_path, write_bytes

from ..errors import BadInput
from ..tf_loader import quiet_native, tensorflow
from .common import output_kind
from .train import fit, set_seed

log = logging.getLogger(__name__)

DEFAULT_SEQ_LEN = 64


def parse_student(spec: str) -> dict:
    """'bert:LAYERS,HIDDEN[,HEADS]' -> BertBackbone sizes (intermediate = 4 x hidden, heads = hidden / 64)."""
    try:
        kind, sizes = spec.split(":", 1)
        numbers = [int(part) for part in sizes.split(",")]
    except ValueError:
        numbers, kind = [], ""
    if kind != "bert" or len(numbers) not in (2, 3) or min(numbers) < 1:
        raise BadInput(f"--student {spec!r}: a text student is bert:LAYERS,HIDDEN[,HEADS], e.g. bert:2,128")
    layers, hidden = numbers[:2]
    heads = numbers[2] if len(numbers) == 3 else max(1, hidden // 64)
    if hidden % heads:
        raise BadInput(f"--student {spec!r}: HIDDEN ({hidden}) must be a multiple of HEADS ({heads})")
    return {"num_layers": layers, "hidden_dim": hidden, "num_heads": heads, "intermediate_dim": 4 * hidden}


def build_student(sizes: dict, teacher, seq_len: int, width: int):
    """A Keras 3 sentence-embedding model on (token_ids, padding_mask) int32 [N, seq_len]."""
    import keras
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=teacher.backbone.vocabulary_size,
                                             max_sequence_length=seq_len, dropout=0.0, **sizes)
    token_ids = keras.Input((seq_len,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((seq_len,), dtype="int32", name="padding_mask")
    sequence = backbone({"token_ids": token_ids, "segment_ids": keras.ops.zeros_like(token_ids),
                         "padding_mask": padding_mask})["sequence_output"]
    mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
    if teacher.pooling == "cls":
        pooled = sequence[:, 0]
    else:  # mean (the sentence-transformers default); max/mean_sqrt_len teachers still get a mean student
        pooled = keras.ops.sum(sequence * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1e-9)
    if sizes["hidden_dim"] != width:
        pooled = keras.layers.Dense(width, name="projection")(pooled)
    if teacher.normalize:
        pooled = keras.ops.normalize(pooled, axis=-1)
    return keras.Model([token_ids, padding_mask], pooled, name="student_embedder")


def teacher_embeddings(teacher, token_ids: np.ndarray, padding_mask: np.ndarray, batch: int = 32) -> np.ndarray:
    tf = tensorflow()
    chunks = []
    with quiet_native():
        for start in range(0, len(token_ids), batch):
            chunks.append(np.asarray(teacher._call(tf.constant(token_ids[start:start + batch]),
                                                   tf.constant(padding_mask[start:start + batch]))))
    return np.concatenate(chunks)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    from .measure import mean_cosine as cosine

    return cosine(a, b)


def distill_embeddings(request, options) -> dict:
    """Train a bert:L,H student on request.data (.txt) to match options.teacher (hf:DIR) -> result dict."""
    if not options.teacher.startswith("hf:"):  # bad input is told before TensorFlow loads
        raise BadInput("embedding distillation (a .txt of sentences) needs an hf:DIR teacher")
    kind = output_kind(Path(request.output))
    if kind == "h5":
        raise BadInput("a keras-hub student cannot be written as .h5: write OUT.tflite or a SavedModel directory")
    sizes = parse_student(request.model)
    tensorflow()  # quietly, before Keras imports it with all its native log lines
    import keras

    from ..convert.sources import LoadOptions, load_source
    from .data import load_data
    from .strategy import get_strategy

    seq_len = int(options.extra.get("seq_len") or DEFAULT_SEQ_LEN)
    strategy = get_strategy(request.strategy)
    set_seed(request.fit.seed)
    keras.utils.set_random_seed(request.fit.seed)
    teacher = load_source(options.teacher, LoadOptions(task="sentence-embedding", seq_len=seq_len))
    data = load_data(request.data, val=request.val)
    encoder = teacher.tokenizer()
    train_ids, train_mask = encoder.encode(data.sentences)
    val_ids, val_mask = encoder.encode(data.sentences_val)
    target, val_target = (teacher_embeddings(teacher, train_ids, train_mask),
                          teacher_embeddings(teacher, val_ids, val_mask))
    with strategy.scope():
        student = build_student(sizes, teacher, seq_len, target.shape[-1])
        student.compile(optimizer=keras.optimizers.Adam(request.fit.learning_rate),
                        loss=keras.losses.CosineSimilarity(axis=-1))
    training = fit(student, keras, [train_ids, train_mask], target, ([val_ids, val_mask], val_target),
                   request.fit, "distill (embeddings)")
    student_val = np.asarray(student.predict([val_ids, val_mask], verbose=0))
    teacher_params = int(teacher.backbone.count_params())
    student_params = int(student.count_params())
    result = {
        "technique": "distill", "teacher": options.teacher, "model": request.model, "data": data.describe(),
        "strategy": {"name": request.strategy, "replicas": strategy.num_replicas_in_sync},
        "training": training, "seq_len": seq_len, "params": student_params,
        "accuracy_before": None, "accuracy_after": None,
        "cosine_to_teacher": mean_cosine(student_val, val_target),
        "distill": {"teacher_params": teacher_params, "student_params": student_params,
                    "param_ratio": student_params / teacher_params, "student": sizes},
        "notes": teacher.notes + ["embedding distillation: --temperature and --alpha do not apply"],
    }
    result["tflite"] = text_variants(teacher, student, request.quant, (val_ids, val_mask), val_target)
    result["output"] = write_text_output(student, teacher, request, (val_ids, val_mask), result)
    return result


def text_variants(teacher, student, quant: str, samples: tuple, reference: np.ndarray) -> dict:
    """Teacher and student after conversion: size, gzip, cosine to the teacher's embeddings, latency."""
    from ..convert.converter import run_converter
    from ..convert.modes import ConvertContext, resolve_io_type
    from ..convert.registry import get_mode
    from .measure import calibration_samples, tflite_figures, to_tflite

    named = {"token_ids": samples[0], "padding_mask": samples[1]}
    figures = {}
    for name, mode in (("teacher float32", "float32"), (f"teacher {quant}", quant)):
        chosen = get_mode(mode)
        converter = teacher.converter()
        context = ConvertContext(samples=calibration_samples(list(samples)) if chosen.needs_calibration else None,
                                 io_type=resolve_io_type(chosen, None), show_progress=False)
        chosen.configure(converter, context)
        model_bytes = teacher.finalize_model(run_converter(converter, name, context))  # default [1, seq_len]
        figures[name] = {"mode": mode, **tflite_figures(model_bytes, named, None, reference)}
    for name, mode in (("student float32", "float32"), (f"student {quant}", quant)):
        figures[name] = {"mode": mode, **tflite_figures(to_tflite(student, mode, list(samples)), named, None,
                                                        reference)}
    return figures


def write_text_output(student, teacher, request, samples: tuple, result: dict) -> dict:
    output = Path(request.output)
    if output_kind(output) == "savedmodel":
        with atomic_path(output) as tmp, quiet_native():
            student.export(str(tmp), format="tf_saved_model", verbose=False)
        return {"path": str(output), "format": "SavedModel directory (tfedge convert --task needs hf:, so "
                                               "convert it with its token_ids/padding_mask inputs)"}
    from tfedge_device.manifest import read_manifest, write_manifest

    from ..convert.pipeline import ConvertRequest, convert
    from ..convert.registry import get_mode

    with tempfile.TemporaryDirectory(prefix="tfedge_distill_") as scratch:
        saved = Path(scratch) / "student"
        with quiet_native():
            student.export(str(saved), format="tf_saved_model", verbose=False)
        calib = None
        if get_mode(request.quant).needs_calibration:
            calib = Path(scratch) / "calib.npz"
            np.savez(calib, token_ids=samples[0], padding_mask=samples[1])
        converted = convert(ConvertRequest(source=str(saved), output=output, mode=request.quant,
                                           calib=str(calib) if calib else None,
                                           show_progress=request.fit.show_progress))
    manifest = read_manifest(output)
    for key in ("format", "model", "model_sha256"):
        manifest.pop(key, None)
    manifest["task"] = "sentence-embedding"
    manifest["text"] = dict(teacher.extra_manifest["text"])
    manifest["source"] = {"kind": "distilled", "location": request.model, "teacher": result["teacher"],
                          "inputs": manifest["source"]["inputs"]}
    manifest["optimization"] = {"technique": "distill", "cosine_to_teacher": result["cosine_to_teacher"],
                                **result["distill"]}
    write_bytes(output.parent / "tokenizer.json", teacher.tokenizer_path.read_bytes())
    write_manifest(output, manifest)
    return {"path": str(output), "format": f"TFLite ({request.quant}) + manifest + tokenizer.json",
            "convert": {k: converted[k] for k in ("output", "manifest", "mode", "size_bytes")}}
