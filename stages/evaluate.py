"""Stage ``evaluate``: ``python -m stages.evaluate <model> synthetic|real``.

* ``synthetic``: the ``test`` part of ``data/split.csv`` (identities never seen in training).
* ``real``: every row of ``data/real/features.csv``. A photo where no face was found (or that could
  not be read) counts as an error in the headline accuracy; the accuracy on detected faces is
  reported beside it, and per dataset (column ``dataset``).

Writes ``metrics/eval/<model>_<domain>.json`` (loss, accuracy with a seeded bootstrap CI,
macro-F1, recall per class, confusion matrix, n, n_detected, missing per reason),
``plots/confusion/<model>_<domain>.csv`` (actual, predicted: DVC's confusion template; a row
without a face is predicted ``no_face``) and ``data/predictions/<model>_<domain>.csv``.

Model ``fusion`` combines its input models' probabilities per row; where one input model has no
prediction (no features, no crop) it uses the other's alone, and ``fusion_inputs`` counts the rows
by inputs used (``all``, ``<model>_only``, ``none``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sim2real_faces import CLASSES
from sim2real_faces.errors import ProjectError
from sim2real_faces.evaluation import EvaluateParams, evaluate_predictions, predicted_labels
from sim2real_faces.io import write_json
from sim2real_faces.model_names import PIPELINE_MODELS
from sim2real_faces.params import load_params, load_section
from sim2real_faces.paths import DATA, METRICS, MODELS, PLOTS, REAL_FEATURES
from sim2real_faces.seeds import derive_seed, evaluate_key

DOMAINS = ("synthetic", "real")
EVAL_METRICS = METRICS / "eval"
CONFUSION = PLOTS / "confusion"
PREDICTIONS = DATA / "predictions"


class EvaluateInputError(ProjectError, ValueError):
    """An input table of the evaluation is missing or has no rows to evaluate."""


def load_domain(domain: str) -> tuple[pd.DataFrame, str, Path]:
    """(rows to evaluate, their id column, source file) for ``domain``."""
    if domain == "synthetic":
        from sim2real_faces.parts import load_parts

        frame = load_parts()
        frame = frame[frame["part"] == "test"].reset_index(drop=True)
        if frame.empty:
            raise EvaluateInputError("data/split.csv has no test rows: set split.fractions.test > 0.")
        return frame, "file", Path("data/synthetic/filtered.csv")
    if not REAL_FEATURES.is_file():
        raise EvaluateInputError(f"{REAL_FEATURES} not found: run `dvc repro prepare_real` first.")
    from sim2real_faces.io import MARKER, check_marker
    from sim2real_faces.paths import REAL_CROPS

    # Refuses a table without its completion marker or older than its crops (an interrupted run).
    check_marker(REAL_CROPS / MARKER, REAL_FEATURES, REAL_CROPS, "prepare_real")
    frame = pd.read_csv(REAL_FEATURES, keep_default_na=True)
    if frame.empty:
        raise EvaluateInputError(f"{REAL_FEATURES} has no rows: check real.photo_dir.")
    return frame, "path" if "path" in frame else "file", REAL_FEATURES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=PIPELINE_MODELS)
    parser.add_argument("domain", choices=DOMAINS)
    args = parser.parse_args(argv)

    from sim2real_faces.models import Predictor

    params = load_params()
    eval_params = load_section(EvaluateParams, "evaluate", params)
    frame, id_column, source = load_domain(args.domain)
    predictor = Predictor(MODELS / args.model, batch_size=eval_params.batch_size)
    proba, reason = predictor.predict_frame(frame, where=str(source))
    groups = frame["dataset"].astype(str).tolist() if args.domain == "real" and "dataset" in frame else None
    metrics = evaluate_predictions(
        frame["class"].astype(str).tolist(),
        proba,
        reason,
        n_resamples=eval_params.bootstrap,
        level=eval_params.ci_level,
        seed=derive_seed(int(params["seed"]), evaluate_key(args.model, args.domain)),
        groups=groups,
    )
    metrics = {"model": args.model, "domain": args.domain, "source": str(source), **metrics}
    if predictor.last_inputs is not None:
        # Fusion: rows where an input model had no prediction use the other model alone (counted).
        inputs = predictor.last_inputs
        metrics["fusion_inputs"] = {str(k): int((inputs == k).sum()) for k in sorted(set(inputs))}

    name = f"{args.model}_{args.domain}"
    write_json(EVAL_METRICS / f"{name}.json", metrics)
    predicted = predicted_labels(proba, reason, CLASSES)
    CONFUSION.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"actual": frame["class"].astype(str), "predicted": predicted}).to_csv(
        CONFUSION / f"{name}.csv", index=False
    )
    out = pd.DataFrame({id_column: frame[id_column], "class": frame["class"]})
    if groups is not None:
        out["dataset"] = groups
    out["predicted"] = predicted
    out["reason"] = reason
    for index, cls in enumerate(CLASSES):
        out[f"p_{cls}"] = proba[:, index].round(6)
    PREDICTIONS.mkdir(parents=True, exist_ok=True)
    out.to_csv(PREDICTIONS / f"{name}.csv", index=False)
    ci = metrics["accuracy_ci"] or [float("nan")] * 2
    print(
        f"{name}: accuracy {metrics['accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] on {metrics['n']} "
        f"({metrics['n_detected']} with a prediction), loss {metrics['loss']}"
    )


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
