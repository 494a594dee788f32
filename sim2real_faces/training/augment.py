"""Augmentation of CNN training crops (section ``train.<cnn>.augment``), seeded per image.

:func:`augment_image` is one random augmentation as stateless TensorFlow ops; :func:`augment_copies`
makes the offline copies for the cached-trunk phases, :func:`online_dataset` the ``tf.data``
pipeline with fresh draws every epoch, :func:`augmentation_sheet` a contact sheet of the draws.
Image ``i`` of a stream seeded ``s`` gets the stateless seed pair ``(s, i)``
(:func:`sim2real_faces.seeds.stateless_pairs`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim2real_faces.params import Range, check_value
from sim2real_faces.seeds import ONLINE_AUGMENT_KEY, ONLINE_ORDER_KEY, copy_key, derive_seed, stateless_pairs


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
        check_value(Range(0, 16), self.copies, f"{w}.copies")
        check_value(Range(0, 45), self.rotation_deg, f"{w}.rotation_deg")
        _check_interval(f"{w}.scale", self.scale, 0.3, 2.0)
        check_value(Range(0, 0.5), self.shift, f"{w}.shift")
        for name in ("brightness", "contrast", "saturation"):
            check_value(Range(0, 1), getattr(self, name), f"{w}.{name}")
        check_value(Range(0, 0.5), self.hue, f"{w}.hue")
        for name in ("grey", "low_res", "blur", "noise", "jpeg", "erase"):
            check_value(Range(0, 1), getattr(self, f"{name}_probability"), f"{w}.{name}_probability")
        _check_interval(f"{w}.low_res_px", self.low_res_px, 8, 4096)
        _check_interval(f"{w}.blur_sigma", self.blur_sigma, 0, 5)
        _check_interval(f"{w}.noise_sigma", self.noise_sigma, 0, 64)
        _check_interval(f"{w}.jpeg_quality", self.jpeg_quality, 1, 100)
        _check_interval(f"{w}.erase_area", self.erase_area, 0, 0.5)

    @property
    def active(self) -> bool:
        """Whether any augmentation is applied at all (online draws or offline copies)."""
        return self.online or self.copies > 0


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
    pairs = stateless_pairs(seed, np.arange(offset, offset + len(images), dtype=np.int64))
    return _batch_augmenter(params, images.shape[1])(images, pairs).numpy()


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
            result = augment_batch(batch, params, derive_seed(seed, copy_key(copy)), offset=start)
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

    order = epoch_order(len(images), batch_size, epochs, derive_seed(seed, ONLINE_ORDER_KEY))
    pairs = stateless_pairs(derive_seed(seed, ONLINE_AUGMENT_KEY), np.arange(len(order), dtype=np.int64))
    images_t = tf.constant(images)
    labels_t = tf.constant(labels)
    weights_t = tf.constant(weights.astype("float32"))

    def load(seed_pair: Any, row: Any) -> Any:
        image = augment_image(tf.gather(images_t, row), seed_pair, params)
        return image, tf.gather(labels_t, row), tf.gather(weights_t, row)

    dataset = (
        tf.data.Dataset.from_tensor_slices((tf.constant(pairs, tf.int64), tf.constant(order, tf.int64)))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, -(-len(images) // batch_size)


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
