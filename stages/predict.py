"""Inference: ``python -m stages.predict PATH... [--model mlp|mobilenetv2|vgg16] [--out file.csv]``.

Finds every face in the given images (folders are searched recursively for image files) with the
same face analysis as the pipeline (params section ``face``), and prints or writes one CSV row per
face with the class probabilities of a trained model from ``models/<model>/``. An image without a
face or that cannot be read gets a row with ``status`` ``no_face`` / ``unreadable`` and a message
on stderr; a path that does not exist stops the command before anything is loaded (exit code 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sim2real_faces.models import MODEL_NAMES
from sim2real_faces.paths import MODELS


class PredictInputError(ValueError):
    """A path given to predict does not exist or holds no image."""


def collect_images(paths: list[str]) -> list[Path]:
    """The image files named by ``paths``: files as given, folders searched recursively (sorted)."""
    from sim2real_faces.images import is_image_file

    images: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
            if not found:
                raise PredictInputError(f"{path}: folder holds no image files (.png, .jpg, ...).")
            images += found
        elif path.is_file():
            images.append(path)
        else:
            raise PredictInputError(f"{path}: no such file or folder.")
    return images


def predict_images(images: list[Path], model_dir: Path, face_params, progress: bool = True) -> pd.DataFrame:
    """One row per face (or per faceless/unreadable image) with class probabilities."""
    from tqdm import tqdm

    from sim2real_faces.faces import FaceAnalyzer, face_row
    from sim2real_faces.images import ImageReadError, read_image
    from sim2real_faces.models import Predictor, resize_crop

    predictor = Predictor(model_dir)
    rows: list[dict] = []
    inputs: list[np.ndarray] = []
    with FaceAnalyzer(face_params) as analyzer:
        for path in tqdm(images, desc="predict", unit="img", disable=not progress):
            try:
                rgb = read_image(path, max_pixels=face_params.max_pixels)
            except ImageReadError as error:
                print(f"skipped: {error}", file=sys.stderr)
                rows.append({"file": str(path), "face": -1, "status": "unreadable"})
                continue
            faces = analyzer.analyze(rgb)
            if not faces:
                print(f"{path}: no face found", file=sys.stderr)
                rows.append({"file": str(path), "face": -1, "status": "no_face"})
                continue
            for index, face in enumerate(faces):
                row = face_row(face, index)
                if predictor.kind == "mlp":
                    inputs.append(np.array([row[c] for c in predictor.features], dtype="float32"))
                else:
                    inputs.append(resize_crop(face.crop, predictor.input_size))
                x0, y0, x1, y1 = face.bbox
                rows.append(
                    {
                        "file": str(path),
                        "face": index,
                        "status": "ok",
                        "confidence": round(face.confidence, 4),
                        "x0": round(x0, 1),
                        "y0": round(y0, 1),
                        "x1": round(x1, 1),
                        "y1": round(y1, 1),
                    }
                )
    table = pd.DataFrame(rows, columns=["file", "face", "status", "confidence", "x0", "y0", "x1", "y1"])
    ok = (table["status"] == "ok").to_numpy()
    proba = np.full((len(table), len(predictor.classes)), np.nan)
    if inputs:
        proba[ok] = predictor.predict_arrays(np.stack(inputs))
    table["predicted"] = pd.Series(
        np.where(ok, np.asarray(predictor.classes, dtype=object)[np.nan_to_num(proba).argmax(axis=1)], ""),
        dtype=object,
    )
    for index, cls in enumerate(predictor.classes):
        table[f"p_{cls}"] = proba[:, index].round(4)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--model", choices=MODEL_NAMES, default="mlp", help="trained model (default: mlp)")
    parser.add_argument(
        "--models-dir", type=Path, default=MODELS, help="folder holding <model>/ (default: models)"
    )
    parser.add_argument("--out", type=Path, help="write the CSV here instead of printing it")
    args = parser.parse_args(argv)
    try:
        images = collect_images(args.paths)
    except PredictInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model_dir = args.models_dir / args.model
    from sim2real_faces.faces import FaceParams
    from sim2real_faces.models import ModelFileError
    from sim2real_faces.params import load_section

    try:
        table = predict_images(images, model_dir, load_section(FaceParams, "face"))
    except ModelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(
            f"{int((table['status'] == 'ok').sum())} face(s) in {len(images)} image(s) -> {args.out}",
            file=sys.stderr,
        )
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
