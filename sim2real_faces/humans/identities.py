"""Who is rendered: params section ``humans``, identity specs and their seeded sampler.

An :class:`IdentitySpec` fixes everything about one synthetic person: MakeHuman macro values
(ethnicity weights, gender, age, muscle, weight), face-detail modifier values, proxies (eyebrows,
eyelashes, hair, eyes, teeth, tongue) and colours. ``sample_identities(params, seed)`` draws a
balanced, varied set (the default) or returns the study's six people (``identity_set: study6``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from sim2real_faces.allocation import largest_remainder
from sim2real_faces.humans import formats, textures
from sim2real_faces.humans.errors import HumanParamsError
from sim2real_faces.humans.textures import TextureParams, TextureSpec
from sim2real_faces.params import conf_default
from sim2real_faces.seeds import HUMANS_WORD, TEXTURES_WORD, mixed_sequence

ETHNICITIES = ("african", "asian", "caucasian")
GENDERS = ("female", "male")
MIN_AGE, MID_AGE, MAX_AGE = (
    1.0,
    25.0,
    90.0,
)  # MakeHuman's age scale (human.py): 0 -> 1 y, 0.5 -> 25 y, 1 -> 90 y
NO_HAIR = "none"

# Face-detail modifier groups of modeling_modifiers.json that shape the face (identity variety).
FACE_DETAIL_GROUPS = ("head", "forehead", "eyebrows", "eyes", "nose", "mouth", "ears", "chin", "cheek")

RGB = tuple[float, float, float]


def _default_skin() -> dict[str, RGB]:
    # sRGB albedos (not lit-sphere samples: those images are already shaded). Blended in linear light.
    return {"african": (0.42, 0.28, 0.20), "asian": (0.86, 0.68, 0.54), "caucasian": (0.90, 0.72, 0.62)}


def _default_hair_colors() -> dict[str, RGB]:
    return {
        "black": (0.05, 0.04, 0.035),
        "dark_brown": (0.16, 0.10, 0.07),
        "brown": (0.30, 0.19, 0.11),
        "light_brown": (0.48, 0.34, 0.22),
        "blonde": (0.72, 0.58, 0.38),
        "auburn": (0.42, 0.18, 0.09),
        "grey": (0.55, 0.54, 0.52),
        "white": (0.80, 0.79, 0.76),
    }


def _default_hair_color_weights() -> dict[str, dict[str, float]]:
    return {
        "african": {"black": 0.8, "dark_brown": 0.2},
        "asian": {"black": 0.75, "dark_brown": 0.25},
        "caucasian": {"dark_brown": 0.3, "brown": 0.3, "light_brown": 0.15, "blonde": 0.15, "auburn": 0.1},
    }


def _default_hair_styles() -> dict[str, list[str]]:
    return {
        # bob01, bob02, braid01 and short03 hang over an eye; untextured afro01 looks like bricks.
        "female": ["long01", "ponytail01", "short01", "short04"],
        "male": ["short01", "short02", "short04", NO_HAIR],
    }


@dataclass(frozen=True)
class HumanParams:
    """Params section ``humans``: how many identities and how they vary (conf/humans/*.yaml)."""

    identity_set: Literal["random", "study6"] = "random"
    count: int = 96
    # Relative shares of identity groups; 'mixed' = ethnicity weights drawn from a Dirichlet.
    ethnicity_mix: dict[str, float] = field(
        default_factory=lambda: {"african": 1.0, "asian": 1.0, "caucasian": 1.0, "mixed": 1.0}
    )
    mixed_concentration: float = 1.0
    female_share: float = 0.5
    gender_spread: float = 0.15  # female gender value in [0, spread], male in [1 - spread, 1]
    age_years: tuple[float, float] = (20.0, 80.0)
    muscle: tuple[float, float] = (0.35, 0.65)
    weight: tuple[float, float] = (0.35, 0.75)
    detail_groups: list[str] = field(default_factory=lambda: list(FACE_DETAIL_GROUPS))
    # Modifier-name prefixes never randomised: they imitate expressions.
    detail_exclude: list[str] = field(
        default_factory=lambda: ["mouth/mouth-angles", "eyebrows/eyebrows-angle"]
    )
    detail_count: tuple[int, int] = (8, 16)
    detail_range: tuple[float, float] = (-0.5, 0.5)
    detail_symmetric: bool = True
    skin_albedo: dict[str, RGB] = field(default_factory=_default_skin)
    skin_jitter: float = 0.05
    hair_styles: dict[str, list[str]] = field(default_factory=_default_hair_styles)
    hair_colors: dict[str, RGB] = field(default_factory=_default_hair_colors)
    hair_color_weights: dict[str, dict[str, float]] = field(default_factory=_default_hair_color_weights)
    grey_age_years: tuple[float, float] = (45.0, 85.0)  # P(grey/white hair) rises 0 -> 1 over this range
    # Thin-to-medium brows: thick solid strips read as lowered brows and hide anger.
    eyebrows: list[str] = field(
        default_factory=lambda: [
            "eyebrow001",
            "eyebrow002",
            "eyebrow003",
            "eyebrow004",
            "eyebrow005",
            "eyebrow006",
        ]
    )
    eyelashes: list[str] = field(
        default_factory=lambda: ["eyelashes01", "eyelashes02", "eyelashes03", "eyelashes04"]
    )
    # 'proxy': the brow cards, textured with their alpha-masked hair maps (the skin's shading shows
    # between the hairs); 'painted': brows drawn into the skin's vertex colour, for untextured skin only
    # (solid untextured brow strips hide the brow movement from MediaPipe).
    eyebrow_mode: Literal["painted", "proxy"] = "proxy"
    eyebrow_strength: float = 0.3
    eyes: Literal["high-poly", "low-poly"] = "high-poly"
    teeth: str = "teeth_base"
    tongue: str = "tongue01"
    region: Literal["upper", "full"] = "upper"
    # Image textures (sub-section humans.textures; the default is conf/humans/default.yaml's, which holds
    # every value); None draws every part in its flat albedo.
    textures: TextureParams | None = field(
        default_factory=conf_default(TextureParams, "humans/default.yaml", "textures", "humans.textures")
    )


@dataclass(frozen=True)
class IdentitySpec:
    """Everything that makes one synthetic person (JSON-serialisable through :meth:`to_dict`)."""

    name: str
    ethnicity: dict[str, float]  # african / asian / caucasian weights, summing to 1
    gender: float  # 0 = female, 1 = male (MakeHuman's macro value)
    age_years: float  # 1..90 on MakeHuman's age scale
    muscle: float = 0.5
    weight: float = 0.5
    details: dict[str, float] = field(default_factory=dict)  # face-detail modifier -> value
    skin_color: RGB = (0.90, 0.72, 0.62)  # sRGB albedo
    hair_style: str = NO_HAIR
    hair_color: RGB = (0.05, 0.04, 0.035)
    eyebrow_style: str = "eyebrow002"
    eyebrow_color: RGB = (0.05, 0.04, 0.035)
    eyebrow_mode: str = "painted"  # 'painted' into the skin colour, or 'proxy' (the solid brow strip mesh)
    eyebrow_strength: float = 0.3  # painted brows: how far the skin colour moves to eyebrow_color
    eyelash_style: str = "eyelashes01"
    eyelash_color: RGB = (0.03, 0.025, 0.02)
    eye_style: str = "high-poly"
    teeth_style: str = "teeth_base"
    tongue_style: str = "tongue01"
    region: str = "upper"
    textures: TextureSpec | None = None  # chosen maps and their jitter; None = flat albedos

    @property
    def ethnicity_label(self) -> str:
        """The dominant ethnicity, or ``mixed`` when none has at least 2/3 of the weight."""
        best = max(ETHNICITIES, key=lambda e: self.ethnicity.get(e, 0.0))
        return best if self.ethnicity.get(best, 0.0) >= 2 / 3 else "mixed"

    @property
    def gender_label(self) -> str:
        return "female" if self.gender < 0.5 else "male"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        if data["textures"] is not None:
            data["textures"]["tone_gain"] = list(data["textures"]["tone_gain"])
        return data

    def texture_labels(self) -> dict[str, str]:
        """Which maps this identity wears (``skin_map``, ``iris_map``; 'none' when untextured)."""
        if self.textures is None:
            return {"skin_map": "none", "iris_map": "none"}
        return self.textures.labels()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IdentitySpec:
        """Inverse of :meth:`to_dict` (validated)."""
        values = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HumanParamsError(f"Identity spec has unknown key(s) {unknown}; known: {sorted(known)}.")
        for key in ("skin_color", "hair_color", "eyebrow_color", "eyelash_color"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        if values.get("textures") is not None:
            try:
                values["textures"] = TextureSpec.from_dict(values["textures"])
            except (TypeError, KeyError, ValueError) as error:
                raise HumanParamsError(f"Identity spec textures {values['textures']!r}: {error}.") from error
        spec = cls(**values)
        validate_spec(spec)
        return spec


# ------------------------------------------------------------------------------------ the study six
def study6_identities() -> list[IdentitySpec]:
    """The original study's six MakeHuman people (macro sliders only, no detail modifiers).

    Young = 25 years (MakeHuman's default age, the pure 'young' targets), old = 75 years.
    """
    hair = _default_hair_colors()
    skin = _default_skin()

    def person(
        name: str, eth: str, gender: float, age: float, hair_style: str, hair_color: str
    ) -> IdentitySpec:
        colour = hair[hair_color]
        return IdentitySpec(
            name=name,
            ethnicity={e: float(e == eth) for e in ETHNICITIES},
            gender=gender,
            age_years=age,
            skin_color=skin[eth],
            hair_style=hair_style,
            hair_color=colour,
            eyebrow_style="eyebrow002",
            eyebrow_color=_darker(colour),
            eyelash_style="eyelashes01",
        )

    return [
        person("black_female", "african", 0.0, 30.0, "ponytail01", "black"),
        person("black_male", "african", 1.0, 30.0, "short04", "black"),
        person("old_caucasian_female", "caucasian", 0.0, 75.0, "short01", "grey"),
        person("old_caucasian_male", "caucasian", 1.0, 75.0, "short02", "white"),
        person("young_asian_female", "asian", 0.0, 25.0, "long01", "black"),
        person("young_asian_male", "asian", 1.0, 25.0, "short02", "black"),
    ]


def _darker(rgb: RGB, factor: float = 0.8) -> RGB:
    return (rgb[0] * factor, rgb[1] * factor, rgb[2] * factor)


# ----------------------------------------------------------------------------------- face modifiers
@dataclass(frozen=True)
class DetailModifier:
    """One face-detail modifier of modeling_modifiers.json."""

    name: str  # MakeHuman's modifier name, e.g. 'nose/nose-scale-horiz-decr|incr' or 'head/head-oval'
    group: str
    min_target: str | None  # target path (relative to makehuman/) used for negative values
    max_target: str  # target path used for positive values (or the only one)

    @property
    def two_sided(self) -> bool:
        return self.min_target is not None

    def mirror(self) -> str | None:
        """The modifier of the other side ('l-' <-> 'r-'), if this one is sided."""
        target = self.name.split("/", 1)[1]
        for a, b in (("l-", "r-"), ("r-", "l-")):
            if target.startswith(a):
                return f"{self.group}/{b}{target[2:]}"
        return None


@functools.lru_cache(maxsize=1)
def detail_modifiers() -> dict[str, DetailModifier]:
    """All modifiers of modeling_modifiers.json's groups whose targets exist, by name."""
    known = set(formats.available("core/targets/"))
    result = {}
    for group in formats.modeling_modifiers():
        gname = group["group"]
        for mod in group.get("modifiers", []):
            if "target" not in mod:
                continue
            target = mod["target"]
            if "min" in mod and "max" in mod:
                name = f"{gname}/{target}-{mod['min']}|{mod['max']}"
                lo = f"core/targets/{gname}/{target}-{mod['min']}.target"
                hi = f"core/targets/{gname}/{target}-{mod['max']}.target"
            else:
                name, lo, hi = f"{gname}/{target}", None, f"core/targets/{gname}/{target}.target"
            if hi in known and (lo is None or lo in known):
                result[name] = DetailModifier(name, gname, lo, hi)
    return result


def eligible_detail_modifiers(params: HumanParams) -> list[str]:
    """Names of the modifiers that identity sampling may set (groups minus exclusions)."""
    mods = detail_modifiers()
    groups = set(params.detail_groups)
    return sorted(
        name
        for name, mod in mods.items()
        if mod.group in groups and not any(name.startswith(prefix) for prefix in params.detail_exclude)
    )


# ------------------------------------------------------------------------------------ macro targets
def age_value(age_years: float) -> float:
    """MakeHuman's age slider value (0..1) for an age in years (human.py setAgeYears)."""
    if age_years < MID_AGE:
        return (age_years - MIN_AGE) / ((MID_AGE - MIN_AGE) * 2)
    return (age_years - MID_AGE) / ((MAX_AGE - MID_AGE) * 2) + 0.5


def _age_weights(age: float) -> dict[str, float]:
    # human.py _setAgeVals
    if age < 0.5:
        young = max(0.0, (age - 0.1875) * 3.2)
        return {
            "baby": max(0.0, 1 - age * 5.333),
            "child": max(0.0, min(1.0, 5.333 * age) - young),
            "young": young,
            "old": 0.0,
        }
    old = max(0.0, age * 2 - 1)
    return {"baby": 0.0, "child": 0.0, "young": 1 - old, "old": old}


def _three_way(value: float, names: tuple[str, str, str]) -> dict[str, float]:
    # human.py _setMuscleVals/_setWeightVals: min/average/max linear around 0.5
    lo, avg, hi = names
    if value < 0.5:
        return {lo: 1 - value / 0.5, avg: value / 0.5, hi: 0.0}
    return {lo: 0.0, avg: 1 - (value - 0.5) / 0.5, hi: (value - 0.5) / 0.5}


def macro_targets(spec: IdentitySpec) -> dict[str, float]:
    """Macro target paths and weights of MakeHuman's macro modifiers for ``spec``.

    ``{ethnicity}-{gender}-{age}`` targets weigh ethnicity x gender x age; the universal
    ``{gender}-{age}-{muscle}-{weight}`` targets weigh gender x age x muscle x weight (their
    averagemuscle-averageweight members are empty files and contribute nothing).
    """
    eth = _normalised_ethnicity(spec.ethnicity, spec.name)
    gender = {"female": 1.0 - spec.gender, "male": spec.gender}
    ages = _age_weights(age_value(spec.age_years))
    muscle = _three_way(spec.muscle, ("minmuscle", "averagemuscle", "maxmuscle"))
    weight = _three_way(spec.weight, ("minweight", "averageweight", "maxweight"))
    result: dict[str, float] = {}
    for e, we in eth.items():
        for g, wg in gender.items():
            for a, wa in ages.items():
                w = we * wg * wa
                if w > 1e-6:
                    result[f"core/targets/macrodetails/{e}-{g}-{a}.target"] = w
    for g, wg in gender.items():
        for a, wa in ages.items():
            for m, wm in muscle.items():
                for k, wk in weight.items():
                    w = wg * wa * wm * wk
                    if w > 1e-6 and not (m == "averagemuscle" and k == "averageweight"):
                        result[f"core/targets/macrodetails/universal-{g}-{a}-{m}-{k}.target"] = w
    return result


def detail_targets(details: dict[str, float]) -> dict[str, float]:
    """Target paths and weights for face-detail modifier values (negative = the 'min' target)."""
    mods = detail_modifiers()
    result: dict[str, float] = {}
    for name, value in details.items():
        if name not in mods:
            raise HumanParamsError(
                f"Unknown face-detail modifier '{name}' (see core/modifiers/modeling_modifiers.json)."
            )
        mod = mods[name]
        if value < 0 and mod.two_sided:
            result[mod.min_target] = result.get(mod.min_target, 0.0) - value  # type: ignore[index]
        elif value != 0:
            result[mod.max_target] = result.get(mod.max_target, 0.0) + abs(value)
    return result


def _normalised_ethnicity(weights: dict[str, float], where: str) -> dict[str, float]:
    unknown = sorted(set(weights) - set(ETHNICITIES))
    if unknown:
        raise HumanParamsError(f"{where}: unknown ethnicity {unknown}; use {list(ETHNICITIES)}.")
    if any(v < 0 or not math.isfinite(v) for v in weights.values()):
        raise HumanParamsError(f"{where}: ethnicity weights must be finite and >= 0, got {weights}.")
    total = sum(weights.values())
    if total <= 0:
        raise HumanParamsError(f"{where}: ethnicity weights sum to 0; give at least one positive weight.")
    return {e: weights.get(e, 0.0) / total for e in ETHNICITIES}


# ------------------------------------------------------------------------------------- validation
def proxy_files(kind: str) -> dict[str, str]:
    """Available proxy styles of ``kind`` (eyebrows, eyelashes, hair, teeth, tongue, eyes) -> .mhclo path."""
    return dict(_proxy_files(kind))


@functools.cache
def _proxy_files(kind: str) -> dict[str, str]:
    prefix = "core/eyes/" if kind == "eyes" else f"assets/{kind}/"
    styles = {}
    for rel in formats.available(prefix):
        if rel.endswith(".mhclo"):
            styles[rel.rsplit("/", 2)[-2]] = rel
    return styles


def _check_range(
    name: str, value: tuple[float, float], lo: float | None = None, hi: float | None = None
) -> None:
    a, b = value
    if a > b:
        raise HumanParamsError(f"params humans.{name} = [{a}, {b}] is inverted; write [low, high].")
    if (lo is not None and a < lo) or (hi is not None and b > hi):
        raise HumanParamsError(f"params humans.{name} = [{a}, {b}] must lie within [{lo}, {hi}].")


def _check_styles(name: str, kind: str, styles: list[str], allow_none: bool = False) -> None:
    known = proxy_files(kind)
    for style in styles:
        if style == NO_HAIR and allow_none:
            continue
        if style not in known:
            raise HumanParamsError(
                f"params humans.{name}: unknown {kind} style '{style}'; available: {sorted(known)}"
                + (f" or '{NO_HAIR}'." if allow_none else ".")
            )


def _check_rgb(name: str, rgb: RGB) -> None:
    if len(rgb) != 3 or any(not (0.0 <= c <= 1.0) for c in rgb):
        raise HumanParamsError(f"params humans.{name} = {rgb} must be 3 sRGB values in [0, 1].")


def validate_params(params: HumanParams) -> None:
    """Raise :class:`HumanParamsError` naming the first bad value of section ``humans``."""
    if params.count < 1:
        raise HumanParamsError(f"params humans.count = {params.count}; need at least 1 identity.")
    groups = set(params.ethnicity_mix)
    unknown = sorted(groups - set(ETHNICITIES) - {"mixed"})
    if unknown:
        raise HumanParamsError(
            f"params humans.ethnicity_mix: unknown ethnicity {unknown}; use {[*list(ETHNICITIES), 'mixed']}."
        )
    if any(v < 0 for v in params.ethnicity_mix.values()) or sum(params.ethnicity_mix.values()) <= 0:
        raise HumanParamsError(
            f"params humans.ethnicity_mix = {params.ethnicity_mix}: shares must be >= 0, some > 0."
        )
    if params.mixed_concentration <= 0:
        raise HumanParamsError(
            f"params humans.mixed_concentration = {params.mixed_concentration} must be > 0."
        )
    if not 0.0 <= params.female_share <= 1.0:
        raise HumanParamsError(f"params humans.female_share = {params.female_share} must be in [0, 1].")
    if not 0.0 <= params.gender_spread <= 0.5:
        raise HumanParamsError(f"params humans.gender_spread = {params.gender_spread} must be in [0, 0.5].")
    _check_range("age_years", params.age_years, MIN_AGE, MAX_AGE)
    _check_range("muscle", params.muscle, 0.0, 1.0)
    _check_range("weight", params.weight, 0.0, 1.0)
    _check_range("detail_range", params.detail_range, -1.0, 1.0)
    lo, hi = params.detail_count
    if lo < 0:
        raise HumanParamsError(f"params humans.detail_count = [{lo}, {hi}]: counts must be >= 0.")
    _check_range("detail_count", (float(lo), float(hi)))
    bad_groups = sorted(set(params.detail_groups) - set(FACE_DETAIL_GROUPS) - {"neck"})
    if bad_groups:
        raise HumanParamsError(
            f"params humans.detail_groups: unknown {bad_groups}; use {list(FACE_DETAIL_GROUPS)}."
        )
    if hi > 0 and len(eligible_detail_modifiers(params)) == 0:
        raise HumanParamsError(
            "params humans.detail_exclude removes every detail modifier; lower detail_count to 0."
        )
    missing_skin = sorted(set(ETHNICITIES) - set(params.skin_albedo))
    if missing_skin or set(params.skin_albedo) - set(ETHNICITIES):
        raise HumanParamsError(
            f"params humans.skin_albedo needs exactly {list(ETHNICITIES)}, got {sorted(params.skin_albedo)}."
        )
    for eth, rgb in params.skin_albedo.items():
        _check_rgb(f"skin_albedo.{eth}", rgb)
    if not 0.0 <= params.skin_jitter < 0.5:
        raise HumanParamsError(f"params humans.skin_jitter = {params.skin_jitter} must be in [0, 0.5).")
    if sorted(params.hair_styles) != sorted(GENDERS) or not all(params.hair_styles.values()):
        raise HumanParamsError(f"params humans.hair_styles needs non-empty lists for {list(GENDERS)}.")
    for gender, styles in params.hair_styles.items():
        _check_styles(f"hair_styles.{gender}", "hair", styles, allow_none=True)
    for colour, rgb in params.hair_colors.items():
        _check_rgb(f"hair_colors.{colour}", rgb)
    for needed in ("grey", "white"):
        if needed not in params.hair_colors:
            raise HumanParamsError(f"params humans.hair_colors needs '{needed}' (used for older identities).")
    if sorted(params.hair_color_weights) != sorted(ETHNICITIES):
        raise HumanParamsError(f"params humans.hair_color_weights needs exactly {list(ETHNICITIES)}.")
    for eth, weights in params.hair_color_weights.items():
        unknown_colours = sorted(set(weights) - set(params.hair_colors))
        if (
            unknown_colours
            or not weights
            or any(w < 0 for w in weights.values())
            or sum(weights.values()) <= 0
        ):
            raise HumanParamsError(
                f"params humans.hair_color_weights.{eth} = {weights}: colours must be keys of hair_colors "
                f"({sorted(params.hair_colors)}) with weights >= 0, some > 0."
            )
    _check_range("grey_age_years", params.grey_age_years)
    if not params.eyebrows or not params.eyelashes:
        raise HumanParamsError("params humans.eyebrows and humans.eyelashes need at least one style each.")
    _check_styles("eyebrows", "eyebrows", params.eyebrows)
    if not 0.0 <= params.eyebrow_strength <= 1.0:
        raise HumanParamsError(
            f"params humans.eyebrow_strength = {params.eyebrow_strength} must be in [0, 1]."
        )
    _check_styles("eyelashes", "eyelashes", params.eyelashes)
    _check_styles("teeth", "teeth", [params.teeth])
    _check_styles("tongue", "tongue", [params.tongue])
    if params.textures is not None:
        textures.validate_params(
            params.textures, [s for styles in params.hair_styles.values() for s in styles]
        )
        if params.textures.enabled and params.textures.skin and params.eyebrow_mode == "painted":
            raise HumanParamsError(
                "params humans.eyebrow_mode = painted colours skin vertices, which a skin texture replaces: "
                "use eyebrow_mode: proxy (alpha-mapped brows) or humans.textures.skin: false."
            )


def validate_spec(spec: IdentitySpec) -> None:
    """Raise :class:`HumanParamsError` when ``spec`` cannot be built."""
    _normalised_ethnicity(spec.ethnicity, f"identity '{spec.name}'")
    if not 0.0 <= spec.gender <= 1.0:
        raise HumanParamsError(
            f"identity '{spec.name}': gender {spec.gender} must be in [0, 1] (0 female, 1 male)."
        )
    if not MIN_AGE <= spec.age_years <= MAX_AGE:
        raise HumanParamsError(
            f"identity '{spec.name}': age {spec.age_years} must be in [{MIN_AGE}, {MAX_AGE}] years."
        )
    for key in ("muscle", "weight"):
        if not 0.0 <= getattr(spec, key) <= 1.0:
            raise HumanParamsError(f"identity '{spec.name}': {key} {getattr(spec, key)} must be in [0, 1].")
    mods = detail_modifiers()
    for name, value in spec.details.items():
        if name not in mods:
            raise HumanParamsError(f"identity '{spec.name}': unknown face-detail modifier '{name}'.")
        if not -1.0 <= value <= 1.0:
            raise HumanParamsError(f"identity '{spec.name}': modifier '{name}' = {value} must be in [-1, 1].")
    for kind, style in (
        ("eyebrows", spec.eyebrow_style),
        ("eyelashes", spec.eyelash_style),
        ("teeth", spec.teeth_style),
        ("tongue", spec.tongue_style),
        ("eyes", spec.eye_style),
    ):
        if style not in proxy_files(kind):
            raise HumanParamsError(
                f"identity '{spec.name}': unknown {kind} style '{style}'; known {sorted(proxy_files(kind))}."
            )
    if spec.hair_style != NO_HAIR and spec.hair_style not in proxy_files("hair"):
        raise HumanParamsError(
            f"identity '{spec.name}': unknown hair style '{spec.hair_style}'; "
            f"known {sorted(proxy_files('hair'))} or 'none'."
        )
    for key in ("skin_color", "hair_color", "eyebrow_color", "eyelash_color"):
        rgb = getattr(spec, key)
        if len(rgb) != 3 or any(not 0.0 <= c <= 1.0 for c in rgb):
            raise HumanParamsError(f"identity '{spec.name}': {key} {rgb} must be 3 sRGB values in [0, 1].")
    if spec.eyebrow_mode not in ("painted", "proxy"):
        raise HumanParamsError(
            f"identity '{spec.name}': eyebrow_mode '{spec.eyebrow_mode}' must be 'painted' or 'proxy'."
        )
    if not 0.0 <= spec.eyebrow_strength <= 1.0:
        raise HumanParamsError(
            f"identity '{spec.name}': eyebrow_strength {spec.eyebrow_strength} must be in [0, 1]."
        )
    if spec.region not in ("upper", "full"):
        raise HumanParamsError(f"identity '{spec.name}': region '{spec.region}' must be 'upper' or 'full'.")
    if spec.textures is not None:
        _validate_texture_spec(spec)


def _validate_texture_spec(spec: IdentitySpec) -> None:
    tex = spec.textures
    assert tex is not None
    where = f"identity '{spec.name}' textures"
    known = set(formats.available("assets/"))
    for rel in [*tex.skin_maps, tex.skin_material, tex.iris_map or None]:
        if rel is not None and rel not in known and rel not in set(formats.available("core/")):
            raise HumanParamsError(f"{where}: '{rel}' is not a registered MakeHuman file.")
    if tex.skin_maps and (
        any(w <= 0 for w in tex.skin_maps.values()) or abs(sum(tex.skin_maps.values()) - 1.0) > 1e-3
    ):
        raise HumanParamsError(f"{where}: skin map weights {tex.skin_maps} must be > 0 and sum to 1.")
    if tex.skin_maps and spec.eyebrow_mode == "painted":
        raise HumanParamsError(
            f"{where}: painted eyebrows colour skin vertices, which the skin map replaces; "
            "use eyebrow_mode 'proxy' or no skin maps."
        )
    if not 16 <= tex.max_size <= 4096:
        raise HumanParamsError(f"{where}: max_size {tex.max_size} must be in [16, 4096].")
    for part, mode in tex.alpha_modes.items():
        if mode not in ("opaque", "mask", "blend"):
            raise HumanParamsError(f"{where}: alpha mode {part}={mode!r}; use opaque, mask or blend.")


# --------------------------------------------------------------------------------------- sampling
def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def skin_albedo(ethnicity: dict[str, float], albedos: dict[str, RGB], brightness: float = 1.0) -> RGB:
    """sRGB skin albedo: per-ethnicity albedos blended by the weights in linear light, then scaled."""
    eth = _normalised_ethnicity(ethnicity, "skin_albedo")
    linear = sum(w * textures.srgb_to_linear(albedos[e]) for e, w in eth.items())  # in [0, 1]: validated
    return tuple(float(round(v, 4)) for v in _linear_to_srgb(np.asarray(linear) * brightness))  # type: ignore[return-value]


def _allocate(shares: dict[str, float], count: int) -> list[str]:
    """Largest-remainder allocation of ``count`` slots to groups by share (deterministic)."""
    keys = [k for k in shares if shares[k] > 0]
    total = sum(shares[k] for k in keys)
    base = largest_remainder({k: shares[k] / total for k in keys}, count)
    return [k for k in keys for _ in range(base[k])]


def sample_identities(params: HumanParams, seed: int) -> list[IdentitySpec]:
    """The identities of a run: the study's six, or ``params.count`` varied people drawn from ``seed``.

    Random identities are stratified: ethnicity groups get counts proportional to
    ``ethnicity_mix`` (largest remainder), genders alternate within each group, ages are spread
    over ``age_years`` by stratified sampling; everything else is drawn per identity from its own
    child seed. Same params and seed -> the same list.
    """
    validate_params(params)
    if params.identity_set == "study6":
        # the six people's brows follow the params (a textured skin needs alpha-mapped proxy brows)
        six = [
            dataclasses.replace(s, eyebrow_mode=params.eyebrow_mode, eyebrow_strength=params.eyebrow_strength)
            for s in study6_identities()
        ]
        return _with_textures(params, six, seed)
    root = mixed_sequence(seed, HUMANS_WORD)  # keep this stream apart from other users of seed
    rng = np.random.default_rng(root.spawn(1)[0])
    groups = _allocate(params.ethnicity_mix, params.count)
    rng.shuffle(groups)
    # genders balanced within each ethnicity group (female_share of each group, rounded)
    gender_list = [""] * params.count
    for group in sorted(set(groups)):
        slots = [i for i in range(params.count) if groups[i] == group]
        exact = params.female_share * len(slots)
        n_female = math.floor(exact) + int(rng.uniform() < exact - math.floor(exact))
        picks = rng.permutation(len(slots))
        for rank, k in enumerate(picks):
            gender_list[slots[k]] = "female" if rank < n_female else "male"
    # stratified ages: one uniform draw per equal-width stratum, strata shuffled
    lo, hi = params.age_years
    strata = (np.arange(params.count) + rng.uniform(size=params.count)) / params.count
    rng.shuffle(strata)
    ages = lo + strata * (hi - lo)
    eligible = eligible_detail_modifiers(params)
    children = root.spawn(params.count + 1)[1:]
    specs = []
    for i in range(params.count):
        specs.append(
            _sample_one(
                params,
                i,
                groups[i],
                gender_list[i],
                float(ages[i]),
                eligible,
                np.random.default_rng(children[i]),
            )
        )
    return _with_textures(params, specs, seed)


def _with_textures(params: HumanParams, specs: list[IdentitySpec], seed: int) -> list[IdentitySpec]:
    """Each identity's texture choice from its own stream (identity i: seed, 'MH', 'TX', i).

    A stream apart from the identity sampler's, so turning textures on or off leaves every other
    draw (shape, colours, styles) as it was.
    """
    tex = params.textures
    if tex is None or not tex.enabled:
        return specs
    result = []
    for i, spec in enumerate(specs):
        rng = np.random.default_rng(mixed_sequence(seed, HUMANS_WORD, TEXTURES_WORD, i))
        chosen = textures.choose_textures(
            tex, spec.ethnicity, spec.gender_label, spec.age_years, spec.hair_style, rng
        )
        result.append(dataclasses.replace(spec, textures=chosen))
    return result


def _sample_one(
    params: HumanParams,
    index: int,
    group: str,
    gender: str,
    age: float,
    eligible: list[str],
    rng: np.random.Generator,
) -> IdentitySpec:
    if group == "mixed":
        w = rng.dirichlet([params.mixed_concentration] * len(ETHNICITIES))
        ethnicity = {e: float(round(v, 4)) for e, v in zip(ETHNICITIES, w, strict=False)}
    else:
        ethnicity = {e: float(e == group) for e in ETHNICITIES}
    spread = params.gender_spread
    g = float(rng.uniform(0.0, spread)) if gender == "female" else float(rng.uniform(1.0 - spread, 1.0))
    muscle = float(rng.uniform(*params.muscle))
    weight = float(rng.uniform(*params.weight))
    details = _sample_details(params, eligible, rng)
    brightness = 1.0 + float(rng.uniform(-params.skin_jitter, params.skin_jitter))
    skin = skin_albedo(ethnicity, params.skin_albedo, brightness)
    # hair colour: grey/white with a probability rising over grey_age_years, else by ethnicity mix
    g_lo, g_hi = params.grey_age_years
    p_grey = 0.0 if age <= g_lo else 1.0 if age >= g_hi or g_hi == g_lo else (age - g_lo) / (g_hi - g_lo)
    if rng.uniform() < p_grey:
        colour_name = "grey" if rng.uniform() < 0.6 else "white"
    else:
        mix: dict[str, float] = {}
        for e, we in ethnicity.items():
            for c, wc in params.hair_color_weights[e].items():
                total = sum(params.hair_color_weights[e].values())
                mix[c] = mix.get(c, 0.0) + we * wc / total
        names = sorted(mix)
        p = np.array([mix[c] for c in names])
        colour_name = names[int(rng.choice(len(names), p=p / p.sum()))]
    hair_rgb = tuple(float(v) for v in params.hair_colors[colour_name])
    jitter = 1.0 + float(rng.uniform(-0.1, 0.1))
    hair_rgb = tuple(float(round(min(1.0, v * jitter), 4)) for v in hair_rgb)
    styles = params.hair_styles[gender]
    hair_style = styles[int(rng.integers(len(styles)))]
    brow = params.eyebrows[int(rng.integers(len(params.eyebrows)))]
    lash = params.eyelashes[int(rng.integers(len(params.eyelashes)))]
    brow_rgb = hair_rgb if colour_name in ("grey", "white") else _darker(hair_rgb, 0.85)  # type: ignore[arg-type]
    label = group if group != "mixed" else "mixed"
    return IdentitySpec(
        name=f"h{index:03d}_{label}_{gender}_{round(age)}",
        ethnicity=ethnicity,
        gender=round(g, 4),
        age_years=round(age, 2),
        muscle=round(muscle, 4),
        weight=round(weight, 4),
        details=details,
        skin_color=skin,
        hair_style=hair_style,
        hair_color=hair_rgb,  # type: ignore[arg-type]
        eyebrow_style=brow,
        eyebrow_color=tuple(float(round(v, 4)) for v in brow_rgb),  # type: ignore[arg-type]
        eyebrow_mode=params.eyebrow_mode,
        eyebrow_strength=params.eyebrow_strength,
        eyelash_style=lash,
        eyelash_color=(0.03, 0.025, 0.02),
        eye_style=params.eyes,
        teeth_style=params.teeth,
        tongue_style=params.tongue,
        region=params.region,
    )


def _sample_details(params: HumanParams, eligible: list[str], rng: np.random.Generator) -> dict[str, float]:
    lo_n, hi_n = params.detail_count
    n = int(rng.integers(lo_n, hi_n + 1)) if hi_n > 0 else 0
    if n == 0 or not eligible:
        return {}
    mods = detail_modifiers()
    pool = eligible
    if params.detail_symmetric:
        # draw one of each l/r pair (the r- side stands for both)
        pool = [m for m in eligible if not mods[m].name.split("/", 1)[1].startswith("l-")]
    chosen = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    lo, hi = params.detail_range
    details: dict[str, float] = {}
    for k in sorted(int(c) for c in chosen):
        name = pool[k]
        value = float(rng.uniform(lo, hi))
        if not mods[name].two_sided:
            value = abs(value)
        value = round(value, 4)
        details[name] = value
        mirror = mods[name].mirror()
        if params.detail_symmetric and mirror and mirror in mods and mirror in eligible:
            details[mirror] = value
    return details
