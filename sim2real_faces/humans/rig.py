"""MakeHuman's default skeleton, its face pose units and linear blend skinning.

The math follows MakeHuman's shared/skeleton.py, bvh.py and animation.py:

- A joint's position is the mean of its vertex list (``joints`` of default.mhskel) on the *morphed*
  rest mesh, so the skeleton fits every identity.
- A bone's rest matrix has its y axis along head->tail and its x axis close to the normal of its
  ``rotation_plane`` (three joints; ``normalize(cross(p3 - p2, p2 - p1))``), as ``getMatrix``.
- A face pose unit is one BVH frame (Z-up file, converted like bvh.py). Its per-bone rotations are in
  world-aligned axes; ``Skeleton.setPose`` moves each into the bone's rest frame:
  ``local = Rrest^T . R . Rrest``; the global pose chains ``parent_global . rest_relative . local``
  and the skinning matrix of a bone is ``pose_global . rest_global^-1``.
- Pose units are blended like ``PoseUnit.getBlendedPose``: each unit's rotation is scaled by its
  weight (slerp from identity = scaling the rotation vector) and the scaled rotations are composed
  in the preset's order (later units multiply from the left).
- Skinning is linear blend skinning with MakeHuman's normalised weights (unweighted vertices go to
  the root bone with weight 1), done with one sparse (vertices x bones) matrix.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.spatial.transform import Rotation

from sim2real_faces.humans import formats
from sim2real_faces.humans.errors import MakeHumanFormatError, UnknownPresetError

WEIGHT_THRESHOLD = 1e-4  # MakeHuman drops bone weights at or below this


@dataclass(frozen=True)
class RigTemplate:
    """Identity-independent skeleton data: bone order, joint definitions, weights, pose units."""

    bone_names: tuple[str, ...]  # breadth-first: parents before children
    parents: np.ndarray  # (B,) int, -1 for a root
    joint_matrix: sparse.csr_matrix  # (J, N_base): joint position = mean of its vertices
    joint_names: tuple[str, ...]
    head_joint: np.ndarray  # (B,) index into joints
    tail_joint: np.ndarray  # (B,)
    plane_table: tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray
    ]  # bone, joint1, joint2, joint3 per plane
    weights: sparse.csr_matrix  # (N_base, B) normalised skinning weights
    unit_names: tuple[str, ...]  # face pose unit names (frame order)
    unit_rotvecs: np.ndarray  # (U, B, 3) world-axis rotation vectors per unit and bone

    def bone_index(self, name: str) -> int:
        """Index of bone ``name`` in breadth-first order."""
        return self.bone_names.index(name)


@functools.lru_cache(maxsize=1)
def rig_template() -> RigTemplate:
    """Parse default.mhskel, default_weights.mhw and face-poseunits.bvh once per process."""
    skel = formats.load_skeleton_file()
    bones = skel["bones"]
    n_base = len(formats.base_mesh().vertices)

    # Breadth-first order, as Skeleton.__cacheGetBones (roots, then children in file order).
    children: dict[str | None, list[str]] = {}
    for name, bone in bones.items():
        children.setdefault(bone.get("parent") or None, []).append(name)
    order: list[str] = []
    queue = deque(children.get(None, []))
    while queue:
        name = queue.popleft()
        order.append(name)
        queue.extend(children.get(name, []))
    if len(order) != len(bones):
        missing = sorted(set(bones) - set(order))
        raise MakeHumanFormatError(f"{formats.SKELETON}: bones with unknown parents: {missing}.")
    index = {name: i for i, name in enumerate(order)}
    parents = np.array([index[bones[n]["parent"]] if bones[n].get("parent") else -1 for n in order], np.int64)

    joint_names = tuple(skel["joints"])
    jindex = {name: i for i, name in enumerate(joint_names)}
    rows, cols, vals = [], [], []
    for j, name in enumerate(joint_names):
        verts = skel["joints"][name]
        if not verts:
            raise MakeHumanFormatError(f"{formats.SKELETON}: joint '{name}' has no vertices.")
        rows.extend([j] * len(verts))
        cols.extend(verts)
        vals.extend([1.0 / len(verts)] * len(verts))
    joint_matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(joint_names), n_base))

    def _joint(name: str) -> int:
        if name not in jindex:
            raise MakeHumanFormatError(f"{formats.SKELETON}: unknown joint '{name}'.")
        return jindex[name]

    head = np.array([_joint(bones[n]["head"]) for n in order])
    tail = np.array([_joint(bones[n]["tail"]) for n in order])
    planes: list[tuple[int, int, int, int]] = []
    for b, n in enumerate(order):
        roll = bones[n].get("rotation_plane")
        names = roll if isinstance(roll, list) else ([roll] if roll else [])
        for plane in names:
            if plane in skel["planes"]:
                j1, j2, j3 = (_joint(j) for j in skel["planes"][plane])
                planes.append((b, j1, j2, j3))
    plane_array = np.array(planes, dtype=np.int64).reshape(-1, 4)

    weights = _load_weights(order, n_base)
    unit_names, unit_rotvecs = _load_face_units(order)
    return RigTemplate(
        bone_names=tuple(order),
        parents=parents,
        joint_matrix=joint_matrix,
        joint_names=joint_names,
        head_joint=head,
        tail_joint=tail,
        plane_table=tuple(plane_array.T),  # type: ignore[arg-type]
        weights=weights,
        unit_names=unit_names,
        unit_rotvecs=unit_rotvecs,
    )


def _load_weights(order: list[str], n_base: int) -> sparse.csr_matrix:
    """default_weights.mhw as VertexBoneWeights builds it: normalised, doubles merged, rest to root."""
    data = formats.load_weights_file()
    index = {name: i for i, name in enumerate(order)}
    rows, cols, vals = [], [], []
    for bone, pairs in data.items():
        if bone not in index:
            raise MakeHumanFormatError(f"{formats.WEIGHTS}: bone '{bone}' is not in {formats.SKELETON}.")
        arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        rows.append(arr[:, 0].astype(np.int64))
        cols.append(np.full(len(arr), index[bone]))
        vals.append(arr[:, 1])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    v = np.concatenate(vals)
    raw = sparse.csr_matrix((v, (r, c)), shape=(n_base, len(order)))  # duplicates summed
    total = np.asarray(raw.sum(axis=1)).ravel()
    inv = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    norm = sparse.diags(inv) @ raw
    norm.data[norm.data <= WEIGHT_THRESHOLD] = 0.0
    norm.eliminate_zeros()
    unweighted = np.flatnonzero(total == 0)
    root = sparse.csr_matrix(
        (np.ones(len(unweighted)), (unweighted, np.zeros(len(unweighted), np.int64))), shape=norm.shape
    )
    return (norm + root).tocsr()


def _load_face_units(order: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Per face pose unit and bone the world-axis rotation vector (zeros for unposed bones)."""
    anim = formats.load_bvh(formats.FACE_POSEUNITS_BVH)
    names = formats.face_poseunit_names()
    if anim.rotations.shape[0] != len(names):
        raise MakeHumanFormatError(
            f"{formats.FACE_POSEUNITS_BVH} has {anim.rotations.shape[0]} frames but "
            f"{formats.FACE_POSEUNITS_JSON} names {len(names)}."
        )

    def canon(name: str) -> str:
        return name.lower().replace(" ", "_").replace("-", "_")

    joint_of = {canon(j): k for k, j in enumerate(anim.joints)}
    rotvecs = np.zeros((len(names), len(order), 3))
    for b, bone in enumerate(order):
        k = joint_of.get(canon(bone))
        if k is None:
            continue
        rotvecs[:, b] = Rotation.from_matrix(anim.rotations[:, k]).as_rotvec()
    rotvecs[np.abs(rotvecs) < 1e-9] = 0.0
    return tuple(names), rotvecs


# --------------------------------------------------------------------------------- per-human skeleton
def _normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 0)


@dataclass(frozen=True)
class Skeleton:
    """The default skeleton fitted to one morphed mesh."""

    template: RigTemplate
    joints: np.ndarray  # (J, 3) joint positions
    rest_global: np.ndarray  # (B, 4, 4) bone rest matrices (world)
    rest_relative: np.ndarray  # (B, 4, 4) relative to the parent's rest matrix
    rest_global_inv: np.ndarray  # (B, 4, 4)

    @property
    def bone_names(self) -> tuple[str, ...]:
        return self.template.bone_names

    def head(self, bone: str) -> np.ndarray:
        """Rest position of bone ``bone``'s head."""
        return self.rest_global[self.template.bone_index(bone), :3, 3].copy()

    def tail(self, bone: str) -> np.ndarray:
        """Rest position of bone ``bone``'s tail."""
        return self.joints[self.template.tail_joint[self.template.bone_index(bone)]].copy()


def fit_skeleton(vertices: np.ndarray) -> Skeleton:
    """Place the default skeleton's joints on the morphed rest ``vertices`` (N_base, 3)."""
    t = rig_template()
    joints = np.asarray(t.joint_matrix @ vertices)
    head = joints[t.head_joint]
    tail = joints[t.tail_joint]
    # rotation-plane normals, normalize(cross(p3 - p2, p2 - p1)), averaged over a bone's planes
    bone_of, j1, j2, j3 = t.plane_table
    p1, p2, p3 = joints[j1], joints[j2], joints[j3]
    plane_normals = _normalize(np.cross(_normalize(p3 - p2), _normalize(p2 - p1)))
    valid = np.linalg.norm(plane_normals, axis=1) > 1e-5
    acc = np.zeros_like(head)
    count = np.zeros(len(head))
    np.add.at(acc, bone_of[valid], plane_normals[valid])
    np.add.at(count, bone_of[valid], 1.0)
    ok = (count > 0) & (np.linalg.norm(acc, axis=1) > 1e-5)
    normals = np.tile(np.array([0.0, 1.0, 0.0]), (len(head), 1))  # MakeHuman's fallback
    normals[ok] = acc[ok] / count[ok, None]
    y_axis = _normalize(tail - head)
    z_axis = _normalize(np.cross(_normalize(normals), y_axis))
    x_axis = _normalize(np.cross(y_axis, z_axis))
    rest = np.tile(np.eye(4), (len(head), 1, 1))
    rest[:, :3, 0] = x_axis
    rest[:, :3, 1] = y_axis
    rest[:, :3, 2] = z_axis
    rest[:, :3, 3] = head
    rest_inv = np.linalg.inv(rest)
    relative = rest.copy()
    has_parent = t.parents >= 0
    relative[has_parent] = rest_inv[t.parents[has_parent]] @ rest[has_parent]
    return Skeleton(
        template=t, joints=joints, rest_global=rest, rest_relative=relative, rest_global_inv=rest_inv
    )


def blend_units(unit_weights: Mapping[str, float], scale: float = 1.0) -> np.ndarray:
    """World-axis bone rotations (B, 3, 3) of blended face pose units.

    Each unit's rotation is scaled by ``weight * scale`` and the results composed in the mapping's
    order (MakeHuman's ``getBlendedPose`` with additive blending).
    """
    t = rig_template()
    unit_index = {name: i for i, name in enumerate(t.unit_names)}
    total = Rotation.identity(len(t.bone_names))
    for name, weight in unit_weights.items():
        if name not in unit_index:
            raise UnknownPresetError(
                f"Unknown face pose unit '{name}' (not a frame of {formats.FACE_POSEUNITS_JSON}); "
                f"known: {', '.join(t.unit_names[1:])}."
            )
        w = float(weight) * scale
        if w == 0.0:
            continue
        total = Rotation.from_rotvec(t.unit_rotvecs[unit_index[name]] * w) * total
    return total.as_matrix()


def local_rotations(skeleton: Skeleton, world_rotations: np.ndarray) -> np.ndarray:
    """Bone-local pose rotations ``Rrest^T . R . Rrest`` (B, 3, 3), as Skeleton.setPose."""
    rr = skeleton.rest_global[:, :3, :3]
    return np.transpose(rr, (0, 2, 1)) @ world_rotations @ rr


def skinning_matrices(skeleton: Skeleton, world_rotations: np.ndarray) -> np.ndarray:
    """Per-bone skinning matrices (B, 3, 4) = pose_global . rest_global^-1 for the given pose."""
    t = skeleton.template
    local = local_rotations(skeleton, world_rotations)
    n = len(t.bone_names)
    pose = np.tile(np.eye(4), (n, 1, 1))
    pose[:, :3, :3] = local
    posed_global = np.empty((n, 4, 4))
    for b in range(n):  # parents precede children (breadth-first)
        p = t.parents[b]
        m = skeleton.rest_relative[b] @ pose[b]
        posed_global[b] = m if p < 0 else posed_global[p] @ m
    return (posed_global @ skeleton.rest_global_inv)[:, :3, :4]


def proxy_weights(fit: sparse.csr_matrix, base_weights: sparse.csr_matrix) -> sparse.csr_matrix:
    """Skinning weights of proxy vertices from their reference vertices (MakeHuman's proxy.py).

    Weight of bone b at proxy vertex p = sum over its references r of fit[p, r] * w[r, b], where
    products at or below 1e-4 (negative fit weights included) are dropped; rows are normalised.
    A proxy vertex left without any weight gets its strongest reference vertex's weights.
    """
    coo = fit.tocoo()
    pairs = np.arange(len(coo.data))
    pick = sparse.csr_matrix((coo.data, (pairs, coo.col)), shape=(len(pairs), fit.shape[1]))
    per_pair = (pick @ base_weights).tocsr()
    per_pair.data[per_pair.data <= WEIGHT_THRESHOLD] = 0.0
    per_pair.eliminate_zeros()
    gather = sparse.csr_matrix((np.ones(len(pairs)), (coo.row, pairs)), shape=(fit.shape[0], len(pairs)))
    acc = (gather @ per_pair).tocsr()
    total = np.asarray(acc.sum(axis=1)).ravel()
    empty = np.flatnonzero(total <= 0)
    if len(empty):
        strongest = np.asarray(abs(fit[empty]).argmax(axis=1)).ravel()
        select = sparse.csr_matrix((np.ones(len(empty)), (empty, strongest)), shape=fit.shape)
        acc = (acc + select @ base_weights).tocsr()
        total = np.asarray(acc.sum(axis=1)).ravel()
    return (sparse.diags(1.0 / total) @ acc).tocsr()


def skin(weights: sparse.csr_matrix, matrices: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Linear blend skinning: each vertex moved by its weight-blended (3, 4) bone matrix."""
    blended = (weights @ matrices.reshape(len(matrices), 12)).reshape(-1, 3, 4)
    return np.einsum("vij,vj->vi", blended[:, :, :3], rest) + blended[:, :, 3]
