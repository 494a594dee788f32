"""Stage extract on a tiny synthetic layout made of real-dev photos (embedded backend) and with a
stand-in OpenFace executable (openface backend)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from sim2real_faces.faces import FaceParams, OpenFaceParams
from stages.extract import ExtractError, ExtractParams, run_extract

PHOTOS = [  # (real-dev path, class)
    ("jaffe/angry/KL.AN1.167.jpg", "angry"),
    ("muxspace/angry/Al_Gore_0002.jpg", "angry"),
    ("jaffe/happy/KL.HA1.158.jpg", "happy"),
]


def _layout(tmp_path: Path, real_dev: Path) -> Path:
    """data/synthetic/images-like folder: metadata.csv + images/, three photos and a blank frame."""
    images = tmp_path / "images"
    (images / "images").mkdir(parents=True)
    rows = []
    for i, (rel, cls) in enumerate(PHOTOS):
        if not (real_dev / rel).is_file():
            pytest.fail(f"{real_dev / rel} missing from the real-dev set")
        name = f"{i:05d}.png"
        cv2.imwrite(str(images / "images" / name), cv2.imread(str(real_dev / rel)))
        rows.append({"file": name, "class": cls, "identity": f"id{i % 2}", "intensity": 0.5 + i / 10})
    cv2.imwrite(str(images / "images" / "00003.png"), np.full((120, 160, 3), 90, np.uint8))
    rows.append({"file": "00003.png", "class": "happy", "identity": "id1", "intensity": 0.9})
    pd.DataFrame(rows).to_csv(images / "metadata.csv", index=False)
    return images


def _run(tmp_path, images, params):
    return run_extract(
        params,
        FaceParams(),
        images_dir=images,
        features_csv=tmp_path / "features.csv",
        crops_dir=tmp_path / "crops",
        metrics_json=tmp_path / "synthetic_faces.json",
    )


def test_embedded_extract_writes_features_crops_and_metrics(tmp_path, real_dev):
    images = _layout(tmp_path, real_dev)
    features = _run(tmp_path, images, ExtractParams(backend="embedded", workers=1))
    written = pd.read_csv(tmp_path / "features.csv", keep_default_na=False, na_values=[""])
    assert list(written.columns[:4]) == ["file", "class", "identity", "intensity"]
    assert len(written) == len(features)
    assert {"face", "status", "confidence", "success", "AU01_r", "AU45_r", "pose_Rx", "crop"} <= set(written)
    blank = written[written["file"] == "00003.png"]
    assert len(blank) == 1 and blank["status"].iloc[0] == "no_face" and blank["success"].iloc[0] == 0
    assert blank["crop"].isna().all() or (blank["crop"].fillna("") == "").all()
    detected = written[written["status"] == "ok"]
    assert set(detected["file"]) == {"00000.png", "00001.png", "00002.png"}
    for file in detected["file"].unique():
        crop = tmp_path / "crops" / file
        best = detected[detected["file"] == file].iloc[0]
        assert best["crop"] == str(crop) and cv2.imread(str(crop)).shape == (224, 224, 3)
    metrics = json.loads((tmp_path / "synthetic_faces.json").read_text())
    assert metrics["n_images"] == 4 and metrics["detection_rate"] == 0.75 and metrics["n_no_face"] == 1
    assert metrics["per_class"]["angry"]["detection_rate"] == 1.0
    assert metrics["per_class"]["happy"] == {**metrics["per_class"]["happy"], "n_images": 2, "n_detected": 1}
    height, width = cv2.imread(str(images / "images" / "00000.png")).shape[:2]
    assert metrics["image_size"] == [width, height]

    first = (tmp_path / "features.csv").read_bytes()
    _run(tmp_path, images, ExtractParams(backend="embedded", workers=2))
    assert (tmp_path / "features.csv").read_bytes() == first, (
        "same images and params must give the same bytes"
    )


def test_missing_image_stops_with_the_fix(tmp_path, real_dev):
    images = _layout(tmp_path, real_dev)
    (images / "images" / "00001.png").unlink()
    with pytest.raises(ExtractError, match=r"missing under .*dvc repro downscale"):
        _run(tmp_path, images, ExtractParams(workers=1))


FAKE = """#!{python}
import sys, pathlib, cv2, numpy as np
args = sys.argv[1:]
out = pathlib.Path(args[args.index("-out_dir") + 1])
lines = open({fixture!r}).readlines()
header = lines[0].replace("frame, timestamp", "face")
for i, a in enumerate(args):
    if a == "-f":
        image = pathlib.Path(args[i + 1])
        if cv2.imread(str(image)).std() == 0:
            continue  # flat frame: OpenFace finds no face and writes no CSV
        (out / (image.stem + ".csv")).write_text(header + ",".join(["0"] + lines[1].split(",")[2:]))
        (out / (image.stem + "_aligned")).mkdir()
        aligned = out / (image.stem + "_aligned") / "face_det_000000.bmp"
        cv2.imwrite(str(aligned), np.zeros((112, 112, 3), np.uint8))
"""


def test_openface_backend_feeds_the_same_table(tmp_path, real_dev):
    fixture = real_dev.parent.parent / "fixtures" / "openface" / "FeatureExtraction_sample.csv"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "FaceLandmarkImg"
    exe.write_text(FAKE.format(python=sys.executable, fixture=str(fixture)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    images = _layout(tmp_path, real_dev)
    params = ExtractParams(
        backend="openface", workers=2, openface=OpenFaceParams(runner="binary", binary_dir=str(bindir))
    )
    features = _run(tmp_path, images, params)
    assert features["status"].tolist() == ["ok", "ok", "ok", "no_face"]
    assert features["confidence"].iloc[0] == pytest.approx(0.883333)
    assert "aligned" not in features.columns
    assert cv2.imread(str(tmp_path / "crops" / "00002.png")).shape == (224, 224, 3)
    assert features["crop"].tolist()[:3] == [str(tmp_path / "crops" / f"0000{i}.png") for i in range(3)]
    metrics = json.loads((tmp_path / "synthetic_faces.json").read_text())
    assert metrics["backend"] == "openface" and metrics["detection_rate"] == 0.75


def test_interrupted_extract_keeps_the_previous_outputs(tmp_path, real_dev, monkeypatch):
    """Table and crops are swapped in together when the analysis completes; Ctrl-C changes nothing."""
    from stages import extract as stage

    images = _layout(tmp_path, real_dev)

    def fake_analyse(backend, paths, crop_paths, face_params, value="first", **options):
        for crop in crop_paths:
            Path(crop).parent.mkdir(parents=True, exist_ok=True)
            Path(crop).write_bytes(value.encode())
        return pd.DataFrame(
            {
                "file": paths,
                "face": 0,
                "status": "ok",
                "reason": "",
                "success": 1,
                "crop": map(str, crop_paths),
            }
        )

    monkeypatch.setattr(stage, "analyse_images", fake_analyse)
    features = _run(tmp_path, images, ExtractParams(backend="openface", workers=1))
    assert set(features["crop"]) == {str(tmp_path / "crops" / f"{i:05d}.png") for i in range(4)}
    before = {p: p.read_bytes() for p in [tmp_path / "features.csv", *sorted((tmp_path / "crops").iterdir())]}

    def interrupted(backend, paths, crop_paths, face_params, **options):
        fake_analyse(backend, paths, crop_paths, face_params, value="second")
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "analyse_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, images, ExtractParams(backend="openface", workers=1))
    after = {p: p.read_bytes() for p in [tmp_path / "features.csv", *sorted((tmp_path / "crops").iterdir())]}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary siblings left
