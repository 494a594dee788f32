"""Stage ``train@<model>``: ``python -m stages.train mlp|mobilenetv2|vgg16``.

Reads ``data/split.csv`` and ``data/synthetic/filtered.csv`` (features for the MLP, the ``crop``
images for the CNNs) and params ``seed``, ``features`` (MLP) and ``train.<model>``. Writes
``models/<model>/`` (model.keras with preprocessing/standardisation inside, model.json),
``metrics/train/<model>.json`` (seconds per step, epochs, best validation loss/accuracy, weights
used, n) and the training curves of every phase in ``dvclive/<model>/`` (dvclive, ``dvcyaml=False``:
dvc.yaml declares the plots). Only the ``train`` and ``val`` parts are read; test and real never.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from sim2real_faces.models import MODEL_NAMES, file_sha256, imagenet_weights_file, keras_cache_dir
from sim2real_faces.params import load_params, load_section
from sim2real_faces.paths import FILTERED, METRICS, MODELS, SPLIT
from sim2real_faces.training import CnnParams, MlpParams, SplitError, sub_seed

DVCLIVE = Path("dvclive")
TRAIN_METRICS = METRICS / "train"


class TrainInputError(ValueError):
    """The split or the filtered table is missing or inconsistent."""


def load_parts() -> pd.DataFrame:
    """The split joined with the filtered table (one row per split row, every column of both)."""
    for path, stage in ((SPLIT, "split"), (FILTERED, "filter")):
        if not path.is_file():
            raise TrainInputError(f"{path} not found: run `dvc repro {stage}` first.")
    split = pd.read_csv(SPLIT)
    table = pd.read_csv(FILTERED)
    table = table.drop(columns=[c for c in ("identity", "class", "part") if c in table])
    frame = split.merge(table, on="file", how="left", validate="one_to_one", indicator=True)
    lost = frame.loc[frame["_merge"] != "both", "file"]
    if len(lost):
        raise TrainInputError(
            f"{len(lost)} file(s) of {SPLIT} are not in {FILTERED} (e.g. {lost.iloc[0]}): "
            "rerun `dvc repro split`."
        )
    return frame.drop(columns="_merge")


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
    parser.add_argument("model", choices=MODEL_NAMES)
    args = parser.parse_args(argv)
    model_name: str = args.model

    from dvclive import Live

    from sim2real_faces.models import load_crops, save_model
    from sim2real_faces.training import train_cnn, train_mlp

    params = load_params()
    seed = sub_seed(int(params["seed"]), f"train.{model_name}")
    frame = load_parts()
    train = frame[frame["part"] == "train"].reset_index(drop=True)
    val = frame[frame["part"] == "val"].reset_index(drop=True)
    if train.empty or val.empty:
        raise SplitError(
            f"{SPLIT} has {len(train)} train and {len(val)} val rows; both parts must be non-empty."
        )

    live_dir = DVCLIVE / model_name
    with Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        if model_name == "mlp":
            from sim2real_faces.features import FeatureParams, require_columns

            mlp_params = load_section(MlpParams, "train.mlp", params)
            groups = load_section(FeatureParams, "features", params).groups
            columns = require_columns(frame.columns, groups, str(FILTERED))
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
            model, metrics = train_cnn(
                model_name,
                load_crops(train["crop"].tolist(), size),
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
    TRAIN_METRICS.mkdir(parents=True, exist_ok=True)
    path = TRAIN_METRICS / f"{model_name}.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    best = metrics["best"]
    print(f"{model_name}: best val loss {best['val_loss']:.4f}, accuracy {best['val_accuracy']:.3f}")


if __name__ == "__main__":
    main()
