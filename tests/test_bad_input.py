"""Regression suite: bad input never overwrites, escapes or vanishes (one test per finding, 1-9).

Photos are tiny generated images (a flat grey image has no face) or single real-dev photos where a
face crop is needed, so the face analysis stays fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from sim2real_faces import assets
from sim2real_faces.cli import call
from sim2real_faces.errors import IncompleteOutputError, ProjectError
from sim2real_faces.faces import FaceParams, analyse_images, analyze_files
from sim2real_faces.io import MARKER, check_marker
from sim2real_faces.params import ParamsError, load_section
from stages import prepare_real as stage
from stages.prepare_real import RealParams, RealPhotosError, list_photos, prepare_real

REPO = Path(__file__).resolve().parents[1]
FACE = FaceParams(crop_size=32)
CLASS_MAP = RealParams().class_map


def _grey(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(path)
    return path


def _run(photo_dir: Path, out: Path, **real: object) -> dict:
    params = RealParams(photo_dir=photo_dir, workers=1, **real)
    return prepare_real(params, FACE, out / "crops", out / "features.csv", out / "real_faces.json")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def face_photo(real_dev: Path) -> Path:
    """One small real-dev photo with a face (JAFFE, 256x256)."""
    manifest = pd.read_csv(real_dev / "manifest.csv")
    return real_dev / manifest[manifest["dataset"] == "jaffe"]["path"].iloc[0]


# 1 ------------------------------------------------------------------------------------------------


def test_1_photo_dir_that_is_a_file_is_named(tmp_path):
    _grey(tmp_path / "photo.jpg")
    with pytest.raises(
        RealPhotosError, match=r"photo\.jpg is a file, not a folder \(params real\.photo_dir\)"
    ):
        list_photos(tmp_path / "photo.jpg", CLASS_MAP)


def test_1_absolute_manifest_path_is_an_error_and_overwrites_nothing(tmp_path):
    user = tmp_path / "user"
    _grey(user / "face.jpg")
    (user / "face.png").write_bytes(b"a different photo of the user's")
    photos = tmp_path / "photos"
    _grey(photos / "a.jpg")
    (photos / "manifest.csv").write_text(f"path,class\na.jpg,happy\n{user / 'face.jpg'},happy\n")
    before = _files(tmp_path)
    with pytest.raises(RealPhotosError) as caught:
        _run(photos, tmp_path / "out")
    message = str(caught.value)
    assert f"{photos / 'manifest.csv'}, line 3" in message and "absolute path" in message
    assert "relative to the folder" in message
    assert _files(tmp_path) == before  # nothing written anywhere, the user's face.png untouched


def test_1_a_link_may_point_outside_but_outputs_follow_the_row(tmp_path, face_photo):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(face_photo, elsewhere / "face.png")
    photos = tmp_path / "photos"
    (photos / "happy").mkdir(parents=True)
    (photos / "happy" / "linked.png").symlink_to(elsewhere / "face.png")
    out = tmp_path / "out"
    metrics = _run(photos, out)
    assert metrics["n_detected"] == 1
    table = pd.read_csv(out / "features.csv", keep_default_na=False)
    assert list(table["crop"]) == [str(out / "crops" / "happy" / "linked.png")]
    assert _files(elsewhere) == {"face.png": face_photo.read_bytes()}  # nothing written beside the source


# 2 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row", ["../../../escaped_face.jpg", "happy/../../../../escaped_face.jpg", "..\\..\\x.jpg"]
)
def test_2_a_row_leaving_the_folder_is_an_error(tmp_path, row):
    photos = tmp_path / "cases" / "a" / "b" / "c"
    _grey(photos / "happy" / "h.jpg")
    _grey(tmp_path / "cases" / "escaped_face.jpg")
    (photos / "manifest.csv").write_text(f"path,class\nhappy/h.jpg,happy\n{row},happy\n")
    before = _files(tmp_path)
    with pytest.raises(RealPhotosError) as caught:
        _run(photos, tmp_path / "out")
    assert "line 3" in str(caught.value) and "leaves the photo folder" in str(caught.value)
    assert "link the photo into the folder" in str(caught.value)
    assert _files(tmp_path) == before


# 3 ------------------------------------------------------------------------------------------------


def test_3_every_folder_entry_is_listed_or_counted(tmp_path):
    photos = tmp_path / "photos"
    _grey(photos / "happy" / "h0.jpg")
    _grey(photos / "angry" / "a0.png")
    frames = [Image.fromarray(np.full((32, 32, 3), 50 * i, np.uint8)) for i in range(3)]
    frames[0].save(photos / "happy" / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(photos / "angry" / "pages.tif", save_all=True, append_images=frames[1:2])
    (photos / "happy" / "dangling.jpg").symlink_to("not_there.jpg")
    (photos / "happy" / "loop.jpg").symlink_to("loop.jpg")
    (photos / "angry" / "up").symlink_to("..")  # a folder link back up: a loop
    (photos / "angry" / "notes.txt").write_text("not a photo")
    (photos / "angry" / ".DS_Store").write_bytes(b"\0")
    (photos / "README.md").write_text("beside the label folders")
    n_entries = 10

    out = tmp_path / "out"
    metrics = _run(photos, out)
    assert metrics["n_listed"] == 4 and metrics["n_ignored"] == 6
    assert metrics["n_listed"] + metrics["n_ignored"] == n_entries
    assert metrics["ignored"] == {
        "dangling_link": 1,
        "hidden": 1,
        "link_loop": 2,
        "not_in_label_folder": 1,
        "unsupported_format": 1,
    }
    assert metrics["ignored_examples"]["link_loop"] == ["angry/up", "happy/loop.jpg"]
    assert metrics["n_multi_frame"] == 2
    table = pd.read_csv(out / "features.csv", keep_default_na=False)
    gif = table[table["path"] == "happy/anim.gif"].iloc[0]
    assert (
        gif["status"] == "no_face" and gif["note"].startswith("3 frames") and "only the first" in gif["note"]
    )
    tif = table[table["path"] == "angry/pages.tif"].iloc[0]
    assert tif["note"].startswith("2 frames (animated or multi-page); only the first frame is read")


def test_3_the_same_photo_twice_after_normalising_is_an_error(tmp_path):
    photos = tmp_path / "photos"
    _grey(photos / "happy" / "h0.jpg")
    rows = ["path,class", "happy/h0.jpg,happy", "happy/../happy/h0.jpg,happy"]
    (photos / "manifest.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(RealPhotosError, match="name the same photo") as caught:
        list_photos(photos, CLASS_MAP)
    assert "line 2" in str(caught.value) and "line 3" in str(caught.value)
    assert "delete one of the two rows" in str(caught.value)
    (photos / "manifest.csv").write_text("\n".join(rows[:2]) + "\n")  # the fix the message gives
    assert len(list_photos(photos, CLASS_MAP).table) == 1


def test_3_a_link_to_a_listed_photo_is_a_duplicate_and_unlisted_files_are_counted(tmp_path):
    photos = tmp_path / "photos"
    _grey(photos / "happy" / "h0.jpg")
    (photos / "happy" / "h1.jpg").symlink_to("h0.jpg")
    with pytest.raises(RealPhotosError, match="same file"):
        list_photos(photos, CLASS_MAP)
    (photos / "happy" / "h1.jpg").unlink()
    _grey(photos / "happy" / "extra.jpg")
    (photos / "manifest.csv").write_text("path,class\nhappy/h0.jpg,happy\n")
    listed = list_photos(photos, CLASS_MAP)
    assert len(listed.table) == 1 and listed.ignored == {"not_in_manifest": ["happy/extra.jpg"]}


# 4 ------------------------------------------------------------------------------------------------


def _bad_mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    task = mirror / FACE.model
    task.parent.mkdir(parents=True)
    task.write_bytes(b"not the published face_landmarker.task")
    return mirror


def test_4_asset_hash_error_with_two_workers_is_the_asset_error(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.MIRROR_ENV, str(_bad_mirror(tmp_path)))
    files = [str(_grey(tmp_path / f"{i}.png")) for i in range(2)]
    with pytest.raises(assets.AssetError, match="does not match the pinned sha256") as caught:
        analyze_files(files, FACE, workers=2)
    assert FACE.model in str(caught.value) and assets.MIRROR_ENV in str(caught.value)


def test_4_an_error_in_a_worker_set_up_reaches_the_caller_as_itself(tmp_path, monkeypatch):
    """The check before the pool is skipped here, so the spawned workers meet the bad file themselves."""
    monkeypatch.setenv(assets.MIRROR_ENV, str(_bad_mirror(tmp_path)))
    monkeypatch.setattr(assets, "fetch", lambda name: None)  # this process only; workers are spawned
    files = [str(_grey(tmp_path / f"{i}.png")) for i in range(2)]
    with pytest.raises(assets.AssetError, match="does not match the pinned sha256"):
        analyze_files(files, FACE, workers=2)


# 5 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", r"manifest\.csv is empty"),
        (b"\n \n", r"manifest\.csv is empty"),
        (b"path,class\na.jpg,happy\nb.jpg,happy\nc.jpg,happy,x,y\n", r"line 4: 4 field\(s\), but the header"),
        ("path,class\ncafé.jpg,happy\n".encode("latin-1"), r"line 2: byte 0xe9 is not UTF-8.*iconv"),
        (b'path,class\n"a.jpg,happy\n', r"line \d+: not valid CSV|field\(s\)"),
        (b"path,class\na.jpg,happy\n\x00b.jpg,happy\n", r"line 3: holds a NUL byte"),
        (b"path,path,class\na,b,happy\n", r"repeated columns"),
        (b"file,label\na.jpg,happy\n", r"needs a 'path' column"),
        (b"path,class\n,happy\n", r"line 2: empty path"),
        (b"path;class\na.jpg;happy\n", r"separated by ';'"),
        ("path,class\na.jpg,happy\n".encode("utf-16"), r"UTF-16.*iconv -f utf-16"),
    ],
)
def test_5_malformed_manifests_name_file_and_line(tmp_path, content, expected):
    (tmp_path / "manifest.csv").write_bytes(content)
    with pytest.raises(RealPhotosError, match=expected) as caught:
        list_photos(tmp_path, CLASS_MAP)
    assert str(tmp_path / "manifest.csv") in str(caught.value)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_5_encoding_fix_in_the_message_works(tmp_path, encoding):
    if shutil.which("iconv") is None:
        pytest.skip("no iconv here")
    _grey(tmp_path / "café.jpg")
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes("path,class\ncafé.jpg,happy\n".encode(encoding))
    with pytest.raises(RealPhotosError) as caught:
        list_photos(tmp_path, CLASS_MAP)
    command = str(caught.value).split("`")[1]
    subprocess.run(command, shell=True, check=True)
    assert list(list_photos(tmp_path, CLASS_MAP).table["path"]) == ["café.jpg"]


def test_5_duplicate_dot_slash_and_empty_label_give_fixes_that_work(tmp_path):
    _grey(tmp_path / "a.jpg")
    _grey(tmp_path / "b.jpg")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,class\n./a.jpg,happy\na.jpg,happy\n")
    with pytest.raises(RealPhotosError, match=r"name the same photo \(a\.jpg after normalising\)") as caught:
        list_photos(tmp_path, CLASS_MAP)
    assert "rename" not in str(caught.value) and "delete one of the two rows" in str(caught.value)
    manifest.write_text("path,class\na.jpg,happy\nb.jpg, \n")
    with pytest.raises(RealPhotosError, match=r"line 3: empty class for b\.jpg") as caught:
        list_photos(tmp_path, CLASS_MAP)
    assert "class_map.=" not in str(caught.value) and "delete the row" in str(caught.value)
    manifest.write_text("path,class\na.jpg,happy\n")
    assert len(list_photos(tmp_path, CLASS_MAP).table) == 1


def test_5_unknown_label_fix_composes(tmp_path):
    from sim2real_faces.compose import compose

    _grey(tmp_path / "a.jpg")
    (tmp_path / "manifest.csv").write_text("path,class\na.jpg,surprise\n")
    with pytest.raises(RealPhotosError) as caught:
        list_photos(tmp_path, CLASS_MAP)
    override = str(caught.value).split("-S '")[1].split("'")[0]
    assert override == "++real.class_map.surprise=skip"
    class_map = compose([override], conf_dir=REPO / "conf")["real"]["class_map"]
    listed = list_photos(tmp_path, class_map)
    assert listed.table.empty and listed.skipped == {"surprise": 1}


# 6 ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import keras

    from sim2real_faces.models import save_model

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    directory = tmp_path_factory.mktemp("models") / "mlp"
    save_model(model, directory, {"model": "mlp", "features": ["AU01_r", "AU02_r"]})
    return directory


@pytest.mark.parametrize("broken", ["truncated_keras", "empty_keras", "bad_json", "json_not_a_model"])
def test_6_broken_model_files_name_the_file_and_the_stage(tmp_path, tiny_model, broken):
    from sim2real_faces.models import ModelFileError, Predictor

    directory = tmp_path / "mlp"
    shutil.copytree(tiny_model, directory)
    keras_file, info = directory / "model.keras", directory / "model.json"
    if broken == "truncated_keras":
        keras_file.write_bytes(keras_file.read_bytes()[: keras_file.stat().st_size // 2])
    elif broken == "empty_keras":
        keras_file.write_bytes(b"")
    elif broken == "bad_json":
        info.write_text(info.read_text()[:-5])
    else:
        info.write_text("[1, 2]")
    with pytest.raises(ModelFileError) as caught:
        Predictor(directory)
    message = str(caught.value)
    assert str(keras_file if "keras" in broken else info) in message
    assert "dvc repro train@mlp" in message and "not found" not in message
    if broken == "bad_json":
        assert "line" in message and "column" in message


def test_6_predict_out_is_checked_before_anything_is_loaded(tmp_path, monkeypatch, capsys):
    from stages.predict import main

    _grey(tmp_path / "x.png")
    monkeypatch.chdir(tmp_path)
    assert call(main, ["x.png", "--out", str(tmp_path), "--models-dir", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err


# 7 ------------------------------------------------------------------------------------------------


def test_7_interrupted_stage_keeps_the_old_outputs_and_stale_tables_are_refused(
    tmp_path, face_photo, monkeypatch
):
    photos = tmp_path / "photos"
    (photos / "happy").mkdir(parents=True)
    shutil.copy(face_photo, photos / "happy" / "face.png")
    _grey(photos / "happy" / "wall.png")
    out = tmp_path / "out"
    _run(photos, out)
    before = _files(out)
    check_marker(out / "crops" / MARKER, out / "features.csv", out / "crops", "prepare_real")

    _grey(photos / "happy" / "more.png")

    def interrupted(*args, **kwargs):
        analyse_images(*args, **kwargs)  # crops of the new run are written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "analyse_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(photos, out)
    assert _files(out) == before  # the old outputs, complete
    assert sorted(p.name for p in out.iterdir()) == ["crops", "features.csv", "real_faces.json"]

    # What the old stage left (new crops beside the old table) is refused, and so is a missing marker.
    crop = next((out / "crops").rglob("*.png"))
    crop.write_bytes(crop.read_bytes() + b"\0")
    with pytest.raises(IncompleteOutputError, match="older than its crops"):
        check_marker(out / "crops" / MARKER, out / "features.csv", out / "crops", "prepare_real")
    (out / "crops" / MARKER).unlink()
    with pytest.raises(IncompleteOutputError, match=r"completion marker .* is missing"):
        check_marker(out / "crops" / MARKER, out / "features.csv", out / "crops", "prepare_real")


def test_7_evaluate_refuses_a_real_table_without_its_marker(tmp_path, face_photo, monkeypatch):
    from stages import evaluate

    photos = tmp_path / "photos"
    (photos / "happy").mkdir(parents=True)
    shutil.copy(face_photo, photos / "happy" / "face.png")
    _run(photos, tmp_path / "data" / "real")
    monkeypatch.chdir(tmp_path)
    frame, _, _ = evaluate.load_domain("real")
    assert len(frame) == 1
    (tmp_path / "data" / "real" / "features.csv").write_text(
        (tmp_path / "data" / "real" / "features.csv").read_text() + "\n"
    )
    with pytest.raises(IncompleteOutputError, match=r"dvc repro prepare_real"):
        evaluate.load_domain("real")


# 8 ------------------------------------------------------------------------------------------------


def _params_yaml(folder: Path, **sections: object) -> None:
    face = {k: list(v) if isinstance(v, tuple) else v for k, v in FACE.__dict__.items()}
    data = {"seed": 1, "face": face, **sections}
    (folder / "params.yaml").write_text(yaml.safe_dump(data))


def test_8_offline_asset_error_is_one_message_with_exit_status_2(tmp_path, monkeypatch, capsys):
    import pooch
    import requests

    photos = tmp_path / "photos"
    _grey(photos / "happy" / "h.png")
    _params_yaml(tmp_path, real={"photo_dir": str(photos), "class_map": CLASS_MAP, "workers": 2})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(assets.MIRROR_ENV, str(tmp_path / "empty-mirror"))
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.delenv("SIM2REAL_DEBUG", raising=False)
    assert call(stage.main, []) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "prepare_real: error: Cannot get" in err
    assert FACE.model in err and assets.registry()[FACE.model].url in err and assets.MIRROR_ENV in err
    assert not (tmp_path / "data").exists()

    monkeypatch.setenv("SIM2REAL_DEBUG", "1")
    assert call(stage.main, []) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConnectionError" in err  # the chain, on request
    monkeypatch.delenv("SIM2REAL_DEBUG")
    assert call(stage.main, ["--debug"]) == 2 and "Traceback" in capsys.readouterr().err


def test_8_project_errors_share_one_base_and_bugs_keep_their_traceback(capsys):
    from sim2real_faces.faces import ImageReadError
    from sim2real_faces.models import ModelFileError
    from stages.extract import ExtractError
    from stages.filter import FilterError
    from stages.predict import PredictInputError

    for error in (assets.AssetError, ParamsError, RealPhotosError, ImageReadError, ModelFileError):
        assert issubclass(error, ProjectError)
    for error in (ExtractError, FilterError, PredictInputError, IncompleteOutputError):
        assert issubclass(error, ProjectError)

    def bug() -> None:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        call(bug, [])


def test_8_stage_command_params_error_has_no_traceback(tmp_path):
    _params_yaml(tmp_path, filter={"min_confidence": 1.5}, features={"groups": ["au"]})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SIM2REAL_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "stages.filter"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "filter: error: params 'filter.min_confidence' = 1.5 is out of range; allowed: [0, 1]"
        in result.stderr
    )


# 9 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "-1.0", ".nan", ".inf", "true", "'high'"])
def test_9_filter_min_confidence_is_checked_at_load(value):
    from stages.filter import FilterParams

    params = yaml.safe_load(f"filter: {{min_confidence: {value}}}")
    with pytest.raises(ParamsError, match=r"filter\.min_confidence") as caught:
        load_section(FilterParams, "filter", params)
    message = str(caught.value)
    assert any(word in message for word in ("[0, 1]", "finite", "must be a number"))


def test_9_params_fail_before_any_data_is_read(tmp_path, monkeypatch, capsys):
    from stages import filter as filter_stage

    _params_yaml(tmp_path, filter={"min_confidence": -1.0}, features={"groups": ["au"]})
    monkeypatch.chdir(tmp_path)  # no data/ here: a late check would complain about features.csv
    assert call(filter_stage.main, []) == 2
    err = capsys.readouterr().err
    assert "filter.min_confidence' = -1.0" in err and "features.csv" not in err


@pytest.mark.parametrize(
    ("section", "cls_path", "data", "key"),
    [
        ("face", "sim2real_faces.faces:FaceParams", {"max_faces": 0}, "face.max_faces"),
        ("face", "sim2real_faces.faces:FaceParams", {"crop_margin": float("inf")}, "face.crop_margin"),
        ("face", "sim2real_faces.faces:FaceParams", {"pad_fractions": [0.0, 3.0]}, "face.pad_fractions[1]"),
        ("face", "sim2real_faces.faces:FaceParams", {"min_detection_confidence": 1.01}, "face.min_detection"),
        ("real", "stages.prepare_real:RealParams", {"workers": 0}, "real.workers"),
        ("extract", "stages.extract:ExtractParams", {"workers": -2}, "extract.workers"),
        (
            "extract",
            "stages.extract:ExtractParams",
            {"openface": {"sim_size": 0}},
            "extract.openface.sim_size",
        ),
    ],
)
def test_9_ranges_of_other_sections(section, cls_path, data, key):
    import importlib

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    with pytest.raises(ParamsError, match=key.replace(".", r"\.").replace("[", r"\[")):
        load_section(cls, section, {section: data})


# fuzz ---------------------------------------------------------------------------------------------


def test_fuzz_read_image_and_manifest_never_crash(tmp_path):
    """200 random byte strings and 200 random small images (some damaged): a result or a documented error."""
    from sim2real_faces.faces import ImageReadError, read_image

    rng = np.random.default_rng(12)
    outcomes = {"image": 0, "ImageReadError": 0, "PhotoList": 0, "RealPhotosError": 0}
    tokens = [
        "path",
        "class",
        "happy",
        "a.jpg",
        "../x.jpg",
        "/abs.jpg",
        ",",
        '"',
        "\n",
        "\r\n",
        " ",
        "\0",
        "é",
    ]
    for i in range(200):
        blob = rng.bytes(int(rng.integers(0, 300)))
        if i % 4 == 0:  # PNG/GIF/JPEG signatures followed by noise reach the decoders, not just the sniffer
            blob = [b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe0", b"II*\0"][i // 4 % 4] + blob
        path = tmp_path / f"blob{i}.png"
        path.write_bytes(blob)
        try:
            read_image(path)
            outcomes["image"] += 1
        except ImageReadError:
            outcomes["ImageReadError"] += 1

        folder = tmp_path / f"m{i}"
        folder.mkdir()
        _grey(folder / "a.jpg", (8, 8))
        text = blob if i % 2 else "".join(rng.choice(tokens, int(rng.integers(1, 30)))).encode()
        (folder / "manifest.csv").write_bytes(text)
        try:
            list_photos(folder, CLASS_MAP)
            outcomes["PhotoList"] += 1
        except RealPhotosError:
            outcomes["RealPhotosError"] += 1

    modes = ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I", "CMYK", "F"]
    formats = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp"}
    for i in range(200):
        mode = modes[i % len(modes)]
        fmt = list(formats)[int(rng.integers(len(formats)))]
        size = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(
            "RGB" if mode in ("I;16", "I", "F") else mode
        )
        if mode in ("I;16", "I", "F"):
            image = image.convert("L").convert(mode)
        path = tmp_path / f"img{i}{formats[fmt]}"
        try:
            image.save(path, format=fmt)
        except (OSError, ValueError, KeyError):
            continue  # Pillow cannot write that mode in that format
        if i % 3 == 0:  # truncate or corrupt a third of them
            data = bytearray(path.read_bytes())
            cut = int(rng.integers(1, len(data)))
            data = data[:cut] if i % 2 else data[:cut] + bytes(rng.bytes(8)) + data[cut + 8 :]
            path.write_bytes(bytes(data))
        try:
            rgb = read_image(path)
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
            outcomes["image"] += 1
        except ImageReadError as error:
            assert str(path) in str(error)
            outcomes["ImageReadError"] += 1
    assert sum(outcomes.values()) >= 500, outcomes  # a few mode/format pairs cannot be written
    assert outcomes["image"] and outcomes["ImageReadError"] and outcomes["RealPhotosError"], outcomes


def test_8_cli_exit_statuses_and_debug_flag(capsys, monkeypatch):
    monkeypatch.delenv("SIM2REAL_DEBUG", raising=False)
    seen: list[list[str]] = []

    def main(argv: list[str]) -> int:
        seen.append(argv)
        if "fail" in argv:
            try:
                raise OSError("low-level cause")
            except OSError:
                raise RealPhotosError("the clear message") from None
        if "stop" in argv:
            raise KeyboardInterrupt
        return 3

    assert call(main, ["a", "--debug"]) == 3 and seen[-1] == ["a"]  # --debug never reaches main
    assert call(main, ["fail"], name="demo") == 2
    err = capsys.readouterr().err
    assert err.startswith("demo: error: the clear message") and "low-level cause" not in err
    assert call(main, ["fail", "--debug"], name="demo") == 2
    assert "OSError: low-level cause" in capsys.readouterr().err  # the suppressed cause, on request
    assert call(main, ["stop"], name="demo") == 130
    assert "demo: interrupted" in capsys.readouterr().err


def test_7_atomic_helpers_leave_old_or_new_and_clean_leftovers(tmp_path):
    from sim2real_faces import io as atomic

    target = tmp_path / "out" / "table.csv"
    atomic.write_text(target, "old\n")
    with pytest.raises(KeyboardInterrupt), atomic.atomic_file(target) as temp:
        temp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]

    folder = tmp_path / "out" / "crops"
    with atomic.atomic_dir(folder) as temp:
        (temp / "a.png").write_bytes(b"a")
    (tmp_path / "out" / ".crops.tmp-killed").mkdir()  # what a SIGKILLed run leaves
    (tmp_path / "out" / ".table.csv.tmp-killed").write_text("x")
    with atomic.atomic_dir(folder) as temp:
        (temp / "b.png").write_bytes(b"b")
    atomic.write_text(target, "new\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["crops", "table.csv"]
    assert [p.name for p in folder.iterdir()] == ["b.png"] and target.read_text() == "new\n"


def test_4_downscale_worker_errors_are_themselves(tmp_path):
    from sim2real_faces.render.downscale import DownscaleError, resize_files

    good = _grey(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    pairs = [(good, tmp_path / "out_good.png"), (bad, tmp_path / "out_bad.png")] * 2
    with pytest.raises(DownscaleError, match=r"bad\.png cannot be read as an image"):
        resize_files(pairs, (16, 16), workers=2)


def test_7_sigterm_unwinds_and_leaves_no_partial_output(tmp_path):
    import signal
    import textwrap
    import time

    script = tmp_path / "slow_stage.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from sim2real_faces import io
            from sim2real_faces.cli import run_stage

            def main():
                with io.atomic_file({str(tmp_path / "out.csv")!r}) as temp:
                    temp.write_text("half")
                    print("started", flush=True)
                    time.sleep(60)

            run_stage(main)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    )
    assert process.stdout.readline().strip() == "started"
    process.send_signal(signal.SIGTERM)
    start = time.perf_counter()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143 and "interrupted" in err and time.perf_counter() - start < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow_stage.py"]  # no out.csv, no temp file


def test_8_every_stage_runs_through_run_stage_and_its_errors_are_project_errors():
    for path in sorted((REPO / "stages").glob("*.py")):
        source = path.read_text()
        if "def main(" in source:
            tail = source[source.index('if __name__ == "__main__":') :]
            assert "run_stage(main)" in tail, f"{path.name}: start it with sim2real_faces.cli.run_stage"
    from sim2real_faces.humans.errors import HumansError
    from sim2real_faces.models import CropReadError, WeightsUnavailableError
    from sim2real_faces.render.downscale import DownscaleError
    from sim2real_faces.render.gl import RendererError
    from sim2real_faces.report import ReportError
    from sim2real_faces.training import SplitError
    from sim2real_faces.unity import UnityError
    from sim2real_faces.unity.gltf import GltfExportError
    from sim2real_faces.unity.perception import PerceptionFormatError
    from stages.evaluate import EvaluateInputError
    from stages.train import TrainInputError

    expected = (GltfExportError, HumansError, CropReadError, WeightsUnavailableError, PerceptionFormatError)
    expected += (DownscaleError, RendererError, ReportError, SplitError, UnityError, EvaluateInputError)
    for error in (*expected, TrainInputError):
        assert issubclass(error, ProjectError), error
