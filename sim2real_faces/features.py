"""Which face-analysis columns a model reads: params section ``features``.

The study fed its MLP exactly OpenFace's 17 action-unit intensities (``AU01_r`` .. ``AU45_r``).
MediaPipe's 52 blendshapes and the head pose are options. Column names follow OpenFace
(``AU01_r``, ``pose_Rx``) and ``sim2real_faces.faces`` (``bs_<name>``), so both extraction
backends produce the same names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from sim2real_faces.errors import ProjectError

FeatureGroup = Literal["au", "blendshapes", "pose"]
GROUPS: tuple[str, ...] = ("au", "blendshapes", "pose")

# The study's features (original-pipeline.md, "Features"): OpenFace's AU intensity columns, in its order.
STUDY_AU_COLUMNS: tuple[str, ...] = (
    "AU01_r",
    "AU02_r",
    "AU04_r",
    "AU05_r",
    "AU06_r",
    "AU07_r",
    "AU09_r",
    "AU10_r",
    "AU12_r",
    "AU14_r",
    "AU15_r",
    "AU17_r",
    "AU20_r",
    "AU23_r",
    "AU25_r",
    "AU26_r",
    "AU45_r",
)
# OpenFace's head rotation in radians (pitch, yaw, roll).
POSE_COLUMNS: tuple[str, ...] = ("pose_Rx", "pose_Ry", "pose_Rz")


class FeatureError(ProjectError, ValueError):
    """A feature group is unknown, repeated, or its columns are missing from a table."""


@dataclass(frozen=True)
class FeatureParams:
    """Params section ``features``: the column groups every feature-based model reads, in order."""

    groups: list[FeatureGroup] = field(default_factory=lambda: ["au"])


def blendshape_columns() -> tuple[str, ...]:
    """MediaPipe's 52 blendshapes as ``bs_<name>`` columns, from :mod:`sim2real_faces.faces`."""
    try:
        from sim2real_faces.faces import BLENDSHAPE_COLUMNS
    except ImportError as error:  # faces.py is the FACES owner's module
        raise FeatureError(
            "feature group 'blendshapes' needs sim2real_faces.faces.BLENDSHAPE_COLUMNS, which could not be "
            f"imported ({error}); use features.groups=[au] or install the face-analysis module."
        ) from error
    return tuple(BLENDSHAPE_COLUMNS)


def feature_columns(groups: Iterable[str]) -> list[str]:
    """The feature column names for ``groups`` (e.g. ``["au"]`` -> the study's 17 AU intensities).

    Groups keep the given order; an unknown or repeated group raises :class:`FeatureError`.
    """
    groups = list(groups)
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
    columns: list[str] = []
    for group in groups:
        if group == "au":
            columns.extend(STUDY_AU_COLUMNS)
        elif group == "blendshapes":
            columns.extend(blendshape_columns())
        else:
            columns.extend(POSE_COLUMNS)
    return columns


def require_columns(available: Iterable[str], groups: Iterable[str], where: str) -> list[str]:
    """``feature_columns(groups)``, checking that a table (named by ``where``) has every one of them."""
    columns = feature_columns(groups)
    present = set(available)
    missing = [c for c in columns if c not in present]
    if missing:
        raise FeatureError(
            f"{where} lacks {len(missing)} feature column(s) of features.groups={list(groups)}: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}. The OpenFace backend gives no blendshapes "
            "(use extract.backend=embedded for them); otherwise rerun `dvc repro extract`."
        )
    return columns
