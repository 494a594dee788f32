"""Splitting and training: the identity-disjoint split, the MLP, the two-phase CNN training, the fusion.

Params sections: ``split`` (:class:`SplitParams`, :mod:`.split`), ``train.mlp`` (:class:`MlpParams`,
:mod:`.mlp`), ``train.mobilenetv2`` / ``train.vgg16`` (:class:`CnnParams`, :mod:`.cnn`, with the
augmentation of :mod:`.augment`), ``train.fusion`` (:class:`FusionParams`, :mod:`.fusion`). What
the MLP and the CNNs share (determinism, one-hot labels, optimizers, callbacks) is in :mod:`.common`.
Every random choice is seeded from the top-level ``seed`` through :mod:`sim2real_faces.seeds`.
TensorFlow is imported inside the training functions, so the split stays light.

The names below are the package's API; each is loaded from its module on first use, so importing
one module (the split stage imports :mod:`.split` alone) loads neither the others nor their code.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module of this package that defines it
_MODULES: dict[str, str] = {
    "AugmentParams": "augment",
    "augment_batch": "augment",
    "augment_copies": "augment",
    "augment_image": "augment",
    "augmentation_sheet": "augment",
    "epoch_order": "augment",
    "online_dataset": "augment",
    "CnnParams": "cnn",
    "FineTuneParams": "cnn",
    "PhaseParams": "cnn",
    "batchnorm_layers": "cnn",
    "class_sample_weights": "cnn",
    "train_cnn": "cnn",
    "live_callback": "common",
    "one_hot": "common",
    "set_determinism": "common",
    "FusionParams": "fusion",
    "fit_fusion": "fusion",
    "MlpParams": "mlp",
    "train_mlp": "mlp",
    "PARTS": "split",
    "Fractions": "split",
    "SplitError": "split",
    "SplitParams": "split",
    "split_summary": "split",
    "split_table": "split",
}

__all__ = [
    "PARTS",
    "AugmentParams",
    "CnnParams",
    "FineTuneParams",
    "Fractions",
    "FusionParams",
    "MlpParams",
    "PhaseParams",
    "SplitError",
    "SplitParams",
    "augment_batch",
    "augment_copies",
    "augment_image",
    "augmentation_sheet",
    "batchnorm_layers",
    "class_sample_weights",
    "epoch_order",
    "fit_fusion",
    "live_callback",
    "one_hot",
    "online_dataset",
    "set_determinism",
    "split_summary",
    "split_table",
    "train_cnn",
    "train_mlp",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
