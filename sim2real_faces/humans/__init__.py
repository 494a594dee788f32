"""Synthetic people from MakeHuman's CC0 data files, without the MakeHuman application.

Public API (the team contract's ``humans`` interface; ``sim2real_faces.makehuman`` re-exports it):

- :class:`HumanParams` (params section ``humans``), :class:`IdentitySpec`, :func:`sample_identities`,
  :func:`study6_identities`;
- :class:`ExpressionParams` (section ``expressions``), :func:`load_preset`, :func:`resolve_preset`,
  :func:`sample_expression`, :func:`list_presets`;
- :class:`Human` (``Human.build(spec)``, ``human.pose(unit_weights, intensity)``), :class:`MeshPart`.
"""

from sim2real_faces.humans.errors import (
    HumanParamsError,
    HumansError,
    MakeHumanFormatError,
    UnknownPresetError,
)
from sim2real_faces.humans.expressions import (
    CustomPreset,
    ExpressionChoice,
    ExpressionParams,
    list_presets,
    load_preset,
    pose_unit_names,
    resolve_preset,
    sample_expression,
)
from sim2real_faces.humans.expressions import validate_params as validate_expression_params
from sim2real_faces.humans.human import LIP_CORNER_VERTICES, Human, MeshPart, build_cached
from sim2real_faces.humans.identities import (
    ETHNICITIES,
    HumanParams,
    IdentitySpec,
    sample_identities,
    study6_identities,
)
from sim2real_faces.humans.identities import validate_params as validate_human_params

__all__ = [
    "ETHNICITIES",
    "LIP_CORNER_VERTICES",
    "CustomPreset",
    "ExpressionChoice",
    "ExpressionParams",
    "Human",
    "HumanParams",
    "HumanParamsError",
    "HumansError",
    "IdentitySpec",
    "MakeHumanFormatError",
    "MeshPart",
    "UnknownPresetError",
    "build_cached",
    "list_presets",
    "load_preset",
    "pose_unit_names",
    "resolve_preset",
    "sample_expression",
    "sample_identities",
    "study6_identities",
    "validate_expression_params",
    "validate_human_params",
]
