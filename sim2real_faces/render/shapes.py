"""Unit primitive meshes for the background wall (trimesh), with normals split at hard edges."""

from __future__ import annotations

from functools import cache

import numpy as np
import trimesh

# The study's 10 prefabs were cubes, cylinders and spheres with hard or round edges.
SHAPES = ("cube", "cylinder", "sphere", "capsule", "cone", "torus")


@cache
def unit_shape(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, normals, triangles) of a primitive about 1 unit across, centred at the origin."""
    if name == "cube":
        mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    elif name == "cylinder":
        mesh = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=32)
    elif name == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    elif name == "capsule":
        mesh = trimesh.creation.capsule(height=0.5, radius=0.25, count=(24, 24))
    elif name == "cone":
        mesh = trimesh.creation.cone(radius=0.5, height=1.0, sections=32)
        mesh.apply_translation((0, 0, -0.5))
    elif name == "torus":
        mesh = trimesh.creation.torus(
            major_radius=0.35, minor_radius=0.15, major_sections=32, minor_sections=16
        )
    else:
        raise ValueError(f"unknown background shape {name!r}; choose from {list(SHAPES)}")
    smooth = mesh.smooth_shaded  # splits vertices at edges sharper than trimesh's default angle
    vertices = np.asarray(smooth.vertices, dtype=np.float32)
    normals = np.asarray(smooth.vertex_normals, dtype=np.float32)
    triangles = np.asarray(smooth.faces, dtype=np.int32)
    return vertices, normals, triangles
