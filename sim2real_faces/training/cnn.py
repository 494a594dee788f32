"""Two-phase transfer learning of the CNNs (params sections ``train.mobilenetv2``, ``train.vgg16``).

CNN training on a CPU (:func:`train_cnn`):

1. Augmentation (:func:`~sim2real_faces.training.augment.augment_image`, stateless TF ops seeded
   per image): ``augment.copies`` augmented copies of every training crop are made once and added
   to the originals for the cached-trunk phases; with ``augment.online`` phase 2 draws new
   augmentations every epoch inside the ``tf.data`` pipeline
   (:func:`~sim2real_faces.training.augment.online_dataset`) and runs the whole network on them.
2. The base is cut before its last ``phase2.unfreeze_last`` layers (:func:`models.split_base`).
   The frozen trunk runs ONCE over the training and validation crops; its outputs are kept in
   memory. Phase 1 trains the head on the pooled outputs of the (still frozen) top. Without online
   augmentation, phase 2 trains the top + head on the cached trunk outputs: because the trunk is
   frozen and its BatchNorm layers run in inference mode, this is the same computation as running
   the whole network every step, minus the repeated trunk work.
3. Phase 2 recipe: BatchNorm frozen (``phase2.batchnorm``), warm-up + cosine learning rate
   (``phase2.schedule``), label smoothing and class weights (``label_smoothing``, ``class_weights``).
4. Early stopping on validation loss (synthetic validation identities) restores the best weights in
   both phases; if no phase-2 epoch beats phase 1's best validation loss, the phase-1 weights are
   kept (recorded in the metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim2real_faces import CLASSES
from sim2real_faces.params import Range, check_value
from sim2real_faces.seeds import AUGMENT_COPIES_KEY, PHASE2_SHUFFLE_KEY, derive_seed
from sim2real_faces.training.augment import AugmentParams, augment_copies, online_dataset
from sim2real_faces.training.common import _best, _callbacks, _optimizer, one_hot, set_determinism


@dataclass(frozen=True)
class PhaseParams:
    """One training phase of a CNN."""

    optimizer: Literal["adam", "rmsprop", "sgd"]
    learning_rate: float
    max_epochs: int
    patience: int


@dataclass(frozen=True)
class FineTuneParams:
    """Phase 2: the last ``unfreeze_last`` base layers trainable (0 or ``max_epochs: 0`` skips it).

    ``batchnorm``: ``frozen`` keeps every BatchNorm layer in inference mode with its moving
    statistics and scale/offset fixed (Keras's fine-tuning recipe); ``train`` lets the unfrozen
    ones normalise with batch statistics and update them. ``schedule``: ``constant`` or
    ``cosine`` (linear warm-up over ``warmup_epochs``, then cosine decay to 0 over ``max_epochs``).
    """

    unfreeze_last: int
    optimizer: Literal["adam", "rmsprop", "sgd"]
    learning_rate: float
    max_epochs: int
    patience: int
    batchnorm: Literal["frozen", "train"]
    schedule: Literal["constant", "cosine"]
    warmup_epochs: int

    def __post_init__(self) -> None:
        check_value(Range(0, max(0, self.max_epochs)), self.warmup_epochs, "phase2.warmup_epochs")


@dataclass(frozen=True)
class CnnParams:
    """Params sections ``train.mobilenetv2`` and ``train.vgg16``.

    ``weights``: ``imagenet`` (Keras cache/download), a local ``.h5`` path, or null (random init).
    ``label_smoothing``: of the cross-entropy (0 = none); ``class_weights``: ``none`` or
    ``balanced`` (sample weights n / (classes * n_class) from the train part).
    """

    input_size: int
    weights: str | None
    dropout: float
    batch_size: int
    label_smoothing: float
    class_weights: Literal["none", "balanced"]
    augment: AugmentParams
    phase1: PhaseParams
    phase2: FineTuneParams

    def __post_init__(self) -> None:
        check_value(Range(0, 0.5), self.label_smoothing, "label_smoothing")
        check_value(Range(0, 0.9), self.dropout, "dropout")


def class_sample_weights(labels: Sequence[str], mode: str, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Per-row loss weights: ones (``none``) or n / (classes * n_class) (``balanced``)."""
    labels = [str(label) for label in labels]
    if mode == "none":
        return np.ones(len(labels), dtype="float32")
    counts = {c: labels.count(c) for c in classes}
    present = [c for c in classes if counts[c]]
    return np.array([len(labels) / (len(present) * counts[label]) for label in labels], dtype="float32")


def _run_batched(
    fn: Callable[[np.ndarray], Any], images: np.ndarray, batch_size: int, desc: str, progress: bool
) -> list[np.ndarray]:
    """Apply a Keras model batch by batch; returns one array per model output."""
    from tqdm import tqdm

    chunks: list[list[np.ndarray]] = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", disable=not progress):
        out = fn(images[start : start + batch_size])
        outs = out if isinstance(out, (list, tuple)) else [out]
        chunks.append([np.asarray(o) for o in outs])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]


def _phase2_optimizer(params: FineTuneParams, steps_per_epoch: int):
    """Phase 2's optimizer with its learning-rate schedule (constant, or warm-up + cosine)."""
    import keras

    if params.schedule == "constant":
        return _optimizer(params.optimizer, params.learning_rate)
    total = max(1, params.max_epochs * steps_per_epoch)
    warmup = min(params.warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=params.learning_rate / 100 if warmup else params.learning_rate,
        decay_steps=total - warmup,
        alpha=0.0,
        warmup_target=params.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    return _optimizer(params.optimizer, schedule)  # type: ignore[arg-type]


def batchnorm_layers(model: Any) -> list[Any]:
    """Every BatchNormalization layer inside ``model`` (nested models included)."""
    import keras

    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def train_cnn(
    name: str,
    x_train: np.ndarray,
    y_train: Sequence[str],
    x_val: np.ndarray,
    y_val: Sequence[str],
    params: CnnParams,
    seed: int,
    live: Any = None,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Two-phase transfer learning of CNN ``name`` on uint8 crops at ``params.input_size``.

    Phase 1 trains the head on cached outputs of the frozen base (originals + ``augment.copies``
    offline copies). Phase 2 unfreezes the last ``phase2.unfreeze_last`` base layers: with
    ``augment.online`` the whole network runs on fresh seeded augmentations every epoch, otherwise
    the top runs on the cached trunk outputs. Early stopping on the synthetic validation part.

    Returns (full inference model, metrics dict: seconds per step and per phase-2 epoch, epochs and
    best validation loss/accuracy per phase, the phase kept, trainable layer counts, n, weights).
    """
    import keras
    import tensorflow as tf

    from sim2real_faces.models import build_cnn, check_loss_pairing, make_loss, set_phase, split_base

    if len(x_val) == 0:
        raise ValueError("the validation part is empty: early stopping needs it (split.fractions.val > 0).")
    expected = (params.input_size, params.input_size, 3)
    if x_train.shape[1:] != expected or x_val.shape[1:] != expected:
        raise ValueError(
            f"{name}: crops must be {expected} (models.load_crops resizes them), got {x_train.shape[1:]} "
            f"and {x_val.shape[1:]}."
        )
    set_determinism(seed)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cnn = build_cnn(name, params.input_size, params.weights, params.dropout)
    loss = make_loss(params.label_smoothing)
    check_loss_pairing(cnn.model, loss)

    copies = augment_copies(x_train, params.augment, derive_seed(seed, AUGMENT_COPIES_KEY), progress=progress)
    train_images = np.concatenate([x_train, *copies]) if copies else x_train
    train_classes = list(y_train) * (1 + len(copies))
    train_labels = one_hot(train_classes)
    train_weights = class_sample_weights(train_classes, params.class_weights)
    val_labels = one_hot(y_val)
    timings["augment"] = time.perf_counter() - start

    # Frozen trunk, once: its outputs feed phase 1 (through the still frozen top) and, without
    # online augmentation, phase 2.
    n_base = len(cnn.base.layers)
    unfreeze = params.phase2.unfreeze_last if params.phase2.max_epochs > 0 else 0
    online = params.augment.online and unfreeze > 0
    step = time.perf_counter()
    inputs = keras.Input(cnn.model.input_shape[1:])
    trunk, top = split_base(cnn.base, unfreeze) if unfreeze else (cnn.base, None)
    encoder = keras.Model(
        inputs, trunk(cnn.preprocess(inputs), training=False) if trunk else cnn.preprocess(inputs)
    )
    cached_train = _run_batched(
        lambda b: encoder.predict_on_batch(b.astype("float32")),
        train_images,
        32,
        f"{name} trunk (train)",
        progress,
    )
    cached_val = _run_batched(
        lambda b: encoder.predict_on_batch(b.astype("float32")), x_val, 32, f"{name} trunk (val)", progress
    )
    timings["trunk_features"] = time.perf_counter() - step

    step = time.perf_counter()
    if top is not None:
        cut_inputs = [keras.Input(a.shape[1:]) for a in cached_train]
        pooled = keras.Model(cut_inputs, cnn.pool(top(cut_inputs, training=False)))
        feats_train = _run_batched(
            lambda b: pooled.predict_on_batch(b), _Rows(cached_train), 32, "pool", False
        )[0]
        feats_val = _run_batched(lambda b: pooled.predict_on_batch(b), _Rows(cached_val), 32, "pool", False)[
            0
        ]
    else:
        feats_train = np.asarray(cnn.pool(cached_train[0]))
        feats_val = np.asarray(cnn.pool(cached_val[0]))
    feature_in = keras.Input(feats_train.shape[1:])
    head = keras.Model(feature_in, cnn.classifier(cnn.dropout(feature_in)), name=f"{name}_head")
    head.compile(
        optimizer=_optimizer(params.phase1.optimizer, params.phase1.learning_rate),
        loss=loss,
        metrics=["accuracy"],
    )
    stopper, callbacks = _callbacks(params.phase1.patience, live, progress, f"{name} phase 1")
    history1 = head.fit(
        feats_train,
        train_labels,
        sample_weight=train_weights,
        validation_data=(feats_val, val_labels),
        batch_size=params.batch_size,
        epochs=params.phase1.max_epochs,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    phase1 = _best(history1, stopper)
    timings["phase1"] = time.perf_counter() - step

    phase2: dict[str, Any] = {"epochs": 0, "best_epoch": None, "val_loss": None, "val_accuracy": None}
    kept = "phase1"
    trainable_phase2 = 0
    if top is not None:
        step = time.perf_counter()
        phase1_weights = cnn.model.get_weights()
        trainable_phase2 = set_phase(cnn.base, unfreeze)
        frozen_bn = params.phase2.batchnorm == "frozen"
        if frozen_bn:
            for layer in batchnorm_layers(cnn.base):
                layer.trainable = False
        # training=None: BatchNorm follows fit/evaluate (batch statistics while training) unless frozen.
        bn_flag = False if frozen_bn else None
        if online:
            del cached_train  # phase 2 reads the images themselves
            image_in = keras.Input(cnn.model.input_shape[1:])
            features = cnn.base(cnn.preprocess(image_in), training=bn_flag)
            tuned = keras.Model(
                image_in, cnn.classifier(cnn.dropout(cnn.pool(features))), name=f"{name}_tune"
            )
            train_ds, steps = online_dataset(
                x_train,
                one_hot(y_train),
                class_sample_weights(list(y_train), params.class_weights),
                params.augment,
                params.batch_size,
                params.phase2.max_epochs,
                seed,
            )
            val_ds = (
                tf.data.Dataset.from_tensor_slices((x_val.astype("float32"), val_labels))
                .batch(params.batch_size)
                .prefetch(tf.data.AUTOTUNE)
            )
        else:
            cut_inputs = [keras.Input(a.shape[1:]) for a in cached_train]
            tuned = keras.Model(
                cut_inputs,
                cnn.classifier(cnn.dropout(cnn.pool(top(cut_inputs, training=bn_flag)))),
                name=f"{name}_tune",
            )
            train_ds = (
                tf.data.Dataset.from_tensor_slices((tuple(cached_train), train_labels, train_weights))
                .shuffle(
                    len(train_labels),
                    seed=derive_seed(seed, PHASE2_SHUFFLE_KEY),
                    reshuffle_each_iteration=True,
                )
                .batch(params.batch_size)
                .prefetch(tf.data.AUTOTUNE)
            )
            steps = None
            val_ds = (
                tf.data.Dataset.from_tensor_slices((tuple(cached_val), val_labels))
                .batch(params.batch_size)
                .cache()
                .prefetch(tf.data.AUTOTUNE)
            )
        tuned.compile(
            optimizer=_phase2_optimizer(params.phase2, steps or -(-len(train_labels) // params.batch_size)),
            loss=loss,
            metrics=["accuracy"],
        )
        stopper, callbacks = _callbacks(params.phase2.patience, live, progress, f"{name} phase 2")
        history2 = tuned.fit(
            train_ds,
            validation_data=val_ds,
            epochs=params.phase2.max_epochs,
            steps_per_epoch=steps,
            shuffle=False,
            callbacks=callbacks,
            verbose=0,
        )
        phase2 = _best(history2, stopper)
        if phase2["val_loss"] is not None and (
            phase1["val_loss"] is None or phase2["val_loss"] < phase1["val_loss"]
        ):
            kept = "phase2"
        else:
            cnn.model.set_weights(phase1_weights)
        timings["phase2"] = time.perf_counter() - step
        timings["phase2_per_epoch"] = timings["phase2"] / max(1, phase2["epochs"])
    set_phase(cnn.base, 0)
    timings["total"] = time.perf_counter() - start
    best = phase2 if kept == "phase2" else phase1
    metrics = {
        "model": name,
        "input_size": params.input_size,
        "weights": params.weights,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "epochs": {"phase1": phase1["epochs"], "phase2": phase2["epochs"]},
        "phases": {"phase1": phase1, "phase2": phase2},
        "kept": kept,
        "best": {"val_loss": best["val_loss"], "val_accuracy": best["val_accuracy"]},
        "trainable_base_layers": {"phase1": 0, "phase2": trainable_phase2, "base_layers": n_base},
        "augment": {"online": online, "copies": len(copies)},
        "n_train": len(x_train),
        "n_train_augmented": len(train_images),
        "n_val": len(x_val),
    }
    return cnn.model, metrics


class _Rows:
    """Row-batched view over several aligned arrays (for :func:`_run_batched`)."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: slice) -> list[np.ndarray]:
        return [a[index] for a in self.arrays]
