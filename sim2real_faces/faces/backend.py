"""One call for both face-analysis backends, as the stages use them (``extract.backend``).

- ``embedded``: MediaPipe's Face Landmarker (:func:`.analysis.analyze_files`), its aligned crops.
- ``openface``: OpenFace 2.x (:func:`.openface.openface_table`); its similarity-aligned face, resized to
  ``face.crop_size``, becomes the crop.

:func:`analyse_images` returns the same table whichever the backend: ``file`` (the path as given),
``face``, ``status``, ``reason``, the face columns and ``crop`` (the crop written for the image's most
confident face, "" for the other rows).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from sim2real_faces import assets
from sim2real_faces.faces.analysis import FaceParams, analyze_files
from sim2real_faces.faces.openface import OpenFaceParams, openface_table, write_crop

Backend = Literal["embedded", "openface"]
BACKENDS: tuple[str, ...] = ("embedded", "openface")


def crop_path_for(crops_dir: Path, file: str) -> Path:
    """``crops/<file>.png``: the crop keeps the image's relative path, with a .png suffix."""
    return crops_dir / Path(file).with_suffix(".png")


def check_ready(backend: str, face_params: FaceParams) -> None:
    """Fail before any output is written when the backend's files are missing: the embedded backend
    fetches its model here (an AssetError names the file, its URL and the mirror setting)."""
    if backend == "embedded":
        assets.fetch(face_params.model)


def analyse_images(
    backend: str,
    paths: Sequence[str],
    crop_paths: Sequence[Path | str],
    face_params: FaceParams,
    *,
    workers: int = 1,
    openface: OpenFaceParams | None = None,
    desc: str = "faces",
) -> pd.DataFrame:
    """The face table of ``paths`` from ``backend``, writing each image's crop to its ``crop_paths`` entry.

    ``workers``: analysis processes (embedded) or OpenFace processes (openface); ``openface``: the
    OpenFace settings (default :class:`.openface.OpenFaceParams`); ``desc``: the embedded backend's
    progress-bar label.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown face-analysis backend {backend!r}; use one of {list(BACKENDS)}.")
    if backend == "embedded":
        return analyze_files(paths, face_params, crop_paths=crop_paths, workers=workers, desc=desc)
    params = openface if openface is not None else OpenFaceParams()
    work = Path(tempfile.mkdtemp(prefix="openface-"))
    table = openface_table(paths, params, work, workers=workers)
    table["aligned"] = table["aligned"].fillna("") if "aligned" in table.columns else ""
    crop_of = {file: Path(crop) for file, crop in zip(paths, crop_paths, strict=True)}
    size = int(face_params.crop_size)
    table["crop"] = ""
    for file, rows in table.groupby("file", sort=False):
        best = rows[rows["status"] == "ok"].head(1)  # rows come most confident first
        if len(best) and best["aligned"].iloc[0]:
            write_crop(best["aligned"].iloc[0], crop_of[file], size)
            table.loc[best.index[0], "crop"] = str(crop_of[file])
    shutil.rmtree(work)  # kept on error: its openface.log files are named in the message
    return table.drop(columns=["aligned"])
