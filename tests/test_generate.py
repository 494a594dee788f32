"""Stages generate and downscale on a tiny profile: layout, determinism across worker counts, every class,
face detection floor and expression -> action unit checks through face analysis.

Rendering runs in child processes (``python -m stages.generate``); face analysis (MediaPipe) runs here,
in the pytest process, which never creates a GL context.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim2real_faces.compose import composed_section

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("angry", "crying", "happy")
N_PER_CLASS = 8


def _params(workers: int, n_per_class: int) -> dict:
    return {
        "seed": 42,
        # flat albedos and painted brows, as these checks were set up (the default profile is textured)
        "humans": {"identity_set": "study6", "eyebrow_mode": "painted", "textures": None},
        # strong, frontal expressions: this profile measures what the presets do to the face
        "expressions": {**composed_section("expressions", ("expressions=presets",)), "intensity": [0.7, 1.0]},
        "generate": {
            "n_per_class": n_per_class,
            "width": 640,
            "height": 451,
            "workers": workers,
            "head": {"pitch_deg": [0.0, 0.0], "yaw_deg": [0.0, 0.0]},
        },
        "face": {},
        "downscale": {
            "width": 320,
            "height": 226,
            "workers": 1,
            "resolution_study": {"n_frames": 4, "sizes": [[640, 451], [320, 226], [128, 90]]},
            "contact_sheet": {"columns": 3, "thumb_width": 120},
        },
    }


def _run_stage(folder: Path, stage: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"stages.{stage} failed:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generate")
    (folder / "params.yaml").write_text(yaml.safe_dump(_params(workers=2, n_per_class=N_PER_CLASS)))
    _run_stage(folder, "generate")
    return folder


@pytest.fixture(scope="module")
def faces(tiny_run: Path) -> pd.DataFrame:
    from sim2real_faces.faces import FaceParams, analyze_files

    meta = pd.read_csv(tiny_run / "data/synthetic/raw/metadata.csv")
    paths = [str(tiny_run / "data/synthetic/raw/images" / f) for f in meta["file"]]
    table = analyze_files(paths, FaceParams(), workers=1)
    best = table.sort_values(["file", "face"]).groupby("file", sort=False).first().reset_index()
    best["file"] = [Path(f).name for f in best["file"]]
    return meta.merge(best, on="file", validate="one_to_one")


def test_layout_and_metadata(tiny_run: Path):
    raw = tiny_run / "data/synthetic/raw"
    meta = pd.read_csv(raw / "metadata.csv")
    assert len(meta) == 3 * N_PER_CLASS and meta["file"].is_unique
    assert sorted(p.name for p in (raw / "images").glob("*.png")) == sorted(meta["file"])
    for column in (
        "file", "class", "identity", "ethnicity", "gender", "age", "expression", "intensity", "tears",
        "place_x", "view_height_dm", "head_pitch_deg", "light_left_intensity", "light_right_b",
        "bg_objects", "post_jpeg_quality", "seed",
    ):  # fmt: skip
        assert column in meta.columns, column
    assert meta["class"].value_counts().to_dict() == dict.fromkeys(CLASSES, N_PER_CLASS)
    # every identity appears in every class (8 images per class over 6 identities)
    assert meta.groupby("identity")["class"].nunique().eq(3).all() and meta["identity"].nunique() == 6
    assert meta["seed"].is_unique
    assert meta["intensity"].between(0.7, 1.0).all()
    assert meta["head_pitch_deg"].eq(0).all()
    identities = json.loads((raw / "identities.json").read_text())
    assert sorted(i["name"] for i in identities) == sorted(meta["identity"].unique())
    import cv2

    image = cv2.imread(str(raw / "images" / meta["file"][0]), cv2.IMREAD_UNCHANGED)
    assert image.shape == (451, 640, 3)  # RGB, no alpha


def test_same_params_same_bytes_whatever_the_worker_count(tiny_run: Path, tmp_path: Path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_params(workers=1, n_per_class=2)))
    _run_stage(tmp_path, "generate")
    small = pd.read_csv(tmp_path / "data/synthetic/raw/metadata.csv")
    big = pd.read_csv(tiny_run / "data/synthetic/raw/metadata.csv").set_index("file")
    assert len(small) == 6
    for row in small.itertuples():
        a = (tmp_path / "data/synthetic/raw/images" / row.file).read_bytes()
        b = (tiny_run / "data/synthetic/raw/images" / row.file).read_bytes()
        assert a == b, row.file
        assert big.loc[row.file, "seed"] == row.seed


def test_every_class_renders_a_detectable_face(faces: pd.DataFrame):
    assert set(faces["class"]) == set(CLASSES)
    rate = (faces["status"] == "ok").mean()
    assert rate >= 0.9, f"faces found in only {rate:.0%} of the renders"
    for cls in CLASSES:
        assert (faces.loc[faces["class"] == cls, "status"] == "ok").mean() >= 0.75, cls


def test_expressions_move_the_right_action_units(faces: pd.DataFrame):
    found = faces[faces["status"] == "ok"]
    au = found.groupby("class")[["AU01_r", "AU04_r", "AU12_r", "AU15_r"]].mean()
    assert au.loc["happy", "AU12_r"] > au.loc["angry", "AU12_r"] + 0.5, au  # lip corner puller
    assert au.loc["angry", "AU04_r"] > au.loc["happy", "AU04_r"], au  # brow lowerer
    assert (
        au.loc["crying", "AU01_r"] > au.loc["happy", "AU01_r"]
        or au.loc["crying", "AU15_r"] > au.loc["happy", "AU15_r"]
    ), au  # inner brow raiser or lip corner depressor


def test_downscale_stage(tiny_run: Path):
    _run_stage(tiny_run, "downscale")
    out = tiny_run / "data/synthetic/images"
    meta = pd.read_csv(out / "metadata.csv")
    raw_meta = pd.read_csv(tiny_run / "data/synthetic/raw/metadata.csv")
    pd.testing.assert_frame_equal(meta, raw_meta)
    import cv2

    shapes = {cv2.imread(str(out / "images" / f)).shape for f in meta["file"]}
    assert shapes == {(226, 320, 3)}
    study = json.loads((tiny_run / "metrics/resolution.json").read_text())
    assert [(s["width"], s["height"]) for s in study["sizes"]] == [(640, 451), (320, 226), (128, 90)]
    for s in study["sizes"]:
        assert s["n_frames"] == 4 and 0.0 <= s["detection_rate"] <= 1.0
        assert s["memory_mb"] == pytest.approx(4 * s["width"] * s["height"] * 3 / 1e6, abs=0.01)
    assert study["sizes"][0]["detection_rate"] >= 0.75
    assert study["sizes"][0]["png_mb"] > study["sizes"][2]["png_mb"]
    assert (tiny_run / "plots/resolution.png").stat().st_size > 1000
    sheet = cv2.imread(str(tiny_run / "plots/contact_sheet.png"))
    assert sheet.shape[0] == 3 * round(226 * 120 / 320) and sheet.shape[1] == 3 * 120
    assert np.std(sheet) > 10


def test_downscale_refuses_bad_params_and_missing_input(tmp_path: Path):
    from sim2real_faces.faces.resolution import ResolutionStudyParams
    from sim2real_faces.params import ParamsError
    from sim2real_faces.render.downscale import DownscaleError, DownscaleParams, downscale_dataset

    with pytest.raises(ParamsError, match="aspect"):
        DownscaleParams(width=640, height=200).validate((1792, 1267))
    DownscaleParams(width=820, height=571).validate((1792, 1267))  # the study's sizes: 1.5% apart
    with pytest.raises(ParamsError, match="n_frames"):
        DownscaleParams(resolution_study=ResolutionStudyParams(n_frames=0)).validate()
    with pytest.raises(DownscaleError, match="dvc repro generate"):
        downscale_dataset(tmp_path / "raw", tmp_path / "out", DownscaleParams())


def test_unity_backend_without_an_editor_stops_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from sim2real_faces.unity import UnityNotFoundError
    from stages import generate

    params = _params(workers=1, n_per_class=1)
    params["generate"]["backend"] = "unity"
    params["unity"] = {"editor": ""}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.delenv("UNITY_EDITOR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnityNotFoundError, match=r"unity\.editor"):
        generate.main()
    assert not list(tmp_path.glob("data/synthetic/raw/images/*.png"))


def test_crops_sheet_shows_the_strongest_crop_per_class_and_identity(tmp_path: Path):
    import cv2

    from sim2real_faces.faces import CropsSheetError, crops_sheet

    rows = []
    for c, cls in enumerate(CLASSES):
        for ident in ("id0", "id1"):
            for k, intensity in enumerate((0.3, 0.9)):
                file = f"{cls}_{ident}_{k}.png"
                crop = tmp_path / "crops" / file
                crop.parent.mkdir(exist_ok=True)
                # the crop's grey level tells which frame was chosen
                cv2.imwrite(str(crop), np.full((32, 32, 3), 20 + 50 * c + 80 * k, np.uint8))
                no_face = cls == "happy" and ident == "id1"  # no face found: an empty cell
                rows.append(
                    {
                        "file": file,
                        "class": cls,
                        "identity": ident,
                        "intensity": intensity,
                        "crop": "" if no_face else str(crop),
                    }
                )
    shown = crops_sheet(pd.DataFrame(rows), tmp_path / "plots/crops_sheet.png", columns=8)
    sheet = cv2.imread(str(tmp_path / "plots/crops_sheet.png"))
    assert sheet.shape == (3 * 32, 2 * 32, 3)
    assert len(shown) == 5 and all(s.endswith("_1.png") for s in shown)  # the stronger expression
    assert sheet[20:, :32][..., 0].mean() == pytest.approx(20 + 80, abs=1)  # angry / id0, below the label
    assert not sheet[2 * 32 + 20 :, 32:].any()  # happy / id1: no face, blank
    with pytest.raises(CropsSheetError, match="no face crops"):
        crops_sheet(pd.DataFrame(rows).assign(crop=""), tmp_path / "x.png")
