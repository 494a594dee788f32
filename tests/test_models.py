"""Split, model builders, training and a tiny end-to-end split -> train -> evaluate -> report."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from sim2real_faces import CLASSES
from sim2real_faces.compose import composed_section
from sim2real_faces.errors import ProjectError
from sim2real_faces.io import MARKER, write_marker
from sim2real_faces.model_names import CNN_NAMES
from sim2real_faces.params import from_dict
from sim2real_faces.seeds import derive_seed
from sim2real_faces.training import (
    AugmentParams,
    CnnParams,
    FineTuneParams,
    Fractions,
    MlpParams,
    PhaseParams,
    SplitError,
    SplitParams,
    split_summary,
    split_table,
)

REPO = Path(__file__).resolve().parents[1]
AU = [f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)]


def synthetic_table(n_identities: int = 10, per_class: int = 4, seed: int = 0) -> pd.DataFrame:
    """A filtered.csv-like table; identity i keeps per_class - (i % 2) images of 'angry'."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_identities):
        for c, cls in enumerate(CLASSES):
            for k in range(per_class - (i % 2 if cls == "angry" else 0)):
                features = rng.normal(0, 1, len(AU)) + 6 * np.eye(len(AU))[c * 5]
                rows.append(
                    {
                        "file": f"{cls}/id{i:02d}_{k}.png",
                        "identity": f"id{i:02d}",
                        "class": cls,
                        **dict(zip(AU, features, strict=True)),
                    }
                )
    return pd.DataFrame(rows).sample(frac=1, random_state=1).reset_index(drop=True)


IDENTITY = SplitParams(mode="identity", fractions=Fractions(0.6, 0.2, 0.2), balance_trials=50)


# ---------------------------------------------------------------------------------------------- split


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(42, "split") == derive_seed(42, "split")
    assert len({derive_seed(42, "split"), derive_seed(42, "train.mlp"), derive_seed(43, "split")}) == 3


def test_identity_split_is_disjoint_complete_and_deterministic():
    table = synthetic_table()
    split = split_table(table, IDENTITY, seed=3)
    assert sorted(split["file"]) == sorted(table["file"]) and list(split.columns) == [
        "file",
        "identity",
        "class",
        "part",
    ]
    assert (split.groupby("identity")["part"].nunique() == 1).all()
    ids = split.groupby("part")["identity"].nunique()
    assert ids.to_dict() == {"train": 6, "val": 2, "test": 2}
    for part in ("train", "val", "test"):
        assert set(split.loc[split["part"] == part, "class"]) == set(CLASSES)
    again = split_table(table.sample(frac=1, random_state=5), IDENTITY, seed=3)  # row order does not matter
    pd.testing.assert_frame_equal(split, again)
    other = split_table(table, IDENTITY, seed=4)
    assert not split["part"].equals(other["part"])
    assert split_summary(split)["identities_in_several_parts"] == 0


def test_identity_split_balances_classes():
    table = synthetic_table(n_identities=10)
    overall = table["class"].value_counts(normalize=True)

    def worst(split):
        return max(
            (split[split.part == p]["class"].value_counts(normalize=True) - overall).abs().max()
            for p in ("train", "val", "test")
        )

    balanced = worst(split_table(table, IDENTITY, seed=3))
    random = [
        worst(split_table(table, SplitParams("identity", IDENTITY.fractions, 1), seed=s)) for s in range(8)
    ]
    assert balanced <= min(random) + 1e-9


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(SplitError, match="2 identities cannot fill the 3 parts"):
        split_table(synthetic_table(n_identities=2), IDENTITY, seed=0)
    split = split_table(synthetic_table(n_identities=3), IDENTITY, seed=0)  # just enough: one each
    assert split.groupby("part")["identity"].nunique().to_dict() == {"test": 1, "train": 1, "val": 1}


def test_bad_fractions_and_columns():
    with pytest.raises(SplitError, match="sum to 1"):
        split_table(synthetic_table(), SplitParams("identity", Fractions(0.5, 0.2, 0.2)), seed=0)
    with pytest.raises(SplitError, match="lacks column"):
        split_table(synthetic_table().drop(columns="identity"), IDENTITY, seed=0)


def test_image_mode_is_the_studys_per_class_split():
    table = synthetic_table(n_identities=10, per_class=10)
    params = SplitParams(mode="image", fractions=Fractions(0.64, 0.16, 0.2))
    split = split_table(table, params, seed=1)
    for cls in CLASSES:
        counts = split[split["class"] == cls]["part"].value_counts()
        n = (table["class"] == cls).sum()
        assert counts["test"] == round(0.2 * n) and counts["val"] == round(0.16 * n)
    assert split_summary(split)["identities_in_several_parts"] > 0  # why the default is identity mode


# ---------------------------------------------------------------------------------------------- MLP

keras = pytest.importorskip("keras")
from sim2real_faces import models  # noqa: E402
from sim2real_faces.training import train_cnn, train_mlp  # noqa: E402

MLP = MlpParams(
    hidden_units=[64, 32],
    activation="relu",
    learning_rate=0.03,
    batch_size=256,
    max_epochs=15,
    patience=10,
    l2=0.0,
)


def test_mlp_builder_standardizes_with_train_statistics():
    x = np.random.default_rng(0).normal(5, 3, (50, 4)).astype("float32")
    model = models.build_mlp(x, [64, 32])
    assert model.output_shape == (None, 3)
    assert [layer.name for layer in model.layers[1:]] == [
        "standardize",
        "hidden1",
        "hidden2",
        "probabilities",
    ]
    standardized = model.get_layer("standardize")(x).numpy()
    np.testing.assert_allclose(
        standardized, (x - x.mean(0)) / x.std(0), atol=1e-4
    )  # StandardScaler's numbers
    assert model.get_layer("hidden1").activation is keras.activations.relu
    with pytest.raises(ValueError, match="NaN"):
        models.build_mlp(np.array([[1.0, np.nan]]))


def test_mlp_weight_decay_penalises_every_dense_kernel():
    x = np.random.default_rng(0).normal(0, 1, (40, 4)).astype("float32")
    plain = models.build_mlp(x, [8, 4])
    decayed = models.build_mlp(x, [8, 4], l2=0.5)
    assert plain.losses == []
    kernels = [decayed.get_layer(name).kernel.numpy() for name in ("hidden1", "hidden2", "probabilities")]
    penalty = sum(float(loss) for loss in decayed.losses)
    assert penalty == pytest.approx(0.5 * sum(float((k**2).sum()) for k in kernels), rel=1e-5)
    # and it shrinks the weights training finds
    table = synthetic_table(n_identities=12, per_class=5)
    xs, y = table[AU].to_numpy(float), table["class"].tolist()
    heavy = dataclasses.replace(MLP, l2=0.1, max_epochs=10)
    free, _ = train_mlp(
        xs[:120], y[:120], xs[120:], y[120:], dataclasses.replace(heavy, l2=0.0), 1, progress=False
    )
    shrunk, metrics = train_mlp(xs[:120], y[:120], xs[120:], y[120:], heavy, 1, progress=False)
    norm = lambda m: sum(float((np.asarray(w) ** 2).sum()) for w in m.trainable_weights)  # noqa: E731
    assert norm(shrunk) < norm(free) and metrics["l2"] == 0.1


def test_mlp_fits_a_separable_toy_set_deterministically():
    table = synthetic_table(n_identities=12, per_class=5)
    x, y = table[AU].to_numpy(float) * 10 + 100, table["class"].tolist()  # large offset: needs the scaler
    model, metrics = train_mlp(x[:120], y[:120], x[120:], y[120:], MLP, seed=1, progress=False)
    proba = model.predict(x[120:].astype("float32"), verbose=0)
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    accuracy = np.mean(np.array(CLASSES)[proba.argmax(1)] == np.array(y[120:]))
    assert accuracy >= 0.95 and metrics["best"]["val_accuracy"] >= 0.95
    assert metrics["n_train"] == 120 and metrics["n_val"] == len(x) - 120
    short = dataclasses.replace(MLP, max_epochs=3)
    once, _ = train_mlp(x[:120], y[:120], x[120:], y[120:], short, seed=1, progress=False)
    again, _ = train_mlp(x[:120], y[:120], x[120:], y[120:], short, seed=1, progress=False)
    for a, b in zip(once.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mlp_early_stopping_restores_the_best_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (90, 5))
    y = [CLASSES[i] for i in rng.integers(0, 3, 90)]  # no signal: validation loss soon rises
    params = MlpParams(
        [64, 32], "relu", learning_rate=0.05, batch_size=32, max_epochs=200, patience=3, l2=0.0
    )
    model, metrics = train_mlp(x[:60], y[:60], x[60:], y[60:], params, seed=0, progress=False)
    assert (
        metrics["epochs"] < params.max_epochs and metrics["best_epoch"] == metrics["epochs"] - params.patience
    )
    from sim2real_faces.training import one_hot

    proba = model.predict(x[60:].astype("float32"), verbose=0)
    val_loss = float(models.make_loss()(one_hot(y[60:]), proba))
    assert val_loss == pytest.approx(metrics["best"]["val_loss"], rel=1e-5)


def test_loss_and_activation_pairing():
    loss = models.make_loss()
    assert loss.get_config()["from_logits"] is False
    x = np.zeros((4, 3), "float32")
    model = models.build_mlp(x + np.arange(3), [4])
    models.check_loss_pairing(model, loss)
    with pytest.raises(models.LossPairingError, match="from_logits=True"):
        models.check_loss_pairing(model, keras.losses.CategoricalCrossentropy(from_logits=True))
    inputs = keras.Input((3,))
    logits = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(models.LossPairingError, match="softmax"):
        models.check_loss_pairing(logits, loss)


# ---------------------------------------------------------------------------------------------- CNNs


@pytest.fixture(scope="module")
def cnns():
    return {name: models.build_cnn(name, 32, weights=None) for name in CNN_NAMES}


@pytest.mark.parametrize(("name", "n_layers", "unfreeze"), [("mobilenetv2", 154, 54), ("vgg16", 19, 4)])
def test_cnn_builder_shapes_and_trainable_layers(cnns, name, n_layers, unfreeze):
    cnn = cnns[name]
    assert cnn.model.input_shape == (None, 32, 32, 3) and cnn.model.output_shape == (None, 3)
    assert len(cnn.base.layers) == n_layers
    assert cnn.classifier.activation is keras.activations.softmax
    assert isinstance(cnn.pool, keras.layers.GlobalAveragePooling2D) and cnn.dropout.rate == 0.2
    assert models.set_phase(cnn.base, 0) == 0 and not cnn.base.trainable
    head = [w.name for w in cnn.model.trainable_weights]
    assert head == ["kernel", "bias"]  # phase 1: only the dense head
    assert models.set_phase(cnn.base, unfreeze) == unfreeze
    assert [layer.trainable for layer in cnn.base.layers] == [False] * (n_layers - unfreeze) + [
        True
    ] * unfreeze
    assert len(cnn.model.trainable_weights) > 2
    if name == "vgg16":
        assert [layer.name for layer in cnn.base.layers if layer.trainable] == [
            "block5_conv1",
            "block5_conv2",
            "block5_conv3",
            "block5_pool",
        ]
    models.set_phase(cnn.base, 0)
    with pytest.raises(ValueError, match="unfreeze_last"):
        models.set_phase(cnn.base, n_layers)
    # a project error (one message, exit 2), not a traceback, when the param exceeds the base
    with pytest.raises(ProjectError, match=f"phase2.unfreeze_last={n_layers}: choose 1..{n_layers - 1}"):
        models.split_base(cnn.base, n_layers)


@pytest.mark.parametrize("name", ["mobilenetv2", "vgg16"])
def test_each_cnn_has_its_own_preprocessing(cnns, name):
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    ours = cnns[name].preprocess(x).numpy()
    reference = getattr(
        keras.applications, {"mobilenetv2": "mobilenet_v2", "vgg16": "vgg16"}[name]
    ).preprocess_input(x.copy())
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    if name == "mobilenetv2":
        np.testing.assert_allclose(ours, x / 127.5 - 1, atol=1e-5)
    else:  # caffe: RGB -> BGR, minus the ImageNet means, no scaling
        np.testing.assert_allclose(ours[..., 0], x[..., 2] - 103.939, atol=1e-3)


@pytest.mark.parametrize(("name", "unfreeze", "n_cut"), [("mobilenetv2", 54, 2), ("vgg16", 4, 1)])
def test_split_base_is_exact(cnns, name, unfreeze, n_cut):
    base = cnns[name].base
    trunk, top = models.split_base(base, unfreeze)
    x = np.random.default_rng(1).normal(0, 1, (2, 32, 32, 3)).astype("float32")
    cut = trunk(x, training=False)
    cut = cut if isinstance(cut, (list, tuple)) else [cut]
    assert len(cut) == n_cut  # MobileNetV2: a residual connection crosses the cut
    np.testing.assert_allclose(top(cut, training=False), base(x, training=False), atol=1e-5)


def run_python(code: str, keras_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_HOME": str(keras_home), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


def test_weights_unavailable_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty_keras_home"
    empty.mkdir()
    result = run_python(
        """
        from sim2real_faces.models import WeightsUnavailableError, build_cnn
        try:
            build_cnn("vgg16", 32, "imagenet")
        except WeightsUnavailableError as error:
            print("ERROR:", error)
        else:
            print("NO ERROR")
        """,
        empty,
    )
    out = result.stdout
    assert "ERROR:" in out, result.stdout + result.stderr
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in out
    assert f"KERAS_HOME={empty}" in out and "train.vgg16.weights" in out and "null" in out
    with pytest.raises(models.WeightsUnavailableError, match="does not exist"):
        models.build_cnn("vgg16", 32, str(tmp_path / "nowhere.h5"))


def test_imagenet_stand_in_weights_load_and_are_recorded(keras_home):
    result = run_python(
        """
        import json
        import numpy as np
        from sim2real_faces.models import build_cnn
        from stages.train import weights_record
        cnn = build_cnn("mobilenetv2", 96, "imagenet")
        kernel = cnn.base.get_layer("Conv1").get_weights()[0]
        print(json.dumps({**weights_record("mobilenetv2", "imagenet", 96), "std": float(np.std(kernel))}))
        """,
        keras_home,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["weights"] == "imagenet"
    assert record["weights_file"].endswith("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5")
    assert record["weights_sha256"] == "cfb2c0710c89b597b8805afa04fe03252153ea4069362d407416710b41803b9c"


def crops_for(classes: list[str], seed: int, size: int = 32) -> np.ndarray:
    """Tiny class-coloured noise images: angry red, crying blue, happy green."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 120, (len(classes), size, size, 3)).astype(np.uint8)
    for i, cls in enumerate(classes):
        images[i, ..., {"angry": 0, "crying": 2, "happy": 1}[cls]] += 120
    return images


def default_augment(**changes) -> AugmentParams:
    """The MobileNetV2 default augmentation of conf/, with ``changes``."""
    conf = composed_section("train.mobilenetv2.augment")
    return from_dict(AugmentParams, {**conf, **changes}, "augment")


TINY_CNN = CnnParams(
    input_size=32,
    weights=None,
    dropout=0.2,
    batch_size=16,
    label_smoothing=0.0,
    class_weights="none",
    augment=default_augment(online=False, copies=1),
    phase1=PhaseParams("adam", 1e-3, 3, 2),
    phase2=FineTuneParams(
        unfreeze_last=10,
        optimizer="rmsprop",
        learning_rate=1e-5,
        max_epochs=1,
        patience=1,
        batchnorm="frozen",
        schedule="constant",
        warmup_epochs=0,
    ),
)


def test_train_cnn_two_phases_deterministic_and_stable_bytes(tmp_path):
    """VGG16 here (MobileNetV2 runs in the end-to-end test): both phases, same seed -> same weights."""
    y = [CLASSES[i % 3] for i in range(24)]
    vgg = dataclasses.replace(TINY_CNN, phase2=dataclasses.replace(TINY_CNN.phase2, unfreeze_last=4))
    x = crops_for(y, 0)
    model, metrics = train_cnn("vgg16", x[:18], y[:18], x[18:], y[18:], vgg, seed=5, progress=False)
    assert metrics["epochs"]["phase1"] == 3 and metrics["epochs"]["phase2"] == 1
    assert metrics["trainable_base_layers"] == {"phase1": 0, "phase2": 4, "base_layers": 19}
    assert (
        metrics["n_train_augmented"] == 36
        and metrics["n_val"] == 6
        and metrics["kept"] in ("phase1", "phase2")
    )
    assert metrics["best"]["val_loss"] == min(
        v["val_loss"] for v in metrics["phases"].values() if v["val_loss"] is not None
    )
    again, _ = train_cnn("vgg16", x[:18], y[:18], x[18:], y[18:], vgg, seed=5, progress=False)
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # same seed, same weights
    models.save_model(model, tmp_path / "a", {"model": "vgg16", "input_size": 32})
    models.save_model(model, tmp_path / "b", {"model": "vgg16", "input_size": 32})
    assert (tmp_path / "a" / "model.keras").read_bytes() == (tmp_path / "b" / "model.keras").read_bytes()
    loaded, info = models.load_model(tmp_path / "a")
    assert info["classes"] == list(CLASSES)
    np.testing.assert_allclose(
        loaded.predict(x[18:].astype("float32"), verbose=0),
        model.predict(x[18:].astype("float32"), verbose=0),
        atol=1e-6,
    )
    with pytest.raises(models.ModelFileError, match="train the model first"):
        models.load_model(tmp_path / "missing")


def test_augmented_copies_are_seeded_and_change_the_images():
    from sim2real_faces.training import augment_copies

    x = crops_for(["angry", "happy"] * 4, 1)
    a = augment_copies(x, TINY_CNN.augment, seed=3, progress=False)
    b = augment_copies(x, TINY_CNN.augment, seed=3, progress=False)
    assert len(a) == 1 and a[0].shape == x.shape and a[0].dtype == np.uint8
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], x)


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory, real_dev):
    """A repository-shaped folder: params.yaml, filtered.csv + crops, real features + crops, README."""
    root = tmp_path_factory.mktemp("project")
    table = synthetic_table(n_identities=5, per_class=4, seed=2)
    crops = crops_for(table["class"].tolist(), 3, size=40)
    crop_dir = root / "data" / "synthetic" / "crops"
    crop_dir.mkdir(parents=True)
    table["crop"] = ""
    for i, name in enumerate(table["file"]):
        path = Path("data/synthetic/crops") / name.replace("/", "_")
        cv2.imwrite(str(root / path), cv2.cvtColor(crops[i], cv2.COLOR_RGB2BGR))
        table.loc[i, "crop"] = str(path)
    table["status"], table["success"], table["confidence"] = "ok", 1, 0.95
    table.to_csv(root / "data" / "synthetic" / "filtered.csv", index=False)

    manifest = pd.read_csv(real_dev / "manifest.csv")
    picked = manifest.groupby("class").head(3).reset_index(drop=True)  # 9 photos, 3 per class
    rng = np.random.default_rng(4)
    rows = []
    (root / "data" / "real" / "crops").mkdir(parents=True)
    for i, photo in picked.iterrows():
        crop = Path("data/real/crops") / f"{i}.png"
        image = cv2.resize(cv2.imread(str(real_dev / photo["path"])), (40, 40), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / crop), image)
        status = {4: "no_face", 7: "unreadable"}.get(i, "ok")
        rows.append(
            {
                "path": photo["path"],
                "class": photo["class"],
                "dataset": photo["dataset"],
                "status": status,
                "success": int(status == "ok"),
                "crop": "" if status != "ok" else str(crop),
                **dict(
                    zip(AU, rng.normal(0, 1, len(AU)) if status == "ok" else [np.nan] * len(AU), strict=True)
                ),
            }
        )
    pd.DataFrame(rows).to_csv(root / "data" / "real" / "features.csv", index=False)
    real = root / "data" / "real"
    write_marker(real / "crops" / MARKER, real / "features.csv", real / "crops")  # as prepare_real does

    cnn = {
        "input_size": 32,
        "weights": None,
        "dropout": 0.2,
        "batch_size": 16,
        "label_smoothing": 0.1,
        "class_weights": "balanced",
        "augment": dataclasses.asdict(default_augment(online=True, copies=1)),
        "phase1": {"optimizer": "adam", "learning_rate": 0.001, "max_epochs": 2, "patience": 2},
        "phase2": {
            "unfreeze_last": 10,
            "optimizer": "adam",
            "learning_rate": 1e-4,
            "max_epochs": 2,
            "patience": 1,
            "batchnorm": "frozen",
            "schedule": "cosine",
            "warmup_epochs": 1,
        },
    }
    cnn["augment"] = {k: list(v) if isinstance(v, tuple) else v for k, v in cnn["augment"].items()}
    params = {
        "seed": 42,
        "profile_name": "tiny",
        "features": {"groups": ["au"]},
        "split": {
            "mode": "identity",
            "fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
            "balance_trials": 20,
        },
        "train": {
            "mlp": {
                "hidden_units": [64, 32],
                "activation": "relu",
                "learning_rate": 0.03,
                "batch_size": 256,
                "max_epochs": 15,
                "patience": 5,
                "l2": 0.001,
            },
            "mobilenetv2": cnn,
            "fusion": {"models": ["mlp", "mobilenetv2"], "method": "mean", "weight": None, "grid": 11},
        },
        "evaluate": {
            "models": ["mlp", "mobilenetv2", "fusion"],
            "domains": ["synthetic", "real"],
            "bootstrap": 200,
            "ci_level": 0.95,
            "batch_size": 8,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "README.md").write_text("# tiny\n\n<!-- results:start -->\n<!-- results:end -->\n")
    return root


def test_end_to_end_split_train_evaluate_report(tiny_project, monkeypatch):
    from stages import evaluate, report, split, train

    monkeypatch.chdir(tiny_project)
    split.main()
    first = Path("data/split.csv").read_bytes()
    split.main()
    assert Path("data/split.csv").read_bytes() == first
    assert json.loads(Path("metrics/split.json").read_text())["identities_in_several_parts"] == 0

    for model in ("mlp", "mobilenetv2"):
        train.main([model])
        assert (Path("models") / model / "model.keras").is_file()
        metrics = json.loads((Path("metrics/train") / f"{model}.json").read_text())
        parts = pd.read_csv("data/split.csv")["part"].value_counts()
        assert (metrics["n_train"], metrics["n_val"]) == (parts["train"], parts["val"])
        assert metrics["best"]["val_loss"] > 0
        assert Path(f"dvclive/{model}/plots/metrics/eval/loss.tsv").is_file()
    cnn_metrics = json.loads(Path("metrics/train/mobilenetv2.json").read_text())
    assert cnn_metrics["weights"] is None and cnn_metrics["weights_file"] is None
    steps = pd.read_csv("dvclive/mobilenetv2/plots/metrics/eval/loss.tsv", sep="\t")
    assert (
        len(steps) == cnn_metrics["epochs"]["phase1"] + cnn_metrics["epochs"]["phase2"]
    )  # both phases logged

    assert cnn_metrics["augment"] == {"online": True, "copies": 1}
    assert Path("dvclive/mobilenetv2/plots/augmented_crops.png").is_file()
    train.main(["fusion"])
    fusion = json.loads(Path("metrics/train/fusion.json").read_text())
    assert fusion["components"] == ["mlp", "mobilenetv2"] and abs(sum(fusion["weights"]) - 1) < 1e-9
    assert fusion["best"]["val_loss"] <= min(v["val_loss"] for v in fusion["inputs_val"].values()) + 1e-6
    assert Path("models/fusion/mlp/model.keras").is_file()  # self-contained copies of its inputs

    for model in ("mlp", "mobilenetv2", "fusion"):
        for domain in ("synthetic", "real"):
            evaluate.main([model, domain])
    fused = json.loads(Path("metrics/eval/fusion_real.json").read_text())
    assert fused["fusion_inputs"] == {"all": 7, "none": 2} and fused["n_detected"] == 7
    real = json.loads(Path("metrics/eval/mobilenetv2_real.json").read_text())
    assert real["n"] == 9 and real["n_detected"] == 7 and real["missing"] == {"no_face": 1, "unreadable": 1}
    assert set(real["per_group"]) == set(pd.read_csv("data/real/features.csv")["dataset"])
    confusion = pd.read_csv("plots/confusion/mobilenetv2_real.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and set(confusion["predicted"]) - set(
        CLASSES
    ) <= {"no_face", "unreadable"}
    synthetic = json.loads(Path("metrics/eval/mlp_synthetic.json").read_text())
    assert synthetic["n"] == parts["test"] and synthetic["accuracy"] >= 0.9  # separable AU toy data
    predictions = pd.read_csv("data/predictions/mlp_real.csv")
    assert len(predictions) == 9 and predictions["p_angry"].isna().sum() == 2

    report.main()
    summary = json.loads(Path("metrics/summary.json").read_text())
    assert summary["mlp"]["synthetic"]["accuracy"] == synthetic["accuracy"]
    readme = Path("README.md").read_text()
    assert "MobileNetV2, random init (no ImageNet weights available)" in readme
    assert "Fusion (MLP + MobileNetV2, weighted mean" in readme
