"""Stage prepare_real: a folder of labelled real photos -> aligned face crops + one feature table.

Input (param ``real.photo_dir``, default ``data/real_photos``), either layout:

- ``manifest.csv`` with a ``path`` column (relative to the folder) and a label column (``source_label``,
  else ``class``); optional ``identity`` (default: file stem) and ``dataset`` (default: folder name).
  This is the layout of ../shared/data/real-dev.
- no manifest: one sub-folder per label, ``<label>/<file>`` (files found recursively inside it);
  identity = file stem, dataset = the photo folder's name.

Labels become classes through ``real.class_map`` (e.g. sad -> crying). A label mapped to ``skip`` leaves
its photos out on purpose (counted as ``n_skipped``); a label not in the map stops the stage with an
error naming the file and the param. A manifest row whose file does not exist is kept with status
``missing`` and counted; an unreadable file gets status ``unreadable`` (the reason is in the table);
an empty label folder is listed under ``empty_folders``. None of these change ``detection_rate``, which
is detected / readable images.

Outputs: ``data/real/crops/<path>.png`` (aligned crop of the most confident face),
``data/real/features.csv`` (one row per listed photo: path, class, source_label, identity, dataset,
status, reason, face columns, crop) and ``metrics/real_faces.json``.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces.faces import FEATURE_COLUMNS, FaceParams, analyze_files
from sim2real_faces.images import is_image_file
from sim2real_faces.params import load_section
from sim2real_faces.paths import METRICS, REAL_CROPS, REAL_FEATURES

SKIP = "skip"
MANIFEST = "manifest.csv"
METRICS_FILE = METRICS / "real_faces.json"
META_COLUMNS = ["path", "class", "source_label", "identity", "dataset"]


def _default_class_map() -> dict[str, str]:
    return {
        "angry": "angry", "anger": "angry", "AN": "angry",
        "crying": "crying", "sad": "crying", "sadness": "crying", "SA": "crying",
        "happy": "happy", "happiness": "happy", "HA": "happy",
    }  # fmt: skip


@dataclass(frozen=True)
class RealParams:
    """Params section ``real``."""

    photo_dir: Path = Path("data/real_photos")
    """Folder of labelled photos (manifest.csv or <label>/ sub-folders)."""
    class_map: dict[str, str] = field(default_factory=_default_class_map)
    """Source label -> class (one of sim2real_faces.CLASSES) or "skip"."""
    workers: int = 2
    """Face-analysis processes."""

    def __post_init__(self) -> None:
        allowed = [*CLASSES, SKIP]
        wrong = {label: cls for label, cls in self.class_map.items() if cls not in allowed}
        if wrong:
            raise RealPhotosError(
                f"params real.class_map maps {wrong}; every value must be one of {allowed}."
            )
        if self.workers < 1:
            raise RealPhotosError(f"params real.workers = {self.workers}; use 1 or more.")


class RealPhotosError(ValueError):
    """The real-photo folder is missing, empty or inconsistent; the message says what to fix."""


def _what_to_put(photo_dir: Path) -> str:
    return (
        f"Put labelled face photos in {photo_dir}: either a {MANIFEST} (columns path, class or source_label, "
        f"optional identity, dataset) next to the files it lists, or one sub-folder per label "
        f"({', '.join(CLASSES)} or any label in params real.class_map) holding the photos. "
        f"Or use another folder: dvc exp run -S real.photo_dir=/path/to/photos "
        f"(or link it: ln -sfn /path/to/photos data/real_photos)."
    )


@dataclass(frozen=True)
class PhotoList:
    """The photos a folder holds, before face analysis."""

    table: pd.DataFrame
    """META_COLUMNS + ``file`` (path to read) + ``exists``; skipped labels are already removed."""
    layout: str
    skipped: dict[str, int]
    empty_folders: list[str]


def list_photos(photo_dir: Path, class_map: dict[str, str]) -> PhotoList:
    """Read ``photo_dir``'s manifest (or its label sub-folders) into a table of labelled photos."""
    photo_dir = Path(photo_dir)
    if not photo_dir.is_dir():
        raise RealPhotosError(f"Real-photo folder {photo_dir} does not exist. {_what_to_put(photo_dir)}")
    manifest = photo_dir / MANIFEST
    if manifest.is_file():
        table, empty, layout = _from_manifest(manifest, photo_dir), [], "manifest"
    else:
        table, empty = _from_folders(photo_dir)
        layout = "folders"
    if table.empty:
        raise RealPhotosError(f"Real-photo folder {photo_dir} holds no photos. {_what_to_put(photo_dir)}")

    unknown = table[~table["source_label"].isin(list(class_map))]
    if not unknown.empty:
        examples = "; ".join(
            f"{label!r} (e.g. {group['where'].iloc[0]})"
            for label, group in unknown.groupby("source_label", sort=True)
        )
        first = unknown["source_label"].iloc[0]
        raise RealPhotosError(
            f"Unknown label(s) in {photo_dir}: {examples}. Params real.class_map knows {sorted(class_map)}. "
            f"Map each label to one of {list(CLASSES)} or to '{SKIP}' to leave those photos out, e.g. "
            f"dvc exp run -S 'real.class_map.{first}=skip' (or add it to conf/real/)."
        )
    table["class"] = table["source_label"].map(class_map)
    skipped = dict(sorted(Counter(table.loc[table["class"] == SKIP, "source_label"]).items()))
    table = table[table["class"] != SKIP].reset_index(drop=True)
    duplicates = table["path"][table["path"].duplicated()]
    if not duplicates.empty:
        raise RealPhotosError(f"{photo_dir}: {duplicates.iloc[0]} is listed twice; list each photo once.")
    table["exists"] = [Path(f).is_file() for f in table["file"]]
    return PhotoList(table.drop(columns=["where"]), layout, skipped, empty)


def _from_manifest(manifest: Path, photo_dir: Path) -> pd.DataFrame:
    raw = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if "path" not in raw.columns or not ({"source_label", "class"} & set(raw.columns)):
        raise RealPhotosError(
            f"{manifest} needs a 'path' column and a label column ('source_label' or 'class'); it has "
            f"{list(raw.columns)}. Fix the header or remove it to use class sub-folders."
        )
    label_column = "source_label" if "source_label" in raw.columns else "class"
    paths = raw["path"].str.strip()
    if (paths == "").any():
        line = int((paths == "").to_numpy().argmax()) + 2
        raise RealPhotosError(f"{manifest}, line {line}: empty path. Give every row the photo's path.")
    stems = [Path(p).stem for p in paths]
    identity = raw["identity"] if "identity" in raw.columns else pd.Series([""] * len(raw))
    dataset = raw["dataset"] if "dataset" in raw.columns else pd.Series([""] * len(raw))
    return pd.DataFrame(
        {
            "path": paths,
            "source_label": raw[label_column].str.strip(),
            "identity": [i or s for i, s in zip(identity, stems, strict=True)],
            "dataset": [d or photo_dir.name for d in dataset],
            "file": [str(photo_dir / p) for p in paths],
            "where": [f"{manifest}, line {i + 2}, path {p}" for i, p in enumerate(paths)],
        }
    )


def _from_folders(photo_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    loose = sorted(p.name for p in photo_dir.iterdir() if p.is_file() and is_image_file(p))
    if loose:
        raise RealPhotosError(
            f"{photo_dir} has photos outside label sub-folders ({', '.join(loose[:3])}"
            f"{', ..' if len(loose) > 3 else ''}) and no {MANIFEST}: their label is unknown. "
            f"Move them into <label>/ sub-folders or list them in a {MANIFEST}."
        )
    rows, empty = [], []
    folders = sorted(p for p in photo_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.parts)
        )
        if not files:
            empty.append(folder.name)
        for file in files:
            rel = file.relative_to(photo_dir).as_posix()
            rows.append(
                {
                    "path": rel,
                    "source_label": folder.name,
                    "identity": file.stem,
                    "dataset": photo_dir.name,
                    "file": str(file),
                    "where": str(file),
                }
            )
    if empty:
        print(f"prepare_real: warning: empty label folder(s) in {photo_dir}: {', '.join(empty)}")
    columns = ["path", "source_label", "identity", "dataset", "file", "where"]
    return pd.DataFrame(rows, columns=columns), empty


def _crop_paths(paths: pd.Series, crops_dir: Path) -> list[Path]:
    crops = [crops_dir / Path(p).with_suffix(".png") for p in paths]
    seen: dict[Path, str] = {}
    for crop, path in zip(crops, paths, strict=True):
        if crop in seen:
            raise RealPhotosError(
                f"{seen[crop]} and {path} would share the crop {crop}; rename one of them (same name, "
                f"different suffix)."
            )
        seen[crop] = path
    return crops


def _rates(table: pd.DataFrame, by: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    result = {}
    for key in keys:
        part = table[table[by] == key]
        readable = part["status"].isin(["ok", "no_face"])
        n_images, n_detected = int(readable.sum()), int((part["status"] == "ok").sum())
        result[key] = {
            "n_images": n_images,
            "n_detected": n_detected,
            "detection_rate": round(n_detected / n_images, 6) if n_images else None,
        }
    return result


def prepare_real(
    params: RealParams,
    face_params: FaceParams,
    crops_dir: Path = REAL_CROPS,
    features_csv: Path = REAL_FEATURES,
    metrics_json: Path = METRICS_FILE,
) -> dict[str, Any]:
    """Run the stage: analyse every listed photo, write crops, the feature table and the metrics."""
    photos = list_photos(params.photo_dir, params.class_map)
    table = photos.table
    if crops_dir.exists():
        shutil.rmtree(crops_dir)  # no stale crops from an earlier photo set
    crops = _crop_paths(table["path"], crops_dir)
    present = table["exists"].to_numpy()
    files = list(table.loc[present, "file"])
    analysed = analyze_files(
        files,
        face_params,
        crop_paths=[c for c, p in zip(crops, present, strict=True) if p],
        workers=params.workers,
        desc="real faces",
    )
    multi = analysed.groupby("file", sort=False)["face"].max()
    first = analysed[analysed["face"] == 0].set_index("file")
    face_columns = ["status", "reason", "face", "success", *FEATURE_COLUMNS, "crop"]
    rows = []
    for record in table.to_dict("records"):
        if record["exists"]:
            values = first.loc[record["file"], face_columns].to_dict()
        else:
            values = {c: float("nan") for c in FEATURE_COLUMNS}
            reason = f"{record['file']} does not exist; fix the manifest row or restore the file."
            values.update(status="missing", reason=reason, face=0, success=0, crop="")
        rows.append({**{c: record[c] for c in META_COLUMNS}, **values})
    features = pd.DataFrame(rows, columns=[*META_COLUMNS, *face_columns])
    features = features.astype({"face": "int64", "success": "int64"})

    status = Counter(features["status"])
    n_images = status["ok"] + status["no_face"]
    if n_images == 0:
        reasons = "; ".join(features["reason"].head(3))
        raise RealPhotosError(
            f"None of the {len(features)} photos listed in {params.photo_dir} could be read ({reasons}). "
            f"{_what_to_put(params.photo_dir)}"
        )
    detected = features["status"] == "ok"
    metrics = {
        "detection_rate": round(status["ok"] / n_images, 6),
        "n_images": n_images,
        "n_detected": status["ok"],
        "per_dataset": _rates(features, "dataset", sorted(features["dataset"].unique())),
        "per_class": _rates(features, "class", list(CLASSES)),
        "n_listed": len(features) + sum(photos.skipped.values()),
        "n_no_face": status["no_face"],
        "n_unreadable": status["unreadable"],
        "n_missing": status["missing"],
        "n_skipped": sum(photos.skipped.values()),
        "skipped_labels": photos.skipped,
        "empty_folders": photos.empty_folders,
        "n_multi_face": int((multi > 0).sum()),
        "mean_confidence": round(float(features.loc[detected, "confidence"].mean()), 6)
        if detected.any()
        else None,
        "layout": photos.layout,
    }
    features_csv.parent.mkdir(parents=True, exist_ok=True)
    features.to_csv(features_csv, index=False)
    metrics_json.parent.mkdir(parents=True, exist_ok=True)
    metrics_json.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main() -> None:
    """DVC entry point: ``python -m stages.prepare_real``."""
    params = load_section(RealParams, "real")
    face_params = load_section(FaceParams, "face")
    metrics = prepare_real(params, face_params)
    print(
        f"prepare_real: {metrics['n_detected']}/{metrics['n_images']} photos with a face "
        f"(detection rate {metrics['detection_rate']:.4f}); missing {metrics['n_missing']}, unreadable "
        f"{metrics['n_unreadable']}, skipped {metrics['n_skipped']} -> {REAL_FEATURES}, {METRICS_FILE}"
    )
    for dataset, values in metrics["per_dataset"].items():
        print(f"  {dataset}: {values['n_detected']}/{values['n_images']}")


if __name__ == "__main__":
    main()
