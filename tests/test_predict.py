"""The predict command on real-dev photos with tiny trained models."""

from __future__ import annotations

import os
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
    face = yaml.safe_load((REPO / "conf" / "face.yaml").read_text())
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
    from sim2real_faces.cli import call
    from stages.predict import main

    monkeypatch.chdir(workdir)
    photo = str(sorted(Path("photos").iterdir())[0])
    assert call(main, [photo]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("file,face,status,reason") and printed[1].startswith(photo)
    assert call(main, ["nowhere.jpg"]) == 2
    err = capsys.readouterr().err
    assert "nowhere.jpg: no such file or folder" in err and "Traceback" not in err
    assert call(main, [photo, "--models-dir", "missing"]) == 2
    assert "train the model first" in capsys.readouterr().err


def test_predict_reports_every_folder_entry(workdir, monkeypatch, capsys):
    """Finding 3: .gif files, dangling and looping links in a folder are rows, not silent losses."""
    from PIL import Image

    from sim2real_faces.cli import call
    from stages.predict import main

    monkeypatch.chdir(workdir)
    folder = Path("mixed")
    folder.mkdir()
    shutil.copy(sorted(Path("photos").iterdir())[0], folder / "face.jpg")
    frames = [Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    (folder / "dangling.jpg").symlink_to("not_there.jpg")
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "notes.txt").write_text("not an image")
    out = Path("mixed.csv")
    assert call(main, ["mixed", "mixed/../mixed/face.jpg", "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    status = dict(zip(table["file"], table["status"], strict=False))
    names = ("face.jpg", "anim.gif", "dangling.jpg", "loop.jpg", "notes.txt")
    assert set(status) == {str(folder / n) for n in names} | {"mixed/../mixed/face.jpg"}
    assert status["mixed/../mixed/face.jpg"] == "skipped"  # the same file twice is analysed once
    reason = dict(zip(table["file"], table["reason"], strict=False))
    assert reason["mixed/dangling.jpg"] == "dangling_link" and reason["mixed/loop.jpg"] == "link_loop"
    assert reason["mixed/notes.txt"] == "unsupported_format" and status["mixed/notes.txt"] == "skipped"
    assert status["mixed/anim.gif"] == "no_face"
    gif = table[table["file"] == "mixed/anim.gif"].iloc[0]
    assert "only the first frame is read" in gif["note"]
    assert "4 entr(ies) skipped" in capsys.readouterr().err


def test_predict_checks_out_before_the_work(workdir, monkeypatch, capsys, tmp_path):
    """Finding 6: --out pointing at a folder (or an unwritable one) fails at once, not after the analysis."""
    import time

    from sim2real_faces.cli import call
    from stages.predict import main

    monkeypatch.chdir(workdir)
    start = time.perf_counter()
    assert call(main, ["photos", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert call(main, ["photos", "--out", "blank.png/p.csv"]) == 2
    assert "blank.png is a file" in capsys.readouterr().err
    assert time.perf_counter() - start < 5  # no face analysis ran
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        assert call(main, ["photos", "--out", str(locked / "p.csv")]) == 2
        assert "not writable" in capsys.readouterr().err
