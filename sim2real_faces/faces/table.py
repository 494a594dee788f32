"""The face table of an image folder with its metadata: the extract stage's features table and metrics.

:func:`merge_metadata` puts each image's metadata columns (``metadata.csv``) in front of its face rows;
:func:`detection_metrics` counts images with a face, overall and per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sim2real_faces.errors import ProjectError


class ExtractError(ProjectError, RuntimeError):
    """The input image folder is inconsistent with its metadata."""


def merge_metadata(metadata: pd.DataFrame, table: pd.DataFrame, paths: list[str]) -> pd.DataFrame:
    """Metadata columns first, then the face columns; rows in metadata order, faces as analysed.

    ``paths`` are the files the face table was made from, one per metadata row and in its order.
    """
    index_of = {p: i for i, p in enumerate(paths)}
    if set(table["file"]) != set(paths):
        raise ExtractError("the face analysis returned rows for other files than it was given")
    clash = sorted((set(metadata.columns) - {"file"}) & set(table.columns))
    if clash:
        raise ExtractError(f"metadata.csv column(s) {clash} clash with face-analysis columns; rename them.")
    rows = table.assign(_image=table["file"].map(index_of)).sort_values("_image", kind="stable")
    meta = metadata.iloc[rows["_image"].to_numpy()].reset_index(drop=True)
    faces = rows.drop(columns=["file", "_image"]).reset_index(drop=True)
    if "crop" not in faces.columns:
        faces["crop"] = ""
    faces["crop"] = faces["crop"].fillna("")
    if "note" not in faces.columns:
        faces["note"] = ""  # backends that read single frames only
    faces["note"] = faces["note"].fillna("")
    return pd.concat([meta, faces], axis=1)


def detection_metrics(
    features: pd.DataFrame, backend: str, image_size: Sequence[int] | None
) -> dict[str, Any]:
    """Detection rate (images with at least one face / all images) overall and per class.

    ``image_size``: [width, height] of the folder's images (they share one size after downscaling).
    """

    def summary(frame: pd.DataFrame) -> dict[str, Any]:
        per_image = frame.groupby("file", sort=False)["status"]
        n_faces = per_image.apply(lambda s: int((s == "ok").sum()))
        status = per_image.first()
        n = len(n_faces)
        return {
            "n_images": n,
            "detection_rate": float((n_faces > 0).sum() / n) if n else 0.0,
            "n_detected": int((n_faces > 0).sum()),
            "n_no_face": int((status == "no_face").sum()),
            "n_unreadable": int((status == "unreadable").sum()),
            "n_multi_face": int((n_faces > 1).sum()),
            "n_faces": int(n_faces.sum()),
        }

    size = None if image_size is None else [int(v) for v in image_size]
    metrics: dict[str, Any] = {"backend": backend, "image_size": size, **summary(features)}
    metrics["per_class"] = {str(c): summary(g) for c, g in features.groupby("class", sort=True)}
    return metrics
