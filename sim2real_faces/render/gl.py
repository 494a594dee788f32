"""Headless OpenGL renderer (moderngl on EGL, Mesa llvmpipe on the CPU).

One :class:`Renderer` per process owns one EGL context and an offscreen framebuffer of the output
size (plus a multisampled head layer when ``samples`` > 1). It draws

- meshes (the human's parts) with per-vertex normals, texture coordinates and either an sRGB texture
  with straight alpha or per-vertex colours. Shading in linear light: Lambert diffuse with wrap
  lighting tinted by a scatter colour (a cheap subsurface approximation, scaled per part by ``sss``),
  Blinn-Phong specular with a per-part specular colour and exponent, a Fresnel rim, an optional
  second sharp lobe (the cornea), a per-part occlusion factor (the mouth cavity), hemisphere ambient
  from a sky and a ground colour, two key lights with shadow maps (PCF) and an optional fill light.
  Alpha: ``mask`` parts are alpha-tested, ``blend`` parts are alpha-tested at their cutoff and their
  fringe (alpha below the cutoff) is blended in a second pass without depth writes;
- instanced primitive shapes (the background wall) with solid procedural textures (stripes,
  checkers, noise, gradients, dots, rings, ...) evaluated in the fragment shader, each instance
  with its own colours, frequency, rotation and hue offset. They are closed solids: back faces are
  culled.

The lit sum goes through an exposure and a tone curve and is encoded to sRGB in the shader.

Rendering and MediaPipe must never share a process (EGL + MediaPipe segfault); the generate stage
renders only inside worker processes.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim2real_faces.errors import ProjectError

# Instance layout of the background shader (floats per instance), see BACKGROUND_VS.
INSTANCE_FLOATS = 3 + 9 + 3 + 3 + 3 + 4 + 1
PATTERNS = ("solid", "stripes", "checker", "noise", "gradient", "dots", "rings", "waves", "marble")

# Lights 0 and 1 are the key lights (left, right; they cast shadows), light 2 the fill light (colour 0
# when a frame has none).
N_LIGHTS = 3
ALPHA_MODES = ("opaque", "mask", "blend")

_COMMON_FS = """
uniform vec3 u_light_dir[3];   // unit vectors towards each light (world)
uniform vec3 u_light_col[3];   // linear colour x intensity
uniform vec3 u_sky;            // linear ambient from above (normal +y)
uniform vec3 u_ground;         // linear ambient from below (normal -y)
uniform vec3 u_cam_pos;
uniform vec3 u_cam_dir;        // unit vector from the scene towards the camera (orthographic)
uniform int u_ortho;
uniform float u_exposure;
uniform int u_tonemap;         // 0 clamp, 1 ACES (Narkowicz fit)

vec3 hemisphere(vec3 n) {
    return mix(u_ground, u_sky, 0.5 + 0.5 * n.y);
}

vec3 to_display(vec3 c) {
    c *= u_exposure;
    if (u_tonemap == 1) {
        c = clamp((c * (2.51 * c + 0.03)) / (c * (2.43 * c + 0.59) + 0.14), 0.0, 1.0);
    } else {
        c = clamp(c, 0.0, 1.0);
    }
    // linear -> sRGB
    vec3 lo = c * 12.92;
    vec3 hi = 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055;
    return mix(lo, hi, step(vec3(0.0031308), c));
}
"""

MESH_VS = """
#version 330
invariant gl_Position;  // the depth pre-pass and the shading pass must give equal depths
uniform mat4 u_mvp;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
in vec3 in_color;
out vec3 v_pos;
out vec3 v_normal;
out vec2 v_uv;
out vec3 v_color;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_uv = in_uv;
    v_color = in_color;
    gl_Position = u_mvp * vec4(in_pos, 1.0);
}
"""

# Compiled twice: with ALPHA_TEST 0 (no discard, so llvmpipe can reject hidden fragments before
# shading them) for opaque parts, and with ALPHA_TEST 1 for alpha-tested and blended parts.
MESH_FS = (
    """
#version 330
#ifndef ALPHA_TEST
#define ALPHA_TEST 1
#endif
in vec3 v_pos;
in vec3 v_normal;
in vec2 v_uv;
in vec3 v_color;
out vec4 f_color;
uniform sampler2D u_tex;        // sRGB8_ALPHA8: sampling returns linear colour + straight alpha
uniform int u_has_tex;
uniform int u_alpha_pass;       // 0 opaque; 1 keep alpha >= cutoff, opaque; 2 keep alpha < cutoff, blended
uniform float u_alpha_cutoff;
uniform vec3 u_spec_color;      // linear
uniform float u_shininess;
uniform float u_sss;            // 0..1: share of the wrap lighting
uniform float u_wrap;           // wrap width at sss = 1
uniform vec3 u_sss_tint;        // colour of the wrapped (scattered) light
uniform float u_fresnel;        // rim strength
uniform float u_fresnel_power;
uniform float u_coat;           // second, sharp specular lobe (the cornea)
uniform float u_coat_shininess;
uniform float u_occlusion;      // share of light reaching the part (mouth cavity < 1)
uniform float u_backface;       // brightness factor of back faces
uniform float u_opacity;
uniform int u_shadows;
uniform sampler2DShadow u_shadow0;
uniform sampler2DShadow u_shadow1;
uniform mat4 u_light_mvp[2];    // world -> shadow map clip space of each key light
uniform float u_shadow_bias[2]; // in shadow-map depth units (0..1)
uniform float u_shadow_offset[2];  // normal offset in world units
uniform float u_pcf[2];         // PCF radius in shadow-map uv units
"""
    + _COMMON_FS
    + """
float pcf(sampler2DShadow map, vec3 c, float r) {
    // 4 bilinear comparison taps on a rotated grid: 16 texels of soft edge
    float s = texture(map, c + vec3(-0.4 * r, -1.0 * r, 0.0));
    s += texture(map, c + vec3(1.0 * r, -0.4 * r, 0.0));
    s += texture(map, c + vec3(0.4 * r, 1.0 * r, 0.0));
    s += texture(map, c + vec3(-1.0 * r, 0.4 * r, 0.0));
    return 0.25 * s;
}

vec3 shadow_coord(int i, vec3 n, vec3 l) {
    float ndl = clamp(dot(n, l), 0.0, 1.0);
    vec3 p = v_pos + n * u_shadow_offset[i] * (1.0 - ndl);
    vec3 c = (u_light_mvp[i] * vec4(p, 1.0)).xyz * 0.5 + 0.5;
    c.z -= u_shadow_bias[i] * (1.0 + 2.0 * (1.0 - ndl));
    return c;
}

void main() {
    vec4 base = vec4(v_color, 1.0);
    if (u_has_tex == 1) {
        base = texture(u_tex, vec2(v_uv.x, 1.0 - v_uv.y));  // OBJ: v = 0 is the image's bottom row
    }
#if ALPHA_TEST
    if (u_alpha_pass == 1 && base.a < u_alpha_cutoff) discard;
    if (u_alpha_pass == 2 && (base.a >= u_alpha_cutoff || base.a < 0.004)) discard;
#endif
    vec3 albedo = base.rgb;
    vec3 n = normalize(v_normal);
    float k = 1.0;
    if (!gl_FrontFacing) { n = -n; k = u_backface; }
    vec3 v = u_ortho == 1 ? u_cam_dir : normalize(u_cam_pos - v_pos);
    float vis[3] = float[3](1.0, 1.0, 1.0);
    if (u_shadows == 1) {
        vis[0] = pcf(u_shadow0, shadow_coord(0, n, u_light_dir[0]), u_pcf[0]);
        vis[1] = pcf(u_shadow1, shadow_coord(1, n, u_light_dir[1]), u_pcf[1]);
    }
    float ndv = max(dot(n, v), 0.0);
    float rim = u_fresnel * pow(1.0 - ndv, u_fresnel_power);
    vec3 amb = hemisphere(n);
    vec3 c = amb * albedo * (1.0 + rim);
    float w = u_wrap * u_sss;
    for (int i = 0; i < 3; ++i) {
        if (u_light_col[i] == vec3(0.0)) continue;  // no fill light this frame
        vec3 l = u_light_dir[i];
        float ndl_raw = dot(n, l);
        float lam = max(ndl_raw, 0.0);
        float wrapped = max((ndl_raw + w) / (1.0 + w), 0.0);  // >= lam: the scattered share
        vec3 diffuse = albedo * (lam + (wrapped - lam) * u_sss_tint);
        vec3 h = normalize(l + v);
        float ndh = max(dot(n, h), 0.0);
        vec3 spec = lam > 0.0 ? u_spec_color * pow(ndh, u_shininess) * (1.0 + rim) : vec3(0.0);
        if (u_coat > 0.0 && lam > 0.0) spec += vec3(u_coat * pow(ndh, u_coat_shininess));
        c += u_light_col[i] * vis[i] * (diffuse + spec + rim * lam * albedo);
    }
    c *= k * u_occlusion;
    float a = u_alpha_pass == 2 ? base.a : 1.0;
    f_color = vec4(to_display(c), a * u_opacity);
}
"""
)

# Also the depth pre-pass of the camera view (same program, the camera's matrix).
SHADOW_VS = """
#version 330
invariant gl_Position;
uniform mat4 u_mvp;
in vec3 in_pos;
in vec2 in_uv;
out vec2 v_uv;
void main() {
    v_uv = in_uv;
    gl_Position = u_mvp * vec4(in_pos, 1.0);
}
"""

SHADOW_FS = """
#version 330
#ifndef ALPHA_TEST
#define ALPHA_TEST 1
#endif
in vec2 v_uv;
uniform sampler2D u_tex;
uniform int u_has_tex;
uniform float u_alpha_cutoff;
out vec4 f_color;
void main() {
    // alpha-tested casters (hair, brows) cast shadows through their holes
#if ALPHA_TEST
    if (u_has_tex == 1 && texture(u_tex, vec2(v_uv.x, 1.0 - v_uv.y)).a < u_alpha_cutoff) discard;
#endif
    f_color = vec4(1.0);
}
"""

BACKGROUND_VS = (
    """
#version 330
uniform mat4 u_mvp;
uniform float u_spec;
uniform float u_shininess;
in vec3 in_pos;
in vec3 in_normal;
in vec3 i_offset;
in mat3 i_rot;
in vec3 i_scale;
in vec3 i_col_a;
in vec3 i_col_b;
in vec4 i_tex;      // pattern id, frequency, pattern angle (rad), hue offset (rad)
in float i_seed;
out vec3 v_local;
out vec3 v_col_a;    // displayed (lit, tone-mapped, sRGB) colour of pattern colour a at this vertex
out vec3 v_col_b;
flat out vec3 v_tex;
flat out float v_seed;
"""
    + _COMMON_FS
    + """
vec3 hue_rotate(vec3 c, float a) {
    // rotation about the grey axis (the classic hue-rotation matrix); linear, so rotating the two
    // pattern colours equals rotating every texel of the pattern
    float s = sin(a), co = cos(a);
    vec3 k = vec3(0.57735);
    return c * co + cross(k, c) * s + k * dot(k, c) * (1.0 - co);
}
void main() {
    vec3 p = i_rot * (in_pos * i_scale) + i_offset;
    vec3 n = normalize(i_rot * (in_normal / i_scale));
    // Gouraud shading of the background: diffuse and specular terms per vertex
    vec3 v = u_ortho == 1 ? u_cam_dir : normalize(u_cam_pos - p);
    if (dot(n, v) < 0.0) n = -n;
    vec3 diffuse = hemisphere(n);
    vec3 specular = vec3(0.0);
    for (int i = 0; i < 3; ++i) {
        vec3 l = u_light_dir[i];
        float ndl = max(dot(n, l), 0.0);
        float spec = ndl > 0.0 ? pow(max(dot(n, normalize(l + v)), 0.0), u_shininess) : 0.0;
        diffuse += u_light_col[i] * ndl;
        specular += u_light_col[i] * u_spec * spec;
    }
    v_local = in_pos * i_scale;
    vec3 a = pow(clamp(hue_rotate(i_col_a, i_tex.w), 0.0, 1.0), vec3(2.2));
    vec3 b = pow(clamp(hue_rotate(i_col_b, i_tex.w), 0.0, 1.0), vec3(2.2));
    // Shading and display encoding per vertex; the fragment shader only mixes the two by the pattern.
    v_col_a = to_display(a * diffuse + specular);
    v_col_b = to_display(b * diffuse + specular);
    v_tex = i_tex.xyz;
    v_seed = i_seed;
    gl_Position = u_mvp * vec4(p, 1.0);
}
"""
)

BACKGROUND_FS = """
#version 330
in vec3 v_local;
in vec3 v_col_a;
in vec3 v_col_b;
flat in vec3 v_tex;
flat in float v_seed;
out vec4 f_color;

float hash21(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031 + v_seed * 0.0137);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}
float vnoise(vec2 p) {
    vec2 i = floor(p);
    vec2 f = fract(p);
    f = f * f * (3.0 - 2.0 * f);
    float a = mix(hash21(i), hash21(i + vec2(1, 0)), f.x);
    float b = mix(hash21(i + vec2(0, 1)), hash21(i + vec2(1, 1)), f.x);
    return mix(a, b, f.y);
}
float fbm(vec3 q) {
    vec2 p = q.xy + 0.61 * q.z;  // a 2D noise slice through the object's local space
    return 0.65 * vnoise(p) + 0.35 * vnoise(2.03 * p + 17.0);
}
void main() {
    int pattern = int(v_tex.x + 0.5);
    float freq = v_tex.y;
    float ca = cos(v_tex.z), sa = sin(v_tex.z);
    vec3 q = vec3(ca * v_local.x - sa * v_local.y, sa * v_local.x + ca * v_local.y, v_local.z) * freq;
    float t = 0.0;
    if (pattern == 1) t = step(0.5, fract(q.x));
    else if (pattern == 2) t = mod(floor(q.x) + floor(q.y) + floor(q.z), 2.0);
    else if (pattern == 3) t = fbm(q);
    else if (pattern == 4) t = clamp(0.5 + 0.5 * q.x / max(freq, 1e-3), 0.0, 1.0);
    else if (pattern == 5) t = step(length(fract(q) - 0.5), 0.3);
    else if (pattern == 6) t = step(0.5, fract(length(q)));
    else if (pattern == 7) t = 0.5 + 0.5 * sin(6.2831853 * (q.x + 0.3 * sin(6.2831853 * q.y)));
    else if (pattern == 8) t = 0.5 + 0.5 * sin(6.2831853 * q.x + 6.0 * fbm(q));
    f_color = vec4(mix(v_col_a, v_col_b, t), 1.0);
}
"""


@dataclass(frozen=True)
class Camera:
    """A camera looking along -z (MakeHuman faces look along +z) at ``target``.

    ``half_height`` is the orthographic half view height in scene units (decimetres; Unity's
    orthographic "size"); ``fov_deg`` the vertical field of view of the perspective camera, placed
    so that the view at the target plane is the same ``half_height``.
    """

    target: tuple[float, float, float]
    half_height: float
    projection: Literal["orthographic", "perspective"] = "orthographic"
    fov_deg: float = 20.0
    distance: float = 40.0  # from the target along +z (orthographic: only for clipping)

    def position(self) -> np.ndarray:
        t = np.asarray(self.target, dtype=np.float64)
        if self.projection == "perspective":
            d = self.half_height / np.tan(np.radians(self.fov_deg) / 2)
            return t + np.array([0.0, 0.0, d])
        return t + np.array([0.0, 0.0, self.distance])

    def matrix(self, aspect: float) -> np.ndarray:
        """Projection x view matrix (column-vector convention, float32)."""
        eye = self.position()
        view = np.eye(4)
        view[:3, 3] = -eye  # axes already aligned: camera looks along -z with y up
        far = float(eye[2] - self.target[2]) + 60.0
        near = 0.5
        if self.projection == "orthographic":
            h = self.half_height
            w = h * aspect
            proj = np.array(
                [
                    [1 / w, 0, 0, 0],
                    [0, 1 / h, 0, 0],
                    [0, 0, -2 / (far - near), -(far + near) / (far - near)],
                    [0, 0, 0, 1],
                ]
            )
        else:
            f = 1 / np.tan(np.radians(self.fov_deg) / 2)
            proj = np.array(
                [
                    [f / aspect, 0, 0, 0],
                    [0, f, 0, 0],
                    [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
                    [0, 0, -1, 0],
                ]
            )
        return (proj @ view).astype(np.float32)

    def project(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """World points (N, 3) -> pixel coordinates (N, 2), origin top-left."""
        m = self.matrix(width / height).astype(np.float64)
        p = np.c_[np.asarray(points, dtype=np.float64), np.ones(len(points))] @ m.T
        ndc = p[:, :2] / p[:, 3:4]
        return np.c_[(ndc[:, 0] + 1) * width / 2, (1 - ndc[:, 1]) * height / 2]


@dataclass(frozen=True)
class Lighting:
    """Directional lights (unit vectors towards the lights, linear colour x intensity) + ambient.

    Rows 0 and 1 are the left and right key lights (they cast shadows), an optional row 2 the fill
    light. The ambient is a hemisphere: ``ambient`` from above, ``ambient_ground`` from below (the
    same colour for a flat ambient).
    """

    directions: np.ndarray  # (2 or 3, 3)
    colors: np.ndarray  # (2 or 3, 3) linear RGB already multiplied by intensity
    ambient: np.ndarray  # (3,) linear RGB from the sky (normal +y)
    exposure: float = 1.0
    tonemap: Literal["aces", "clamp"] = "aces"
    ambient_ground: np.ndarray | None = None  # (3,) from the ground (normal -y); None: = ambient

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(directions (3, 3), colours (3, 3), sky (3,), ground (3,)); a missing fill light is black."""
        d = np.zeros((N_LIGHTS, 3), np.float32)
        c = np.zeros((N_LIGHTS, 3), np.float32)
        d[:, 2] = 1.0
        dirs = np.asarray(self.directions, np.float32)
        d[: len(dirs)] = dirs
        c[: len(dirs)] = np.asarray(self.colors, np.float32)
        sky = np.asarray(self.ambient, np.float32)
        ground = sky if self.ambient_ground is None else np.asarray(self.ambient_ground, np.float32)
        return d, c, sky, ground


@dataclass(frozen=True)
class Shading:
    """Skin and eye shading constants of the mesh shader (section ``generate.shading``)."""

    wrap: float  # wrap-lighting width at sss = 1 (0: plain Lambert)
    sss_tint: tuple[float, float, float]  # linear colour of the wrapped (scattered) light
    fresnel: float  # rim strength (0: off)
    fresnel_power: float
    cornea: float  # strength of the eyes' sharp highlight (0: off)
    cornea_shininess: float
    mouth_occlusion: float  # light share reaching teeth and tongue (1: no darkening)


# Shading of the renderer when none is given: Lambert + Blinn-Phong only (the scene passes params).
PLAIN_SHADING = Shading(0.0, (1.0, 1.0, 1.0), 0.0, 5.0, 0.0, 500.0, 1.0)


@dataclass(frozen=True)
class Shadows:
    """Shadow maps of the two key lights (section ``generate.shadows``)."""

    enabled: bool
    map_size: int  # texels per side of each light's map
    softness: float  # PCF radius in map texels
    bias: float  # depth bias in map texels (scaled up on grazing surfaces)
    normal_offset: float  # lookup offset along the normal in map texels


NO_SHADOWS = Shadows(False, 1024, 1.0, 1.0, 1.0)


@dataclass
class DrawMesh:
    """One mesh to draw: positions, normals (N, 3), linear colours (N, 3), triangles (M, 3).

    With ``texture`` (uint8 (H, W, 4) sRGB + straight alpha; or (H, W, 3)) and ``uv`` (N, 2; OBJ
    convention, v = 0 at the image's bottom row) the texture replaces ``colors``. ``alpha_mode``:
    ``opaque``, ``mask`` (texels with alpha < ``alpha_cutoff`` are cut out) or ``blend`` (cut out
    at the cutoff, the fringe below it blended over what lies behind). Pass the same texture array
    object every frame: GL textures are cached by identity.
    """

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    triangles: np.ndarray
    specular: float = 0.1  # scales specular_color
    shininess: float = 20.0
    backface: float = 0.15
    opacity: float = 1.0  # < 1: drawn after the opaque meshes, blended, without depth writes
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    alpha_mode: Literal["opaque", "mask", "blend"] = "opaque"
    alpha_cutoff: float = 0.5
    specular_color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # linear
    sss: float = 0.0  # 0..1: how much of Shading.wrap this part gets
    coat: bool = False  # the cornea's sharp highlight (eyes)
    occluded: bool = False  # inside the mouth: Shading.mouth_occlusion applies
    casts_shadow: bool = True
    fresnel: bool = True  # the rim applies (skin, hair); off for eyes, teeth, tongue


@dataclass
class ShapeInstances:
    """Instances of one primitive shape: vertices/normals/triangles + (K, INSTANCE_FLOATS) data."""

    vertices: np.ndarray
    normals: np.ndarray
    triangles: np.ndarray
    instances: np.ndarray


class RendererError(ProjectError, RuntimeError):
    """The OpenGL context could not be created or a draw failed."""


COMPOSITE_VS = """
#version 330
uniform vec4 u_rect;  // x0, y0, x1, y1 of the head's box in normalised device coordinates
in vec2 in_pos;       // unit square corners (0..1)
void main() {
    gl_Position = vec4(mix(u_rect.xy, u_rect.zw, in_pos), 0.0, 1.0);
}
"""

COMPOSITE_FS = """
#version 330
uniform sampler2DMS u_fg;
uniform int u_samples;
out vec4 f_color;
void main() {
    // resolve the multisampled head pass (colour x coverage, alpha = coverage) for this pixel
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec4 c = vec4(0.0);
    for (int i = 0; i < u_samples; ++i) c += texelFetch(u_fg, p, i);
    f_color = c / float(u_samples);  // blended over the background with ONE, ONE_MINUS_SRC_ALPHA
}
"""


class Renderer:
    """Offscreen renderer of a fixed output size; reuse one per process.

    ``samples`` <= 1: one pass: the opaque and alpha-tested meshes first, then the background shapes
    (the depth test then skips the background behind the head), then the blended fringes of hair and
    brows (over whatever lies behind them). ``samples`` > 1: the background is drawn single-sampled,
    the meshes (the head) multisampled into a transparent layer, and that layer is resolved and
    blended over the background only inside the meshes' screen box, so silhouettes are anti-aliased
    while the wall of shapes (most of the pixels) costs one sample per pixel.

    With shadows on, each key light first renders the depth of the shadow-casting meshes into its own
    shadow map (orthographic, fitted to the casters); the mesh shader compares against both maps.

    Set ``profile = True`` to record the seconds of each phase of the last frame in ``timings``
    (shadow, raster_head, raster_background, readback); it waits for the rasteriser after each
    phase, so leave it off otherwise.
    """

    TEXTURE_CACHE = 24  # GL textures kept (one identity uses ~6)
    STATIC_CACHE = 64  # static vertex/index buffers kept (uv, colours, triangles)

    def __init__(self, width: int, height: int, samples: int = 4) -> None:
        import moderngl

        if width <= 0 or height <= 0:
            raise ValueError(f"render size must be positive, got {width}x{height}")
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as error:  # moderngl raises plain Exception subclasses
            raise RendererError(
                f"could not create a headless OpenGL context through EGL ({error}). Install Mesa's EGL "
                "and llvmpipe (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri), as .ci/run does."
            ) from error
        self.width, self.height = int(width), int(height)
        self.samples = int(samples) if samples and samples > 1 else 0
        ctx = self.ctx
        size = (self.width, self.height)
        self.fbo = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer(size, 4)], depth_attachment=ctx.depth_renderbuffer(size)
        )
        if self.samples:
            self.fg_texture = ctx.texture(size, 4, samples=self.samples)
            self.ms_fbo = ctx.framebuffer(
                color_attachments=[self.fg_texture],
                depth_attachment=ctx.depth_renderbuffer(size, samples=self.samples),
            )
            self.composite_prog = ctx.program(vertex_shader=COMPOSITE_VS, fragment_shader=COMPOSITE_FS)
            quad = ctx.buffer(np.array([0, 0, 1, 0, 0, 1, 1, 1], dtype=np.float32).tobytes())
            self.quad = ctx.vertex_array(self.composite_prog, [(quad, "2f", "in_pos")])
        # [no discard (early depth test), alpha test]
        self.mesh_progs = [
            ctx.program(vertex_shader=MESH_VS, fragment_shader=_with_define(MESH_FS, "ALPHA_TEST", k))
            for k in (0, 1)
        ]
        self.bg_prog = ctx.program(vertex_shader=BACKGROUND_VS, fragment_shader=BACKGROUND_FS)
        self.shadow_progs = [
            ctx.program(vertex_shader=SHADOW_VS, fragment_shader=_with_define(SHADOW_FS, "ALPHA_TEST", k))
            for k in (0, 1)
        ]
        self._buffers: dict[str, object] = {}
        self._static: OrderedDict[tuple, tuple[np.ndarray, object]] = OrderedDict()
        self._textures: OrderedDict[int, tuple[np.ndarray, object]] = OrderedDict()
        self._shadow_maps: list[tuple[object, object]] = []
        self._shadow_size = 0
        self._dummy_shadow = self._depth_texture(1)
        self.profile = False
        self.timings: dict[str, float] = {}

    @property
    def renderer_name(self) -> str:
        return str(self.ctx.info.get("GL_RENDERER", "?"))

    # -------------------------------------------------------------------------------- resources

    def _depth_texture(self, size: int):
        import moderngl

        tex = self.ctx.depth_texture((size, size))
        tex.compare_func = "<="  # sampler2DShadow: 1 = lit
        tex.filter = (moderngl.LINEAR, moderngl.LINEAR)  # bilinear comparison (hardware 2x2 PCF)
        tex.repeat_x = tex.repeat_y = False
        return tex

    def _ensure_shadow_maps(self, size: int) -> None:
        if self._shadow_size == size:
            return
        for tex, fbo in self._shadow_maps:
            fbo.release()
            tex.release()
        self._shadow_maps = []
        for _ in range(2):
            tex = self._depth_texture(size)
            self._shadow_maps.append((tex, self.ctx.framebuffer(depth_attachment=tex)))
        self._shadow_size = size

    def _texture(self, image: np.ndarray):
        """The GL texture of ``image`` (sRGB internal format, mipmapped), cached by the array's id."""
        import moderngl

        key = id(image)
        hit = self._textures.get(key)
        if hit is not None and hit[0] is image:
            self._textures.move_to_end(key)
            return hit[1]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise RendererError(f"a texture must be uint8 (H, W, 3 or 4), got {image.dtype} {image.shape}")
        h, w, comp = image.shape
        fmt = 0x8C43 if comp == 4 else 0x8C41  # GL_SRGB8_ALPHA8 / GL_SRGB8: decoded to linear on sampling
        tex = self.ctx.texture((w, h), comp, np.ascontiguousarray(image).tobytes(), internal_format=fmt)
        tex.build_mipmaps()
        tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        self._textures[key] = (image, tex)  # holding the array keeps its id unique
        while len(self._textures) > self.TEXTURE_CACHE:
            _, (_, old) = self._textures.popitem(last=False)
            old.release()
        return tex

    def _static_buffer(self, kind: str, data: np.ndarray):
        """A GL buffer of an array that stays the same between frames (uv, colours, triangles)."""
        key = (kind, id(data))
        hit = self._static.get(key)
        if hit is not None and hit[0] is data:
            self._static.move_to_end(key)
            return hit[1]
        dtype = np.float32 if data.dtype.kind == "f" else np.int32
        buf = self.ctx.buffer(np.ascontiguousarray(data, dtype=dtype).tobytes())
        self._static[key] = (data, buf)
        while len(self._static) > self.STATIC_CACHE:
            _, (_, old) = self._static.popitem(last=False)
            old.release()
        return buf

    def _buffer(self, key: str, data: np.ndarray):
        """A GL buffer reused between frames (grown when needed)."""
        raw = np.ascontiguousarray(data, dtype=np.float32 if data.dtype.kind == "f" else np.int32).tobytes()
        buf = self._buffers.get(key)
        if buf is None or buf.size < len(raw):
            if buf is not None:
                buf.release()
            buf = self.ctx.buffer(reserve=max(len(raw), 4))
            self._buffers[key] = buf
        buf.write(raw)
        return buf, len(raw)

    @staticmethod
    def _write(prog, name: str, value) -> None:
        if name in prog:  # the GLSL compiler drops unused uniforms
            prog[name].write(np.ascontiguousarray(value, dtype=np.float32).tobytes())

    @staticmethod
    def _int(prog, name: str, value: int) -> None:
        if name in prog:
            prog[name].value = int(value)

    def _set_common(self, prog, camera: Camera, lighting: Lighting) -> None:
        directions, colors, sky, ground = lighting.arrays()
        self._write(prog, "u_mvp", camera.matrix(self.width / self.height).T)
        self._write(prog, "u_light_dir", directions)
        self._write(prog, "u_light_col", colors)
        self._write(prog, "u_sky", sky)
        self._write(prog, "u_ground", ground)
        self._write(prog, "u_cam_pos", camera.position())
        self._write(prog, "u_cam_dir", np.array([0.0, 0.0, 1.0]))
        self._write(prog, "u_exposure", float(lighting.exposure))
        self._int(prog, "u_ortho", camera.projection == "orthographic")
        self._int(prog, "u_tonemap", lighting.tonemap == "aces")

    # -------------------------------------------------------------------------------- frame

    def _tick(self, name: str, start: float) -> float:
        if self.profile:
            self.ctx.finish()
            now = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + now - start
            return now
        return start

    def render(
        self,
        camera: Camera,
        lighting: Lighting,
        meshes: list[DrawMesh],
        shapes: list[ShapeInstances] = (),
        clear: tuple[float, float, float] = (0.5, 0.5, 0.5),
        background_specular: tuple[float, float] = (0.15, 24.0),
        shading: Shading = PLAIN_SHADING,
        shadows: Shadows = NO_SHADOWS,
    ) -> np.ndarray:
        """Draw everything and return the frame as RGB uint8 (height, width, 3), top row first.

        ``shapes`` are drawn in list order: put the nearest instances first (cheaper depth test).
        """
        import moderngl

        ctx = self.ctx
        self.timings = {}
        t = time.perf_counter()
        meshes = [m for m in meshes if len(m.triangles)]
        for m in meshes:
            if m.alpha_mode not in ALPHA_MODES:
                raise RendererError(f"alpha_mode {m.alpha_mode!r}; choose one of {list(ALPHA_MODES)}")
        # positions and normals change every frame: one upload per mesh, shared by every pass
        self._frame = {}
        for k, m in enumerate(meshes):
            self._frame[id(m)] = (self._buffer(f"p{k}", m.vertices)[0], self._buffer(f"n{k}", m.normals)[0])
        light_mvps = self._shadow_passes(lighting, meshes, shadows)
        t = self._tick("shadow", t)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        ctx.disable(moderngl.BLEND)
        ctx.depth_mask = True
        self.fbo.use()
        self.fbo.clear(*clear, 1.0, depth=1.0)
        draw = (camera, lighting, meshes, shading, shadows, light_mvps)
        if not self.samples:
            self._draw_meshes(*draw, phase="solid")
            t = self._tick("raster_head", t)
            self._draw_shapes(camera, lighting, shapes, background_specular)
            t = self._tick("raster_background", t)
            self._draw_meshes(*draw, phase="blend")
            t = self._tick("raster_head", t)
        else:
            self._draw_shapes(camera, lighting, shapes, background_specular)
            t = self._tick("raster_background", t)
            box = self._screen_box(camera, meshes)
            if box is not None:
                x0, y0, x1, y1 = box
                viewport = (x0, y0, x1 - x0, y1 - y0)
                self.ms_fbo.use()
                self.ms_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=viewport)
                ctx.scissor = viewport
                self._draw_meshes(*draw, phase="solid")
                self._draw_meshes(*draw, phase="blend")
                ctx.scissor = None
                self.fbo.use()
                ctx.disable(moderngl.DEPTH_TEST)
                ctx.enable(moderngl.BLEND)
                ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
                self.fg_texture.use(0)
                prog = self.composite_prog
                prog["u_fg"].value = 0
                prog["u_samples"].value = self.samples
                w, h = self.width, self.height
                prog["u_rect"].value = (2 * x0 / w - 1, 2 * y0 / h - 1, 2 * x1 / w - 1, 2 * y1 / h - 1)
                self.quad.render(moderngl.TRIANGLE_STRIP)
                ctx.disable(moderngl.BLEND)
                ctx.enable(moderngl.DEPTH_TEST)
            t = self._tick("raster_head", t)
        raw = self.fbo.read(components=3, alignment=1)
        image = np.frombuffer(raw, dtype=np.uint8).reshape(self.height, self.width, 3)
        image = np.ascontiguousarray(image[::-1])
        self._tick("readback", t)
        return image

    def _shadow_passes(
        self, lighting: Lighting, meshes: list[DrawMesh], shadows: Shadows
    ) -> np.ndarray | None:
        """Render both key lights' shadow maps; returns their (2, 4, 4) world -> clip matrices."""
        import moderngl

        casters = [m for m in meshes if m.casts_shadow and m.opacity >= 1.0]
        if not shadows.enabled or not casters:
            return None
        self._ensure_shadow_maps(int(shadows.map_size))
        points = np.concatenate([m.vertices for m in casters]).astype(np.float64)
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        ctx.disable(moderngl.BLEND)
        ctx.depth_mask = True
        matrices, self._shadow_params = [], []
        directions = np.asarray(lighting.directions, np.float64)
        for i in range(2):
            mvp, side, depth_range = light_matrix(directions[i], points)
            matrices.append(mvp)
            self._shadow_params.append((side, depth_range))
            _, fbo = self._shadow_maps[i]
            fbo.use()
            fbo.clear(depth=1.0)
            for prog in self.shadow_progs:
                self._write(prog, "u_mvp", mvp.T)
            # opaque casters first (no discard: early depth test), then the alpha-tested ones
            ordered = sorted(casters, key=lambda m: self._alpha_tested_caster(m))
            for mesh in ordered:
                has_tex = self._alpha_tested_caster(mesh)
                prog = self.shadow_progs[int(has_tex)]
                vbo = self._frame[id(mesh)][0]
                ibo = self._static_buffer("tri", mesh.triangles)
                content = [(vbo, "3f", "in_pos")]
                if has_tex:
                    self._texture(mesh.texture).use(0)
                    self._int(prog, "u_tex", 0)
                    content.append((self._static_buffer("uv", mesh.uv), "2f", "in_uv"))
                self._int(prog, "u_has_tex", has_tex)
                self._write(prog, "u_alpha_cutoff", float(mesh.alpha_cutoff))
                vao = ctx.vertex_array(
                    prog, content, index_buffer=ibo, index_element_size=4, skip_errors=True
                )
                vao.render(moderngl.TRIANGLES, vertices=mesh.triangles.size)
                vao.release()
        return np.stack(matrices).astype(np.float32)

    @staticmethod
    def _alpha_tested_caster(mesh: DrawMesh) -> bool:
        return mesh.texture is not None and mesh.uv is not None and mesh.alpha_mode != "opaque"

    def _screen_box(self, camera: Camera, meshes: list[DrawMesh]) -> tuple[int, int, int, int] | None:
        """Pixel box (x0, y0, x1, y1; GL's bottom-left origin) holding every mesh vertex, or None."""
        points = [m.vertices for m in meshes if len(m.triangles)]
        if not points:
            return None
        xy = camera.project(np.concatenate(points), self.width, self.height)
        x0 = int(np.clip(np.floor(xy[:, 0].min()) - 2, 0, self.width))
        x1 = int(np.clip(np.ceil(xy[:, 0].max()) + 2, 0, self.width))
        top = int(np.clip(np.floor(xy[:, 1].min()) - 2, 0, self.height))
        bottom = int(np.clip(np.ceil(xy[:, 1].max()) + 2, 0, self.height))
        if x1 <= x0 or bottom <= top:
            return None
        return x0, self.height - bottom, x1, self.height - top

    def _draw_shapes(
        self, camera: Camera, lighting: Lighting, shapes: list[ShapeInstances], specular: tuple[float, float]
    ) -> None:
        import moderngl

        prog = self.bg_prog
        self._set_common(prog, camera, lighting)
        if "u_spec" in prog:
            prog["u_spec"].value, prog["u_shininess"].value = specular
        # closed solids: their back faces are always hidden, culling them halves the fragments
        self.ctx.enable(moderngl.CULL_FACE)
        for k, shape in enumerate(shapes):
            if len(shape.instances) == 0:
                continue
            vbo = self._static_buffer("shape", shape.vertices)
            nbo = self._static_buffer("shape_n", shape.normals)
            ibo = self._static_buffer("shape_i", shape.triangles)
            inst, _ = self._buffer(f"bgx{k}", shape.instances)
            vao = self.ctx.vertex_array(
                prog,
                [
                    (vbo, "3f", "in_pos"),
                    (nbo, "3f", "in_normal"),
                    (
                        inst,
                        "3f 9f 3f 3f 3f 4f 1f/i",
                        *("i_offset", "i_rot", "i_scale", "i_col_a", "i_col_b", "i_tex", "i_seed"),
                    ),
                ],
                index_buffer=ibo,
                index_element_size=4,
                skip_errors=True,
            )
            vao.render(moderngl.TRIANGLES, vertices=shape.triangles.size, instances=len(shape.instances))
            vao.release()
        self.ctx.disable(moderngl.CULL_FACE)

    def _set_mesh_uniforms(
        self,
        prog,
        camera: Camera,
        lighting: Lighting,
        shading: Shading,
        shadows: Shadows,
        light_mvps: np.ndarray | None,
    ) -> None:
        self._set_common(prog, camera, lighting)
        self._write(prog, "u_wrap", shading.wrap)
        self._write(prog, "u_sss_tint", shading.sss_tint)
        self._write(prog, "u_fresnel_power", shading.fresnel_power)
        self._write(prog, "u_coat_shininess", shading.cornea_shininess)
        if light_mvps is not None:
            self._int(prog, "u_shadows", 1)
            self._write(prog, "u_light_mvp", np.transpose(light_mvps, (0, 2, 1)))
            size = float(shadows.map_size)
            texel = np.array([p[0] for p in self._shadow_params]) / size  # world size of one texel
            depth = np.array([p[1] for p in self._shadow_params])
            self._write(prog, "u_shadow_bias", shadows.bias * texel / depth)
            self._write(prog, "u_shadow_offset", shadows.normal_offset * texel)
            self._write(prog, "u_pcf", np.full(2, shadows.softness / size))
            maps = [tex for tex, _ in self._shadow_maps]
        else:
            self._int(prog, "u_shadows", 0)
            maps = [self._dummy_shadow, self._dummy_shadow]
        maps[0].use(1)
        maps[1].use(2)
        self._int(prog, "u_shadow0", 1)
        self._int(prog, "u_shadow1", 2)
        self._int(prog, "u_tex", 0)

    def _draw_meshes(
        self,
        camera: Camera,
        lighting: Lighting,
        meshes: list[DrawMesh],
        shading: Shading,
        shadows: Shadows,
        light_mvps: np.ndarray | None,
        phase: Literal["solid", "blend"],
    ) -> None:
        """``solid``: opaque meshes, alpha-tested texels of mask and blend meshes (depth writes on).
        ``blend``: the fringes of blend meshes and the half-transparent meshes, blended, no depth writes."""
        import moderngl

        ctx = self.ctx
        for prog in self.mesh_progs:
            self._set_mesh_uniforms(prog, camera, lighting, shading, shadows, light_mvps)
        if phase == "solid":
            solid = [m for m in meshes if m.opacity >= 1.0]
            solid.sort(key=self._alpha_tested_caster)  # opaque first: they fill the depth buffer early
            ctx.disable(moderngl.BLEND)
            # Depth pre-pass (cheap shader; alpha-tested parts cut out there), then the costly shading
            # runs once per visible pixel: only where its depth equals the pre-pass's.
            self._depth_pass(camera.matrix(self.width / self.height), solid)
            ctx.depth_func = "=="
            ctx.depth_mask = False
            todo = [(m, 0) for m in solid]
        else:
            todo = [(m, 2) for m in meshes if m.opacity >= 1.0 and m.alpha_mode == "blend"]
            todo += [(m, 0) for m in meshes if m.opacity < 1.0]
            if not todo:
                return
            ctx.enable(moderngl.BLEND)
            # colour: over; alpha: accumulate coverage (premultiplied output for the composite)
            ctx.blend_func = (
                moderngl.SRC_ALPHA,
                moderngl.ONE_MINUS_SRC_ALPHA,
                moderngl.ONE,
                moderngl.ONE_MINUS_SRC_ALPHA,
            )
            ctx.depth_mask = False
        for mesh, alpha_pass in todo:
            textured = mesh.texture is not None and mesh.uv is not None
            if alpha_pass and not textured:
                if alpha_pass == 2:
                    continue  # no texture: no fringe
                alpha_pass = 0
            prog = self.mesh_progs[int(alpha_pass > 0)]
            vbo, nbo = self._frame[id(mesh)]
            ibo = self._static_buffer("tri", mesh.triangles)
            content = [(vbo, "3f", "in_pos"), (nbo, "3f", "in_normal")]
            if textured:
                self._texture(mesh.texture).use(0)
                content.append((self._static_buffer("uv", mesh.uv), "2f", "in_uv"))
            else:
                content.append((self._static_buffer("col", mesh.colors), "3f", "in_color"))
            self._int(prog, "u_has_tex", textured)
            self._int(prog, "u_alpha_pass", alpha_pass)
            self._write(prog, "u_alpha_cutoff", float(mesh.alpha_cutoff))
            self._write(prog, "u_opacity", float(mesh.opacity))
            self._write(prog, "u_spec_color", np.asarray(mesh.specular_color, np.float64) * mesh.specular)
            self._write(prog, "u_shininess", float(mesh.shininess))
            self._write(prog, "u_backface", float(mesh.backface))
            self._write(prog, "u_sss", float(mesh.sss))
            self._write(prog, "u_fresnel", shading.fresnel if mesh.fresnel else 0.0)
            self._write(prog, "u_coat", shading.cornea if mesh.coat else 0.0)
            self._write(prog, "u_occlusion", shading.mouth_occlusion if mesh.occluded else 1.0)
            vao = ctx.vertex_array(prog, content, index_buffer=ibo, index_element_size=4, skip_errors=True)
            vao.render(moderngl.TRIANGLES, vertices=mesh.triangles.size)
            vao.release()
        ctx.depth_func = "<"
        ctx.depth_mask = True
        ctx.disable(moderngl.BLEND)

    def _depth_pass(self, mvp: np.ndarray, meshes: list[DrawMesh]) -> None:
        """Write the depth of ``meshes`` (alpha-tested ones cut out) with the cheap shadow programs."""
        import moderngl

        ctx = self.ctx
        fbo = ctx.fbo  # the framebuffer in use
        fbo.color_mask = (False, False, False, False)
        ctx.depth_func = "<"
        ctx.depth_mask = True
        for prog in self.shadow_progs:
            self._write(prog, "u_mvp", mvp.T)
        for mesh in meshes:
            has_tex = self._alpha_tested_caster(mesh)
            prog = self.shadow_progs[int(has_tex)]
            content = [(self._frame[id(mesh)][0], "3f", "in_pos")]
            if has_tex:
                self._texture(mesh.texture).use(0)
                self._int(prog, "u_tex", 0)
                content.append((self._static_buffer("uv", mesh.uv), "2f", "in_uv"))
            self._int(prog, "u_has_tex", has_tex)
            self._write(prog, "u_alpha_cutoff", float(mesh.alpha_cutoff))
            ibo = self._static_buffer("tri", mesh.triangles)
            vao = ctx.vertex_array(prog, content, index_buffer=ibo, index_element_size=4, skip_errors=True)
            vao.render(moderngl.TRIANGLES, vertices=mesh.triangles.size)
            vao.release()
        fbo.color_mask = (True, True, True, True)

    def release(self) -> None:
        for buf in self._buffers.values():
            buf.release()
        self._buffers.clear()
        self.ctx.release()


def _with_define(source: str, name: str, value: int) -> str:
    """``source`` with ``#define name value`` right after its #version line."""
    head, rest = source.split("\n", 2)[1:] if source.startswith("\n") else source.split("\n", 1)
    return f"{head}\n#define {name} {value}\n{rest}"


def light_matrix(direction: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Orthographic world -> clip matrix of a directional light fitted around ``points``.

    ``direction`` points towards the light. Returns (matrix (4, 4) column-vector convention, side
    length of the square map in world units, depth range in world units).
    The map is square so PCF radii are the same along both axes.
    """
    f = -np.asarray(direction, np.float64)
    f /= np.linalg.norm(f)
    up = np.array([0.0, 1.0, 0.0]) if abs(f[1]) < 0.95 else np.array([1.0, 0.0, 0.0])
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    rot = np.stack([s, u, -f])  # rows: view axes (the light looks along view -z)
    q = points @ rot.T
    lo, hi = q.min(axis=0), q.max(axis=0)
    centre = (lo + hi) / 2
    half = max(hi[0] - lo[0], hi[1] - lo[1]) / 2 * 1.02 + 1e-3
    near, far = -hi[2] - 0.05, -lo[2] + 0.05  # distances along the view direction
    proj = np.array(
        [
            [1 / half, 0, 0, -centre[0] / half],
            [0, 1 / half, 0, -centre[1] / half],
            [0, 0, -2 / (far - near), -(far + near) / (far - near)],
            [0, 0, 0, 1],
        ]
    )
    view = np.eye(4)
    view[:3, :3] = rot
    return proj @ view, 2 * half, far - near


def limit_llvmpipe_threads(threads: int) -> None:
    """Ask llvmpipe for ``threads`` rasteriser threads (must run before the context is created)."""
    os.environ["LP_NUM_THREADS"] = str(int(threads))
