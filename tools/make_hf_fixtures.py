#!/usr/bin/env python
"""Make tests/fixtures/hf/<family>/: small random-initialised Hugging Face checkpoints, made with the PyTorch
`transformers` classes themselves, with their tokenizers and PyTorch's own outputs on fixed real inputs.

Needs PyTorch, transformers, tokenizers, scikit-image — in a venv of its own, never the product's:

    python3.11 -m venv .cache/torch-venv
    .cache/torch-venv/bin/pip install torch==2.13.0 transformers tokenizers safetensors scikit-image
    .cache/torch-venv/bin/python tools/make_hf_fixtures.py [--families bert,vit] [--out tests/fixtures/hf]

Each family directory holds what `save_pretrained` writes (config.json, model.safetensors), a tokenizer.json
trained here on models/text/sentences.txt (WordPiece for BERT/DistilBERT, byte-level BPE for RoBERTa, Unigram
for ALBERT/XLM-R) or a preprocessor_config.json (ViT/DeiT/DINOv2), and reference.npz: the inputs and PyTorch's
logits. Text inputs: held-out sentences (odd lines of sentences.txt) tokenized with the family's
tokenizer.json through `tokenizers`, one sentence at a time, unpadded. Image inputs: scikit-image's photos
through the checkpoint's own image processor (transformers' PIL processor), pixel_values NCHW.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "models" / "text" / "sentences.txt"
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
IMAGE_LABELS = {0: "animal", 1: "person", 2: "object", 3: "scene"}
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat")  # skimage.data RGB photos
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
             "initializer_range": 0.2}  # a wide init: logits far enough apart that argmax is stable


def sentences() -> list[str]:
    lines = [s.strip() for s in SENTENCES.read_text(encoding="utf-8").splitlines()]
    return [s for s in lines if s and not s.startswith("#")]


# -- tokenizers --------------------------------------------------------------------------------------
def wordpiece(text: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(text, trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return tok, {"pad": "[PAD]"}


def byte_bpe(text: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.decoder = decoders.ByteLevel()
    return tok, {"pad": "<pad>"}


def unigram(specials: list[str], template: tuple[str, str], unk: str = "<unk>"):
    def make(text: list[str]):
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.train_from_iterator(text, trainers.UnigramTrainer(vocab_size=400, special_tokens=specials,
                                                              unk_token=unk))
        first, last = template
        tok.post_processor = processors.TemplateProcessing(
            single=f"{first} $A {last}", pair=f"{first} $A {last} $B {last}",
            special_tokens=[(first, tok.token_to_id(first)), (last, tok.token_to_id(last))])
        tok.decoder = decoders.Metaspace()
        return tok, {"pad": "<pad>"}
    return make


# -- families ----------------------------------------------------------------------------------------
FAMILIES = {
    "bert": ("BertForSequenceClassification", "BertConfig", wordpiece,
             dict(SMALL, max_position_embeddings=130, hidden_act="gelu")),
    "distilbert": ("DistilBertForSequenceClassification", "DistilBertConfig", wordpiece,
                   {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "max_position_embeddings": 130,
                        "initializer_range": 0.2, "seq_classif_dropout": 0.0}),
    "albert": ("AlbertForSequenceClassification", "AlbertConfig",
               unigram(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], ("[CLS]", "[SEP]")),
               dict(SMALL, embedding_size=16, max_position_embeddings=130, classifier_dropout_prob=0.0)),
    "roberta": ("RobertaForSequenceClassification", "RobertaConfig", byte_bpe,
                dict(SMALL, max_position_embeddings=132, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                     type_vocab_size=1)),
    "xlm-roberta": ("XLMRobertaForSequenceClassification", "XLMRobertaConfig",
                    unigram(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], ("<s>", "</s>")),
                    dict(SMALL, max_position_embeddings=132, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                         type_vocab_size=1)),
    "vit": ("ViTForImageClassification", "ViTConfig", None,
            dict(SMALL, image_size=64, patch_size=16, qkv_bias=True)),
    "deit": ("DeiTForImageClassificationWithTeacher", "DeiTConfig", None,
             dict(SMALL, image_size=64, patch_size=16, qkv_bias=True)),
    # DINOv2's position grid (image_size 98: 7x7 patches of 14, as the real 518: 37x37) is larger than the
    # images its processor makes (56 px: 4x4), so PyTorch interpolates the position embeddings, as for the real
    # checkpoints' 224-px crops.
    "dinov2": ("Dinov2ForImageClassification", "Dinov2Config", None,
               dict({k: v for k, v in SMALL.items() if k != "intermediate_size"}, mlp_ratio=2, image_size=98,
                    patch_size=14)),
    "dinov2_with_registers": ("Dinov2WithRegistersForImageClassification", "Dinov2WithRegistersConfig", None,
                              dict({k: v for k, v in SMALL.items() if k != "intermediate_size"}, mlp_ratio=2,
                                   image_size=98, patch_size=14, num_register_tokens=4)),
}
IMAGE_PROCESSORS = {  # what the real checkpoints' preprocessor_config.json say, at the fixtures' 64 px
    "vit": ("ViTImageProcessorPil", {"size": {"height": 64, "width": 64}, "resample": 2, "do_rescale": True,
                                         "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}),
    "deit": ("DeiTImageProcessorPil", {"size": {"height": 73, "width": 73}, "crop_size": {"height": 64, "width": 64},
                                           "do_center_crop": True, "resample": 3, "do_rescale": True,
                                           "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}),
    "dinov2": ("BitImageProcessorPil", {"size": {"shortest_edge": 64}, "crop_size": {"height": 56, "width": 56},
                                        "do_center_crop": True, "resample": 3, "do_rescale": True,
                                        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}),
}
IMAGE_PROCESSORS["dinov2_with_registers"] = IMAGE_PROCESSORS["dinov2"]


def make_text(name: str, out: Path, text: list[str], held_out: list[str]) -> None:
    import torch
    import transformers

    model_name, config_name, make_tokenizer, extra = FAMILIES[name]
    tok, special = make_tokenizer(text)
    vocab = tok.get_vocab_size()
    config = getattr(transformers, config_name)(vocab_size=vocab, num_labels=len(LABELS), id2label=LABELS,
                                                label2id={v: k for k, v in LABELS.items()}, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "pad_token": special["pad"], "model_max_length": 128}, indent=1) + "\n")
    ids, logits = [], []
    with torch.no_grad():
        for sentence in held_out:
            encoding = tok.encode(sentence)
            input_ids = torch.tensor([encoding.ids])
            kwargs = {"attention_mask": torch.ones_like(input_ids)}
            if name != "distilbert":
                kwargs["token_type_ids"] = torch.zeros_like(input_ids)
            logits.append(model(input_ids, **kwargs).logits[0].numpy())
            ids.append(np.asarray(encoding.ids, np.int32))
    lengths = np.array([len(i) for i in ids], np.int32)
    padded = np.zeros((len(ids), lengths.max()), np.int32)
    for row, token_ids in enumerate(ids):
        padded[row, :len(token_ids)] = token_ids
    np.savez_compressed(out / "reference.npz", sentences=np.array(held_out), token_ids=padded, lengths=lengths,
                        logits=np.stack(logits).astype(np.float32))


def make_vision(name: str, out: Path) -> None:
    import torch
    import transformers
    from skimage import data

    model_name, config_name, _, extra = FAMILIES[name]
    config = getattr(transformers, config_name)(num_labels=len(IMAGE_LABELS), id2label=IMAGE_LABELS,
                                                label2id={v: k for k, v in IMAGE_LABELS.items()}, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    processor_name, processor_config = IMAGE_PROCESSORS[name]
    processor = getattr(transformers, processor_name)(**processor_config)
    processor.save_pretrained(out)
    photos = [getattr(data, photo)() for photo in PHOTOS]
    pixels = processor(images=photos, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits.numpy()
    np.savez_compressed(out / "reference.npz", photos=np.array(PHOTOS), pixel_values=pixels.numpy(),
                        logits=logits.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "hf")
    args = parser.parse_args()
    text = sentences()
    held_out = text[1::2][:8]  # odd lines are held out (models/text/sentences.txt's convention)
    for name in args.families.split(","):
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        if FAMILIES[name][2] is None:
            make_vision(name, out)
        else:
            make_text(name, out, text, held_out)
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"{name:12s} {size / 1024:7.1f} KB  {out}")


if __name__ == "__main__":
    main()
