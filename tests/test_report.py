"""Report: summary, plot data, README table between markers, figures, and the report stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sim2real_faces.evaluation import evaluate_predictions
from sim2real_faces.report import (
    MARK_END,
    MARK_START,
    ReportError,
    load_evaluations,
    results_table,
    sim_vs_real_records,
    summarize,
    write_readme_table,
)

MODELS = ("mlp", "mobilenetv2")
DOMAINS = ("synthetic", "real")


def fake_eval(model: str, domain: str) -> dict:
    """Hand-made predictions: synthetic 3/4 right; real 1 of 3 right, one photo without a face."""
    if domain == "synthetic":
        y = ["angry", "crying", "happy", "happy"]
        p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
        r, groups = ["", "", "", ""], None
    else:
        y = ["angry", "crying", "happy"]
        p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [np.nan] * 3])
        r, groups = ["", "", "no_face"], ["jaffe", "ckplus48", "ckplus48"]
    m = evaluate_predictions(y, p, r, n_resamples=200, level=0.95, seed=1, groups=groups)
    return {"model": model, "domain": domain, **m}


@pytest.fixture()
def evaluations():
    return {m: {d: fake_eval(m, d) for d in DOMAINS} for m in MODELS}


def test_summary_and_records(evaluations):
    summary = summarize(evaluations)
    assert set(summary) == set(MODELS)
    syn = summary["mlp"]["synthetic"]
    assert syn["accuracy"] == pytest.approx(0.75) and syn["n"] == 4
    assert len(syn["accuracy_ci"]) == 2 and syn["macro_f1"] is not None and syn["loss"] > 0
    real = summary["mlp"]["real"]
    assert real["accuracy"] == pytest.approx(1 / 3) and real["accuracy_detected"] == pytest.approx(0.5)
    records = sim_vs_real_records(summary)
    assert len(records) == 4
    assert {"model", "domain", "accuracy", "loss"} <= set(records[0])
    assert [(r["model"], r["domain"]) for r in records][:2] == [("mlp", "synthetic"), ("mlp", "real")]


def test_results_table_has_ours_and_the_studys(evaluations):
    table = results_table(evaluations, profile="tiny")
    assert "Profile `tiny`" in table
    assert "| MLP |" in table and "| MobileNetV2 |" in table
    assert "75.0% [" in table  # synthetic accuracy with its CI
    assert "33.3% [" in table and "50.0%" in table  # real headline, detected-only accuracy
    assert "| 3 (2) |" in table  # n (detected)
    assert "0.198 / 94.3%" in table and "1.091 / 77.8%" in table  # the study's MLP row
    assert "3.263 / 33.3%" in table  # the study's MobileNetV2 real row
    assert "ckplus48" in table and "jaffe" in table  # per-dataset table


def test_readme_markers(tmp_path, evaluations):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{MARK_START}\nold table\n{MARK_END}\n\nafter\n")
    table = results_table(evaluations)
    assert write_readme_table(readme, table) is True
    text = readme.read_text()
    assert "old table" not in text and table.strip() in text
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith(f"{MARK_END}\n\nafter\n")
    assert write_readme_table(readme, table) is False  # idempotent
    assert readme.read_text() == text


@pytest.mark.parametrize(
    "body", ["# no markers\n", f"{MARK_START}\n{MARK_START}\n{MARK_END}\n", f"{MARK_END}\n{MARK_START}\n"]
)
def test_readme_without_markers_is_an_error(tmp_path, body):
    readme = tmp_path / "README.md"
    readme.write_text(body)
    with pytest.raises(ReportError, match="results:start"):
        write_readme_table(readme, "| table |")
    assert readme.read_text() == body


def test_missing_evaluation_is_named(tmp_path):
    with pytest.raises(ReportError, match=r"mlp_real\.json"):
        load_evaluations(tmp_path, ["mlp"], ["real"])


def test_report_stage(tmp_path, monkeypatch, evaluations):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics" / "eval").mkdir(parents=True)
    for model, domains in evaluations.items():
        for domain, metrics in domains.items():
            (tmp_path / "metrics" / "eval" / f"{model}_{domain}.json").write_text(json.dumps(metrics))
    params = {
        "seed": 1,
        "profile_name": "tiny",
        "evaluate": {
            "models": list(MODELS),
            "domains": list(DOMAINS),
            "bootstrap": 10,
            "ci_level": 0.95,
            "batch_size": 8,
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "README.md").write_text(f"# x\n{MARK_START}\n{MARK_END}\n")
    from stages import report

    report.main()
    summary = json.loads((tmp_path / "metrics" / "summary.json").read_text())
    assert summary["mobilenetv2"]["real"]["n"] == 3
    records = json.loads((tmp_path / "plots" / "sim_vs_real.json").read_text())
    assert len(records) == 4
    pngs = [tmp_path / "plots" / "sim_vs_real.png"] + [
        tmp_path / "plots" / "confusion_png" / f"{m}_{d}.png" for m in MODELS for d in DOMAINS
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Profile `tiny`" in (tmp_path / "README.md").read_text()
    first = (tmp_path / "plots" / "sim_vs_real.png").read_bytes()
    report.main()
    assert (tmp_path / "plots" / "sim_vs_real.png").read_bytes() == first  # same inputs, same bytes


def test_labels_say_when_a_cnn_has_no_imagenet_weights_and_name_the_fusion(evaluations):
    from sim2real_faces.report import model_label, model_labels

    assert model_label("vgg16", {"weights": "imagenet"}) == "VGG16"
    assert model_label("vgg16", {"weights": None}) == "VGG16, random init (no ImageNet weights available)"
    assert model_label("mobilenetv2", {"weights": "/w/local.h5"}) == "MobileNetV2, weights local.h5"
    assert model_label("vgg16") == "VGG16"  # no train metrics: the plain name
    assert model_label("mlp", {"features": ["au", "geometry"]}) == "MLP on action units + landmark geometry"
    fusion = {"components": ["mlp", "mobilenetv2"], "method": "mean", "weights": [0.6, 0.4]}
    assert model_label("fusion", fusion) == "Fusion (MLP + MobileNetV2, weighted mean 0.60/0.40)"
    labels = model_labels(["mlp", "vgg16"], {"vgg16": {"weights": None}})
    table = results_table({"vgg16": evaluations["mlp"]}, labels=labels)
    assert "| VGG16, random init (no ImageNet weights available) |" in table
    records = sim_vs_real_records(summarize({"vgg16": evaluations["mlp"]}), labels)
    assert records[0]["label"] == "VGG16, random init (no ImageNet weights available) synthetic"


def test_fusion_inputs_are_listed_under_the_table(evaluations):
    fused = {d: {**m, "fusion_inputs": {"all": 2, "mlp_only": 1}} for d, m in evaluations["mlp"].items()}
    table = results_table({"mlp": evaluations["mlp"], "fusion": fused})
    assert "- Fusion, real: all 2, mlp_only 1" in table
