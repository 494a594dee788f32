"""Stage ``report``: summary metrics, plot data and figures, and the README results table.

Reads ``metrics/eval/<model>_<domain>.json`` for every model and domain of params ``evaluate``, and
``metrics/train/<model>.json`` for the row labels (a CNN without ImageNet weights says so; the
fusion names its inputs and weights).
Writes ``metrics/summary.json`` (model -> domain -> accuracy, loss, macro_f1, accuracy_ci, n,
n_detected, accuracy_detected), ``plots/sim_vs_real.json`` (list of records for one bar chart),
``plots/sim_vs_real.png`` and ``plots/confusion_png/<model>_<domain>.png`` for people, and the
results table (like the study's Tables 3-4, its figures beside ours) into ``README.md`` between
``<!-- results:start -->`` and ``<!-- results:end -->``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sim2real_faces.evaluation import EvaluateParams
from sim2real_faces.io import write_json
from sim2real_faces.params import load_params, load_section
from sim2real_faces.paths import METRICS, PLOTS
from sim2real_faces.report import (
    load_evaluations,
    load_train_metrics,
    model_labels,
    plot_confusion,
    plot_sim_vs_real,
    results_table,
    sim_vs_real_records,
    summarize,
    write_readme_table,
)

EVAL_METRICS = METRICS / "eval"
TRAIN_METRICS = METRICS / "train"
SUMMARY = METRICS / "summary.json"
SIM_VS_REAL = PLOTS / "sim_vs_real.json"
SIM_VS_REAL_PNG = PLOTS / "sim_vs_real.png"
CONFUSION_PNG = PLOTS / "confusion_png"
README = Path("README.md")


def main() -> None:
    params = load_params()
    eval_params = load_section(EvaluateParams, "evaluate", params)
    evaluations = load_evaluations(EVAL_METRICS, eval_params.models, eval_params.domains)
    labels = model_labels(eval_params.models, load_train_metrics(TRAIN_METRICS, eval_params.models))
    summary = summarize(evaluations)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    write_json(SUMMARY, summary)
    PLOTS.mkdir(parents=True, exist_ok=True)
    write_json(SIM_VS_REAL, sim_vs_real_records(summary, labels))
    plot_sim_vs_real(summary, SIM_VS_REAL_PNG, labels)
    for model, domains in evaluations.items():
        for domain, metrics in domains.items():
            title = f"{textwrap.fill(labels[model], 48)}, {domain}"
            plot_confusion(metrics, title, CONFUSION_PNG / f"{model}_{domain}.png")
    table = results_table(evaluations, profile=str(params.get("profile_name", "default")), labels=labels)
    changed = write_readme_table(README, table)
    print(table)
    print(f"{README} results table {'updated' if changed else 'unchanged'}; summary in {SUMMARY}")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
