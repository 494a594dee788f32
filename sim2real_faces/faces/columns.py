"""Every column name of the face tables, and which of them a model reads (params section ``features``).

Both backends name their columns as OpenFace does (``AU01_r``, ``pose_Rx``) plus ``bs_<name>`` for
MediaPipe's blendshapes, so the tables of both backends and of both domains share these lists.

The study fed its MLP exactly OpenFace's 17 action-unit intensities (``AU01_r`` .. ``AU45_r``, feature
group ``au``). MediaPipe's 52 blendshapes (``blendshapes``), the head pose (``pose``) and landmark
geometry (``geometry``, ``geo_*``: distances in a face frame, :mod:`.geometry`) are options.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from sim2real_faces.errors import ProjectError
from sim2real_faces.faces.aus import AU_TABLE
from sim2real_faces.faces.geometry import GEOMETRY_COLUMNS

# The 52 outputs of face_blendshapes.tflite, in the model's order.
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip

AU_COLUMNS: list[str] = [f"{au}_r" for au in AU_TABLE]
"""OpenFace's 17 action-unit intensity columns, in its order (the keys of :data:`.aus.AU_TABLE`)."""
BLENDSHAPE_COLUMNS: list[str] = [f"bs_{name}" for name in BLENDSHAPE_NAMES]
POSE_COLUMNS: list[str] = ["pose_Rx", "pose_Ry", "pose_Rz"]
"""OpenFace's head rotation in radians (pitch, yaw, roll)."""
BBOX_COLUMNS: list[str] = ["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]
FEATURE_COLUMNS: list[str] = [
    "confidence",
    *BBOX_COLUMNS,
    *POSE_COLUMNS,
    *AU_COLUMNS,
    *BLENDSHAPE_COLUMNS,
    *GEOMETRY_COLUMNS,
]
"""Columns of :func:`.analysis.face_row` besides ``face`` and ``success``, in order."""

FeatureGroup = Literal["au", "blendshapes", "pose", "geometry"]
GROUPS: tuple[str, ...] = ("au", "blendshapes", "pose", "geometry")
GROUP_COLUMNS: dict[str, list[str]] = {
    "au": list(AU_COLUMNS),
    "blendshapes": BLENDSHAPE_COLUMNS,
    "pose": POSE_COLUMNS,
    "geometry": GEOMETRY_COLUMNS,
}

STUDY_AU_COLUMNS: tuple[str, ...] = tuple(AU_COLUMNS)
"""The study's features (group ``au``): OpenFace's AU intensity columns, in its order."""


class FeatureError(ProjectError, ValueError):
    """A feature group is unknown, repeated, or its columns are missing from a table."""


# Action units the renders cannot show (conf/features.yaml says how that was measured): no pose unit
# of the FACS table makes a dimple, and MakeHuman's lip stretcher barely moves MediaPipe's mouthStretch.
UNPOSABLE_AU_COLUMNS: list[str] = ["AU14_r", "AU20_r"]


@dataclass(frozen=True)
class FeatureParams:
    """Params section ``features``: the column groups every feature-based model reads, in order,
    less the columns named in ``exclude``."""

    groups: list[FeatureGroup] = field(default_factory=lambda: ["geometry"])
    exclude: list[str] = field(default_factory=lambda: list(UNPOSABLE_AU_COLUMNS))

    def columns(self) -> list[str]:
        """The columns a feature-based model reads: :func:`feature_columns` of these params."""
        return feature_columns(self.groups, self.exclude)


def feature_columns(groups: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """The feature column names for ``groups`` (e.g. ``["au"]`` -> the study's 17 AU intensities),
    without those in ``exclude``.

    Groups keep the given order; an unknown or repeated group raises :class:`FeatureError`, and so
    does an ``exclude`` entry that is no feature column of any group (a typo) or one that leaves
    nothing to read. Excluded columns of groups not chosen are ignored, so one ``exclude`` list
    serves every choice of groups.
    """
    groups, exclude = list(groups), list(exclude)
    if not groups:
        raise FeatureError(f"features.groups is empty; choose one or more of {list(GROUPS)}.")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise FeatureError(
            f"unknown feature group(s) {unknown} in features.groups; choose from {list(GROUPS)}."
        )
    repeated = sorted({g for g in groups if groups.count(g) > 1})
    if repeated:
        raise FeatureError(f"feature group(s) {repeated} repeated in features.groups {groups}.")
    columns = [column for group in groups for column in GROUP_COLUMNS[group]]
    known = {column for group_columns in GROUP_COLUMNS.values() for column in group_columns}
    unknown_columns = [c for c in exclude if c not in known]
    if unknown_columns:
        raise FeatureError(
            f"features.exclude names {unknown_columns}, which are no feature columns; use names such as "
            f"{STUDY_AU_COLUMNS[0]!r}, {BLENDSHAPE_COLUMNS[1]!r} or {POSE_COLUMNS[0]!r}."
        )
    kept = [c for c in columns if c not in set(exclude)]
    if not kept:
        raise FeatureError(
            f"features.exclude {exclude} removes every column of features.groups={groups}; "
            "nothing would be left to train on."
        )
    return kept


def require_columns(
    available: Iterable[str], groups: Iterable[str], where: str, exclude: Iterable[str] = ()
) -> list[str]:
    """``feature_columns(groups, exclude)``, checking that a table (named by ``where``) has every one."""
    columns = feature_columns(groups, exclude)
    present = set(available)
    missing = [c for c in columns if c not in present]
    if missing:
        raise FeatureError(
            f"{where} lacks {len(missing)} feature column(s) of features.groups={list(groups)}: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}. The OpenFace backend gives no blendshapes "
            "(use extract.backend=embedded for them), and geometry only from its 3D landmarks (run it with "
            "-3Dfp); otherwise rerun `dvc repro extract prepare_real`."
        )
    return columns
