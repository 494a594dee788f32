"""The predict command on real-dev photos with tiny trained models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim2real_faces import CLASSES

REPO = Path(__file__).resolve().parents[1]
FUSION_COMPONENTS = ("mlp", "mobilenetv2")
FUSION_WEIGHTS = (0.3, 0.7)


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
        x[:24], y[:24], x[24:], y[24:], MlpParams([8], "relu", 0.01, 8, 2, 1, 0.0), seed=0, progress=False
    )
    save_model(mlp, root / "models" / "mlp", {"model": "mlp", "features": list(AU_COLUMNS)})
    cnn = build_cnn("mobilenetv2", 32, weights=None)
    save_model(
        cnn.model,
        root / "models" / "mobilenetv2",
        {"model": "mobilenetv2", "input_size": 32, "weights": None},
    )
    fusion = root / "models" / "fusion"  # as the train stage writes it: copies of both models + weights
    for name in FUSION_COMPONENTS:
        shutil.copytree(root / "models" / name, fusion / name)
    (fusion / "model.json").write_text(
        json.dumps(
            {
                "model": "fusion",
                "components": list(FUSION_COMPONENTS),
                "method": "product",
                "weights": list(FUSION_WEIGHTS),
                "classes": list(CLASSES),
            }
        )
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


def test_parsing_the_arguments_loads_no_tensorflow():
    """``--help`` (and every argument check) runs without importing TensorFlow or Keras."""
    code = (
        "import sys\n"
        "from stages.predict import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--model {mlp,mobilenetv2,vgg16,fusion}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_predict_fusion_combines_both_models_as_the_evaluation_does(workdir, monkeypatch, capsys):
    from sim2real_faces.evaluation import combine_probabilities
    from stages.predict import main

    monkeypatch.chdir(workdir)
    tables = {}
    for model in (*FUSION_COMPONENTS, "fusion"):
        out = workdir / f"fused_{model}.csv"
        assert main(["photos", "blank.png", "--model", model, "--out", str(out)]) == 0
        tables[model] = pd.read_csv(out, keep_default_na=False)
    capsys.readouterr()
    fused = tables["fusion"]
    assert list(fused.columns[: len(tables["mlp"].columns)]) == list(tables["mlp"].columns)
    faces = fused["status"] == "ok"
    assert faces.sum() >= 2 and set(fused.loc[faces, "fusion_inputs"]) == {"all"}
    assert list(fused.loc[~faces, "fusion_inputs"]) == [""] and list(fused.loc[~faces, "predicted"]) == [""]
    columns = [f"p_{c}" for c in CLASSES]
    parts = [tables[m].loc[faces, columns].to_numpy(float) for m in FUSION_COMPONENTS]
    expected = combine_probabilities(parts, FUSION_WEIGHTS, "product")  # from the 4-decimal inputs
    np.testing.assert_allclose(fused.loc[faces, columns].to_numpy(float), expected, atol=2e-3)


def test_predict_fusion_without_face_features_uses_the_cnn_alone(workdir, monkeypatch, capsys):
    """A face whose features are not finite gets MobileNetV2's probabilities, counted on stderr."""
    import sim2real_faces.faces as faces
    from stages.predict import main

    original = faces.face_row

    def no_features(face, index=0):
        row = original(face, index)
        return {k: (np.nan if k.startswith("AU") else v) for k, v in row.items()}

    monkeypatch.chdir(workdir)
    photo = str(sorted(Path("photos").iterdir())[0])
    assert main([photo, "--model", "mobilenetv2", "--out", "cnn_only.csv"]) == 0
    monkeypatch.setattr(faces, "face_row", no_features)
    assert main([photo, "--model", "fusion", "--out", "fused_nan.csv"]) == 0
    err = capsys.readouterr().err
    fused = pd.read_csv("fused_nan.csv", keep_default_na=False)
    cnn = pd.read_csv("cnn_only.csv", keep_default_na=False)
    assert list(fused["fusion_inputs"]) == ["mobilenetv2_only"] and list(fused["reason"]) == [""]
    assert "fusion: 1 face(s) predicted by mobilenetv2 alone" in err
    columns = [f"p_{c}" for c in CLASSES]
    np.testing.assert_allclose(fused[columns].to_numpy(float), cnn[columns].to_numpy(float), atol=1e-4)
    assert list(fused["predicted"]) == list(cnn["predicted"])


def test_fusion_predictor_on_arrays_matches_its_models(workdir):
    """Predictor.predict_components: the fitted weights on both models' own predictions, row by row."""
    from sim2real_faces.evaluation import combine_probabilities
    from sim2real_faces.models import Predictor

    fusion = Predictor(workdir / "models" / "fusion")
    mlp, cnn = fusion.components
    rng = np.random.default_rng(3)
    features = rng.uniform(0, 5, (4, len(mlp.features)))
    features[2, 0] = np.nan
    crops = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    proba, reason, used = fusion.predict_components([features, crops])
    assert list(reason) == [""] * 4 and list(used) == ["all", "all", "mobilenetv2_only", "all"]
    both = [0, 1, 3]
    expected = combine_probabilities(
        [mlp.predict_arrays(features[both]), cnn.predict_arrays(crops[both])], FUSION_WEIGHTS, "product"
    )
    np.testing.assert_allclose(proba[both], expected, atol=1e-6)
    np.testing.assert_allclose(proba[2], cnn.predict_arrays(crops[2:3])[0], atol=1e-6)
    with pytest.raises(TypeError, match="not a fusion"):
        mlp.predict_components([features])
