import hashlib
from pathlib import Path

import pooch
import pytest
import requests

from sim2real_faces import assets
from sim2real_faces.errors import ProjectError


def test_registry_knows_mediapipe_and_every_makehuman_file():
    names = assets.names()
    assert "mediapipe/face_landmarker.task" in names
    with (Path(assets.__file__).with_name("registry") / "makehuman.csv").open() as handle:
        n_rows = sum(1 for _ in handle) - 1
    assert len(assets.names("makehuman/")) == n_rows >= 786  # every row, none lost to duplicates
    assert all(a.url.startswith("https://") and len(a.sha256) == 64 for a in assets.registry().values())


def test_fetch_from_mirror_verifies_hash():
    path = assets.fetch("makehuman/assets/expressions/anger01.mhpose")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == assets.registry()["makehuman/assets/expressions/anger01.mhpose"].sha256


def test_hash_mismatch_in_mirror_is_an_error(tmp_path, monkeypatch):
    name = "makehuman/assets/expressions/anger01.mhpose"
    bad = tmp_path / name
    bad.parent.mkdir(parents=True)
    bad.write_text('{"unit_poses": {}}')
    monkeypatch.setenv(assets.MIRROR_ENV, str(tmp_path))
    with pytest.raises(assets.AssetError, match="does not match the pinned sha256"):
        assets.fetch(name)


def _offline(*args, **kwargs):
    raise requests.exceptions.ConnectionError("Name or service not known")


def test_missing_offline_names_file_url_and_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.MIRROR_ENV, str(tmp_path / "empty-mirror"))
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(pooch, "retrieve", _offline)
    name = "mediapipe/face_landmarker.task"
    with pytest.raises(assets.AssetError) as error:
        assets.fetch(name)
    message = str(error.value)
    assert name in message
    assert assets.registry()[name].url in message
    assert assets.MIRROR_ENV in message


def test_corrupt_cached_download_is_refetched_and_checked(tmp_path, monkeypatch):
    """pooch re-downloads a cached file whose hash is wrong; a wrong download is an error, not a warning."""
    monkeypatch.delenv(assets.MIRROR_ENV, raising=False)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    name = "makehuman/assets/expressions/cry01.mhpose"
    cached = tmp_path / name
    cached.parent.mkdir(parents=True)
    cached.write_text("tampered")

    def fake_download(url, output_file, pooch_obj):
        Path(output_file).write_text("still wrong")

    real_retrieve = pooch.retrieve
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: real_retrieve(*a, downloader=fake_download, **k))
    with pytest.raises(assets.AssetError, match="does not match sha256"):
        assets.fetch(name)


def test_unknown_asset_is_an_error():
    with pytest.raises(assets.AssetError, match="Unknown asset"):
        assets.fetch("makehuman/core/does-not-exist.obj")


def test_offline_error_carries_no_chained_traceback(tmp_path, monkeypatch):
    """The network library's exception chain is not part of the error (a stage's --debug shows it)."""
    monkeypatch.setenv(assets.MIRROR_ENV, str(tmp_path / "empty-mirror"))
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(pooch, "retrieve", _offline)
    with pytest.raises(assets.AssetError) as error:
        assets.fetch("mediapipe/face_landmarker.task")
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert isinstance(error.value.__context__, requests.exceptions.ConnectionError)  # kept for --debug
    assert isinstance(error.value, ProjectError)
