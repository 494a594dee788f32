"""The predict command on real-dev photos with tiny trained models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim2real_faces import CLASSES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, real_dev):
    """params.yaml (face section from conf) + tiny MLP and MobileNetV2 models + a few inputs."""
    from sim2real_faces.faces import AU_COLUMNS
    from sim2real_faces.models import build_cnn, save_model
    from sim2real_faces.training import MlpParams, train_mlp

    root = tmp_path_factory.mktemp("predict")
    face = yaml.safe_load((REPO / "conf" / "face" / "default.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": 1, "face": face}))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, (30, len(AU_COLUMNS)))
    y = [CLASSES[i % 3] for i in range(30)]
    mlp, _ = train_mlp(
        x[:24], y[:24], x[24:], y[24:], MlpParams([8], "relu", 0.01, 8, 2, 1), seed=0, progress=False
    )
    save_model(mlp, root / "models" / "mlp", {"model": "mlp", "features": list(AU_COLUMNS)})
    cnn = build_cnn("mobilenetv2", 32, weights=None)
    save_model(
        cnn.model,
        root / "models" / "mobilenetv2",
        {"model": "mobilenetv2", "input_size": 32, "weights": None},
    )

    manifest = pd.read_csv(real_dev / "manifest.csv")
    photos = root / "photos"
    photos.mkdir()
    for _, row in manifest[manifest["dataset"] == "jaffe"].head(2).iterrows():
        shutil.copy(real_dev / row["path"], photos / Path(row["path"]).name)
    import cv2

    cv2.imwrite(str(root / "blank.png"), np.full((120, 160, 3), 128, np.uint8))  # no face
    (root / "broken.png").write_text("not an image")
    return root


@pytest.mark.parametrize("model", ["mlp", "mobilenetv2"])
def test_predict_photos_folder_and_bad_images(workdir, monkeypatch, capsys, model):
    from stages.predict import main

    monkeypatch.chdir(workdir)
    out = workdir / f"{model}.csv"
    code = main(["photos", "blank.png", "broken.png", "--model", model, "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out)
    err = capsys.readouterr().err
    faces = table[table["status"] == "ok"]
    assert len(faces) >= 2 and set(faces["file"]) == {str(p) for p in sorted(Path("photos").iterdir())}
    proba = faces[[f"p_{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=2e-3)
    assert set(faces["predicted"]) <= set(CLASSES)
    assert list(table.loc[table["file"] == "blank.png", "status"]) == ["no_face"]
    assert list(table.loc[table["file"] == "broken.png", "status"]) == ["unreadable"]
    assert "blank.png: no face found" in err and "broken.png" in err
    assert table.loc[table["status"] != "ok", "p_angry"].isna().all()


def test_predict_prints_csv_and_rejects_missing_paths(workdir, monkeypatch, capsys):
    from stages.predict import main

    monkeypatch.chdir(workdir)
    photo = str(sorted(Path("photos").iterdir())[0])
    assert main([photo]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("file,face,status") and printed[1].startswith(photo)
    assert main(["nowhere.jpg"]) == 2
    assert "nowhere.jpg: no such file or folder" in capsys.readouterr().err
    assert main([photo, "--models-dir", "missing"]) == 2
    assert "train the model first" in capsys.readouterr().err
