"""The expression gap: how the renders' expressions compare with real faces, per class.

For each class and each face-analysis column of ``expression_gap.columns`` (MediaPipe blendshapes
``bs_*``, action units ``AU*_r`` or landmark geometry ``geo_*``) the mean and spread (standard
deviation, 10th and 90th percentiles) over the kept synthetic faces (``data/synthetic/filtered.csv``
joined with the full rows of ``data/synthetic/features.csv``) beside the same over the real photos' faces
(``data/real/features.csv``, rows with a face). Only aggregates leave this module: no image, crop or
per-photo value of the real set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces.errors import ProjectError
from sim2real_faces.params import ParamsError

DOMAINS = ("synthetic", "real")


class ExpressionGapError(ProjectError, ValueError):
    """A features table lacks what the expression gap needs."""


@dataclass(frozen=True)
class GapParams:
    """Params section ``expression_gap`` (conf/expression_gap.yaml)."""

    columns: list[str]
    """Face-analysis columns compared (``bs_<blendshape>``, ``AU<nn>_r`` or ``geo_<measurement>``)."""


def validate_params(params: GapParams) -> None:
    """Raise :class:`ParamsError` naming ``expression_gap.columns`` when it is empty or malformed."""
    if not params.columns:
        raise ParamsError(
            "params expression_gap.columns is empty; name at least one bs_*, AU*_r or geo_* column."
        )
    bad = [
        c
        for c in params.columns
        if not (c.startswith(("bs_", "geo_")) or (c.startswith("AU") and c.endswith("_r")))
    ]
    if bad:
        raise ParamsError(
            f"params expression_gap.columns has {bad}: use MediaPipe blendshape columns (bs_<name>), "
            "action units (AU<nn>_r) or landmark geometry (geo_<measurement>) as the features tables "
            "name them."
        )
    if len(set(params.columns)) != len(params.columns):
        raise ParamsError(f"params expression_gap.columns lists a column twice: {params.columns}.")


def _require(table: pd.DataFrame, columns: Sequence[str], source: Path | str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ExpressionGapError(
            f"{source} lacks column(s) {missing[:5]}; blendshape columns come from the embedded face "
            "analysis (extract.backend: embedded). Choose other params expression_gap.columns or rerun "
            "the stage that writes the table."
        )


def synthetic_faces(
    features_csv: Path | str, filtered_csv: Path | str, columns: Sequence[str]
) -> pd.DataFrame:
    """The kept synthetic faces (class + ``columns``): filtered.csv's (file, face) rows in features.csv."""
    filtered = pd.read_csv(filtered_csv)
    _require(filtered, ["file", "face", "class"], filtered_csv)
    features = pd.read_csv(features_csv)
    _require(features, ["file", "face", *columns], features_csv)
    kept = filtered[["file", "face", "class"]].merge(
        features[["file", "face", *columns]], on=["file", "face"], how="left", validate="one_to_one"
    )
    lost = int(kept[list(columns)].isna().any(axis=1).sum())
    if lost:
        raise ExpressionGapError(
            f"{lost} kept face(s) of {filtered_csv} have no values in {features_csv}: the two tables are out "
            "of step; rerun stages extract and filter."
        )
    return kept


def real_faces(features_csv: Path | str, columns: Sequence[str]) -> pd.DataFrame:
    """The real photos' detected faces (class + ``columns``); photos without a face are left out."""
    table = pd.read_csv(features_csv)
    _require(table, ["class", *columns], features_csv)
    found = table[list(columns)].notna().all(axis=1)
    if "status" in table.columns:
        found &= table["status"] == "ok"
    return table.loc[found, ["class", *columns]].reset_index(drop=True)


def _stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "p10": float("nan"), "p90": float("nan")}
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "p10": float(np.percentile(values, 10)),
        "p90": float(np.percentile(values, 90)),
    }


def gap_metrics(
    synthetic: pd.DataFrame, real: pd.DataFrame, columns: Sequence[str], classes: Sequence[str] = CLASSES
) -> dict[str, Any]:
    """Per class and column: each domain's mean/std/p10/p90 and the gap of the means (synthetic - real).

    Also ``mean_abs_gap`` per column (over classes) and overall, the one number a change should lower.
    """
    n = {
        d: {c: int((t["class"] == c).sum()) for c in classes}
        for d, t in zip(DOMAINS, (synthetic, real), strict=True)
    }
    per_class: dict[str, dict[str, Any]] = {}
    for cls in classes:
        per_class[cls] = {}
        for col in columns:
            entry = {
                d: _stats(t.loc[t["class"] == cls, col].to_numpy(dtype=np.float64))
                for d, t in zip(DOMAINS, (synthetic, real), strict=True)
            }
            entry["gap"] = entry["synthetic"]["mean"] - entry["real"]["mean"]
            per_class[cls][col] = entry
    per_column = {col: float(np.nanmean([abs(per_class[c][col]["gap"]) for c in classes])) for col in columns}
    return {
        "columns": list(columns),
        "classes": list(classes),
        "n": n,
        "per_class": per_class,
        "mean_abs_gap_per_column": per_column,
        "mean_abs_gap": float(np.nanmean(list(per_column.values()))),
    }


def plot_records(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """DVC plot records: one bar per (class, column, domain) with its mean and std."""
    rows = []
    for cls in metrics["classes"]:
        for col in metrics["columns"]:
            for d in DOMAINS:
                s = metrics["per_class"][cls][col][d]
                rows.append(
                    {
                        "label": f"{cls} {col.removeprefix('bs_')} {d}",
                        "class": cls,
                        "column": col,
                        "domain": d,
                        "mean": round(s["mean"], 4),
                        "std": round(s["std"], 4),
                    }
                )
    return rows


def plot_gap(metrics: dict[str, Any], path: Path | str) -> None:
    """One panel per column: per class, synthetic beside real (bar = mean, line = p10..p90, dot = std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns, classes = metrics["columns"], metrics["classes"]
    ncols = min(4, len(columns))
    nrows = int(np.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    x = np.arange(len(classes))
    colours = {"synthetic": "#4c72b0", "real": "#dd8452"}
    for ax, col in zip(axes.flat, columns, strict=False):
        for k, d in enumerate(DOMAINS):
            stats = [metrics["per_class"][c][col][d] for c in classes]
            pos = x + (k - 0.5) * 0.38
            mean = np.array([s["mean"] for s in stats])
            ax.bar(pos, mean, width=0.36, color=colours[d], label=d)
            lo = mean - np.array([s["p10"] for s in stats])
            hi = np.array([s["p90"] for s in stats]) - mean
            ax.errorbar(
                pos, mean, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="none", ecolor="black", lw=0.8
            )
        ax.set_title(col.removeprefix("bs_"), fontsize=9)
        ax.set_xticks(x, classes, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    n = metrics["n"]
    fig.suptitle(
        "Expression gap: mean (bar) and p10-p90 (line) per class; "
        f"synthetic n={sum(n['synthetic'].values())}, real n={sum(n['real'].values())}; "
        f"mean |gap| {metrics['mean_abs_gap']:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def markdown_table(metrics: dict[str, Any]) -> str:
    """Rows = columns, cells = 'synthetic / real' means per class (for notes and the README)."""
    classes = metrics["classes"]
    lines = ["| column | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for col in metrics["columns"]:
        cells = []
        for c in classes:
            entry = metrics["per_class"][c][col]
            cells.append(f"{entry['synthetic']['mean']:.2f} / {entry['real']['mean']:.2f}")
        lines.append(f"| {col.removeprefix('bs_')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
