"""Export MakeHuman identities (and the background shapes) as binary glTF 2.0 for the Unity project.

Each identity becomes ``<name>.glb``: one node per mesh part (skin, eyes, eyebrows, eyelashes, teeth,
tongue, hair, tears) in MakeHuman units (decimetres, y up, the face looking along +z), the neutral face
as the base mesh, and every expression preset of params ``expressions.classes`` at every intensity of
``unity.intensity_steps`` as a morph target named ``<preset>@<step:.2f>`` (``mesh.extras.targetNames``,
which glTFast turns into blend-shape names). The posed meshes come from the same code the embedded
renderer draws (``Human.pose``), so a morph target at weight 1 reproduces that pose exactly; between
steps Unity interpolates linearly. Morph targets are stored as sparse accessors (only the moving
vertices). Empty marker nodes ``eye_center``, ``neck_pivot`` and ``face_forward`` give the Unity side the
camera aim, the head-rotation pivot and the facing direction whatever its axis conversion.

Textured parts carry their identity's baked map as an embedded PNG (``images`` -> ``textures`` ->
``baseColorTexture``, sampled through ``TEXCOORD_0``) with ``baseColorFactor`` white, so the map is
the colour as in the embedded renderer; ``alphaMode`` is MASK (with ``alphaCutoff``) or BLEND for
brows, lashes, hair and the clear parts. glTF puts uv (0, 0) at the image's top-left, OBJ at its
bottom-left: TEXCOORD_0 is written as (u, 1 - v).

The writer is a small glTF 2.0 serializer (numpy + json; trimesh's exporter has no morph targets);
:func:`read_glb` reads the container back for checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real_faces.errors import ProjectError
from sim2real_faces.humans.textures import srgb_to_linear  # glTF colours are linear

GLB_MAGIC = 0x46546C67  # b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
FLOAT, UINT32 = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
EPS = 1e-6  # decimetres: smaller deltas are not stored


class GltfExportError(ProjectError, RuntimeError):
    """A mesh cannot be exported or a GLB file is not what this module writes."""


@dataclass
class GlbMesh:
    """One mesh part: base geometry, material and named morph targets (position, normal deltas)."""

    name: str
    vertices: np.ndarray  # (N, 3)
    triangles: np.ndarray  # (M, 3)
    normals: np.ndarray | None = None  # (N, 3)
    color: np.ndarray = field(default_factory=lambda: np.ones(3))  # linear RGB (3,) or per vertex (N, 3)
    uv: np.ndarray | None = None  # (N, 2)
    opacity: float = 1.0
    roughness: float = 0.7
    double_sided: bool = True
    targets: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    texture: np.ndarray | None = None  # uint8 (H, W, 4) sRGB, straight alpha, OBJ uv convention
    alpha_mode: str = "opaque"  # opaque / mask / blend (MeshPart's)
    alpha_cutoff: float = 0.5


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 RGBA/RGB image (same bytes for the same pixels)."""
    from PIL import Image

    array = np.ascontiguousarray(image, dtype=np.uint8)
    mode = {3: "RGB", 4: "RGBA"}.get(array.shape[-1]) if array.ndim == 3 else None
    if mode is None:
        raise GltfExportError(f"texture must be (H, W, 3|4) uint8, got {array.shape}")
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG", compress_level=6)
    return out.getvalue()


class _Builder:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        while len(self.buffer) % 4:
            self.buffer.append(0)
        entry: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.buffer), "byteLength": len(data)}
        if target is not None:
            entry["target"] = target
        self.buffer.extend(data)
        self.views.append(entry)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        component = UINT32 if array.dtype == np.uint32 else FLOAT
        entry: dict[str, Any] = {
            "bufferView": self.view(np.ascontiguousarray(array).tobytes(), target),
            "componentType": component,
            "count": int(array.shape[0]),
            "type": kind,
        }
        if bounds:
            entry["min"] = [float(v) for v in array.min(axis=0)]
            entry["max"] = [float(v) for v in array.max(axis=0)]
        self.accessors.append(entry)
        return len(self.accessors) - 1

    def sparse_vec3(self, delta: np.ndarray, rows: np.ndarray, bounds: bool) -> int:
        """A VEC3 float accessor of ``len(delta)`` zeros except ``rows`` (glTF sparse storage)."""
        rows = rows if len(rows) else np.array([0])
        entry: dict[str, Any] = {
            "componentType": FLOAT,
            "count": int(delta.shape[0]),
            "type": "VEC3",
            "sparse": {
                "count": len(rows),
                "indices": {
                    "bufferView": self.view(rows.astype(np.uint32).tobytes()),
                    "componentType": UINT32,
                },
                "values": {"bufferView": self.view(np.ascontiguousarray(delta[rows], np.float32).tobytes())},
            },
        }
        if bounds:
            entry["min"] = [float(v) for v in np.minimum(delta.min(axis=0), 0.0)]
            entry["max"] = [float(v) for v in np.maximum(delta.max(axis=0), 0.0)]
        self.accessors.append(entry)
        return len(self.accessors) - 1


def _check_mesh(mesh: GlbMesh) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(mesh.vertices, np.float32)
    t = np.asarray(mesh.triangles)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise GltfExportError(f"mesh {mesh.name!r}: vertices must be (N, 3), got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3 or len(t) == 0 or t.min() < 0 or t.max() >= len(v):
        raise GltfExportError(f"mesh {mesh.name!r}: triangles must be (M, 3) indices into {len(v)} vertices")
    if not np.isfinite(v).all():
        raise GltfExportError(f"mesh {mesh.name!r}: non-finite vertices")
    return v, t.astype(np.uint32)


def glb_bytes(
    root_name: str,
    meshes: Sequence[GlbMesh],
    markers: Mapping[str, Sequence[float]] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> bytes:
    """A GLB file: node ``root_name`` holding one child node per mesh and per marker (empty node)."""
    b = _Builder()
    gl_meshes, materials, nodes = [], [], []
    images: list[dict[str, Any]] = []
    textures: list[dict[str, Any]] = []
    texture_index: dict[int, int] = {}  # id(array) -> texture: a map shared by parts is stored once
    children = []
    for mesh in meshes:
        v, t = _check_mesh(mesh)
        attributes = {"POSITION": b.accessor(v, "VEC3", ARRAY_BUFFER, bounds=True)}
        if mesh.normals is not None:
            n = np.asarray(mesh.normals, np.float32)
            attributes["NORMAL"] = b.accessor(
                n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12), "VEC3", ARRAY_BUFFER
            )
        color = np.asarray(mesh.color, np.float32)
        base_color = [1.0, 1.0, 1.0, float(mesh.opacity)]
        if color.ndim == 2:
            if color.shape != v.shape:
                raise GltfExportError(f"mesh {mesh.name!r}: per-vertex colours must be (N, 3)")
            attributes["COLOR_0"] = b.accessor(color, "VEC3", ARRAY_BUFFER)
        else:
            base_color[:3] = [float(c) for c in color]
        if mesh.uv is not None:
            uv = np.asarray(mesh.uv, np.float32)
            if uv.shape != (len(v), 2):
                raise GltfExportError(f"mesh {mesh.name!r}: uv must be ({len(v)}, 2), got {uv.shape}")
            gl_uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1)  # glTF: v = 0 at the image top
            attributes["TEXCOORD_0"] = b.accessor(gl_uv, "VEC2", ARRAY_BUFFER)
        pbr: dict[str, Any] = {
            "baseColorFactor": base_color,
            "metallicFactor": 0.0,
            "roughnessFactor": float(mesh.roughness),
        }
        if mesh.texture is not None:
            if mesh.uv is None:
                raise GltfExportError(f"mesh {mesh.name!r}: a texture needs uv coordinates")
            key = id(mesh.texture)
            if key not in texture_index:
                images.append({"bufferView": b.view(png_bytes(mesh.texture)), "mimeType": "image/png"})
                textures.append({"source": len(images) - 1, "sampler": 0})
                texture_index[key] = len(textures) - 1
            pbr["baseColorTexture"] = {"index": texture_index[key], "texCoord": 0}
            pbr["baseColorFactor"] = [1.0, 1.0, 1.0, float(mesh.opacity)]
            attributes.pop("COLOR_0", None)  # the map is the colour (COLOR_0 would multiply it)
        material: dict[str, Any] = {
            "name": mesh.name,
            "pbrMetallicRoughness": pbr,
            "doubleSided": bool(mesh.double_sided),
        }
        if mesh.alpha_mode not in ("opaque", "mask", "blend"):
            raise GltfExportError(f"mesh {mesh.name!r}: alpha mode {mesh.alpha_mode!r}")
        if mesh.alpha_mode == "mask":
            material["alphaMode"] = "MASK"
            material["alphaCutoff"] = float(mesh.alpha_cutoff)
        elif mesh.alpha_mode == "blend" or mesh.opacity < 1.0:
            material["alphaMode"] = "BLEND"
        materials.append(material)
        primitive: dict[str, Any] = {
            "attributes": attributes,
            "indices": b.accessor(t.reshape(-1), "SCALAR", ELEMENT_ARRAY_BUFFER),
            "material": len(materials) - 1,
        }
        gl_mesh: dict[str, Any] = {"name": mesh.name, "primitives": [primitive]}
        if mesh.targets:
            targets = []
            for target_name, (dpos, dnorm) in mesh.targets.items():
                dpos = np.asarray(dpos, np.float32)
                if dpos.shape != v.shape:
                    raise GltfExportError(
                        f"mesh {mesh.name!r} target {target_name!r}: deltas must be {v.shape}"
                    )
                moving = np.abs(dpos).max(axis=1) > EPS
                entry = {}
                if dnorm is not None and "NORMAL" in attributes:
                    dnorm = np.asarray(dnorm, np.float32)
                    moving |= np.abs(dnorm).max(axis=1) > EPS
                    rows = np.flatnonzero(moving)
                    entry["NORMAL"] = b.sparse_vec3(dnorm, rows, bounds=False)
                rows = np.flatnonzero(moving)
                entry = {"POSITION": b.sparse_vec3(dpos, rows, bounds=True), **entry}
                targets.append(entry)
            primitive["targets"] = targets
            gl_mesh["weights"] = [0.0] * len(targets)
            gl_mesh["extras"] = {"targetNames": list(mesh.targets)}
        gl_meshes.append(gl_mesh)
        nodes.append({"name": mesh.name, "mesh": len(gl_meshes) - 1})
        children.append(len(nodes) - 1)
    for name, position in (markers or {}).items():
        nodes.append({"name": name, "translation": [float(x) for x in position]})
        children.append(len(nodes) - 1)
    nodes.append({"name": root_name, "children": children})
    document: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "sim2real-faces gltf_export"},  # kept: same GLB bytes
        "scene": 0,
        "scenes": [{"name": root_name, "nodes": [len(nodes) - 1]}],
        "nodes": nodes,
        "meshes": gl_meshes,
        "materials": materials,
        "accessors": b.accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": len(b.buffer)}],
    }
    if images:
        document["images"] = images
        document["textures"] = textures
        # linear filtering with mipmaps, repeat (MakeHuman's uv stay inside [0, 1])
        document["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}]
    if extras:
        document["extras"] = dict(extras)
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = bytes(b.buffer) + b"\0" * (-len(b.buffer) % 4)
    length = 12 + 8 + len(text) + 8 + len(binary)
    return (
        struct.pack("<III", GLB_MAGIC, 2, length)
        + struct.pack("<II", len(text), CHUNK_JSON)
        + text
        + struct.pack("<II", len(binary), CHUNK_BIN)
        + binary
    )


def read_glb(path: Path) -> tuple[dict[str, Any], bytes]:
    """(JSON document, binary chunk) of a GLB file."""
    data = Path(path).read_bytes()
    if len(data) < 20:
        raise GltfExportError(f"{path}: too short for a GLB file")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2 or length != len(data):
        raise GltfExportError(f"{path}: not a glTF 2.0 binary file (or truncated)")
    json_len, json_type = struct.unpack_from("<II", data, 12)
    if json_type != CHUNK_JSON:
        raise GltfExportError(f"{path}: first chunk is not JSON")
    document = json.loads(data[20 : 20 + json_len])
    offset = 20 + json_len
    binary = b""
    if offset < len(data):
        bin_len, bin_type = struct.unpack_from("<II", data, offset)
        if bin_type != CHUNK_BIN:
            raise GltfExportError(f"{path}: second chunk is not BIN")
        binary = data[offset + 8 : offset + 8 + bin_len]
    return document, binary


def accessor_array(document: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """Decode accessor ``index`` (dense or sparse, float32/uint32) to a numpy array."""
    acc = document["accessors"][index]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[acc["type"]]
    dtype = np.uint32 if acc["componentType"] == UINT32 else np.float32

    def view(i: int, count: int, dt) -> np.ndarray:
        v = document["bufferViews"][i]
        return np.frombuffer(binary, dt, count, v.get("byteOffset", 0))

    if "bufferView" in acc:
        out = view(acc["bufferView"], acc["count"] * width, dtype).reshape(acc["count"], width).copy()
    else:
        out = np.zeros((acc["count"], width), dtype)
    if "sparse" in acc:
        s = acc["sparse"]
        rows = view(s["indices"]["bufferView"], s["count"], np.uint32)
        out[rows] = view(s["values"]["bufferView"], s["count"] * width, dtype).reshape(s["count"], width)
    return out if width > 1 else out[:, 0]


# ---------------------------------------------------------------------------------------------- humans


def part_color(albedo: np.ndarray) -> np.ndarray:
    """MeshPart albedo (sRGB, (3,) or (N, 3)) as linear glTF colour."""
    return srgb_to_linear(np.asarray(albedo)).astype(np.float32)


def target_name(preset: str, step: float) -> str:
    """Morph target name of ``preset`` at intensity ``step`` (the C# side builds the same string)."""
    return f"{preset}@{step:.2f}"


def human_meshes(
    human: Any, presets: Mapping[str, Mapping[str, float]], steps: Sequence[float]
) -> list[GlbMesh]:
    """The parts of ``human`` (neutral, with tears) with one morph target per preset and step."""
    neutral = human.pose({}, 0.0, tears=True)
    meshes = [
        GlbMesh(
            name=p.name,
            vertices=p.vertices,
            triangles=p.triangles,
            normals=p.normals,
            color=part_color(p.albedo) if p.texture is None else np.ones(3, np.float32),
            uv=p.uv,
            opacity=float(p.opacity),
            roughness=float(np.clip(1.0 - np.sqrt(min(p.shininess, 100.0) / 100.0), 0.05, 1.0)),
            double_sided=bool(p.double_sided),
            texture=p.texture,
            alpha_mode=str(p.alpha_mode),
            alpha_cutoff=float(p.alpha_cutoff),
        )
        for p in neutral
    ]
    for preset, weights in presets.items():
        for step in steps:
            posed = human.pose(dict(weights), float(step), tears=True)
            if [p.name for p in posed] != [m.name for m in meshes]:
                raise GltfExportError(f"{human.spec.name}: pose {preset}@{step} changed the mesh parts")
            for mesh, part in zip(meshes, posed, strict=True):
                dpos = np.asarray(part.vertices, np.float64) - np.asarray(mesh.vertices, np.float64)
                dnorm = np.asarray(part.normals, np.float64) - np.asarray(mesh.normals, np.float64)
                mesh.targets[target_name(preset, step)] = (dpos.astype(np.float32), dnorm.astype(np.float32))
    for mesh in meshes:  # parts that never move (e.g. eyes) need no morph targets
        if all(np.abs(d).max() <= EPS for d, _ in mesh.targets.values()):
            mesh.targets = {}
    return meshes


def identity_markers(human: Any) -> dict[str, np.ndarray]:
    """Empty nodes the Unity side looks up: eye centre, neck pivot and a point 1 dm in front of the eyes."""
    eye = np.asarray(human.eye_center, np.float64)
    return {
        "eye_center": eye,
        "neck_pivot": np.asarray(human.neck_pivot, np.float64),
        "face_forward": eye + np.array([0.0, 0.0, 1.0]),
    }


def export_identities(
    identities: Sequence[Any], expressions: Any, steps: Sequence[float], out_dir: Path
) -> dict[str, Path]:
    """Write ``<out_dir>/<identity>.glb`` for every identity; returns name -> path.

    A GLB whose recorded key (identity spec, resolved presets, steps) matches is kept as is.
    """
    from tqdm import tqdm

    from sim2real_faces.humans import Human, resolve_preset

    names = sorted({p for presets in expressions.classes.values() for p in presets})
    presets = {name: resolve_preset(name, expressions) for name in names}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for spec in tqdm(identities, desc="export GLB", unit="identity"):
        key_data = {"spec": spec.to_dict(), "presets": presets, "steps": [float(s) for s in steps], "v": 2}
        key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
        path = out_dir / f"{spec.name}.glb"
        paths[spec.name] = path
        if path.is_file():
            try:
                if read_glb(path)[0].get("extras", {}).get("sim2real_key") == key:
                    continue
            except GltfExportError:
                pass
        human = Human.build(spec)
        meshes = human_meshes(human, presets, steps)
        extras = {"sim2real_key": key, "units": "decimetre", "identity": spec.to_dict()}
        path.write_bytes(glb_bytes(spec.name, meshes, identity_markers(human), extras))
    return paths


def export_shapes(names: Sequence[str], out_dir: Path) -> list[Path]:
    """Write the embedded renderer's unit background shapes as ``<out_dir>/<shape>.glb``."""
    from sim2real_faces.render.shapes import unit_shape

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        vertices, normals, triangles = unit_shape(name)
        path = out_dir / f"{name}.glb"
        data = glb_bytes(name, [GlbMesh(name, vertices, triangles, normals, double_sided=False)])
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        paths.append(path)
    return paths
