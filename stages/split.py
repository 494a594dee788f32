"""Stage ``split``: identity-disjoint train / val / test split of the filtered synthetic faces.

Reads ``data/synthetic/filtered.csv`` and params ``seed`` and ``split``; writes ``data/split.csv``
(file, identity, class, part) and ``metrics/split.json`` (counts per part and class, identities per
part, identities found in several parts: 0 unless ``split.mode=image``, the study's split).
Every model trains, stops early and is tested on this one split; real photos are never in it.
"""

from __future__ import annotations

import pandas as pd

from sim2real_faces import io as atomic
from sim2real_faces.params import load_params, load_section
from sim2real_faces.paths import FILTERED, METRICS, SPLIT
from sim2real_faces.seeds import SPLIT_KEY, derive_seed
from sim2real_faces.training.split import SplitError, SplitParams, split_summary, split_table

SPLIT_METRICS = METRICS / "split.json"


def main() -> None:
    params = load_params()
    split_params = load_section(SplitParams, "split", params)
    if not FILTERED.is_file():
        raise SplitError(f"{FILTERED} not found: run `dvc repro filter` first.")
    table = pd.read_csv(FILTERED)
    split = split_table(
        table, split_params, derive_seed(int(params["seed"]), SPLIT_KEY), source=str(FILTERED)
    )
    summary = {"mode": split_params.mode, **split_summary(split)}
    atomic.write_csv(SPLIT, split)
    atomic.write_json(SPLIT_METRICS, summary)
    parts = ", ".join(f"{p} {v['n']} ({v['identities']} identities)" for p, v in summary["parts"].items())
    print(f"split ({split_params.mode}): {parts} -> {SPLIT}")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
