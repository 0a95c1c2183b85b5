"""hf:DIR across families, checked against PyTorch: tests/fixtures/hf/<family>/ holds small random-initialised
checkpoints saved by the PyTorch `transformers` classes themselves (tools/make_hf_fixtures.py), with their own
tokenizer.json (WordPiece, BPE, Unigram) or preprocessor_config.json, and PyTorch's logits on held-out
sentences / scikit-image photos (reference.npz). PyTorch is not needed here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error

FIXTURES = Path(__file__).parent / "fixtures" / "hf"
SENTENCES = Path(__file__).parents[1] / "models" / "text" / "sentences.txt"
TEXT = ("bert", "distilbert", "albert", "roberta", "xlm-roberta")
VISION = ("vit", "deit", "dinov2", "dinov2_with_registers")
SEQ_LEN = 64
FLOAT_RTOL = 1e-4  # float32 .tflite logits vs PyTorch, relative to the largest |logit| of the sample
DYNAMIC_RTOL = 0.1  # dynamic-range (int8 weights, float activations): the stated budget; argmax equal
# wherever PyTorch's top-2 margin is above 2% of the largest logit (a near-tie may flip)


def reference(family: str) -> dict:
    return dict(np.load(FIXTURES / family / "reference.npz"))


def text_inputs(ref: dict, row: int) -> list[np.ndarray]:
    """One held-out sentence as PyTorch saw it (unpadded), as [token_ids, padding_mask] int32 [1, n]."""
    n = int(ref["lengths"][row])
    ids = ref["token_ids"][row, :n][None].astype(np.int32)
    return [ids, np.ones_like(ids)]


def vision_inputs(ref: dict, row: int) -> list[np.ndarray]:
    return [np.ascontiguousarray(ref["pixel_values"][row].transpose(1, 2, 0)[None], np.float32)]  # NCHW -> NHWC


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """scikit-image's photos named in the fixtures, as PNG files (the device's input)."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in reference("vit")["photos"]:
        Image.fromarray(getattr(data, str(name))()).save(folder / f"{name}.png")
    return folder


def convert_family(family: str, out: Path, mode: str, photos: Path | None = None, rewrites: bool = True) -> dict:
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions

    text = family in TEXT
    load = LoadOptions(seq_len=SEQ_LEN if text else None, rewrites=rewrites)
    calib = str(SENTENCES) if text else str(photos)
    return convert(ConvertRequest(source=f"hf:{FIXTURES / family}", output=out, mode=mode, calib=calib,
                                  calib_count=16, verify_count=8, load=load, show_progress=False))


@pytest.fixture(scope="module")
def float_models(tmp_path_factory, photos) -> dict:
    """Every family converted to float32 (with export rewrites, as tfedge convert does by default)."""
    models = {}
    for family in TEXT + VISION:
        out = tmp_path_factory.mktemp(family) / f"{family}.tflite"
        convert_family(family, out, "float32", photos)
        models[family] = out
    return models


def run_tflite(path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    from tfedge_device.model import Model

    model = Model(path)
    if any(d == -1 for d in model.inputs[0].shape):
        model.resize_inputs([tuple(a.shape) for a in inputs])
    return model.predict(*inputs)[0][0]


@pytest.mark.parametrize("family", TEXT + VISION)
def test_float32_logits_match_pytorch(family, float_models):
    ref = reference(family)
    feed = text_inputs if family in TEXT else vision_inputs
    for row, expected in enumerate(ref["logits"]):
        logits = run_tflite(float_models[family], feed(ref, row))
        assert np.max(np.abs(logits - expected)) <= FLOAT_RTOL * np.max(np.abs(expected)), (row, logits, expected)
        assert logits.argmax() == expected.argmax()


@pytest.mark.parametrize("family", TEXT + VISION)
def test_manifest_has_trained_head_and_id2label(family, float_models):
    manifest = json.loads(float_models[family].with_suffix(".json").read_text())
    config = json.loads((FIXTURES / family / "config.json").read_text())
    assert manifest["labels"] == [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert manifest["head"] == {"weights": f"checkpoint: {config['architectures'][0]}", "trained": True,
                                "outputs": "logits"}
    assert manifest["hf"]["model_type"] == config["model_type"]
    assert not any("random" in note for note in manifest["notes"])
    assert manifest["task"] == ("sequence-classification" if family in TEXT else "image-classification")


@pytest.mark.parametrize("family", TEXT)
def test_device_classifies_text_with_the_family_tokenizer(family, float_models, tfedge_run):
    """tfedge-run classify --text tokenizes with the family's own tokenizer.json (through `tokenizers`, no
    TensorFlow) and gives PyTorch's top-1 for every held-out sentence."""
    ref = reference(family)
    args = [a for sentence in ref["sentences"] for a in ("--text", str(sentence))]
    result = tfedge_run("classify", float_models[family], *args, "-k", "1", "-t", "0", "--json")
    assert result.returncode == 0, result
    labels = json.loads(float_models[family].with_suffix(".json").read_text())["labels"]
    shown = json.loads(result.stdout)["results"]
    assert [r["classes"][0]["label"] for r in shown] == [labels[i] for i in ref["logits"].argmax(axis=1)]
    softmax = np.exp(ref["logits"]) / np.exp(ref["logits"]).sum(axis=1, keepdims=True)
    assert [r["classes"][0]["score"] for r in shown] == pytest.approx(softmax.max(axis=1).tolist(), abs=1e-4)


def test_tokenizer_json_gives_pytorch_token_ids():
    """What the device feeds: the family's tokenizer.json through tfedge_device.text gives PyTorch's input ids."""
    from tfedge_device.text import TextEncoder

    for family in TEXT:
        ref = reference(family)
        encoder = TextEncoder(FIXTURES / family / "tokenizer.json", SEQ_LEN)
        for row, sentence in enumerate(ref["sentences"]):
            ids, mask = encoder.encode([str(sentence)], int(ref["lengths"][row]))
            assert ids[0].tolist() == text_inputs(ref, row)[0][0].tolist(), family
            assert mask.all()


@pytest.mark.parametrize("family", VISION)
def test_device_classifies_photos_with_the_checkpoint_preprocessing(family, float_models, photos, tfedge_run):
    from tfedge_device.preprocess import ImageSpec, load_image

    ref = reference(family)
    manifest = json.loads(float_models[family].with_suffix(".json").read_text())
    spec = ImageSpec.from_dict(manifest["preprocess"]["image"])
    processor = json.loads((FIXTURES / family / "preprocessor_config.json").read_text())
    assert spec.mean == pytest.approx([m * 255 for m in processor["image_mean"]], rel=1e-5)
    for row, name in enumerate(ref["photos"]):  # the device's pixels are the Hugging Face processor's
        pixels = load_image(photos / f"{name}.png", spec)
        assert np.abs(pixels - vision_inputs(ref, row)[0][0]).max() < 1e-4, name
    result = tfedge_run("classify", float_models[family], "-i", photos, "-k", "1", "-t", "0", "--json")
    assert result.returncode == 0, result
    top1 = {Path(r["image"]).stem: r["classes"][0]["label"] for r in json.loads(result.stdout)["results"]}
    assert top1 == {str(name): manifest["labels"][i] for name, i in zip(ref["photos"], ref["logits"].argmax(axis=1))}


def test_deit_heads_follow_the_architecture(tmp_path):
    """DeiTForImageClassificationWithTeacher averages its cls and distillation heads; the same checkpoint read
    as DeiTForImageClassification uses the cls head only (and so differs from PyTorch's teacher logits)."""
    from tfedge.convert.sources import LoadOptions, load_source

    ref = reference("deit")
    teacher = load_source(f"hf:{FIXTURES / 'deit'}", LoadOptions())
    cls_only_dir = tmp_path / "deit"
    shutil.copytree(FIXTURES / "deit", cls_only_dir)
    config = json.loads((cls_only_dir / "config.json").read_text())
    config["architectures"] = ["DeiTForImageClassification"]
    (cls_only_dir / "config.json").write_text(json.dumps(config))
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(cls_only_dir / "model.safetensors"))
    tensors["classifier.weight"], tensors["classifier.bias"] = tensors["cls_classifier.weight"], tensors[
        "cls_classifier.bias"]
    save_file(tensors, str(cls_only_dir / "model.safetensors"))
    cls_only = load_source(f"hf:{cls_only_dir}", LoadOptions())
    pixels = vision_inputs(ref, 0)
    averaged, single = teacher.predict(pixels)[0][0], cls_only.predict(pixels)[0][0]
    assert np.abs(averaged - ref["logits"][0]).max() < 1e-4 * np.abs(ref["logits"][0]).max()
    assert np.abs(single - averaged).max() > 1e-2


@pytest.mark.parametrize("family", TEXT + VISION)
def test_export_rewrites_agree_with_the_plain_graph(family):
    """Per family: both rewrites apply to keras-hub's layers and the rewritten graph computes what keras-hub's
    graph computes; the export uses those the family's table row keeps and says why it skips the others."""
    import tensorflow as tf

    from tfedge.convert.hf_families import FAMILIES
    from tfedge.convert.rewrites import rewritten
    from tfedge.convert.sources import LoadOptions, load_source

    ref = reference(family)
    source = load_source(f"hf:{FIXTURES / family}", LoadOptions(seq_len=SEQ_LEN if family in TEXT else None))
    with rewritten(source.backbone) as applied:
        traced = source.trace()
    assert applied.get("attention", 0) > 0 and applied.get("dense", 0) > 0, applied
    inputs = list(source.encode([str(ref["sentences"][0])])[0]) if family in TEXT else vision_inputs(ref, 0)
    plain = source.concrete_function()(*[tf.constant(a) for a in inputs])[0].numpy()
    rewritten_out = traced(*[tf.constant(a) for a in inputs])[0].numpy()
    assert np.abs(plain - rewritten_out).max() <= 1e-5 * max(1.0, np.abs(plain).max())

    row = FAMILIES[source.extra_manifest["hf"]["model_type"]]
    source.export_function()
    assert set(source.extra_manifest["export_rewrites"]) == set(row.rewrites)
    for name in row.rewrites_skipped:
        assert any(f"export rewrite {name!r} skipped for {family}" in note for note in source.notes)


@pytest.mark.slow
@pytest.mark.parametrize("family", TEXT + VISION)
def test_dynamic_range_within_budget(family, tmp_path, photos):
    out = tmp_path / f"{family}.tflite"
    convert_family(family, out, "dynamic", photos)
    ref = reference(family)
    feed = text_inputs if family in TEXT else vision_inputs
    decided = 0  # samples whose PyTorch top-2 margin exceeds 2% of the largest logit: argmax must agree there
    for row, expected in enumerate(ref["logits"]):
        logits = run_tflite(out, feed(ref, row))
        assert np.max(np.abs(logits - expected)) <= DYNAMIC_RTOL * np.max(np.abs(expected)), (row, logits, expected)
        top2 = np.sort(expected)[-2:]
        if top2[1] - top2[0] > 0.02 * np.max(np.abs(expected)):
            decided += 1
            assert logits.argmax() == expected.argmax(), (row, logits, expected)
    assert decided >= len(ref["logits"]) // 2  # most samples are not near-ties: the argmax check has teeth


def test_headless_checkpoint_says_its_head_is_random(tmp_path):
    from tfedge.convert.sources import LoadOptions, load_source

    root = tmp_path / "bert"
    shutil.copytree(FIXTURES / "bert", root)
    config = json.loads((root / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (root / "config.json").write_text(json.dumps(config))
    source = load_source(f"hf:{root}", LoadOptions(task="sequence-classification", seq_len=SEQ_LEN))
    assert source.extra_manifest["head"] == {"weights": "random", "trained": False, "outputs": "logits"}
    assert any("random weights" in note for note in source.notes)


def test_unsupported_model_type_names_it_and_the_readable_ones(tfedge, tmp_path):
    root = tmp_path / "electra"
    shutil.copytree(FIXTURES / "bert", root)
    config = json.loads((root / "config.json").read_text())
    config["model_type"] = "electra"
    (root / "config.json").write_text(json.dumps(config))
    result = tfedge("convert", f"hf:{root}", "-o", tmp_path / "out.tflite")
    assert_clean_error(result, 2, "model_type 'electra'", "no reader", "bert", "distilbert", "albert", "roberta",
                       "xlm-roberta", "vit", "deit", "dinov2")
    assert not (tmp_path / "out.tflite").exists()


def test_preprocessor_config_sizes():
    from tfedge.convert.hf_vision import image_spec_from_processor
    from tfedge.errors import BadInput

    with pytest.raises(BadInput, match="shortest edge to 224 without a centre crop"):
        image_spec_from_processor({"size": {"shortest_edge": 224}}, 224)
    with pytest.raises(BadInput, match="longest_edge.*not a fixed height x width"):
        image_spec_from_processor({"size": {"longest_edge": 224}}, 224)
    spec = image_spec_from_processor({"size": {"shortest_edge": 256}, "do_center_crop": True,
                                      "crop_size": {"height": 224, "width": 224}}, 224)
    assert (spec.resize_shortest, spec.resize_to, spec.height) == (256, None, 224)
    with pytest.raises(BadInput, match="makes 32x32 images but the model takes 64x64"):
        image_spec_from_processor({"size": {"height": 32, "width": 32}}, 64)
    spec = image_spec_from_processor({"size": {"height": 73, "width": 73}, "do_center_crop": True,
                                      "crop_size": {"height": 64, "width": 64}, "resample": 3,
                                      "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}, 64)
    assert (spec.resize, spec.resize_to, spec.mean, spec.std) == ("bicubic", (73, 73), (127.5,) * 3, (63.75,) * 3)


def test_a_keras_hub_dinov2_preset_reads_as_keras_hub_built_it(tmp_path):
    """A keras-hub preset (no config.json model_type, no PyTorch tensors): nothing re-interpolated, the output is
    the backbone's own [CLS] vector."""
    import keras
    import keras_hub
    import tensorflow as tf

    from tfedge.convert.sources import LoadOptions, load_source

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.DINOV2Backbone(patch_size=14, num_layers=1, hidden_dim=16, num_heads=2,
                                               intermediate_dim=32, image_shape=(28, 28, 3),
                                               position_embedding_shape=(42, 42, 3))
    backbone.save_to_preset(str(tmp_path / "dino"))
    source = load_source(f"hf:{tmp_path / 'dino'}", LoadOptions())
    images = np.random.default_rng(0).uniform(-2, 2, (1, 28, 28, 3)).astype(np.float32)
    assert [spec.shape for spec in source.inputs] == [(1, 28, 28, 3)] and source.task == "generic"
    expected = backbone(images)[:, 0]
    np.testing.assert_allclose(source.concrete_function()(tf.constant(images))[0].numpy(), expected, atol=1e-5)
