"""Latency of the inference path per image: face analysis, then each model on the face.

    python benchmarks/predict.py [--photos DIR] [--n 20] [--models-dir models] [--untrained]

Times, per image of ``--photos`` (default: ../shared/data/real-dev, first ``--n`` of its manifest),
MediaPipe face analysis (``sim2real_faces.faces``, params section ``face``) and one forward pass
per model on the most confident face (batch of 1, after a warm-up), reporting median and 90th
percentile in milliseconds. Trained models come from ``models/<model>/``; with ``--untrained`` a
missing one is built with the architecture and input size of params ``train.<model>`` and random
weights (latency depends on the architecture, not on the weights).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim2real_faces.model_names import CNN_NAMES, MODEL_NAMES
from sim2real_faces.models import MODEL_FILE


def _percentiles(times: list[float]) -> tuple[float, float]:
    ms = 1000 * np.asarray(times)
    return float(np.median(ms)), float(np.percentile(ms, 90))


def _model(name: str, models_dir: Path, untrained: bool, params: dict):
    """(keras model, kind, features, input size, what was timed)."""
    from sim2real_faces.models import Predictor, build_cnn, build_mlp

    if (models_dir / name / MODEL_FILE).is_file():
        predictor = Predictor(models_dir / name)
        return predictor.model, predictor.kind, predictor.features, predictor.input_size, "trained"
    if not untrained:
        raise SystemExit(f"{models_dir / name / MODEL_FILE} not found: train it, or pass --untrained.")
    if name == "mlp":
        from sim2real_faces.faces import FeatureParams
        from sim2real_faces.params import load_section

        features = load_section(FeatureParams, "features", params).columns()
        model = build_mlp(np.random.default_rng(0).normal(size=(8, len(features))))
        return model, "mlp", features, 0, "untrained"
    size = int(params["train"][name]["input_size"])
    return build_cnn(name, size, weights=None).model, name, [], size, "untrained (random weights)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--photos", type=Path, default=root.parent / "shared" / "data" / "real-dev")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--untrained", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SIM2REAL_ASSET_MIRROR", str(root.parent / "shared" / "assets"))

    from sim2real_faces.faces import FaceAnalyzer, FaceParams, face_row, read_image
    from sim2real_faces.models import resize_crop
    from sim2real_faces.params import load_params, load_section

    params = load_params()
    manifest = pd.read_csv(args.photos / "manifest.csv")
    paths = [args.photos / p for p in manifest["path"].head(args.n)]
    faces, analysis = [], []
    with FaceAnalyzer(load_section(FaceParams, "face", params)) as analyzer:
        analyzer.analyze(read_image(paths[0]))  # warm-up
        for path in paths:
            rgb = read_image(path)
            start = time.perf_counter()
            found = analyzer.analyze(rgb)
            analysis.append(time.perf_counter() - start)
            if found:
                faces.append(found[0])
    median, p90 = _percentiles(analysis)
    lines = [
        f"{len(paths)} photos from {args.photos}, {len(faces)} with a face; batch 1, TF default threads.",
        "",
        "| step | median ms/image | p90 ms/image | model |",
        "|---|---|---|---|",
        f"| face analysis (MediaPipe) | {median:.1f} | {p90:.1f} | |",
    ]
    for name in args.models:
        model, kind, features, size, what = _model(name, args.models_dir, args.untrained, params)
        if kind == "mlp":
            inputs = [np.array([[face_row(f, 0)[c] for c in features]], dtype="float32") for f in faces]
        else:
            inputs = [resize_crop(f.crop, size)[None].astype("float32") for f in faces]
        model.predict_on_batch(inputs[0])  # warm-up (traces the graph)
        times = []
        for x in inputs:
            start = time.perf_counter()
            model.predict_on_batch(x)
            times.append(time.perf_counter() - start)
        median, p90 = _percentiles(times)
        label = name if name not in CNN_NAMES else f"{name} ({size} px)"
        lines.append(f"| {label} | {median:.1f} | {p90:.1f} | {what} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
