"""Stage prepare_real: a folder of labelled real photos -> aligned face crops + one feature table.

Input (param ``real.photo_dir``, default ``data/real_photos``), either layout:

- ``manifest.csv`` with a ``path`` column (relative to the folder) and a label column (``source_label``,
  else ``class``); optional ``identity`` (default: file stem) and ``dataset`` (default: folder name).
  This is the layout of the real-dev set that `make setup` links to data/real_photos.
- no manifest: one sub-folder per label, ``<label>/<file>`` (files found recursively inside it);
  identity = file stem, dataset = the photo folder's name.

Labels become classes through ``real.class_map`` (e.g. sad -> crying). A label mapped to ``skip`` leaves
its photos out on purpose (counted as ``n_skipped``); a label not in the map stops the stage with an
error naming the file and the param. A manifest row whose file does not exist is kept with status
``missing`` and counted; an unreadable file gets status ``unreadable`` (the reason is in the table);
an empty label folder is listed under ``empty_folders``. None of these change ``detection_rate``, which
is detected / readable images.

Paths stay inside the folder: a manifest row with an absolute path or one that leaves the folder
(``../x.jpg``) is an error naming the row. Paths are normalised (``./a.jpg`` = ``a.jpg``,
``happy/../happy/h0.jpg`` = ``happy/h0.jpg``, ``\\`` = ``/``) before anything else; two rows (or two
files) naming the same photo, also through a symbolic link, are an error. A symbolic link inside the
folder may point anywhere, but outputs are always named from the row's place inside the folder.

Every entry below the folder is accounted for: a photo that is listed, or a count per reason in
``ignored`` (see ``sim2real_faces.faces.SKIP_REASONS``; ``not_in_manifest`` for an image file that no
manifest row names, ``not_in_label_folder`` for a non-image file beside the label folders), with
examples in ``ignored_examples``. A file with several frames (animated GIF, multi-page TIFF) is read
at its first frame; ``n_multi_frame`` counts them and the row's ``note`` says so.

Outputs: ``data/real/crops/<path>.png`` (aligned crop of the most confident face),
``data/real/features.csv`` (one row per listed photo: path, class, source_label, identity, dataset,
status, reason, face columns, crop, note) and ``metrics/real_faces.json``. They are written into
temporary siblings and moved into place only when the stage succeeds, with a completion marker
(``data/real/crops/complete.json``, see ``sim2real_faces.io``) that evaluation checks: an interrupted
run leaves the previous outputs as they were.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces import io as atomic
from sim2real_faces.errors import ProjectError
from sim2real_faces.faces import (
    FEATURE_COLUMNS,
    FaceParams,
    analyse_images,
    check_ready,
    crop_path_for,
    scan_folder,
)
from sim2real_faces.params import Count, load_section
from sim2real_faces.paths import METRICS, REAL_CROPS, REAL_FEATURES

SKIP = "skip"
MANIFEST = "manifest.csv"
METRICS_FILE = METRICS / "real_faces.json"
META_COLUMNS = ["path", "class", "source_label", "identity", "dataset"]
N_EXAMPLES = 5  # paths listed per reason in metrics' ignored_examples
_OVERRIDE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # labels Hydra accepts as an override key


def _default_class_map() -> dict[str, str]:
    return {
        "angry": "angry", "anger": "angry", "AN": "angry",
        "crying": "crying", "sad": "crying", "sadness": "crying", "SA": "crying",
        "happy": "happy", "happiness": "happy", "HA": "happy",
    }  # fmt: skip


class RealPhotosError(ProjectError, ValueError):
    """The real-photo folder is missing, empty or inconsistent; the message says what to fix."""


@dataclass(frozen=True)
class RealParams:
    """Params section ``real``."""

    photo_dir: Path = Path("data/real_photos")
    """Folder of labelled photos (manifest.csv or <label>/ sub-folders)."""
    class_map: dict[str, str] = field(default_factory=_default_class_map)
    """Source label -> class (one of sim2real_faces.CLASSES) or "skip"."""
    workers: Count = 2
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


def _what_to_put(photo_dir: Path) -> str:
    return (
        f"Put labelled face photos in {photo_dir}: either a {MANIFEST} (columns path, class or source_label, "
        f"optional identity, dataset) next to the files it lists, or one sub-folder per label "
        f"({', '.join(CLASSES)} or any label in params real.class_map) holding the photos. "
        f"Or use another folder: dvc exp run -S real.photo_dir=/path/to/photos "
        f"(or link it: ln -sfn /path/to/photos data/real_photos)."
    )


def _skip_fix(label: str) -> str:
    """A command that really maps ``label`` to skip (Hydra needs ``++`` to add a key)."""
    if _OVERRIDE_KEY.fullmatch(label):
        return f"dvc exp run -S '++real.class_map.{label}={SKIP}' (or add it to conf/real.yaml)"
    return f"add {label!r}: {SKIP} under class_map in conf/real.yaml, then `make params`"


@dataclass(frozen=True)
class PhotoList:
    """The photos a folder holds, before face analysis."""

    table: pd.DataFrame
    """META_COLUMNS + ``file`` (path to read) + ``exists``; skipped labels are already removed."""
    layout: str
    skipped: dict[str, int]
    empty_folders: list[str]
    ignored: dict[str, list[str]] = field(default_factory=dict)
    """Reason -> paths (inside the folder) of entries that are not listed photos."""


def list_photos(photo_dir: Path, class_map: dict[str, str]) -> PhotoList:
    """Read ``photo_dir``'s manifest (or its label sub-folders) into a table of labelled photos."""
    photo_dir = Path(photo_dir)
    if photo_dir.is_file():
        raise RealPhotosError(
            f"Real-photo folder {photo_dir} is a file, not a folder (params real.photo_dir). "
            f"{_what_to_put(photo_dir)}"
        )
    if not photo_dir.is_dir():
        raise RealPhotosError(f"Real-photo folder {photo_dir} does not exist. {_what_to_put(photo_dir)}")
    manifest = photo_dir / MANIFEST
    if manifest.is_file():
        table = read_manifest(manifest, photo_dir)
        empty, layout = [], "manifest"
        ignored = _not_in_manifest(photo_dir, set(table["path"]))
    else:
        table, empty, ignored = _from_folders(photo_dir)
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
            f"{_skip_fix(first)}."
        )
    _check_duplicates(table, photo_dir)
    table["class"] = table["source_label"].map(class_map)
    skipped = dict(sorted(Counter(table.loc[table["class"] == SKIP, "source_label"]).items()))
    table = table[table["class"] != SKIP].reset_index(drop=True)
    table["exists"] = [Path(f).is_file() for f in table["file"]]
    return PhotoList(table.drop(columns=["where"]), layout, skipped, empty, ignored)


def confine(raw: str, photo_dir: Path, where: str) -> str:
    """``raw`` as a normalised POSIX path inside ``photo_dir``; absolute paths and ``..`` escapes are errors.

    Backslashes count as separators (manifests written on Windows). The check is on the path as written:
    a symbolic link inside the folder may lead elsewhere, the outputs are still named from this path.
    """
    text = raw.strip().replace("\\", "/")
    if not text:
        raise RealPhotosError(f"{where}: empty path. Give every row the photo's path inside {photo_dir}.")
    if text.startswith("/") or PureWindowsPath(text).drive:
        raise RealPhotosError(
            f"{where}: {raw!r} is an absolute path. Paths in {MANIFEST} are relative to the folder "
            f"that holds it ({photo_dir}): write the photo's place inside it (e.g. 'happy/face.jpg'), "
            f"or copy or link the photo into the folder first."
        )
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise RealPhotosError(
            f"{where}: {raw!r} leaves the photo folder {photo_dir}. Only photos inside it can be "
            f"listed: move or link the photo into the folder (a symbolic link inside it may point "
            f"anywhere) and list that."
        )
    if normal == ".":
        raise RealPhotosError(f"{where}: {raw!r} names the folder itself, not a photo.")
    return normal


def read_manifest(manifest: Path, photo_dir: Path | None = None) -> pd.DataFrame:
    """Read ``manifest`` (UTF-8 CSV) into path/source_label/identity/dataset/file/where columns.

    Every problem is a :class:`RealPhotosError` naming the file, the line and the fix: an empty file,
    bytes that are not UTF-8, a row with more or fewer fields than the header, a missing column, an
    empty path or label, a path outside the folder, two rows naming the same photo.
    """
    photo_dir = manifest.parent if photo_dir is None else photo_dir
    try:
        data = manifest.read_bytes()
    except OSError as error:
        raise RealPhotosError(f"{manifest} cannot be read ({error.strerror or error}).") from None
    if not data.strip():
        raise RealPhotosError(
            f"{manifest} is empty. It needs a header line such as 'path,class' and one row per photo; "
            f"or delete it to use one sub-folder per label."
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RealPhotosError(
            f"{manifest} is saved as UTF-16 (spreadsheet 'Unicode text'). Save it as a UTF-8 CSV, e.g. "
            f"`iconv -f utf-16 -t utf-8 {manifest} > {manifest}.utf8 && mv {manifest}.utf8 {manifest}`."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RealPhotosError(
            f"{manifest}, line {line}: byte 0x{data[error.start]:02x} is not UTF-8 (the file was saved in "
            f"another encoding, e.g. Latin-1). Save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {manifest} "
            f"> {manifest}.utf8 && mv {manifest}.utf8 {manifest}`."
        ) from None
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise RealPhotosError(
            f"{manifest}, line {line}: holds a NUL byte, so it is not a text CSV file (binary data, or "
            f"saved as UTF-16?). Save it as a UTF-8 CSV."
        )
    header, rows = _csv_rows(text, manifest)
    if "path" not in header or not ({"source_label", "class"} & set(header)):
        raise RealPhotosError(
            f"{manifest} needs a 'path' column and a label column ('source_label' or 'class'); it has "
            f"{header}. Fix the header (line 1) or remove the file to use class sub-folders."
            + (" Its values look separated by ';': save it with commas." if ";" in "".join(header) else "")
        )
    label_column = "source_label" if "source_label" in header else "class"
    column = {name: header.index(name) for name in header}
    records = []
    for line, fields in rows:
        where = f"{manifest}, line {line}"
        path = confine(fields[column["path"]], photo_dir, where)
        label = fields[column[label_column]].strip()
        if not label:
            raise RealPhotosError(
                f"{where}: empty {label_column} for {path}. Write the photo's label there (one of "
                f"{list(CLASSES)} or a label in params real.class_map), or delete the row to leave it out."
            )
        identity = fields[column["identity"]].strip() if "identity" in column else ""
        dataset = fields[column["dataset"]].strip() if "dataset" in column else ""
        records.append(
            {
                "path": path,
                "source_label": label,
                "identity": identity or Path(path).stem,
                "dataset": dataset or photo_dir.name,
                "file": str(photo_dir / path),
                "where": f"{where}, path {fields[column['path']].strip()}",
            }
        )
    columns = ["path", "source_label", "identity", "dataset", "file", "where"]
    return pd.DataFrame(records, columns=columns)


def _csv_rows(text: str, manifest: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) with ragged rows, NUL bytes and bad quoting as errors."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue  # a blank line
            if header is None:
                header = [f.strip() for f in fields]
                repeated = sorted(name for name, n in Counter(header).items() if n > 1)
                if repeated or "" in header:
                    raise RealPhotosError(
                        f"{manifest}, line {line}: the header {header} has "
                        f"{'repeated columns ' + str(repeated) if repeated else 'an empty column name'}; "
                        f"give every column one distinct name."
                    )
                continue
            while len(fields) > len(header) and not fields[-1].strip():
                fields = fields[:-1]  # trailing empty fields, as spreadsheets write them
            if len(fields) != len(header):
                raise RealPhotosError(
                    f"{manifest}, line {line}: {len(fields)} field(s), but the header (line 1) has "
                    f"{len(header)} ({', '.join(header)}). Fix that row; a value that contains a comma must "
                    f'be quoted ("a, b.jpg").'
                )
            rows.append((line, fields))
    except csv.Error as error:
        raise RealPhotosError(
            f"{manifest}, line {reader.line_num}: not valid CSV ({error}). Fix that line."
        ) from None
    if header is None:
        raise RealPhotosError(f"{manifest} holds only blank lines; it needs a header such as 'path,class'.")
    return header, rows


def _check_duplicates(table: pd.DataFrame, photo_dir: Path) -> None:
    """Two rows naming one photo (same normalised path, or one file reached through a link) are an error."""
    seen: dict[str, str] = {}
    for path, where in zip(table["path"], table["where"], strict=True):
        if path in seen:
            raise RealPhotosError(
                f"{photo_dir}: {seen[path]} and {where} name the same photo ({path} after normalising). "
                f"List each photo once: delete one of the two rows."
            )
        seen[path] = where
    target: dict[str, str] = {}
    for file, where in zip(table["file"], table["where"], strict=True):
        if not os.path.isfile(file):
            continue
        real = os.path.realpath(file)
        if real in target:
            raise RealPhotosError(
                f"{photo_dir}: {target[real]} and {where} are the same file ({real}, reached through a "
                f"symbolic link). List each photo once: delete one of the rows or links."
            )
        target[real] = where


def _ignored(entries: list[tuple[str, str]]) -> dict[str, list[str]]:
    ignored: dict[str, list[str]] = {}
    for rel, reason in entries:
        ignored.setdefault(reason, []).append(rel)
    return dict(sorted(ignored.items()))


def _not_in_manifest(photo_dir: Path, listed: set[str]) -> dict[str, list[str]]:
    """Entries of a manifest folder that no row names, by reason."""
    entries = []
    for entry in scan_folder(photo_dir):
        if entry.rel == MANIFEST or entry.rel in listed:
            continue
        entries.append((entry.rel, entry.reason or "not_in_manifest"))
    return _ignored(entries)


def _from_folders(photo_dir: Path) -> tuple[pd.DataFrame, list[str], dict[str, list[str]]]:
    entries = scan_folder(photo_dir)
    loose = [e.rel for e in entries if "/" not in e.rel and not e.reason]
    if loose:
        raise RealPhotosError(
            f"{photo_dir} has photos outside label sub-folders ({', '.join(loose[:3])}"
            f"{', ..' if len(loose) > 3 else ''}) and no {MANIFEST}: their label is unknown. "
            f"Move them into <label>/ sub-folders or list them in a {MANIFEST}."
        )
    rows, skipped = [], []
    labels: dict[str, int] = {}
    for entry in entries:
        label, _, rest = entry.rel.partition("/")
        if not rest:  # an entry beside the label folders (not a folder itself: scan lists none)
            skipped.append(
                (entry.rel, entry.reason if entry.reason != "unsupported_format" else "not_in_label_folder")
            )
            continue
        labels.setdefault(label, 0)
        if entry.reason:
            skipped.append((entry.rel, entry.reason))
            continue
        labels[label] += 1
        rows.append(
            {
                "path": entry.rel,
                "source_label": label,
                "identity": Path(rest).stem,
                "dataset": photo_dir.name,
                "file": str(entry.path),
                "where": str(entry.path),
            }
        )
    folders = sorted(p.name for p in photo_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    empty = [name for name in folders if not labels.get(name)]
    if empty:
        print(f"prepare_real: warning: empty label folder(s) in {photo_dir}: {', '.join(empty)}")
    columns = ["path", "source_label", "identity", "dataset", "file", "where"]
    return pd.DataFrame(rows, columns=columns), empty, _ignored(skipped)


def _crop_paths(paths: pd.Series, crops_dir: Path) -> list[Path]:
    crops = [crop_path_for(crops_dir, p) for p in paths]
    seen: dict[Path, str] = {}
    for crop, path in zip(crops, paths, strict=True):
        if crop in seen:
            raise RealPhotosError(
                f"{seen[crop]} and {path} are different photos that would share the crop {crop} (same name, "
                f"different suffix); rename one of the two files (and its manifest row)."
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
    """Run the stage: analyse every listed photo, write crops, the feature table and the metrics.

    Outputs appear only when the analysis is complete (see the module docstring); until then the
    previous ones stay untouched.
    """
    photos = list_photos(params.photo_dir, params.class_map)
    table = photos.table
    crops = _crop_paths(table["path"], crops_dir)
    check_ready("embedded", face_params)  # a missing or damaged model file stops here, before any output
    present = table["exists"].to_numpy()
    files = list(table.loc[present, "file"])
    with atomic.table_with_crops(features_csv, crops_dir) as (temp_csv, temp_crops):
        temp_of = {str(c): str(temp_crops / c.relative_to(crops_dir)) for c in crops}
        final_of = {t: c for c, t in temp_of.items()}
        analysed = analyse_images(
            "embedded",
            files,
            [temp_of[str(c)] for c, p in zip(crops, present, strict=True) if p],
            face_params,
            workers=params.workers,
            desc="real faces",
        )
        analysed["crop"] = [final_of.get(c, c) for c in analysed["crop"]]
        features, metrics = _features_and_metrics(table, analysed, photos, params.photo_dir)
        features.to_csv(temp_csv, index=False)
    atomic.write_json(metrics_json, metrics)
    return metrics


def _features_and_metrics(
    table: pd.DataFrame, analysed: pd.DataFrame, photos: PhotoList, photo_dir: Path
) -> tuple[pd.DataFrame, dict[str, Any]]:
    multi = analysed.groupby("file", sort=False)["face"].max()
    first = analysed[analysed["face"] == 0].set_index("file")
    face_columns = ["status", "reason", "face", "success", *FEATURE_COLUMNS, "crop", "note"]
    rows = []
    for record in table.to_dict("records"):
        if record["exists"]:
            values = first.loc[record["file"], face_columns].to_dict()
        else:
            values = {c: float("nan") for c in FEATURE_COLUMNS}
            what = "is a folder, not a photo" if os.path.isdir(record["file"]) else "does not exist"
            reason = f"{record['file']} {what}; fix the manifest row or restore the file."
            values.update(status="missing", reason=reason, face=0, success=0, crop="", note="")
        rows.append({**{c: record[c] for c in META_COLUMNS}, **values})
    features = pd.DataFrame(rows, columns=[*META_COLUMNS, *face_columns])
    features = features.astype({"face": "int64", "success": "int64"})

    status = Counter(features["status"])
    n_images = status["ok"] + status["no_face"]
    if n_images == 0:
        reasons = "; ".join(features["reason"].head(3))
        raise RealPhotosError(
            f"None of the {len(features)} photos listed in {photo_dir} could be read ({reasons}). "
            f"{_what_to_put(photo_dir)}"
        )
    detected = features["status"] == "ok"
    ignored = photos.ignored
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
        "n_ignored": sum(len(v) for v in ignored.values()),
        "ignored": {reason: len(paths) for reason, paths in ignored.items()},
        "ignored_examples": {reason: paths[:N_EXAMPLES] for reason, paths in ignored.items()},
        "n_multi_frame": int((features["note"].fillna("") != "").sum()),
        "n_multi_face": int((multi > 0).sum()),
        "mean_confidence": round(float(features.loc[detected, "confidence"].mean()), 6)
        if detected.any()
        else None,
        "layout": photos.layout,
    }
    return features, metrics


def main() -> None:
    """DVC entry point: ``python -m stages.prepare_real``."""
    params = load_section(RealParams, "real")
    face_params = load_section(FaceParams, "face")
    metrics = prepare_real(params, face_params)
    print(
        f"prepare_real: {metrics['n_detected']}/{metrics['n_images']} photos with a face "
        f"(detection rate {metrics['detection_rate']:.4f}); missing {metrics['n_missing']}, unreadable "
        f"{metrics['n_unreadable']}, skipped {metrics['n_skipped']}, not photos {metrics['n_ignored']} "
        f"{metrics['ignored'] or ''}-> {REAL_FEATURES}, {METRICS_FILE}"
    )
    if metrics["n_multi_frame"]:
        print(f"  {metrics['n_multi_frame']} file(s) with several frames: only the first frame is read")
    for dataset, values in metrics["per_dataset"].items():
        print(f"  {dataset}: {values['n_detected']}/{values['n_images']}")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
