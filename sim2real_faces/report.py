"""The report: summary metrics, plot data, PNG figures and the README results table.

Inputs are the evaluate stage's ``metrics/eval/<model>_<domain>.json`` and the train stage's
``metrics/train/<model>.json``. The study's own figures (its report's Tables 3 and 4) are kept
here only to print them beside ours, never mixed into our numbers.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim2real_faces.errors import ProjectError

MARK_START = "<!-- results:start -->"
MARK_END = "<!-- results:end -->"
MODEL_LABELS = {
    "mlp": "MLP",
    "mobilenetv2": "MobileNetV2",
    "vgg16": "VGG16",
    "fusion": "Fusion",
}
CNN_MODELS = ("mobilenetv2", "vgg16")
# What the MLP reads (params features.groups, recorded in its train metrics as "features").
FEATURE_GROUP_LABELS = {
    "au": "action units",
    "blendshapes": "blendshapes",
    "pose": "head pose",
    "geometry": "landmark geometry",
}
METHOD_LABELS = {"mean": "weighted mean", "product": "weighted geometric mean"}

# The study's report, Table 4 (Table 3 repeats the MLP row): loss and accuracy on its synthetic
# test set (1308 filtered images, identities shared with training; the CNNs' "test" was 64
# validation images) and on 18 real photos. Its VGG16 synthetic accuracy "1.0000" disagrees with
# the 0.656 its notebook printed.
STUDY: dict[str, dict[str, dict[str, float | int]]] = {
    "mlp": {
        "synthetic": {"loss": 0.197599, "accuracy": 0.9427},
        "real": {"loss": 1.091273, "accuracy": 0.7778, "n": 18},
    },
    "mobilenetv2": {
        "synthetic": {"loss": 0.3497, "accuracy": 0.895},
        "real": {"loss": 3.2633, "accuracy": 0.3333, "n": 18},
    },
    "vgg16": {
        "synthetic": {"loss": 0.5525, "accuracy": 1.0},
        "real": {"loss": 3.2421, "accuracy": 0.2222, "n": 18},
    },
}


class ReportError(ProjectError, ValueError):
    """An input of the report is missing, or the README lacks the results markers."""


def load_train_metrics(train_dir: Path, models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """model -> the train stage's ``metrics/train/<model>.json`` (models without one are left out)."""
    out = {}
    for model in models:
        path = Path(train_dir) / f"{model}.json"
        if path.is_file():
            out[model] = json.loads(path.read_text())
    return out


def model_label(model: str, train: dict[str, Any] | None = None) -> str:
    """How a model reads in tables and plots, from its train metrics when given.

    A CNN whose ``weights`` were not ImageNet says so (random init, or the weights file used); the
    MLP names its feature groups; the fusion names its inputs, method and weights.
    """
    label = MODEL_LABELS.get(model, model)
    if not train:
        return label
    if model in CNN_MODELS and "weights" in train and train["weights"] != "imagenet":
        if train["weights"] is None:
            return f"{label}, random init (no ImageNet weights available)"
        return f"{label}, weights {Path(str(train['weights'])).name}"
    if model == "mlp" and train.get("features"):
        groups = " + ".join(FEATURE_GROUP_LABELS.get(g, g) for g in train["features"])
        return f"{label} on {groups}"
    if model == "fusion" and train.get("components"):
        parts = " + ".join(MODEL_LABELS.get(m, m) for m in train["components"])
        weights = "/".join(f"{w:.2f}" for w in train.get("weights", []))
        method = METHOD_LABELS.get(train.get("method", ""), train.get("method", ""))
        return f"{label} ({parts}, {method} {weights})"
    return label


def model_labels(models: Sequence[str], train: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """:func:`model_label` for every model."""
    train = train or {}
    return {model: model_label(model, train.get(model)) for model in models}


def eval_path(eval_dir: Path, model: str, domain: str) -> Path:
    """Where the evaluate stage writes ``model`` x ``domain``."""
    return Path(eval_dir) / f"{model}_{domain}.json"


def load_evaluations(
    eval_dir: Path, models: Sequence[str], domains: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """model -> domain -> the evaluate stage's metrics; a missing file raises :class:`ReportError`."""
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        for domain in domains:
            path = eval_path(eval_dir, model, domain)
            if not path.is_file():
                raise ReportError(
                    f"{path} is missing: run `dvc repro evaluate` (model {model}, domain {domain})."
                )
            out.setdefault(model, {})[domain] = json.loads(path.read_text())
    return out


def summarize(evaluations: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``metrics/summary.json`` content: model -> domain -> accuracy, loss, macro_f1, accuracy_ci, n..."""
    keys = ("accuracy", "loss", "macro_f1", "accuracy_ci", "n", "n_detected", "accuracy_detected")
    return {
        model: {domain: {k: metrics.get(k) for k in keys} for domain, metrics in domains.items()}
        for model, domains in evaluations.items()
    }


def sim_vs_real_records(
    summary: dict[str, dict[str, dict[str, Any]]], labels: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """List-of-records plot data: one record per model x domain (for one grouped bar chart)."""
    labels = labels or {}
    return [
        {
            "model": model,
            "domain": domain,
            "label": f"{labels.get(model, model)} {domain}",
            "accuracy": values["accuracy"],
            "loss": values["loss"],
        }
        for model, domains in summary.items()
        for domain, values in domains.items()
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _acc_ci(values: dict[str, Any]) -> str:
    ci = values.get("accuracy_ci")
    text = _pct(values.get("accuracy"))
    return f"{text} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else text


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def results_table(
    evaluations: dict[str, dict[str, Any]],
    profile: str = "default",
    study: dict[str, dict[str, dict[str, Any]]] = STUDY,
    labels: dict[str, str] | None = None,
) -> str:
    """Markdown like the study's Tables 3-4 (ours with 95% CIs and n, the study's beside), plus
    the real accuracy per dataset. ``labels``: model -> row label (default :data:`MODEL_LABELS`)."""
    labels = {**MODEL_LABELS, **(labels or {})}
    level = next(
        (d.get("ci_level") for m in evaluations.values() for d in m.values() if d.get("ci_level")),
        0.95,
    )
    lines = [
        f"Profile `{profile}`. Accuracy with its {round(100 * level)}% bootstrap confidence interval. "
        "Real: images where no face was found count as errors; the accuracy on detected faces and "
        "the loss (cross-entropy, detected faces only) are given beside it.",
        "",
        "| Model | Synthetic loss | Synthetic accuracy | n | Real loss | Real accuracy "
        "| Real acc. (detected) | n (detected) | Study: synthetic loss / acc. "
        "| Study: real loss / acc. (n=18) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, domains in evaluations.items():
        syn, real = domains.get("synthetic", {}), domains.get("real", {})
        ref = study.get(model, {})
        ref_syn, ref_real = ref.get("synthetic", {}), ref.get("real", {})
        lines.append(
            f"| {labels.get(model, model)} | {_loss(syn.get('loss'))} | {_acc_ci(syn)} "
            f"| {syn.get('n', '-')} "
            f"| {_loss(real.get('loss'))} | {_acc_ci(real)} | {_pct(real.get('accuracy_detected'))} "
            f"| {real.get('n', '-')} ({real.get('n_detected', '-')}) "
            f"| {_loss(ref_syn.get('loss'))} / {_pct(ref_syn.get('accuracy'))} "
            f"| {_loss(ref_real.get('loss'))} / {_pct(ref_real.get('accuracy'))} |"
        )
    datasets = sorted({g for m in evaluations.values() for g in m.get("real", {}).get("per_group", {})})
    if datasets:
        lines += [
            "",
            "Real accuracy per dataset (no face = error; n in brackets):",
            "",
            "| Model | " + " | ".join(datasets) + " |",
            "|---|" + "---|" * len(datasets),
        ]
        for model, domains in evaluations.items():
            groups = domains.get("real", {}).get("per_group", {})
            cells = [f"{_acc_ci(groups[d])} ({groups[d]['n']})" if d in groups else "-" for d in datasets]
            lines.append(f"| {labels.get(model, model)} | " + " | ".join(cells) + " |")
    fused = [
        (model, domain, metrics["fusion_inputs"])
        for model, domains in evaluations.items()
        for domain, metrics in domains.items()
        if metrics.get("fusion_inputs")
    ]
    if fused:
        lines += [
            "",
            "Fusion inputs per image (where one model has no prediction, the other's is used alone):",
            "",
        ]
        for model, domain, counts in fused:
            text = ", ".join(f"{key} {value}" for key, value in counts.items())
            lines.append(f"- {labels.get(model, model)}, {domain}: {text}")
    lines += [
        "",
        "Study figures: its report's Table 4 (synthetic test with identities shared between train and test; "
        "the CNNs' test was 64 validation images; real = 18 photos).",
    ]
    return "\n".join(lines) + "\n"


def write_readme_table(readme: Path, table: str) -> bool:
    """Replace the text between the results markers of ``readme`` by ``table``; True if it changed."""
    readme = Path(readme)
    if not readme.is_file():
        raise ReportError(f"{readme} not found: the report writes its results table into it.")
    text = readme.read_text()
    pattern = re.compile(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), re.DOTALL)
    if text.count(MARK_START) != 1 or text.count(MARK_END) != 1 or not pattern.search(text):
        raise ReportError(
            f"{readme} must contain exactly one '{MARK_START}' followed by one '{MARK_END}' line; "
            "add them where the results table belongs."
        )
    new = pattern.sub(lambda _: f"{MARK_START}\n{table.rstrip()}\n{MARK_END}", text)
    if new != text:
        readme.write_text(new)
    return new != text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sim_vs_real(
    summary: dict[str, dict[str, dict[str, Any]]], path: Path, labels: dict[str, str] | None = None
) -> None:
    """Grouped bars: accuracy (with CI whiskers) per model, synthetic beside real."""
    labels = {**MODEL_LABELS, **(labels or {})}
    plt = _pyplot()
    models = list(summary)
    domains = sorted({d for m in summary.values() for d in m}, key=lambda d: (d != "synthetic", d))
    width = 0.8 / max(1, len(domains))
    fig, ax = plt.subplots(figsize=(max(6.4, 2.2 * len(models)), 4.4))
    for offset, domain in enumerate(domains):
        xs, heights, errors = [], [], [[], []]
        for index, model in enumerate(models):
            values = summary[model].get(domain)
            if not values or values.get("accuracy") is None:
                continue
            acc = values["accuracy"]
            ci = values.get("accuracy_ci") or [acc, acc]
            xs.append(index + (offset - (len(domains) - 1) / 2) * width)
            heights.append(acc)
            errors[0].append(acc - ci[0])
            errors[1].append(ci[1] - acc)
        ax.bar(xs, heights, width, yerr=errors, capsize=3, label=domain)
    ax.axhline(1 / 3, color="grey", linestyle="--", linewidth=1, label="chance (3 classes)")
    ax.set_xticks(range(len(models)), [textwrap.fill(labels.get(m, m), 22) for m in models], fontsize="small")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Synthetic test vs real photos")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def plot_confusion(metrics: dict[str, Any], title: str, path: Path) -> None:
    """A confusion-matrix heat map (counts) of one evaluation, with its "no face" column if any."""
    plt = _pyplot()
    confusion = metrics["confusion"]
    matrix = confusion["matrix"]
    fig, ax = plt.subplots(figsize=(1.3 * len(confusion["predicted"]) + 1.5, 3.6))
    image = ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="black")
    ax.set_xticks(range(len(confusion["predicted"])), confusion["predicted"])
    ax.set_yticks(range(len(confusion["true"])), confusion["true"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
