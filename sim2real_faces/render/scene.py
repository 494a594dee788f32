"""One synthetic frame: sample every randomizer from the frame's seed, pose the head, render.

Sampling (:func:`sample_frame`) is pure numpy and cheap, so tests can check the bounds of thousands
of samples without a GL context; drawing (:class:`SceneRenderer`) needs an EGL context and so runs
only in rendering worker processes (never beside MediaPipe).

The frame's seed and its per-randomizer streams come from :mod:`sim2real_faces.render.plan`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real_faces.humans.textures import srgb_to_linear
from sim2real_faces.render import gl
from sim2real_faces.render.plan import FrameJob, stream_rngs
from sim2real_faces.render.randomizers import (
    AmbientParams,
    BackgroundParams,
    BackgroundSample,
    CameraParams,
    FillLightParams,
    HeadRotationParams,
    LightParams,
    PlacementParams,
    PostParams,
    RandomizerParamsError,
    ShadingParams,
    ShadowParams,
    ambient_colors,
    apply_post,
    conf_default,
    fill_light_arrays,
    head_rotation_matrix,
    light_arrays,
    sample_ambient,
    sample_background,
    sample_fill_light,
    sample_head_rotation,
    sample_lights,
    sample_placement,
    sample_post,
    validate_all,
)
from sim2real_faces.render.shapes import unit_shape


@dataclass(frozen=True)
class SceneParams:
    """Everything a frame needs besides the human: size, anti-aliasing and the randomizers."""

    width: int = 1792
    height: int = 1267
    msaa: int = 0  # samples on the head pass (the background pass is single-sampled); 0 = off:
    # downscaling with INTER_AREA anti-aliases
    background: BackgroundParams = field(default_factory=BackgroundParams)
    placement: PlacementParams = field(default_factory=PlacementParams)
    head: HeadRotationParams = field(default_factory=HeadRotationParams)
    lights: LightParams = field(default_factory=LightParams)
    camera: CameraParams = field(default_factory=CameraParams)
    post: PostParams = field(default_factory=PostParams)
    ambient: AmbientParams = field(default_factory=conf_default(AmbientParams, "ambient"))
    fill_light: FillLightParams = field(default_factory=conf_default(FillLightParams, "fill_light"))
    shading: ShadingParams = field(default_factory=conf_default(ShadingParams, "shading"))
    shadows: ShadowParams = field(default_factory=conf_default(ShadowParams, "shadows"))

    def validate(self, where: str = "generate") -> None:
        if self.width < 16 or self.height < 16:
            raise RandomizerParamsError(
                f"params '{where}.width/height' = {self.width}x{self.height}: both >= 16."
            )
        if self.msaa not in (0, 1, 2, 4, 8):
            raise RandomizerParamsError(f"params '{where}.msaa' = {self.msaa}; choose 0, 2, 4 or 8.")
        validate_all(
            self.background,
            self.placement,
            self.head,
            self.lights,
            self.camera,
            self.post,
            self.ambient,
            self.fill_light,
            self.shading,
            self.shadows,
            where=where,
        )


@dataclass
class FrameSample:
    """Every sampled value of one frame (flat, for the metadata) and the background's instances."""

    values: dict[str, Any]
    background: BackgroundSample
    # The expression's final pose-unit weights (posed at scale 1.0) when the sampler drew them per
    # image (expressions.sampler: facs); None when the frame uses the preset named in values.
    unit_weights: dict[str, float] | None = None


def sample_frame(job: FrameJob, params: SceneParams, expressions: Any) -> FrameSample:
    """Draw every random value of a frame; no GL needed.

    ``expressions`` is the ``ExpressionParams`` of section ``expressions``: its sampler draws the
    preset (or the action units), the intensity and the tears flag of the frame's class from the
    frame's expression stream; ``aus`` records the fired action units ("" for a preset).
    """
    from sim2real_faces.humans import sample_expression

    rngs = stream_rngs(job.seed)
    choice = sample_expression(expressions, job.class_name, rngs["expression"])
    values: dict[str, Any] = {
        "expression": choice.preset,
        "intensity": float(choice.intensity),
        "tears": int(choice.tears),
        "aus": choice.aus_text,
    }
    placement = sample_placement(params.placement, rngs["placement"])
    values.update(placement)
    half_h = placement["view_height_dm"] / 2
    half_w = half_h * params.width / params.height
    # The background's placement depends only on its own stream and the view size (not on the head).
    background = sample_background(params.background, rngs["background"], (0.0, 0.0, 0.0), (half_w, half_h))
    values.update(background.values)
    values.update(sample_head_rotation(params.head, rngs["head"]))
    values.update(sample_lights(params.lights, rngs["lights"]))
    values.update(sample_post(params.post, rngs["post"]))
    values.update(sample_ambient(params.ambient, rngs["ambient"]))
    values.update(sample_fill_light(params.fill_light, rngs["fill_light"]))
    return FrameSample(values, background, choice.unit_weights)


# ------------------------------------------------------------------------------------------ drawing


class PosableHuman(Protocol):
    """What the scene needs from a human (sim2real_faces.humans.Human)."""

    neck_pivot: np.ndarray
    eye_center: np.ndarray

    def pose(self, preset_weights: dict[str, float], intensity: float, tears: bool = False) -> list[Any]: ...


def rotate_about_neck(
    points: np.ndarray,
    rotation: np.ndarray,
    pivot: np.ndarray,
    blend_dm: float,
    rest_y: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate points about ``pivot``; below the pivot the rotation fades out over ``blend_dm``.

    Returns (rotated points, per-point Rotation objects' rotvecs) so normals can follow.
    ``rest_y`` (default: the points' own y) decides each point's weight.
    """
    y = points[:, 1] if rest_y is None else rest_y
    if blend_dm > 0:
        t = np.clip((y - (pivot[1] - blend_dm)) / blend_dm, 0.0, 1.0)
        weight = t * t * (3 - 2 * t)
    else:
        weight = np.ones(len(points))
    rotvec = Rotation.from_matrix(rotation).as_rotvec()
    rots = Rotation.from_rotvec(weight[:, None] * rotvec[None, :])
    return rots.apply(points - pivot) + pivot, rots


# Parts named here get the eye's corneal highlight / the mouth cavity's darkening / no Fresnel rim.
CORNEA_PARTS = frozenset({"eyes"})
MOUTH_PARTS = frozenset({"teeth", "tongue"})
NO_RIM_PARTS = frozenset({"eyes", "cornea", "teeth", "tongue", "tears"})
_LINEAR_ALBEDO: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _linear_colors(albedo: np.ndarray, n: int) -> np.ndarray:
    """Per-vertex linear colours of an sRGB albedo, cached by the array's identity (parts reuse theirs
    every frame, so the renderer's static vertex buffers are reused too)."""
    key = (id(albedo), n)
    hit = _LINEAR_ALBEDO.get(key)
    if hit is not None and hit[0] is albedo:
        return hit[1]
    a = np.asarray(albedo, dtype=np.float32)
    colors = np.ascontiguousarray(
        srgb_to_linear(a if a.ndim == 2 else np.broadcast_to(a, (n, 3)), np.float32)
    )
    if len(_LINEAR_ALBEDO) > 64:
        _LINEAR_ALBEDO.clear()
    _LINEAR_ALBEDO[key] = (albedo, colors)
    return colors


def part_to_draw(part: Any, rotation: np.ndarray, pivot: np.ndarray, blend_dm: float) -> gl.DrawMesh:
    """A MakeHuman mesh part (humans.MeshPart) -> DrawMesh, rotated with the head about the neck.

    Carries the part's texture (sRGB + straight alpha, the same array every frame), uv, alpha mode
    and cutoff, linear specular colour, shininess and subsurface share.
    """
    vertices = np.asarray(part.vertices, dtype=np.float64)
    normals = np.asarray(part.normals, dtype=np.float64)
    moved, rots = rotate_about_neck(vertices, rotation, pivot, blend_dm)
    texture = part.texture
    opacity = float(part.opacity)
    return gl.DrawMesh(
        vertices=moved.astype(np.float32),
        normals=rots.apply(normals).astype(np.float32),
        colors=_linear_colors(part.albedo, len(vertices)),
        triangles=np.asarray(part.triangles, dtype=np.int32),
        specular=1.0,  # specular_color carries the part's strength
        shininess=float(part.shininess),
        opacity=opacity,
        uv=None if texture is None else np.asarray(part.uv, dtype=np.float32),
        texture=texture,
        alpha_mode=part.alpha_mode,
        alpha_cutoff=float(part.alpha_cutoff),
        specular_color=tuple(float(c) for c in np.asarray(part.specular_color).reshape(3)),
        sss=float(part.sss),
        coat=part.name in CORNEA_PARTS,
        occluded=part.name in MOUTH_PARTS,
        casts_shadow=opacity >= 1.0,
        fresnel=part.name not in NO_RIM_PARTS,
    )


def scene_lighting(params: SceneParams, values: Mapping[str, Any]) -> gl.Lighting:
    """The frame's lights: two key lights, the fill light (black when off), the sky/ground ambient."""
    directions, colors, _flat = light_arrays(dict(values))
    fill_dir, fill_col = fill_light_arrays(dict(values))
    sky, ground = ambient_colors(dict(values))
    return gl.Lighting(
        np.vstack([directions, fill_dir]),
        np.vstack([colors, fill_col]),
        sky,
        exposure=params.lights.exposure,
        tonemap=params.lights.tonemap,
        ambient_ground=ground,
    )


def shading_of(params: SceneParams) -> tuple[gl.Shading, gl.Shadows]:
    """The renderer's shading constants and shadow settings from sections shading and shadows."""
    s, sh = params.shading, params.shadows
    shading = gl.Shading(
        wrap=s.wrap,
        sss_tint=tuple(s.sss_tint),
        fresnel=s.fresnel,
        fresnel_power=s.fresnel_power,
        cornea=s.cornea,
        cornea_shininess=s.cornea_shininess,
        mouth_occlusion=s.mouth_occlusion,
    )
    shadows = gl.Shadows(sh.enabled, sh.map_size, sh.softness, sh.bias, sh.normal_offset)
    return shading, shadows


class SceneRenderer:
    """Renders frames of one size; owns the process's GL context. Create it only in a rendering process."""

    def __init__(self, params: SceneParams) -> None:
        self.params = params
        self.renderer = gl.Renderer(params.width, params.height, samples=params.msaa)

    def render(
        self,
        human: PosableHuman,
        preset_weights: dict[str, float],
        sample: FrameSample,
    ) -> np.ndarray:
        """Pose and draw ``human`` with the sampled scene; returns RGB uint8 (height, width, 3).

        ``preset_weights`` are scaled by the sampled intensity; a sample with its own ``unit_weights``
        (action units) is posed with those instead, at scale 1.0.
        """
        p, v = self.params, sample.values
        if sample.unit_weights is not None:
            parts = human.pose(sample.unit_weights, 1.0, tears=bool(v["tears"]))
        else:
            parts = human.pose(preset_weights, v["intensity"], tears=bool(v["tears"]))
        pivot = np.asarray(human.neck_pivot, dtype=np.float64)
        eye = np.asarray(human.eye_center, dtype=np.float64)
        rotation = head_rotation_matrix(v)
        meshes = [part_to_draw(part, rotation, pivot, p.head.neck_blend_dm) for part in parts]
        eye_rot = rotation @ (eye - pivot) + pivot
        half_h = v["view_height_dm"] / 2
        half_w = half_h * p.width / p.height
        target = eye_rot - np.array([v["place_x"] * half_w, v["place_y"] * half_h, 0.0])
        camera = gl.Camera(
            target=tuple(float(x) for x in target),
            half_height=half_h,
            projection=p.camera.projection,
            fov_deg=p.camera.fov_deg,
        )
        lighting = scene_lighting(p, v)
        shapes = []
        for name, inst in sample.background.instances:  # nearest layer first
            moved = inst.copy()
            moved[:, 0:3] += target.astype(np.float32)  # the wall was sampled around the origin
            vertices, normals, triangles = unit_shape(name)
            shapes.append(gl.ShapeInstances(vertices, normals, triangles, moved))
        shading, shadows = shading_of(p)
        image = self.renderer.render(camera, lighting, meshes, shapes, shading=shading, shadows=shadows)
        start = time.perf_counter()
        out = apply_post(image, v)
        if self.renderer.profile:
            self.renderer.timings["post"] = time.perf_counter() - start
        return out

    def release(self) -> None:
        self.renderer.release()


def metadata_row(job: FrameJob, identity: Mapping[str, Any], sample: FrameSample) -> dict[str, Any]:
    """The metadata row of one frame: file, class, identity columns, every sampled value, seed."""
    row: dict[str, Any] = {"file": job.file, "class": job.class_name}
    row.update(identity)
    row.update(sample.values)
    row["seed"] = job.seed
    return row
