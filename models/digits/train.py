"""Train the embedded default model: a small CNN on scikit-learn's bundled handwritten digits.

Deterministic (fixed seed, single-threaded ops). Writes beside this file:
  digits.keras       the Keras 3 model; input [None, 8, 8, 1] float in [0, 1] (the `unit` preset)
  labels.txt         one label a line
  test.npz           the held-out split: x [N, 8, 8, 1] float32 in [0, 1], y [N] int
  calib/<label>/*.png   training-split images for int8 calibration (8x8 grayscale PNG)
  images/*.png       one held-out image per class, for the demo

Usage: python models/digits/train.py [--epochs 40] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

SEED = 0
HERE = Path(__file__).resolve().parent


def load_split():
    """scikit-learn's digits (1797 real 8x8 images, values 0..16) -> unit-range train/test split."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.25, random_state=SEED,
                            stratify=digits.target)


def to_png_pixels(image):
    """[8, 8, 1] unit-range floats -> uint8 pixels (the `unit` preset maps them back within 1/510)."""
    import numpy as np

    return np.round(image[..., 0] * 255.0).astype(np.uint8)


def build_model():
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dropout(0.2, seed=SEED),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ], name="digits_cnn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import keras
    import numpy as np
    from PIL import Image

    keras.utils.set_random_seed(SEED)
    x_train, x_test, y_train, y_test = load_split()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "digits.keras")
    (out / "labels.txt").write_text("".join(f"{i}\n" for i in range(10)))
    np.savez_compressed(out / "test.npz", x=x_test, y=y_test)
    for index, (image, label) in enumerate(zip(x_train[:200], y_train[:200])):
        folder = out / "calib" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_png_pixels(image), "L").save(folder / f"train_{index:04d}.png")
    (out / "images").mkdir(exist_ok=True)
    for label in range(10):
        index = int(np.flatnonzero(y_test == label)[0])
        Image.fromarray(to_png_pixels(x_test[index]), "L").save(out / "images" / f"digit_{label}.png")
    print(f"held-out top-1 {accuracy * 100:.2f}% on {len(y_test)} images; wrote {out}")


if __name__ == "__main__":
    main()
