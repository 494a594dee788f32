"""The scene randomizers, in the study's order, each with its own params dataclass and sampler.

1. :class:`BackgroundParams` -> :func:`sample_background`: a wall of random primitive shapes
   (Perception's BackgroundObjectPlacement: Poisson-disk placement with a minimum separation,
   ``layers`` layers ``separation`` apart in depth) with random procedural textures
   (Perception's TextureRandomizer), hue offsets (HueOffsetRandomizer) and rotations.
2. :class:`PlacementParams` -> :func:`sample_placement`: where the head lands inside a safe area
   of the frame and how large it is (ForegroundObjectPlacement; one head per frame here).
3. :class:`HeadRotationParams` -> :func:`sample_head_rotation`: pitch (x) and yaw (y) about the
   neck pivot (RotationRandomizer).
4. :class:`LightParams` -> :func:`sample_lights`: two directional lights, left and right, with
   intensity and colour per channel drawn uniformly (the study's custom light randomizer, with the
   intensity scaled once).
5. :class:`CameraParams`: the camera model (fixed, a param).
6. :class:`PostParams` -> :func:`sample_post`: optional grey frames, blur, sensor noise and JPEG
   quality.
7. :class:`AmbientParams` -> :func:`sample_ambient`: the ambient light as a sky/ground gradient.
8. :class:`FillLightParams` -> :func:`sample_fill_light`: an optional third, unshadowed fill light.

Fixed (not sampled) render settings: :class:`ShadingParams` (subsurface wrap, Fresnel rim, cornea,
mouth cavity) and :class:`ShadowParams` (shadow maps of the two key lights).

The dataclasses of the newer sections (7, 8 and the fixed settings) take their defaults from
``conf/generate.yaml`` (the single source of the defaults), see :func:`conf_default`.

Geometry of the wall is given in *wall units*: one wall unit is a sixth of the view height, so the
study's orthographic camera of size 3 sees a view 6 units tall, and its unit-sized prefabs, 0.4
separation and 10 units between heads and wall keep the same proportions here.

Every sampler takes a ``numpy.random.Generator`` and returns plain numbers (recorded in the
metadata) plus, for the background, the instance arrays. Every params class has ``validate()``
which raises :class:`RandomizerParamsError` naming the bad key and what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from matplotlib.colors import hsv_to_rgb
from scipy.spatial.transform import Rotation

from sim2real_faces.params import ParamsError
from sim2real_faces.params import conf_default as params_conf_default
from sim2real_faces.render.gl import INSTANCE_FLOATS, PATTERNS
from sim2real_faces.render.shapes import SHAPES

Range = tuple[float, float]


class RandomizerParamsError(ParamsError):
    """A randomizer param is out of its domain (inverted range, negative count, unknown name, ...)."""


def _check_range(where: str, value: Range, lo: float | None = None, hi: float | None = None) -> None:
    if len(value) != 2:
        raise RandomizerParamsError(f"params '{where}' must be [min, max], got {list(value)}.")
    a, b = value
    if not (math.isfinite(a) and math.isfinite(b)):
        raise RandomizerParamsError(f"params '{where}' = {list(value)} must be finite numbers.")
    if a > b:
        raise RandomizerParamsError(
            f"params '{where}' = {list(value)} is inverted: write it as [min, max] with min <= max."
        )
    if lo is not None and a < lo:
        raise RandomizerParamsError(
            f"params '{where}' = {list(value)} goes below {lo}; keep it within [{lo}, ..]."
        )
    if hi is not None and b > hi:
        raise RandomizerParamsError(
            f"params '{where}' = {list(value)} goes above {hi}; keep it within [.., {hi}]."
        )


def _uniform(rng: np.random.Generator, bounds: Range, size: int | tuple[int, ...] | None = None):
    """Uniform in [lo, hi]; a degenerate range gives its value without consuming extra entropy rules."""
    lo, hi = bounds
    return rng.uniform(lo, hi, size) if size is not None else float(rng.uniform(lo, hi))


# --------------------------------------------------------------------------------------------- background


@dataclass(frozen=True)
class BackgroundParams:
    """The wall of random shapes behind the head (section ``generate.background``)."""

    enabled: bool = True
    layers: int = 2  # the study: 2
    separation: float = 0.4  # minimum distance between shapes in a layer and between layers (wall units)
    depth: float = 10.0  # wall distance behind the head's eye centre (wall units; study: 10)
    margin: float = 1.0  # wall extends this far beyond the view on every side (wall units)
    scale: Range = (1.0, 1.0)  # size of a shape (wall units; the study's prefabs were 1)
    shapes: tuple[str, ...] = ("cube", "cylinder", "sphere")
    patterns: tuple[str, ...] = PATTERNS
    saturation: Range = (0.0, 1.0)  # pattern colours: HSV with hue uniform, saturation and value uniform
    value: Range = (0.1, 1.0)
    hue_offset_deg: Range = (-180.0, 180.0)
    rotation_x_deg: Range = (-180.0, 180.0)  # each shape's rotation (the study: x, y in [-30, 30], z 0)
    rotation_y_deg: Range = (-180.0, 180.0)
    rotation_z_deg: Range = (-180.0, 180.0)
    pattern_frequency: Range = (1.0, 8.0)  # stripes per wall unit, drawn log-uniformly
    candidates: int = 8  # Poisson-disk dart-throwing trials per grid cell

    def validate(self, where: str = "generate.background") -> None:
        if self.layers < 0:
            raise RandomizerParamsError(f"params '{where}.layers' = {self.layers} must be >= 0.")
        if self.separation <= 0:
            raise RandomizerParamsError(f"params '{where}.separation' = {self.separation} must be > 0.")
        if self.candidates < 1:
            raise RandomizerParamsError(f"params '{where}.candidates' = {self.candidates} must be >= 1.")
        if self.depth <= 0 or self.margin < 0:
            raise RandomizerParamsError(f"params '{where}.depth' must be > 0 and '.margin' >= 0.")
        _check_range(f"{where}.scale", self.scale, lo=1e-3)
        _check_range(f"{where}.saturation", self.saturation, 0.0, 1.0)
        _check_range(f"{where}.value", self.value, 0.0, 1.0)
        _check_range(f"{where}.hue_offset_deg", self.hue_offset_deg, -180.0, 180.0)
        for axis in "xyz":
            key = f"rotation_{axis}_deg"
            _check_range(f"{where}.{key}", getattr(self, key), -180.0, 180.0)
        _check_range(f"{where}.pattern_frequency", self.pattern_frequency, lo=1e-3)
        for name, known, key in ((self.shapes, SHAPES, "shapes"), (self.patterns, PATTERNS, "patterns")):
            if not name:
                raise RandomizerParamsError(
                    f"params '{where}.{key}' is empty; list at least one of {list(known)}."
                )
            unknown = sorted(set(name) - set(known))
            if unknown:
                raise RandomizerParamsError(
                    f"params '{where}.{key}' has unknown {unknown}; choose from {list(known)}."
                )


@dataclass
class BackgroundSample:
    """(shape name, instances) groups, nearest layer first, in the renderer's instance layout, and a
    summary for the metadata."""

    instances: list[tuple[str, np.ndarray]]
    values: dict[str, float]


def poisson_disk(
    width: float, height: float, radius: float, rng: np.random.Generator, trials: int = 8
) -> np.ndarray:
    """Points in [0, width] x [0, height] no closer than ``radius`` (a Poisson-disk set), shape (N, 2).

    Parallel dart throwing on a grid of cells of side radius/sqrt(2), each holding at most one point
    (Wei 2008): cells are visited in 9 phases (cell index mod 3) so that darts thrown in the same
    phase can never conflict, and every empty cell of a phase gets ``trials`` darts. Vectorised numpy;
    the set is close to maximal for trials >= 8.
    """
    cell = radius / math.sqrt(2.0)
    nx, ny = max(1, math.ceil(width / cell)), max(1, math.ceil(height / cell))
    pts = np.full((ny + 4, nx + 4, 2), np.nan)  # 2-cell border of empty cells: no bounds checks
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny))
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    off_y = np.array([o[0] for o in offsets])[None, :]
    off_x = np.array([o[1] for o in offsets])[None, :]
    for phase_y in range(3):
        for phase_x in range(3):
            sel = (iy % 3 == phase_y) & (ix % 3 == phase_x)
            cx, cy = ix[sel], iy[sel]
            for _ in range(trials):
                empty = np.isnan(pts[cy + 2, cx + 2, 0])
                if not empty.any():
                    break
                ex, ey = cx[empty], cy[empty]
                dart = np.c_[(ex + rng.random(len(ex))) * cell, (ey + rng.random(len(ey))) * cell]
                ok = (dart[:, 0] <= width) & (dart[:, 1] <= height)
                # all 24 neighbour cells at once (darts x neighbours x 2)
                other = pts[ey[:, None] + 2 + off_y, ex[:, None] + 2 + off_x]
                d2 = ((other - dart[:, None, :]) ** 2).sum(axis=2)
                ok &= ~(d2 < radius * radius).any(axis=1)  # NaN (empty neighbour) compares False
                pts[ey[ok] + 2, ex[ok] + 2] = dart[ok]
    flat = pts[2:-2, 2:-2].reshape(-1, 2)
    return flat[~np.isnan(flat[:, 0])]


def sample_background(
    params: BackgroundParams,
    rng: np.random.Generator,
    view_center: tuple[float, float, float],
    view_half_size: tuple[float, float],
) -> BackgroundSample:
    """Place ``layers`` layers of shapes on a wall facing the camera, covering the view.

    ``view_center`` is the camera target (the wall is ``depth`` wall units behind it) and
    ``view_half_size`` the half width and height of the view in scene units. Front layer first, so
    the renderer's depth test rejects most of the hidden layer early.
    """
    if not params.enabled or params.layers == 0:
        return BackgroundSample([], {"bg_objects": 0, "bg_hue_offset_mean_deg": 0.0})
    half_w, half_h = view_half_size
    unit = 2 * half_h / 6.0
    width = 2 * (half_w / unit + params.margin)
    height = 2 * (half_h / unit + params.margin)
    cx, cy, cz = view_center
    per_layer = []
    for layer in range(params.layers):
        points = poisson_disk(width, height, params.separation, rng, trials=params.candidates)
        k = len(points)
        inst = np.zeros((k, INSTANCE_FLOATS), dtype=np.float32)
        inst[:, 0] = cx + (points[:, 0] - width / 2) * unit
        inst[:, 1] = cy + (points[:, 1] - height / 2) * unit
        inst[:, 2] = cz - (params.depth + layer * params.separation) * unit
        bounds = np.array([params.rotation_x_deg, params.rotation_y_deg, params.rotation_z_deg])
        angles = rng.uniform(bounds[:, 0], bounds[:, 1], (k, 3))
        rot = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
        inst[:, 3:12] = rot.transpose(0, 2, 1).reshape(k, 9)  # column-major mat3 for GLSL
        inst[:, 12:15] = (rng.uniform(*params.scale, k) * unit)[:, None]
        for col in (15, 18):  # the two colours of the pattern
            hsv = np.c_[rng.random(k), rng.uniform(*params.saturation, k), rng.uniform(*params.value, k)]
            inst[:, col : col + 3] = hsv_to_rgb(hsv)
        pattern_ids = np.array([PATTERNS.index(p) for p in params.patterns])
        inst[:, 21] = pattern_ids[rng.integers(0, len(pattern_ids), k)]
        flo, fhi = np.log(params.pattern_frequency)
        inst[:, 22] = np.exp(rng.uniform(flo, fhi, k)) / unit
        inst[:, 23] = rng.uniform(0, 2 * np.pi, k)
        inst[:, 24] = np.radians(rng.uniform(*params.hue_offset_deg, k))
        inst[:, 25] = rng.uniform(0, 1000, k)
        shape_ids = rng.integers(0, len(params.shapes), k)
        per_layer.append((inst, shape_ids))
    instances: list[tuple[str, np.ndarray]] = []
    for inst, ids in per_layer:  # front layer first
        for s, name in enumerate(params.shapes):
            if np.any(ids == s):
                instances.append((name, inst[ids == s]))
    all_hues = np.concatenate([inst[:, 24] for inst, _ in per_layer])
    values = {
        "bg_objects": int(sum(len(i) for i, _ in per_layer)),
        "bg_hue_offset_mean_deg": float(np.degrees(all_hues).mean()) if len(all_hues) else 0.0,
    }
    return BackgroundSample(instances, values)


# ---------------------------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class PlacementParams:
    """Where the eye centre lands in the frame and how tall the view is (section ``generate.placement``).

    ``x`` and ``y`` are fractions of the half frame (0 = centre, 1 = edge; y up). ``view_height``
    is the full view height in decimetres at the head (a MakeHuman head is about 2.4 dm tall), so
    a smaller view means a larger face.
    """

    x: Range = (-0.25, 0.25)
    y: Range = (-0.1, 0.2)
    view_height: Range = (3.2, 4.5)

    def validate(self, where: str = "generate.placement") -> None:
        _check_range(f"{where}.x", self.x, -0.8, 0.8)
        _check_range(f"{where}.y", self.y, -0.8, 0.8)
        _check_range(f"{where}.view_height", self.view_height, lo=0.5)


def sample_placement(params: PlacementParams, rng: np.random.Generator) -> dict[str, float]:
    return {
        "place_x": _uniform(rng, params.x),
        "place_y": _uniform(rng, params.y),
        "view_height_dm": _uniform(rng, params.view_height),
    }


# ----------------------------------------------------------------------------------------------- rotation


@dataclass(frozen=True)
class HeadRotationParams:
    """Head rotation about the neck pivot (section ``generate.head``), degrees.

    ``neck_blend_dm``: below the pivot the rotation fades out smoothly over this many decimetres,
    so the neck twists and the shoulders stay (0 = the whole body turns rigidly, as the study did).
    """

    pitch_deg: Range = (-30.0, 30.0)  # about x (positive: looks down)
    yaw_deg: Range = (-30.0, 30.0)  # about y
    roll_deg: Range = (0.0, 0.0)  # about z (the study: 0)
    neck_blend_dm: float = 0.8

    def validate(self, where: str = "generate.head") -> None:
        for key in ("pitch_deg", "yaw_deg", "roll_deg"):
            _check_range(f"{where}.{key}", getattr(self, key), -90.0, 90.0)
        if self.neck_blend_dm < 0:
            raise RandomizerParamsError(
                f"params '{where}.neck_blend_dm' = {self.neck_blend_dm} must be >= 0."
            )


def sample_head_rotation(params: HeadRotationParams, rng: np.random.Generator) -> dict[str, float]:
    return {
        "head_pitch_deg": _uniform(rng, params.pitch_deg),
        "head_yaw_deg": _uniform(rng, params.yaw_deg),
        "head_roll_deg": _uniform(rng, params.roll_deg),
    }


def head_rotation_matrix(values: dict[str, float]) -> np.ndarray:
    """Rotation of the sampled head pose: yaw (y) after pitch (x) after roll (z), as a 3x3 matrix."""
    return Rotation.from_euler(
        "zxy", [values["head_roll_deg"], values["head_pitch_deg"], values["head_yaw_deg"]], degrees=True
    ).as_matrix()


# ------------------------------------------------------------------------------------------------- lights


@dataclass(frozen=True)
class LightParams:
    """Two directional lights, left and right, plus ambient (section ``generate.lights``).

    ``azimuth_deg`` is the angle between a light and the camera axis (the left light at -a, the right
    at +a), ``elevation_deg`` its height above the horizon (the study: azimuth 60, elevation 50).
    Intensity and colour per channel are drawn per light and per frame (the study: [0.5, 3.0] and
    [0.4, 1.0]); the light's linear colour is colour x intensity, applied once.
    """

    intensity: Range = (0.5, 3.0)
    color: Range = (0.4, 1.0)
    azimuth_deg: Range = (45.0, 60.0)
    elevation_deg: Range = (15.0, 50.0)
    ambient: Range = (0.05, 0.2)  # grey ambient light, linear
    exposure: float = 0.5  # camera exposure: scales the linear radiance before the tone curve
    tonemap: Literal["aces", "clamp"] = "aces"

    def validate(self, where: str = "generate.lights") -> None:
        _check_range(f"{where}.intensity", self.intensity, lo=0.0)
        _check_range(f"{where}.color", self.color, 0.0, 1.0)
        _check_range(f"{where}.azimuth_deg", self.azimuth_deg, 0.0, 90.0)
        _check_range(f"{where}.elevation_deg", self.elevation_deg, -90.0, 90.0)
        _check_range(f"{where}.ambient", self.ambient, lo=0.0)
        if self.exposure <= 0:
            raise RandomizerParamsError(f"params '{where}.exposure' = {self.exposure} must be > 0.")


def sample_lights(params: LightParams, rng: np.random.Generator) -> dict[str, float]:
    values: dict[str, float] = {}
    for side in ("left", "right"):
        values[f"light_{side}_intensity"] = _uniform(rng, params.intensity)
        for ch in "rgb":
            values[f"light_{side}_{ch}"] = _uniform(rng, params.color)
        values[f"light_{side}_azimuth_deg"] = _uniform(rng, params.azimuth_deg)
        values[f"light_{side}_elevation_deg"] = _uniform(rng, params.elevation_deg)
    values["light_ambient"] = _uniform(rng, params.ambient)
    return values


def light_arrays(values: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(directions towards the lights (2, 3), linear colours x intensity (2, 3), ambient (3,))."""
    dirs, cols = [], []
    for side, sign in (("left", -1.0), ("right", 1.0)):
        a = np.radians(values[f"light_{side}_azimuth_deg"]) * sign
        e = np.radians(values[f"light_{side}_elevation_deg"])
        dirs.append([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
        rgb = np.array([values[f"light_{side}_{ch}"] for ch in "rgb"])
        cols.append(rgb * values[f"light_{side}_intensity"])
    ambient = np.full(3, values["light_ambient"])
    return np.asarray(dirs, np.float32), np.asarray(cols, np.float32), ambient.astype(np.float32)


# ------------------------------------------------------------------------------------------------- camera


@dataclass(frozen=True)
class CameraParams:
    """The camera model (section ``generate.camera``); its view height comes from the placement.

    ``fov_deg`` is used by the perspective camera, which is placed so that the view at the head has
    the sampled height (the study: orthographic).
    """

    projection: Literal["orthographic", "perspective"] = "orthographic"
    fov_deg: float = 15.0

    def validate(self, where: str = "generate.camera") -> None:
        if not 1.0 <= self.fov_deg <= 120.0:
            raise RandomizerParamsError(f"params '{where}.fov_deg' = {self.fov_deg} must be within [1, 120].")


# --------------------------------------------------------------------------------------------------- post


@dataclass(frozen=True)
class PostParams:
    """Camera effects after rendering (section ``generate.post``); the defaults are conf/generate.yaml's.

    ``blur_sigma`` and ``noise_sigma`` are in output pixels and 8-bit levels; ``jpeg_quality``
    [lo, hi] re-encodes the frame as JPEG with a quality drawn from the range (100 = off);
    ``grayscale_probability`` turns that share of frames grey (the real photos of real-dev are grey).
    :data:`CLEAN_FRAMES` switches every effect off (the study's renders, profile ``paper``).
    """

    blur_sigma: Range = (0.0, 1.0)
    noise_sigma: Range = (0.0, 3.0)
    jpeg_quality: tuple[int, int] = (70, 100)
    grayscale_probability: float = 0.3  # chance that a frame is converted to grey (kept as RGB)

    def validate(self, where: str = "generate.post") -> None:
        if not 0.0 <= self.grayscale_probability <= 1.0:
            raise RandomizerParamsError(
                f"params '{where}.grayscale_probability' = {self.grayscale_probability} must be in [0, 1]."
            )
        _check_range(f"{where}.blur_sigma", self.blur_sigma, 0.0, 20.0)
        _check_range(f"{where}.noise_sigma", self.noise_sigma, 0.0, 64.0)
        _check_range(f"{where}.jpeg_quality", self.jpeg_quality, 1, 100)


CLEAN_FRAMES = PostParams(
    blur_sigma=(0.0, 0.0), noise_sigma=(0.0, 0.0), jpeg_quality=(100, 100), grayscale_probability=0.0
)
"""No camera effects: the frames as rendered (what profile ``paper`` sets)."""


def sample_post(params: PostParams, rng: np.random.Generator) -> dict[str, float]:
    lo, hi = params.jpeg_quality
    return {
        "post_blur_sigma": _uniform(rng, params.blur_sigma),
        "post_noise_sigma": _uniform(rng, params.noise_sigma),
        "post_jpeg_quality": int(rng.integers(lo, hi + 1)),
        "post_noise_seed": int(rng.integers(0, 2**31 - 1)),
        "post_grayscale": int(rng.random() < params.grayscale_probability),
    }


def apply_post(image: np.ndarray, values: dict[str, float]) -> np.ndarray:
    """Grey, blur, add Gaussian sensor noise and JPEG round-trip an RGB uint8 frame as sampled.

    A grey frame is processed as one channel (one noise draw per pixel, shared by the three
    channels, as a grey camera's) and written back as RGB.
    """
    import cv2

    out = image
    grey = bool(values.get("post_grayscale", 0))
    if grey:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    if values["post_blur_sigma"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), values["post_blur_sigma"])
    if values["post_noise_sigma"] > 0:
        channels = 1 if out.ndim == 2 else out.shape[2]
        sigma = float(values["post_noise_sigma"])
        # OpenCV's generator seeded per frame, drawn straight into integers (rounded): 4x faster
        # than numpy's float64 normal() on a 1792x1267 frame. Mean/sigma per channel (a scalar
        # would only reach the first channel); the sum saturates to 0..255.
        cv2.setRNGSeed(int(values["post_noise_seed"]))
        noise = np.empty(out.shape, np.int16)
        cv2.randn(noise, (0.0,) * channels, (sigma,) * channels)
        out = cv2.add(out, noise, dtype=cv2.CV_8U)
    if values["post_jpeg_quality"] < 100:
        pixels = out if grey else out[:, :, ::-1]
        ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, values["post_jpeg_quality"]])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a frame")
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        out = out if grey else out[:, :, ::-1]
    if grey:
        out = cv2.merge([out, out, out])
    return np.ascontiguousarray(out)


# ------------------------------------------------------------------------------ conf/ as the defaults


def conf_default(cls, key: str):
    """A ``default_factory``: ``cls`` from section ``generate.<key>`` of conf/generate.yaml."""
    return params_conf_default(cls, "generate.yaml", key, f"generate.{key}")


def _check_number(where: str, value: float, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise RandomizerParamsError(f"params '{where}' = {value} must be a number within [{lo}, {hi}].")


# -------------------------------------------------------------------------------------------- ambient


@dataclass(frozen=True)
class AmbientParams:
    """The ambient light as a sky/ground gradient (section ``generate.ambient``).

    Per frame a sky colour and a ground colour are drawn per channel from ``sky_color`` and
    ``ground_color`` and scaled by the frame's ``lights.ambient`` intensity; a surface facing up
    gets the sky colour, one facing down the ground colour, in between a blend.
    ``gradient: false`` gives the flat grey ambient of ``lights.ambient`` alone.
    """

    gradient: bool
    sky_color: Range
    ground_color: Range

    def validate(self, where: str = "generate.ambient") -> None:
        _check_range(f"{where}.sky_color", self.sky_color, 0.0, 1.0)
        _check_range(f"{where}.ground_color", self.ground_color, 0.0, 1.0)


def sample_ambient(params: AmbientParams, rng: np.random.Generator) -> dict[str, float]:
    """Sky and ground colours (per channel); both 1 with ``gradient`` off. Always draws 6 numbers."""
    sky = rng.uniform(*params.sky_color, 3)
    ground = rng.uniform(*params.ground_color, 3)
    if not params.gradient:
        sky, ground = np.ones(3), np.ones(3)
    values = {f"ambient_sky_{ch}": float(v) for ch, v in zip("rgb", sky, strict=True)}
    values.update({f"ambient_ground_{ch}": float(v) for ch, v in zip("rgb", ground, strict=True)})
    return values


def ambient_colors(values: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(sky, ground) linear ambient colours x the frame's ambient intensity."""
    level = values["light_ambient"]
    sky = np.array([values.get(f"ambient_sky_{ch}", 1.0) for ch in "rgb"]) * level
    ground = np.array([values.get(f"ambient_ground_{ch}", 1.0) for ch in "rgb"]) * level
    return sky.astype(np.float32), ground.astype(np.float32)


# ----------------------------------------------------------------------------------------- fill light


@dataclass(frozen=True)
class FillLightParams:
    """An optional third directional light that casts no shadow (section ``generate.fill_light``).

    ``probability``: share of frames that have one (0 = off, the study's two lights only).
    ``azimuth_deg`` is signed (negative: from the person's right, the image's left), ``elevation_deg``
    may be negative (light from below, e.g. a bright table or floor).
    """

    probability: float
    intensity: Range
    color: Range
    azimuth_deg: Range
    elevation_deg: Range

    def validate(self, where: str = "generate.fill_light") -> None:
        _check_number(f"{where}.probability", self.probability, 0.0, 1.0)
        _check_range(f"{where}.intensity", self.intensity, lo=0.0)
        _check_range(f"{where}.color", self.color, 0.0, 1.0)
        _check_range(f"{where}.azimuth_deg", self.azimuth_deg, -90.0, 90.0)
        _check_range(f"{where}.elevation_deg", self.elevation_deg, -90.0, 90.0)


def sample_fill_light(params: FillLightParams, rng: np.random.Generator) -> dict[str, float]:
    """Whether the frame has a fill light and its values (always the same draws: stable streams)."""
    on = rng.random() < params.probability
    values: dict[str, float] = {"fill_on": int(on), "fill_intensity": _uniform(rng, params.intensity)}
    for ch in "rgb":
        values[f"fill_{ch}"] = _uniform(rng, params.color)
    values["fill_azimuth_deg"] = _uniform(rng, params.azimuth_deg)
    values["fill_elevation_deg"] = _uniform(rng, params.elevation_deg)
    if not on:
        values["fill_intensity"] = 0.0
    return values


def fill_light_arrays(values: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(direction towards the fill light (3,), linear colour x intensity (3,)); black when off."""
    if not values.get("fill_on", 0):
        return np.array([0.0, 0.0, 1.0], np.float32), np.zeros(3, np.float32)
    a = np.radians(values["fill_azimuth_deg"])
    e = np.radians(values["fill_elevation_deg"])
    direction = np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    color = np.array([values[f"fill_{ch}"] for ch in "rgb"]) * values["fill_intensity"]
    return direction.astype(np.float32), color.astype(np.float32)


# ------------------------------------------------------------------------------- shading and shadows


@dataclass(frozen=True)
class ShadingParams:
    """Fixed shading settings of the human (section ``generate.shading``); each has an off value.

    ``wrap``: wrap-lighting width for a part with ``sss`` = 1 (skin's share comes from its material;
    0 = plain Lambert), the wrapped light tinted by ``sss_tint`` (linear RGB: red scatters furthest);
    ``fresnel`` and ``fresnel_power``: the grazing-angle rim (0 = off); ``cornea`` and
    ``cornea_shininess``: the eyes' sharp highlight (0 = off); ``mouth_occlusion``: the share of
    light that reaches teeth and tongue inside the mouth (1 = no darkening).
    """

    wrap: float
    sss_tint: tuple[float, float, float]
    fresnel: float
    fresnel_power: float
    cornea: float
    cornea_shininess: float
    mouth_occlusion: float

    def validate(self, where: str = "generate.shading") -> None:
        _check_number(f"{where}.wrap", self.wrap, 0.0, 1.0)
        for i, v in enumerate(self.sss_tint):
            _check_number(f"{where}.sss_tint[{i}]", v, 0.0, 1.0)
        _check_number(f"{where}.fresnel", self.fresnel, 0.0, 2.0)
        _check_number(f"{where}.fresnel_power", self.fresnel_power, 1.0, 10.0)
        _check_number(f"{where}.cornea", self.cornea, 0.0, 10.0)
        _check_number(f"{where}.cornea_shininess", self.cornea_shininess, 10.0, 5000.0)
        _check_number(f"{where}.mouth_occlusion", self.mouth_occlusion, 0.0, 1.0)


@dataclass(frozen=True)
class ShadowParams:
    """Shadow maps of the two key lights (section ``generate.shadows``; the fill light casts none).

    ``map_size`` texels per side (a power of two), ``softness`` the PCF radius in map texels,
    ``bias`` the depth bias and ``normal_offset`` the lookup offset along the surface normal, both
    in map texels (enough to keep shadow acne off the skin, small enough to keep the nose's shadow
    attached).
    """

    enabled: bool
    map_size: int
    softness: float
    bias: float
    normal_offset: float

    def validate(self, where: str = "generate.shadows") -> None:
        if self.map_size not in (256, 512, 1024, 2048, 4096):
            raise RandomizerParamsError(
                f"params '{where}.map_size' = {self.map_size}; choose 256, 512, 1024, 2048 or 4096."
            )
        _check_number(f"{where}.softness", self.softness, 0.0, 16.0)
        _check_number(f"{where}.bias", self.bias, 0.0, 20.0)
        _check_number(f"{where}.normal_offset", self.normal_offset, 0.0, 20.0)


def validate_all(*params_objects, where: str = "generate") -> None:
    """Run ``validate`` of every params object, naming its section."""
    names = {
        BackgroundParams: "background",
        PlacementParams: "placement",
        HeadRotationParams: "head",
        LightParams: "lights",
        CameraParams: "camera",
        PostParams: "post",
        AmbientParams: "ambient",
        FillLightParams: "fill_light",
        ShadingParams: "shading",
        ShadowParams: "shadows",
    }
    for p in params_objects:
        p.validate(f"{where}.{names[type(p)]}")


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]
