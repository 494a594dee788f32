"""A posable MakeHuman person: morphed skin, fitted proxies, skeleton and face expressions.

``Human.build(spec)`` morphs the base mesh with the spec's macro and face-detail targets, fits the
default skeleton to it, fits every proxy (eyes, eyebrows, eyelashes, teeth, tongue, hair) through
its .mhclo and derives the proxies' skinning weights from their reference vertices.
``human.pose(unit_weights, intensity)`` blends face pose units, skins all parts with one sparse
weight matrix and returns :class:`MeshPart` s with fresh normals.

Units: decimetres, y up, the face looks along +z (MakeHuman's).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
from scipy import sparse

from sim2real_faces.humans import formats, rig, textures
from sim2real_faces.humans.errors import HumanParamsError
from sim2real_faces.humans.identities import (
    NO_HAIR,
    IdentitySpec,
    detail_targets,
    macro_targets,
    proxy_files,
    validate_spec,
)

UPPER_REGION_BELOW_EYES = 4.5  # dm: region 'upper' keeps skin down to 45 cm below the eyes (mid chest)
TEAR_LENGTH = 0.55  # dm below the lower eyelid
TEAR_HALF_WIDTH = 0.025  # dm
TEAR_LIFT = 0.006  # dm off the skin, along its normal
# Base-mesh vertices at the lip corners: the largest displacements of MakeHuman's legacy expression
# target mouth-corner-puller (targets/expression/units/*/mouth-corner-puller.target).
LIP_CORNER_VERTICES = {"right": 369, "left": 7129}  # the person's right is -x


@dataclass(frozen=True)
class Material:
    """Shading hints of a part (Blinn-Phong); albedo is sRGB."""

    specular: float
    shininess: float
    double_sided: bool = False
    opacity: float = 1.0


MATERIALS = {
    "skin": Material(specular=0.25, shininess=20.0, double_sided=True),
    "eyes": Material(specular=0.9, shininess=90.0),
    "eyebrows": Material(specular=0.05, shininess=8.0, double_sided=True),
    # Untextured lash cards are solid; half transparent they read as lashes rather than eyeliner.
    "eyelashes": Material(specular=0.05, shininess=8.0, double_sided=True, opacity=0.6),
    "teeth": Material(specular=0.5, shininess=40.0),
    "tongue": Material(specular=0.3, shininess=25.0),
    "hair": Material(specular=0.15, shininess=16.0, double_sided=True),
    "tears": Material(specular=1.0, shininess=120.0, opacity=0.45),
}
TEETH_ALBEDO = (0.86, 0.83, 0.74)
TONGUE_ALBEDO = (0.55, 0.24, 0.25)
# The high-poly eye's cornea shell (textures on): nearly clear, very glossy, so it adds the corneal
# highlight without veiling the iris.
CORNEA = Material(specular=1.0, shininess=250.0, opacity=0.08)


@dataclass(frozen=True)
class MeshPart:
    """One renderable mesh of a human.

    Vertices are split at uv seams (one row per distinct vertex/uv pair), so ``uv`` has one row per
    vertex; split copies share position and normal (normals come from the unsplit mesh: no creases).

    ``albedo`` is sRGB, either one colour (3,) or per-vertex colours (N, 3): the colour when
    ``texture`` is None. ``texture`` (uint8 (H, W, 4), sRGB, straight alpha, OBJ uv convention: v = 0
    at the image's bottom row) is already tinted for this identity and then is the colour as it is
    (times 1, not times albedo); it is the same array object every frame. ``alpha_mode`` is opaque,
    mask (alpha < ``alpha_cutoff`` discarded) or blend. ``specular`` (0..1) and ``specular_color``
    (linear RGB) with ``shininess`` (Blinn-Phong exponent) are the highlight; ``sss`` (0..1) the
    subsurface (wrap) strength, 0 for everything but skin. ``double_sided`` says the part is thin
    (cards, strips, open skin) and needs both faces drawn; ``opacity`` < 1 asks for blending.
    """

    name: str
    vertices: np.ndarray  # float32 (N, 3)
    triangles: np.ndarray  # int32 (M, 3)
    normals: np.ndarray  # float32 (N, 3)
    albedo: np.ndarray  # float32 (3,) or (N, 3), sRGB
    specular: float
    shininess: float
    uv: np.ndarray | None = None  # float32 (N, 2)
    double_sided: bool = False
    opacity: float = 1.0
    texture: np.ndarray | None = None  # uint8 (H, W, 4)
    alpha_mode: str = "opaque"
    alpha_cutoff: float = 0.5
    specular_color: np.ndarray | None = None  # float32 (3,) linear; None -> specular in grey
    sss: float = 0.0

    def __post_init__(self) -> None:
        if self.specular_color is None:
            object.__setattr__(self, "specular_color", np.full(3, self.specular, np.float32))


# MeshPart's fields besides its geometry: a _Part keeps them under the same names (see _Part.posed).
_MESH_LOOK = tuple(f.name for f in fields(MeshPart) if f.name not in ("vertices", "triangles", "normals"))


@dataclass(frozen=True)
class _Part:
    name: str
    rows: slice  # rows of the stacked (unsplit) vertex array
    triangles: np.ndarray  # int32, local unsplit indices (for normals)
    incidence: sparse.csr_matrix  # (N, M): vertex normal = sum of adjacent (area-weighted) face normals
    source: np.ndarray | None  # (K,) unsplit local index of each split row; None = no split
    draw_triangles: np.ndarray  # int32 (M, 3) indices into the split rows
    uv: np.ndarray | None  # float32 (K, 2)
    albedo: np.ndarray  # (3,) or (K, 3)
    texture: np.ndarray | None
    alpha_mode: str
    alpha_cutoff: float
    specular: float
    specular_color: np.ndarray
    shininess: float
    sss: float
    double_sided: bool
    opacity: float

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Per unsplit vertex values -> per split row."""
        return values if self.source is None else values[self.source]

    def posed(self, vertices: np.ndarray, normals: np.ndarray) -> MeshPart:
        """The part as a MeshPart with its unsplit posed ``vertices`` and ``normals`` (float32, split)."""
        return MeshPart(
            vertices=self.expand(vertices.astype(np.float32)),
            triangles=self.draw_triangles,
            normals=self.expand(normals.astype(np.float32)),
            **{name: getattr(self, name) for name in _MESH_LOOK},
        )


@dataclass(frozen=True)
class _Look:
    """How a part is shaded (see MeshPart)."""

    albedo: object
    texture: np.ndarray | None = None
    alpha_mode: str = "opaque"
    alpha_cutoff: float = 0.5
    specular_color: np.ndarray | None = None
    shininess: float | None = None
    sss: float = 0.0
    opacity: float | None = None


def _incidence(triangles: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    m = len(triangles)
    rows = triangles.ravel()
    cols = np.repeat(np.arange(m), 3)
    return sparse.csr_matrix((np.ones(3 * m), (rows, cols)), shape=(n_vertices, m))


def _normals(vertices: np.ndarray, triangles: np.ndarray, incidence: sparse.csr_matrix) -> np.ndarray:
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    face = np.cross(v1 - v0, v2 - v0)  # length = 2 x area: area weighting
    n = incidence @ face
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def _compact(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Used vertex indices and triangles re-indexed into them."""
    used, inverse = np.unique(triangles, return_inverse=True)
    return used, inverse.reshape(triangles.shape).astype(np.int32)


def morph(spec: IdentitySpec) -> np.ndarray:
    """Base-mesh vertices (N_base, 3) float64 with the spec's macro and detail targets applied."""
    vertices = formats.base_mesh().vertices.copy()
    targets = macro_targets(spec)
    for rel, w in detail_targets(spec.details).items():
        targets[rel] = targets.get(rel, 0.0) + w
    for rel in sorted(targets):
        target = formats.load_target(rel)
        if len(target.indices):
            vertices[target.indices] += targets[rel] * target.deltas
    return vertices


def fit_proxy(proxy: formats.ProxyFile, vertices: np.ndarray) -> np.ndarray:
    """Proxy vertex positions on morphed base ``vertices``: weighted refs + per-axis scaled offsets."""
    scale = np.array(
        [
            abs(vertices[a, axis] - vertices[b, axis]) / den
            for axis, (a, b, den) in enumerate(proxy.scale_refs)
        ]
    )
    return proxy.fit @ vertices + proxy.offsets * scale


def _eye_colours(proxy: formats.ProxyFile, rel: str = "core/eyes/materials/brown_eye.png") -> np.ndarray:
    """Per-vertex sRGB colours of the eye mesh sampled from an eye map (3x3-pixel box mean)."""
    image = formats.load_rgb_image(rel)
    h, w, _ = image.shape
    uv = proxy.obj.uv
    if uv is None:
        return np.tile(np.array([0.85, 0.85, 0.85], np.float32), (len(proxy.obj.vertices), 1))
    x = np.clip((uv[:, 0] * (w - 1)).round().astype(int), 1, w - 2)
    y = np.clip(((1.0 - uv[:, 1]) * (h - 1)).round().astype(int), 1, h - 2)
    acc = np.zeros((len(uv), 3), np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc += image[y + dy, x + dx]
    return acc / 9.0


@functools.cache
def _proxy_weights(rel: str) -> sparse.csr_matrix:
    """Skinning weights of a proxy (identity-independent: they come from the base-mesh weights)."""
    return rig.proxy_weights(formats.load_proxy(rel).fit, rig.rig_template().weights)


def _painted_coverage(
    skin: np.ndarray, triangles: np.ndarray, brow: np.ndarray, brow_triangles: np.ndarray
) -> np.ndarray:
    """Per skin vertex, how much of it the brow strip covers seen along -z (0..1, edges softened).

    A front-facing skin vertex near the strip counts as covered when its (x, y) falls inside a brow
    triangle; one pass of neighbour averaging over the skin mesh softens the edge.
    """
    normals = _normals(skin, triangles, _incidence(triangles, len(skin)))
    lo = brow.min(axis=0) - 0.05
    hi = brow.max(axis=0) + 0.05
    candidates = np.flatnonzero(((skin >= lo) & (skin <= hi)).all(axis=1) & (normals[:, 2] > 0.2))
    covered = np.zeros(len(skin))
    if len(candidates):
        p = skin[candidates][:, None, :2]
        a, b, c = (brow[brow_triangles[:, k]][None, :, :2] for k in range(3))

        def side(o: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (
                v[..., 0] - o[..., 0]
            )

        d1, d2, d3 = side(p, a, b), side(p, b, c), side(p, c, a)
        inside = ((d1 >= 0) & (d2 >= 0) & (d3 >= 0)) | ((d1 <= 0) & (d2 <= 0) & (d3 <= 0))
        covered[candidates] = inside.any(axis=1)
    # soften: average over each vertex's triangle neighbourhood, keeping full cover inside
    incidence = _incidence(triangles, len(skin))
    counts = np.asarray(incidence.sum(axis=1)).ravel() * 3.0
    smooth = incidence @ (incidence.T @ covered)
    smooth = np.divide(smooth, counts, out=np.zeros_like(smooth), where=counts > 0)
    return np.clip(np.maximum(covered * 0.8, smooth), 0.0, 1.0)


def _cornea_mask(proxy: formats.ProxyFile) -> np.ndarray:
    """Which eye triangles form the high-poly eye's outer cornea shell.

    The high-poly eye is two shells: the eyeball, and a cornea whose uv lies in the small patch at
    the texture's lower right (u > 0.85, v < 0.15) that MakeHuman draws transparent. Drawn opaque it
    hides the iris, so it is left out of the eyes (and drawn clear and glossy when textured).
    """
    tris = proxy.obj.triangles
    if proxy.obj.uv is None:
        return np.zeros(len(tris), bool)
    centre = proxy.obj.uv[tris].mean(axis=1)
    return (centre[:, 0] > 0.85) & (centre[:, 1] < 0.15)


def _split(
    tris: np.ndarray, tri_uv: np.ndarray | None, uv_table: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(source, split triangles, uv) of a part's local triangles; no uv -> no split."""
    if tri_uv is None or uv_table is None:
        return None, tris.astype(np.int32), None
    split = formats.split_uv_seams(tris, tri_uv, uv_table)
    return split.source, split.triangles, split.uv


class Human:
    """A built MakeHuman person; :meth:`pose` gives its meshes for an expression."""

    def __init__(
        self,
        spec: IdentitySpec,
        base_vertices: np.ndarray,
        skeleton: rig.Skeleton,
        rest: np.ndarray,
        weights: sparse.csr_matrix,
        parts: list[_Part],
        tear_combine: sparse.csr_matrix,
        tear_triangles: np.ndarray,
        skin_index: np.ndarray,
    ) -> None:
        self.spec = spec
        # base-mesh index of each skin-part row (split rows: seam copies repeat it; non-decreasing)
        self.skin_vertex_index = parts[0].expand(skin_index)
        self.base_vertices = base_vertices
        self.skeleton = skeleton
        self._rest = rest
        self._weights = weights
        self._parts = parts
        self._tear_combine = tear_combine
        self._tear_triangles = tear_triangles
        self._tear_incidence = _incidence(tear_triangles, tear_combine.shape[0])
        eyes = self.part_rest("eyes")
        self.eye_centers = {
            "right": eyes[eyes[:, 0] < 0].mean(axis=0),  # the person's right eye is on -x (faces +z)
            "left": eyes[eyes[:, 0] >= 0].mean(axis=0),
        }
        self.eye_center: np.ndarray = (self.eye_centers["left"] + self.eye_centers["right"]) / 2
        # Pivot for head rotation: the middle of the neck (head of bone neck02).
        self.neck_pivot: np.ndarray = skeleton.head("neck02")
        self.lip_corners = {side: base_vertices[i].copy() for side, i in LIP_CORNER_VERTICES.items()}
        self.mouth_center: np.ndarray = (self.lip_corners["left"] + self.lip_corners["right"]) / 2

    @property
    def texture_labels(self) -> dict[str, str]:
        """Which maps this person wears (``skin_map``, ``iris_map``), for metadata."""
        return self.spec.texture_labels()

    # ------------------------------------------------------------------------------------ building
    @classmethod
    def build(cls, spec: IdentitySpec) -> Human:
        """Morph, fit the skeleton and the proxies, derive proxy skinning weights, bake textures."""
        validate_spec(spec)
        base = formats.base_mesh()
        base_obj = formats.load_obj(formats.BASE_OBJ)
        template = rig.rig_template()
        vertices = morph(spec)
        skeleton = rig.fit_skeleton(vertices)
        tex = spec.textures

        blocks_rest: list[np.ndarray] = []
        blocks_w: list[sparse.csr_matrix] = []
        parts: list[_Part] = []
        start = 0

        def add(
            name: str,
            rest: np.ndarray,
            w: sparse.csr_matrix,
            tris: np.ndarray,
            tri_uv: np.ndarray | None,
            uv_table: np.ndarray | None,
            look: _Look,
            material: Material | None = None,
        ) -> None:
            nonlocal start
            n = len(rest)
            mat = material or MATERIALS[name]
            source, draw_tris, uv = _split(tris, tri_uv, uv_table)
            albedo = np.asarray(look.albedo, np.float32)
            if albedo.ndim == 2 and source is not None:
                albedo = albedo[source]
            spec_colour = look.specular_color
            if spec_colour is None:
                spec_colour = np.full(3, mat.specular, np.float32)
            blocks_rest.append(rest)
            blocks_w.append(w)
            parts.append(
                _Part(
                    name=name,
                    rows=slice(start, start + n),
                    triangles=tris.astype(np.int32),
                    incidence=_incidence(tris, n),
                    source=source,
                    draw_triangles=draw_tris,
                    uv=uv,
                    albedo=albedo,
                    texture=look.texture,
                    alpha_mode=look.alpha_mode,
                    alpha_cutoff=look.alpha_cutoff,
                    specular=float(np.mean(spec_colour)),
                    specular_color=np.asarray(spec_colour, np.float32),
                    shininess=float(look.shininess if look.shininess is not None else mat.shininess),
                    sss=float(look.sss),
                    double_sided=mat.double_sided,
                    opacity=float(look.opacity if look.opacity is not None else mat.opacity),
                )
            )
            start += n

        # skin: the body group, optionally only the upper body
        body = base_obj.triangle_groups == base_obj.groups.index("body")
        tris = base.body_triangles
        tris_uv = None if base_obj.triangle_uv is None else base_obj.triangle_uv[body]
        proxies: dict[str, formats.ProxyFile] = {
            "eyes": formats.load_proxy(proxy_files("eyes")[spec.eye_style]),
            "eyebrows": formats.load_proxy(proxy_files("eyebrows")[spec.eyebrow_style]),
            "eyelashes": formats.load_proxy(proxy_files("eyelashes")[spec.eyelash_style]),
            "teeth": formats.load_proxy(proxy_files("teeth")[spec.teeth_style]),
            "tongue": formats.load_proxy(proxy_files("tongue")[spec.tongue_style]),
        }
        if spec.hair_style != NO_HAIR:
            proxies["hair"] = formats.load_proxy(proxy_files("hair")[spec.hair_style])
        fitted = {name: fit_proxy(p, vertices) for name, p in proxies.items()}
        if spec.region == "upper":
            eye_y = fitted["eyes"][:, 1].mean()
            keep = (vertices[tris][:, :, 1] >= eye_y - UPPER_REGION_BELOW_EYES).all(axis=1)
            tris = tris[keep]
            tris_uv = None if tris_uv is None else tris_uv[keep]
        skin_index, skin_tris = _compact(tris)
        skin_albedo: np.ndarray = np.asarray(spec.skin_color, np.float32)
        if spec.eyebrow_mode == "painted":
            # Brows painted into the skin colour where the brow proxy lies (seen from the front): they
            # keep the skin's folds and shading, which MediaPipe reads as brow movement.
            brow = proxies.pop("eyebrows")
            coverage = _painted_coverage(
                vertices[skin_index], skin_tris, fitted.pop("eyebrows"), brow.obj.triangles
            )
            k = (spec.eyebrow_strength * coverage)[:, None]
            skin_albedo = (
                (1.0 - k) * np.asarray(spec.skin_color)[None] + k * np.asarray(spec.eyebrow_color)[None]
            ).astype(np.float32)
        skin_look = _Look(albedo=skin_albedo)
        if tex is not None:
            spec_colour, shininess, sss = textures.material_values(tex.skin_material, tex.sss_per_scale)
            skin_look = _Look(
                albedo=skin_albedo,
                texture=textures.bake_skin(tex, spec.skin_color) if tex.skin_maps else None,
                specular_color=spec_colour,
                shininess=shininess,
                sss=sss,
            )
        add(
            "skin",
            vertices[skin_index],
            template.weights[skin_index],
            skin_tris,
            tris_uv,
            base_obj.uv_table,
            skin_look,
        )

        looks = _proxy_looks(spec, proxies)
        for name, proxy in proxies.items():
            w = _proxy_weights(proxy.rel)
            tris = proxy.obj.triangles
            tri_uv = proxy.obj.triangle_uv
            if name == "eyes" and spec.eye_style == "high-poly":
                cornea = _cornea_mask(proxy)
                if tex is not None and tex.cornea and cornea.any():
                    used, local = _compact(tris[cornea])
                    add(
                        "cornea",
                        fitted[name][used],
                        w[used],
                        local,
                        None,
                        None,
                        _Look(albedo=(1.0, 1.0, 1.0), alpha_mode="blend"),
                        CORNEA,
                    )
                tris = tris[~cornea]
                tri_uv = None if tri_uv is None else tri_uv[~cornea]
            add(name, fitted[name], w, tris, tri_uv, proxy.obj.uv_table, looks[name])

        rest = np.concatenate(blocks_rest)
        weights = sparse.vstack(blocks_w).tocsr()
        skin_rows = parts[0].rows
        tear_combine, tear_tris = _tear_strips(
            rest[skin_rows], parts[0].triangles, fitted["eyes"], parts[0].incidence
        )
        return cls(spec, vertices, skeleton, rest, weights, parts, tear_combine, tear_tris, skin_index)

    # ------------------------------------------------------------------------------------- queries
    @property
    def part_names(self) -> list[str]:
        return [p.name for p in self._parts]

    def _part(self, name: str) -> _Part:
        for p in self._parts:
            if p.name == name:
                return p
        raise KeyError(f"Human '{self.spec.name}' has no part '{name}'; parts: {self.part_names}.")

    def skin_rows(self, base_indices: np.ndarray | list[int]) -> np.ndarray:
        """Rows of the skin part holding the given base-mesh vertices (the first of seam copies).

        KeyError if one was cropped away.
        """
        base_indices = np.atleast_1d(np.asarray(base_indices))
        rows = np.searchsorted(self.skin_vertex_index, base_indices)
        rows = np.clip(rows, 0, len(self.skin_vertex_index) - 1)
        if not np.array_equal(self.skin_vertex_index[rows], base_indices):
            raise KeyError(
                f"Base vertices {base_indices.tolist()} are not all in the skin part (region crop?)."
            )
        return rows

    def part_rest(self, name: str) -> np.ndarray:
        """Neutral (rest) vertices of part ``name`` (float64 copy, one row per split vertex)."""
        part = self._part(name)
        return np.array(part.expand(self._rest[part.rows]), dtype=np.float64)

    def part_source(self, name: str) -> np.ndarray:
        """For each row of part ``name``, the index of its unsplit vertex (seam copies share one)."""
        part = self._part(name)
        n = part.rows.stop - part.rows.start
        return np.arange(n) if part.source is None else part.source.copy()

    # ------------------------------------------------------------------------------------- posing
    def posed_vertices(self, unit_weights: Mapping[str, float], intensity: float = 1.0) -> np.ndarray:
        """All parts' unsplit vertices stacked (float64) for the blended pose units x ``intensity``."""
        if not np.isfinite(intensity) or intensity < 0:
            raise HumanParamsError(f"Expression intensity {intensity} must be a finite number >= 0.")
        if not unit_weights or intensity == 0:
            return self._rest.copy()
        rotations = rig.blend_units(unit_weights, intensity)
        matrices = rig.skinning_matrices(self.skeleton, rotations)
        return rig.skin(self._weights, matrices, self._rest)

    def pose(
        self, unit_weights: Mapping[str, float], intensity: float = 1.0, tears: bool = False
    ) -> list[MeshPart]:
        """Mesh parts with the expression ``unit_weights`` (pose-unit -> weight) at ``intensity``.

        ``unit_weights`` comes from :func:`load_preset` / :func:`resolve_preset`; an empty mapping
        or intensity 0 gives the neutral face. ``tears=True`` adds a glossy, half-transparent
        ``tears`` strip below each eye (it follows the skin).
        """
        posed = self.posed_vertices(unit_weights, intensity)
        skin_rows = self._parts[0].rows
        result = []
        skin_normals = None
        for part in self._parts:
            v = posed[part.rows]
            n = _normals(v, part.triangles, part.incidence)
            if skin_normals is None:
                skin_normals = n
            result.append(part.posed(v, n))
        if tears and len(self._tear_triangles):
            assert skin_normals is not None
            n = self._tear_combine @ skin_normals
            n /= np.linalg.norm(n, axis=1, keepdims=True)
            v = self._tear_combine @ posed[skin_rows] + TEAR_LIFT * n
            mat = MATERIALS["tears"]
            albedo = np.clip(np.asarray(self.spec.skin_color) * 0.75 + 0.1, 0, 1).astype(np.float32)
            result.append(
                MeshPart(
                    name="tears",
                    vertices=v.astype(np.float32),
                    triangles=self._tear_triangles,
                    normals=_normals(v, self._tear_triangles, self._tear_incidence).astype(np.float32),
                    albedo=albedo,
                    specular=mat.specular,
                    shininess=mat.shininess,
                    uv=None,
                    double_sided=mat.double_sided,
                    opacity=mat.opacity,
                    texture=None,
                    alpha_mode="blend",
                    alpha_cutoff=0.5,
                    specular_color=np.full(3, mat.specular, np.float32),
                    sss=0.0,
                )
            )
        return result

    def neutral(self) -> list[MeshPart]:
        """The parts without expression."""
        return self.pose({}, 0.0)

    def expression_deltas(
        self, unit_weights: Mapping[str, float], intensity: float = 1.0
    ) -> dict[str, np.ndarray]:
        """Per part the vertex offsets (float32 (N, 3)) of the expression from the neutral mesh.

        These are morph-target (blend-shape) deltas for export (e.g. glTF): neutral + delta = pose.
        """
        posed = self.posed_vertices(unit_weights, intensity)
        delta = posed - self._rest
        return {p.name: p.expand(delta[p.rows]).astype(np.float32) for p in self._parts}

    def bone_rotations(
        self, unit_weights: Mapping[str, float], intensity: float = 1.0
    ) -> dict[str, np.ndarray]:
        """Bone-local pose rotations (3, 3) of the bones the expression moves (for skeletal export)."""
        world = rig.blend_units(unit_weights, intensity)
        local = rig.local_rotations(self.skeleton, world)
        moved = np.abs(world - np.eye(3)).max(axis=(1, 2)) > 1e-9
        return {self.skeleton.bone_names[b]: local[b] for b in np.flatnonzero(moved)}

    def skin_weights(self, part: str) -> sparse.csr_matrix:
        """Skinning weights (N, B) of ``part``'s rows (columns = ``skeleton.bone_names``), rows sum to 1."""
        p = self._part(part)
        w = self._weights[p.rows]
        return w if p.source is None else w[p.source]

    def __repr__(self) -> str:
        counts = ", ".join(f"{p.name}={len(p.draw_triangles)}" for p in self._parts)
        return f"Human({self.spec.name!r}, triangles: {counts})"


def _proxy_looks(spec: IdentitySpec, proxies: Mapping[str, formats.ProxyFile]) -> dict[str, _Look]:
    """Colour, map and alpha of each proxy part; flat albedos where textures are off or missing."""
    tex = spec.textures
    looks = {
        "eyes": _Look(albedo=_eye_colours(proxies["eyes"])),
        "eyebrows": _Look(albedo=spec.eyebrow_color),
        "eyelashes": _Look(albedo=spec.eyelash_color),
        "teeth": _Look(albedo=TEETH_ALBEDO),
        "tongue": _Look(albedo=TONGUE_ALBEDO),
        "hair": _Look(albedo=spec.hair_color),
        # untextured, alpha follows the material's opacity (as before textures existed)
    }
    for name, look in list(looks.items()):
        if MATERIALS[name].opacity < 1.0:
            looks[name] = _Look(albedo=look.albedo, alpha_mode="blend")
    if tex is None:
        return looks
    size = tex.max_size
    if tex.iris_map and "eyes" in proxies:
        image = textures.plain_map(tex.iris_map, size)
        # fallback colours: the same map sampled per vertex, as untextured eyes are
        looks["eyes"] = _Look(albedo=_eye_colours(proxies["eyes"], tex.iris_map), texture=image)
    maps = {
        "eyebrows": (tex.eyebrows, textures.proxy_map("eyebrows", spec.eyebrow_style), spec.eyebrow_color),
        "eyelashes": (tex.eyelashes, textures.proxy_map("eyelashes", spec.eyelash_style), spec.eyelash_color),
        "hair": (
            tex.hair,
            textures.hair_map(spec.hair_style) if "hair" in proxies else None,
            spec.hair_color,
        ),
    }
    for name, (on, rel, colour) in maps.items():
        if on and rel is not None and name in proxies:
            looks[name] = _Look(
                albedo=colour,
                texture=textures.bake_hair(rel, colour, size),
                alpha_mode=tex.alpha_modes[name],
                alpha_cutoff=tex.alpha_cutoff,
                opacity=1.0,  # the map's alpha says where the strands are
            )
    for name, on, rel in (
        ("teeth", tex.teeth, textures.TEETH_MAP),
        ("tongue", tex.tongue, textures.TONGUE_MAP),
    ):
        if on and name in proxies:
            # the maps' unused texels are black, so their mean is no colour: keep the flat albedo
            looks[name] = _Look(albedo=looks[name].albedo, texture=textures.plain_map(rel, size))
    return looks


def _surface_points(
    skin: np.ndarray, triangles: np.ndarray, normals_z: np.ndarray, xy: np.ndarray
) -> list[tuple[int, tuple[float, float, float]] | None]:
    """For each (x, y), the front-most skin triangle under it (seen along -z) and its barycentrics."""
    lo, hi = xy.min(axis=0) - 0.1, xy.max(axis=0) + 0.1
    centre = skin[triangles].mean(axis=1)
    near = np.flatnonzero(
        (normals_z > 0.2)
        & (centre[:, 0] > lo[0])
        & (centre[:, 0] < hi[0])
        & (centre[:, 1] > lo[1])
        & (centre[:, 1] < hi[1])
    )
    v0, v1, v2 = (skin[triangles[near, k]][None] for k in range(3))  # (1, T, 3)
    x, y = xy[:, 0, None], xy[:, 1, None]  # (P, 1)
    d = (v1[..., 1] - v2[..., 1]) * (v0[..., 0] - v2[..., 0]) + (v2[..., 0] - v1[..., 0]) * (
        v0[..., 1] - v2[..., 1]
    )
    ok = np.abs(d) > 1e-12
    d = np.where(ok, d, 1.0)
    a = ((v1[..., 1] - v2[..., 1]) * (x - v2[..., 0]) + (v2[..., 0] - v1[..., 0]) * (y - v2[..., 1])) / d
    b = ((v2[..., 1] - v0[..., 1]) * (x - v2[..., 0]) + (v0[..., 0] - v2[..., 0]) * (y - v2[..., 1])) / d
    c = 1.0 - a - b
    inside = ok & (a >= 0) & (b >= 0) & (c >= 0)
    z = np.where(inside, a * v0[..., 2] + b * v1[..., 2] + c * v2[..., 2], -np.inf)
    best = np.argmax(z, axis=1)
    hits: list[tuple[int, tuple[float, float, float]] | None] = []
    for i, t in enumerate(best):
        if not inside[i, t]:
            hits.append(None)
        else:
            hits.append((int(near[t]), (float(a[i, t]), float(b[i, t]), float(c[i, t]))))
    return hits


def _tear_strips(
    skin: np.ndarray, triangles: np.ndarray, eyes: np.ndarray, incidence: sparse.csr_matrix
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Two thin ribbons running down the cheeks from below the eyes, glued to the skin (rest pose).

    Each ribbon vertex is a barycentric combination of the skin triangle under it (seen from the
    front), so the ribbons follow every pose. Returns the (R, N_skin) combination matrix and the
    ribbon triangles.
    """
    normals = _normals(skin, triangles, incidence)
    face_nz = normals[triangles].mean(axis=1)[:, 2]
    rows, cols, vals, tris = [], [], [], []
    n_steps = 16
    count = 0
    for side in (eyes[:, 0] < 0, eyes[:, 0] >= 0):
        eye = eyes[side]
        centre = eye.mean(axis=0)
        radius = np.abs(eye[:, 1] - centre[1]).max()
        outward = np.sign(centre[0])
        top = centre[1] - 1.1 * radius  # just below the lower lid
        t = np.linspace(0.0, 1.0, n_steps)
        x_line = centre[0] + outward * (0.2 * radius + 0.12 * TEAR_LENGTH * t**1.5)
        y_line = top - TEAR_LENGTH * t
        half = TEAR_HALF_WIDTH * (0.5 + 1.0 * np.sin(np.pi * np.clip(t * 0.9 + 0.05, 0, 1)))
        xy = np.concatenate([np.stack([x_line - half, y_line], 1), np.stack([x_line + half, y_line], 1)])
        hits = _surface_points(skin, triangles, face_nz, xy)
        if any(h is None for h in hits):
            continue  # the streak would leave the face (never for MakeHuman faces); skip this side
        for k, (tri, bary) in enumerate(hits):
            for corner in range(3):
                rows.append(count + k)
                cols.append(int(triangles[tri, corner]))
                vals.append(float(bary[corner]))
        left = count + np.arange(n_steps)
        right = left + n_steps
        for i in range(n_steps - 1):
            tris.append((left[i], left[i + 1], right[i + 1]))
            tris.append((left[i], right[i + 1], right[i]))
        count += 2 * n_steps
    combine = sparse.csr_matrix((vals, (rows, cols)), shape=(count, len(skin)))
    return combine, np.asarray(tris, np.int32).reshape(-1, 3)


@functools.lru_cache(maxsize=8)
def _cached_build(spec_json: str) -> Human:
    return Human.build(IdentitySpec.from_dict(json.loads(spec_json)))


def build_cached(spec: IdentitySpec) -> Human:
    """``Human.build`` with a small per-process cache keyed by the spec's JSON."""
    return _cached_build(json.dumps(spec.to_dict(), sort_keys=True))
