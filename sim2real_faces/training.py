"""Splitting and training: the identity-disjoint split, the MLP and the two-phase CNN training.

Params sections: ``split`` (:class:`SplitParams`), ``train.mlp`` (:class:`MlpParams`),
``train.mobilenetv2`` / ``train.vgg16`` (:class:`CnnParams`). Every random choice is seeded from
the top-level ``seed`` through :func:`sub_seed`.

CNN training on a CPU (:func:`train_cnn`):

1. Augmentation is offline: ``augment.copies`` seeded augmented copies of every training crop are
   made once (flip, rotation, zoom, colour jitter) and the training set is the originals plus the
   copies, for both phases.
2. The base is cut before its last ``phase2.unfreeze_last`` layers (:func:`models.split_base`).
   The frozen trunk runs ONCE over the training and validation crops; its outputs are kept in
   memory. Phase 1 trains the head on the pooled outputs of the (still frozen) top; phase 2 trains
   the top + head on the cached trunk outputs with tf.data (shuffle, batch, prefetch). Because the
   trunk is frozen and its BatchNorm layers run in inference mode, this is exactly the same
   computation as running the whole network every step, minus the repeated trunk work.
3. Early stopping on validation loss restores the best weights in both phases; if no phase-2 epoch
   beats phase 1's best validation loss, the phase-1 weights are kept (recorded in the metrics).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from sim2real_faces import CLASSES

PARTS: tuple[str, ...] = ("train", "val", "test")


class SplitError(ValueError):
    """The synthetic table cannot be split as the params ask."""


@dataclass(frozen=True)
class Fractions:
    """Share of identities (mode identity) or of each class's images (mode image) per part."""

    train: float
    val: float
    test: float

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class SplitParams:
    """Params section ``split``.

    mode ``identity``: whole identities go to one part (no identity in two parts); among
    ``balance_trials`` seeded shuffles of the identities, the one whose parts best match the
    overall class mix and the target image shares is kept. mode ``image``: the study's per-class
    image split (identities shared between parts; for the ``paper`` profile only).
    """

    mode: Literal["identity", "image"]
    fractions: Fractions
    balance_trials: int = 200


@dataclass(frozen=True)
class MlpParams:
    """Params section ``train.mlp``: the study's MLP hyperparameters."""

    hidden_units: list[int]
    activation: str
    learning_rate: float
    batch_size: int
    max_epochs: int
    patience: int


@dataclass(frozen=True)
class AugmentParams:
    """Offline augmentation of CNN training crops (``copies: 0`` switches it off)."""

    copies: int
    flip: bool
    rotation_deg: float
    zoom: float
    brightness: float
    contrast: float
    saturation: float
    hue: float


@dataclass(frozen=True)
class PhaseParams:
    """One training phase of a CNN."""

    optimizer: Literal["adam", "rmsprop", "sgd"]
    learning_rate: float
    max_epochs: int
    patience: int


@dataclass(frozen=True)
class FineTuneParams:
    """Phase 2: the last ``unfreeze_last`` base layers trainable (0 or ``max_epochs: 0`` skips it)."""

    unfreeze_last: int
    optimizer: Literal["adam", "rmsprop", "sgd"]
    learning_rate: float
    max_epochs: int
    patience: int


@dataclass(frozen=True)
class CnnParams:
    """Params sections ``train.mobilenetv2`` and ``train.vgg16``.

    ``weights``: ``imagenet`` (Keras cache/download), a local ``.h5`` path, or null (random init).
    """

    input_size: int
    weights: str | None
    dropout: float
    batch_size: int
    augment: AugmentParams
    phase1: PhaseParams
    phase2: FineTuneParams


def sub_seed(root: int, name: str) -> int:
    """A 32-bit seed for the named purpose, derived from the top-level ``seed``."""
    sequence = np.random.SeedSequence(entropy=root, spawn_key=(zlib.crc32(name.encode()),))
    return int(sequence.generate_state(1)[0])


def _allocate(total: int, fractions: dict[str, float], what: str) -> dict[str, int]:
    """Largest-remainder counts per part; every part with a positive fraction gets at least one."""
    wanted = [p for p in PARTS if fractions[p] > 0]
    if total < len(wanted):
        raise SplitError(
            f"{total} {what} cannot fill the {len(wanted)} parts {wanted}: each needs at least one. "
            "Generate more identities (params humans) or set a fraction to 0."
        )
    raw = {p: fractions[p] * total for p in PARTS}
    counts = {p: int(np.floor(raw[p])) for p in PARTS}
    for part in sorted(PARTS, key=lambda p: (-(raw[p] - counts[p]), PARTS.index(p))):
        if sum(counts.values()) >= total:
            break
        counts[part] += 1
    for part in wanted:
        while counts[part] == 0:
            donor = max(wanted, key=lambda p: counts[p])
            counts[donor] -= 1
            counts[part] += 1
    return counts


def _check_fractions(fractions: Fractions) -> dict[str, float]:
    values = fractions.as_dict()
    if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1) > 1e-6:
        raise SplitError(f"split.fractions {values} must be non-negative and sum to 1.")
    if values["train"] <= 0 or values["val"] <= 0:
        raise SplitError("split.fractions.train and .val must be positive (val drives early stopping).")
    return values


def split_table(table: pd.DataFrame, params: SplitParams, seed: int, source: str = "table") -> pd.DataFrame:
    """Assign every row of ``table`` (columns file, identity, class) to train / val / test.

    Returns columns file, identity, class, part sorted by file. Deterministic for a given seed.
    """
    missing = [c for c in ("file", "identity", "class") if c not in table]
    if missing:
        raise SplitError(f"{source} lacks column(s) {missing}; rerun `dvc repro filter`.")
    if table["file"].duplicated().any():
        raise SplitError(f"{source} lists a file twice: {table['file'][table['file'].duplicated()].iloc[0]}.")
    unknown = sorted(set(table["class"]) - set(CLASSES))
    if unknown:
        raise SplitError(f"{source} has unknown class(es) {unknown}; expected {list(CLASSES)}.")
    fractions = _check_fractions(params.fractions)
    frame = table[["file", "identity", "class"]].copy()
    frame["identity"] = frame["identity"].astype(str)
    frame = frame.sort_values("file", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    part = np.empty(len(frame), dtype=object)
    if params.mode == "image":
        for cls in CLASSES:
            rows = np.flatnonzero(frame["class"].to_numpy() == cls)
            if len(rows) == 0:
                continue
            counts = _allocate(len(rows), fractions, f"'{cls}' images")
            order = rows[rng.permutation(len(rows))]
            labels = np.repeat(list(PARTS), [counts[p] for p in PARTS])
            part[order] = labels
    else:
        identities = np.array(sorted(frame["identity"].unique()))
        counts = _allocate(len(identities), fractions, "identities")
        labels = np.repeat(list(PARTS), [counts[p] for p in PARTS])
        per_identity = pd.crosstab(frame["identity"], frame["class"]).reindex(
            index=identities, columns=list(CLASSES), fill_value=0
        )
        matrix = per_identity.to_numpy(dtype=float)
        overall = matrix.sum(axis=0) / matrix.sum()
        best_score, best_perm = np.inf, None
        for _ in range(max(1, params.balance_trials)):
            perm = rng.permutation(len(identities))
            assigned = labels[np.argsort(perm)]  # identity i gets labels[position of i in perm]
            score = 0.0
            for name in PARTS:
                rows = matrix[assigned == name]
                if len(rows) == 0:
                    continue
                totals = rows.sum(axis=0)
                score += np.abs(totals / max(totals.sum(), 1) - overall).sum()
                score += abs(totals.sum() / matrix.sum() - fractions[name])
            if score < best_score - 1e-12:
                best_score, best_perm = score, assigned
        mapping = dict(zip(identities, best_perm, strict=True))
        part = frame["identity"].map(mapping).to_numpy()
    frame["part"] = part
    return frame


def split_summary(split: pd.DataFrame) -> dict[str, Any]:
    """Counts per part and class, identities per part, and identities shared between parts."""
    summary: dict[str, Any] = {"n": len(split), "parts": {}}
    for name in PARTS:
        rows = split[split["part"] == name]
        summary["parts"][name] = {
            "n": len(rows),
            "identities": int(rows["identity"].nunique()),
            "per_class": {c: int((rows["class"] == c).sum()) for c in CLASSES},
        }
    owners = split.groupby("identity")["part"].nunique()
    summary["identities_in_several_parts"] = int((owners > 1).sum())
    return summary


# ----------------------------------------------------------------------------------------------
# Training (TensorFlow imported lazily so split stays light)


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
    model = build_mlp(x_train, params.hidden_units, params.activation)
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
    }
    return model, metrics


def make_augmenter(params: AugmentParams, seed: int):
    """A seeded Keras pipeline (flip, rotation, zoom, colour jitter) on RGB 0..255 batches."""
    import keras

    layers: list[Any] = []
    if params.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if params.rotation_deg > 0:
        layers.append(
            keras.layers.RandomRotation(params.rotation_deg / 360.0, fill_mode="reflect", seed=seed + 1)
        )
    if params.zoom > 0:
        layers.append(
            keras.layers.RandomZoom((-params.zoom, params.zoom), fill_mode="reflect", seed=seed + 2)
        )
    jitter = {
        "brightness_factor": params.brightness or None,
        "contrast_factor": params.contrast or None,
        "saturation_factor": (max(0.0, 0.5 - params.saturation / 2), min(1.0, 0.5 + params.saturation / 2))
        if params.saturation
        else None,
        "hue_factor": params.hue or None,
    }
    if any(v is not None for v in jitter.values()):
        layers.append(keras.layers.RandomColorJitter(value_range=(0, 255), seed=seed + 3, **jitter))
    return keras.Sequential(layers, name="augment") if layers else None


def augment_copies(
    images: np.ndarray, params: AugmentParams, seed: int, batch_size: int = 64, progress: bool = True
) -> list[np.ndarray]:
    """``params.copies`` augmented uint8 copies of ``images`` (N, S, S, 3), seeded and deterministic."""
    from tqdm import tqdm

    augmenter = make_augmenter(params, seed)
    if params.copies <= 0 or augmenter is None:
        return []
    copies = []
    for copy in range(params.copies):
        out = np.empty_like(images)
        for start in tqdm(
            range(0, len(images), batch_size),
            desc=f"augment copy {copy + 1}",
            unit="batch",
            disable=not progress,
        ):
            batch = images[start : start + batch_size].astype("float32")
            result = np.asarray(augmenter(batch, training=True))
            out[start : start + batch_size] = np.clip(np.rint(result), 0, 255).astype(np.uint8)
        copies.append(out)
    return copies


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

    Returns (full inference model, metrics dict: seconds per step, epochs and best validation
    loss/accuracy per phase, the phase kept, trainable layer counts, n_train/n_val, weights).
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
    loss = make_loss()
    check_loss_pairing(cnn.model, loss)

    copies = augment_copies(x_train, params.augment, sub_seed(seed, "augment"), progress=progress)
    train_images = np.concatenate([x_train, *copies]) if copies else x_train
    train_labels = one_hot(list(y_train) * (1 + len(copies)))
    val_labels = one_hot(y_val)
    timings["augment"] = time.perf_counter() - start

    # Frozen trunk, once: its outputs feed phase 1 (through the still frozen top) and phase 2.
    n_base = len(cnn.base.layers)
    unfreeze = params.phase2.unfreeze_last if params.phase2.max_epochs > 0 else 0
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
        cut_inputs = [keras.Input(a.shape[1:]) for a in cached_train]
        tuned = keras.Model(
            cut_inputs,
            cnn.classifier(cnn.dropout(cnn.pool(top(cut_inputs, training=False)))),
            name=f"{name}_tune",
        )
        tuned.compile(
            optimizer=_optimizer(params.phase2.optimizer, params.phase2.learning_rate),
            loss=loss,
            metrics=["accuracy"],
        )
        train_ds = (
            tf.data.Dataset.from_tensor_slices((tuple(cached_train), train_labels))
            .shuffle(len(train_labels), seed=sub_seed(seed, "phase2-shuffle"), reshuffle_each_iteration=True)
            .batch(params.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
        val_ds = (
            tf.data.Dataset.from_tensor_slices((tuple(cached_val), val_labels))
            .batch(params.batch_size)
            .cache()
            .prefetch(tf.data.AUTOTUNE)
        )
        stopper, callbacks = _callbacks(params.phase2.patience, live, progress, f"{name} phase 2")
        history2 = tuned.fit(
            train_ds,
            validation_data=val_ds,
            epochs=params.phase2.max_epochs,
            shuffle=False,
            callbacks=callbacks,
            verbose=0,
        )
        phase2 = _best(history2, stopper)
        if phase2["val_loss"] is not None and phase2["val_loss"] < phase1["val_loss"]:
            kept = "phase2"
        else:
            cnn.model.set_weights(phase1_weights)
        timings["phase2"] = time.perf_counter() - step
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
