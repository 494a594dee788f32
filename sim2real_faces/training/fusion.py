"""Fusion of two trained models' class probabilities (params section ``train.fusion``).

:func:`fit_fusion` fits the weight of the first model on the synthetic validation part; the
combination itself is :func:`sim2real_faces.evaluation.combine_probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim2real_faces import CLASSES
from sim2real_faces.params import Range, check_value


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
            check_value(Range(0, 1), self.weight, "train.fusion.weight")
        check_value(Range(2, 10001), self.grid, "train.fusion.grid")


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
