"""Stage filter on a hand-made features table: one face per image, threshold, Table 1 counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sim2real_faces.faces import STUDY_AU_COLUMNS, FeatureError, FeatureParams, feature_columns
from sim2real_faces.faces.geometry import GEOMETRY_COLUMNS
from stages.filter import FilterError, FilterParams, run_filter

AU = list(STUDY_AU_COLUMNS)


def _row(file, cls, face, conf, status="ok", au=0.5, identity="id1"):
    success = 1 if status == "ok" else 0
    row = {"file": file, "class": cls, "identity": identity, "intensity": 0.7, "face": face}
    row |= {"status": status, "reason": "", "confidence": conf, "success": success}
    row |= {"pose_Rx": 0.1, "pose_Ry": 0.2, "pose_Rz": 0.0}
    row |= dict.fromkeys(AU, au if status == "ok" else np.nan)
    row["crop"] = f"data/synthetic/crops/{file}" if status == "ok" else ""
    return row


@pytest.fixture
def tables(tmp_path):
    rows = [
        _row("a1.png", "angry", 0, 0.95),  # kept
        _row("a2.png", "angry", 0, 0.60),  # 2 faces, best 0.85: kept (multi-face)
        _row("a2.png", "angry", 1, 0.85, au=0.9),
        _row("a3.png", "angry", 0, 0.80),  # exactly at threshold: dropped (study keeps > 0.8)
        _row("h1.png", "happy", 0, np.nan, status="no_face"),
        _row("h2.png", "happy", 0, np.nan, status="unreadable"),
        _row("h3.png", "happy", 0, 0.99),  # kept
        _row("c1.png", "crying", 0, 0.90, au=np.nan),  # missing feature values
        _row("c2.png", "crying", 0, 0.30),  # 2 faces, both low
        _row("c2.png", "crying", 1, 0.50),
    ]
    rows[7]["AU12_r"] = 0.4  # only some AUs missing
    features = pd.DataFrame(rows)
    features_csv = tmp_path / "features.csv"
    features.to_csv(features_csv, index=False)
    metadata_csv = tmp_path / "metadata.csv"
    features.drop_duplicates("file")[["file", "class", "identity", "intensity"]].to_csv(
        metadata_csv, index=False
    )
    return features_csv, metadata_csv, tmp_path


def _run(tables, groups=("au",), threshold=0.8):
    features_csv, metadata_csv, tmp = tables
    metrics = run_filter(
        FilterParams(min_confidence=threshold),
        FeatureParams(groups=list(groups)),
        features_csv=features_csv,
        metadata_csv=metadata_csv,
        filtered_csv=tmp / "filtered.csv",
        metrics_json=tmp / "filter.json",
    )
    return metrics, pd.read_csv(tmp / "filtered.csv"), json.loads((tmp / "filter.json").read_text())


def test_one_face_per_image_and_table1_counts(tables):
    metrics, kept, written = _run(tables)
    assert written == metrics
    assert kept["file"].tolist() == ["a1.png", "a2.png", "h3.png"]
    assert kept.loc[1, "face"] == 1 and kept.loc[1, "confidence"] == 0.85 and kept.loc[1, "AU01_r"] == 0.9
    assert list(kept.columns) == ["file", "class", "identity", "intensity", "face", "confidence", *AU, "crop"]
    assert metrics["per_class"]["angry"] == {
        "images": 3,
        "kept": 2,
        "kept_rate": 2 / 3,
        "multi_face": 1,
        "no_face": 0,
        "unreadable": 0,
        "low_confidence": 1,
        "missing_features": 0,
    }
    assert metrics["per_class"]["happy"]["kept"] == 1
    assert metrics["per_class"]["happy"]["no_face"] == 1 and metrics["per_class"]["happy"]["unreadable"] == 1
    crying = metrics["per_class"]["crying"]
    assert (crying["kept"], crying["missing_features"], crying["low_confidence"], crying["multi_face"]) == (
        0,
        1,
        1,
        1,
    )
    total = metrics["total"]
    assert (total["images"], total["kept"], total["multi_face"]) == (8, 3, 2)
    assert total["images"] == sum(total[k] for k in ("kept", "no_face", "unreadable", "low_confidence")) + 1
    assert metrics["n_features"] == 17 and metrics["min_confidence"] == 0.8


def test_threshold_and_feature_groups_come_from_params(tables):
    metrics, kept, _ = _run(tables, groups=("pose",), threshold=0.5)
    # c1 has pose values (only AUs missing) and a3 (0.80) passes 0.5; c2's best (0.50) does not.
    assert kept["file"].tolist() == ["a1.png", "a2.png", "a3.png", "h3.png", "c1.png"]
    assert [c for c in kept.columns if c.startswith(("AU", "pose"))] == ["pose_Rx", "pose_Ry", "pose_Rz"]
    assert metrics["per_class"]["crying"]["low_confidence"] == 1


def test_missing_feature_columns_name_the_params(tables):
    features_csv, _, _ = tables
    pd.read_csv(features_csv).drop(columns=["pose_Ry"]).to_csv(features_csv, index=False)
    with pytest.raises(FeatureError, match=r"lacks 1 feature column.*features\.groups=\['au', 'pose'\]"):
        _run(tables, groups=("au", "pose"))


def test_nothing_kept_is_an_error(tables):
    with pytest.raises(FilterError, match="no image"):
        _run(tables, threshold=0.999)


def test_feature_columns_groups():
    assert feature_columns(["au"]) == AU
    assert feature_columns(["pose", "au"]) == ["pose_Rx", "pose_Ry", "pose_Rz", *AU]
    with pytest.raises(FeatureError, match="unknown feature group"):
        feature_columns(["au", "landmarks"])
    with pytest.raises(FeatureError, match="repeated"):
        feature_columns(["au", "au"])
    with pytest.raises(FeatureError, match="empty"):
        feature_columns([])


def test_feature_columns_exclude():
    without = feature_columns(["au"], ["AU14_r", "AU20_r"])
    assert without == [c for c in AU if c not in ("AU14_r", "AU20_r")]
    assert len(without) == len(AU) - 2
    # an excluded column of a group not chosen is ignored (one exclude list serves every choice)
    assert feature_columns(["pose"], ["AU14_r"]) == ["pose_Rx", "pose_Ry", "pose_Rz"]
    assert FeatureParams(groups=["au"], exclude=["AU01_r"]).columns() == AU[1:]
    with pytest.raises(FeatureError, match=r"features\.exclude names \['AU14'\]"):
        feature_columns(["au"], ["AU14"])  # a typo: no such column
    with pytest.raises(FeatureError, match="removes every column"):
        feature_columns(["pose"], ["pose_Rx", "pose_Ry", "pose_Rz"])


def test_default_features_leave_out_the_aus_the_renders_cannot_show():
    """The default MLP reads the landmark geometry; with AUs chosen it reads 15, as the FACS table poses
    neither AU14 nor AU20's blendshape; the study's profile reads all 17."""
    from sim2real_faces.compose import load_composed
    from sim2real_faces.faces.columns import UNPOSABLE_AU_COLUMNS
    from sim2real_faces.humans.facs import AU_UNITS

    default = load_composed(FeatureParams, "features", ())
    assert default.exclude == UNPOSABLE_AU_COLUMNS == ["AU14_r", "AU20_r"]
    assert "AU14" not in AU_UNITS
    assert default.columns() == GEOMETRY_COLUMNS
    with_aus = load_composed(FeatureParams, "features", ("features.groups=[au,geometry]",))
    assert with_aus.columns() == [c for c in AU if c not in UNPOSABLE_AU_COLUMNS] + GEOMETRY_COLUMNS
    assert load_composed(FeatureParams, "features", ("profile=paper",)).columns() == AU


def test_every_feature_group_the_params_accept_has_columns():
    import typing

    from sim2real_faces.faces.columns import GROUP_COLUMNS, GROUPS, FeatureGroup

    assert typing.get_args(FeatureGroup) == GROUPS == tuple(GROUP_COLUMNS)
    assert all(GROUP_COLUMNS[group] for group in GROUPS)
