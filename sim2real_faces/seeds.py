"""How every random stream of the project is seeded from the top-level ``seed`` (params.yaml).

One rule, :func:`derive_seed`: a stream is named by a key of one or more words, and its seed is
the first 32-bit word of ``numpy.random.SeedSequence(entropy=root, spawn_key=key)``, where a string
word enters as its CRC-32 and an integer word as itself. Streams are independent of one another
and of the order in which they are asked for; a stream's seed changes only when its root or its
key does. A derived seed can be the root of further streams (the train stage derives
``train.<model>`` from the top-level seed, and training derives ``augment``, ``online-order`` ...
from that).

The keys in use are named below; renaming one re-draws its stream, so keep them as they are and
add new ones. Three other forms remain where changing them would re-draw committed results:

- :func:`mixed_sequence`: the identity sampler's words are mixed into the entropy
  (``SeedSequence([root, word, ...])``) instead of the spawn key;
- :func:`group_seed`: the bootstrap seeds of an evaluation's groups count up from the evaluation's
  own seed;
- :func:`stateless_pairs`: TensorFlow's stateless random ops take a pair (stream seed, position)
  per image.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

# Keys of derive_seed under the top-level seed.
SPLIT_KEY = "split"
"""The identity-disjoint split (stage ``split``)."""


def train_key(model: str) -> str:
    """The key of model ``model``'s training run (stage ``train@<model>``): ``train.<model>``."""
    return f"train.{model}"


def evaluate_key(model: str, domain: str) -> str:
    """The key of the bootstrap of ``model`` on ``domain`` (stage ``evaluate``)."""
    return f"evaluate.{model}.{domain}"


# Keys under a CNN's training seed.
AUGMENT_COPIES_KEY = "augment"
"""Root of the offline augmented copies (each copy ``i`` then under :func:`copy_key`)."""
ONLINE_ORDER_KEY = "online-order"
"""Row order of the online-augmented phase 2."""
ONLINE_AUGMENT_KEY = "online-augment"
"""Stateless seed of the online augmentations (paired with each position, :func:`stateless_pairs`)."""
PHASE2_SHUFFLE_KEY = "phase2-shuffle"
"""Shuffle of the cached-trunk phase 2."""


def copy_key(index: int) -> str:
    """The key of offline augmented copy ``index`` under :data:`AUGMENT_COPIES_KEY`'s seed."""
    return f"copy{index}"


# Integer words of the rendering side: the identity sampler, a rendered frame (``frame_seed``) and the
# Unity scenario (``scenario_seed``) derive their streams with these.
HUMANS_WORD = 0x4D48
"""'MH': the identity sampler's stream (:func:`mixed_sequence` ``(seed, HUMANS_WORD)``)."""
TEXTURES_WORD = 0x5458
"""'TX': an identity's texture choice (:func:`mixed_sequence` ``(seed, HUMANS_WORD, TEXTURES_WORD, i)``)."""
FRAME_WORD = 0x5CE7E
"""A rendered frame: ``derive_seed(seed, FRAME_WORD, class_index, index_in_class)``."""
UNITY_SCENARIO_WORD = 0x0417
"""The Perception seed of a Unity run: ``derive_seed(seed, UNITY_SCENARIO_WORD)``."""

GROUP_OFFSET = 1
"""Group ``i`` of an evaluation bootstraps with the evaluation's seed + ``GROUP_OFFSET`` + ``i``."""


def _word(part: str | int) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode())
    if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or part < 0:
        raise ValueError(f"a seed key word is a string or a non-negative integer, got {part!r}.")
    return int(part)


def seed_sequence(root: int, *key: str | int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of the stream named ``key`` under ``root`` (see the module docstring)."""
    return np.random.SeedSequence(entropy=root, spawn_key=tuple(_word(part) for part in key))


def derive_seed(root: int, *key: str | int) -> int:
    """The 32-bit seed of the stream named ``key`` under ``root``, e.g. ``derive_seed(seed, SPLIT_KEY)``."""
    return int(seed_sequence(root, *key).generate_state(1)[0])


def mixed_sequence(root: int, *words: int) -> np.random.SeedSequence:
    """``SeedSequence([root, *words])``: the identity sampler's form (words in the entropy)."""
    return np.random.SeedSequence([root, *words])


def group_seed(seed: int, index: int) -> int:
    """The bootstrap seed of group ``index`` (0, 1, ... in sorted order) of an evaluation seeded ``seed``."""
    return seed + GROUP_OFFSET + index


def stateless_pairs(seed: int, positions: Sequence[int] | np.ndarray) -> np.ndarray:
    """(N, 2) int64 seeds of TensorFlow's stateless ops: ``(seed, position)`` for each position."""
    positions = np.asarray(positions, dtype=np.int64)
    return np.stack([np.full(len(positions), seed, dtype=np.int64), positions], axis=1)
