"""Facial expressions: MakeHuman's .mhpose presets, extra presets from params, and their samplers.

A preset is a mapping of face pose units (frames of poseunits/face-poseunits.bvh) to weights in
[0, 1]. MakeHuman's presets live in expressions/*.mhpose. Params section ``expressions`` adds
*custom* presets, each an optional base preset with some unit weights set on top (e.g. anger01
with both brows fully lowered), says which presets make up each class, the intensity range (the
study drew 20%..100%) and how often a class gets tears (``Human.pose(..., tears=True)`` adds a
glossy ``tears`` part below the eyes).

``sampler`` chooses how an image's expression is drawn: ``presets`` (one preset of the class at an
intensity, the study's way) or ``facs`` (:mod:`sim2real_faces.humans.facs`: the class's prototype of
action units, with optional AUs, per-AU intensities, asymmetry and a little noise; a share
``facs.preset_share`` of the images still draws a preset).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sim2real_faces.humans import formats
from sim2real_faces.humans.errors import HumanParamsError, UnknownPresetError
from sim2real_faces.humans.facs import FacsParams, FacsParamsError, format_aus, sample_facs, validate_facs


@dataclass(frozen=True)
class CustomPreset:
    """A preset built in params: ``base`` preset's unit weights, then ``units`` set on top."""

    base: str | None = None
    units: dict[str, float] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class ExpressionParams:
    """Params section ``expressions``: every value comes from conf/expressions/*.yaml (no code defaults).

    In code, compose it: ``load_composed(ExpressionParams, "expressions", ("expressions=presets",))``
    (:mod:`sim2real_faces.compose`) gives the presets choice, no override the default profile's FACS.
    """

    classes: dict[str, list[str]]  # class -> its presets (the keys are sim2real_faces.CLASSES)
    intensity: tuple[float, float]
    custom: dict[str, CustomPreset]
    tears: dict[str, float]  # class -> P(tears)
    sampler: Literal["presets", "facs"]
    facs: FacsParams | None  # None: no FACS layer (sampler presets)


@dataclass(frozen=True)
class ExpressionChoice:
    """One sampled expression: class, preset name, intensity and whether tears are drawn.

    A FACS draw has ``preset`` "facs", ``intensity`` its strength, the fired ``aus`` and the final
    ``unit_weights`` (to pose at scale 1.0); a preset draw leaves ``unit_weights`` None.
    """

    expression_class: str
    preset: str
    intensity: float
    tears: bool
    aus: dict[str, float] = field(default_factory=dict)
    unit_weights: dict[str, float] | None = None

    @property
    def aus_text(self) -> str:
        """Fired AUs as ``"AU1:0.80;AU4:0.60"`` (the metadata column ``aus``)."""
        return format_aus(self.aus)


@functools.lru_cache(maxsize=1)
def list_presets() -> tuple[str, ...]:
    """Names of MakeHuman's .mhpose presets (expressions/*.mhpose)."""
    return tuple(
        sorted(
            rel.rsplit("/", 1)[1].removesuffix(".mhpose")
            for rel in formats.available(formats.EXPRESSIONS_DIR + "/")
            if rel.endswith(".mhpose")
        )
    )


def pose_unit_names() -> tuple[str, ...]:
    """Face pose unit names usable in presets (face-poseunits.json, without 'Rest')."""
    return tuple(n for n in formats.face_poseunit_names() if n != "Rest")


def load_preset(name: str) -> dict[str, float]:
    """Pose-unit weights of MakeHuman's expression preset ``name`` (e.g. 'laugh01'), in file order."""
    if name not in list_presets():
        raise UnknownPresetError(
            f"Unknown expression preset '{name}': no makehuman/{formats.EXPRESSIONS_DIR}/{name}.mhpose; "
            f"known: {', '.join(list_presets())} (or define it under expressions.custom)."
        )
    weights = formats.load_mhpose(f"{formats.EXPRESSIONS_DIR}/{name}.mhpose")
    units = set(pose_unit_names())
    unknown = sorted(set(weights) - units)
    if unknown:
        raise UnknownPresetError(
            f"{formats.EXPRESSIONS_DIR}/{name}.mhpose uses unknown pose units {unknown}."
        )
    return dict(weights)


def resolve_preset(name: str, params: ExpressionParams | None = None) -> dict[str, float]:
    """Pose-unit weights of ``name``: a custom preset of ``params`` or a MakeHuman preset."""
    custom = params.custom if params is not None else {}
    return _resolve(name, custom, ())


def _resolve(name: str, custom: dict[str, CustomPreset], chain: tuple[str, ...]) -> dict[str, float]:
    if name in chain:
        raise HumanParamsError(f"params expressions.custom: preset cycle {' -> '.join((*chain, name))}.")
    if name not in custom:
        return load_preset(name)
    preset = custom[name]
    weights = _resolve(preset.base, custom, (*chain, name)) if preset.base else {}
    units = set(pose_unit_names())
    for unit, w in preset.units.items():
        if unit not in units:
            raise UnknownPresetError(
                f"params expressions.custom.{name}: unknown pose unit '{unit}'; "
                f"known: {', '.join(sorted(units))}."
            )
        if not 0.0 <= w <= 1.0:
            raise HumanParamsError(f"params expressions.custom.{name}.units.{unit} = {w} must be in [0, 1].")
        weights[unit] = float(w)
    if not weights:
        raise HumanParamsError(f"params expressions.custom.{name} has no base and no units.")
    return weights


def validate_params(params: ExpressionParams) -> None:
    """Raise a :class:`HumanParamsError` (or :class:`UnknownPresetError`) for the first bad value."""
    lo, hi = params.intensity
    if lo > hi:
        raise HumanParamsError(f"params expressions.intensity = [{lo}, {hi}] is inverted; write [low, high].")
    if lo < 0 or hi > 2.0:
        raise HumanParamsError(f"params expressions.intensity = [{lo}, {hi}] must lie within [0, 2].")
    if not params.classes:
        raise HumanParamsError(
            "params expressions.classes is empty; name at least one class and its presets."
        )
    for cls, presets in params.classes.items():
        if not presets:
            raise HumanParamsError(f"params expressions.classes.{cls} has no presets.")
        for preset in presets:
            if preset not in params.custom and preset not in list_presets():
                raise UnknownPresetError(
                    f"params expressions.classes.{cls}: unknown preset '{preset}'; use one of "
                    f"{', '.join(list_presets())} or a name under expressions.custom "
                    f"({', '.join(params.custom)})."
                )
    for name in params.custom:
        if name in list_presets():
            raise HumanParamsError(
                f"params expressions.custom.{name} shadows MakeHuman's preset of that name; rename it."
            )
        resolve_preset(name, params)
    for cls, p in params.tears.items():
        if cls not in params.classes:
            raise HumanParamsError(
                f"params expressions.tears.{cls}: no such class (classes: {list(params.classes)})."
            )
        if not 0.0 <= p <= 1.0:
            raise HumanParamsError(f"params expressions.tears.{cls} = {p} must be a probability in [0, 1].")
    if params.sampler == "facs":
        if params.facs is None:
            raise FacsParamsError(
                "params expressions.sampler = facs needs a section expressions.facs "
                "(conf/expressions/facs.yaml); or choose expressions=presets."
            )
        validate_facs(params.facs, list(params.classes), pose_unit_names())


def require_presets(params: ExpressionParams, where: str) -> None:
    """Stop when ``where`` (a backend that bakes one mesh per preset) meets the per-image FACS sampler."""
    if params.sampler != "presets":
        raise FacsParamsError(
            f"{where} renders one morph target per preset and cannot pose per-image action units; "
            f"params expressions.sampler = {params.sampler}: choose expressions=presets for it."
        )


def sample_expression(
    params: ExpressionParams, expression_class: str, rng: np.random.Generator
) -> ExpressionChoice:
    """Draw the expression of one image of ``expression_class`` from ``rng``.

    ``sampler: presets``: a preset (uniform over the class's list), an intensity (uniform) and the
    tears flag; always three draws in this order, whatever the class. ``sampler: facs``: first one
    draw decides preset (share ``facs.preset_share``, then the three preset draws) or FACS
    (:func:`sim2real_faces.humans.facs.sample_facs`, then the tears draw).
    """
    if expression_class not in params.classes:
        raise HumanParamsError(
            f"Unknown expression class '{expression_class}'; "
            f"params expressions.classes has {list(params.classes)}."
        )
    if params.sampler == "facs":
        if params.facs is None:
            raise FacsParamsError("params expressions.sampler = facs needs a section expressions.facs.")
        if rng.uniform() >= params.facs.preset_share:
            drawn = sample_facs(params.facs, expression_class, rng, pose_unit_names())
            tears = bool(rng.uniform() < params.tears.get(expression_class, 0.0))
            return ExpressionChoice(
                expression_class, "facs", drawn.strength, tears, drawn.aus, drawn.unit_weights
            )
    presets = params.classes[expression_class]
    preset = presets[int(rng.integers(len(presets)))]
    intensity = float(rng.uniform(*params.intensity))
    tears = bool(rng.uniform() < params.tears.get(expression_class, 0.0))
    return ExpressionChoice(expression_class, preset, intensity, tears)
