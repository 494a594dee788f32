"""Evaluation numbers on hand-made predictions (no TensorFlow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim2real_faces.evaluation import bootstrap_ci, cross_entropy, evaluate_predictions, predicted_labels

CLASSES = ("angry", "crying", "happy")

# 6 real photos: 4 predicted right, 1 wrong, 1 without a face.
Y = ["angry", "angry", "crying", "crying", "happy", "happy"]
P = np.array(
    [
        [0.7, 0.2, 0.1],  # angry, right
        [0.2, 0.5, 0.3],  # angry -> crying, wrong
        [0.1, 0.8, 0.1],  # crying, right
        [np.nan, np.nan, np.nan],  # no face
        [0.1, 0.1, 0.8],  # happy, right
        [0.3, 0.1, 0.6],  # happy, right
    ]
)
R = ["", "", "", "no_face", "", ""]


def evaluate(**kwargs):
    args = {"n_resamples": 500, "level": 0.95, "seed": 7}
    args.update(kwargs)
    return evaluate_predictions(Y, P, R, **args)


def test_headline_counts_missing_faces_as_errors():
    m = evaluate()
    assert m["n"] == 6 and m["n_detected"] == 5
    assert m["missing"] == {"no_face": 1}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["accuracy_detected"] == pytest.approx(4 / 5)


def test_loss_is_cross_entropy_on_detected_faces():
    expected = -np.mean(np.log([0.7, 0.2, 0.8, 0.8, 0.6]))
    assert evaluate()["loss"] == pytest.approx(expected)
    assert cross_entropy(np.array([0, 1]), np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])) == pytest.approx(
        -np.log(1 - 1e-7) / 2 - np.log(1e-7) / 2
    )


def test_recall_f1_and_confusion_by_hand():
    m = evaluate()
    assert m["recall"] == pytest.approx({"angry": 0.5, "crying": 0.5, "happy": 1.0})
    # precision: angry 1/1, crying 1/2, happy 2/2; F1 = 2PR/(P+R)
    f1 = [2 * 1 * 0.5 / 1.5, 2 * 0.5 * 0.5 / 1.0, 1.0]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["confusion"]["predicted"] == ["angry", "crying", "happy", "no_face"]
    assert m["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 2, 0]]
    assert m["support"] == {"angry": 2, "crying": 2, "happy": 2}


def test_predicted_labels_name_the_reason():
    labels = predicted_labels(P, np.array(R, dtype=object), CLASSES)
    assert list(labels) == ["angry", "crying", "crying", "no_face", "happy", "happy"]


def test_bootstrap_ci_seeded_and_close_to_the_normal_interval():
    rng = np.random.default_rng(0)
    correct = (rng.random(400) < 0.75).astype(float)
    low, high = bootstrap_ci(correct, 2000, 0.95, seed=1)
    assert (low, high) == bootstrap_ci(correct, 2000, 0.95, seed=1)
    assert (low, high) != bootstrap_ci(correct, 2000, 0.95, seed=2)
    p = correct.mean()
    half = 1.96 * math.sqrt(p * (1 - p) / len(correct))
    assert low < p < high
    assert low == pytest.approx(p - half, abs=0.012) and high == pytest.approx(p + half, abs=0.012)
    narrow = bootstrap_ci(correct, 2000, 0.5, seed=1)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_edge_cases():
    assert bootstrap_ci(np.ones(10), 100, 0.95, 0) == (1.0, 1.0)
    assert bootstrap_ci(np.array([]), 100, 0.95, 0) is None
    assert bootstrap_ci(np.array([0.0, 1.0]), 0, 0.95, 0) is None


def test_ci_in_metrics_contains_accuracy_and_is_reproducible():
    a, b = evaluate(), evaluate()
    assert a["accuracy_ci"] == b["accuracy_ci"]
    low, high = a["accuracy_ci"]
    assert 0 <= low <= a["accuracy"] <= high <= 1


def test_per_group_metrics():
    m = evaluate(groups=["jaffe", "jaffe", "ck", "ck", "ck", "jaffe"])
    assert set(m["per_group"]) == {"ck", "jaffe"}
    ck, jaffe = m["per_group"]["ck"], m["per_group"]["jaffe"]
    assert (ck["n"], ck["n_detected"], ck["accuracy"]) == (3, 2, pytest.approx(2 / 3))
    assert (jaffe["n"], jaffe["n_detected"], jaffe["accuracy"]) == (3, 3, pytest.approx(2 / 3))
    assert ck["accuracy_detected"] == pytest.approx(1.0)


def test_all_undetected_has_no_loss():
    m = evaluate_predictions(
        ["angry", "happy"],
        np.full((2, 3), np.nan),
        ["no_face", "unreadable"],
        n_resamples=10,
        level=0.95,
        seed=0,
    )
    assert m["accuracy"] == 0 and m["loss"] is None and m["accuracy_detected"] is None
    assert m["missing"] == {"no_face": 1, "unreadable": 1}


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown true class"):
        evaluate_predictions(["sad"], np.ones((1, 3)) / 3, [""], n_resamples=10, level=0.95, seed=0)
    with pytest.raises(ValueError, match="shapes disagree"):
        evaluate_predictions(["angry"], np.ones((2, 3)) / 3, [""], n_resamples=10, level=0.95, seed=0)
