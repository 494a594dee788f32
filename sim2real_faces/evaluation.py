"""Evaluation numbers from predictions: no TensorFlow here, so they can be checked by hand.

A row without a prediction (no face found, unreadable image, missing features or crop) counts as
an error in the headline ``accuracy`` and ``macro_f1``; ``accuracy_detected`` beside it covers the
rows with a prediction only, and ``loss`` (cross-entropy) can only be computed on those. Nothing is
dropped silently: ``n``, ``n_detected`` and ``missing`` (count per reason) are always reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score, recall_score

from sim2real_faces import CLASSES
from sim2real_faces.params import ConfidenceLevel, Count, NonNegativeInt
from sim2real_faces.seeds import group_seed

EPSILON = 1e-7  # Keras clips probabilities to [eps, 1 - eps] in its cross-entropy


@dataclass(frozen=True)
class EvaluateParams:
    """Params section ``evaluate``.

    models / domains: the evaluation matrix (dvc.yaml's ``matrix`` and the report read them);
    bootstrap: resamples for the accuracy CI; ci_level: its coverage; batch_size: prediction batch.
    """

    models: list[str]
    domains: list[str]
    bootstrap: NonNegativeInt
    ci_level: ConfidenceLevel
    batch_size: Count


def cross_entropy(y_index: np.ndarray, proba: np.ndarray) -> float:
    """Mean categorical cross-entropy of probabilities ``proba`` (N, C) for true indices ``y_index``."""
    if len(y_index) == 0:
        return float("nan")
    p = np.clip(proba[np.arange(len(y_index)), y_index], EPSILON, 1 - EPSILON)
    return float(-np.mean(np.log(p)))


def bootstrap_ci(
    correct: np.ndarray, n_resamples: int, level: float, seed: int
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean of 0/1 ``correct`` (None when empty or ``n_resamples`` is 0)."""
    correct = np.asarray(correct, dtype=float)
    if len(correct) == 0 or n_resamples <= 0:
        return None
    if len(correct) == 1 or np.all(correct == correct[0]):
        value = float(correct[0])  # every resample has the same mean
        return value, value
    result = stats.bootstrap(
        (correct,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def evaluate_predictions(
    y_true: Sequence[str],
    proba: np.ndarray,
    reason: Sequence[str],
    *,
    n_resamples: int,
    level: float,
    seed: int,
    groups: Sequence[str] | None = None,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """All metrics of one model on one domain.

    ``proba`` (N, C) holds class probabilities, any values (e.g. NaN) where ``reason`` is not ``""``;
    ``reason`` says why a row has no prediction. ``groups`` (e.g. the real set's ``dataset``
    column) adds the same metrics per group under ``per_group``.
    """
    y_true = np.asarray([str(y) for y in y_true], dtype=object)
    reason = np.asarray([str(r) for r in reason], dtype=object)
    proba = np.asarray(proba, dtype=float)
    classes = list(classes)
    if proba.shape != (len(y_true), len(classes)) or len(reason) != len(y_true):
        raise ValueError(
            f"shapes disagree: y_true {len(y_true)}, proba {proba.shape}, reason {len(reason)}, "
            f"classes {classes}."
        )
    unknown = sorted(set(y_true) - set(classes))
    if unknown:
        raise ValueError(f"unknown true class(es) {unknown}; expected {classes}.")
    metrics = _metrics(y_true, proba, reason, classes, n_resamples, level, seed)
    if groups is not None:
        groups = np.asarray([str(g) for g in groups], dtype=object)
        metrics["per_group"] = {
            name: _metrics(
                y_true[groups == name],
                proba[groups == name],
                reason[groups == name],
                classes,
                n_resamples,
                level,
                group_seed(seed, index),
                full=False,
            )
            for index, name in enumerate(sorted(set(groups)))
        }
    return metrics


def predicted_labels(proba: np.ndarray, reason: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Argmax class per row, or the reason (e.g. ``no_face``) where there is no prediction."""
    detected = reason == ""
    labels = np.asarray(reason, dtype=object).copy()
    if detected.any():
        labels[detected] = np.asarray(classes, dtype=object)[np.argmax(proba[detected], axis=1)]
    return labels


def _metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    reason: np.ndarray,
    classes: list[str],
    n_resamples: int,
    level: float,
    seed: int,
    full: bool = True,
) -> dict[str, Any]:
    detected = reason == ""
    predicted = predicted_labels(proba, reason, classes)
    correct = (predicted == y_true).astype(float)
    index = {c: i for i, c in enumerate(classes)}
    y_index = np.array([index[y] for y in y_true], dtype=int)
    n, n_detected = len(y_true), int(detected.sum())
    ci = bootstrap_ci(correct, n_resamples, level, seed)
    out: dict[str, Any] = {
        "n": n,
        "n_detected": n_detected,
        "missing": {str(r): int((reason == r).sum()) for r in sorted(set(reason[~detected]))},
        "accuracy": float(correct.mean()) if n else None,
        "accuracy_ci": list(ci) if ci else None,
        "accuracy_detected": float(correct[detected].mean()) if n_detected else None,
        "loss": cross_entropy(y_index[detected], proba[detected]) if n_detected else None,
        "macro_f1": float(f1_score(y_true, predicted, labels=classes, average="macro", zero_division=0))
        if n
        else None,
    }
    if full:
        extra = sorted(set(predicted) - set(classes))
        labels = classes + extra
        recall = recall_score(y_true, predicted, labels=classes, average=None, zero_division=0) if n else []
        out["recall"] = {c: float(r) for c, r in zip(classes, recall, strict=True)} if n else {}
        out["support"] = {c: int((y_true == c).sum()) for c in classes}
        out["confusion"] = {
            "true": classes,
            "predicted": labels,
            "matrix": confusion_matrix(y_true, predicted, labels=labels).tolist()[: len(classes)]
            if n
            else [],
        }
        out["ci_level"] = level
        out["bootstrap_resamples"] = n_resamples
    return out


# ---------------------------------------------------------------------------------------------- fusion


def combine_probabilities(probas: Sequence[np.ndarray], weights: Sequence[float], method: str) -> np.ndarray:
    """Weighted combination of class probabilities (each (N, C), rows summing to 1); rows sum to 1.

    ``mean``: the weighted mean of the probabilities; ``product``: the normalised weighted
    geometric mean (log-linear pooling). Weights are normalised to sum to 1.
    """
    if len(probas) != len(weights) or not probas:
        raise ValueError(f"{len(probas)} probability arrays but {len(weights)} weights.")
    w = np.asarray(weights, dtype=float)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"fusion weights {list(w)} must be non-negative with a positive sum.")
    w = w / w.sum()
    stack = np.stack([np.asarray(p, dtype=float) for p in probas])
    if method == "mean":
        out = np.tensordot(w, stack, axes=1)
    elif method == "product":
        logs = np.tensordot(w, np.log(np.clip(stack, EPSILON, 1.0)), axes=1)
        out = np.exp(logs - logs.max(axis=1, keepdims=True))
    else:
        raise ValueError(f"unknown fusion method '{method}'; choose mean or product.")
    return out / out.sum(axis=1, keepdims=True)


def fuse_predictions(
    names: Sequence[str],
    probas: Sequence[np.ndarray],
    reasons: Sequence[np.ndarray],
    weights: Sequence[float],
    method: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse the predictions of several models for the same rows.

    A row where every model has a prediction gets :func:`combine_probabilities`; where only some
    have one, the combination of those (weights renormalised: with two models, the other model's
    probabilities alone); where none has one, no prediction, with the first model's reason.
    Returns (probabilities (N, C), reason (N,), inputs (N,): ``all``, ``<model>_only`` (two models)
    or ``+``-joined names of the models used, or ``none``).
    """
    n = len(reasons[0])
    available = np.stack([np.asarray(r) == "" for r in reasons])  # (models, N)
    proba = np.full((n, probas[0].shape[1]), np.nan)
    reason = np.asarray(reasons[0], dtype=object).copy()
    inputs = np.full(n, "none", dtype=object)
    for pattern in sorted({tuple(col) for col in available.T}, reverse=True):
        rows = np.flatnonzero((np.array(pattern) == available.T).all(axis=1))
        used = [i for i, flag in enumerate(pattern) if flag]
        if not used:
            continue
        proba[rows] = combine_probabilities(
            [probas[i][rows] for i in used], [weights[i] for i in used], method
        )
        reason[rows] = ""
        if len(used) == len(names):
            inputs[rows] = "all"
        else:
            inputs[rows] = "+".join(names[i] for i in used) + "_only"
    return proba, reason.astype(str), inputs.astype(str)


def fit_fusion_weight(
    proba_a: np.ndarray, proba_b: np.ndarray, y_index: np.ndarray, method: str, grid: int
) -> tuple[float, list[tuple[float, float]]]:
    """The weight ``w`` of model a (``1 - w`` for b) with the lowest cross-entropy on the given rows.

    Tries ``grid`` evenly spaced weights in [0, 1] (the smallest wins ties); returns (w, [(w, loss)]).
    """
    if grid < 2:
        raise ValueError(f"the fusion weight grid needs at least 2 points, got {grid}.")
    curve = []
    for w in np.linspace(0.0, 1.0, grid):
        fused = combine_probabilities([proba_a, proba_b], [w, 1 - w], method)
        curve.append((float(w), cross_entropy(y_index, fused)))
    best = min(curve, key=lambda item: item[1])
    return best[0], curve
