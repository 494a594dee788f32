"""Headless OpenGL renderer (moderngl on EGL, Mesa llvmpipe on the CPU).

One :class:`Renderer` per process owns one EGL context and an offscreen multisampled framebuffer
of the output size. It draws

- meshes (the human's parts) with per-vertex normals and colours: Lambert diffuse + Blinn-Phong
  specular from two coloured directional lights plus a small ambient term, double-sided with back
  faces dark;
- instanced primitive shapes (the background wall) with solid procedural textures (stripes,
  checkers, noise, gradients, dots, rings, ...) evaluated in the fragment shader, each instance
  with its own colours, frequency, rotation and hue offset.

Colours are handled in linear light: sRGB albedos are converted to linear before lighting, the sum
goes through an exposure and a tone curve and is encoded back to sRGB in the shader.

Rendering and MediaPipe must never share a process (EGL + MediaPipe segfault); the generate stage
renders only inside worker processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

# Instance layout of the background shader (floats per instance), see BACKGROUND_VS.
INSTANCE_FLOATS = 3 + 9 + 3 + 3 + 3 + 4 + 1
PATTERNS = ("solid", "stripes", "checker", "noise", "gradient", "dots", "rings", "waves", "marble")

_COMMON_FS = """
uniform vec3 u_light_dir[2];   // unit vectors towards each light (world)
uniform vec3 u_light_col[2];   // linear colour x intensity
uniform vec3 u_ambient;        // linear ambient colour
uniform vec3 u_cam_pos;
uniform vec3 u_cam_dir;        // unit vector from the scene towards the camera (orthographic)
uniform int u_ortho;
uniform float u_exposure;
uniform int u_tonemap;         // 0 clamp, 1 ACES (Narkowicz fit)

vec3 shade(vec3 albedo, vec3 n, vec3 pos, float spec_strength, float shininess) {
    vec3 v = u_ortho == 1 ? u_cam_dir : normalize(u_cam_pos - pos);
    vec3 c = u_ambient * albedo;
    for (int i = 0; i < 2; ++i) {
        vec3 l = u_light_dir[i];
        float ndl = max(dot(n, l), 0.0);
        vec3 h = normalize(l + v);
        float spec = ndl > 0.0 ? pow(max(dot(n, h), 0.0), shininess) : 0.0;
        c += u_light_col[i] * (albedo * ndl + spec_strength * spec);
    }
    return c;
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
uniform mat4 u_mvp;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    gl_Position = u_mvp * vec4(in_pos, 1.0);
}
"""

MESH_FS = (
    """
#version 330
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
uniform float u_spec;
uniform float u_shininess;
uniform float u_backface;   // brightness factor of back faces
uniform float u_opacity;
"""
    + _COMMON_FS
    + """
void main() {
    vec3 n = normalize(v_normal);
    float k = 1.0;
    if (!gl_FrontFacing) { n = -n; k = u_backface; }
    vec3 c = shade(v_color, n, v_pos, u_spec, u_shininess) * k;
    f_color = vec4(to_display(c), u_opacity);
}
"""
)

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
    vec3 diffuse = u_ambient;
    vec3 specular = vec3(0.0);
    for (int i = 0; i < 2; ++i) {
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


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded colours in [0, 1] -> linear light (IEC 61966-2-1)."""
    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


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
    """Two directional lights (unit vectors towards the lights, linear colour x intensity) + ambient."""

    directions: np.ndarray  # (2, 3)
    colors: np.ndarray  # (2, 3) linear RGB already multiplied by intensity
    ambient: np.ndarray  # (3,) linear RGB
    exposure: float = 1.0
    tonemap: Literal["aces", "clamp"] = "aces"


@dataclass
class DrawMesh:
    """One mesh to draw: positions, normals (N, 3), linear colours (N, 3), triangles (M, 3)."""

    vertices: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    triangles: np.ndarray
    specular: float = 0.1
    shininess: float = 20.0
    backface: float = 0.15
    opacity: float = 1.0  # < 1: drawn after the opaque meshes, blended, without depth writes


@dataclass
class ShapeInstances:
    """Instances of one primitive shape: vertices/normals/triangles + (K, INSTANCE_FLOATS) data."""

    vertices: np.ndarray
    normals: np.ndarray
    triangles: np.ndarray
    instances: np.ndarray


class RendererError(RuntimeError):
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

    ``samples`` <= 1: one pass, meshes first, then the background shapes (the depth test then skips
    the background behind the head). ``samples`` > 1: the background is drawn single-sampled, the
    meshes (the head) multisampled into a transparent layer, and that layer is resolved and blended
    over the background only inside the meshes' screen box, so silhouettes are anti-aliased while the
    wall of shapes (most of the pixels) costs one sample per pixel.
    """

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
        self.mesh_prog = ctx.program(vertex_shader=MESH_VS, fragment_shader=MESH_FS)
        self.bg_prog = ctx.program(vertex_shader=BACKGROUND_VS, fragment_shader=BACKGROUND_FS)
        self._buffers: dict[str, object] = {}

    @property
    def renderer_name(self) -> str:
        return str(self.ctx.info.get("GL_RENDERER", "?"))

    def _set_common(self, prog, camera: Camera, lighting: Lighting) -> None:
        values = {
            "u_mvp": camera.matrix(self.width / self.height).T.copy(),
            "u_light_dir": np.asarray(lighting.directions, dtype=np.float32),
            "u_light_col": np.asarray(lighting.colors, dtype=np.float32),
            "u_ambient": np.asarray(lighting.ambient, dtype=np.float32),
            "u_cam_pos": camera.position().astype(np.float32),
            "u_cam_dir": np.array([0.0, 0.0, 1.0], dtype=np.float32),
        }
        for name, value in values.items():
            if name in prog:  # the GLSL compiler drops unused uniforms
                prog[name].write(np.ascontiguousarray(value, dtype=np.float32).tobytes())
        ints = {
            "u_ortho": int(camera.projection == "orthographic"),
            "u_tonemap": int(lighting.tonemap == "aces"),
        }
        for name, value in ints.items():
            if name in prog:
                prog[name].value = value
        if "u_exposure" in prog:
            prog["u_exposure"].value = float(lighting.exposure)

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

    def render(
        self,
        camera: Camera,
        lighting: Lighting,
        meshes: list[DrawMesh],
        shapes: list[ShapeInstances] = (),
        clear: tuple[float, float, float] = (0.5, 0.5, 0.5),
        background_specular: tuple[float, float] = (0.15, 24.0),
    ) -> np.ndarray:
        """Draw everything and return the frame as RGB uint8 (height, width, 3), top row first.

        ``shapes`` are drawn in list order: put the nearest instances first (cheaper depth test).
        """
        import moderngl

        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)
        ctx.disable(moderngl.BLEND)
        ctx.depth_mask = True
        self.fbo.use()
        self.fbo.clear(*clear, 1.0, depth=1.0)
        if not self.samples:
            self._draw_meshes(camera, lighting, meshes)
            self._draw_shapes(camera, lighting, shapes, background_specular)
        else:
            self._draw_shapes(camera, lighting, shapes, background_specular)
            box = self._screen_box(camera, meshes)
            if box is not None:
                x0, y0, x1, y1 = box
                viewport = (x0, y0, x1 - x0, y1 - y0)
                self.ms_fbo.use()
                self.ms_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=viewport)
                ctx.scissor = viewport
                self._draw_meshes(camera, lighting, meshes)
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
        raw = self.fbo.read(components=3, alignment=1)
        image = np.frombuffer(raw, dtype=np.uint8).reshape(self.height, self.width, 3)
        return np.ascontiguousarray(image[::-1])

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
        for k, shape in enumerate(shapes):
            if len(shape.instances) == 0:
                continue
            vbo, _ = self._buffer(f"bgv{k}", np.c_[shape.vertices, shape.normals])
            ibo, _ = self._buffer(f"bgi{k}", shape.triangles.astype(np.int32))
            inst, _ = self._buffer(f"bgx{k}", shape.instances)
            vao = self.ctx.vertex_array(
                prog,
                [
                    (vbo, "3f 3f", "in_pos", "in_normal"),
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

    def _draw_meshes(self, camera: Camera, lighting: Lighting, meshes: list[DrawMesh]) -> None:
        import moderngl

        ctx = self.ctx
        prog = self.mesh_prog
        self._set_common(prog, camera, lighting)
        opaque = [m for m in meshes if m.opacity >= 1.0]
        transparent = [m for m in meshes if m.opacity < 1.0]
        for k, mesh in enumerate(opaque + transparent):
            if len(mesh.triangles) == 0:
                continue
            if k == len(opaque):
                ctx.enable(moderngl.BLEND)
                # colour: over; alpha: accumulate coverage (premultiplied output for the composite)
                ctx.blend_func = (
                    moderngl.SRC_ALPHA,
                    moderngl.ONE_MINUS_SRC_ALPHA,
                    moderngl.ONE,
                    moderngl.ONE_MINUS_SRC_ALPHA,
                )
                ctx.depth_mask = False
            prog["u_opacity"].value = float(mesh.opacity)
            vbo, _ = self._buffer(f"mv{k}", np.c_[mesh.vertices, mesh.normals, mesh.colors])
            ibo, _ = self._buffer(f"mi{k}", mesh.triangles.astype(np.int32))
            prog["u_spec"].value = float(mesh.specular)
            prog["u_shininess"].value = float(mesh.shininess)
            prog["u_backface"].value = float(mesh.backface)
            vao = ctx.vertex_array(
                prog,
                [(vbo, "3f 3f 3f", "in_pos", "in_normal", "in_color")],
                index_buffer=ibo,
                index_element_size=4,
                skip_errors=True,
            )
            vao.render(moderngl.TRIANGLES, vertices=mesh.triangles.size)
            vao.release()
        ctx.depth_mask = True
        ctx.disable(moderngl.BLEND)

    def release(self) -> None:
        for buf in self._buffers.values():
            buf.release()
        self._buffers.clear()
        self.ctx.release()


def limit_llvmpipe_threads(threads: int) -> None:
    """Ask llvmpipe for ``threads`` rasteriser threads (must run before the context is created)."""
    os.environ["LP_NUM_THREADS"] = str(int(threads))
