"""Stage ``filter``: one face per image, kept when confident enough (params ``filter`` and ``features``).

For every image of ``data/synthetic/features.csv`` the most confident detected face is taken; the
image is kept when that confidence is above ``filter.min_confidence`` (the study: ``> 0.8``) and the
face has every feature column of ``features.groups``. Images with 2+ faces, without a face, with an
unreadable file, below the threshold or with missing feature values are counted, per class, in
``metrics/filter.json`` (the study's Table 1: images before, faces kept). ``data/synthetic/filtered.csv``
holds one row per kept image: the metadata columns, ``face``, ``confidence``, the feature columns and
``crop``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim2real_faces import io as atomic
from sim2real_faces.errors import ProjectError
from sim2real_faces.faces import FeatureParams, require_columns
from sim2real_faces.params import Probability, load_section
from sim2real_faces.paths import FILTERED, METRICS, SYNTH_FEATURES, SYNTH_IMAGES

REASONS = ("no_face", "unreadable", "low_confidence", "missing_features")


class FilterError(ProjectError, ValueError):
    """The features table is not what stage ``extract`` writes."""


@dataclass(frozen=True)
class FilterParams:
    """Params section ``filter``."""

    min_confidence: Probability = 0.8  # keep a face when its confidence is strictly above this


def filter_faces(
    features: pd.DataFrame, metadata_columns: list[str], feature_cols: list[str], min_confidence: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, one row per image with its outcome).

    The outcome table has ``file``, ``class``, ``n_faces``, ``outcome`` (``kept`` or one of
    :data:`REASONS`) and ``confidence`` of the best face.
    """
    needed = ["file", "class", "status", "confidence", "success", "face", "crop"]
    missing = [c for c in needed + metadata_columns if c not in features.columns]
    if missing:
        raise FilterError(f"features table lacks column(s) {missing}: rerun `dvc repro extract`.")
    detected = features["status"].eq("ok") & features["success"].eq(1)
    kept_rows = []
    outcomes = []
    for file, rows in features.groupby("file", sort=False):
        faces = rows[detected.loc[rows.index]]
        outcome = {"file": file, "class": rows["class"].iloc[0], "n_faces": len(faces), "confidence": None}
        if faces.empty:
            outcome["outcome"] = "unreadable" if (rows["status"] == "unreadable").any() else "no_face"
        else:
            best = faces.sort_values(["confidence", "face"], ascending=[False, True], kind="stable").iloc[0]
            outcome["confidence"] = float(best["confidence"])
            if not best["confidence"] > min_confidence:
                outcome["outcome"] = "low_confidence"
            elif best[feature_cols].isna().any():
                outcome["outcome"] = "missing_features"
            else:
                outcome["outcome"] = "kept"
                kept_rows.append(best)
        outcomes.append(outcome)
    columns = [*metadata_columns, "face", "confidence", *feature_cols, "crop"]
    columns = list(dict.fromkeys(columns))  # a metadata 'face' column would be an extract error already
    kept = pd.DataFrame(kept_rows, columns=features.columns)[columns].reset_index(drop=True)
    kept["face"] = kept["face"].astype(int)
    return kept, pd.DataFrame(outcomes)


def table1(
    outcomes: pd.DataFrame, min_confidence: float, groups: list[str], n_features: int
) -> dict[str, Any]:
    """The study's Table 1 (per class: images before, faces kept) plus every count of a dropped image."""

    def counts(frame: pd.DataFrame) -> dict[str, Any]:
        result = {"images": len(frame), "kept": int((frame["outcome"] == "kept").sum())}
        result["kept_rate"] = result["kept"] / result["images"] if result["images"] else 0.0
        result["multi_face"] = int((frame["n_faces"] > 1).sum())
        for reason in REASONS:
            result[reason] = int((frame["outcome"] == reason).sum())
        return result

    return {
        "min_confidence": min_confidence,
        "feature_groups": groups,
        "n_features": n_features,
        "total": counts(outcomes),
        "per_class": {str(c): counts(g) for c, g in outcomes.groupby("class", sort=True)},
    }


def run_filter(
    params: FilterParams,
    features_params: FeatureParams,
    features_csv: Path = SYNTH_FEATURES,
    metadata_csv: Path = SYNTH_IMAGES / "metadata.csv",
    filtered_csv: Path = FILTERED,
    metrics_json: Path = METRICS / "filter.json",
) -> dict[str, Any]:
    """Filter ``features_csv`` and write ``filtered_csv`` and ``metrics_json``; returns the metrics."""
    if not features_csv.is_file():
        raise FilterError(f"{features_csv} not found: run `dvc repro extract` first.")
    features = pd.read_csv(features_csv, keep_default_na=False, na_values=[""])
    features["crop"] = features["crop"].fillna("") if "crop" in features.columns else ""
    metadata_columns = list(pd.read_csv(metadata_csv, nrows=0).columns)
    groups = list(features_params.groups)
    feature_cols = require_columns(features.columns, groups, str(features_csv))
    kept, outcomes = filter_faces(features, metadata_columns, feature_cols, params.min_confidence)
    if kept.empty:
        raise FilterError(
            f"no image of {features_csv} kept at filter.min_confidence={params.min_confidence}: "
            f"outcomes {outcomes['outcome'].value_counts().to_dict()}."
        )
    metrics = table1(outcomes, params.min_confidence, groups, len(feature_cols))
    atomic.write_csv(filtered_csv, kept)
    atomic.write_json(metrics_json, metrics)
    return metrics


def main() -> None:
    """``python -m stages.filter``: read params and run."""
    params = load_section(FilterParams, "filter")
    features_params = load_section(FeatureParams, "features")
    metrics = run_filter(params, features_params)
    total = metrics["total"]
    print(f"filter: kept {total['kept']} of {total['images']} images -> {FILTERED}")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
