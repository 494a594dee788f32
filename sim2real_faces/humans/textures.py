"""Image textures of a person: which MakeHuman maps exist, which one an identity gets, and baking.

Params sub-section ``humans.textures`` (:class:`TextureParams`) says which parts are textured; the
sampler (:func:`choose_textures`) turns it into an identity's :class:`TextureSpec` (chosen map names,
seeded jitter), and :func:`bake_skin` / :func:`bake_hair` / :func:`plain_map` make the uint8 RGBA
images a :class:`~sim2real_faces.humans.human.MeshPart` carries.

Which maps exist is read from the asset registry, never assumed: MakeHuman's skin .mhmat files name
some maps that were never published (e.g. old lightskinned male, most middle-aged and old female
maps), and the afro01 and bob01 hair styles have no diffuse map. A skin map is chosen by the
nearest (age, gender) among the maps of the identity's skin tone (MakeHuman's asian skins use the
lightskinned maps, as their .mhmat files say), then tone-shifted toward the identity's own albedo.

All maps are sRGB with straight alpha; colour arithmetic (blending, tone shift, tint) is done in
linear light through 8-bit lookup tables, so baking a 1024-pixel map takes tens of milliseconds.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim2real_faces.humans import formats
from sim2real_faces.humans.errors import HumanParamsError

SKIN_MAP_DIR = "assets/skins/textures/"
SKIN_MAP_PATTERN = re.compile(r"^(young|middleage|old)_(dark|light)skinned_(male|female)_diffuse(\d*)\.png$")
AGE_GROUPS = ("young", "middleage", "old")
IRIS_DIRS = ("core/eyes/materials/", "assets/eyes/materials/")
HEAD_ABOVE_Y = 6.8  # dm, base mesh: vertices above this are head and upper neck (the tone reference)
TEXTURED_PARTS = ("skin", "eyes", "eyebrows", "eyelashes", "hair", "teeth", "tongue")
AlphaMode = Literal["opaque", "mask", "blend"]


@dataclass(frozen=True)
class TextureParams:
    """Params section ``humans.textures`` (conf/humans/default.yaml holds every value)."""

    enabled: bool
    max_size: int  # maps larger than this are shrunk (Lanczos); the originals are 2048 pixels
    skin: bool
    skin_age_years: dict[str, float]  # young / middleage / old: the age each skin map stands for
    gender_mismatch_years: float  # a map of the other gender costs as much as this age gap
    blend_min_share: float  # blend a dark- and a light-skinned map when the smaller share reaches this
    tone_shift: float  # 0 keeps the map's colour; 1 moves its face median to the identity's albedo
    tone_jitter: float  # brightness gain uniform in 1 +- this, redness (R up, B down) +- half, per identity
    sss_per_scale: float  # subsurface strength per unit of the .mhmat sssRScale (0 turns it off)
    iris: bool
    iris_maps: list[str]  # iris colours (file stems without _eye), one drawn per identity
    eyebrows: bool
    eyelashes: bool
    hair: bool
    hair_missing_map: Literal["error", "untextured"]
    teeth: bool
    tongue: bool
    cornea: bool  # the high-poly eye's transparent, glossy cornea shell
    alpha_modes: dict[str, str]  # eyebrows / eyelashes / hair -> opaque, mask or blend
    alpha_cutoff: float


@dataclass(frozen=True)
class TextureSpec:
    """The textures of one identity (part of its :class:`IdentitySpec`, JSON-serialisable)."""

    max_size: int
    skin_maps: dict[str, float]  # skin map path -> blend weight (sums to 1); {} = untextured skin
    skin_material: str  # .mhmat giving the skin's specular colour, shininess and sss scales
    tone_shift: float
    tone_gain: tuple[float, float, float]  # seeded per-channel jitter (linear gain)
    sss_per_scale: float
    iris_map: str  # path of the eye map, "" = per-vertex colours of brown_eye.png
    eyebrows: bool
    eyelashes: bool
    hair: bool
    teeth: bool
    tongue: bool
    cornea: bool
    alpha_modes: dict[str, str]
    alpha_cutoff: float

    @classmethod
    def from_dict(cls, data: dict) -> TextureSpec:
        values = dict(data)
        values["tone_gain"] = tuple(float(v) for v in values["tone_gain"])
        return cls(**values)

    def labels(self) -> dict[str, str]:
        """Short names for metadata: ``skin_map`` (maps joined by '+') and ``iris_map``."""
        skin = "+".join(rel.rsplit("/", 1)[-1].removesuffix(".png") for rel in self.skin_maps)
        iris = self.iris_map.rsplit("/", 1)[-1].removesuffix("_eye.png") if self.iris_map else ""
        return {"skin_map": skin or "none", "iris_map": iris or "none"}


# -------------------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class SkinMap:
    rel: str
    age_group: str
    tone: str  # dark / light
    gender: str


@functools.lru_cache(maxsize=1)
def skin_maps() -> tuple[SkinMap, ...]:
    """The skin diffuse maps in the registry (special-suit maps are clothing, not skin: left out)."""
    found = []
    for rel in formats.available(SKIN_MAP_DIR):
        match = SKIN_MAP_PATTERN.match(rel.removeprefix(SKIN_MAP_DIR))
        if match:
            found.append(SkinMap(rel, match.group(1), match.group(2), match.group(3)))
    return tuple(found)


def skin_material(age_group: str, ethnicity: str, gender: str) -> str:
    """MakeHuman's skin .mhmat path for an age group, ethnicity and gender."""
    return f"assets/skins/{age_group}_{ethnicity}_{gender}/{age_group}_{ethnicity}_{gender}.mhmat"


@functools.cache
def ethnicity_tone(ethnicity: str) -> str:
    """'dark' or 'light': the skin maps MakeHuman's own young male .mhmat of ``ethnicity`` names."""
    mat = formats.load_mhmat(skin_material("young", ethnicity, "male"))
    texture = mat.get("diffuseTexture", "")
    for tone in ("dark", "light"):
        if f"{tone}skinned" in texture:
            return tone
    raise HumanParamsError(
        f"{skin_material('young', ethnicity, 'male')} names no dark- or lightskinned map ({texture!r})."
    )


@functools.lru_cache(maxsize=1)
def iris_maps() -> dict[str, str]:
    """Iris colour -> eye map path (MakeHuman's brown in core/, the others in assets/)."""
    found = {}
    for prefix in IRIS_DIRS:
        for rel in formats.available(prefix):
            name = rel.rsplit("/", 1)[-1]
            if name.endswith("_eye.png"):
                found[name.removesuffix("_eye.png")] = rel
    return found


def hair_map(style: str) -> str | None:
    """The diffuse map of hair ``style`` (what its .mhmat names), None when it is not published."""
    rel = f"assets/hair/{style}/{style}.mhmat"
    if not formats.available(rel):
        return None
    name = formats.load_mhmat(rel).get("diffuseTexture")
    if not name:
        return None
    path = f"assets/hair/{style}/{name}"
    return path if formats.available(path) else None


def proxy_map(kind: str, style: str) -> str | None:
    """The alpha-masked map of an eyebrow or eyelash style, None when it is not published."""
    path = f"assets/{kind}/{style}/{style}.png"
    return path if formats.available(path) else None


TEETH_MAP = "assets/teeth/materials/teeth.png"
TONGUE_MAP = "assets/tongue/tongue01/tongue01_diffuse.png"


# ---------------------------------------------------------------------------------------- choice
def nearest_skin_maps(
    params: TextureParams, tone: str, gender: str, age_years: float
) -> tuple[list[str], float]:
    """All maps of ``tone`` with the lowest cost (age gap + gender mismatch), and that cost."""
    candidates = [m for m in skin_maps() if m.tone == tone]
    if not candidates:
        raise HumanParamsError(f"No {tone}skinned skin map is registered under makehuman/{SKIN_MAP_DIR}.")

    def cost(m: SkinMap) -> float:
        gap = abs(age_years - params.skin_age_years[m.age_group])
        return gap + params.gender_mismatch_years * (m.gender != gender)

    best = min(cost(m) for m in candidates)
    return sorted(m.rel for m in candidates if cost(m) <= best + 1e-9), best


def choose_textures(
    params: TextureParams,
    ethnicity: dict[str, float],
    gender: str,
    age_years: float,
    hair_style: str,
    rng: np.random.Generator,
) -> TextureSpec:
    """The textures of one identity; every choice draws from ``rng`` (the identity's own stream).

    Skin: per skin tone present in the ethnicity weights (the minor tone only from
    ``blend_min_share`` on), the nearest map; ties (e.g. three young lightskinned male maps) are
    broken by ``rng``. The maps' blend weights are the tones' shares.
    """
    tones: dict[str, float] = {}
    for eth, w in ethnicity.items():
        if w > 0:
            tone = ethnicity_tone(eth)
            tones[tone] = tones.get(tone, 0.0) + w
    total = sum(tones.values())
    tones = {t: w / total for t, w in sorted(tones.items())}
    if len(tones) > 1 and min(tones.values()) < params.blend_min_share:
        top = max(tones, key=lambda t: tones[t])
        tones = {top: 1.0}
    maps: dict[str, float] = {}
    for tone, share in tones.items():
        options, _ = nearest_skin_maps(params, tone, gender, age_years)
        maps[options[int(rng.integers(len(options)))]] = round(share, 4)
    # jitter along the axes skin varies on: brightness, and redness (red up, blue down) at half that
    bright = 1.0 + rng.uniform(-params.tone_jitter, params.tone_jitter)
    red = rng.uniform(-params.tone_jitter, params.tone_jitter) / 2
    gain = tuple(float(round(bright * g, 4)) for g in (1.0 + red, 1.0, 1.0 - red))
    iris_names = params.iris_maps
    iris = iris_maps()[iris_names[int(rng.integers(len(iris_names)))]]
    dominant = max(ethnicity, key=lambda e: ethnicity[e])
    age_group = min(AGE_GROUPS, key=lambda g: abs(age_years - params.skin_age_years[g]))
    hair = params.hair and params.enabled
    if hair and hair_style != "none" and hair_map(hair_style) is None and params.hair_missing_map == "error":
        raise HumanParamsError(
            f"params humans.textures: hair style '{hair_style}' has no published diffuse map; take it "
            "out of humans.hair_styles or set humans.textures.hair_missing_map: untextured."
        )
    return TextureSpec(
        max_size=params.max_size,
        skin_maps=maps if params.skin else {},
        skin_material=skin_material(age_group, dominant, gender),
        tone_shift=params.tone_shift,
        tone_gain=gain,  # type: ignore[arg-type]
        sss_per_scale=params.sss_per_scale,
        iris_map=iris if params.iris else "",
        eyebrows=params.eyebrows,
        eyelashes=params.eyelashes,
        hair=hair,
        teeth=params.teeth,
        tongue=params.tongue,
        cornea=params.cornea,
        alpha_modes=dict(params.alpha_modes),
        alpha_cutoff=params.alpha_cutoff,
    )


def validate_params(params: TextureParams, hair_styles: list[str]) -> None:
    """Raise :class:`HumanParamsError` naming the first bad value of ``humans.textures``."""
    where = "params humans.textures"
    if not 16 <= params.max_size <= 4096:
        raise HumanParamsError(f"{where}.max_size = {params.max_size} must be in [16, 4096] pixels.")
    if sorted(params.skin_age_years) != sorted(AGE_GROUPS):
        raise HumanParamsError(
            f"{where}.skin_age_years needs exactly {list(AGE_GROUPS)}, got {sorted(params.skin_age_years)}."
        )
    ages = [params.skin_age_years[g] for g in AGE_GROUPS]
    if any(not 1.0 <= a <= 90.0 for a in ages) or ages != sorted(ages):
        raise HumanParamsError(
            f"{where}.skin_age_years = {params.skin_age_years}: ages in [1, 90], young <= middleage <= old."
        )
    checks = (
        ("gender_mismatch_years", params.gender_mismatch_years, 0.0, 200.0),
        ("blend_min_share", params.blend_min_share, 0.0, 0.5),
        ("tone_shift", params.tone_shift, 0.0, 1.0),
        ("tone_jitter", params.tone_jitter, 0.0, 0.3),
        ("sss_per_scale", params.sss_per_scale, 0.0, 0.2),
        ("alpha_cutoff", params.alpha_cutoff, 0.0, 1.0),
    )
    for key, value, lo, hi in checks:
        if not lo <= value <= hi:
            raise HumanParamsError(f"{where}.{key} = {value} must be in [{lo}, {hi}].")
    if not params.iris_maps:
        raise HumanParamsError(f"{where}.iris_maps needs at least one colour; known {sorted(iris_maps())}.")
    unknown = sorted(set(params.iris_maps) - set(iris_maps()))
    if unknown:
        raise HumanParamsError(f"{where}.iris_maps: unknown {unknown}; known {sorted(iris_maps())}.")
    bad_parts = sorted(set(params.alpha_modes) - {"eyebrows", "eyelashes", "hair"})
    if bad_parts or sorted(params.alpha_modes) != ["eyebrows", "eyelashes", "hair"]:
        raise HumanParamsError(
            f"{where}.alpha_modes needs exactly eyebrows, eyelashes, hair; got {sorted(params.alpha_modes)}."
        )
    for part, mode in params.alpha_modes.items():
        if mode not in ("opaque", "mask", "blend"):
            raise HumanParamsError(f"{where}.alpha_modes.{part} = {mode!r}; use opaque, mask or blend.")
    if params.enabled and params.hair and params.hair_missing_map == "error":
        missing = sorted({s for s in hair_styles if s != "none" and hair_map(s) is None})
        if missing:
            raise HumanParamsError(
                f"params humans.hair_styles: {missing} have no published hair map; remove them or set "
                f"{where}.hair_missing_map: untextured (they are drawn as solid tinted shells)."
            )


# ----------------------------------------------------------------------------------------- baking
_LUT_SIZE = 4096
_TO_LINEAR = np.where(
    np.arange(256) / 255.0 <= 0.04045,
    np.arange(256) / 255.0 / 12.92,
    ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
).astype(np.float32)
_c = np.linspace(0.0, 1.0, _LUT_SIZE)
_TO_SRGB8 = np.round(255.0 * np.where(_c <= 0.0031308, _c * 12.92, 1.055 * _c ** (1 / 2.4) - 0.055)).astype(
    np.uint8
)


def srgb8_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float32 linear (table lookup)."""
    return _TO_LINEAR[rgb]


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """float linear (clipped to [0, 1]) -> uint8 sRGB (4096-step table)."""
    index = np.clip(linear * (_LUT_SIZE - 1) + 0.5, 0, _LUT_SIZE - 1).astype(np.int32)
    return _TO_SRGB8[index]


def srgb_to_linear(rgb: np.ndarray | tuple[float, ...], dtype: type = np.float64) -> np.ndarray:
    """sRGB-encoded colours in [0, 1] (clipped) -> linear light (IEC 61966-2-1), computed in ``dtype``
    (float64 by default; the renderer's vertex colours are float32 throughout)."""
    c = np.clip(np.asarray(rgb, dtype), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(dtype, copy=False)


@functools.lru_cache(maxsize=32)
def skin_reference(rel: str, max_size: int) -> np.ndarray:
    """Per-channel median (linear) of a skin map over the texels under the base mesh's head vertices."""
    base = formats.base_mesh()
    obj = formats.load_obj(formats.BASE_OBJ)
    body = obj.triangle_groups == obj.groups.index("body")
    split = formats.split_uv_seams(obj.triangles[body], obj.triangle_uv[body], obj.uv_table)  # type: ignore[index]
    head = base.vertices[split.source, 1] > HEAD_ABOVE_Y
    image = formats.load_rgba_image(rel, max_size)
    texels = sample_nearest(image, split.uv[head])[:, :3]
    return np.median(srgb8_to_linear(texels), axis=0).astype(np.float64)


def sample_nearest(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Texels (K, C) of ``image`` at OBJ-convention ``uv`` (v = 0 at the bottom row), nearest."""
    h, w = image.shape[:2]
    x = np.clip(np.floor(uv[:, 0] * w), 0, w - 1).astype(np.int64)
    y = np.clip(np.floor((1.0 - uv[:, 1]) * h), 0, h - 1).astype(np.int64)
    return image[y, x]


def bake_skin(spec: TextureSpec, skin_color: tuple[float, float, float]) -> np.ndarray:
    """The identity's skin map: its maps blended (linear), tone-shifted toward ``skin_color``, jittered.

    The gain per channel is ``(target / reference) ** tone_shift * tone_gain`` with the reference the
    blended maps' head median, so the face's typical colour lands on the identity's albedo while the
    map keeps its pores, lips and shading detail.
    """
    if len(spec.skin_maps) == 1:
        # one map: the whole bake is a 256-entry table per channel
        rel = next(iter(spec.skin_maps))
        image = formats.load_rgba_image(rel, spec.max_size)
        gain = _skin_gain(spec, skin_color, skin_reference(rel, spec.max_size))
        tables = linear_to_srgb8(_TO_LINEAR[:, None] * gain[None, :].astype(np.float32))  # (256, 3)
        out = np.empty((*image.shape[:2], 4), np.uint8)
        for c in range(3):
            out[..., c] = tables[image[..., c], c]
        out[..., 3] = 255
        out.setflags(write=False)
        return out
    linear = None
    reference = np.zeros(3)
    for rel, weight in spec.skin_maps.items():
        image = formats.load_rgba_image(rel, spec.max_size)
        if linear is not None and image.shape[:2] != linear.shape[:2]:
            raise HumanParamsError(f"Skin maps {list(spec.skin_maps)} differ in size; cannot blend them.")
        part = srgb8_to_linear(image[..., :3]) * np.float32(weight)
        linear = part if linear is None else linear + part
        reference += weight * skin_reference(rel, spec.max_size)
    if linear is None:
        raise HumanParamsError("bake_skin needs at least one skin map (textures.skin is off?).")
    gain = _skin_gain(spec, skin_color, reference)
    out = np.empty((*linear.shape[:2], 4), np.uint8)
    out[..., :3] = linear_to_srgb8(linear * gain.astype(np.float32))
    out[..., 3] = 255
    out.setflags(write=False)
    return out


def _skin_gain(
    spec: TextureSpec, skin_color: tuple[float, float, float], reference: np.ndarray
) -> np.ndarray:
    target = srgb_to_linear(skin_color)
    return (target / np.maximum(reference, 1e-4)) ** spec.tone_shift * np.asarray(spec.tone_gain)


_SHARE_STEPS = 8192  # quantisation of a hair map's relative luminance (0 .. _SHARE_MAX)
_SHARE_MAX = 8.0


@functools.lru_cache(maxsize=64)
def _luminance_share(rel: str, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(relative linear luminance of each texel, alpha) of an alpha-masked map; mean over opaque = 1."""
    image = formats.load_rgba_image(rel, max_size)
    lin = srgb8_to_linear(image[..., :3])
    lum = lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    alpha = image[..., 3]
    opaque = alpha >= 128
    mean = float(lum[opaque].mean()) if opaque.any() else float(lum.mean())
    share = lum / max(mean, 1e-4)
    steps = np.clip(share / _SHARE_MAX * (_SHARE_STEPS - 1) + 0.5, 0, _SHARE_STEPS - 1).astype(np.uint16)
    steps.setflags(write=False)
    return steps, alpha


def bake_hair(rel: str, color: tuple[float, float, float], max_size: int) -> np.ndarray:
    """A hair, brow or lash map tinted by ``color`` (sRGB): luminance x colour in linear light, alpha kept.

    The map's luminance is normalised to a mean of 1 over its opaque texels, so the tinted strands
    average the sampled hair colour and keep the map's strand-to-strand variation (quantised to
    1/1024 of the mean up to 8 times it, applied as one lookup table per channel).
    """
    steps, alpha = _luminance_share(rel, max_size)
    tint = srgb_to_linear(color).astype(np.float32)
    share = np.linspace(0.0, _SHARE_MAX, _SHARE_STEPS, dtype=np.float32)
    tables = linear_to_srgb8(share[:, None] * tint[None, :])  # (steps, 3)
    out = np.empty((*steps.shape, 4), np.uint8)
    for c in range(3):
        out[..., c] = tables[steps, c]
    out[..., 3] = alpha
    out.setflags(write=False)
    return out


def plain_map(rel: str, max_size: int) -> np.ndarray:
    """A map used as published (iris, teeth, tongue): cached, the same array for every identity."""
    return formats.load_rgba_image(rel, max_size)


def material_values(rel: str, sss_per_scale: float) -> tuple[np.ndarray, float, float]:
    """(specular colour (3,) linear, Blinn-Phong exponent, sss strength 0..1) of a skin .mhmat.

    MakeHuman's shininess is 0..1 and becomes the OpenGL exponent ``128 * shininess``; the sss
    strength is ``sssRScale * sss_per_scale`` (the red radius is the largest of the three).
    """
    mat = formats.load_mhmat(rel)
    try:
        spec = np.array(
            [float(v) for v in mat.get("specularColor", "0.05 0.05 0.05").split()[:3]], np.float32
        )
        shininess = float(mat.get("shininess", "0.5"))
        sss_on = mat.get("sssEnabled", "false").lower() == "true"
        sss = float(mat.get("sssRScale", "0")) * sss_per_scale if sss_on else 0.0
    except ValueError as error:
        raise HumanParamsError(f"{formats.asset_path(rel)} ({rel}): bad material value: {error}.") from error
    return spec, max(1.0, 128.0 * shininess), float(np.clip(sss, 0.0, 1.0))
