"""OpenFace backend: argv building, parsing of real OpenFace output, error cases."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim2real_faces.faces import STUDY_AU_COLUMNS, openface
from sim2real_faces.faces.geometry import GEOMETRY_COLUMNS
from sim2real_faces.faces.openface import (
    Job,
    OpenFaceNotFoundError,
    OpenFaceOutputError,
    OpenFaceParams,
    OpenFaceRunError,
    build_command,
    collect_job,
    normalise_rows,
    openface_table,
    read_openface_csv,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "fixtures" / "openface" / "FeatureExtraction_sample.csv"
IMAGE = "algebr/openface@sha256:" + "ab" * 32


def _png(path: Path, value: int = 128) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))
    return path


def test_binary_command_is_an_exact_argv_list(tmp_path):
    bindir = tmp_path / "bin"
    params = OpenFaceParams(runner="binary", binary_dir=str(bindir), outputs=["aus", "pose"])
    a, b = tmp_path / "in" / "a.png", tmp_path / "in" / "b.png"
    argv = build_command(params, [a, b], tmp_path / "out", exe=str(bindir / "FaceLandmarkImg"))
    assert argv == [
        str(bindir / "FaceLandmarkImg"),
        "-f",
        str(a),
        "-f",
        str(b),
        "-out_dir",
        str(tmp_path / "out"),
        "-aus",
        "-pose",
    ]


def test_docker_command_mounts_data_runs_as_user_and_pins_digest(tmp_path):
    params = OpenFaceParams(image=IMAGE, outputs=["aus", "simalign"], sim_size=224, extra_args=["-wild"])
    a, b = tmp_path / "data" / "x" / "a.png", tmp_path / "data" / "y" / "b.png"
    argv = build_command(params, [a, b], tmp_path / "out", exe="/usr/bin/docker", user=(1000, 1001))
    assert argv == [
        "/usr/bin/docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "1000:1001",
        "-v",
        f"{tmp_path / 'data'}:/data/in:ro",
        "-v",
        f"{tmp_path / 'out'}:/data/out",
        "--entrypoint",
        "/home/openface-build/build/bin/FaceLandmarkImg",
        IMAGE,
        "-f",
        "/data/in/x/a.png",
        "-f",
        "/data/in/y/b.png",
        "-out_dir",
        "/data/out",
        "-aus",
        "-simalign",
        "-simsize",
        "224",
        "-wild",
    ]
    assert all(isinstance(arg, str) for arg in argv)


def test_feature_extraction_reads_a_folder_as_a_sequence(tmp_path):
    params = OpenFaceParams(program="FeatureExtraction", runner="binary", binary_dir="/of", outputs=["aus"])
    folder = tmp_path / "imgs"
    argv = build_command(params, [folder / "a.png"], tmp_path / "o", sequence_dir=folder, exe="/of/FE")
    assert argv == ["/of/FE", "-fdir", str(folder), "-out_dir", str(tmp_path / "o"), "-aus"]


def test_real_openface_csv_parses_with_clean_names_and_values():
    raw = read_openface_csv(FIXTURE)
    assert raw.shape == (100, 431)
    assert not [c for c in raw.columns if c != c.strip()]
    assert raw.loc[0, "confidence"] == pytest.approx(0.883333)
    assert raw.loc[0, "pose_Rx"] == pytest.approx(0.29759)
    rows = normalise_rows(raw, FIXTURE)
    assert list(STUDY_AU_COLUMNS) == [c for c in rows.columns if c.endswith("_r") and c.startswith("AU")]
    assert {"face", "confidence", "success", "pose_Rx", "pose_Ry", "pose_Rz", "bbox_x0", "bbox_y1"} <= set(
        rows
    )
    assert not [c for c in rows.columns if c.endswith("_c") or c.startswith(("x_", "gaze"))]
    assert rows.loc[0, "AU01_r"] == pytest.approx(raw.loc[0, "AU01_r"])
    x_cols = [f"x_{i}" for i in range(68)]
    assert rows.loc[0, "bbox_x0"] == pytest.approx(raw.loc[0, x_cols].min())
    assert rows["face"].tolist() == [0] * 100


def test_openface_3d_landmarks_give_the_geometry_columns():
    raw = read_openface_csv(FIXTURE)
    rows = normalise_rows(raw, FIXTURE)
    geometry = rows[GEOMETRY_COLUMNS]
    assert geometry.notna().all().all()
    # Real faces in OpenFace's millimetres come out in biocular units: plausible, pose-free sizes.
    assert geometry["geo_mouth_width"].between(0.3, 0.8).all()
    assert geometry["geo_nose_to_chin"].between(0.4, 1.2).all()
    assert (geometry["geo_brow_mid_raise"] > 0).all()
    # Without the 3D landmarks (no 3Dfp output) there is no geometry, rather than a wrong one.
    no_3d = raw.drop(columns=[c for c in raw.columns if c[:2] in ("X_", "Y_", "Z_")])
    rows_2d = normalise_rows(no_3d, FIXTURE)
    assert not set(GEOMETRY_COLUMNS) & set(rows_2d.columns)


def _face_landmark_img_csv(path: Path, n_faces: int, confidences: list[float]) -> None:
    """A FaceLandmarkImg-style CSV (leading 'face' column, ', ' separators) from real OpenFace rows."""
    raw = pd.read_csv(FIXTURE, skipinitialspace=True).head(n_faces)
    raw = raw.rename(columns={"frame": "face"}).drop(columns=["timestamp"])
    raw["face"] = range(n_faces)
    raw["confidence"] = confidences
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [", ".join(raw.columns)] + [", ".join(str(v) for v in row) for row in raw.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n")


def test_collect_maps_csvs_to_images_most_confident_first(tmp_path):
    a, b, c = (_png(tmp_path / "in" / f"{s}.png") for s in "abc")
    out = tmp_path / "out"
    _face_landmark_img_csv(out / "a.csv", 2, [0.7, 0.95])
    (out / "a_aligned").mkdir()
    _png(out / "a_aligned" / "face_det_000001.bmp")
    _face_landmark_img_csv(out / "b.csv", 0, [])  # header only: no face
    job = Job(["FaceLandmarkImg"], out, [a, b, c])
    given = {p.absolute(): f"rel/{p.name}" for p in (a, b, c)}
    tables = collect_job(job, "FaceLandmarkImg", given)
    table = pd.concat(tables, ignore_index=True)
    assert table["file"].tolist() == ["rel/a.png", "rel/a.png", "rel/b.png", "rel/c.png"]
    assert table["face"].tolist()[:2] == [1, 0]
    assert table["confidence"].tolist()[:2] == [0.95, 0.7]
    assert table["status"].tolist() == ["ok", "ok", "no_face", "no_face"]
    assert table.loc[0, "aligned"].endswith("face_det_000001.bmp") and table.loc[1, "aligned"] == ""
    assert table.loc[2, "success"] == 0 and np.isnan(table.loc[2, "confidence"])


def test_feature_extraction_frames_follow_sorted_file_order(tmp_path):
    folder = tmp_path / "seq"
    files = [_png(folder / n) for n in ("b.png", "a.png", "c.jpg")]
    out = tmp_path / "o"
    out.mkdir()
    raw = pd.read_csv(FIXTURE, skipinitialspace=True).head(3)
    raw.to_csv(out / "seq.csv", index=False)
    job = Job(["FE"], out, files, folder)
    given = {p.absolute(): p.name for p in files}
    table = pd.concat(collect_job(job, "FeatureExtraction", given), ignore_index=True)
    # sorted: a.png (frame 1), b.png (frame 2), c.jpg (frame 3)
    by_file = table.set_index("file")["confidence"]
    assert by_file["a.png"] == pytest.approx(raw.loc[0, "confidence"])
    assert by_file["c.jpg"] == pytest.approx(raw.loc[2, "confidence"])


def test_missing_binary_names_the_params(tmp_path):
    with pytest.raises(OpenFaceNotFoundError, match=r"extract\.openface\.binary_dir"):
        openface.executable(OpenFaceParams(runner="binary"))
    with pytest.raises(OpenFaceNotFoundError, match=r"extract\.openface\.binary_dir.*extract\.backend"):
        openface.executable(OpenFaceParams(runner="binary", binary_dir=str(tmp_path)))


def test_missing_docker_names_the_params():
    params = OpenFaceParams(image=IMAGE, docker="no-such-container-cli-xyz")
    with pytest.raises(OpenFaceNotFoundError, match=r"extract\.openface\.docker.*extract\.backend=embedded"):
        openface.executable(params)


def test_unpinned_image_is_refused():
    with pytest.raises(OpenFaceNotFoundError, match=r"extract\.openface\.image.*digest"):
        openface.executable(OpenFaceParams(image="algebr/openface:latest"))


def test_malformed_csvs_are_errors_naming_the_file(tmp_path):
    missing = tmp_path / "missing.csv"
    missing.write_text("face, AU01_r\n0, 1.0\n")
    with pytest.raises(OpenFaceOutputError, match=r"missing\.csv.*confidence"):
        read_openface_csv(missing)
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("face, confidence, success, AU01_r\n0, 0.9, 1, abc\n")
    with pytest.raises(OpenFaceOutputError, match=r"garbage\.csv.*AU01_r"):
        read_openface_csv(garbage)


FAKE = """#!{python}
import sys, pathlib
args = sys.argv[1:]
out = pathlib.Path(args[args.index("-out_dir") + 1])
header = open({fixture!r}).readline().replace("frame, timestamp", "face")
row = open({fixture!r}).readlines()[1].split(",")
for i, a in enumerate(args):
    if a == "-f":
        stem = pathlib.Path(args[i + 1]).stem
        if stem.startswith("noface"):
            continue
        (out / (stem + ".csv")).write_text(header + ",".join(["0"] + row[2:]))
"""


def _fake_openface(bindir: Path, name: str = "FaceLandmarkImg") -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / name
    exe.write_text(FAKE.format(python=sys.executable, fixture=str(FIXTURE)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_run_end_to_end_with_a_stand_in_binary(tmp_path):
    """The plumbing (jobs, subprocess, CSV collection, unreadable files) with a stand-in executable that
    writes real OpenFace rows; the real OpenFace is exercised by users with extract.backend=openface."""
    _fake_openface(tmp_path / "bin")
    images = [_png(tmp_path / "imgs" / f"img{i}.png") for i in range(3)]
    images.append(_png(tmp_path / "imgs" / "noface.png"))
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(b"not a png")
    params = OpenFaceParams(runner="binary", binary_dir=str(tmp_path / "bin"), outputs=["aus", "pose"])
    paths = [str(p) for p in [*images, broken]]
    table = openface_table(paths, params, tmp_path / "work", workers=2)
    assert table["file"].tolist() == paths
    assert table["status"].tolist() == ["ok", "ok", "ok", "no_face", "unreadable"]
    assert table.loc[0, "confidence"] == pytest.approx(0.883333)
    assert "cannot decode" in table.loc[4, "reason"]
    assert os.path.isfile(tmp_path / "work" / "dir0000_part00" / "openface.log")


def test_failing_openface_raises_with_the_log(tmp_path):
    exe = _fake_openface(tmp_path / "bin", "FaceLandmarkImg")
    exe.write_text(f"#!{sys.executable}\nimport sys\nprint('Could not open the image')\nsys.exit(3)\n")
    params = OpenFaceParams(runner="binary", binary_dir=str(tmp_path / "bin"))
    with pytest.raises(OpenFaceRunError, match=r"exited with code 3(.|\n)*Could not open"):
        openface_table([str(_png(tmp_path / "i" / "a.png"))], params, tmp_path / "w")
