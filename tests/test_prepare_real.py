"""Stage prepare_real on small temporary photo folders (manifest and label-folder layouts, bad input)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from sim2real_faces.faces import AU_COLUMNS, FaceParams, read_image
from stages import prepare_real as stage
from stages.prepare_real import RealParams, RealPhotosError, list_photos, prepare_real

FACE = FaceParams(crop_size=64)


@pytest.fixture(scope="module")
def subset(real_dev: Path) -> pd.DataFrame:
    """12 real-dev manifest rows: 4 per class, 2 CK+ (48x48), 4 JAFFE and 6 muxspace per class mix."""
    manifest = pd.read_csv(real_dev / "manifest.csv", dtype=str, keep_default_na=False)
    picks = []
    for cls in ("angry", "crying", "happy"):
        for dataset, n in (("ckplus48", 1), ("jaffe", 1), ("muxspace", 2)):
            rows = manifest[(manifest["class"] == cls) & (manifest["dataset"] == dataset)].sort_values("path")
            picks.append(rows.iloc[np.linspace(0, len(rows) - 1, n).round().astype(int)])
    return pd.concat(picks).reset_index(drop=True)


def _copy_with_manifest(
    subset: pd.DataFrame, real_dev: Path, folder: Path, rows: pd.DataFrame | None = None
) -> Path:
    rows = subset if rows is None else rows
    for path in subset["path"]:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_dev / path, folder / path)
    rows.to_csv(folder / "manifest.csv", index=False)
    return folder


def _run(tmp_path: Path, photo_dir: Path, **real: object) -> tuple[dict, pd.DataFrame]:
    out = tmp_path / "out"
    params = RealParams(photo_dir=photo_dir, workers=1, **real)
    metrics = prepare_real(params, FACE, out / "crops", out / "features.csv", out / "real_faces.json")
    assert json.loads((out / "real_faces.json").read_text()) == metrics
    return metrics, pd.read_csv(out / "features.csv", keep_default_na=False, na_values=[""])


def test_manifest_layout(tmp_path, real_dev, subset):
    photos = _copy_with_manifest(subset, real_dev, tmp_path / "photos")
    metrics, table = _run(tmp_path, photos)

    assert metrics["detection_rate"] == 1.0 and metrics["n_images"] == 12 and metrics["n_detected"] == 12
    assert list(metrics)[:2] == ["detection_rate", "n_images"]
    assert metrics["per_dataset"]["ckplus48"] == {"n_images": 3, "n_detected": 3, "detection_rate": 1.0}
    assert metrics["per_dataset"]["muxspace"]["n_images"] == 6
    assert {c: v["n_images"] for c, v in metrics["per_class"].items()} == {
        "angry": 4,
        "crying": 4,
        "happy": 4,
    }
    assert metrics["n_missing"] == metrics["n_unreadable"] == metrics["n_skipped"] == 0
    assert metrics["layout"] == "manifest"
    assert metrics["n_ignored"] == 0 and metrics["ignored"] == {} and metrics["n_multi_frame"] == 0

    assert list(table.columns[:7]) == [
        "path",
        "class",
        "source_label",
        "identity",
        "dataset",
        "status",
        "reason",
    ]
    assert list(table["path"]) == list(subset["path"])
    assert list(table["class"]) == list(
        subset["class"]
    )  # sadness -> crying, SA -> crying, anger -> angry, ...
    assert list(table["identity"]) == list(subset["identity"])
    assert (table["status"] == "ok").all() and (table["success"] == 1).all() and (table["face"] == 0).all()
    assert table[AU_COLUMNS].notna().all().all()
    for crop, path in zip(table["crop"], table["path"], strict=True):
        assert crop == str(tmp_path / "out" / "crops" / Path(path).with_suffix(".png"))
        assert read_image(crop).shape == (64, 64, 3)
    happy = table[table["class"] == "happy"]["AU12_r"].mean()
    assert happy > table[table["class"] == "angry"]["AU12_r"].mean()


def test_same_params_same_bytes(tmp_path, real_dev, subset):
    photos = _copy_with_manifest(subset.iloc[:3], real_dev, tmp_path / "photos")
    _run(tmp_path / "a", photos)
    _run(tmp_path / "b", photos)
    first = (tmp_path / "a" / "out" / "features.csv").read_text()
    second = (tmp_path / "b" / "out" / "features.csv").read_text()
    assert first.replace(str(tmp_path / "a"), "") == second.replace(str(tmp_path / "b"), "")
    for path in subset["path"].iloc[:3]:
        crop = Path(path).with_suffix(".png")
        a, b = (tmp_path / x / "out" / "crops" / crop for x in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()


def test_missing_file_is_counted_and_kept(tmp_path, real_dev, subset):
    rows = pd.concat([subset.iloc[:2], subset.iloc[:1].assign(path="jaffe/angry/not_there.jpg")])
    photos = _copy_with_manifest(subset.iloc[:2], real_dev, tmp_path / "photos", rows)
    metrics, table = _run(tmp_path, photos)
    assert metrics["n_missing"] == 1 and metrics["n_images"] == 2 and metrics["detection_rate"] == 1.0
    missing = table[table["path"] == "jaffe/angry/not_there.jpg"].iloc[0]
    assert missing["status"] == "missing" and missing["success"] == 0 and "not_there.jpg" in missing["reason"]
    assert np.isnan(missing["AU12_r"])


def test_unknown_label_is_an_error_naming_row_and_param(tmp_path, real_dev, subset):
    rows = subset.iloc[:3].copy()
    rows.loc[rows.index[1], "source_label"] = "surprise"
    photos = _copy_with_manifest(subset.iloc[:3], real_dev, tmp_path / "photos", rows)
    with pytest.raises(RealPhotosError, match=r"real\.class_map") as caught:
        _run(tmp_path, photos)
    message = str(caught.value)
    assert "'surprise'" in message and "line 3" in message and rows["path"].iloc[1] in message


def test_skip_label_is_counted(tmp_path, real_dev, subset):
    rows = subset.iloc[:3].copy()
    rows.loc[rows.index[1], "source_label"] = "surprise"
    photos = _copy_with_manifest(subset.iloc[:3], real_dev, tmp_path / "photos", rows)
    class_map = {**RealParams().class_map, "surprise": "skip"}
    metrics, table = _run(tmp_path, photos, class_map=class_map)
    assert metrics["n_skipped"] == 1 and metrics["skipped_labels"] == {"surprise": 1}
    assert metrics["n_listed"] == 3 and metrics["n_images"] == 2 and len(table) == 2


def test_class_map_values_are_checked():
    with pytest.raises(RealPhotosError, match=r"real\.class_map"):
        RealParams(class_map={"sad": "sadness"})


def test_folder_layout_with_empty_and_unreadable(tmp_path, real_dev, subset):
    photos = tmp_path / "my_photos"
    for label, cls in (("angry", "angry"), ("sad", "crying")):
        (photos / label).mkdir(parents=True)
        for path in subset[subset["class"] == cls]["path"].iloc[:2]:
            shutil.copyfile(real_dev / path, photos / label / Path(path).name)
    (photos / "happy").mkdir()  # an empty class folder
    (photos / "sad" / "broken.jpg").write_bytes(b"not really a jpeg")
    (photos / "sad" / "notes.txt").write_text("ignored: not an image suffix")
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(photos / "angry" / "wall.png")

    metrics, table = _run(tmp_path, photos)
    assert metrics["layout"] == "folders" and metrics["empty_folders"] == ["happy"]
    assert metrics["per_class"]["happy"] == {"n_images": 0, "n_detected": 0, "detection_rate": None}
    assert metrics["n_unreadable"] == 1 and metrics["n_no_face"] == 1
    assert metrics["ignored"] == {"unsupported_format": 1} and metrics["n_ignored"] == 1  # notes.txt
    assert metrics["ignored_examples"] == {"unsupported_format": ["sad/notes.txt"]}
    assert metrics["n_images"] == 5 and metrics["n_detected"] == 4 and metrics["detection_rate"] == 0.8
    assert set(table["dataset"]) == {"my_photos"}
    assert set(table.loc[table["source_label"] == "sad", "class"]) == {"crying"}
    broken = table[table["path"] == "sad/broken.jpg"].iloc[0]
    assert broken["status"] == "unreadable" and "broken.jpg" in broken["reason"]
    wall = table[table["path"] == "angry/wall.png"].iloc[0]
    assert wall["status"] == "no_face" and wall["success"] == 0 and wall["confidence"] == 0.0
    assert wall["identity"] == "wall" and pd.isna(wall["crop"])


def test_missing_or_empty_folder_says_what_to_put_there(tmp_path):
    for folder in (tmp_path / "nothing_here", tmp_path / "empty"):
        if folder.name == "empty":
            (folder / "angry").mkdir(parents=True)
        with pytest.raises(RealPhotosError, match=r"manifest\.csv") as caught:
            list_photos(folder, RealParams().class_map)
        assert str(folder) in str(caught.value) and "real.photo_dir" in str(caught.value)


def test_loose_photos_without_manifest_are_an_error(tmp_path, real_dev, subset):
    (tmp_path / "angry").mkdir()
    shutil.copyfile(real_dev / subset["path"].iloc[0], tmp_path / "face.png")
    with pytest.raises(RealPhotosError, match="outside label sub-folders"):
        list_photos(tmp_path, RealParams().class_map)


def test_manifest_without_label_column_is_an_error(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,identity\na.png,x\n")
    with pytest.raises(RealPhotosError, match="label column"):
        list_photos(tmp_path, RealParams().class_map)


def test_main_reads_params_yaml(tmp_path, real_dev, subset, monkeypatch, capsys):
    photos = _copy_with_manifest(subset.iloc[[0, 4]], real_dev, tmp_path / "photos", subset.iloc[[0, 4]])
    face = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(FACE).items()}
    real = {"photo_dir": str(photos), "class_map": RealParams().class_map, "workers": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"seed": 1, "face": face, "real": real}))
    monkeypatch.chdir(tmp_path)
    stage.main()
    metrics = json.loads((tmp_path / "metrics" / "real_faces.json").read_text())
    assert metrics["n_detected"] == 2
    assert (tmp_path / "data" / "real" / "features.csv").is_file()
    assert len(list((tmp_path / "data" / "real" / "crops").rglob("*.png"))) == 2
    assert "2/2 photos with a face" in capsys.readouterr().out
