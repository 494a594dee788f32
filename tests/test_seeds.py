"""Seed derivation, largest-remainder allocation and range checks shared by training, evaluation and humans.

The pinned numbers were produced by the derivations as they were spelled out before
:mod:`sim2real_faces.seeds` existed; they must never change (every split, training run, bootstrap and
rendered identity depends on them).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from sim2real_faces import seeds
from sim2real_faces.allocation import largest_remainder
from sim2real_faces.params import ParamsError, Range, check_value
from sim2real_faces.seeds import derive_seed


@pytest.mark.parametrize(
    ("root", "key", "expected"),
    [
        (42, seeds.SPLIT_KEY, 1644071467),
        (42, seeds.train_key("mlp"), 1535196073),
        (42, seeds.train_key("mobilenetv2"), 2367461743),
        (42, seeds.train_key("vgg16"), 941522195),
        (42, seeds.train_key("fusion"), 2211605075),
        (42, seeds.evaluate_key("mlp", "real"), 3520803488),
        (42, seeds.evaluate_key("fusion", "synthetic"), 2272438646),
        (42, seeds.evaluate_key("fusion", "real"), 2646244284),
        (0, seeds.SPLIT_KEY, 2121915323),
        (1, seeds.train_key("mlp"), 1798476816),
        (2**31 - 1, seeds.PHASE2_SHUFFLE_KEY, 561337083),
    ],
)
def test_derived_seeds_are_pinned(root, key, expected):
    assert derive_seed(root, key) == expected
    # The rule spelled out: the key's CRC-32 as spawn key of a SeedSequence on the root.
    sequence = np.random.SeedSequence(entropy=root, spawn_key=(zlib.crc32(key.encode()),))
    assert derive_seed(root, key) == int(sequence.generate_state(1)[0])


def test_cnn_training_streams_are_pinned():
    """The MobileNetV2 run of the default seed 42: its augmentation, order and shuffle streams."""
    train = derive_seed(42, seeds.train_key("mobilenetv2"))
    copies = derive_seed(train, seeds.AUGMENT_COPIES_KEY)
    assert copies == 1065386101
    assert derive_seed(copies, seeds.copy_key(0)) == 3096802965
    assert derive_seed(train, seeds.ONLINE_ORDER_KEY) == 1350417553
    assert derive_seed(train, seeds.ONLINE_AUGMENT_KEY) == 2944807288
    assert derive_seed(train, seeds.PHASE2_SHUFFLE_KEY) == 4290641436


def test_rendering_words_are_pinned():
    """Frames, the Unity scenario and the identity sampler keep their streams."""
    assert derive_seed(42, seeds.FRAME_WORD, 0, 0) == 1642967763
    assert derive_seed(42, seeds.FRAME_WORD, 2, 17) == 306920578
    assert derive_seed(42, seeds.UNITY_SCENARIO_WORD) == 1789790923
    assert derive_seed(0, seeds.UNITY_SCENARIO_WORD) == 773887583
    humans = seeds.mixed_sequence(42, seeds.HUMANS_WORD)
    assert list(humans.generate_state(2)) == [3472198246, 1221125796]
    textures = seeds.mixed_sequence(42, seeds.HUMANS_WORD, seeds.TEXTURES_WORD, 3)
    assert list(textures.generate_state(2)) == [1751075679, 178567750]
    rng = np.random.default_rng(seeds.mixed_sequence(42, seeds.HUMANS_WORD).spawn(1)[0])
    assert list(rng.integers(0, 2**31, 3)) == [806822701, 1732503860, 570951291]


def test_group_seeds_and_stateless_pairs_keep_their_old_form():
    assert [seeds.group_seed(100, i) for i in range(3)] == [101, 102, 103]  # seed + index + 1
    pairs = seeds.stateless_pairs(7, np.arange(3, 6))
    assert pairs.dtype == np.int64 and pairs.tolist() == [[7, 3], [7, 4], [7, 5]]
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(1, -3)


# ---------------------------------------------------------------------------------------------- allocation


def old_split_counts(total: int, fractions: dict[str, float]) -> dict[str, int]:
    """The split's largest-remainder rounding as it was written before the shared function."""
    parts = ("train", "val", "test")
    raw = {p: fractions[p] * total for p in parts}
    counts = {p: int(np.floor(raw[p])) for p in parts}
    for part in sorted(parts, key=lambda p: (-(raw[p] - counts[p]), parts.index(p))):
        if sum(counts.values()) >= total:
            break
        counts[part] += 1
    return counts


def old_identity_groups(shares: dict[str, float], count: int) -> list[str]:
    """The identity sampler's group allocation as it was written before the shared function."""
    keys = [k for k in shares if shares[k] > 0]
    total = sum(shares[k] for k in keys)
    exact = {k: shares[k] / total * count for k in keys}
    base = {k: math.floor(v) for k, v in exact.items()}
    left = count - sum(base.values())
    for k in sorted(keys, key=lambda k: (-(exact[k] - base[k]), keys.index(k)))[:left]:
        base[k] += 1
    return [k for k in keys for _ in range(base[k])]


def test_shared_allocation_matches_both_old_versions():
    from sim2real_faces.humans.identities import _allocate as identity_groups

    rng = np.random.default_rng(0)
    ties = (0.0, 0.1, 0.2, 0.25, 1 / 3, 0.5, 0.6, 0.7, 0.8)  # exact and inexact tenths, equal remainders
    for _ in range(3000):
        train, val = rng.choice(ties), rng.choice(ties)
        fractions = {"train": float(train), "val": float(val), "test": float(1 - train - val)}
        if fractions["test"] < 0:
            continue
        total = int(rng.integers(0, 60))
        assert largest_remainder(fractions, total) == old_split_counts(total, fractions), (fractions, total)
        shares = {k: float(rng.choice([0.0, *ties[1:], 1.0, 2.0, rng.uniform(0, 3)])) for k in "abcd"}
        if sum(shares.values()) > 0:
            assert identity_groups(shares, total) == old_identity_groups(shares, total), (shares, total)


def test_largest_remainder_by_hand():
    # 10 * (0.45, 0.45, 0.1) = 4.5, 4.5, 1.0: equal remainders, the earlier group gets the extra one.
    assert largest_remainder({"a": 0.45, "b": 0.45, "c": 0.1}, 10) == {"a": 5, "b": 4, "c": 1}
    assert largest_remainder({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 2) == {"a": 1, "b": 1, "c": 0}
    assert largest_remainder({"a": 0.7, "b": 0.2, "c": 0.1}, 0) == {"a": 0, "b": 0, "c": 0}


# ---------------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("bounds", [(0, 1), (0, 0.5), (2, 10001), (0, 0)])
def test_check_value_refuses_exactly_what_the_old_training_check_refused(bounds):
    low, high = bounds
    values = [
        low,
        high,
        low - 1e-9,
        high + 1e-9,
        (low + high) / 2,
        -math.inf,
        math.inf,
        math.nan,
        True,
        False,
    ]
    for value in values:
        old_refuses = not low <= value <= high
        try:
            check_value(Range(low, high), value, "x.y")
        except ParamsError as error:
            assert old_refuses, value
            assert "params 'x.y'" in str(error)
        else:
            assert not old_refuses, value
