"""Inference: ``python -m stages.predict PATH... [--model mlp|mobilenetv2|vgg16|fusion] [--out file.csv]``.

Finds every face in the given images (folders are searched recursively) with the same face analysis
as the pipeline (params section ``face``), and prints or writes one CSV row per face with the class
probabilities of a trained model from ``models/<model>/``. Nothing given is left out silently:

- an image without a face, or that cannot be read, gets a row with ``status`` ``no_face`` /
  ``unreadable`` (the reason in ``reason``) and a message on stderr;
- an entry of a folder that is not an image (unsupported format, dangling or looping link, hidden
  file) gets a row with ``status`` ``skipped`` and the reason (``sim2real_faces.faces.SKIP_REASONS``);
  a file given twice (also as ``a/../a/x.jpg`` or through a link) is analysed once, its repeat is
  ``skipped`` with reason ``duplicate``;
- a file with several frames (animated GIF, multi-page TIFF) is read at its first frame, and its
  ``note`` says so.

``--model fusion`` runs both models of ``models/fusion/`` on every face (the MLP on its face
features, the CNN on its crop) and combines their probabilities with the fitted weight, as the
evaluation does; a face one model cannot predict (e.g. non-finite face features) gets the other
model's probabilities alone. Its column ``fusion_inputs`` says which were used (``all``,
``<model>_only``, ``none``) and stderr counts the faces that did not use both.

A path that does not exist, an ``--out`` that is a folder or cannot be written, and a missing or
damaged model stop the command before the analysis, with a message and exit status 2. ``--out`` is
written in one step at the end (a temporary sibling renamed into place). Parsing the arguments
loads no TensorFlow (``--help`` is instant); the model is loaded once the inputs are checked.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim2real_faces.errors import ProjectError
from sim2real_faces.model_names import FUSION, PIPELINE_MODELS
from sim2real_faces.paths import MODELS

COLUMNS = ["file", "face", "status", "reason", "note", "confidence", "x0", "y0", "x1", "y1"]


class PredictInputError(ProjectError, ValueError):
    """A path given to predict does not exist or holds nothing to read, or ``--out`` cannot be written."""


@dataclass(frozen=True)
class Input:
    """One entry to report: an image to analyse (``reason`` "") or a skipped folder entry."""

    path: Path
    reason: str = ""


def collect_inputs(paths: list[str]) -> list[Input]:
    """The entries named by ``paths``: files as given, folders walked recursively (sorted by name).

    Every folder entry comes back, an image or with the reason it is skipped.
    """
    from sim2real_faces.faces import scan_folder

    inputs: list[Input] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [Input(entry.path, entry.reason) for entry in scan_folder(path)]
            if not any(not item.reason for item in found):
                reasons = sorted({item.reason for item in found})
                raise PredictInputError(
                    f"{path}: folder holds no image files (.png, .jpg, ...)"
                    f"{f'; only entries skipped as {reasons}' if reasons else ''}."
                )
            inputs += found
        elif path.is_file():
            inputs.append(Input(path))
        elif path.is_symlink():
            raise PredictInputError(f"{path}: a symbolic link whose target does not exist (or loops).")
        else:
            raise PredictInputError(f"{path}: no such file or folder.")
    # The same file named twice (e.g. happy/h0.jpg and happy/../happy/h0.jpg, or through a link) is
    # analysed once; the repeat gets a row saying so.
    seen: set[str] = set()
    for index, item in enumerate(inputs):
        if not item.reason:
            real = os.path.realpath(item.path)
            if real in seen:
                inputs[index] = Input(item.path, "duplicate")
            seen.add(real)
    return inputs


def collect_images(paths: list[str]) -> list[Path]:
    """The image files named by ``paths`` (see :func:`collect_inputs`; skipped entries left out)."""
    return [item.path for item in collect_inputs(paths) if not item.reason]


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written, before any work is done."""
    if out.is_dir():
        raise PredictInputError(
            f"--out {out} is a folder; give a file name, e.g. --out {out / 'predictions.csv'}."
        )
    parent = out.parent if str(out.parent) else Path(".")
    existing = parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PredictInputError(f"--out {out}: {existing} is a file, so no folder can be made there.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PredictInputError(f"--out {out}: folder {existing} is not writable; choose another place.")
    if out.exists() and not os.access(out, os.W_OK):
        raise PredictInputError(f"--out {out} exists and is not writable; choose another file.")


def predict_images(
    images: list[Path] | list[Input], model_dir: Path, face_params, progress: bool = True
) -> pd.DataFrame:
    """One row per face (or per faceless/unreadable image, or skipped entry) with class probabilities."""
    from tqdm import tqdm

    from sim2real_faces.faces import FaceAnalyzer, ImageReadError, face_row, frames_note, read_image_frames
    from sim2real_faces.models import Predictor, resize_crop

    items = [item if isinstance(item, Input) else Input(Path(item)) for item in images]
    predictor = Predictor(model_dir)
    # The models that see the faces: the model itself, or both inputs of a fusion (each its own input).
    members = predictor.components if predictor.kind == FUSION else [predictor]
    rows: list[dict] = []
    inputs: list[list[np.ndarray]] = [[] for _ in members]
    with FaceAnalyzer(face_params) as analyzer:
        for item in tqdm(items, desc="predict", unit="img", disable=not progress):
            path = item.path
            if item.reason:
                print(f"skipped: {path}: {item.reason}", file=sys.stderr)
                rows.append({"file": str(path), "face": -1, "status": "skipped", "reason": item.reason})
                continue
            try:
                rgb, n_frames = read_image_frames(path, max_pixels=face_params.max_pixels)
            except ImageReadError as error:
                print(f"skipped: {error}", file=sys.stderr)
                rows.append({"file": str(path), "face": -1, "status": "unreadable", "reason": str(error)})
                continue
            note = frames_note(n_frames)
            if note:
                print(f"{path}: {note}", file=sys.stderr)
            faces = analyzer.analyze(rgb)
            if not faces:
                print(f"{path}: no face found", file=sys.stderr)
                rows.append({"file": str(path), "face": -1, "status": "no_face", "reason": "", "note": note})
                continue
            for index, face in enumerate(faces):
                row = face_row(face, index)
                for member, member_inputs in zip(members, inputs, strict=True):
                    if member.kind == "mlp":
                        member_inputs.append(np.array([row[c] for c in member.features], dtype="float32"))
                    else:
                        member_inputs.append(resize_crop(face.crop, member.input_size))
                x0, y0, x1, y1 = face.bbox
                rows.append(
                    {
                        "file": str(path),
                        "face": index,
                        "status": "ok",
                        "reason": "",
                        "note": note,
                        "confidence": round(face.confidence, 4),
                        "x0": round(x0, 1),
                        "y0": round(y0, 1),
                        "x1": round(x1, 1),
                        "y1": round(y1, 1),
                    }
                )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table[["reason", "note"]] = table[["reason", "note"]].fillna("")
    ok = (table["status"] == "ok").to_numpy()
    predicted = ok.copy()  # rows with probabilities
    proba = np.full((len(table), len(predictor.classes)), np.nan)
    used = np.full(len(table), "", dtype=object)
    if predictor.kind == FUSION:
        if inputs[0]:
            fused, reason, used[ok] = predictor.predict_components([np.stack(values) for values in inputs])
            proba[ok] = fused
            predicted[ok] = reason == ""
            table.loc[ok, "reason"] = reason
        for kind in sorted(set(used[ok]) - {"all"}):
            n_faces = int((used == kind).sum())
            if kind == "none":
                print(
                    f"fusion: {n_faces} face(s) without a prediction: neither model had an input",
                    file=sys.stderr,
                )
            else:
                model = kind.removesuffix("_only")
                print(
                    f"fusion: {n_faces} face(s) predicted by {model} alone: the other had no input",
                    file=sys.stderr,
                )
    elif inputs[0]:
        proba[ok] = predictor.predict_arrays(np.stack(inputs[0]))
    table["predicted"] = pd.Series(
        np.where(
            predicted, np.asarray(predictor.classes, dtype=object)[np.nan_to_num(proba).argmax(axis=1)], ""
        ),
        dtype=object,
    )
    for index, cls in enumerate(predictor.classes):
        table[f"p_{cls}"] = proba[:, index].round(4)
    if predictor.kind == FUSION:
        table["fusion_inputs"] = pd.Series(used, dtype=object)
    return table


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, check every input and the output, then analyse and predict."""
    parser = argparse.ArgumentParser(prog="python -m stages.predict", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument(
        "--model", choices=PIPELINE_MODELS, default="mlp", help="trained model (default: mlp)"
    )
    parser.add_argument(
        "--models-dir", type=Path, default=MODELS, help="folder holding <model>/ (default: models)"
    )
    parser.add_argument("--out", type=Path, help="write the CSV here instead of printing it")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of expected errors")
    args = parser.parse_args(argv)
    inputs = collect_inputs(args.paths)
    if args.out:
        check_out(args.out)
    model_dir = args.models_dir / args.model
    from sim2real_faces.faces import FaceParams
    from sim2real_faces.models import read_model_info
    from sim2real_faces.params import load_section

    read_model_info(model_dir)  # a missing or broken model.json stops here, before the analysis
    table = predict_images(inputs, model_dir, load_section(FaceParams, "face"))
    if args.out:
        from sim2real_faces.io import write_csv

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(args.out, table)
        n_images = sum(1 for item in inputs if not item.reason)
        print(
            f"{int((table['status'] == 'ok').sum())} face(s) in {n_images} image(s), "
            f"{len(inputs) - n_images} entr(ies) skipped -> {args.out}",
            file=sys.stderr,
        )
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
