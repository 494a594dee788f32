"""End to end: `dvc repro` of the tiny profile in a temporary copy of the repository.

Then the review workflow: `dvc exp run -S train.mlp...` reruns only the MLP's stages, and a queued
sweep over a CNN setting completes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent
PER_CLASS_AND_DATASET = 2


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 1200) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output[-6000:]}"
    return output


def _tiny_real_folder(real_dev: Path, target: Path) -> Path:
    """A few real-dev photos per dataset and class, with their manifest rows (never committed anywhere)."""
    manifest = pd.read_csv(real_dev / "manifest.csv")
    subset = manifest.groupby(["dataset", "class"], sort=True).head(PER_CLASS_AND_DATASET)
    for path in subset["path"]:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real_dev / path, target / path)
    subset.to_csv(target / "manifest.csv", index=False)
    return target


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory, real_dev: Path, keras_home: Path):
    """A git + DVC copy of this checkout whose conf defaults to profile=tiny, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("e2e")
    repo = root / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    real = _tiny_real_folder(real_dev, root / "real")

    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: default", "profile: tiny"))
    tiny = repo / "conf" / "profile" / "tiny.yaml"
    tiny.write_text(tiny.read_text() + f"\nreal:\n  photo_dir: {real}\n")

    env = dict(os.environ)
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", KERAS_HOME=str(keras_home), DVC_NO_ANALYTICS="1")
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]
    _run(["git", "init", "-q"], repo, env)
    _run([sys.executable, "-m", "sim2real_faces.compose"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run([*git, "commit", "-qm", "tiny"], repo, env)
    output = _run([str(BIN / "dvc"), "repro"], repo, env)
    return repo, env, git, output


def test_repro_runs_every_stage_and_writes_metrics(tiny_repo):
    repo, _, _, output = tiny_repo
    for stage in [
        "prepare_real",
        "generate",
        "downscale",
        "extract",
        "filter",
        "split",
        "report",
        "expression_gap",
    ]:
        assert f"'{stage}'" in output, f"stage {stage} did not run"
    gap = json.loads((repo / "metrics" / "expression_gap.json").read_text())
    assert (
        set(gap["per_class"]) == {"angry", "crying", "happy"}
        and (repo / "plots" / "expression_gap.png").is_file()
    )
    metadata = (repo / "data" / "synthetic" / "raw" / "metadata.csv").read_text().splitlines()
    assert "aus" in metadata[0].split(",") and "AU" in "\n".join(metadata[1:])  # the FACS sampler's record
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary) == {"mlp", "mobilenetv2", "vgg16", "fusion"}
    fusion = json.loads((repo / "metrics" / "eval" / "fusion_real.json").read_text())
    assert sum(fusion["fusion_inputs"].values()) == fusion["n"]  # every photo counted by inputs used
    for model in summary.values():
        for domain in ("synthetic", "real"):
            entry = model[domain]
            assert 0.0 <= entry["accuracy"] <= 1.0
            low, high = entry["accuracy_ci"]
            assert low <= entry["accuracy"] <= high
            assert entry["n"] > 0
    real = json.loads((repo / "metrics" / "real_faces.json").read_text())
    assert real["n_images"] == 3 * 3 * PER_CLASS_AND_DATASET
    assert real["detection_rate"] >= 0.9
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["profile_name"] == "tiny"
    status = _run([str(BIN / "dvc"), "status"], repo, tiny_repo[1])
    assert "up to date" in status


def test_same_params_give_the_same_dataset_bytes(tiny_repo, tmp_path):
    """Regenerate into a fresh output and compare with the pipeline's images byte for byte."""
    repo, env, _, _ = tiny_repo
    first = {p.name: p.read_bytes() for p in sorted((repo / "data/synthetic/raw/images").glob("*.png"))}
    shutil.rmtree(repo / "data/synthetic/raw")
    _run([str(BIN / "dvc"), "repro", "--force", "--single-item", "generate"], repo, env)
    second = {p.name: p.read_bytes() for p in sorted((repo / "data/synthetic/raw/images").glob("*.png"))}
    assert first and first == second


def test_mlp_param_change_reruns_only_mlp_stages(tiny_repo):
    repo, env, _, _ = tiny_repo
    output = _run([str(BIN / "dvc"), "exp", "run", "-S", "train.mlp.batch_size=64"], repo, env)
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    assert "train@mlp" in ran
    assert {s for s in ran if s.startswith(("train@", "evaluate@"))} <= {
        "train@mlp",
        "evaluate@mlp-synthetic",
        "evaluate@mlp-real",
        "train@fusion",  # the fusion combines the MLP
        "evaluate@fusion-synthetic",
        "evaluate@fusion-real",
    }
    assert not ran & {"generate", "downscale", "extract", "filter", "split", "prepare_real"}


def test_queued_sweep_over_a_cnn_setting_completes(tiny_repo):
    repo, env, _, _ = tiny_repo
    dvc = str(BIN / "dvc")
    for rate in ("0.001", "0.0005"):
        _run(
            [dvc, "exp", "run", "--queue", "-S", f"train.mobilenetv2.phase1.learning_rate={rate}"], repo, env
        )
    _run([dvc, "queue", "start", "-j", "1"], repo, env)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = _run([dvc, "queue", "status"], repo, env)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status
    table = _run([dvc, "exp", "show", "--csv"], repo, env)
    assert table.count("train.mobilenetv2.phase1.learning_rate") <= 1
    assert "0.0005" in table and "0.001" in table
