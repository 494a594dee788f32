"""Downscaling of the rendered dataset, the resolution study (the study's Table 2) and the contact sheet.

No GL here: face analysis (MediaPipe, in :func:`sim2real_faces.faces.analyze_files`'s own worker
processes) may run beside this code.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from sim2real_faces.errors import ProjectError
from sim2real_faces.params import ParamsError
from sim2real_faces.render.dataset import png_options


class DownscaleError(ProjectError, RuntimeError):
    """The input dataset is missing or inconsistent."""


@dataclass(frozen=True)
class ResolutionStudyParams:
    """The resolution study (section ``downscale.resolution_study``): Table 2 on ``n_frames`` frames."""

    enabled: bool = True
    n_frames: int = 100  # evenly spaced over the sorted file list (every class); the study used 300
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(1792, 1267), (820, 571), (256, 181)])
    confidence_threshold: float = 0.8  # also report the share of frames whose best face passes this


@dataclass(frozen=True)
class ContactSheetParams:
    """The contact sheet (section ``downscale.contact_sheet``): a row per class, an identity per column."""

    columns: int = 6
    thumb_width: int = 328


@dataclass(frozen=True)
class DownscaleParams:
    """Params section ``downscale`` (conf/downscale/*.yaml)."""

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


def read_raw_metadata(raw_dir: Path) -> pd.DataFrame:
    """The generate stage's metadata, checked against the image folder."""
    path = raw_dir / "metadata.csv"
    if not path.is_file():
        raise DownscaleError(f"{path} not found: run `dvc repro generate` first.")
    table = pd.read_csv(path, keep_default_na=False)
    if "file" not in table.columns or "class" not in table.columns:
        raise DownscaleError(f"{path} lacks the 'file' and 'class' columns the generate stage writes.")
    missing = [f for f in table["file"] if not (raw_dir / "images" / f).is_file()]
    if missing:
        raise DownscaleError(
            f"{len(missing)} image(s) of {path} are missing under {raw_dir / 'images'} (e.g. {missing[:3]}); "
            "rerun `dvc repro generate`."
        )
    return table


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DownscaleError(f"{path} cannot be read as an image; rerun `dvc repro generate`.")
    return int(image.shape[1]), int(image.shape[0])


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
    table = read_raw_metadata(raw_dir)
    if table.empty:
        raise DownscaleError(f"{raw_dir / 'metadata.csv'} lists no images.")
    params.validate(image_size(raw_dir / "images" / table["file"].iloc[0]))
    image_dir = out_dir / "images"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    image_dir.mkdir(parents=True)
    pairs = [(raw_dir / "images" / f, image_dir / f) for f in table["file"]]
    resize_files(pairs, (params.width, params.height), params.workers, params.png_compression)
    table.to_csv(out_dir / "metadata.csv", index=False)
    return table


# ------------------------------------------------------------------------------------- resolution study


def study_frames(files: Sequence[str], n: int) -> list[str]:
    """``n`` files evenly spaced over the sorted list (all of them when there are fewer)."""
    ordered = sorted(files)
    if n >= len(ordered):
        return ordered
    picks = np.unique(np.linspace(0, len(ordered) - 1, n).round().astype(int))
    return [ordered[i] for i in picks]


def resolution_study(
    raw_dir: Path, files: Sequence[str], params: DownscaleParams, face_params: Any
) -> dict[str, Any]:
    """Detection rate and memory of the same frames at each size of ``params.resolution_study.sizes``.

    Each size is resized from the raw render (INTER_AREA) and analysed by
    :func:`sim2real_faces.faces.analyze_files` with ``max_side`` raised to that size, so the detector
    sees every resolution as it is. Memory: the frames as uint8 RGB arrays (``memory_mb``, the
    in-memory size) and as PNG files (``png_mb``); MB = 10^6 bytes.
    """
    from sim2real_faces.faces import analyze_files

    study = params.resolution_study
    frames = study_frames(files, study.n_frames)
    results = []
    with tempfile.TemporaryDirectory(prefix="resolution-") as tmp:
        for width, height in study.sizes:
            folder = Path(tmp) / f"{width}x{height}"
            folder.mkdir()
            pairs = [(raw_dir / "images" / f, folder / f) for f in frames]
            resize_files(
                pairs, (width, height), params.workers, params.png_compression, desc=f"{width}x{height}"
            )
            fp = dataclasses.replace(face_params, max_side=max(width, height, face_params.max_side))
            table = analyze_files(
                [p for _, p in pairs], fp, workers=params.workers, desc=f"faces {width}x{height}"
            )
            best = table.sort_values(["file", "face"]).groupby("file", sort=False).first()
            found = best["status"] == "ok"
            conf = pd.to_numeric(best["confidence"], errors="coerce")
            results.append(
                {
                    "width": width,
                    "height": height,
                    "n_frames": len(frames),
                    "detection_rate": round(float(found.mean()), 4),
                    "confident_rate": round(float((found & (conf > study.confidence_threshold)).mean()), 4),
                    "confidence_threshold": study.confidence_threshold,
                    "mean_confidence": round(float(conf[found].mean()), 4) if found.any() else None,
                    "unreadable": int((best["status"] == "unreadable").sum()),
                    "memory_mb": round(len(frames) * width * height * 3 / 1e6, 2),
                    "png_mb": round(sum(p.stat().st_size for _, p in pairs) / 1e6, 2),
                    "detector_max_side": fp.max_side,
                }
            )
    return {"n_frames": len(frames), "frames": "evenly spaced over the sorted raw files", "sizes": results}


def plot_resolution(study: dict[str, Any], path: Path) -> None:
    """Detection rate and memory per size, side by side (the study's Table 2 as a figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = study["sizes"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not sizes:  # the study is switched off: say so in the figure rather than leaving a stale one
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"resolution study skipped ({study.get('skipped', 'no sizes')})", ha="center")
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        return
    labels = [f"{s['width']}x{s['height']}" for s in sizes]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.bar(labels, [100 * s["detection_rate"] for s in sizes], color="#4c72b0")
    ax1.set_ylabel("faces detected (%)")
    ax1.set_ylim(0, 105)
    ax1.set_title(f"detection rate ({study['n_frames']} frames)")
    for i, s in enumerate(sizes):
        ax1.text(
            i, 100 * s["detection_rate"] + 1, f"{100 * s['detection_rate']:.1f}", ha="center", fontsize=8
        )
    x = np.arange(len(sizes))
    ax2.bar(x - 0.2, [s["memory_mb"] for s in sizes], 0.4, label="RGB arrays", color="#55a868")
    ax2.bar(x + 0.2, [s["png_mb"] for s in sizes], 0.4, label="PNG files", color="#c44e52")
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("MB")
    ax2.set_title(f"memory of {study['n_frames']} frames")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


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


def crops_sheet(features: pd.DataFrame, path: Path, columns: int = 8) -> list[str]:
    """A grid PNG of the synthetic face crops the CNNs train on: a row per class, a column per identity.

    ``features`` is the extract stage's table of the synthetic set (columns file, class, identity,
    crop; intensity when present). Each cell is, at its own size, the crop of that identity's frame of
    that class with the strongest expression that has a face, labelled with class and identity.
    Only synthetic crops go here: real photos never go into plots/. Returns the crop files shown.
    """
    import cv2

    needed = {"class", "identity", "crop", "file"}
    if not needed <= set(features.columns):
        raise DownscaleError(
            f"the crop sheet needs columns {sorted(needed)}, got {sorted(features.columns)}."
        )
    table = features[features["crop"].notna() & (features["crop"].astype(str) != "")]
    table = table.drop_duplicates("file")  # one crop per image (its most confident face)
    classes = list(dict.fromkeys(features["class"]))
    identities = list(dict.fromkeys(features.sort_values("file")["identity"]))[:columns]
    shown, rows, size = [], [], None
    for cls in classes:
        cells = []
        for ident in identities:
            match = table[(table["class"] == cls) & (table["identity"] == ident)].sort_values("file")
            if "intensity" in match:
                match = match.sort_values(["intensity", "file"], ascending=[False, True], kind="stable")
            image = None if match.empty else cv2.imread(str(match["crop"].iloc[0]), cv2.IMREAD_COLOR)
            if image is not None:
                size = size or image.shape[:2]
                image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                cv2.rectangle(image, (0, 0), (size[1], 16), (0, 0, 0), -1)
                cv2.putText(
                    image, f"{cls} | {ident}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1
                )
                shown.append(str(match["crop"].iloc[0]))
            cells.append(image)
        rows.append(cells)
    if size is None:
        raise DownscaleError("no face crops to put on the crop sheet: no face was found in any image.")
    blank = np.zeros((*size, 3), np.uint8)
    grid = np.vstack([np.hstack([c if c is not None else blank for c in cells]) for cells in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 6]):
        raise OSError(f"OpenCV could not write {path}.")
    return shown


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
