"""Synthetic people from MakeHuman's CC0 data files, without the MakeHuman application.

Public API (what the renderer, the Unity export, the stages and the tests import from here):

- :class:`HumanParams` (params section ``humans``), :class:`IdentitySpec`, :func:`sample_identities`,
  :func:`study6_identities`;
- :class:`ExpressionParams` (section ``expressions``), :func:`load_preset`, :func:`resolve_preset`,
  :func:`sample_expression`, :func:`list_presets`;
- :class:`Human` (``Human.build(spec)``, ``human.pose(unit_weights, intensity)``), :class:`MeshPart`;
- :class:`TextureParams` (section ``humans.textures``) and :class:`TextureSpec` (an identity's chosen
  maps, ``spec.texture_labels()`` for metadata), see :mod:`sim2real_faces.humans.textures`.

Facts worth knowing (checked in tests/test_humans.py):

- face-poseunits.bvh is Z-up. MakeHuman decides that from the lower leg (``lowerleg02.L`` first);
  guessing from the head's children (which point forward) reads it as Y-up, and then brow units
  turn about the wrong axis (inner brows swing forward instead of rising).
- Each unit's rotation acts in world axes about its bone's head (MakeHuman's setPose conjugates it
  into the bone's rest frame, the chain moves it back), composed down the bone hierarchy.
- Solid brow strips hide the brow movement from MediaPipe: untextured brows are painted into the
  skin colour (``eyebrow_mode: painted``); with skin textures the brows are the proxy cards with
  their alpha-masked hair maps (``eyebrow_mode: proxy``), which let the skin show through.
- Mesh parts are split at uv seams; each split row remembers its source vertex
  (``human.part_source``), morphs, pose units, proxy fits and skinning act on the source vertices
  and normals come from the unsplit mesh, so seams neither tear nor crease.
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
from sim2real_faces.humans.textures import TextureParams, TextureSpec

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
    "TextureParams",
    "TextureSpec",
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
