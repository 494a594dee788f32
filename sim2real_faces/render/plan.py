"""The frame plan both backends of stage ``generate`` share: which frames, their seeds and streams.

- :func:`plan_jobs`: every frame to render (:class:`FrameJob`: file, class, identity, seed);
- :func:`frame_seed`: the uint32 seed of a frame, keyed by (root seed, class, index in class);
- :func:`stream_rngs`: one numpy Generator per randomizer stream (:data:`STREAMS`) from a frame's seed;
- :func:`post_values`: the ``generate.post`` values of a frame (its ``post`` stream);
- :func:`identity_columns`: the metadata columns of an identity;

The embedded renderer (:mod:`sim2real_faces.render.dataset`) renders these jobs itself; the Unity
backend (:mod:`sim2real_faces.unity`) hands their classes and identities to Perception and applies the
same post values to the images it imports, so both backends name, label and post-process a file alike.

Seeds: the frame's seed (a uint32, written to the metadata) seeds a ``numpy.random.SeedSequence``
whose children, spawned in a fixed order, feed one randomizer each. Adding a randomizer at the end
of the list therefore leaves every earlier randomizer's values unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim2real_faces.render.randomizers import PostParams, RandomizerParamsError, sample_post
from sim2real_faces.seeds import FRAME_WORD, derive_seed

# Child streams of a frame's SeedSequence, in this order (append new ones at the end).
STREAMS = ("expression", "background", "placement", "head", "lights", "post", "ambient", "fill_light")
IDENTITY_COLUMNS = ("identity", "ethnicity", "eth_african", "eth_asian", "eth_caucasian", "gender", "age")


@dataclass(frozen=True)
class FrameJob:
    """What to render: the output file, the class, the identity (index into the identity list), the seed."""

    index: int
    file: str
    class_name: str
    identity: int
    seed: int


def frame_seed(root_seed: int, class_index: int, index_in_class: int) -> int:
    """The uint32 seed of image ``index_in_class`` of class ``class_index`` under the root seed.

    Keyed by (class, index) so that asking for more images per class keeps the first ones unchanged.
    """
    return derive_seed(int(root_seed), FRAME_WORD, int(class_index), int(index_in_class))


def stream_rngs(seed: int) -> dict[str, np.random.Generator]:
    """One numpy Generator per randomizer stream, spawned from the frame's seed in a fixed order."""
    children = np.random.SeedSequence(int(seed)).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)}


def post_values(post: PostParams, seed: int) -> dict[str, float]:
    """The ``generate.post`` values (``post_*``) of the frame with ``seed``: ``sample_post`` on the
    frame's ``post`` stream, the values the embedded renderer samples and applies for that frame."""
    return sample_post(post, stream_rngs(seed)["post"])


def identity_columns(spec: Any) -> dict[str, Any]:
    """The metadata columns of an identity (name, dominant ethnicity or 'mixed', weights, gender, age)."""
    return {
        "identity": spec.name,
        "ethnicity": spec.ethnicity_label,
        "eth_african": round(float(spec.ethnicity.get("african", 0.0)), 4),
        "eth_asian": round(float(spec.ethnicity.get("asian", 0.0)), 4),
        "eth_caucasian": round(float(spec.ethnicity.get("caucasian", 0.0)), 4),
        "gender": spec.gender_label,
        "age": round(float(spec.age_years), 1),
    }


def plan_jobs(classes: Sequence[str], n_per_class: int, n_identities: int, root_seed: int) -> list[FrameJob]:
    """Every frame to render: ``n_per_class`` per class, identities in turn (each gets every class).

    Image ``i`` of a class shows identity ``i mod n_identities``; its seed depends on (root seed,
    class index, i) only. Jobs come sorted by identity so a worker rebuilds few humans.
    """
    if n_identities < 1:
        raise RandomizerParamsError("no identities to render: check params section 'humans'.")
    jobs = [
        FrameJob(
            index=c * n_per_class + i,
            file=f"{cls}_{i:05d}.png",
            class_name=cls,
            identity=i % n_identities,
            seed=frame_seed(root_seed, c, i),
        )
        for c, cls in enumerate(classes)
        for i in range(n_per_class)
    ]
    return sorted(jobs, key=lambda j: (j.identity, j.index))
