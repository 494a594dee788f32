"""Stage ``extract``: face analysis of every synthetic image (params section ``extract``).

Reads ``data/synthetic/images/`` (``metadata.csv`` + ``images/<file>``) and writes

- ``data/synthetic/features.csv``: the metadata columns of each image plus the face columns (one row
  per detected face, most confident first; a ``no_face`` row with ``success=0`` for an image without a
  face; an ``unreadable`` row with the reason for a file that cannot be decoded) and ``crop``;
- ``data/synthetic/crops/<file>.png``: the aligned crop of each image's most confident face (table
  and crops are moved into place together when the analysis is complete, ``sim2real_faces.io``);
- ``metrics/synthetic_faces.json``: detection rate overall and per class at this (downscaled) size.

Backends (``sim2real_faces.faces.backend``): ``embedded`` (MediaPipe, ``sim2real_faces.faces.analysis``)
or ``openface`` (``sim2real_faces.faces.openface``; the study's tool, its aligned face becomes the crop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from sim2real_faces import io as atomic
from sim2real_faces.faces import (
    ExtractError,
    FaceParams,
    OpenFaceParams,
    analyse_images,
    check_ready,
    crop_path_for,
    crops_sheet,
    detection_metrics,
    merge_metadata,
)
from sim2real_faces.params import Count, load_section
from sim2real_faces.paths import METRICS, PLOTS, SYNTH_CROPS, SYNTH_FEATURES, SYNTH_IMAGES


@dataclass(frozen=True)
class ExtractParams:
    """Params section ``extract``."""

    backend: Literal["embedded", "openface"] = "embedded"
    workers: Count = 2  # embedded: analysis processes; openface: OpenFace processes
    openface: OpenFaceParams = field(default_factory=OpenFaceParams)


def run_extract(
    params: ExtractParams,
    face_params: Any,
    images_dir: Path = SYNTH_IMAGES,
    features_csv: Path = SYNTH_FEATURES,
    crops_dir: Path = SYNTH_CROPS,
    metrics_json: Path = METRICS / "synthetic_faces.json",
) -> pd.DataFrame:
    """Analyse every image of ``images_dir`` and write the features table, crops and metrics."""
    metadata = atomic.read_renders_metadata(images_dir, "downscale", ExtractError)
    paths = [str(images_dir / "images" / f) for f in metadata["file"]]
    crop_paths = [crop_path_for(crops_dir, f) for f in metadata["file"]]
    check_ready(params.backend, face_params)  # a missing or damaged model file stops here, before any output
    # Crops and table are written beside the old ones and swapped in together when the analysis is
    # complete; an interrupted run leaves the previous outputs as they were. No completion marker in
    # the crop folder: it would hold the table's digest, and the CNNs' trainings depend on that folder.
    with atomic.table_with_crops(features_csv, crops_dir, marker=False) as (temp_csv, temp_crops):
        temp_paths = [crop_path_for(temp_crops, f) for f in metadata["file"]]
        table = analyse_images(
            params.backend,
            paths,
            temp_paths,
            face_params,
            workers=params.workers,
            openface=params.openface,
        )
        final = {str(t): str(c) for t, c in zip(temp_paths, crop_paths, strict=True)}
        table["crop"] = [final.get(c, c) if isinstance(c, str) else c for c in table["crop"]]
        features = merge_metadata(metadata, table, paths)
        features.to_csv(temp_csv, index=False)
    metrics = detection_metrics(features, params.backend, atomic.image_size(paths[0]) if paths else None)
    atomic.write_json(metrics_json, metrics)
    return features


def main() -> None:
    """``python -m stages.extract``: read params and run."""
    params = load_section(ExtractParams, "extract")
    face_params = load_section(FaceParams, "face")
    features = run_extract(params, face_params)
    # the 224-px synthetic crops the CNNs train on (synthetic only: real photos never go into plots/)
    crops_sheet(features, PLOTS / "crops_sheet.png")
    n_images = features["file"].nunique()
    print(f"extract ({params.backend}): {len(features)} rows for {n_images} images -> {SYNTH_FEATURES}")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
