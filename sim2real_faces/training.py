"""Splitting and training: the identity-disjoint split, the MLP and the two-phase CNN training.

Params sections: ``split`` (:class:`SplitParams`), ``train.mlp`` (:class:`MlpParams`),
``train.mobilenetv2`` / ``train.vgg16`` (:class:`CnnParams`), ``train.fusion``
(:class:`FusionParams`). Every random choice is seeded from the top-level ``seed`` through
:func:`sub_seed`.

CNN training on a CPU (:func:`train_cnn`):

1. Augmentation (:func:`augment_image`, stateless TF ops seeded per image): ``augment.copies``
   augmented copies of every training crop are made once and added to the originals for the
   cached-trunk phases; with ``augment.online`` phase 2 draws new augmentations every epoch inside
   the ``tf.data`` pipeline (:func:`online_dataset`) and runs the whole network on them.
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

Fusion (:func:`fit_fusion`): the class probabilities of two trained models combined with a weight
fitted on the synthetic validation part.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces.errors import ProjectError
from sim2real_faces.params import Count, Fraction, NonNegativeInt, PositiveFloat

PARTS: tuple[str, ...] = ("train", "val", "test")


class SplitError(ProjectError, ValueError):
    """The synthetic table cannot be split as the params ask."""


@dataclass(frozen=True)
class Fractions:
    """Share of identities (mode identity) or of each class's images (mode image) per part."""

    train: Fraction
    val: Fraction
    test: Fraction

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
    balance_trials: Count = 200


@dataclass(frozen=True)
class MlpParams:
    """Params section ``train.mlp``: the study's MLP hyperparameters."""

    hidden_units: list[Count]
    activation: str
    learning_rate: PositiveFloat
    batch_size: Count
    max_epochs: Count
    patience: NonNegativeInt


def _check_range(where: str, value: float, low: float, high: float) -> None:
    from sim2real_faces.params import ParamsError

    if not low <= value <= high:
        raise ParamsError(f"params '{where}' = {value!r}: must lie in [{low}, {high}].")


def _check_interval(where: str, pair: tuple[float, float], low: float, high: float) -> None:
    from sim2real_faces.params import ParamsError

    if not low <= pair[0] <= pair[1] <= high:
        raise ParamsError(
            f"params '{where}' = {list(pair)}: must be [min, max] with {low} <= min <= max <= {high}."
        )


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation of CNN training crops (section ``train.<cnn>.augment``), see :func:`augment_image`.

    ``online: true``: phase 2 runs the whole network on fresh draws every epoch (seeded);
    ``copies``: seeded augmented copies made once, added to the originals for the cached-trunk
    phases (phase 1 always; phase 2 too when ``online`` is false). ``online: false, copies: 0``
    switches augmentation off. Each ``*_probability`` is the share of images an op is applied to.
    """

    online: bool
    copies: int
    flip: bool
    rotation_deg: float
    scale: tuple[float, float]
    shift: float
    brightness: float
    contrast: float
    saturation: float
    hue: float
    grey_probability: float
    low_res_probability: float
    low_res_px: tuple[int, int]
    blur_probability: float
    blur_sigma: tuple[float, float]
    noise_probability: float
    noise_sigma: tuple[float, float]
    jpeg_probability: float
    jpeg_quality: tuple[int, int]
    erase_probability: float
    erase_area: tuple[float, float]

    def __post_init__(self) -> None:
        w = "augment"
        _check_range(f"{w}.copies", self.copies, 0, 16)
        _check_range(f"{w}.rotation_deg", self.rotation_deg, 0, 45)
        _check_interval(f"{w}.scale", self.scale, 0.3, 2.0)
        _check_range(f"{w}.shift", self.shift, 0, 0.5)
        for name in ("brightness", "contrast", "saturation"):
            _check_range(f"{w}.{name}", getattr(self, name), 0, 1)
        _check_range(f"{w}.hue", self.hue, 0, 0.5)
        for name in ("grey", "low_res", "blur", "noise", "jpeg", "erase"):
            _check_range(f"{w}.{name}_probability", getattr(self, f"{name}_probability"), 0, 1)
        _check_interval(f"{w}.low_res_px", self.low_res_px, 8, 4096)
        _check_interval(f"{w}.blur_sigma", self.blur_sigma, 0, 5)
        _check_interval(f"{w}.noise_sigma", self.noise_sigma, 0, 64)
        _check_interval(f"{w}.jpeg_quality", self.jpeg_quality, 1, 100)
        _check_interval(f"{w}.erase_area", self.erase_area, 0, 0.5)

    @property
    def active(self) -> bool:
        """Whether any augmentation is applied at all (online draws or offline copies)."""
        return self.online or self.copies > 0


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
        _check_range("phase2.warmup_epochs", self.warmup_epochs, 0, max(0, self.max_epochs))


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
        _check_range("label_smoothing", self.label_smoothing, 0, 0.5)
        _check_range("dropout", self.dropout, 0, 0.9)


@dataclass(frozen=True)
class FusionParams:
    """Params section ``train.fusion``: combine the class probabilities of two trained models.

    ``models``: the two input models (their folders under ``models/``); ``method``: ``mean``
    (weighted mean) or ``product`` (normalised weighted geometric mean); ``weight``: of the first
    model, or null to fit it on the synthetic validation part (lowest cross-entropy among ``grid``
    weights in [0, 1]).
    """

    models: list[str]
    method: Literal["mean", "product"]
    weight: float | None
    grid: int

    def __post_init__(self) -> None:
        from sim2real_faces.params import ParamsError

        if len(self.models) != 2 or len(set(self.models)) != 2:
            raise ParamsError(f"params 'train.fusion.models' = {self.models}: name two different models.")
        if "fusion" in self.models:
            raise ParamsError("params 'train.fusion.models' cannot contain fusion itself.")
        if self.weight is not None:
            _check_range("train.fusion.weight", self.weight, 0, 1)
        _check_range("train.fusion.grid", self.grid, 2, 10001)


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


# ---------------------------------------------------------------------------------------------- augmentation

_N_AUGMENT_SEEDS = 24  # independent stateless streams per image (one per random choice below)


def augment_image(image: Any, seed: Any, params: AugmentParams) -> Any:
    """One seeded random augmentation of one RGB image, as TensorFlow ops (usable in ``tf.data``).

    ``image``: (S, S, 3) uint8 or float in 0..255; ``seed``: int64 tensor of shape (2,). Returns
    float32 (S, S, 3) in 0..255. Stateless random ops only, so the same image and seed give the same
    output on every run and in any order. In turn: flip, rotation, random resized crop (``scale``:
    window side relative to the image; above 1 zooms out) and shift, all one affine warp whose
    out-of-image parts repeat the edge pixels, as the aligned crops of tightly framed photos do;
    brightness, contrast, saturation, hue; grey conversion; down-then-up sampling to
    ``low_res_px``; Gaussian blur; sensor noise (grey noise on grey images); JPEG re-encoding;
    random erasing of one rectangle.
    """
    import tensorflow as tf

    p = params
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=_N_AUGMENT_SEEDS)

    def uniform(index: int, low: float = 0.0, high: float = 1.0, shape: tuple[int, ...] = ()) -> Any:
        return tf.random.stateless_uniform(shape, seeds[index], minval=low, maxval=high)

    def chance(index: int, probability: float) -> Any:
        return uniform(index) < probability

    x = tf.cast(image, tf.float32) / 255.0
    size = tf.shape(x)[0]
    side = tf.cast(size, tf.float32)

    # Geometry: output pixel -> input pixel, about the centre.
    flip = tf.where(chance(0, 0.5), -1.0, 1.0) if p.flip else tf.constant(1.0)
    angle = uniform(1, -p.rotation_deg, p.rotation_deg) * (np.pi / 180.0)
    log_scale = uniform(2, float(np.log(p.scale[0])), float(np.log(p.scale[1])))
    scale = tf.exp(log_scale)
    shift = uniform(3, -p.shift, p.shift, (2,)) * side
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    centre = (side - 1.0) / 2.0
    a0, a1 = cos * flip, -sin
    b0, b1 = sin * flip, cos
    a2 = centre - a0 * centre - a1 * centre + shift[0]
    b2 = centre - b0 * centre - b1 * centre + shift[1]
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None]
    x = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None],
        transforms=transform,
        output_shape=tf.stack([size, size]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )[0]

    # Colour.
    if p.brightness:
        x = x + uniform(4, -p.brightness, p.brightness)
    if p.contrast:
        x = tf.image.adjust_contrast(x, uniform(5, 1 - p.contrast, 1 + p.contrast))
    if p.saturation:
        x = tf.image.adjust_saturation(
            tf.clip_by_value(x, 0, 1), uniform(6, 1 - p.saturation, 1 + p.saturation)
        )
    if p.hue:
        x = tf.image.adjust_hue(tf.clip_by_value(x, 0, 1), uniform(7, -p.hue, p.hue))
    x = tf.clip_by_value(x, 0.0, 1.0)

    grey = chance(8, p.grey_probability)
    x = tf.cond(grey, lambda: tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 3]), lambda: x)

    if p.low_res_probability > 0:
        low = tf.cast(tf.floor(uniform(10, float(p.low_res_px[0]), float(p.low_res_px[1]) + 1.0)), tf.int32)
        low = tf.minimum(low, size)

        def low_res() -> Any:
            small = tf.image.resize(x, tf.stack([low, low]), method="area", antialias=True)
            return tf.image.resize(small, tf.stack([size, size]), method="bilinear")

        x = tf.cond(chance(9, p.low_res_probability), low_res, lambda: x)

    if p.blur_probability > 0 and p.blur_sigma[1] > 0:
        radius = int(np.ceil(3 * p.blur_sigma[1]))
        sigma = tf.maximum(uniform(12, p.blur_sigma[0], p.blur_sigma[1]), 1e-3)

        def blur() -> Any:
            taps = tf.range(-radius, radius + 1, dtype=tf.float32)
            kernel = tf.exp(-0.5 * tf.square(taps / sigma))
            kernel = kernel / tf.reduce_sum(kernel)
            padded = tf.pad(x[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
            rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
            cols = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
            out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
            return tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")[0]

        x = tf.cond(chance(11, p.blur_probability), blur, lambda: x)

    if p.noise_probability > 0 and p.noise_sigma[1] > 0:
        sigma = uniform(14, p.noise_sigma[0], p.noise_sigma[1]) / 255.0

        def noise() -> Any:
            grey_noise = tf.random.stateless_normal(tf.stack([size, size, 1]), seeds[15])
            colour_noise = tf.random.stateless_normal(tf.stack([size, size, 3]), seeds[16])
            return tf.clip_by_value(x + sigma * tf.where(grey, grey_noise, colour_noise), 0.0, 1.0)

        x = tf.cond(chance(13, p.noise_probability), noise, lambda: x)

    if p.jpeg_probability > 0:
        quality = tf.cast(
            tf.floor(uniform(18, float(p.jpeg_quality[0]), float(p.jpeg_quality[1]) + 1.0)), tf.int32
        )
        quality = tf.minimum(quality, p.jpeg_quality[1])

        def jpeg() -> Any:
            out = tf.image.adjust_jpeg_quality(x, quality)
            out = tf.reshape(out, tf.shape(x))
            return out

        x = tf.cond(chance(17, p.jpeg_probability), jpeg, lambda: x)

    if p.erase_probability > 0 and p.erase_area[1] > 0:

        def erase() -> Any:
            area = uniform(20, p.erase_area[0], p.erase_area[1]) * side * side
            aspect = tf.exp(uniform(21, float(np.log(0.3)), float(np.log(3.3))))
            height = tf.clip_by_value(tf.sqrt(area * aspect), 1.0, side)
            width = tf.clip_by_value(tf.sqrt(area / aspect), 1.0, side)
            corner = uniform(22, 0.0, 1.0, (2,)) * (side - tf.stack([height, width]))
            ys = tf.range(side)[:, None]
            xs = tf.range(side)[None, :]
            inside = (
                (ys >= corner[0]) & (ys < corner[0] + height) & (xs >= corner[1]) & (xs < corner[1] + width)
            )
            fill = uniform(23)
            return tf.where(inside[..., None], fill, x)

        x = tf.cond(chance(19, p.erase_probability), erase, lambda: x)

    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


@functools.lru_cache(maxsize=8)
def _batch_augmenter(params: AugmentParams, size: int) -> Any:
    """A compiled :func:`augment_image` over a batch of (S, S, 3) uint8 images and their seeds."""
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.uint8),
            tf.TensorSpec([None, 2], tf.int64),
        ]
    )
    def run(images: Any, seeds: Any) -> Any:
        return tf.map_fn(
            lambda item: augment_image(item[0], item[1], params),
            (images, seeds),
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )

    return run


def augment_batch(images: np.ndarray, params: AugmentParams, seed: int, offset: int = 0) -> np.ndarray:
    """:func:`augment_image` over a batch (image ``i`` gets the seed ``(seed, offset + i)``); float32."""
    images = np.asarray(images, dtype=np.uint8)
    if len(images) == 0:
        return np.zeros(images.shape, dtype=np.float32)
    positions = np.arange(offset, offset + len(images), dtype=np.int64)
    seeds = np.stack([np.full(len(images), seed, dtype=np.int64), positions], axis=1)
    return _batch_augmenter(params, images.shape[1])(images, seeds).numpy()


def augment_copies(
    images: np.ndarray, params: AugmentParams, seed: int, batch_size: int = 256, progress: bool = True
) -> list[np.ndarray]:
    """``params.copies`` augmented uint8 copies of ``images`` (N, S, S, 3), seeded and deterministic."""
    from tqdm import tqdm

    copies = []
    for copy in range(params.copies):
        out = np.empty_like(images)
        for start in tqdm(
            range(0, len(images), batch_size),
            desc=f"augment copy {copy + 1}",
            unit="batch",
            disable=not progress,
        ):
            batch = images[start : start + batch_size]
            result = augment_batch(batch, params, sub_seed(seed, f"copy{copy}"), offset=start)
            out[start : start + batch_size] = np.clip(np.rint(result), 0, 255).astype(np.uint8)
        copies.append(out)
    return copies


def epoch_order(n: int, batch_size: int, epochs: int, seed: int) -> np.ndarray:
    """Row order for ``epochs`` epochs of ``ceil(n / batch_size)`` full batches each.

    Each epoch is a fresh seeded permutation, topped up with the start of a second one so the last
    batch is full: every row is seen at least once per epoch and every step has ``batch_size`` rows.
    """
    rng = np.random.default_rng(seed)
    steps = -(-n // batch_size)
    per_epoch = steps * batch_size
    order = []
    for _ in range(epochs):
        rows = rng.permutation(n)
        while len(rows) < per_epoch:
            rows = np.concatenate([rows, rng.permutation(n)])
        order.append(rows[:per_epoch])
    return np.concatenate(order) if order else np.zeros(0, dtype=np.int64)


def online_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    params: AugmentParams,
    batch_size: int,
    epochs: int,
    seed: int,
) -> tuple[Any, int]:
    """(tf.data dataset of augmented (image, label, weight) batches for ``epochs`` epochs, steps per epoch).

    Every position of :func:`epoch_order` gets its own augmentation seed, so each epoch draws new
    augmentations; the dataset is meant for ``fit(..., steps_per_epoch=steps)``, which keeps one
    iterator across epochs.
    """
    import tensorflow as tf

    order = epoch_order(len(images), batch_size, epochs, sub_seed(seed, "online-order"))
    augment_seed = sub_seed(seed, "online-augment")
    images_t = tf.constant(images)
    labels_t = tf.constant(labels)
    weights_t = tf.constant(weights.astype("float32"))

    def load(position: Any, row: Any) -> Any:
        seed_pair = tf.stack([tf.constant(augment_seed, tf.int64), position])
        image = augment_image(tf.gather(images_t, row), seed_pair, params)
        return image, tf.gather(labels_t, row), tf.gather(weights_t, row)

    dataset = (
        tf.data.Dataset.from_tensor_slices(
            (tf.range(len(order), dtype=tf.int64), tf.constant(order, tf.int64))
        )
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, -(-len(images) // batch_size)


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

    copies = augment_copies(x_train, params.augment, sub_seed(seed, "augment"), progress=progress)
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
                    len(train_labels), seed=sub_seed(seed, "phase2-shuffle"), reshuffle_each_iteration=True
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


def fit_fusion(
    names: Sequence[str],
    probas: Sequence[np.ndarray],
    reasons: Sequence[np.ndarray],
    y_val: Sequence[str],
    params: FusionParams,
) -> dict[str, Any]:
    """The fusion's description (``model.json``): inputs, method and the weights, fitted on validation.

    ``probas``/``reasons``: each input model's predictions for the validation rows. The weight is
    fitted on the rows where both models have a prediction (their count is recorded).
    """
    from sim2real_faces.evaluation import combine_probabilities, cross_entropy, fit_fusion_weight

    index = {c: i for i, c in enumerate(CLASSES)}
    y_index = np.array([index[str(y)] for y in y_val], dtype=int)
    both = (np.asarray(reasons[0]) == "") & (np.asarray(reasons[1]) == "")
    if not both.any():
        raise ValueError(
            f"no validation row has a prediction from both {list(names)}: cannot fit the fusion."
        )
    a, b = probas[0][both], probas[1][both]
    curve: list[tuple[float, float]] = []
    if params.weight is None:
        weight, curve = fit_fusion_weight(a, b, y_index[both], params.method, params.grid)
    else:
        weight = params.weight
    fused = combine_probabilities([a, b], [weight, 1 - weight], params.method)
    accuracy = float((fused.argmax(axis=1) == y_index[both]).mean())
    single = {
        name: {
            "val_loss": cross_entropy(y_index[both], p),
            "val_accuracy": float((p.argmax(axis=1) == y_index[both]).mean()),
        }
        for name, p in zip(names, (a, b), strict=True)
    }
    return {
        "model": "fusion",
        "components": list(names),
        "method": params.method,
        "weights": [float(weight), float(1 - weight)],
        "fitted": params.weight is None,
        "n_val": len(y_index),
        "n_val_both": int(both.sum()),
        "best": {"val_loss": cross_entropy(y_index[both], fused), "val_accuracy": accuracy},
        "inputs_val": single,
        "curve": [{"weight": w, "val_loss": loss} for w, loss in curve],
    }


def augmentation_sheet(
    images: np.ndarray, params: AugmentParams, seed: int, n_images: int = 6, n_draws: int = 7
) -> np.ndarray:
    """A contact sheet (RGB uint8): one row per image, its original first, then ``n_draws`` augmentations.

    Draws use the same op chain and seeding scheme as training (seed ``(seed, draw * n + row)``).
    """
    images = np.asarray(images)[:n_images]
    rows = []
    for row, image in enumerate(images):
        draws = augment_batch(np.repeat(image[None], n_draws, axis=0), params, seed, offset=row * n_draws)
        tiles = [image, *np.clip(np.rint(draws), 0, 255).astype(np.uint8)]
        rows.append(
            np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], 1)
        )
    return np.concatenate(rows, 0) if rows else np.zeros((0, 0, 3), np.uint8)
