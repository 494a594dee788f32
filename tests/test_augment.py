"""Online augmentation of CNN crops: seeding, every op's shape/dtype/range, what grey and low-res do,
the per-epoch input pipeline, the phase-2 recipe (BatchNorm frozen) and the edge-replicated crop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim2real_faces.compose import composed_section
from sim2real_faces.params import ParamsError, from_dict
from sim2real_faces.training import (
    AugmentParams,
    augment_batch,
    augmentation_sheet,
    class_sample_weights,
    epoch_order,
    online_dataset,
)

CONF = composed_section("train.mobilenetv2.augment")

# Every op off: the identity, so that each op can be switched on alone.
NOTHING = {
    **CONF,
    "flip": False,
    "rotation_deg": 0.0,
    "scale": [1.0, 1.0],
    "shift": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,
    "grey_probability": 0.0,
    "low_res_probability": 0.0,
    "blur_probability": 0.0,
    "noise_probability": 0.0,
    "jpeg_probability": 0.0,
    "erase_probability": 0.0,
}

ONE_OP = {
    "flip": {"flip": True},
    "rotation": {"rotation_deg": 20.0},
    "scale": {"scale": [0.7, 1.4]},
    "shift": {"shift": 0.1},
    "brightness": {"brightness": 0.3},
    "contrast": {"contrast": 0.5},
    "saturation": {"saturation": 0.8},
    "hue": {"hue": 0.1},
    "grey": {"grey_probability": 1.0},
    "low_res": {"low_res_probability": 1.0},
    "blur": {"blur_probability": 1.0},
    "noise": {"noise_probability": 1.0},
    "jpeg": {"jpeg_probability": 1.0},
    "erase": {"erase_probability": 1.0},
}


def params(**changes) -> AugmentParams:
    return from_dict(AugmentParams, {**NOTHING, **changes}, "augment")


def face_like(n: int = 6, size: int = 64, seed: int = 0) -> np.ndarray:
    """Colourful images with fine detail: a smooth colour ramp plus a checkerboard and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 / size, yy * 255 / size, (xx + yy) * 127 / size], axis=-1)
    checker = ((xx // 2 + yy // 2) % 2)[..., None] * 60.0
    images = base[None] * 0.7 + checker[None] + rng.normal(0, 10, (n, size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8)


def test_defaults_load_and_out_of_range_values_are_refused():
    assert from_dict(AugmentParams, CONF, "augment").online
    with pytest.raises(ParamsError, match=r"augment\.grey_probability"):
        params(grey_probability=1.5)
    with pytest.raises(ParamsError, match=r"augment\.low_res_px"):
        params(low_res_px=[112, 48])
    with pytest.raises(ParamsError, match=r"augment\.jpeg_quality"):
        params(jpeg_quality=[0, 90])


def test_all_ops_off_is_the_identity():
    x = face_like()
    np.testing.assert_allclose(augment_batch(x, params(), seed=1), x.astype(np.float32), atol=1e-3)


def test_same_seed_same_batch_other_seed_other_batch():
    x = face_like()
    everything = from_dict(AugmentParams, CONF, "augment")
    a = augment_batch(x, everything, seed=7)
    np.testing.assert_array_equal(a, augment_batch(x, everything, seed=7))
    assert not np.array_equal(a, augment_batch(x, everything, seed=8))
    # Seeds go per image: the same image at another position draws another augmentation.
    assert not np.array_equal(a[0], a[1]) or not np.array_equal(x[0], x[1])


@pytest.mark.parametrize("name", sorted(ONE_OP))
def test_each_op_keeps_shape_dtype_and_range_and_changes_the_image(name):
    x = face_like()
    out = augment_batch(x, params(**ONE_OP[name]), seed=3)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0 and np.isfinite(out).all()
    assert np.abs(out - x).max() > 1.0, f"{name} did nothing"


def test_grey_makes_the_channels_equal():
    out = augment_batch(face_like(), params(grey_probability=1.0), seed=0)
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-3)
    colour = augment_batch(face_like(), params(grey_probability=0.0), seed=0)
    assert np.abs(colour[..., 0] - colour[..., 2]).max() > 10


def test_low_res_removes_fine_detail():
    """Down to 16 px and back: the 2-pixel checkerboard (a frequency above 16 px's Nyquist) is gone."""
    x = face_like(size=64)
    out = augment_batch(x, params(low_res_probability=1.0, low_res_px=[16, 16]), seed=0)

    def detail(images: np.ndarray) -> float:  # energy of pixel-to-pixel differences
        return float(np.abs(np.diff(images.astype(float), axis=2)).mean())

    assert detail(out) < 0.35 * detail(x)
    assert out.shape == x.shape
    # Between the same-size steps it stays a faithful picture: the mean colour is kept.
    np.testing.assert_allclose(out.mean(axis=(1, 2)), x.mean(axis=(1, 2)), atol=6)


def test_zoom_out_repeats_the_edge_instead_of_black():
    """Above 1 the window is larger than the image; the outside repeats the border pixels, never black."""
    x = np.full((2, 48, 48, 3), 200, np.uint8)
    out = augment_batch(x, params(scale=[1.6, 1.6]), seed=0)
    assert out.min() > 190


def test_probability_applies_to_about_that_share():
    x = face_like(n=200, size=16)
    out = augment_batch(x, params(grey_probability=0.5), seed=2)
    grey = np.abs(out[..., 0] - out[..., 2]).max(axis=(1, 2)) < 1e-3
    assert 70 <= grey.sum() <= 130


def test_epoch_order_fills_batches_and_changes_every_epoch():
    order = epoch_order(10, 4, epochs=3, seed=1)
    assert len(order) == 3 * 12
    epochs = order.reshape(3, 12)
    for epoch in epochs:
        assert set(epoch) == set(range(10))  # everyone at least once per epoch
    assert not np.array_equal(epochs[0], epochs[1])
    np.testing.assert_array_equal(order, epoch_order(10, 4, epochs=3, seed=1))


def test_online_dataset_draws_new_augmentations_every_epoch_and_is_seeded():
    x = face_like(n=4, size=32)
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    augment = from_dict(AugmentParams, CONF, "augment")

    def run() -> list[np.ndarray]:
        dataset, steps = online_dataset(x, labels, np.ones(4), augment, batch_size=4, epochs=2, seed=5)
        assert steps == 1
        return [batch[0].numpy() for batch in dataset]

    first, again = run(), run()
    assert len(first) == 2 and first[0].shape == (4, 32, 32, 3)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)  # same seed, same batches
    assert not np.allclose(np.sort(first[0].reshape(4, -1), 0), np.sort(first[1].reshape(4, -1), 0))


def test_class_weights_balance_the_classes():
    weights = class_sample_weights(["angry"] * 6 + ["happy"] * 2 + ["crying"] * 4, "balanced")
    totals = [weights[:6].sum(), weights[6:8].sum(), weights[8:].sum()]
    np.testing.assert_allclose(totals, [4, 4, 4])
    assert (class_sample_weights(["angry", "happy"], "none") == 1).all()


def test_augmentation_sheet_shows_originals_and_draws():
    x = face_like(n=3, size=32)
    sheet = augmentation_sheet(x, from_dict(AugmentParams, CONF, "augment"), seed=1, n_images=3, n_draws=4)
    assert sheet.shape == (3 * 36, 5 * 36, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet[2:34, 2:34], x[0])  # first column: the original


def test_phase2_keeps_batchnorm_frozen_and_trains_the_top():
    """Phase 2 (online augmentation) changes convolution kernels of the unfrozen top but no
    BatchNorm statistics or scale/offset; with batchnorm: train the moving statistics move."""
    from sim2real_faces import CLASSES
    from sim2real_faces.models import build_cnn
    from sim2real_faces.training import CnnParams, FineTuneParams, PhaseParams, batchnorm_layers, train_cnn

    y = [CLASSES[i % 3] for i in range(24)]
    x = face_like(n=24, size=32)
    recipe = CnnParams(
        input_size=32,
        weights=None,
        dropout=0.2,
        batch_size=8,
        label_smoothing=0.1,
        class_weights="balanced",
        augment=from_dict(AugmentParams, {**CONF, "copies": 0}, "augment"),
        phase1=PhaseParams("adam", 1e-3, 0, 1),  # no phase 1: phase 2 is always kept
        phase2=FineTuneParams(
            unfreeze_last=20,
            optimizer="adam",
            learning_rate=1e-3,
            max_epochs=1,
            patience=1,
            batchnorm="frozen",
            schedule="cosine",
            warmup_epochs=1,
        ),
    )
    fresh = build_cnn("mobilenetv2", 32, None)
    model, metrics = train_cnn("mobilenetv2", x[:18], y[:18], x[18:], y[18:], recipe, seed=3, progress=False)
    assert metrics["kept"] == "phase2" and metrics["augment"] == {"online": True, "copies": 0}
    trained_base = model.get_layer(fresh.base.name)
    bn = batchnorm_layers(trained_base)
    assert len(bn) == len(batchnorm_layers(fresh.base)) > 10
    for layer, initial in zip(bn, batchnorm_layers(fresh.base), strict=True):
        for value, start in zip(layer.get_weights(), initial.get_weights(), strict=True):
            np.testing.assert_array_equal(value, start)  # gamma, beta, moving mean and variance
    top_conv = trained_base.get_layer("Conv_1")
    assert not np.array_equal(top_conv.get_weights()[0], fresh.base.get_layer("Conv_1").get_weights()[0])

    train_bn = dataclasses.replace(recipe, phase2=dataclasses.replace(recipe.phase2, batchnorm="train"))
    model, _ = train_cnn("mobilenetv2", x[:18], y[:18], x[18:], y[18:], train_bn, seed=3, progress=False)
    moving = [layer.get_weights()[2] for layer in batchnorm_layers(model.get_layer(fresh.base.name))[-5:]]
    assert any(np.abs(m).max() > 0 for m in moving)  # moving means left their initial zeros


def test_aligned_crop_replicates_the_edge_outside_the_photo():
    """A tight photo whose landmark square reaches past its border: no black corners in the crop."""
    from sim2real_faces.faces.analysis import _aligned_crop

    image = np.full((40, 40, 3), 180, np.uint8)
    points = np.array([[x, y, 0.0] for x in (2.0, 38.0) for y in (2.0, 38.0)] * 120)[:478]
    crop = _aligned_crop(image, points, size=32, margin=0.4)
    assert crop.min() == 180
