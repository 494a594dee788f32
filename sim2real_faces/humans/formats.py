"""Parsers for the MakeHuman data files, each cached per process.

Every file comes through :func:`sim2real_faces.assets.fetch` under the name ``makehuman/<path>``
(``core/...`` = makehuman/data, ``assets/...`` = makehuman-assets base/). Parsed results are read-only
numpy arrays cached with :func:`functools.lru_cache`, so building many humans in one process parses
each file once.

Formats (as measured on the pinned files of the asset registry):

- ``.obj``: Wavefront; base.obj's ``body`` group is the skin, everything else (helper-*, joint-*) is
  invisible helper geometry whose vertices still define joints and proxy fits.
- ``.target``: text lines ``vertex_index dx dy dz`` (0-based indices), ``#`` comments.
- ``.mhclo``: proxy fitting; ``verts 0`` starts the vertex block, whose lines hold either one base
  vertex index (copy it) or three indices, three weights and an offset ``dx dy dz`` scaled per axis by
  ``|v[a] - v[b]| / den`` (``x_scale``/``y_scale``/``z_scale`` lines). Keyword lines (e.g. ``tag``)
  may appear inside the vertex block.
- ``.mhskel`` / ``.mhw`` / ``.mhpose`` / ``modifiers/*.json``: JSON.
- ``face-poseunits.bvh``: BVH (Z-up), one frame per face pose unit (names in face-poseunits.json).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.spatial.transform import Rotation

from sim2real_faces import assets
from sim2real_faces.humans.errors import MakeHumanFormatError

BASE_OBJ = "core/3dobjs/base.obj"
SKELETON = "core/rigs/default.mhskel"
WEIGHTS = "core/rigs/default_weights.mhw"
FACE_POSEUNITS_BVH = "core/poseunits/face-poseunits.bvh"
FACE_POSEUNITS_JSON = "core/poseunits/face-poseunits.json"
MODELING_MODIFIERS = "core/modifiers/modeling_modifiers.json"
EXPRESSIONS_DIR = "assets/expressions"


def asset_path(rel: str) -> Path:
    """Local verified path of MakeHuman file ``rel`` (``core/...`` or ``assets/...``)."""
    return assets.fetch(f"makehuman/{rel}")


def available(prefix: str) -> list[str]:
    """MakeHuman file paths (relative, without ``makehuman/``) registered under ``prefix``."""
    return [name.removeprefix("makehuman/") for name in assets.names(f"makehuman/{prefix}")]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _read_text(rel: str) -> str:
    path = asset_path(rel)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise MakeHumanFormatError(
            f"Cannot read {path} ({rel}): {error}. Re-fetch it (python -m sim2real_faces.assets)."
        ) from error


def _read_json(rel: str) -> Any:
    path = asset_path(rel)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise MakeHumanFormatError(
            f"{path} ({rel}) is not valid JSON: {error}. Re-fetch the pinned file."
        ) from error


# --------------------------------------------------------------------------------------------- OBJ
@dataclass(frozen=True)
class ObjMesh:
    """A Wavefront mesh: vertices, polygons as triangles, per-vertex uv and each triangle's group."""

    vertices: np.ndarray  # (N, 3) float64
    triangles: np.ndarray  # (M, 3) int32, 0-based, quads split as (0,1,2) + (0,2,3)
    triangle_groups: np.ndarray  # (M,) int16 index into groups
    groups: tuple[str, ...]
    uv: np.ndarray | None  # (N, 2) float32, last uv seen for each vertex; None if the file has none
    quad_count: int  # polygons with 4 corners before triangulation
    uv_table: np.ndarray | None = None  # (T, 2) float32, the file's ``vt`` lines
    triangle_uv: np.ndarray | None = None  # (M, 3) int32 indices into uv_table per corner, -1 = none


@functools.cache
def load_obj(rel: str) -> ObjMesh:
    """Parse an .obj (v, vt, f with v/vt, g); n-gons are fanned into triangles."""
    text = _read_text(rel)
    verts: list[str] = []
    uvs: list[str] = []
    tris: list[tuple[int, int, int]] = []
    tri_uv: list[tuple[int, int, int]] = []
    tri_group: list[int] = []
    groups: list[str] = ["default"]
    group_index = {"default": 0}
    current = 0
    quads = 0
    for line in text.splitlines():
        if line.startswith("v "):
            verts.append(line[2:])
        elif line.startswith("vt "):
            uvs.append(line[3:])
        elif line.startswith("f "):
            corners = line.split()[1:]
            vi = []
            ti = []
            for corner in corners:
                parts = corner.split("/")
                vi.append(int(parts[0]) - 1)
                ti.append(int(parts[1]) - 1 if len(parts) > 1 and parts[1] else -1)
            if len(vi) == 4:
                quads += 1
            for k in range(1, len(vi) - 1):
                tris.append((vi[0], vi[k], vi[k + 1]))
                tri_uv.append((ti[0], ti[k], ti[k + 1]))
                tri_group.append(current)
        elif line.startswith("g "):
            name = line[2:].strip()
            if name not in group_index:
                group_index[name] = len(groups)
                groups.append(name)
            current = group_index[name]
    if not verts or not tris:
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}) has no vertices or faces; re-fetch the pinned file."
        )
    vertices = np.array(" ".join(verts).split(), dtype=np.float64).reshape(-1, 3)
    triangles = np.array(tris, dtype=np.int32)
    if triangles.max() >= len(vertices) or triangles.min() < 0:
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}) has a face index outside its {len(vertices)} vertices."
        )
    uv = uv_table = tuv = None
    if uvs:
        uv_table = np.array(" ".join(" ".join(u.split()[:2]) for u in uvs).split(), np.float32).reshape(-1, 2)
        tuv = np.array(tri_uv, dtype=np.int32)
        if tuv.max() >= len(uv_table):
            raise MakeHumanFormatError(
                f"{asset_path(rel)} ({rel}) has a face uv index outside its {len(uv_table)} 'vt' lines."
            )
        uv = np.zeros((len(vertices), 2), np.float32)
        seen = tuv >= 0
        # Assign each vertex the uv of its last corner (seams pick one side; colours are sampled per vertex).
        uv[triangles[seen]] = uv_table[tuv[seen]]
    return ObjMesh(
        vertices=_frozen(vertices),
        triangles=_frozen(triangles),
        triangle_groups=_frozen(np.array(tri_group, dtype=np.int16)),
        groups=tuple(groups),
        uv=None if uv is None else _frozen(uv),
        quad_count=quads,
        uv_table=None if uv_table is None else _frozen(uv_table),
        triangle_uv=None if tuv is None else _frozen(tuv),
    )


@dataclass(frozen=True)
class SeamSplit:
    """A mesh with its vertices split at uv seams: one row per distinct (vertex, uv) corner pair.

    ``source[row]`` is the unsplit vertex a row copies, so morphs, pose units, proxy fits and
    skinning computed on the unsplit vertices move every copy together (``vertices[source]``).
    """

    source: np.ndarray  # (K,) int32 indices into the unsplit vertices
    triangles: np.ndarray  # (M, 3) int32 indices into the K rows
    uv: np.ndarray  # (K, 2) float32, OBJ convention (v = 0 at the image bottom)


def split_uv_seams(triangles: np.ndarray, triangle_uv: np.ndarray, uv_table: np.ndarray) -> SeamSplit:
    """Split ``triangles`` (M, 3) at their uv seams (corners without a uv get uv index -1 -> (0, 0)).

    Rows are ordered by (vertex, uv), so the split is the same on every run.
    """
    tri = np.asarray(triangles, np.int64)
    tuv = np.asarray(triangle_uv, np.int64)
    if tri.shape != tuv.shape:
        raise MakeHumanFormatError(f"triangles {tri.shape} and their uv indices {tuv.shape} differ in shape.")
    # 'vt' lines repeating the same coordinates are one uv: only different coordinates split a vertex.
    # 1-D keys (the two float32 bit patterns; vertex x uv count + uv) keep np.unique fast.
    table = np.ascontiguousarray(
        np.concatenate([np.asarray(uv_table, np.float32), np.zeros((1, 2), np.float32)]) + 0.0
    )
    bits = table.view(np.uint32).astype(np.uint64)
    _, first, canonical = np.unique(bits[:, 0] << 32 | bits[:, 1], return_index=True, return_inverse=True)
    n_uv = len(first)
    keys = tri.ravel() * n_uv + canonical.ravel()[tuv.ravel()]  # uv index -1: the appended (0, 0)
    unique, inverse = np.unique(keys, return_inverse=True)
    return SeamSplit(
        source=_frozen((unique // n_uv).astype(np.int32)),
        triangles=_frozen(inverse.reshape(tri.shape).astype(np.int32)),
        uv=_frozen(table[first[unique % n_uv]]),
    )


@dataclass(frozen=True)
class BaseMesh:
    """MakeHuman's base mesh hm08: all vertices, the skin (``body`` group) triangles, vertex groups."""

    vertices: np.ndarray  # (19158, 3) float64, decimetres, y up, face along +z
    body_triangles: np.ndarray  # (26756, 3) int32 indices into vertices
    body_vertices: np.ndarray  # sorted unique vertex indices used by body triangles
    group_vertices: dict[str, np.ndarray]  # vertex indices per face group (helper-l-eye, joint-head, ...)
    body_quads: int


@functools.lru_cache(maxsize=1)
def base_mesh() -> BaseMesh:
    """The base mesh with only its skin (``body``) faces kept as triangles."""
    obj = load_obj(BASE_OBJ)
    if "body" not in obj.groups:
        raise MakeHumanFormatError(
            f"{asset_path(BASE_OBJ)} has no 'body' group; is it MakeHuman's hm08 base.obj?"
        )
    body = obj.triangle_groups == obj.groups.index("body")
    tris = obj.triangles[body]
    groups = {}
    for gi, name in enumerate(obj.groups):
        sel = obj.triangle_groups == gi
        if sel.any():
            groups[name] = _frozen(np.unique(obj.triangles[sel]))
    # quads of the body group: every body quad gave 2 triangles, triangles gave 1
    return BaseMesh(
        vertices=obj.vertices,
        body_triangles=_frozen(tris.copy()),
        body_vertices=_frozen(np.unique(tris)),
        group_vertices=groups,
        body_quads=int(len(tris) // 2),
    )


# ------------------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Target:
    """A morph target: ``vertices[indices] += weight * deltas``."""

    indices: np.ndarray  # (K,) int32
    deltas: np.ndarray  # (K, 3) float32


@functools.cache
def load_target(rel: str) -> Target:
    """Parse a .target file (``index dx dy dz`` lines); empty files give an empty target."""
    text = _read_text(rel)
    body = " ".join(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    try:
        values = np.array(body.split(), dtype=np.float64)
    except ValueError as error:
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}) has a non-numeric target line: {error}."
        ) from error
    if values.size % 4:
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}): target lines must hold 4 numbers (index dx dy dz)."
        )
    values = values.reshape(-1, 4)
    indices = values[:, 0].astype(np.int32)
    n_base = len(base_mesh().vertices)
    if len(indices) and (indices.min() < 0 or indices.max() >= n_base):
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}) indexes a vertex outside the base mesh ({n_base})."
        )
    return Target(_frozen(indices), _frozen(values[:, 1:].astype(np.float32)))


@functools.lru_cache(maxsize=1)
def modeling_modifiers() -> tuple[dict[str, Any], ...]:
    """The modifier groups of modifiers/modeling_modifiers.json (group, modifiers[target/min/max])."""
    data = _read_json(MODELING_MODIFIERS)
    return tuple(data)


# ------------------------------------------------------------------------------------------ proxies
@dataclass(frozen=True)
class ProxyFile:
    """A parsed .mhclo with its .obj: how each proxy vertex follows the base mesh."""

    name: str
    rel: str  # the .mhclo path
    obj: ObjMesh
    fit: sparse.csr_matrix  # (P, N_base) weights of the reference vertices
    offsets: np.ndarray  # (P, 3) offsets, scaled per axis by the scale below
    scale_refs: tuple[tuple[int, int, float], tuple[int, int, float], tuple[int, int, float]]  # x, y, z
    material: str | None  # .mhmat path relative to makehuman/, if the file names one


@functools.cache
def load_proxy(rel: str) -> ProxyFile:
    """Parse ``rel`` (.mhclo) and the .obj it names (``obj_file``)."""
    text = _read_text(rel)
    folder = rel.rsplit("/", 1)[0]
    meta: dict[str, list[str]] = {}
    rows: list[list[float]] = []
    in_verts = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        head = words[0]
        if _is_number(head):
            if not in_verts:
                raise MakeHumanFormatError(
                    f"{asset_path(rel)} ({rel}): numeric line before 'verts': {raw!r}."
                )
            if len(words) not in (1, 9):
                raise MakeHumanFormatError(
                    f"{asset_path(rel)} ({rel}): vertex lines hold 1 or 9 numbers, got {len(words)}: {raw!r}."
                )
            rows.append([float(w) for w in words])
            continue
        # A keyword: 'verts' opens the vertex block; other keywords (tag, ...) may sit inside it.
        if head == "verts":
            in_verts = True
        elif head in ("delete_verts", "weights", "vertexboneweights_file"):
            in_verts = False
        meta.setdefault(head, []).extend([" ".join(words[1:])])
    if "obj_file" not in meta or not rows:
        raise MakeHumanFormatError(f"{asset_path(rel)} ({rel}) lacks 'obj_file' or its vertex block.")
    scales = []
    for axis in ("x_scale", "y_scale", "z_scale"):
        if axis not in meta:
            raise MakeHumanFormatError(f"{asset_path(rel)} ({rel}) lacks '{axis}'.")
        a, b, den = meta[axis][0].split()
        scales.append((int(a), int(b), float(den)))
    obj = load_obj(f"{folder}/{meta['obj_file'][0]}")
    n = len(rows)
    if n != len(obj.vertices):
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}) fits {n} vertices but {meta['obj_file'][0]} has {len(obj.vertices)}."
        )
    refs = np.zeros((n, 3), np.int64)
    weights = np.zeros((n, 3), np.float64)
    offsets = np.zeros((n, 3), np.float64)
    for i, row in enumerate(rows):
        if len(row) == 1:
            refs[i] = int(row[0])
            weights[i] = (1.0, 0.0, 0.0)
        else:
            refs[i] = [int(v) for v in row[:3]]
            weights[i] = row[3:6]
            offsets[i] = row[6:9]
    n_base = len(base_mesh().vertices)
    if refs.max() >= n_base or refs.min() < 0:
        raise MakeHumanFormatError(f"{asset_path(rel)} ({rel}) references a vertex outside the base mesh.")
    fit = sparse.csr_matrix(
        (weights.ravel(), (np.repeat(np.arange(n), 3), refs.ravel())), shape=(n, n_base), dtype=np.float64
    )
    material = None
    if "material" in meta:
        material = f"{folder}/{meta['material'][0]}"
    return ProxyFile(
        name=meta.get("name", [rel])[0],
        rel=rel,
        obj=obj,
        fit=fit,
        offsets=_frozen(offsets),
        scale_refs=tuple(scales),  # type: ignore[arg-type]
        material=_normalise_rel(material) if material else None,
    )


def _normalise_rel(rel: str) -> str:
    parts: list[str] = []
    for part in rel.split("/"):
        if part == "..":
            parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/".join(parts)


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


@functools.cache
def load_mhmat(rel: str) -> dict[str, str]:
    """A .mhmat as ``{key: rest of line}`` (first occurrence wins; ``//`` and ``#`` lines skipped)."""
    result: dict[str, str] = {}
    for raw in _read_text(rel).splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "//")):
            continue
        key, _, value = line.partition(" ")
        result.setdefault(key, value.strip())
    return result


@functools.cache
def load_rgb_image(rel: str) -> np.ndarray:
    """A PNG as float32 sRGB (H, W, 3) in [0, 1] (alpha dropped)."""
    from PIL import Image

    path = asset_path(rel)
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except OSError as error:
        raise MakeHumanFormatError(f"{path} ({rel}) is not a readable image: {error}.") from error
    return _frozen(rgb)


@functools.lru_cache(maxsize=64)
def load_rgba_image(rel: str, max_size: int) -> np.ndarray:
    """A PNG as uint8 sRGB RGBA (H, W, 4) with straight alpha (255 where the file has none).

    Maps larger than ``max_size`` are shrunk (aspect kept) on premultiplied alpha, so transparent
    texels do not bleed their colour into the edges: by an exact area average when the size ratio is
    a whole number (2048 -> 1024), else with a Lanczos filter. Cached per process.
    """
    from PIL import Image

    if max_size < 1:
        raise MakeHumanFormatError(f"Texture size limit {max_size} must be >= 1 pixel.")
    path = asset_path(rel)
    try:
        with Image.open(path) as image:
            image.load()
            rgba = image.convert("RGBA")
    except OSError as error:
        raise MakeHumanFormatError(f"{path} ({rel}) is not a readable image: {error}.") from error
    w, h = rgba.size
    if max(w, h) > max_size:
        premultiplied = rgba.convert("RGBa")
        factor = max(w, h) / max_size
        if factor == int(factor) and w % int(factor) == 0 and h % int(factor) == 0:
            small = premultiplied.reduce(int(factor))  # exact area average (2048 -> 1024, 512, ...)
        else:
            size = (max(1, round(w / factor)), max(1, round(h / factor)))
            small = premultiplied.resize(size, Image.Resampling.LANCZOS)
        rgba = small.convert("RGBA")
    return _frozen(np.asarray(rgba, dtype=np.uint8).copy())


# ----------------------------------------------------------------------------------------- skeleton
@functools.lru_cache(maxsize=1)
def load_skeleton_file() -> dict[str, Any]:
    """default.mhskel: bones (head/tail joints, parent, rotation_plane), joints (vertex lists), planes."""
    data = _read_json(SKELETON)
    for key in ("bones", "joints", "planes"):
        if key not in data:
            raise MakeHumanFormatError(f"{asset_path(SKELETON)} lacks '{key}'.")
    return data


@functools.lru_cache(maxsize=1)
def load_weights_file() -> dict[str, list[list[float]]]:
    """default_weights.mhw: ``{bone: [[vertex, weight], ...]}``."""
    data = _read_json(WEIGHTS)
    if "weights" not in data:
        raise MakeHumanFormatError(f"{asset_path(WEIGHTS)} lacks 'weights'.")
    return data["weights"]


# ---------------------------------------------------------------------------------------------- BVH
@dataclass(frozen=True)
class BvhAnimation:
    """Rotations of a BVH file, converted as MakeHuman's bvh.py does (Z-up files turned Y-up)."""

    joints: tuple[str, ...]  # joint names (End Sites excluded), in file order
    rotations: np.ndarray  # (F, J, 3, 3) per frame and joint, world-aligned axes (BVH rest frames)
    z_up: bool


def _euler_order(channels: list[str], z_up: bool) -> str:
    """MakeHuman's BVHJoint.calculateFrames axis string for a joint's rotation channels."""
    order = ""
    for channel in channels:
        if channel == "Xrotation":
            order = "x" + order
        elif channel == "Yrotation":
            order = ("z" if z_up else "y") + order
        elif channel == "Zrotation":
            order = ("y" if z_up else "z") + order
    return order


@functools.cache
def load_bvh(rel: str) -> BvhAnimation:
    """Parse a BVH file; per frame and joint a rotation built like MakeHuman.

    MakeHuman (shared/bvh.py) collects the rotation channels in file order, negating Y angles and
    swapping the y/z axes for Z-up files, and calls ``euler_matrix(a[2], a[1], a[0], 's' + order)``
    where ``order`` is the channel axes in reverse. For channels ``X Y Z`` of a Z-up file that is
    ``euler_matrix(aZ, -aY, aX, 'syzx')``: static-frame rotations about y, z, x, i.e.
    ``Rotation.from_euler('yzx', [aZ, -aY, aX])``.
    """
    lines = _read_text(rel).splitlines()
    names: list[str] = []
    channels: list[list[str]] = []
    offsets: list[np.ndarray] = []
    parents: list[int] = []
    stack: list[int] = []
    i = 0
    pending: int | None = None
    motion_at = None
    end_site = False
    while i < len(lines):
        words = lines[i].split()
        i += 1
        if not words:
            continue
        key = words[0]
        if key in ("ROOT", "JOINT"):
            names.append(words[1])
            channels.append([])
            offsets.append(np.zeros(3))
            parents.append(stack[-1] if stack else -1)
            pending = len(names) - 1
        elif key == "End":
            end_site = True
        elif key == "{":
            if end_site:
                stack.append(-2)
            else:
                stack.append(pending if pending is not None else -1)
        elif key == "}":
            top = stack.pop()
            if top == -2:
                end_site = False
        elif key == "OFFSET" and not end_site:
            offsets[stack[-1]] = np.array([float(w) for w in words[1:4]])
        elif key == "CHANNELS":
            channels[stack[-1]] = words[2 : 2 + int(words[1])]
        elif key == "MOTION":
            motion_at = i
            break
    if motion_at is None or not names:
        raise MakeHumanFormatError(f"{asset_path(rel)} ({rel}) has no HIERARCHY/MOTION section.")
    frames_line = lines[motion_at].split()
    n_frames = int(frames_line[1])
    data_lines = [ln for ln in lines[motion_at + 2 :] if ln.strip()]
    if len(data_lines) < n_frames:
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}) declares {n_frames} frames but has {len(data_lines)}."
        )
    data = np.array(" ".join(data_lines[:n_frames]).split(), dtype=np.float64).reshape(n_frames, -1)
    n_channels = sum(len(c) for c in channels)
    if data.shape[1] != n_channels:
        raise MakeHumanFormatError(
            f"{asset_path(rel)} ({rel}): {data.shape[1]} values per frame, {n_channels} channels."
        )
    z_up = _guess_z_up(names, parents, offsets, rel)
    rotations = np.tile(np.eye(3), (n_frames, len(names), 1, 1))
    col = 0
    for j, chans in enumerate(channels):
        angles = []
        for c in chans:
            values = np.deg2rad(data[:, col])
            col += 1
            if c == "Yrotation" and z_up:
                values = -values
            if c.endswith("rotation"):
                angles.append(values)
        if len(angles) == 3:
            order = _euler_order(chans, z_up)
            # euler_matrix(ai=angles[2], aj=angles[1], ak=angles[0], 's'+order): extrinsic about order[0..2]
            triple = np.stack([angles[2], angles[1], angles[0]], axis=1)
            rotations[:, j] = Rotation.from_euler(order, triple).as_matrix()
    return BvhAnimation(joints=tuple(names), rotations=_frozen(rotations), z_up=z_up)


def _guess_z_up(names: list[str], parents: list[int], offsets: list[np.ndarray], rel: str) -> bool:
    """MakeHuman's bvh._autoGuessCoordinateSystem: the first of lowerleg02.L, upperleg02.L, spine01,
    spine02, spine03, head that has a child decides: Z-up when the child's offset is longer along z
    than along y."""
    for name in ("lowerleg02.L", "upperleg02.L", "spine01", "spine02", "spine03", "head"):
        for candidate in (name, name[0].upper() + name[1:]):
            if candidate in names:
                j = names.index(candidate)
                children = [k for k, p in enumerate(parents) if p == j]
                if children:
                    d = offsets[children[0]]
                    return bool(abs(d[1]) <= abs(d[2]))
    raise MakeHumanFormatError(f"{asset_path(rel)} ({rel}): no known joint to tell Y-up from Z-up.")


@functools.lru_cache(maxsize=1)
def face_poseunit_names() -> tuple[str, ...]:
    """Frame names of face-poseunits.bvh (face-poseunits.json 'framemapping'); frame 0 is Rest."""
    data = _read_json(FACE_POSEUNITS_JSON)
    return tuple(data["framemapping"])


@functools.cache
def load_mhpose(rel: str) -> dict[str, float]:
    """The ``unit_poses`` of an .mhpose file, in file order."""
    data = _read_json(rel)
    units = data.get("unit_poses")
    if not isinstance(units, dict) or not units:
        raise MakeHumanFormatError(f"{asset_path(rel)} ({rel}) has no 'unit_poses' mapping.")
    return {str(k): float(v) for k, v in units.items()}
