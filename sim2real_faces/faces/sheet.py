"""A sheet of face crops: what the CNNs see, one cell per class and identity (``plots/crops_sheet.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim2real_faces.errors import ProjectError


class CropsSheetError(ProjectError, RuntimeError):
    """The table has no crops to show, or lacks the columns the sheet needs."""


def crops_sheet(features: pd.DataFrame, path: Path, columns: int = 8) -> list[str]:
    """A grid PNG of the synthetic face crops the CNNs train on: a row per class, a column per identity.

    ``features`` is the extract stage's table of the synthetic set (columns file, class, identity,
    crop; intensity when present). Each cell is, at its own size, the crop of that identity's frame of
    that class with the strongest expression that has a face, labelled with class and identity.
    Only synthetic crops go here: real photos never go into plots/. Returns the crop files shown.
    """
    import cv2

    needed = {"class", "identity", "crop", "file"}
    if not needed <= set(features.columns):
        raise CropsSheetError(
            f"the crop sheet needs columns {sorted(needed)}, got {sorted(features.columns)}."
        )
    table = features[features["crop"].notna() & (features["crop"].astype(str) != "")]
    table = table.drop_duplicates("file")  # one crop per image (its most confident face)
    classes = list(dict.fromkeys(features["class"]))
    identities = list(dict.fromkeys(features.sort_values("file")["identity"]))[:columns]
    shown, rows, size = [], [], None
    for cls in classes:
        cells = []
        for ident in identities:
            match = table[(table["class"] == cls) & (table["identity"] == ident)].sort_values("file")
            if "intensity" in match:
                match = match.sort_values(["intensity", "file"], ascending=[False, True], kind="stable")
            image = None if match.empty else cv2.imread(str(match["crop"].iloc[0]), cv2.IMREAD_COLOR)
            if image is not None:
                size = size or image.shape[:2]
                image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                cv2.rectangle(image, (0, 0), (size[1], 16), (0, 0, 0), -1)
                cv2.putText(
                    image, f"{cls} | {ident}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1
                )
                shown.append(str(match["crop"].iloc[0]))
            cells.append(image)
        rows.append(cells)
    if size is None:
        raise CropsSheetError("no face crops to put on the crop sheet: no face was found in any image.")
    blank = np.zeros((*size, 3), np.uint8)
    grid = np.vstack([np.hstack([c if c is not None else blank for c in cells]) for cells in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 6]):
        raise OSError(f"OpenCV could not write {path}.")
    return shown
