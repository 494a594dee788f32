"""Stage ``train@<model>``: ``python -m stages.train mlp|mobilenetv2|vgg16|fusion``.

Reads ``data/split.csv`` and ``data/synthetic/filtered.csv`` (features for the MLP, the ``crop``
images for the CNNs) and params ``seed``, ``features`` (MLP) and ``train.<model>``. Writes
``models/<model>/`` (model.keras with preprocessing/standardisation inside, model.json),
``metrics/train/<model>.json`` (seconds per step, epochs, best validation loss/accuracy, weights
used, n) and the training curves of every phase in ``dvclive/<model>/`` (dvclive, ``dvcyaml=False``:
dvc.yaml declares the plots); for the CNNs with augmentation also a sheet of augmented synthetic
training crops, ``dvclive/<model>/plots/augmented_crops.png``. ``fusion`` reads the trained
``models/<a>`` and ``models/<b>`` of ``train.fusion.models``, fits its weight on the ``val`` part and
writes ``models/fusion/`` (its description plus copies of both models). Only the ``train`` and
``val`` parts are read; test and real never.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces.io import file_sha256, write_json
from sim2real_faces.model_names import PIPELINE_MODELS
from sim2real_faces.models import imagenet_weights_file, keras_cache_dir
from sim2real_faces.params import load_params, load_section
from sim2real_faces.parts import TrainInputError, load_parts
from sim2real_faces.paths import FILTERED, METRICS, MODELS, SPLIT
from sim2real_faces.seeds import derive_seed, train_key
from sim2real_faces.training.augment import augmentation_sheet
from sim2real_faces.training.cnn import CnnParams
from sim2real_faces.training.fusion import FusionParams
from sim2real_faces.training.mlp import MlpParams
from sim2real_faces.training.split import SplitError

DVCLIVE = Path("dvclive")
AUGMENT_SHEET = "augmented_crops.png"  # in dvclive/<cnn>/plots/: synthetic training crops after augmentation
TRAIN_METRICS = METRICS / "train"


def weights_record(model: str, weights: str | None, input_size: int) -> dict[str, Any]:
    """Which pretrained weights a CNN started from: param value, file and its sha256."""
    if weights is None:
        return {"weights": None, "weights_file": None, "weights_sha256": None}
    path = (
        keras_cache_dir() / "models" / imagenet_weights_file(model, input_size)
        if weights == "imagenet"
        else Path(weights)
    )
    resolved = path.resolve() if path.exists() else path
    return {
        "weights": weights,
        "weights_file": str(resolved),
        "weights_sha256": file_sha256(path) if path.is_file() else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=PIPELINE_MODELS)
    args = parser.parse_args(argv)
    model_name: str = args.model

    from dvclive import Live

    from sim2real_faces.models import load_crops, save_model
    from sim2real_faces.training.cnn import train_cnn
    from sim2real_faces.training.mlp import train_mlp

    params = load_params()
    seed = derive_seed(int(params["seed"]), train_key(model_name))
    frame = load_parts()
    train = frame[frame["part"] == "train"].reset_index(drop=True)
    val = frame[frame["part"] == "val"].reset_index(drop=True)
    if train.empty or val.empty:
        raise SplitError(
            f"{SPLIT} has {len(train)} train and {len(val)} val rows; both parts must be non-empty."
        )

    live_dir = DVCLIVE / model_name
    if model_name == "fusion":
        with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            metrics = train_fusion(val, load_section(FusionParams, "train.fusion", params), live)
        _write_metrics(model_name, metrics)
        return
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        if model_name == "mlp":
            from sim2real_faces.faces import FeatureParams, require_columns

            mlp_params = load_section(MlpParams, "train.mlp", params)
            feature_params = load_section(FeatureParams, "features", params)
            groups = feature_params.groups
            columns = require_columns(frame.columns, groups, str(FILTERED), feature_params.exclude)
            model, metrics = train_mlp(
                train[columns].to_numpy(float),
                train["class"].tolist(),
                val[columns].to_numpy(float),
                val["class"].tolist(),
                mlp_params,
                seed,
                live=live,
            )
            info: dict[str, Any] = {"model": "mlp", "features": columns}
            metrics["features"] = groups
        else:
            cnn_params = load_section(CnnParams, f"train.{model_name}", params)
            if "crop" not in frame:
                raise TrainInputError(f"{FILTERED} has no 'crop' column: rerun `dvc repro extract filter`.")
            for part in (train, val):
                missing = part["crop"].isna() | (part["crop"].astype(str) == "")
                if missing.any():
                    raise TrainInputError(
                        f"{int(missing.sum())} row(s) of {FILTERED} have no face crop (e.g. "
                        f"{part.loc[missing, 'file'].iloc[0]}): rerun `dvc repro extract filter`."
                    )
            size = cnn_params.input_size
            train_crops = load_crops(train["crop"].tolist(), size)
            if cnn_params.augment.active:
                # What the CNN sees: synthetic training crops after augmentation (never real photos).
                sheet = augmentation_sheet(
                    train_crops[:: max(1, len(train_crops) // 6)], cnn_params.augment, seed
                )
                live_plots = live_dir / "plots"
                live_plots.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(live_plots / AUGMENT_SHEET), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
            model, metrics = train_cnn(
                model_name,
                train_crops,
                train["class"].tolist(),
                load_crops(val["crop"].tolist(), size),
                val["class"].tolist(),
                cnn_params,
                seed,
                live=live,
            )
            info = {"model": model_name, "input_size": size, "weights": cnn_params.weights}
            metrics.update(weights_record(model_name, cnn_params.weights, size))
    save_model(model, MODELS / model_name, info)
    _write_metrics(model_name, metrics)


def _write_metrics(model_name: str, metrics: dict[str, Any]) -> None:
    path = TRAIN_METRICS / f"{model_name}.json"
    write_json(path, metrics)
    best = metrics["best"]
    print(f"{model_name}: best val loss {best['val_loss']:.4f}, accuracy {best['val_accuracy']:.3f}")


def train_fusion(val: pd.DataFrame, params: FusionParams, live: Any) -> dict[str, Any]:
    """Fit the fusion on the validation rows; write ``models/fusion/`` with copies of its input models.

    The copies make ``models/fusion`` self-contained (the evaluate stage depends on it alone).
    Returns the train metrics (weights, validation loss/accuracy of the fusion and of each input).
    """
    from sim2real_faces.models import INFO_FILE, Predictor
    from sim2real_faces.training.fusion import fit_fusion

    outputs = []
    for name in params.models:
        if not (MODELS / name / INFO_FILE).is_file():
            raise TrainInputError(
                f"the fusion needs the trained model {MODELS / name}: run `dvc repro train@{name}` first "
                "(params train.fusion.models)."
            )
        outputs.append(Predictor(MODELS / name).predict_frame(val, where=f"{FILTERED} (val part)"))
    info = fit_fusion(
        params.models, [o[0] for o in outputs], [o[1] for o in outputs], val["class"].tolist(), params
    )
    for point in info["curve"]:
        live.log_metric("fusion/val_loss", point["val_loss"])
        live.next_step()
    target = MODELS / "fusion"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in params.models:
        shutil.copytree(MODELS / name, target / name)
    description = {k: info[k] for k in ("model", "components", "method", "weights")}
    description["classes"] = list(CLASSES)
    write_json(target / INFO_FILE, description, sort_keys=True)
    return {k: v for k, v in info.items() if k != "curve"}  # the curve is in dvclive/fusion/


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
