"""Keras models of the study, done right: the AU MLP and the two ImageNet transfer-learning CNNs.

* :func:`build_mlp`: the study's 64-32-3 MLP with ReLU, a softmax output and a
  :class:`keras.layers.Normalization` layer adapted on the training part only, so the scaler is
  saved inside the model (the study used sigmoid + binary cross-entropy and no scaling).
* :func:`build_cnn`: MobileNetV2 or VGG16 (``include_top=False``) behind each model's own
  ``preprocess_input`` (the study fed VGG16 [-1, 1] inputs), with the study's head
  (global average pooling, dropout, dense softmax). Inputs are RGB crops in 0..255.
* :func:`set_phase` / :func:`split_base`: phase 1 (frozen base) and phase 2 (the last N base layers
  trainable); ``split_base`` cuts the base into a frozen trunk and a trainable top so the trunk's
  outputs can be computed once and reused for every phase-2 epoch.
* :func:`save_model` / :class:`Predictor`: byte-stable ``.keras`` files plus a JSON description,
  and prediction on feature tables (MLP) or face crops (CNNs).

Every classifier ends in a softmax and is trained with :func:`make_loss`, a cross-entropy on
probabilities (``from_logits=False``; the study's ``from_logits=True`` on a softmax is rejected by
:func:`check_loss_pairing`).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np

from sim2real_faces import CLASSES
from sim2real_faces.errors import ProjectError

MODEL_FILE = "model.keras"
INFO_FILE = "model.json"

# keras.applications constructors, preprocessing modules and the weight files Keras caches under
# $KERAS_HOME/models (keras 3.15 applications/mobilenet_v2.py and vgg16.py).
_APPLICATIONS: dict[str, dict[str, Any]] = {
    "mobilenetv2": {"constructor": "MobileNetV2", "module": "mobilenet_v2"},
    "vgg16": {"constructor": "VGG16", "module": "vgg16"},
}
_MOBILENET_SIZES = (96, 128, 160, 192, 224)


class WeightsUnavailableError(ProjectError, RuntimeError):
    """Pretrained weights were asked for but cannot be found or downloaded."""


class LossPairingError(ValueError):
    """A softmax output is paired with a loss that expects logits (the study's bug)."""


class CropReadError(ProjectError, OSError):
    """A face crop listed in a table cannot be read."""


class UnfreezeError(ProjectError, ValueError):
    """``phase2.unfreeze_last`` does not fit the base network's layer count (known only once it is built)."""


class ModelFileError(ProjectError, FileNotFoundError):
    """A trained model folder is missing, incomplete or holds a damaged file (the message names it)."""


def _application(name: str) -> dict[str, Any]:
    if name not in _APPLICATIONS:
        raise ValueError(f"unknown CNN '{name}'; choose one of {list(_APPLICATIONS)}.")
    return _APPLICATIONS[name]


def preprocess_function(name: str):
    """The ``preprocess_input`` of keras.applications for CNN ``name``."""
    return getattr(keras.applications, _application(name)["module"]).preprocess_input


def imagenet_weights_file(name: str, input_size: int) -> str:
    """The file name Keras looks for in ``$KERAS_HOME/models`` for ``weights="imagenet"``."""
    _application(name)
    if name == "mobilenetv2":
        rows = input_size if input_size in _MOBILENET_SIZES else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"
    return "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_cache_dir() -> Path:
    """The folder Keras caches downloads in (``$KERAS_HOME``, read when keras is imported)."""
    from keras.src.backend import config as keras_config  # no public accessor in keras 3.15

    return Path(keras_config.keras_home()).expanduser()


@keras.saving.register_keras_serializable(package="sim2real_faces")
class ImagenetPreprocess(keras.layers.Layer):
    """``keras.applications.<model>.preprocess_input`` as a layer, so saved models carry it."""

    def __init__(self, model_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self._preprocess = preprocess_function(model_name)

    def call(self, inputs):
        return self._preprocess(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "model_name": self.model_name}


def make_loss(label_smoothing: float = 0.0) -> keras.losses.Loss:
    """Categorical cross-entropy on probabilities: the loss for every softmax model here.

    ``label_smoothing`` (0 = none) moves that share of each one-hot target evenly onto all classes.
    """
    return keras.losses.CategoricalCrossentropy(
        from_logits=False, label_smoothing=label_smoothing, name="categorical_crossentropy"
    )


def check_loss_pairing(model: keras.Model, loss: keras.losses.Loss) -> None:
    """Raise :class:`LossPairingError` unless ``model`` ends in softmax and ``loss`` takes probabilities."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if activation is not keras.activations.softmax:
        raise LossPairingError(f"{model.name}: the output layer '{last.name}' must use a softmax activation.")
    if getattr(loss, "from_logits", False) or loss.get_config().get("from_logits", False):
        raise LossPairingError(
            f"{model.name}: a softmax output trained with from_logits=True applies softmax twice "
            "(the study's bug); use make_loss()."
        )


def build_mlp(
    train_features: np.ndarray,
    hidden_units: Sequence[int] = (64, 32),
    activation: str = "relu",
    n_classes: int = len(CLASSES),
    l2: float = 0.0,
) -> keras.Model:
    """The study's MLP (Dense 64 -> 32 -> n_classes) with standardisation built in.

    ``l2`` > 0 adds ``l2 * sum(w**2)`` of every Dense kernel to the loss (weight decay): a smoother
    decision function that leans less on the renders' exact action-unit intensities.

    The first layer is a :class:`keras.layers.Normalization` adapted on ``train_features`` (the
    training part only): the same mean and population standard deviation as sklearn's
    ``StandardScaler``, saved with the model.
    """
    train_features = np.asarray(train_features, dtype="float32")
    if train_features.ndim != 2 or len(train_features) == 0:
        raise ValueError(f"train_features must be a non-empty 2-D array, got shape {train_features.shape}.")
    if not np.isfinite(train_features).all():
        raise ValueError(
            "train_features contains NaN or infinite values; the filter stage should drop those rows."
        )
    normalize = keras.layers.Normalization(axis=-1, name="standardize")
    normalize.adapt(train_features)
    inputs = keras.Input((train_features.shape[1],), name="features")
    x = normalize(inputs)
    decay = keras.regularizers.L2(l2) if l2 > 0 else None
    for index, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(units, activation=activation, name=f"hidden{index}", kernel_regularizer=decay)(
            x
        )
    outputs = keras.layers.Dense(
        n_classes, activation="softmax", name="probabilities", kernel_regularizer=decay
    )(x)
    return keras.Model(inputs, outputs, name="mlp")


def build_base(name: str, input_size: int, weights: str | None) -> keras.Model:
    """The convolutional base of ``name`` without its top, with ``weights`` loaded.

    ``weights``: ``"imagenet"`` (Keras's cache or download), a local ``.h5`` file, or ``None``
    (random initialisation). Missing weights raise :class:`WeightsUnavailableError`; there is no
    silent fallback to random weights.
    """
    spec = _application(name)
    constructor = getattr(keras.applications, spec["constructor"])
    if weights is None:
        keras_weights: str | None = None
    elif weights == "imagenet":
        keras_weights = "imagenet"
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(
                f"weights file {path} for {name} does not exist: set train.{name}.weights to an existing .h5 "
                "file, to imagenet, or to null for random initialisation."
            )
        keras_weights = str(path)
    try:
        return constructor(input_shape=(input_size, input_size, 3), include_top=False, weights=keras_weights)
    except Exception as error:
        if keras_weights != "imagenet":
            raise
        cache = keras_cache_dir()
        file = imagenet_weights_file(name, input_size)
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} are not available: Keras needs {cache / 'models' / file} "
            f"(KERAS_HOME={os.environ.get('KERAS_HOME', '<unset: ~/.keras>')}) and could not download it "
            f"({error}). Fix: put {file} into $KERAS_HOME/models (e.g. point KERAS_HOME at a writable folder "
            "whose models/ links to a folder holding it), or set the param train."
            f"{name}.weights to a local .h5 file, or to null to train from random initialisation "
            "(recorded in metrics)."
        ) from error


@dataclass
class CnnModel:
    """A CNN classifier and handles on its parts (layers are shared with ``model``)."""

    name: str
    input_size: int
    model: keras.Model  # RGB 0..255 (S, S, 3) -> class probabilities
    preprocess: keras.layers.Layer
    base: keras.Model
    pool: keras.layers.Layer
    dropout: keras.layers.Layer
    classifier: keras.layers.Layer


def build_cnn(
    name: str, input_size: int, weights: str | None, dropout: float = 0.2, n_classes: int = len(CLASSES)
) -> CnnModel:
    """``name``'s base behind its own preprocessing, with the study's head; base frozen (phase 1).

    The base is called with ``training=False`` so its BatchNorm layers stay in inference mode in
    both phases (Keras's transfer-learning recipe).
    """
    if input_size < 32:
        raise ValueError(f"{name}: input_size must be at least 32 pixels, got {input_size}.")
    inputs = keras.Input((input_size, input_size, 3), name="crop")
    preprocess = ImagenetPreprocess(name, name="preprocess")
    base = build_base(name, input_size, weights)
    base.trainable = False
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    drop = keras.layers.Dropout(dropout, name="dropout")
    classifier = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")
    outputs = classifier(drop(pool(base(preprocess(inputs), training=False))))
    model = keras.Model(inputs, outputs, name=name)
    return CnnModel(name, input_size, model, preprocess, base, pool, drop, classifier)


def set_phase(base: keras.Model, unfreeze_last: int) -> int:
    """Freeze ``base`` except its last ``unfreeze_last`` layers; return the trainable layer count.

    ``unfreeze_last=0`` is phase 1 (all frozen). The count includes the input layer, as the study's
    "154 layers of MobileNetV2" does, so ``unfreeze_last=54`` is its ``fine_tune_at = 100``.
    """
    n_layers = len(base.layers)
    if not 0 <= unfreeze_last < n_layers:
        raise UnfreezeError(
            f"params train.<cnn>.phase2.unfreeze_last={unfreeze_last} for {base.name}: choose "
            f"0..{n_layers - 1} (the base has {n_layers} layers including its input)."
        )
    base.trainable = unfreeze_last > 0
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= n_layers - unfreeze_last
    return sum(layer.trainable for layer in base.layers) if unfreeze_last else 0


def split_base(base: keras.Model, unfreeze_last: int) -> tuple[keras.Model | None, keras.Model]:
    """Cut ``base`` before its last ``unfreeze_last`` layers: (frozen trunk, trainable top).

    ``trunk(x)`` returns the tensors the top consumes (several where a residual connection crosses
    the cut); ``top(trunk(x)) == base(x)`` exactly, and the top shares its layers (weights) with
    ``base``. ``trunk`` is ``None`` when the cut is right after the input. Uses Keras's functional
    graph (``_inbound_nodes``), which keras 3 keeps on every layer.
    """
    n_layers = len(base.layers)
    if not 0 < unfreeze_last < n_layers:
        raise UnfreezeError(
            f"params train.<cnn>.phase2.unfreeze_last={unfreeze_last}: choose 1..{n_layers - 1} for "
            f"{base.name} (the base has {n_layers} layers including its input)."
        )
    top_layers = base.layers[n_layers - unfreeze_last :]
    top_ids = {id(layer) for layer in top_layers}
    cut: list[Any] = []
    for layer in top_layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                if id(tensor._keras_history.operation) not in top_ids and not any(tensor is t for t in cut):
                    cut.append(tensor)
    top = keras.Model(cut, base.output, name=f"{base.name}_top")
    inner = [layer for layer in top.layers if not isinstance(layer, keras.layers.InputLayer)]
    if {id(layer) for layer in inner} != top_ids:
        raise RuntimeError(
            f"cutting {base.name} before its last {unfreeze_last} layers did not isolate them."
        )
    if len(cut) == 1 and cut[0] is base.input:
        return None, top
    return keras.Model(base.input, cut, name=f"{base.name}_trunk"), top


def resize_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 face crop resized to ``size`` x ``size`` (area filter when shrinking)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}.")
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    shrink = rgb.shape[0] > size or rgb.shape[1] > size
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def load_crops(paths: Sequence[str | os.PathLike], size: int, root: Path = Path("."), progress: bool = True):
    """Read face-crop images (paths relative to ``root``) as one uint8 array (N, size, size, 3)."""
    from tqdm import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for index, path in enumerate(tqdm(paths, desc="reading crops", unit="img", disable=not progress)):
        full = root / Path(path)
        bgr = cv2.imread(str(full), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CropReadError(
                f"cannot read face crop {full}: the file is missing or not an image; rerun the stage "
                "that wrote it (`dvc repro extract` for synthetic crops, `dvc repro prepare_real` for real "
                "ones)."
            )
        out[index] = resize_crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
    return out


def save_model(model: keras.Model, directory: Path, info: dict[str, Any]) -> None:
    """Write ``directory/model.keras`` and ``directory/model.json`` (``info`` + classes).

    Keras stamps ``.keras`` archives with the save time and Python object ids; the archive is
    rewritten with a fixed ``date_saved``, renumbered ``shared_object_id``s and fixed zip
    timestamps so the same weights give the same bytes.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    tmp = directory / (MODEL_FILE + ".tmp.keras")
    model.save(tmp)
    try:
        with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in sorted(src.infolist(), key=lambda i: i.filename):
                data = src.read(item.filename)
                if item.filename == "metadata.json":
                    meta = json.loads(data)
                    meta["date_saved"] = "1980-01-01@00:00:00"
                    data = json.dumps(meta, sort_keys=True).encode()
                elif item.filename == "config.json":
                    data = json.dumps(_renumber_shared_ids(json.loads(data), {})).encode()
                dst.writestr(zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0)), data)
    finally:
        tmp.unlink(missing_ok=True)
    (directory / MODEL_FILE).write_bytes(buffer.getvalue())
    info = {**info, "classes": list(CLASSES)}
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _renumber_shared_ids(node: Any, ids: dict[int, int]) -> Any:
    """Replace Keras's ``shared_object_id`` values (Python ``id()``s) by 0, 1, 2... in order of appearance."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "shared_object_id" and isinstance(value, int):
                out[key] = ids.setdefault(value, len(ids))
            else:
                out[key] = _renumber_shared_ids(value, ids)
        return out
    if isinstance(node, list):
        return [_renumber_shared_ids(value, ids) for value in node]
    return node


def load_model(directory: Path) -> tuple[keras.Model, dict[str, Any]]:
    """Load what :func:`save_model` wrote."""
    directory = Path(directory)
    model_path, info_path = directory / MODEL_FILE, directory / INFO_FILE
    for path in (model_path, info_path):
        if not path.is_file():
            raise ModelFileError(
                f"{path} not found: train the model first (`dvc repro train@{directory.name}`)."
            )
    info = read_model_info(directory)
    rebuild = (
        f"rebuild it with `dvc repro train@{directory.name}` (or restore it: `dvc checkout {directory}`)"
    )
    if not zipfile.is_zipfile(model_path):
        raise ModelFileError(f"{model_path} is damaged (truncated or not a Keras archive); {rebuild}.")
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras reports a damaged archive in many ways (even "file not found")
        raise ModelFileError(
            f"{model_path} cannot be loaded ({type(error).__name__}: {str(error)[:200]}); {rebuild}."
        ) from None
    return model, info


def read_model_info(directory: Path) -> dict[str, Any]:
    """``directory/model.json`` as a dict, with :class:`ModelFileError` naming the file when it is broken."""
    path = Path(directory) / INFO_FILE
    rebuild = f"rebuild it with `dvc repro train@{Path(directory).name}` (or `dvc checkout {directory}`)"
    if not path.is_file():
        raise ModelFileError(
            f"{path} not found: train the model first (`dvc repro train@{Path(directory).name}`)."
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); {rebuild}."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path} cannot be read ({error}); {rebuild}.") from None
    missing = [key for key in ("model", "classes") if not isinstance(info, dict) or key not in info]
    if missing:
        raise ModelFileError(
            f"{path} lacks {missing}: not a model description this project wrote; {rebuild}."
        )
    return info


# Why a row of a table gets no prediction (it counts as an error in the headline accuracy).
REASON_OK = ""


class Predictor:
    """A trained model (any of the three) that predicts class probabilities for table rows or faces."""

    def __init__(self, directory: Path, batch_size: int = 64) -> None:
        self.directory = Path(directory)
        info_path = self.directory / INFO_FILE
        if not info_path.is_file():
            raise ModelFileError(
                f"{info_path} not found: train the model first (`dvc repro train@{self.directory.name}`)."
            )
        self.info = read_model_info(self.directory)
        self.kind: str = self.info["model"]
        self.classes: list[str] = list(self.info["classes"])
        self.batch_size = batch_size
        self.features: list[str] = list(self.info.get("features", []))
        self.input_size: int = int(self.info.get("input_size", 0))
        # Fusion: copies of its input models live in sub-folders; it has no Keras model of its own.
        self.components: list[Predictor] = []
        self.model: keras.Model | None = None
        if self.kind == "fusion":
            self.components = [
                Predictor(self.directory / name, batch_size) for name in self.info["components"]
            ]
        else:
            self.model, self.info = load_model(self.directory)
        # Per row of the last predict_frame: which input models a fusion used ("all", "<model>_only", "none").
        self.last_inputs: np.ndarray | None = None

    def predict_arrays(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities (N, n_classes) for features (MLP) or uint8 crops already at input size (CNN)."""
        if len(inputs) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float64)
        if self.model is None:
            raise TypeError("a fusion predicts face tables (predict_frame), not arrays.")
        proba = self.model.predict(np.asarray(inputs, dtype="float32"), batch_size=self.batch_size, verbose=0)
        return np.asarray(proba, dtype=np.float64)

    def predict_components(self, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A fusion's predictions for N faces given as arrays, one per input model (``components`` order).

        Each array holds that model's inputs for the same N faces: feature rows (N, F) for an MLP,
        uint8 crops at its input size for a CNN. As in :meth:`predict_frame`, an MLP row with a
        non-finite feature has no prediction of the MLP (reason ``no_features``) and the fusion uses
        the other model alone. Returns (probabilities (N, C), reason (N,), inputs used (N,):
        ``all``, ``<model>_only`` or ``none``), also kept in :attr:`last_inputs`.
        """
        if self.kind != "fusion":
            raise TypeError(f"{self.directory} is a {self.kind}, not a fusion: use predict_arrays.")
        from sim2real_faces.evaluation import fuse_predictions

        probas, reasons = [], []
        for component, values in zip(self.components, inputs, strict=True):
            values = np.asarray(values)
            reason = np.full(len(values), REASON_OK, dtype=object)
            if component.kind == "mlp":
                reason[~np.isfinite(values.astype("float64")).all(axis=1)] = "no_features"
            rows = np.flatnonzero(reason == REASON_OK)
            proba = np.full((len(values), len(component.classes)), np.nan)
            proba[rows] = component.predict_arrays(values[rows])
            probas.append(proba)
            reasons.append(reason.astype(str))
        proba, reason, used = fuse_predictions(
            list(self.info["components"]),
            probas,
            reasons,
            list(self.info["weights"]),
            str(self.info["method"]),
        )
        self.last_inputs = used
        return proba, reason, used

    def predict_frame(
        self, frame, root: Path = Path("."), where: str = "table"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict every row of a face table (``filtered.csv`` / ``data/real/features.csv`` layout).

        Returns (probabilities (N, C) with NaN rows where no prediction is possible, reason (N,)
        str: ``""`` predicted, else the row's ``status`` when not ``ok`` (``no_face``, ``unreadable``,
        ``missing``...), ``no_face`` for ``success=0``, ``no_features`` or ``no_crop``).
        Rows without a prediction are kept, never dropped: evaluation counts them as errors.
        """
        if self.kind == "fusion":
            from sim2real_faces.evaluation import fuse_predictions

            outputs = [component.predict_frame(frame, root, where) for component in self.components]
            proba, reason, inputs = fuse_predictions(
                list(self.info["components"]),
                [o[0] for o in outputs],
                [o[1] for o in outputs],
                list(self.info["weights"]),
                str(self.info["method"]),
            )
            self.last_inputs = inputs
            return proba, reason
        n = len(frame)
        status = frame["status"].astype(str).to_numpy() if "status" in frame else np.full(n, "ok")
        success = (
            frame["success"].fillna(0).astype(float).to_numpy() == 1
            if "success" in frame
            else np.ones(n, bool)
        )
        # A status other than "ok" (no_face, unreadable, missing, ...) is itself the reason.
        reason = np.where(status != "ok", status, np.where(success, "", "no_face")).astype(object)
        proba = np.full((n, len(self.classes)), np.nan)
        if self.kind == "mlp":
            missing = [c for c in self.features if c not in frame]
            if missing:
                raise KeyError(f"{where} lacks the model's feature column(s) {missing[:5]}; rerun its stage.")
            values = frame[self.features].to_numpy(dtype="float64")
            finite = np.isfinite(values).all(axis=1)
            reason[(reason == REASON_OK) & ~finite] = "no_features"
            rows = np.flatnonzero(reason == REASON_OK)
            proba[rows] = self.predict_arrays(values[rows])
        else:
            if "crop" not in frame:
                raise KeyError(f"{where} has no 'crop' column; the CNNs need face crops (rerun its stage).")
            crops = frame["crop"].fillna("").astype(str).to_numpy()
            reason[(reason == REASON_OK) & (crops == "")] = "no_crop"
            rows = np.flatnonzero(reason == REASON_OK)
            images = load_crops(list(crops[rows]), self.input_size, root)
            proba[rows] = self.predict_arrays(images)
        return proba, reason.astype(str)
