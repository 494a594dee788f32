"""FACS layer: the AU table, the prototype sampler (bounds, seeds, asymmetry, peaks, preset share),
params errors, mesh folding at the configured peaks, and that each key AU moves its MediaPipe
blendshape (rendering and face analysis each run in their own child process)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sim2real_faces.compose import compose
from sim2real_faces.humans.expressions import (
    ExpressionParams,
    pose_unit_names,
    require_presets,
    sample_expression,
    validate_params,
)
from sim2real_faces.humans.facs import (
    AU_UNITS,
    FacsParamsError,
    OptionalAU,
    au_unit_weights,
    format_aus,
    parse_aus,
    unit_side,
)
from sim2real_faces.params import ParamsError, from_dict

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("angry", "crying", "happy")


@pytest.fixture(scope="module")
def conf() -> ExpressionParams:
    """The default profile's section ``expressions`` (conf/expressions/facs.yaml)."""
    params = compose([], REPO / "conf")
    return from_dict(ExpressionParams, params["expressions"], "expressions")


def _with_facs(params: ExpressionParams, **changes) -> ExpressionParams:
    return dataclasses.replace(params, facs=dataclasses.replace(params.facs, **changes))


def _with_class(params: ExpressionParams, cls: str, **changes) -> ExpressionParams:
    classes = dict(params.facs.classes)
    classes[cls] = dataclasses.replace(classes[cls], **changes)
    return _with_facs(params, classes=classes)


# ------------------------------------------------------------------------------------------ table


def test_au_table_names_existing_pose_units() -> None:
    units = set(pose_unit_names())
    for au, (name, weights) in AU_UNITS.items():
        assert au.startswith("AU") and name, au
        assert weights and set(weights) <= units, (au, sorted(set(weights) - units))
        assert all(0 < w <= 1.0 for w in weights.values()), au
    # the AUs the class prototypes of the published tables need
    for au in ("AU1", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU17", "AU20"):
        assert au in AU_UNITS
    for au in ("AU23", "AU24", "AU25", "AU26", "AU27", "AU43", "AU45"):
        assert au in AU_UNITS


def test_unit_sides() -> None:
    assert unit_side("LeftInnerBrowUp") == "Left"
    assert unit_side("MouthRightPullUp") == "Right"
    assert unit_side("JawDrop") is None
    assert unit_side("MouthMoveLeft") is None
    assert unit_side("LeftEyeturnRight") is None
    # every bilateral AU has as many left as right units
    for au, (_, weights) in AU_UNITS.items():
        sides = [unit_side(u) for u in weights]
        assert sides.count("Left") == sides.count("Right"), au


def test_aus_text_round_trip() -> None:
    aus = {"AU1": 0.8, "AU4": 0.6123}
    assert format_aus(aus) == "AU1:0.80;AU4:0.61"
    assert parse_aus(format_aus(aus)) == {"AU1": 0.8, "AU4": 0.61}
    assert parse_aus("") == {} and format_aus({}) == ""


# ---------------------------------------------------------------------------------------- sampler


def test_default_profile_uses_facs_paper_keeps_presets(conf: ExpressionParams) -> None:
    assert conf.sampler == "facs" and conf.facs is not None
    validate_params(conf)
    assert set(conf.facs.classes) == set(conf.classes) == set(CLASSES)
    paper = compose(["profile=paper"], REPO / "conf")["expressions"]
    assert paper["sampler"] == "presets" and paper["facs"] is None
    assert paper["classes"] == {"angry": ["anger01"], "crying": ["cry01"], "happy": ["laugh01"]}
    tiny = compose(["profile=tiny"], REPO / "conf")["expressions"]
    assert tiny["sampler"] == "facs"
    with pytest.raises(FacsParamsError, match=r"expressions\.sampler"):
        require_presets(conf, "generate.backend = unity")


def test_sampler_bounds(conf: ExpressionParams) -> None:
    facs = conf.facs
    rng = np.random.default_rng(3)
    slo, shi = facs.strength
    units = set(pose_unit_names())
    for cls in CLASSES:
        proto = facs.classes[cls]
        n_facs = 0
        for _ in range(300):
            choice = sample_expression(conf, cls, rng)
            if choice.unit_weights is None:
                assert choice.preset in conf.classes[cls] and not choice.aus
                continue
            n_facs += 1
            assert choice.preset == "facs" and slo <= choice.intensity <= shi
            assert set(proto.core) <= set(choice.aus) <= set(proto.core) | set(proto.optional)
            for au, value in choice.aus.items():
                lo, hi = proto.core[au] if au in proto.core else proto.optional[au].intensity
                assert slo * lo - 1e-9 <= value <= shi * hi + 1e-9, (cls, au, value)
            assert set(choice.unit_weights) <= units
            assert all(0.0 <= w <= facs.peak_max for w in choice.unit_weights.values())
            au_units = {u for au in choice.aus for u in AU_UNITS[au][1]}
            noise = set(choice.unit_weights) - au_units
            assert len(noise) == facs.noise.units
            for unit in noise:
                assert choice.unit_weights[unit] <= facs.noise.max_weight
                assert not any(unit.startswith(p) for p in facs.noise.exclude)
        assert n_facs > 150  # preset_share 0.2


def test_sampler_seeds(conf: ExpressionParams) -> None:
    a = [sample_expression(conf, "angry", np.random.default_rng(11)) for _ in range(2)]
    assert a[0] == a[1]
    b = sample_expression(conf, "angry", np.random.default_rng(12))
    assert b != a[0]


def test_optional_probability_and_preset_share(conf: ExpressionParams) -> None:
    params = _with_class(
        _with_facs(conf, preset_share=0.0),
        "happy",
        optional={"AU25": OptionalAU(0.3, (0.5, 1.0)), "AU26": OptionalAU(0.0, (0.5, 1.0))},
    )
    rng = np.random.default_rng(5)
    draws = [sample_expression(params, "happy", rng) for _ in range(2000)]
    assert all(d.unit_weights is not None for d in draws)
    rate = np.mean(["AU25" in d.aus for d in draws])
    assert 0.26 < rate < 0.34
    assert not any("AU26" in d.aus for d in draws)
    share = _with_facs(conf, preset_share=1.0)
    assert all(sample_expression(share, "happy", rng).unit_weights is None for _ in range(50))


def test_presets_sampler_draws_unchanged(conf: ExpressionParams) -> None:
    """``sampler: presets`` keeps the study's three draws (preset, intensity, tears) in that order."""
    params = dataclasses.replace(conf, sampler="presets", facs=None)
    choice = sample_expression(params, "crying", np.random.default_rng(9))
    rng = np.random.default_rng(9)
    presets = params.classes["crying"]
    assert choice.preset == presets[int(rng.integers(len(presets)))]
    assert choice.intensity == float(rng.uniform(*params.intensity))
    assert choice.tears == bool(rng.uniform() < params.tears["crying"])
    assert choice.unit_weights is None and choice.aus_text == ""


def test_asymmetry_and_peak_limit(conf: ExpressionParams) -> None:
    w = au_unit_weights({"AU12": 1.0}, {"AU12": 0.2}, peak_max=2.0)
    assert w == pytest.approx({"MouthLeftPullUp": 1.2, "MouthRightPullUp": 0.8})
    assert au_unit_weights({"AU26": 1.0}, {"AU26": 0.2}, 2.0) == {"JawDrop": 1.0}  # midline
    capped = au_unit_weights({"AU12": 1.9}, {"AU12": 0.2}, peak_max=2.0)
    assert capped["MouthLeftPullUp"] == 2.0 and capped["MouthRightPullUp"] == pytest.approx(1.52)
    # shared units add up, then the cap applies
    assert au_unit_weights({"AU17": 2.0, "AU24": 2.0}, {}, 2.0)["lowerLipUp"] == 2.0
    rng = np.random.default_rng(1)
    a = conf.facs.asymmetry
    seen = []
    for _ in range(200):
        choice = sample_expression(conf, "happy", rng)
        if choice.unit_weights is None:
            continue
        left, right = choice.unit_weights["MouthLeftPullUp"], choice.unit_weights["MouthRightPullUp"]
        if max(left, right) < conf.facs.peak_max:
            ratio = left / right
            assert (1 - a) / (1 + a) - 1e-9 <= ratio <= (1 + a) / (1 - a) + 1e-9
            seen.append(ratio)
    assert np.std(seen) > 0.05  # the two sides really differ
    symmetric = _with_facs(conf, asymmetry=0.0, preset_share=0.0)
    choice = sample_expression(symmetric, "happy", rng)
    assert choice.unit_weights["MouthLeftPullUp"] == choice.unit_weights["MouthRightPullUp"]


def test_sample_frame_records_aus(conf: ExpressionParams) -> None:
    from sim2real_faces.render.plan import FrameJob, frame_seed
    from sim2real_faces.render.scene import SceneParams, metadata_row, sample_frame

    params = _with_facs(conf, preset_share=0.0)
    job = FrameJob(0, "angry_00000.png", "angry", 0, frame_seed(42, 0, 0))
    sample = sample_frame(job, SceneParams(), params)
    again = sample_frame(job, SceneParams(), params)
    assert sample.values == again.values and sample.unit_weights == again.unit_weights
    assert sample.values["expression"] == "facs"
    aus = parse_aus(sample.values["aus"])
    assert {"AU4", "AU7"} <= set(aus)
    row = metadata_row(job, {"identity": "x"}, sample)
    assert row["aus"] == sample.values["aus"] and row["seed"] == job.seed
    presets = dataclasses.replace(conf, sampler="presets", facs=None)
    plain = sample_frame(job, SceneParams(), presets)
    assert plain.unit_weights is None and plain.values["aus"] == ""
    # the other randomizers' streams do not depend on the expression sampler
    assert plain.values["head_yaw_deg"] == sample.values["head_yaw_deg"]


# ------------------------------------------------------------------------------------- bad params


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda p: _with_class(p, "angry", core={**p.facs.classes["angry"].core, "AU99": (0.5, 1.0)}),
         "expressions.facs.classes.angry.core: unknown AU 'AU99'"),
        (lambda p: _with_class(p, "happy", optional={"AU25": OptionalAU(1.5, (0.5, 1.0))}),
         "expressions.facs.classes.happy.optional.AU25.probability = 1.5"),
        (lambda p: _with_class(p, "happy", optional={"AU25": OptionalAU(-0.1, (0.5, 1.0))}),
         "expressions.facs.classes.happy.optional.AU25.probability"),
        (lambda p: _with_class(p, "crying", core={"AU1": (-0.2, 1.0)}),
         r"expressions.facs.classes.crying.core.AU1 = \[-0.2, 1.0\]: intensities must be >= 0"),
        (lambda p: _with_class(p, "crying", optional={"AU43": OptionalAU(0.5, (0.5, -1.0))}),
         "expressions.facs.classes.crying.optional.AU43.intensity"),
        (lambda p: _with_class(p, "crying", core={"AU1": (1.0, 0.5)}), "is inverted"),
        (lambda p: _with_class(p, "crying", core={"AU1": (1.0, 2.5)}), "exceeds expressions.facs.peak_max"),
        (lambda p: _with_class(p, "crying", core={}), "crying.core is empty"),
        (lambda p: _with_facs(p, peak_max=3.0), "expressions.facs.peak_max = 3.0"),
        (lambda p: _with_facs(p, preset_share=1.2), "expressions.facs.preset_share = 1.2"),
        (lambda p: _with_facs(p, strength=(0.5, 1.2)), "expressions.facs.strength"),
        (lambda p: _with_facs(p, asymmetry=0.8), "expressions.facs.asymmetry = 0.8"),
        (lambda p: _with_facs(p, classes={k: v for k, v in p.facs.classes.items() if k != "happy"}),
         "expressions.facs.classes has"),
        (lambda p: dataclasses.replace(p, facs=None), "expressions.sampler = facs needs"),
    ],
)  # fmt: skip
def test_bad_params(conf: ExpressionParams, change, key: str) -> None:
    with pytest.raises(FacsParamsError, match=key) as info:
        validate_params(change(conf))
    assert isinstance(info.value, ParamsError)


def test_bad_params_from_yaml() -> None:
    params = compose([], REPO / "conf")["expressions"]
    params["facs"]["classes"]["angry"]["optional"]["AU5"] = {"probability": 0.5}
    with pytest.raises(ParamsError, match=r"expressions.facs.classes.angry.optional.AU5.intensity"):
        from_dict(ExpressionParams, params, "expressions")
    params = compose([], REPO / "conf")["expressions"]
    params["sampler"] = "random"
    with pytest.raises(ParamsError, match=r"expressions\.sampler"):
        from_dict(ExpressionParams, params, "expressions")


# ----------------------------------------------------------------------------------- mesh folding

FOLD_LIMIT = 0.015  # share of skin triangles that may turn over (MakeHuman's own range: up to 0.3%)


def _folded_share(human, rest, weights: dict[str, float]) -> float:
    def normals(v: np.ndarray, tri: np.ndarray) -> np.ndarray:
        return np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])

    posed = human.pose(weights, 1.0)[0]
    n0 = normals(rest.vertices.astype(np.float64), rest.triangles)
    n1 = normals(posed.vertices.astype(np.float64), posed.triangles)
    return float(np.mean(np.sum(n0 * n1, axis=1) < 0))


def test_configured_peaks_do_not_fold_the_skin(conf: ExpressionParams) -> None:
    """Every AU at its highest configured intensity (with full asymmetry, capped at peak_max)."""
    from sim2real_faces.humans import Human, study6_identities

    human = Human.build(study6_identities()[2])
    rest = human.pose({}, 0.0)[0]
    facs = conf.facs
    peak: dict[str, float] = {}
    for proto in facs.classes.values():
        for au, (_, hi) in proto.core.items():
            peak[au] = max(peak.get(au, 0.0), hi * facs.strength[1])
        for au, opt in proto.optional.items():
            peak[au] = max(peak.get(au, 0.0), opt.intensity[1] * facs.strength[1])
    for au, value in peak.items():
        weights = au_unit_weights({au: value}, {au: facs.asymmetry}, facs.peak_max)
        assert _folded_share(human, rest, weights) <= FOLD_LIMIT, (au, value)
    # the check sees folding: the lip tightener at the hard ceiling folds the lips
    assert _folded_share(human, rest, au_unit_weights({"AU23": 2.0}, {}, 2.0)) > FOLD_LIMIT


# ------------------------------------------------------------------------- AU -> MediaPipe response

_RENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import cv2
    from sim2real_faces.humans import ExpressionParams, Human, study6_identities
    from sim2real_faces.compose import load_composed
    from sim2real_faces.humans.facs import au_unit_weights
    from sim2real_faces.render.randomizers import BackgroundParams, HeadRotationParams, PostParams
    from sim2real_faces.render.plan import FrameJob
    from sim2real_faces.render.scene import SceneParams, SceneRenderer, sample_frame
    out, level, aus = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split(",")
    params = SceneParams(width=820, height=571, background=BackgroundParams(enabled=False),
                         head=HeadRotationParams(pitch_deg=(0, 0), yaw_deg=(0, 0)),
                         post=PostParams(blur_sigma=(0, 0), noise_sigma=(0, 0), jpeg_quality=(100, 100),
                                         grayscale_probability=0.0))
    human = Human.build(study6_identities()[2])
    renderer = SceneRenderer(params)
    presets = load_composed(ExpressionParams, "expressions", ("expressions=presets",))
    sample = sample_frame(FrameJob(0, "x.png", "happy", 0, 7), params, presets)
    sample.values.update({"place_x": 0.0, "place_y": 0.0, "view_height_dm": 3.2, "tears": 0,
                          "light_ambient": 0.3, "light_left_intensity": 1.5, "light_right_intensity": 1.0})
    for name, weights in [("neutral", {})] + [(au, au_unit_weights({au: level}, {}, 2.0)) for au in aus]:
        cv2.imwrite(str(out / f"{name}.png"), renderer.render(human, weights, sample)[:, :, ::-1])
    """
)

_ANALYSE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import cv2
    from sim2real_faces.faces import FaceAnalyzer, FaceParams
    out = {}
    with FaceAnalyzer(FaceParams()) as analyzer:
        for path in sorted(Path(sys.argv[1]).glob("*.png")):
            faces = analyzer.analyze(cv2.imread(str(path))[:, :, ::-1].copy())
            out[path.stem] = faces[0].blendshapes if faces else None
    print(json.dumps(out))
    """
)

# AU -> the blendshapes it must raise (left/right averaged)
EXPECTED = {
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU4": ("browDownLeft", "browDownRight"),
    "AU1": ("browInnerUp",),
    "AU26": ("jawOpen",),
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),
}


def _child(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_each_au_raises_its_blendshape(tmp_path: Path, conf: ExpressionParams) -> None:
    """Neutral face vs the same face with one AU at the configured peak; MediaPipe must see the AU.

    At intensity 1.0 (MakeHuman's own range) AU1 and AU26 move browInnerUp / jawOpen by less than
    0.03: the peaks above 1.0 are what makes them visible.
    """
    _child(_RENDER, str(tmp_path), str(conf.facs.peak_max), ",".join(EXPECTED))
    scores = json.loads(_child(_ANALYSE, str(tmp_path)).strip().splitlines()[-1])
    assert all(scores[name] is not None for name in ("neutral", *EXPECTED)), scores.keys()

    def mean(name: str, shapes: tuple[str, ...]) -> float:
        return float(np.mean([scores[name][s] for s in shapes]))

    rises = {au: mean(au, shapes) - mean("neutral", shapes) for au, shapes in EXPECTED.items()}
    assert rises["AU12"] > 0.3, rises
    for au in ("AU4", "AU1", "AU26", "AU45"):
        assert rises[au] > 0.06, rises


# --------------------------------------------------------------------------------- expression gap


def _gap_tables(folder: Path) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for cls, smile in (("angry", 0.1), ("crying", 0.0), ("happy", 0.3)):
        for i in range(20):
            rows.append({"file": f"{cls}_{i:05d}.png", "face": 0, "class": cls,
                         "bs_mouthSmileLeft": smile + 0.01 * i, "bs_jawOpen": 0.05})  # fmt: skip
    features = pd.DataFrame(rows)
    extra = features.iloc[:1].assign(face=1, bs_mouthSmileLeft=0.9)  # a second, dropped face
    pd.concat([features, extra]).to_csv(folder / "features.csv", index=False)
    features[features.index % 2 == 0][["file", "face", "class"]].to_csv(folder / "filtered.csv", index=False)
    real = pd.DataFrame(
        {
            "class": ["angry", "crying", "happy"] * 10 + ["happy"],
            "status": ["ok"] * 30 + ["no_face"],
            "bs_mouthSmileLeft": [*rng.uniform(0.5, 0.7, 30), float("nan")],
            "bs_jawOpen": [0.1] * 30 + [float("nan")],
        }
    )
    real.to_csv(folder / "real.csv", index=False)


def test_gap_metrics(tmp_path: Path) -> None:
    from sim2real_faces.expression_gap import (
        gap_metrics,
        markdown_table,
        plot_records,
        real_faces,
        synthetic_faces,
    )

    _gap_tables(tmp_path)
    columns = ["bs_mouthSmileLeft", "bs_jawOpen"]
    synthetic = synthetic_faces(tmp_path / "features.csv", tmp_path / "filtered.csv", columns)
    real = real_faces(tmp_path / "real.csv", columns)
    assert len(synthetic) == 30 and len(real) == 30
    metrics = gap_metrics(synthetic, real, columns)
    happy = metrics["per_class"]["happy"]["bs_mouthSmileLeft"]
    assert happy["synthetic"]["mean"] == pytest.approx(0.3 + 0.01 * np.mean(range(0, 20, 2)))
    assert happy["gap"] == pytest.approx(happy["synthetic"]["mean"] - happy["real"]["mean"])
    assert metrics["per_class"]["angry"]["bs_jawOpen"]["gap"] == pytest.approx(-0.05)
    assert metrics["n"] == {"synthetic": {"angry": 10, "crying": 10, "happy": 10},
                            "real": {"angry": 10, "crying": 10, "happy": 10}}  # fmt: skip
    assert len(plot_records(metrics)) == 3 * 2 * 2
    assert "| mouthSmileLeft |" in markdown_table(metrics)


def test_gap_errors(tmp_path: Path) -> None:
    import pandas as pd

    from sim2real_faces.expression_gap import (
        ExpressionGapError,
        GapParams,
        real_faces,
        synthetic_faces,
        validate_params,
    )

    _gap_tables(tmp_path)
    with pytest.raises(ExpressionGapError, match="lacks column"):
        real_faces(tmp_path / "real.csv", ["bs_browInnerUp"])
    filtered = pd.read_csv(tmp_path / "filtered.csv")
    filtered.loc[0, "face"] = 3  # a kept face the features table does not have
    filtered.to_csv(tmp_path / "filtered.csv", index=False)
    with pytest.raises(ExpressionGapError, match="out of step"):
        synthetic_faces(tmp_path / "features.csv", tmp_path / "filtered.csv", ["bs_jawOpen"])
    with pytest.raises(ParamsError, match=r"expression_gap\.columns"):
        validate_params(GapParams(columns=["jawOpen"]))
    with pytest.raises(ParamsError, match=r"expression_gap\.columns is empty"):
        validate_params(GapParams(columns=[]))


def test_gap_stage_writes_aggregates_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from stages import expression_gap

    _gap_tables(tmp_path)
    (tmp_path / "data" / "synthetic").mkdir(parents=True)
    (tmp_path / "data" / "real").mkdir(parents=True)
    (tmp_path / "features.csv").rename(tmp_path / "data" / "synthetic" / "features.csv")
    (tmp_path / "filtered.csv").rename(tmp_path / "data" / "synthetic" / "filtered.csv")
    (tmp_path / "real.csv").rename(tmp_path / "data" / "real" / "features.csv")
    columns = compose([], REPO / "conf")["expression_gap"]["columns"]
    assert "bs_mouthSmileLeft" in columns and "bs_jawOpen" in columns
    params = {"expression_gap": {"columns": ["bs_mouthSmileLeft", "bs_jawOpen"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    expression_gap.main()
    metrics = json.loads((tmp_path / "metrics" / "expression_gap.json").read_text())
    assert metrics["columns"] == ["bs_mouthSmileLeft", "bs_jawOpen"] and metrics["mean_abs_gap"] > 0
    assert (tmp_path / "plots" / "expression_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = json.loads((tmp_path / "plots" / "expression_gap.json").read_text())
    assert {r["domain"] for r in records} == {"synthetic", "real"}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "expression_gap.json",
        "expression_gap.png",
    ]
