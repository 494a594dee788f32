"""Fusion of two models' class probabilities: combination, missing inputs, the fitted weight."""

from __future__ import annotations

import numpy as np
import pytest

from sim2real_faces.evaluation import (
    combine_probabilities,
    cross_entropy,
    fit_fusion_weight,
    fuse_predictions,
)
from sim2real_faces.params import ParamsError
from sim2real_faces.training import FusionParams, fit_fusion


def random_proba(n: int, seed: int, classes: int = 3) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(0, 2, (n, classes))
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["mean", "product"])
def test_fused_probabilities_sum_to_one(method):
    a, b = random_proba(50, 1), random_proba(50, 2)
    for w in (0.0, 0.3, 1.0):
        fused = combine_probabilities([a, b], [w, 1 - w], method)
        np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-12)
        assert (fused >= 0).all()


@pytest.mark.parametrize("method", ["mean", "product"])
def test_fusion_of_two_identical_models_equals_either(method):
    a = random_proba(40, 3)
    for w in (0.0, 0.25, 0.5, 1.0):
        np.testing.assert_allclose(combine_probabilities([a, a.copy()], [w, 1 - w], method), a, atol=1e-9)


def test_weight_one_is_the_first_model_and_mean_by_hand():
    a, b = random_proba(10, 4), random_proba(10, 5)
    np.testing.assert_allclose(combine_probabilities([a, b], [1, 0], "mean"), a, atol=1e-12)
    np.testing.assert_allclose(combine_probabilities([a, b], [0.25, 0.75], "mean"), 0.25 * a + 0.75 * b)
    geometric = np.sqrt(a * b) / np.sqrt(a * b).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(combine_probabilities([a, b], [1, 1], "product"), geometric, atol=1e-12)
    with pytest.raises(ValueError, match="unknown fusion method"):
        combine_probabilities([a, b], [1, 1], "vote")
    with pytest.raises(ValueError, match="non-negative"):
        combine_probabilities([a, b], [-1, 2], "mean")


def test_missing_input_uses_the_other_model_and_is_counted():
    a, b = random_proba(4, 6), random_proba(4, 7)
    reasons_a = np.array(["", "no_features", "", "no_face"])
    reasons_b = np.array(["", "", "no_crop", "no_face"])
    proba, reason, inputs = fuse_predictions(
        ["mlp", "cnn"], [a, b], [reasons_a, reasons_b], [0.5, 0.5], "mean"
    )
    assert list(inputs) == ["all", "cnn_only", "mlp_only", "none"]
    assert list(reason) == ["", "", "", "no_face"]
    np.testing.assert_allclose(proba[0], (a[0] + b[0]) / 2)
    np.testing.assert_allclose(proba[1], b[1])
    np.testing.assert_allclose(proba[2], a[2])
    assert np.isnan(proba[3]).all()


def test_fitted_weight_prefers_the_better_model_and_never_loses_to_it():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 300)
    good = 0.7 * np.eye(3)[y] + 0.3 * random_proba(300, 9)
    bad = random_proba(300, 10)
    w, curve = fit_fusion_weight(good, bad, y, "mean", grid=21)
    assert w >= 0.7 and len(curve) == 21
    assert min(loss for _, loss in curve) <= cross_entropy(y, good) + 1e-12


def test_fit_fusion_records_weights_and_inputs():
    rng = np.random.default_rng(11)
    labels = np.array(["angry", "crying", "happy"])[rng.integers(0, 3, 60)]
    a, b = random_proba(60, 12), random_proba(60, 13)
    reasons = [np.array([""] * 59 + ["no_features"]), np.array([""] * 60)]
    params = FusionParams(models=["mlp", "mobilenetv2"], method="mean", weight=None, grid=11)
    info = fit_fusion(["mlp", "mobilenetv2"], [a, b], reasons, labels, params)
    assert info["n_val"] == 60 and info["n_val_both"] == 59 and info["fitted"]
    assert abs(sum(info["weights"]) - 1) < 1e-12 and len(info["curve"]) == 11
    fixed = fit_fusion(
        ["mlp", "mobilenetv2"], [a, b], reasons, labels, FusionParams(["mlp", "mobilenetv2"], "mean", 0.3, 11)
    )
    assert fixed["weights"] == [0.3, 0.7] and not fixed["fitted"] and fixed["curve"] == []


def test_fusion_params_are_checked():
    with pytest.raises(ParamsError, match="two different models"):
        FusionParams(models=["mlp", "mlp"], method="mean", weight=None, grid=11)
    with pytest.raises(ParamsError, match="fusion itself"):
        FusionParams(models=["mlp", "fusion"], method="mean", weight=None, grid=11)
    with pytest.raises(ParamsError, match=r"train\.fusion\.weight"):
        FusionParams(models=["mlp", "vgg16"], method="mean", weight=1.5, grid=11)
