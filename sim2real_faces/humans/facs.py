"""FACS layer: action units (AUs) -> MakeHuman face pose units, and a per-class prototype sampler.

Sources of the table :data:`AU_UNITS`:

- the AU names and their muscles: Ekman, Friesen & Hager, *Facial Action Coding System* (1978; 2002
  manual);
- the class prototypes the conf files follow: Ekman & Friesen's EMFACS prototypes as summarised by
  Matsumoto & Ekman (2008) and the CK+ emotion rules (Lucey et al., 2010): happiness 6+12 (often
  with 25/26), sadness 1+4+15 (often 17), anger 4+5+7+23/24 (often 10, 17, 25/26 when shouting);
  crying adds eye squeeze (43/45 with 7), lip stretch (20) and an open mouth;
- the MakeHuman side: the frames of ``core/poseunits/face-poseunits.bvh`` (their names say what they
  move, e.g. ``LeftInnerBrowUp``); an AU is mapped to the unit(s) whose name and movement match its
  description, with weights so that intensity 1.0 is about the unit's full MakeHuman range.

MakeHuman's pose units are rotations of face bones; a weight above 1.0 extrapolates the rotation. The
params' ``peak_max`` caps every AU intensity and every unit weight (tests/test_facs.py checks that the
skin does not fold at that cap).

Per image (:func:`sample_facs`), from the frame's expression random stream, in this order: a global
strength; each core AU's intensity; for each optional AU whether it fires and its intensity; a
left/right asymmetry per fired AU; a few unrelated pose units at a low weight ("noise").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sim2real_faces.humans.errors import HumanParamsError
from sim2real_faces.params import ParamsError

# AU -> (FACS name, {pose unit: weight}). Units are the frames of face-poseunits.bvh.
AU_UNITS: dict[str, tuple[str, dict[str, float]]] = {
    # The inner-brow units alone lift a few vertices at the brow's head (MediaPipe's browInnerUp barely
    # moves even at 2.0); half the outer-brow units lift the medial half of the brow with it.
    "AU1": (
        "inner brow raiser",
        {"LeftInnerBrowUp": 1.0, "RightInnerBrowUp": 1.0, "LeftOuterBrowUp": 0.5, "RightOuterBrowUp": 0.5},
    ),
    "AU2": ("outer brow raiser", {"LeftOuterBrowUp": 1.0, "RightOuterBrowUp": 1.0}),
    "AU4": ("brow lowerer", {"LeftBrowDown": 1.0, "RightBrowDown": 1.0}),
    "AU5": ("upper lid raiser", {"LeftUpperLidOpen": 1.0, "RightUpperLidOpen": 1.0}),
    "AU6": ("cheek raiser", {"LeftCheekUp": 1.0, "RightCheekUp": 1.0}),
    "AU7": ("lid tightener", {"LeftLowerLidUp": 1.0, "RightLowerLidUp": 1.0}),
    "AU9": ("nose wrinkler", {"NoseWrinkler": 1.0}),
    "AU10": ("upper lip raiser", {"UpperLipUp": 1.0}),
    "AU11": ("nasolabial deepener", {"NasolabialDeepener": 1.0}),
    "AU12": ("lip corner puller", {"MouthLeftPullUp": 1.0, "MouthRightPullUp": 1.0}),
    "AU15": ("lip corner depressor", {"MouthLeftPullDown": 1.0, "MouthRightPullDown": 1.0}),
    "AU16": ("lower lip depressor", {"lowerLipDown": 1.0}),
    # The chin boss pushes the lower lip up and forward.
    "AU17": ("chin raiser", {"lowerLipUp": 0.8, "ChinForward": 0.5}),
    "AU18": ("lip pucker", {"LipsKiss": 1.0}),
    "AU20": ("lip stretcher", {"MouthLeftPullSide": 1.0, "MouthRightPullSide": 1.0}),
    "AU21": ("neck tightener", {"MouthLeftPlatysma": 1.0, "MouthRightPlatysma": 1.0}),
    # Tightening narrows the red of the lips: both lips drawn back.
    "AU23": ("lip tightener", {"UpperLipBackward": 1.0, "lowerLipBackward": 1.0}),
    # Pressing pushes the lower lip up against the upper one.
    "AU24": ("lip presser", {"lowerLipUp": 0.7, "UpperLipBackward": 0.4}),
    # Lips part: the lower lip drops with a slight jaw opening (lowerLipDown alone hardly parts the
    # lips of the MakeHuman mesh), the upper lip lifts a little.
    "AU25": ("lips part", {"lowerLipDown": 0.75, "JawDropStretched": 0.3, "UpperLipUp": 0.25}),
    "AU26": ("jaw drop", {"JawDrop": 1.0}),
    "AU27": ("mouth stretch", {"JawDropStretched": 1.0}),
    "AU43": ("eyes closed", {"LeftUpperLidClosed": 1.0, "RightUpperLidClosed": 1.0}),
    "AU45": ("blink", {"LeftUpperLidClosed": 1.0, "RightUpperLidClosed": 1.0}),
}

# Hard ceiling for facs.peak_max: beyond twice a unit's MakeHuman range rotations stop being faces.
PEAK_LIMIT = 2.0

_SIDE = re.compile(r"^(?:Mouth)?(Left|Right)(?!.*turn)")


class FacsParamsError(HumanParamsError, ParamsError):
    """A value in params section ``expressions.facs`` is unknown, out of range or inconsistent."""


@dataclass(frozen=True)
class OptionalAU:
    """An AU that fires with ``probability`` at an intensity uniform in ``intensity``."""

    probability: float
    intensity: tuple[float, float]


@dataclass(frozen=True)
class FacsClass:
    """One class's prototype: core AUs (always on, intensity ranges) and optional AUs."""

    core: dict[str, tuple[float, float]]
    optional: dict[str, OptionalAU]


@dataclass(frozen=True)
class NoiseParams:
    """A little activation of unrelated units: ``units`` of them, each at a weight in [0, max_weight].

    Units whose name starts with one of ``exclude`` (e.g. the tongue, hidden behind closed lips) and the
    units the image's AUs already move are never picked.
    """

    units: int
    max_weight: float
    exclude: list[str]


@dataclass(frozen=True)
class FacsParams:
    """Params section ``expressions.facs`` (conf/expressions/facs.yaml)."""

    preset_share: float
    """Share of images that draw one of the class's presets (``expressions.classes``) instead."""
    peak_max: float
    """Highest AU intensity and unit weight (1.0 = the unit's MakeHuman range)."""
    strength: tuple[float, float]
    """Per image, every AU intensity is multiplied by a strength uniform in this range (within [0, 1])."""
    asymmetry: float
    """Per fired AU, left units get (1 + a), right units (1 - a), a uniform in [-asymmetry, asymmetry]."""
    noise: NoiseParams
    classes: dict[str, FacsClass]


@dataclass(frozen=True)
class FacsSample:
    """One image's AUs: intensities (after strength, before asymmetry), asymmetries, unit weights."""

    aus: dict[str, float]
    asymmetry: dict[str, float]
    unit_weights: dict[str, float]
    strength: float
    noise_units: tuple[str, ...]


def unit_side(unit: str) -> str | None:
    """'Left', 'Right' or None (units on the midline, and gaze units like LeftEyeturnRight)."""
    m = _SIDE.match(unit)
    if m is None or "Eyeturn" in unit:
        return None
    return m.group(1)


def format_aus(aus: dict[str, float]) -> str:
    """The metadata form of fired AUs, e.g. ``"AU1:0.80;AU4:0.60"`` ("" when none)."""
    return ";".join(f"{au}:{value:.2f}" for au, value in aus.items())


def parse_aus(text: str) -> dict[str, float]:
    """Inverse of :func:`format_aus` (NaN or "" -> {})."""
    if not isinstance(text, str) or not text:
        return {}
    out = {}
    for item in text.split(";"):
        au, value = item.split(":")
        out[au] = float(value)
    return out


def _check_range(rng: tuple[float, float], where: str, peak_max: float) -> None:
    lo, hi = rng
    if lo < 0 or hi < 0:
        raise FacsParamsError(f"params {where} = [{lo}, {hi}]: intensities must be >= 0.")
    if lo > hi:
        raise FacsParamsError(f"params {where} = [{lo}, {hi}] is inverted; write [low, high].")
    if hi > peak_max:
        raise FacsParamsError(
            f"params {where} = [{lo}, {hi}] exceeds expressions.facs.peak_max = {peak_max}; "
            "lower it or raise peak_max."
        )


def validate_facs(params: FacsParams, classes: list[str], units: tuple[str, ...]) -> None:
    """Raise :class:`FacsParamsError` naming the key for the first bad value.

    ``classes`` are the dataset's classes (``expressions.classes``); ``units`` the known pose units.
    """
    where = "expressions.facs"
    if not 0.0 <= params.preset_share <= 1.0:
        raise FacsParamsError(f"params {where}.preset_share = {params.preset_share} must be in [0, 1].")
    if not 0.0 < params.peak_max <= PEAK_LIMIT:
        raise FacsParamsError(f"params {where}.peak_max = {params.peak_max} must be in (0, {PEAK_LIMIT}].")
    lo, hi = params.strength
    if not 0.0 <= lo <= hi <= 1.0:
        raise FacsParamsError(f"params {where}.strength = [{lo}, {hi}] must satisfy 0 <= low <= high <= 1.")
    if not 0.0 <= params.asymmetry <= 0.5:
        raise FacsParamsError(f"params {where}.asymmetry = {params.asymmetry} must be in [0, 0.5].")
    noise = params.noise
    if noise.units < 0 or not 0.0 <= noise.max_weight <= 1.0:
        raise FacsParamsError(
            f"params {where}.noise: units = {noise.units} must be >= 0 and max_weight = "
            f"{noise.max_weight} in [0, 1]."
        )
    bad_units = sorted(set(u for table in AU_UNITS.values() for u in table[1]) - set(units))
    if bad_units:  # the table itself is code; a MakeHuman data update could break it
        raise FacsParamsError(f"FACS table AU_UNITS names unknown pose units {bad_units}.")
    if set(params.classes) != set(classes):
        raise FacsParamsError(
            f"params {where}.classes has {sorted(params.classes)}; it needs exactly the classes of "
            f"expressions.classes {sorted(classes)}."
        )
    for cls, proto in params.classes.items():
        if not proto.core:
            raise FacsParamsError(f"params {where}.classes.{cls}.core is empty; name at least one AU.")
        for kind, aus in (("core", proto.core), ("optional", proto.optional)):
            for au in aus:
                if au not in AU_UNITS:
                    raise FacsParamsError(
                        f"params {where}.classes.{cls}.{kind}: unknown AU '{au}'; known: "
                        f"{', '.join(AU_UNITS)}."
                    )
        both = sorted(set(proto.core) & set(proto.optional))
        if both:
            raise FacsParamsError(f"params {where}.classes.{cls}: {both} are both core and optional.")
        for au, rng in proto.core.items():
            _check_range(rng, f"{where}.classes.{cls}.core.{au}", params.peak_max)
        for au, opt in proto.optional.items():
            key = f"{where}.classes.{cls}.optional.{au}"
            if not 0.0 <= opt.probability <= 1.0:
                raise FacsParamsError(f"params {key}.probability = {opt.probability} must be in [0, 1].")
            _check_range(opt.intensity, f"{key}.intensity", params.peak_max)


def au_unit_weights(aus: dict[str, float], asymmetry: dict[str, float], peak_max: float) -> dict[str, float]:
    """Pose-unit weights of AU intensities; left units x (1 + a), right x (1 - a); capped at peak_max.

    Units shared by several AUs add up (MakeHuman blends unit rotations additively).
    """
    weights: dict[str, float] = {}
    for au, value in aus.items():
        a = asymmetry.get(au, 0.0)
        for unit, w in AU_UNITS[au][1].items():
            side = unit_side(unit)
            factor = 1.0 + a if side == "Left" else 1.0 - a if side == "Right" else 1.0
            weights[unit] = weights.get(unit, 0.0) + w * value * factor
    return {u: float(min(w, peak_max)) for u, w in weights.items()}


def sample_facs(
    params: FacsParams, expression_class: str, rng: np.random.Generator, units: tuple[str, ...]
) -> FacsSample:
    """Draw one image's AUs for ``expression_class`` (see the module docstring for the draw order).

    ``units`` are the pose units noise may pick from (before ``noise.exclude``).
    """
    proto = params.classes[expression_class]
    strength = float(rng.uniform(*params.strength))
    aus: dict[str, float] = {}
    for au, rng_range in proto.core.items():
        aus[au] = strength * float(rng.uniform(*rng_range))
    for au, opt in proto.optional.items():
        fires = bool(rng.uniform() < opt.probability)
        value = strength * float(rng.uniform(*opt.intensity))  # drawn either way: a fixed draw count
        if fires:
            aus[au] = value
    asym = {au: float(rng.uniform(-params.asymmetry, params.asymmetry)) for au in aus}
    weights = au_unit_weights(aus, asym, params.peak_max)
    pool = [
        u
        for u in units
        if u not in weights and not any(u.startswith(prefix) for prefix in params.noise.exclude)
    ]
    k = min(params.noise.units, len(pool))
    picked = [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)] if k else []
    for unit in picked:
        weights[unit] = float(rng.uniform(0.0, params.noise.max_weight))
    return FacsSample(aus, asym, weights, strength, tuple(picked))
