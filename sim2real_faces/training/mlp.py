"""The MLP on face features (params section ``train.mlp``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim2real_faces.params import Count, NonNegativeFloat, NonNegativeInt, PositiveFloat
from sim2real_faces.training.common import _best, _callbacks, _optimizer, one_hot, set_determinism


@dataclass(frozen=True)
class MlpParams:
    """Params section ``train.mlp``: the study's MLP hyperparameters."""

    hidden_units: list[Count]
    activation: str
    learning_rate: PositiveFloat
    batch_size: Count
    max_epochs: Count
    patience: NonNegativeInt
    l2: NonNegativeFloat  # weight decay on every Dense kernel (0 = off, the study)


def train_mlp(
    x_train: np.ndarray,
    y_train: Sequence[str],
    x_val: np.ndarray,
    y_val: Sequence[str],
    params: MlpParams,
    seed: int,
    live: Any = None,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Train the MLP with early stopping on validation loss (best weights restored).

    Returns (model, metrics dict with seconds, epochs, best val loss/accuracy, n_train, n_val).
    """
    from sim2real_faces.models import build_mlp, check_loss_pairing, make_loss

    set_determinism(seed)
    model = build_mlp(x_train, params.hidden_units, params.activation, l2=params.l2)
    loss = make_loss()
    check_loss_pairing(model, loss)
    model.compile(optimizer=_optimizer("adam", params.learning_rate), loss=loss, metrics=["accuracy"])
    stopper, callbacks = _callbacks(params.patience, live, progress, "mlp")
    start = time.perf_counter()
    history = model.fit(
        np.asarray(x_train, dtype="float32"),
        one_hot(y_train),
        validation_data=(np.asarray(x_val, dtype="float32"), one_hot(y_val)),
        batch_size=params.batch_size,
        epochs=params.max_epochs,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    best = _best(history, stopper)
    metrics = {
        "model": "mlp",
        "seconds": {"train": round(seconds, 3), "total": round(seconds, 3)},
        "epochs": best["epochs"],
        "best_epoch": best["best_epoch"],
        "best": {"val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"]},
        "n_train": len(x_train),
        "n_val": len(x_val),
        "n_features": int(np.asarray(x_train).shape[1]),
        "l2": params.l2,
    }
    return model, metrics
