"""Face geometry features from landmarks: distances and offsets of named points in a face frame.

MediaPipe's blendshapes and the action units made from them (:mod:`.aus`) are a learned reading of
the landmarks; this module measures the landmarks themselves: how wide and open the mouth is, how high
the brows sit above the eyes, how far the jaw has dropped. Every measurement (:data:`MEASUREMENTS`) is
defined on named points (:data:`POINTS`), which each landmark scheme places by its own indices:
MediaPipe's 478-point mesh (embedded backend) and the 68-point iBUG scheme of OpenFace's 3D landmarks
``X_i, Y_i, Z_i`` (openface backend). Values of the two schemes are not interchangeable (their points
sit differently on the face); a model trains and is evaluated within one backend.

The face frame removes head pose and face size without fitting anything to data:

- origin: the midpoint of the two outer eye corners; x axis: towards the subject's left outer corner;
- y axis: from the origin towards the subnasale, made orthogonal to x (down the face);
- z axis: x cross y (away from the camera, as both schemes' depth);
- unit: the outer-corner (biocular) distance.

Lengths are 3D distances in that unit; ``*_raise`` and ``*_depth`` measurements are differences of
y (up is positive) or z coordinates. Columns are named ``geo_<measurement>`` (feature group ``geometry``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

# Named points: (MediaPipe 478-mesh indices, iBUG-68 indices); a point of several indices is their mean.
# "right"/"left" are the subject's (MediaPipe 33 and iBUG 36 lie on the image's left).
POINTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "eye_outer_r": ((33,), (36,)),
    "eye_inner_r": ((133,), (39,)),
    "eye_inner_l": ((362,), (42,)),
    "eye_outer_l": ((263,), (45,)),
    "upper_lid_r": ((159,), (37, 38)),
    "lower_lid_r": ((145,), (40, 41)),
    "upper_lid_l": ((386,), (43, 44)),
    "lower_lid_l": ((374,), (46, 47)),
    "brow_inner_r": ((55,), (21,)),
    "brow_mid_r": ((105,), (19,)),
    "brow_outer_r": ((46,), (17,)),
    "brow_inner_l": ((285,), (22,)),
    "brow_mid_l": ((334,), (24,)),
    "brow_outer_l": ((276,), (26,)),
    "nostril_r": ((129,), (31,)),
    "nostril_l": ((358,), (35,)),
    "subnasale": ((2,), (33,)),
    "mouth_corner_r": ((61,), (48,)),
    "mouth_corner_l": ((291,), (54,)),
    "upper_lip_top": ((0,), (51,)),
    "upper_lip_inner": ((13,), (62,)),
    "lower_lip_inner": ((14,), (66,)),
    "lower_lip_bottom": ((17,), (57,)),
    "chin": ((152,), (8,)),
}

Kind = Literal["distance", "raise", "depth"]

# name: (kind, pairs of points, what it shows). A measurement of several pairs is their mean (left and
# right). distance: |a - b|; raise: y(a) - y(b) (a above b is positive); depth: z(a) - z(b).
MEASUREMENTS: dict[str, tuple[Kind, tuple[tuple[str, str], ...], str]] = {
    "mouth_width": ("distance", (("mouth_corner_r", "mouth_corner_l"),), "lips pulled (AU12, AU20)"),
    "mouth_open": ("distance", (("upper_lip_inner", "lower_lip_inner"),), "lips part (AU25)"),
    "lips_height": ("distance", (("upper_lip_top", "lower_lip_bottom"),), "lips part, jaw drops (AU25/26)"),
    "upper_lip": ("distance", (("upper_lip_top", "upper_lip_inner"),), "lip pressed (AU23/24)"),
    "lower_lip": ("distance", (("lower_lip_inner", "lower_lip_bottom"),), "lip pushed up (AU17)"),
    "corner_raise": (
        "raise",
        (("mouth_corner_r", "upper_lip_inner"), ("mouth_corner_l", "upper_lip_inner")),
        "lip corners up (AU12) or down (AU15)",
    ),
    "corner_to_eye": (
        "distance",
        (("mouth_corner_r", "eye_outer_r"), ("mouth_corner_l", "eye_outer_l")),
        "corners pulled towards the eyes (AU12, AU6)",
    ),
    "corner_depth": (
        "depth",
        (("mouth_corner_r", "upper_lip_top"), ("mouth_corner_l", "upper_lip_top")),
        "corners drawn back (AU12, AU20)",
    ),
    "lower_lip_depth": ("depth", (("lower_lip_bottom", "upper_lip_top"),), "lower lip pushed out (AU17)"),
    "nose_to_lip": ("distance", (("subnasale", "upper_lip_top"),), "upper lip raised (AU10)"),
    "lip_to_chin": ("distance", (("lower_lip_bottom", "chin"),), "chin raised (AU17), jaw dropped"),
    "nose_to_chin": ("distance", (("subnasale", "chin"),), "jaw drop (AU26/27)"),
    "nostril_width": ("distance", (("nostril_r", "nostril_l"),), "nose wrinkled, nostrils flared (AU9)"),
    "brow_inner_raise": (
        "raise",
        (("brow_inner_r", "eye_inner_r"), ("brow_inner_l", "eye_inner_l")),
        "inner brows up (AU1) or down (AU4)",
    ),
    "brow_mid_raise": (
        "raise",
        (("brow_mid_r", "upper_lid_r"), ("brow_mid_l", "upper_lid_l")),
        "brows up (AU1+2) or down (AU4)",
    ),
    "brow_outer_raise": (
        "raise",
        (("brow_outer_r", "eye_outer_r"), ("brow_outer_l", "eye_outer_l")),
        "outer brows up (AU2)",
    ),
    "brow_gap": ("distance", (("brow_inner_r", "brow_inner_l"),), "brows drawn together (AU4)"),
    "eye_open": (
        "distance",
        (("upper_lid_r", "lower_lid_r"), ("upper_lid_l", "lower_lid_l")),
        "eyes widened (AU5) or narrowed and closed (AU7, AU43/45)",
    ),
}  # fmt: skip

GEOMETRY_COLUMNS: list[str] = [f"geo_{name}" for name in MEASUREMENTS]
"""The feature group ``geometry``: one column per :data:`MEASUREMENTS` entry, in its order."""

Scheme = Literal["mediapipe", "ibug68"]
SCHEME_SIZES: dict[str, int] = {"mediapipe": 478, "ibug68": 68}


def _points(landmarks: np.ndarray, scheme: Scheme) -> dict[str, np.ndarray]:
    """The named points of ``landmarks`` (N, K, 3) as (N, 3) arrays."""
    column = 0 if scheme == "mediapipe" else 1
    return {name: landmarks[:, list(ids[column]), :].mean(axis=1) for name, ids in POINTS.items()}


def face_frame_points(landmarks: np.ndarray, scheme: Scheme) -> dict[str, np.ndarray]:
    """The named points of ``landmarks`` (N, K, 3) in the face frame (module docstring), (N, 3) each."""
    points = _points(landmarks, scheme)
    right, left = points["eye_outer_r"], points["eye_outer_l"]
    origin = (right + left) / 2
    unit = np.linalg.norm(left - right, axis=1, keepdims=True)
    x_axis = (left - right) / unit
    down = points["subnasale"] - origin
    y_axis = down - np.sum(down * x_axis, axis=1, keepdims=True) * x_axis
    y_axis /= np.linalg.norm(y_axis, axis=1, keepdims=True)
    z_axis = np.cross(x_axis, y_axis)
    basis = np.stack([x_axis, y_axis, z_axis], axis=1)  # (N, 3 axes, 3 coords)
    return {name: np.einsum("nac,nc->na", basis, p - origin) / unit for name, p in points.items()}


def geometry_features(landmarks: np.ndarray, scheme: Scheme = "mediapipe") -> np.ndarray:
    """(N, len(MEASUREMENTS)) geometry features of N faces' landmarks (N, K, 3), columns in
    :data:`GEOMETRY_COLUMNS` order. Coordinates: x right and y down in the image, z away from the camera
    (MediaPipe's pixels with its relative depth; OpenFace's camera-frame millimetres)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim == 2:
        landmarks = landmarks[None]
    expected = SCHEME_SIZES[scheme]
    if landmarks.ndim != 3 or landmarks.shape[1:] != (expected, 3):
        raise ValueError(
            f"geometry_features({scheme!r}) needs landmarks of shape (N, {expected}, 3); "
            f"got {landmarks.shape}."
        )
    points = face_frame_points(landmarks, scheme)
    columns = []
    for kind, pairs, _ in MEASUREMENTS.values():
        values = []
        for a, b in pairs:
            if kind == "distance":
                values.append(np.linalg.norm(points[a] - points[b], axis=1))
            elif kind == "raise":
                values.append(points[b][:, 1] - points[a][:, 1])  # y points down: a above b is positive
            else:
                values.append(points[a][:, 2] - points[b][:, 2])
        columns.append(np.mean(values, axis=0))
    return np.stack(columns, axis=1)


def geometry_row(landmarks: np.ndarray, scheme: Scheme = "mediapipe") -> dict[str, float]:
    """``{"geo_mouth_width": ..}`` for one face's landmarks (K, 3)."""
    values = geometry_features(landmarks, scheme)[0]
    return dict(zip(GEOMETRY_COLUMNS, (float(v) for v in values), strict=True))
