"""Downscaling of the rendered dataset and its contact sheet.

No GL here: the downscale stage's resolution study (:mod:`sim2real_faces.faces.resolution`, MediaPipe
in its own worker processes) runs beside this code.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sim2real_faces.errors import ProjectError
from sim2real_faces.faces.resolution import ResolutionStudyParams
from sim2real_faces.io import image_size, png_options, read_renders_metadata
from sim2real_faces.params import ParamsError


class DownscaleError(ProjectError, RuntimeError):
    """The input dataset is missing or inconsistent."""


@dataclass(frozen=True)
class ContactSheetParams:
    """The contact sheet (section ``downscale.contact_sheet``): a row per class, an identity per column."""

    columns: int = 6
    thumb_width: int = 328


@dataclass(frozen=True)
class DownscaleParams:
    """Params section ``downscale`` (conf/downscale.yaml)."""

    width: int = 820
    height: int = 571
    workers: int = 2
    png_compression: int = 1
    max_aspect_change: float = 0.02  # relative change of width/height tolerated (820x571 vs 1792x1267: 1.5%)
    resolution_study: ResolutionStudyParams = field(default_factory=ResolutionStudyParams)
    contact_sheet: ContactSheetParams = field(default_factory=ContactSheetParams)

    def validate(self, source_size: tuple[int, int] | None = None, where: str = "downscale") -> None:
        if self.width < 16 or self.height < 16:
            raise ParamsError(
                f"params '{where}.width/height' = {self.width}x{self.height}: both must be >= 16."
            )
        if self.workers < 1:
            raise ParamsError(f"params '{where}.workers' = {self.workers} must be >= 1.")
        if not 0 <= self.png_compression <= 9:
            raise ParamsError(f"params '{where}.png_compression' = {self.png_compression}: use 0..9.")
        study = self.resolution_study
        if study.n_frames < 1:
            raise ParamsError(f"params '{where}.resolution_study.n_frames' = {study.n_frames} must be >= 1.")
        if any(w < 16 or h < 16 for w, h in study.sizes) or not study.sizes:
            raise ParamsError(
                f"params '{where}.resolution_study.sizes' = {study.sizes}: sizes >= 16x16 needed."
            )
        if self.contact_sheet.columns < 1 or self.contact_sheet.thumb_width < 16:
            raise ParamsError(f"params '{where}.contact_sheet': columns >= 1 and thumb_width >= 16 needed.")
        if source_size is not None:
            sw, sh = source_size
            change = abs((self.width / self.height) / (sw / sh) - 1)
            if change > self.max_aspect_change:
                raise ParamsError(
                    f"params '{where}': {self.width}x{self.height} changes the aspect of the {sw}x{sh} "
                    f"renders by {change:.1%} (> max_aspect_change {self.max_aspect_change:.1%}); use height "
                    f"{round(self.width * sh / sw)} for width {self.width}."
                )


def resize_file(src: Path | str, dst: Path | str, size: tuple[int, int], png_compression: int = 1) -> None:
    """Resize an RGB image file to ``size`` (width, height) with INTER_AREA and write it as PNG."""
    import cv2

    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if image is None:
        raise DownscaleError(f"{src} cannot be read as an image; rerun `dvc repro generate`.")
    if (image.shape[1], image.shape[0]) != tuple(size):
        image = cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)
    if not cv2.imwrite(str(dst), image, png_options(png_compression)):
        raise OSError(f"OpenCV could not write {dst}; check the disk and the folder's permissions.")


def _resize_task(item: tuple[str, str, tuple[int, int], int]) -> None:
    resize_file(*item)


def resize_files(
    pairs: Sequence[tuple[Path | str, Path | str]],
    size: tuple[int, int],
    workers: int,
    png_compression: int = 1,
    desc: str = "downscale",
) -> None:
    """Resize many files (spawned processes when ``workers`` > 1), with progress."""
    items = [(str(s), str(d), tuple(size), png_compression) for s, d in pairs]
    with tqdm(total=len(items), desc=desc, unit="img") as progress:
        if workers <= 1 or len(items) < 2:
            for item in items:
                _resize_task(item)
                progress.update()
            return
        with mp.get_context("spawn").Pool(min(workers, len(items))) as pool:
            for _ in pool.imap_unordered(_resize_task, items, chunksize=8):
                progress.update()


def downscale_dataset(raw_dir: Path, out_dir: Path, params: DownscaleParams) -> pd.DataFrame:
    """Write ``out_dir/images/*.png`` at the params size and ``out_dir/metadata.csv`` (same rows)."""
    table = read_renders_metadata(raw_dir, "generate", DownscaleError)
    if table.empty:
        raise DownscaleError(f"{raw_dir / 'metadata.csv'} lists no images.")
    first = raw_dir / "images" / table["file"].iloc[0]
    size = image_size(first)
    if size is None:
        raise DownscaleError(f"{first} cannot be read as an image; rerun `dvc repro generate`.")
    params.validate(size)
    image_dir = out_dir / "images"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    image_dir.mkdir(parents=True)
    pairs = [(raw_dir / "images" / f, image_dir / f) for f in table["file"]]
    resize_files(pairs, (params.width, params.height), params.workers, params.png_compression)
    table.to_csv(out_dir / "metadata.csv", index=False)
    return table


# ---------------------------------------------------------------------------------------- contact sheet


def contact_sheet(image_dir: Path, table: pd.DataFrame, params: ContactSheetParams, path: Path) -> list[str]:
    """A grid PNG: a row per class, a column per identity (the first ``columns`` identities by file name).

    Each cell shows that identity's frame of that class with the strongest expression (highest
    ``intensity``; the first file when there is no intensity column), labelled with class, identity,
    preset and intensity, so the classes can be told apart at a glance. Returns the files shown.
    """
    import cv2

    classes = list(dict.fromkeys(table["class"]))
    identities = list(dict.fromkeys(table.sort_values("file")["identity"]))[: params.columns]
    shown, rows = [], []
    thumb_h = None
    for cls in classes:
        cells = []
        for ident in identities:
            match = table[(table["class"] == cls) & (table["identity"] == ident)].sort_values("file")
            if match.empty:
                cells.append(None)
                continue
            if "intensity" in match:
                match = match.sort_values(["intensity", "file"], ascending=[False, True], kind="stable")
            f = match["file"].iloc[0]
            image = cv2.imread(str(image_dir / f), cv2.IMREAD_COLOR)
            if image is None:
                raise DownscaleError(f"{image_dir / f} cannot be read for the contact sheet.")
            h = round(image.shape[0] * params.thumb_width / image.shape[1])
            thumb_h = thumb_h or h
            thumb = cv2.resize(image, (params.thumb_width, thumb_h), interpolation=cv2.INTER_AREA)
            label = f"{cls} | {ident}"
            if "expression" in match and "intensity" in match:
                label += f" | {match['expression'].iloc[0]} {match['intensity'].iloc[0]:.2f}"
            cv2.rectangle(thumb, (0, 0), (params.thumb_width, 18), (0, 0, 0), -1)
            cv2.putText(thumb, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            cells.append(thumb)
            shown.append(f)
        rows.append(cells)
    if thumb_h is None:
        raise DownscaleError("no images to put on the contact sheet.")
    blank = np.zeros((thumb_h, params.thumb_width, 3), np.uint8)
    grid = np.vstack([np.hstack([c if c is not None else blank for c in cells]) for cells in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 6]):
        raise OSError(f"OpenCV could not write {path}.")
    return shown
