"""Perception importer: SOLO sample, the Perception 0.5.0 mock dataset, and the error cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sim2real_faces.unity.perception import (
    SAMPLE_METRIC_ID,
    SAMPLE_SCHEMA,
    PerceptionFormatError,
    import_dataset,
    read_captures,
)

REPO = Path(__file__).resolve().parents[1]
SOLO = REPO / "tests" / "fixtures" / "solo"
SIMRUN = REPO.parent / "shared" / "fixtures" / "perception-0.5.0" / "mock_data" / "simrun"


def test_solo_sample_becomes_the_standard_metadata_table(tmp_path):
    table = import_dataset(SOLO, tmp_path)
    assert list(table.columns[:5]) == ["file", "class", "identity", "expression", "intensity"]
    assert table["class"].tolist() == ["angry", "crying", "happy"]
    assert table["file"].tolist() == ["00000.png", "00001.png", "00002.png"]
    assert table.loc[1, "head_yaw_deg"] == -28.0 and table.loc[2, "light_left_intensity"] == 3.0
    assert "schema" not in table.columns and "iteration" in table.columns
    written = pd.read_csv(tmp_path / "metadata.csv")
    assert written.equals(table)
    for i in range(3):
        src = SOLO / f"sequence.{i}" / "step0.camera.png"
        assert (tmp_path / "images" / f"{i:05d}.png").read_bytes() == src.read_bytes()


def _simrun_with_samples(tmp_path: Path) -> Path:
    """The Perception 0.5.0 mock dataset plus the sample metric our C# reports (0.x layout)."""
    root = tmp_path / "simrun"
    shutil.copytree(SIMRUN, root)
    dataset = root / "Dataset"
    definitions = json.loads((dataset / "metric_definitions.json").read_text())
    definitions["metric_definitions"].append(
        {"id": "5e1c6a1e-0000-4000-8000-000000000001", "name": SAMPLE_METRIC_ID, "description": "labels"}
    )
    (dataset / "metric_definitions.json").write_text(json.dumps(definitions))
    sample = {"schema": SAMPLE_SCHEMA, "class": "happy", "identity": "id02", "expression": "laugh01"}
    metrics = [
        {  # matched by capture id (capture in captures_000.json)
            "capture_id": "e8b44709-dddf-439d-94d2-975460924903",
            "annotation_id": None,
            "sequence_id": "e96b97cd-8130-4ab4-a105-1b911a6d912b",
            "step": 1,
            "metric_definition": "5e1c6a1e-0000-4000-8000-000000000001",
            "values": [json.dumps({**sample, "intensity": 0.5, "head_yaw": 3.5})],
        },
        {  # matched by sequence and step (capture in captures_001.json); an object value is accepted
            "capture_id": None,
            "annotation_id": None,
            "sequence_id": "e96b97cd-8130-4ab4-a105-1b911a6d912b",
            "step": 2,
            "metric_definition": "5e1c6a1e-0000-4000-8000-000000000001",
            "values": [{**sample, "class": "angry", "intensity": 0.9, "head_yaw": -7.0}],
        },
    ]
    (dataset / "metrics_001.json").write_text(json.dumps({"version": "0.0.1", "metrics": metrics}))
    return root


def test_perception_050_fixture_with_several_capture_files(tmp_path):
    root = _simrun_with_samples(tmp_path)
    fmt, captures = read_captures(root)
    assert fmt == "perception0"
    assert [c.image.name for c in captures] == ["camera_000.png", "camera_001.png"]  # lidar skipped
    assert [c.source.name for c in captures] == ["captures_000.json", "captures_001.json"]
    table = import_dataset(root, tmp_path / "out")
    assert table[["class", "identity", "intensity", "head_yaw"]].values.tolist() == [
        ["happy", "id02", 0.5, 3.5],
        ["angry", "id02", 0.9, -7.0],
    ]
    assert (tmp_path / "out" / "images" / "00001.png").read_bytes() == (
        SIMRUN / "captures" / "camera_001.png"
    ).read_bytes()


def test_the_pristine_study_format_fixture_lacks_our_labels(tmp_path):
    shutil.copytree(SIMRUN, tmp_path / "simrun")
    with pytest.raises(PerceptionFormatError, match=r"captures_000\.json.*0 sim2real\.sample metrics"):
        import_dataset(tmp_path / "simrun", tmp_path / "out")


def test_missing_image_is_an_error_naming_both_files(tmp_path):
    root = _simrun_with_samples(tmp_path)
    (root / "captures" / "camera_001.png").unlink()
    with pytest.raises(PerceptionFormatError, match=r"captures_001\.json names image .*camera_001\.png"):
        read_captures(root)


def test_malformed_json_is_an_error_naming_the_file(tmp_path):
    root = _simrun_with_samples(tmp_path)
    path = root / "Dataset" / "captures_001.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(PerceptionFormatError, match=r"captures_001\.json: malformed JSON"):
        read_captures(root)
    solo = tmp_path / "solo"
    shutil.copytree(SOLO, solo)
    (solo / "sequence.1" / "step0.frame_data.json").write_text("{")
    with pytest.raises(PerceptionFormatError, match=r"sequence\.1/step0\.frame_data\.json: malformed JSON"):
        read_captures(solo)


def _edit_solo_frame(tmp_path: Path, edit) -> Path:
    solo = tmp_path / "solo"
    shutil.copytree(SOLO, solo)
    path = solo / "sequence.2" / "step0.frame_data.json"
    frame = json.loads(path.read_text())
    edit(frame)
    path.write_text(json.dumps(frame))
    return solo


def test_unknown_capture_type_is_an_error(tmp_path):
    def edit(frame):
        frame["captures"][0]["@type"] = "type.unity.com/unity.solo.DepthCamera"

    solo = _edit_solo_frame(tmp_path, edit)
    with pytest.raises(PerceptionFormatError, match=r"no capture of type .*RGBCamera.*DepthCamera"):
        read_captures(solo)


def test_sample_metric_of_unknown_type_is_an_error(tmp_path):
    def edit(frame):
        frame["metrics"][1]["@type"] = "type.unity.com/unity.solo.ObjectCountMetric"

    solo = _edit_solo_frame(tmp_path, edit)
    with pytest.raises(PerceptionFormatError, match=r"sim2real\.sample has type .*ObjectCountMetric"):
        read_captures(solo)


def test_sample_without_required_labels_is_an_error(tmp_path):
    def edit(frame):
        value = json.loads(frame["metrics"][1]["value"])
        del value["expression"]
        frame["metrics"][1]["value"] = json.dumps(value)

    solo = _edit_solo_frame(tmp_path, edit)
    with pytest.raises(PerceptionFormatError, match=r"lacks \['expression'\]"):
        import_dataset(solo, tmp_path / "out")


def test_not_a_dataset(tmp_path):
    with pytest.raises(PerceptionFormatError, match="neither SOLO data"):
        read_captures(tmp_path)


def test_post_effects_on_the_imported_perception_050_fixture(tmp_path):
    """generate.post on a 0.x import (the Unity backend's path): in bounds, the same bytes on a rerun."""
    import cv2
    import numpy as np

    from sim2real_faces.render.randomizers import PostParams, apply_post
    from sim2real_faces.unity import POST_COLUMNS, apply_post_to_images

    post = PostParams(
        blur_sigma=(0.0, 1.0), noise_sigma=(0.0, 3.0), jpeg_quality=(70, 100), grayscale_probability=0.3
    )
    root = _simrun_with_samples(tmp_path)
    written = []
    for run in ("a", "b"):
        table = import_dataset(root, tmp_path / run)
        seeds = dict(zip(table["file"], (7, 8), strict=True))
        values = apply_post_to_images(tmp_path / run / "images", seeds, post, png_compression=1)
        assert list(values.columns) == ["file", *POST_COLUMNS] and len(values) == 2
        assert values["post_blur_sigma"].between(0.0, 1.0).all()
        assert values["post_noise_sigma"].between(0.0, 3.0).all()
        assert values["post_jpeg_quality"].between(70, 100).all()
        written.append([(tmp_path / run / "images" / f).read_bytes() for f in values["file"]])
    assert written[0] == written[1]
    for row, name in zip(values.to_dict("records"), ("camera_000.png", "camera_001.png"), strict=True):
        source = cv2.imread(str(SIMRUN / "captures" / name))[:, :, ::-1]
        result = cv2.imread(str(tmp_path / "b" / "images" / row["file"]))[:, :, ::-1]
        assert result.shape == (240, 320, 3)
        np.testing.assert_array_equal(result, apply_post(np.ascontiguousarray(source), row))
