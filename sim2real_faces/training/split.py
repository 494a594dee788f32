"""The identity-disjoint split of the synthetic table into train / val / test (params section ``split``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces.allocation import largest_remainder
from sim2real_faces.errors import ProjectError
from sim2real_faces.params import Count, Fraction

PARTS: tuple[str, ...] = ("train", "val", "test")


class SplitError(ProjectError, ValueError):
    """The synthetic table cannot be split as the params ask."""


@dataclass(frozen=True)
class Fractions:
    """Share of identities (mode identity) or of each class's images (mode image) per part."""

    train: Fraction
    val: Fraction
    test: Fraction

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class SplitParams:
    """Params section ``split``.

    mode ``identity``: whole identities go to one part (no identity in two parts); among
    ``balance_trials`` seeded shuffles of the identities, the one whose parts best match the
    overall class mix and the target image shares is kept. mode ``image``: the study's per-class
    image split (identities shared between parts; for the ``paper`` profile only).
    """

    mode: Literal["identity", "image"]
    fractions: Fractions
    balance_trials: Count = 200


def _allocate(total: int, fractions: dict[str, float], what: str) -> dict[str, int]:
    """Largest-remainder counts per part; every part with a positive fraction gets at least one."""
    wanted = [p for p in PARTS if fractions[p] > 0]
    if total < len(wanted):
        raise SplitError(
            f"{total} {what} cannot fill the {len(wanted)} parts {wanted}: each needs at least one. "
            "Generate more identities (params humans) or set a fraction to 0."
        )
    counts = largest_remainder({p: fractions[p] for p in PARTS}, total)
    for part in wanted:
        while counts[part] == 0:
            donor = max(wanted, key=lambda p: counts[p])
            counts[donor] -= 1
            counts[part] += 1
    return counts


def _check_fractions(fractions: Fractions) -> dict[str, float]:
    values = fractions.as_dict()
    if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1) > 1e-6:
        raise SplitError(f"split.fractions {values} must be non-negative and sum to 1.")
    if values["train"] <= 0 or values["val"] <= 0:
        raise SplitError("split.fractions.train and .val must be positive (val drives early stopping).")
    return values


def split_table(table: pd.DataFrame, params: SplitParams, seed: int, source: str = "table") -> pd.DataFrame:
    """Assign every row of ``table`` (columns file, identity, class) to train / val / test.

    Returns columns file, identity, class, part sorted by file. Deterministic for a given seed.
    """
    missing = [c for c in ("file", "identity", "class") if c not in table]
    if missing:
        raise SplitError(f"{source} lacks column(s) {missing}; rerun `dvc repro filter`.")
    if table["file"].duplicated().any():
        raise SplitError(f"{source} lists a file twice: {table['file'][table['file'].duplicated()].iloc[0]}.")
    unknown = sorted(set(table["class"]) - set(CLASSES))
    if unknown:
        raise SplitError(f"{source} has unknown class(es) {unknown}; expected {list(CLASSES)}.")
    fractions = _check_fractions(params.fractions)
    frame = table[["file", "identity", "class"]].copy()
    frame["identity"] = frame["identity"].astype(str)
    frame = frame.sort_values("file", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    part = np.empty(len(frame), dtype=object)
    if params.mode == "image":
        for cls in CLASSES:
            rows = np.flatnonzero(frame["class"].to_numpy() == cls)
            if len(rows) == 0:
                continue
            counts = _allocate(len(rows), fractions, f"'{cls}' images")
            order = rows[rng.permutation(len(rows))]
            labels = np.repeat(list(PARTS), [counts[p] for p in PARTS])
            part[order] = labels
    else:
        identities = np.array(sorted(frame["identity"].unique()))
        counts = _allocate(len(identities), fractions, "identities")
        labels = np.repeat(list(PARTS), [counts[p] for p in PARTS])
        per_identity = pd.crosstab(frame["identity"], frame["class"]).reindex(
            index=identities, columns=list(CLASSES), fill_value=0
        )
        matrix = per_identity.to_numpy(dtype=float)
        overall = matrix.sum(axis=0) / matrix.sum()
        best_score, best_perm = np.inf, None
        for _ in range(max(1, params.balance_trials)):
            perm = rng.permutation(len(identities))
            assigned = labels[np.argsort(perm)]  # identity i gets labels[position of i in perm]
            score = 0.0
            for name in PARTS:
                rows = matrix[assigned == name]
                if len(rows) == 0:
                    continue
                totals = rows.sum(axis=0)
                score += np.abs(totals / max(totals.sum(), 1) - overall).sum()
                score += abs(totals.sum() / matrix.sum() - fractions[name])
            if score < best_score - 1e-12:
                best_score, best_perm = score, assigned
        mapping = dict(zip(identities, best_perm, strict=True))
        part = frame["identity"].map(mapping).to_numpy()
    frame["part"] = part
    return frame


def split_summary(split: pd.DataFrame) -> dict[str, Any]:
    """Counts per part and class, identities per part, and identities shared between parts."""
    summary: dict[str, Any] = {"n": len(split), "parts": {}}
    for name in PARTS:
        rows = split[split["part"] == name]
        summary["parts"][name] = {
            "n": len(rows),
            "identities": int(rows["identity"].nunique()),
            "per_class": {c: int((rows["class"] == c).sum()) for c in CLASSES},
        }
    owners = split.groupby("identity")["part"].nunique()
    summary["identities_in_several_parts"] = int((owners > 1).sum())
    return summary
