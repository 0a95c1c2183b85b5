"""`hf:DIR` sources: a Hugging Face directory (or a keras-hub preset) -> a text or vision model.

The family comes from config.json's `model_type` (tfedge.convert.hf_families: BERT, DistilBERT, ALBERT,
RoBERTa, XLM-RoBERTa, ViT, DeiT); keras-hub reads the backbone offline from `config.json` +
`model.safetensors`. On top: the checkpoint's own task head (tfedge.convert.hf_heads: `*ForSequenceClassification`,
`*ForImageClassification`), or what sentence-transformers' config in DIR says (`modules.json`,
`1_Pooling/config.json`: mean / CLS / max pooling, Normalize), or a head trained elsewhere
(`classifier.weights.h5`; random otherwise, and said). Text models take `token_ids` and `padding_mask`
(int32, batch 1, sequence length resizable on the device); their tokenizer (`tokenizer.json`) travels beside
the converted model and is named in the manifest's `text` section. Vision models take one image [1, H, W, 3]
normalised as the directory's `preprocessor_config.json` says, recorded in the manifest (tfedge.convert.hf_vision).

Also registers the text calibration loader: a `.txt` file of sentences, one a line, tokenized with the
source's tokenizer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..tf_loader import quiet_native, tensorflow
from .hf_families import read_json
from .sources import LoadOptions, SourceModel, tree_sha256

log = logging.getLogger(__name__)

TASKS = ("sentence-embedding", "sequence-classification")
DEFAULT_SEQ_LEN = 128
TOKENIZER_FILE = "tokenizer.json"
# sentence-transformers' Pooling config keys -> tfedge pooling names
# (sentence_transformers/models/Pooling.py; the first true one wins, as mean is the common default).
POOLING_KEYS = (("pooling_mode_mean_tokens", "mean"), ("pooling_mode_cls_token", "cls"),
                ("pooling_mode_max_tokens", "max"), ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"))


def sentence_transformers_head(root: Path) -> tuple[str, bool]:
    """(pooling, normalize) from modules.json / 1_Pooling/config.json; ("mean", False) when absent."""
    modules_file = root / "modules.json"
    if not modules_file.exists():
        return "mean", False
    modules = read_json(modules_file)
    types = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    pooling = "mean"
    if "Pooling" in types:
        config_file = root / types["Pooling"].get("path", "1_Pooling") / "config.json"
        if config_file.exists():
            config = read_json(config_file)
            pooling = next((name for key, name in POOLING_KEYS if config.get(key)), "mean")
    return pooling, "Normalize" in types


def tokenizer_lowercase(root: Path) -> bool:
    config_file = root / "tokenizer_config.json"
    if config_file.exists():
        return bool(read_json(config_file).get("do_lower_case", True))
    return True


class TransformerSource(SourceModel):
    """Backbone + pooling (+ L2 normalisation) or + classification head, on (token_ids, padding_mask)."""

    kind = "hf"

    def __init__(self, backbone, root: Path, task: str, seq_len: int, pooling: str, normalize: bool,
                 head, options: LoadOptions, segment_ids: bool = True):
        self.backbone = backbone
        self.head = head
        self.segment_ids = segment_ids
        self.pooling = pooling
        self.normalize = normalize
        self.seq_len = seq_len
        raw = [("token_ids", (1, seq_len), "int32"), ("padding_mask", (1, seq_len), "int32")]
        super().__init__(f"hf:{root}", tree_sha256(root), raw, options)
        self.task = task
        self.root = root
        self.tokenizer_path = root / TOKENIZER_FILE
        self.extra_files = {TOKENIZER_FILE: self.tokenizer_path}
        self.extra_manifest = {"text": {
            "tokenizer": TOKENIZER_FILE, "seq_len": seq_len, "lowercase": tokenizer_lowercase(root),
            "pooling": pooling if task == "sentence-embedding" else None,
            "normalize": normalize if task == "sentence-embedding" else None,
            "inputs": ["token_ids", "padding_mask"], "dynamic_length": True,
        }}
        self._tokenizer = None
        self._rewrite = options.rewrites
        self._export = None

    def _trace(self):
        """Traced with a dynamic sequence dimension [1, None]: the converted model can be resized on the
        device to each sentence's real length (`finalize_model` makes [1, seq_len] its default shape)."""
        tf = tensorflow()
        signature = [tf.TensorSpec((1, None), tf.int32, name=spec.name) for spec in self.inputs]

        def serve(token_ids, padding_mask):
            return tuple(tf.nest.flatten(self._call(token_ids, padding_mask)))

        with quiet_native():
            return tf.function(serve, input_signature=signature).get_concrete_function()

    def concrete_function(self):
        """The model as keras-hub built it: what every conversion is verified against."""
        if self._concrete is None:
            self._concrete = self._trace()
        return self._concrete

    def export_function(self):
        """The same model traced with tfedge.convert.rewrites (unless --no-rewrites): what the converter converts."""
        if not self._rewrite:
            return self.concrete_function()
        if self._export is None:
            from .hf_families import rewritten_export

            self._export = rewritten_export(self, self._trace)
        return self._export

    def finalize_model(self, model_bytes: bytes) -> bytes:
        """Set the inputs' default shape to [1, seq_len] (shape signature stays [1, -1]), so the model
        allocates at seq_len, as tools and verification expect, and resizes to shorter inputs on request."""
        return default_input_shape(model_bytes, (1, self.seq_len))

    def _call(self, token_ids, padding_mask):
        tf = tensorflow()
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self.segment_ids:
            inputs["segment_ids"] = tf.zeros_like(token_ids)
        outputs = self.backbone(inputs, training=False)
        sequence, pooled = ((outputs["sequence_output"], outputs.get("pooled_output"))
                            if isinstance(outputs, dict) else (outputs, None))
        if self.head is not None:
            return self.head.call(sequence, pooled)
        return pool(sequence, padding_mask, self.pooling, self.normalize)

    def _trackable(self):
        return self.backbone

    def tokenizer(self):
        if self._tokenizer is None:
            from tfedge_device.text import TextEncoder

            self._tokenizer = TextEncoder(self.tokenizer_path, self.seq_len)
        return self._tokenizer

    def encode(self, sentences: list[str]) -> list[list[np.ndarray]]:
        """Sentences -> samples [token_ids, padding_mask], each [1, seq_len] int32."""
        encoder = self.tokenizer()
        return [list(encoder.encode([sentence])) for sentence in sentences]


def default_input_shape(model_bytes: bytes, shape: tuple) -> bytes:
    """Rewrite the default shape of a TFLite model's dynamic inputs (flatbuffer edit with TF's schema)."""
    tensorflow()
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    for subgraph in model.subgraphs[:1]:
        for index in subgraph.inputs:
            tensor = subgraph.tensors[index]
            if tensor.shapeSignature is not None and len(tensor.shapeSignature) == len(shape):
                tensor.shape = np.array(shape, dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def pool(sequence, padding_mask, pooling: str, normalize: bool):
    """sentence-transformers' Pooling (+ Normalize) on [1, T, H] with a [1, T] mask."""
    tf = tensorflow()
    mask = tf.cast(padding_mask, sequence.dtype)[:, :, None]
    if pooling == "cls":
        pooled = sequence[:, 0]
    elif pooling == "max":
        pooled = tf.reduce_max(sequence + (mask - 1.0) * 1e9, axis=1)
    else:
        total = tf.reduce_sum(sequence * mask, axis=1)
        count = tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)
        pooled = total / (tf.sqrt(count) if pooling == "mean_sqrt_len" else count)
    if normalize:
        pooled = pooled / tf.maximum(tf.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled


def read_config(root: Path) -> dict:
    if not root.is_dir():
        raise BadInput(f"hf: source directory not found: {root}")
    if not (root / "config.json").exists():
        raise BadInput(f"{root} has no config.json: not a Hugging Face model directory")
    config = read_json(root / "config.json")
    if not isinstance(config, dict):
        raise BadInput(f"{root}/config.json is not a JSON object")
    return config


def text_task(root: Path, config: dict, options: LoadOptions) -> str:
    from .hf_heads import head_kind

    default = ("sentence-embedding" if (root / "modules.json").exists() else
               "sequence-classification" if head_kind(config) == "ForSequenceClassification" else None)
    task = options.task or default
    if task not in TASKS:
        raise BadInput(f"--task {options.task!r} is not a text task" if options.task else
                       f"{root} has no sentence-transformers config nor a classification head: say what to "
                       "build with --task", hint=f"choose one of {', '.join(TASKS)}")
    if options.num_labels and task != "sequence-classification":
        raise BadInput(f"--num-labels sizes a classification head; the {task} task has none",
                       hint="add --task sequence-classification")
    return task


def choose_head(family, root: Path, config: dict, tensors: dict, hidden: int, num_labels: int | None):
    """The checkpoint's own head when it has one, else classifier.weights.h5 or a random head."""
    from .hf_heads import checkpoint_head, external_head

    head = checkpoint_head(family.model_type, config, tensors)
    if head is not None:
        if num_labels and num_labels != head.labels:
            raise BadInput(f"--num-labels {num_labels} does not match the checkpoint's head "
                           f"({head.labels} labels in model.safetensors)", hint="leave --num-labels out")
        return head
    return external_head(root, hidden, num_labels or len(config.get("id2label") or {}) or 2)


def load_hf_source(spec: str, options: LoadOptions) -> SourceModel:
    root = Path(spec.split(":", 1)[1]).expanduser()
    config = read_config(root)
    from .hf_families import family_of

    if family_of(config, root).modality == "image":  # an unknown model_type is refused here, named
        from .hf_vision import load_vision_source

        return load_vision_source(root, config, options)
    if not (root / TOKENIZER_FILE).exists():
        raise BadInput(f"{root} has no {TOKENIZER_FILE}: the device needs it to tokenize text",
                       hint="save the tokenizer with tokenizers' Tokenizer.save or transformers' save_pretrained")
    task = text_task(root, config, options)
    seq_len = options.seq_len or DEFAULT_SEQ_LEN
    max_positions = config.get("max_position_embeddings") or (config.get("config") or {}).get("max_sequence_length")
    if config.get("model_type") in ("roberta", "xlm-roberta") and max_positions:
        max_positions -= 2  # two rows reserved for the padding index
    if seq_len < 2 or (max_positions and seq_len > max_positions):
        raise BadInput(f"--seq-len {seq_len} is out of range (2..{max_positions or 'the model maximum'})")
    from .hf_families import load_family
    from .hf_heads import head_manifest

    family, backbone, tensors, notes = load_family(root, config)
    pooling, normalize = sentence_transformers_head(root)
    head = None
    if task == "sequence-classification":
        head = choose_head(family, root, config, tensors, backbone.hidden_dim, options.num_labels)
    source = TransformerSource(backbone, root, task, seq_len, pooling, normalize, head, options,
                               segment_ids=family.segment_ids)
    source.notes.extend(notes)
    source.extra_manifest["hf"] = {"model_type": family.model_type, "backbone": family.backbone,
                                   "tokenizer": family.tokenizer}
    if head is not None:
        head_manifest(source, head, config)
    return source


# -- text calibration data -------------------------------------------------------------------------
def read_sentences(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path.name} is not UTF-8 text") from None
    sentences = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not sentences:
        raise BadInput(f"{path.name} holds no sentences (one a line expected)")
    return sentences


def _from_sentences(path: Path, source: SourceModel, count: int, preset, show_progress: bool):
    from .calibration import Samples, _spread

    if not isinstance(source, TransformerSource):
        raise BadInput(f"{path.name} is a sentence file but the model is not a text model (hf:DIR)")
    every = read_sentences(path)
    picks = _spread(list(range(len(every))), count)
    sentences = [every[i] for i in picks]
    return Samples(source.encode(sentences), f"{len(sentences)} sentences from {path}", ids=picks)


def _register_text_loader() -> None:
    from . import calibration

    entry = (lambda p: p.suffix == ".txt", _from_sentences)
    if all(loader is not _from_sentences for _, loader in calibration.LOADERS):
        calibration.LOADERS.append(entry)


_register_text_loader()
