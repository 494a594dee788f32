"""The models' names, without TensorFlow: for command lines, the pipeline matrix and the model code.

``MODEL_NAMES``: the models with a network of their own (the MLP on face features and the CNNs on
face crops); ``PIPELINE_MODELS``: those plus the fusion, which combines two of them (the models the
train and evaluate stages and predict accept).
"""

from __future__ import annotations

CNN_NAMES: tuple[str, ...] = ("mobilenetv2", "vgg16")
MODEL_NAMES: tuple[str, ...] = ("mlp", *CNN_NAMES)
FUSION = "fusion"
PIPELINE_MODELS: tuple[str, ...] = (*MODEL_NAMES, FUSION)
