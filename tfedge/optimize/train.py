"""The fit loop every optimization command shares: fixed seed, tqdm progress, early stopping.

Works for tf_keras (tfmot-wrapped models) and Keras 3 (the embedding student) alike: pass the module.
Progress goes to stderr, only when it is a terminal and progress is wanted (off for --json and -q).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

SEED = 0


@dataclass
class FitOptions:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 3  # epochs without val_loss improvement before stopping (0: never stop early)
    seed: int = SEED
    show_progress: bool = True
    start_from_epoch: int = 0  # early stopping only looks at epochs from here on (e.g. after pruning ends)


def set_seed(seed: int = SEED) -> None:
    """Python, numpy and TensorFlow seeds, so a run reproduces (same data order, same initial weights)."""
    from .keras_bridge import tf_keras_module

    tf_keras_module().utils.set_random_seed(seed)


def progress_callback(keras_module, epochs: int, description: str, enabled: bool):
    """A tqdm bar over epochs, with the latest loss/metrics as its postfix."""
    from tqdm import tqdm

    class Progress(keras_module.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, desc=description, unit="epoch", leave=False, file=sys.stderr,
                            disable=not enabled or not sys.stderr.isatty())

        def on_epoch_end(self, epoch, logs=None):
            self.bar.set_postfix({k: f"{float(v):.4f}" for k, v in (logs or {}).items()})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()


def fit(model, keras_module, x, y, validation, options: FitOptions, description: str = "training",
        callbacks: list | None = None) -> dict:
    """model.fit with progress and early stopping on val_loss (best weights restored) -> a summary dict.

    `model` must already be compiled (inside the strategy's scope). `validation`: (x_val, y_val) or None.
    """
    if options.epochs < 1:
        from ..errors import BadInput

        raise BadInput(f"--epochs must be at least 1, got {options.epochs}")
    wanted = [progress_callback(keras_module, options.epochs, description, options.show_progress)]
    if options.patience and validation is not None:
        wanted.append(keras_module.callbacks.EarlyStopping(
            monitor="val_loss", patience=options.patience, restore_best_weights=True,
            start_from_epoch=options.start_from_epoch))
    history = model.fit(x, y, batch_size=options.batch_size, epochs=options.epochs, validation_data=validation,
                        callbacks=wanted + list(callbacks or []), verbose=0, shuffle=True)
    epochs_run = len(history.history.get("loss", []))
    last = {k: float(v[-1]) for k, v in history.history.items() if v}
    log.info("%s: %d epoch(s), %s", description, epochs_run, last)
    return {"epochs_run": epochs_run, "epochs_max": options.epochs, "stopped_early": epochs_run < options.epochs,
            "final": last, "batch_size": options.batch_size, "learning_rate": options.learning_rate,
            "seed": options.seed}
