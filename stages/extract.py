"""Stage ``extract``: face analysis of every synthetic image (params section ``extract``).

Reads ``data/synthetic/images/`` (``metadata.csv`` + ``images/<file>``) and writes

- ``data/synthetic/features.csv``: the metadata columns of each image plus the face columns (one row
  per detected face, most confident first; a ``no_face`` row with ``success=0`` for an image without a
  face; an ``unreadable`` row with the reason for a file that cannot be decoded) and ``crop``;
- ``data/synthetic/crops/<file>.png``: the aligned crop of each image's most confident face (table
  and crops are moved into place together when the analysis is complete, ``sim2real_faces.io``);
- ``metrics/synthetic_faces.json``: detection rate overall and per class at this (downscaled) size.

Backends: ``embedded`` (MediaPipe through ``sim2real_faces.faces.analyze_files``) or ``openface``
(``sim2real_faces.openface``; the study's tool, its aligned face becomes the crop).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from sim2real_faces import io as atomic
from sim2real_faces.errors import ProjectError
from sim2real_faces.openface import OpenFaceParams
from sim2real_faces.params import Count, load_section
from sim2real_faces.paths import METRICS, PLOTS, SYNTH_CROPS, SYNTH_FEATURES, SYNTH_IMAGES

FACE_META_COLUMNS = ("file", "face", "status", "reason", "crop")


class ExtractError(ProjectError, RuntimeError):
    """The input image folder is inconsistent with its metadata."""


@dataclass(frozen=True)
class ExtractParams:
    """Params section ``extract``."""

    backend: Literal["embedded", "openface"] = "embedded"
    workers: Count = 2  # embedded: analysis processes; openface: OpenFace processes
    openface: OpenFaceParams = field(default_factory=OpenFaceParams)


def read_metadata(images_dir: Path) -> pd.DataFrame:
    """An image folder's ``metadata.csv``, checked: ``file`` and ``class`` present, files unique, on disk."""
    path = images_dir / "metadata.csv"
    if not path.is_file():
        raise ExtractError(f"{path} not found: run `dvc repro downscale` first.")
    metadata = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in ("file", "class") if c not in metadata.columns]
    if missing:
        raise ExtractError(
            f"{path} lacks column(s) {missing}; it must hold file (relative to images/) and class."
        )
    duplicated = metadata["file"][metadata["file"].duplicated()].tolist()
    if duplicated:
        raise ExtractError(f"{path}: file(s) listed twice: {duplicated[:5]}")
    absent = [f for f in metadata["file"] if not (images_dir / "images" / f).is_file()]
    if absent:
        raise ExtractError(
            f"{len(absent)} image(s) listed in {path} are missing under {images_dir / 'images'} "
            f"(e.g. {absent[:3]}); rerun `dvc repro downscale`."
        )
    return metadata


def crop_path_for(crops_dir: Path, file: str) -> Path:
    """``crops/<file>.png``: the crop keeps the image's relative path, with a .png suffix."""
    return crops_dir / Path(file).with_suffix(".png")


def analyse(
    paths: list[str], crop_paths: list[Path], params: ExtractParams, face_params: Any
) -> pd.DataFrame:
    """The face table of ``paths`` from the configured backend (``file`` = the path as given)."""
    if params.backend == "embedded":
        from sim2real_faces.faces import analyze_files

        return analyze_files(paths, face_params, crop_paths=crop_paths, workers=params.workers)
    from sim2real_faces.openface import openface_table, write_crop

    work = Path(tempfile.mkdtemp(prefix="openface-"))
    table = openface_table(paths, params.openface, work, workers=params.workers)
    table["aligned"] = table["aligned"].fillna("") if "aligned" in table.columns else ""
    crop_of = dict(zip(paths, crop_paths, strict=True))
    size = int(face_params.crop_size)
    table["crop"] = ""
    for file, rows in table.groupby("file", sort=False):
        best = rows[rows["status"] == "ok"].head(1)  # rows come most confident first
        if len(best) and best["aligned"].iloc[0]:
            write_crop(best["aligned"].iloc[0], crop_of[file], size)
            table.loc[best.index[0], "crop"] = str(crop_of[file])
    shutil.rmtree(work)  # kept on error: its openface.log files are named in the message
    return table.drop(columns=["aligned"])


def merge(metadata: pd.DataFrame, table: pd.DataFrame, paths: list[str]) -> pd.DataFrame:
    """Metadata columns first, then the face columns; rows in metadata order, faces as analysed."""
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


def detection_metrics(features: pd.DataFrame, backend: str, image_size: list[int] | None) -> dict[str, Any]:
    """Detection rate (images with at least one face / all images) overall and per class."""

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

    metrics: dict[str, Any] = {"backend": backend, "image_size": image_size, **summary(features)}
    metrics["per_class"] = {str(c): summary(g) for c, g in features.groupby("class", sort=True)}
    return metrics


def image_size(path: str) -> list[int] | None:
    """[width, height] of one image (the folder's images share a size after downscaling)."""
    import cv2

    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return None if image is None else [int(image.shape[1]), int(image.shape[0])]


def run_extract(
    params: ExtractParams,
    face_params: Any,
    images_dir: Path = SYNTH_IMAGES,
    features_csv: Path = SYNTH_FEATURES,
    crops_dir: Path = SYNTH_CROPS,
    metrics_json: Path = METRICS / "synthetic_faces.json",
) -> pd.DataFrame:
    """Analyse every image of ``images_dir`` and write the features table, crops and metrics."""
    metadata = read_metadata(images_dir)
    paths = [str(images_dir / "images" / f) for f in metadata["file"]]
    crop_paths = [crop_path_for(crops_dir, f) for f in metadata["file"]]
    if params.backend == "embedded":
        from sim2real_faces import assets

        assets.fetch(face_params.model)  # a missing or damaged model file stops here, before any output
    # Crops and table are written beside the old ones and swapped in together when the analysis is
    # complete; an interrupted run leaves the previous outputs as they were. No completion marker in
    # the crop folder: it would hold the table's digest, and the CNNs' trainings depend on that folder.
    with atomic.table_with_crops(features_csv, crops_dir, marker=False) as (temp_csv, temp_crops):
        temp_paths = [crop_path_for(temp_crops, f) for f in metadata["file"]]
        table = analyse(paths, temp_paths, params, face_params)
        final = {str(t): str(c) for t, c in zip(temp_paths, crop_paths, strict=True)}
        table["crop"] = [final.get(c, c) if isinstance(c, str) else c for c in table["crop"]]
        features = merge(metadata, table, paths)
        features.to_csv(temp_csv, index=False)
    metrics = detection_metrics(features, params.backend, image_size(paths[0]) if paths else None)
    atomic.write_json(metrics_json, metrics)
    return features


def main() -> None:
    """``python -m stages.extract``: read params and run."""
    from sim2real_faces.faces import FaceParams

    params = load_section(ExtractParams, "extract")
    face_params = load_section(FaceParams, "face")
    features = run_extract(params, face_params)
    from sim2real_faces.render.downscale import crops_sheet

    # the 224-px synthetic crops the CNNs train on (synthetic only: real photos never go into plots/)
    crops_sheet(features, PLOTS / "crops_sheet.png")
    n_images = features["file"].nunique()
    print(f"extract ({params.backend}): {len(features)} rows for {n_images} images -> {SYNTH_FEATURES}")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
