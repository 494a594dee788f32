"""Stage ``expression_gap``: the renders' expressions beside real faces, per class (aggregates only).

Reads the kept synthetic faces (``data/synthetic/filtered.csv`` + ``data/synthetic/features.csv``) and
the real photos' faces (``data/real/features.csv``); params ``expression_gap.columns`` (which
blendshapes / AUs). Writes ``metrics/expression_gap.json`` (per class and column: mean, std, p10, p90
per domain and the gap of the means; mean |gap| per column and overall), ``plots/expression_gap.json``
(bar records for ``dvc plots``) and ``plots/expression_gap.png``. No real image or per-photo value is
written.
"""

from __future__ import annotations

from sim2real_faces import io as atomic
from sim2real_faces.expression_gap import (
    ExpressionGapError,
    GapParams,
    gap_metrics,
    markdown_table,
    plot_gap,
    plot_records,
    real_faces,
    synthetic_faces,
    validate_params,
)
from sim2real_faces.params import load_section
from sim2real_faces.paths import FILTERED, METRICS, PLOTS, REAL_FEATURES, SYNTH_FEATURES


def main() -> None:
    params = load_section(GapParams, "expression_gap")
    validate_params(params)
    for path, stage in ((SYNTH_FEATURES, "extract"), (FILTERED, "filter"), (REAL_FEATURES, "prepare_real")):
        if not path.is_file():
            raise ExpressionGapError(f"{path} not found: run `dvc repro {stage}` first.")
    synthetic = synthetic_faces(SYNTH_FEATURES, FILTERED, params.columns)
    real = real_faces(REAL_FEATURES, params.columns)
    metrics = gap_metrics(synthetic, real, params.columns)
    METRICS.mkdir(parents=True, exist_ok=True)
    PLOTS.mkdir(parents=True, exist_ok=True)
    atomic.write_json(METRICS / "expression_gap.json", metrics)
    atomic.write_json(PLOTS / "expression_gap.json", plot_records(metrics))
    with atomic.atomic_file(PLOTS / "expression_gap.png") as temp:
        plot_gap(metrics, temp)
    print(markdown_table(metrics))
    print(
        f"expression gap: mean |synthetic - real| = {metrics['mean_abs_gap']:.3f} "
        f"-> {METRICS / 'expression_gap.json'}"
    )


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
