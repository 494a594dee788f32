"""Keras pieces that the MLP and the CNN training share: determinism, labels, optimizers, callbacks.

TensorFlow and Keras are imported inside the functions, so importing the training package stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sim2real_faces import CLASSES


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TF and make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def one_hot(labels: Sequence[str], classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Labels -> one-hot float32 (N, C); unknown labels raise ValueError."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(label) for label in labels} - set(index))
    if unknown:
        raise ValueError(f"unknown class label(s) {unknown}; expected {list(classes)}.")
    out = np.zeros((len(labels), len(classes)), dtype="float32")
    out[np.arange(len(labels)), [index[str(label)] for label in labels]] = 1
    return out


def _optimizer(name: str, learning_rate: float):
    import keras

    return {
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    }[name](learning_rate=learning_rate)


def _callbacks(patience: int, live: Any, progress: bool, desc: str) -> tuple[Any, list[Any]]:
    import keras

    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    callbacks: list[Any] = [stopper]
    if live is not None:
        callbacks.append(live_callback(live))
    if progress:
        from tqdm.keras import TqdmCallback

        callbacks.append(TqdmCallback(verbose=0, desc=desc))
    return stopper, callbacks


def _best(history: Any, stopper: Any) -> dict[str, Any]:
    epochs = len(history.history.get("val_loss", []))
    if epochs == 0:
        return {"epochs": 0, "best_epoch": None, "val_loss": None, "val_accuracy": None}
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    return {
        "epochs": epochs,
        "best_epoch": best + 1,
        "val_loss": float(losses[best]),
        "val_accuracy": float(history.history["val_accuracy"][best]),
    }


def live_callback(live: Any) -> Any:
    """A Keras callback logging every epoch to dvclive ``live`` (kept open across phases).

    dvclive's own ``DVCLiveCallback`` ends the ``Live`` when a fit ends, which would cut the
    phase-2 curve off; steps here run on across both phases.
    """
    import keras
    from dvclive.utils import standardize_metric_name

    class _LiveLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            for metric, value in (logs or {}).items():
                live.log_metric(standardize_metric_name(metric, "dvclive.keras"), float(value))
            live.next_step()

    return _LiveLogger()
