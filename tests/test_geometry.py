"""Landmark geometry (sim2real_faces.faces.geometry): its point tables, its face frame, its measurements."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real_faces.faces import feature_columns
from sim2real_faces.faces.geometry import (
    GEOMETRY_COLUMNS,
    MEASUREMENTS,
    POINTS,
    SCHEME_SIZES,
    geometry_features,
    geometry_row,
)


def _face(scheme: str, seed: int = 0) -> np.ndarray:
    """Landmarks with every named point where a face has it (biocular distance 100 px, the subnasale
    straight below the eyes: the face frame is the image frame), others random."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-50, 50, size=(SCHEME_SIZES[scheme], 3))
    layout = {  # x right, y down, z away from the camera; the subject's right eye on the image's left
        "eye_outer_r": (-50, 0, 0), "eye_inner_r": (-15, 0, 2), "eye_inner_l": (15, 0, 2),
        "eye_outer_l": (50, 0, 0), "upper_lid_r": (-32, -6, 0), "lower_lid_r": (-32, 6, 0),
        "upper_lid_l": (32, -6, 0), "lower_lid_l": (32, 6, 0), "brow_inner_r": (-15, -20, -2),
        "brow_mid_r": (-32, -26, -1), "brow_outer_r": (-50, -18, 3), "brow_inner_l": (15, -20, -2),
        "brow_mid_l": (32, -26, -1), "brow_outer_l": (50, -18, 3), "nostril_r": (-20, 55, -5),
        "nostril_l": (20, 55, -5), "subnasale": (0, 60, 0), "mouth_corner_r": (-28, 85, 5),
        "mouth_corner_l": (28, 85, 5), "upper_lip_top": (0, 75, -6), "upper_lip_inner": (0, 83, -4),
        "lower_lip_inner": (0, 87, -4), "lower_lip_bottom": (0, 97, -5), "chin": (0, 130, 0),
    }  # fmt: skip
    column = 0 if scheme == "mediapipe" else 1
    for name, xyz in layout.items():
        for index in POINTS[name][column]:
            points[index] = xyz
    return points


def test_tables_name_existing_points_and_columns():
    for name, (mediapipe, ibug) in POINTS.items():
        assert mediapipe and ibug, name
        assert all(0 <= i < 478 for i in mediapipe) and all(0 <= i < 68 for i in ibug), name
    for name, (kind, pairs, meaning) in MEASUREMENTS.items():
        assert kind in ("distance", "raise", "depth") and meaning, name
        assert all(a in POINTS and b in POINTS and a != b for a, b in pairs), name
    assert [f"geo_{name}" for name in MEASUREMENTS] == GEOMETRY_COLUMNS
    assert feature_columns(["geometry"]) == GEOMETRY_COLUMNS


@pytest.mark.parametrize("scheme", ["mediapipe", "ibug68"])
def test_measurements_of_a_known_face(scheme):
    row = geometry_row(_face(scheme), scheme)
    assert row["geo_mouth_width"] == pytest.approx(0.56)
    assert row["geo_mouth_open"] == pytest.approx(0.04)
    assert row["geo_brow_inner_raise"] == pytest.approx(0.20)
    assert row["geo_brow_mid_raise"] == pytest.approx(0.20)
    assert row["geo_corner_raise"] == pytest.approx(-0.02)  # corners below the lips' middle
    assert row["geo_corner_depth"] == pytest.approx(0.11)  # corners behind the upper lip
    assert row["geo_eye_open"] == pytest.approx(0.12)
    assert row["geo_nose_to_chin"] == pytest.approx(0.70)


@pytest.mark.parametrize("scheme", ["mediapipe", "ibug68"])
def test_head_pose_size_and_position_do_not_change_the_features(scheme):
    face = _face(scheme, seed=1)
    rotation = Rotation.from_euler("xyz", [15, -30, 10], degrees=True).as_matrix()
    moved = 2.7 * face @ rotation.T + np.array([400.0, 250.0, -30.0])
    np.testing.assert_allclose(geometry_features(moved, scheme), geometry_features(face, scheme), atol=1e-9)


def test_a_smile_and_a_frown_move_the_features_they_name():
    face = _face("mediapipe")
    smile = face.copy()
    for corner in (61, 291):
        smile[corner, 1] -= 6  # corners up
    smile[61, 0] -= 4
    smile[291, 0] += 4  # and wider
    frown = face.copy()
    frown[[55, 285], 1] += 8  # inner brows down
    frown[55, 0] += 3
    frown[285, 0] -= 3  # and together
    base, smiled, frowned = (geometry_row(f) for f in (face, smile, frown))
    assert smiled["geo_corner_raise"] == pytest.approx(base["geo_corner_raise"] + 0.06)
    assert smiled["geo_mouth_width"] == pytest.approx(base["geo_mouth_width"] + 0.08)
    assert frowned["geo_brow_inner_raise"] == pytest.approx(base["geo_brow_inner_raise"] - 0.08)
    assert frowned["geo_brow_gap"] == pytest.approx(base["geo_brow_gap"] - 0.06)
    assert frowned["geo_mouth_width"] == base["geo_mouth_width"]


def test_wrong_landmark_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 68, 3\)"):
        geometry_features(np.zeros((478, 3)), "ibug68")
    with pytest.raises(ValueError, match=r"\(N, 478, 3\)"):
        geometry_features(np.zeros((2, 478, 2)), "mediapipe")
