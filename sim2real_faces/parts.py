"""The split joined with the filtered synthetic table: what training and the synthetic evaluation read."""

from __future__ import annotations

import pandas as pd

from sim2real_faces.errors import ProjectError
from sim2real_faces.paths import FILTERED, SPLIT


class TrainInputError(ProjectError, ValueError):
    """The split or the filtered table is missing or inconsistent."""


def load_parts() -> pd.DataFrame:
    """The split joined with the filtered table (one row per split row, every column of both)."""
    for path, stage in ((SPLIT, "split"), (FILTERED, "filter")):
        if not path.is_file():
            raise TrainInputError(f"{path} not found: run `dvc repro {stage}` first.")
    split = pd.read_csv(SPLIT)
    table = pd.read_csv(FILTERED)
    table = table.drop(columns=[c for c in ("identity", "class", "part") if c in table])
    frame = split.merge(table, on="file", how="left", validate="one_to_one", indicator=True)
    lost = frame.loc[frame["_merge"] != "both", "file"]
    if len(lost):
        raise TrainInputError(
            f"{len(lost)} file(s) of {SPLIT} are not in {FILTERED} (e.g. {lost.iloc[0]}): "
            "rerun `dvc repro split`."
        )
    return frame.drop(columns="_merge")
