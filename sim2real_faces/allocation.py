"""Largest-remainder rounding: whole counts per group that add up to a total (deterministic)."""

from __future__ import annotations

import math
from collections.abc import Mapping


def largest_remainder(shares: Mapping[str, float], total: int) -> dict[str, int]:
    """Counts per group: ``floor(share * total)``, then one more for each group in turn by the
    largest remainder (ties: the earlier group in ``shares``) until the counts reach ``total``.

    ``shares`` should sum to 1; each group gets at most one extra. Groups keep the order of ``shares``.
    """
    keys = list(shares)
    raw = {k: shares[k] * total for k in keys}
    counts = {k: math.floor(raw[k]) for k in keys}
    for key in sorted(keys, key=lambda k: (-(raw[k] - counts[k]), keys.index(k))):
        if sum(counts.values()) >= total:
            break
        counts[key] += 1
    return counts
