"""Text -> model inputs with the `tokenizers` library and the model's bundled `tokenizer.json` (no TensorFlow).

A text model (`tfedge convert hf:DIR`) takes `token_ids` and `padding_mask`, int32 [1, T]. Its manifest's
`text` section names the tokenizer file and the sequence length T the model was converted with.
`tokenizers` is the optional extra `tfedge-device[text]`. TextModel runs any text model; TextClassifier adds
top-k classes for sequence-classification models (`tfedge-run classify MODEL --text ...`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .errors import BadInput, EnvironmentMissing


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise EnvironmentMissing("text models need the tokenizers library",
                                 hint="pip install 'tfedge-device[text]'") from None
    return tokenizers


class TextEncoder:
    """Sentences -> (token_ids, padding_mask), each int32 [N, length].

    Args:
      path: tokenizer.json (Hugging Face tokenizers format; adds [CLS]/[SEP] itself).
      seq_len: the longest sequence the model takes; longer text is truncated to it.
    """

    def __init__(self, path, seq_len: int):
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"tokenizer file not found: {path}", hint="it is written beside the model by tfedge convert")
        tokenizers = _tokenizers()
        try:
            self.tokenizer = tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception for a broken file
            raise BadInput(f"cannot read tokenizer {path.name}: {' '.join(str(err).split())[:200]}") from None
        self.seq_len = int(seq_len)
        self.tokenizer.enable_truncation(self.seq_len)
        self.tokenizer.no_padding()

    def token_lengths(self, sentences: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(sentences))]

    def encode(self, sentences: list[str], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pad (with id 0 and mask 0) to `length` (default: the model's seq_len)."""
        length = length or self.seq_len
        encodings = self.tokenizer.encode_batch(list(sentences))
        token_ids = np.zeros((len(encodings), length), np.int32)
        padding_mask = np.zeros((len(encodings), length), np.int32)
        for row, encoding in enumerate(encodings):
            ids = encoding.ids[:length]
            token_ids[row, :len(ids)] = ids
            padding_mask[row, :len(ids)] = 1
        return token_ids, padding_mask


def encoder_for(model_path, manifest: dict | None) -> TextEncoder:
    """The TextEncoder a text model's manifest describes (tokenizer file beside the model)."""
    text = (manifest or {}).get("text")
    if not text:
        raise BadInput(f"{Path(model_path).name} is not a text model (its manifest has no 'text' section)",
                       hint="convert it with tfedge convert hf:DIR")
    return TextEncoder(Path(model_path).parent / text["tokenizer"], text["seq_len"])


class TextModel:
    """A converted text model with its tokenizer: sentences -> outputs, one sentence per inference.

    Length-adaptive: when the model was converted with a dynamic sequence dimension (input shape signature
    [1, -1]), each sentence runs at its real token length instead of the full seq_len.
    """

    def __init__(self, path, threads: int | None = None, adaptive: bool = True):
        from .manifest import read_manifest
        from .model import Model

        self.model = Model(path, threads=threads)
        self.manifest = read_manifest(path) or {}
        self.encoder = encoder_for(path, self.manifest)
        names = [spec.name for spec in self.model.inputs]
        order = {name: i for i, name in enumerate(names)}
        # inputs are named ..token_ids.. / ..padding_mask.. by the converter; keep the model's order
        self.token_index = next((order[n] for n in names if "token_ids" in n), 0)
        self.dynamic = any(d == -1 for d in self.model.inputs[0].shape)
        self.adaptive = adaptive and self.dynamic
        self._length = None

    def _fit(self, length: int) -> None:
        if length != self._length:
            self.model.resize_inputs([(1, length)] * len(self.model.inputs))
            self._length = length

    def run(self, sentence: str) -> list[np.ndarray]:
        """One sentence -> the model's outputs (real-valued)."""
        return self.model.predict(*self.prepare(sentence))

    def prepare(self, sentence: str) -> list[np.ndarray]:
        """One sentence -> the model's input arrays (tokenized; the input resized to its length if adaptive)."""
        if self.adaptive:
            length = max(2, min(self.encoder.token_lengths([sentence])[0], self.encoder.seq_len))
        else:
            length = self.encoder.seq_len
        if self.dynamic:
            self._fit(length)
        token_ids, padding_mask = self.encoder.encode([sentence], length)
        return [token_ids, padding_mask] if self.token_index == 0 else [padding_mask, token_ids]


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    return unit @ unit.T


class TextClassifier:
    """A sequence-classification text model (tfedge convert hf:DIR --task sequence-classification): text ->
    top-k classes, labels from the manifest (config.json's id2label) or a --labels file."""

    def __init__(self, path, threads: int | None = None, labels=None, adaptive: bool = True):
        from .classify import resolve_labels

        self.path = Path(path)
        self.text_model = TextModel(path, threads=threads, adaptive=adaptive)
        task = self.text_model.manifest.get("task") or "sentence-embedding"
        if task != "sequence-classification":
            raise BadInput(f"{self.path.name} is a {task} model, not a text classifier",
                           hint="use tfedge-run embed for sentence embeddings")
        self.labels, self.labels_origin = resolve_labels(self.text_model.model, self.text_model.manifest, labels)

    def classify(self, text: str, top: int = 5, threshold: float = 0.1, count: int = 1):
        """One text -> a classify.Classified (kind "text"); count > 1 repeats and times the inference."""
        from .classify import Classified, probabilities, timed_runs, top_k

        started = time.perf_counter()
        values = self.text_model.prepare(text)
        prepared = time.perf_counter()
        outputs, times = timed_runs(self.text_model.model, values, count)
        scores = probabilities(outputs[0], self.text_model.manifest)
        return Classified(text, top_k(scores, top, threshold, self.labels), (prepared - started) * 1e3, times,
                          kind="text")

    def describe(self) -> dict:
        runtime = self.text_model.model.runtime
        return {"model": str(self.path), "task": "sequence-classification",
                "runtime": f"{runtime.name} {runtime.version}", "length_adaptive": self.text_model.adaptive,
                "labels": self.labels_origin or "none (class ids)"}
