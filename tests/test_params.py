from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml

from sim2real_faces.compose import compose
from sim2real_faces.params import (
    Count,
    ParamsError,
    PositiveFloat,
    Probability,
    Range,
    check_ranges,
    from_dict,
    load_section,
)

REPO = Path(__file__).resolve().parents[1]


def test_params_yaml_is_the_composition_of_conf():
    committed = yaml.safe_load((REPO / "params.yaml").read_text())
    assert committed == compose(conf_dir=REPO / "conf"), "params.yaml is stale: run `make params`"


@pytest.mark.parametrize("profile", ["paper", "tiny"])
def test_profiles_compose_and_keep_every_section(profile):
    default = compose(conf_dir=REPO / "conf")
    composed = compose([f"profile={profile}"], conf_dir=REPO / "conf")
    assert composed["profile_name"] == profile
    assert set(composed) == set(default)


@dataclass(frozen=True)
class Inner:
    size: tuple[int, int]
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    lr: float
    inner: Inner
    path: Path | None = None
    tags: list[str] = field(default_factory=list)


def test_loader_builds_nested_typed_sections():
    params = {"train": {"x": {"lr": 1, "inner": {"size": [3, 4]}, "path": "a/b"}}}
    loaded = load_section(Outer, "train.x", params)
    assert loaded == Outer(lr=1.0, inner=Inner(size=(3, 4)), path=Path("a/b"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"lr": 1, "inner": {"size": [3, 4]}, "typo": 1}, "unknown key"),
        ({"inner": {"size": [3, 4]}}, "'x.lr' is missing"),
        ({"lr": "fast", "inner": {"size": [3, 4]}}, "must be a number"),
        ({"lr": 1, "inner": {"size": [3]}}, "must have 2 items"),
        ({"lr": 1, "inner": {"size": [3, 4], "mode": "c"}}, "choose one of"),
    ],
)
def test_loader_rejects_bad_values_naming_the_key(data, message):
    with pytest.raises(ParamsError, match=message):
        from_dict(Outer, data, "x")


def test_missing_section_is_named():
    with pytest.raises(ParamsError, match=r"no section 'train\.y'"):
        load_section(Outer, "train.y", {"train": {}})


@dataclass(frozen=True)
class Bounded:
    share: Probability
    workers: Count
    sizes: list[Annotated[int, Range(8, 64)]]
    scale: PositiveFloat = 1.0
    weight: Probability | None = None

    def __post_init__(self) -> None:
        check_ranges(self, "b")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"share": 1.5}, r"'b\.share' = 1\.5 is out of range; allowed: \[0, 1\] \(a probability"),
        ({"share": -1.0}, r"'b\.share' = -1\.0 is out of range"),
        ({"share": float("nan")}, r"'b\.share' = nan; it must be a finite number"),
        ({"share": float("-inf")}, r"finite number"),
        ({"workers": 0}, r"'b\.workers' = 0 is out of range; allowed: >= 1 \(a count\)"),
        ({"sizes": [8, 65]}, r"'b\.sizes\[1\]' = 65 is out of range; allowed: \[8, 64\]"),
        ({"scale": 0.0}, r"'b\.scale' = 0\.0 is out of range; allowed: > 0 \(a size\)"),
        ({"weight": 2.0}, r"'b\.weight' = 2\.0"),
    ],
)
def test_ranges_and_finite_numbers_are_checked_at_load(data, message):
    good = {"share": 0.5, "workers": 1, "sizes": [8, 64]}
    assert from_dict(Bounded, good, "b") == Bounded(0.5, 1, [8, 64])
    with pytest.raises(ParamsError, match=message):
        from_dict(Bounded, {**good, **data}, "b")


def test_ranges_hold_for_sections_built_in_code():
    with pytest.raises(ParamsError, match=r"b\.share"):
        Bounded(share=2.0, workers=1, sizes=[])
    assert Bounded(share=1.0, workers=3, sizes=[16], weight=None).weight is None


def test_nan_is_refused_for_plain_floats_too():
    with pytest.raises(ParamsError, match=r"'x\.lr' = nan; it must be a finite number"):
        from_dict(Outer, {"lr": float("nan"), "inner": {"size": [3, 4]}}, "x")


def test_post_init_value_errors_become_params_errors_naming_the_section():
    @dataclass(frozen=True)
    class Pair:
        low: float
        high: float

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ValueError(f"low {self.low} > high {self.high}")

    with pytest.raises(ParamsError, match=r"params 'p': low 2\.0 > high 1\.0"):
        from_dict(Pair, {"low": 2.0, "high": 1.0}, "p")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("filter", "min_confidence", 1.5),
        ("face", "crop_size", 0),
        ("real", "workers", 0),
        ("train.mlp", "l2", -0.01),
    ],
)
def test_committed_sections_reject_out_of_range_values(section, key, value):
    from sim2real_faces.faces import FaceParams
    from sim2real_faces.training.mlp import MlpParams
    from stages.filter import FilterParams
    from stages.prepare_real import RealParams

    cls = {"filter": FilterParams, "face": FaceParams, "real": RealParams, "train.mlp": MlpParams}[section]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert load_section(cls, section, params)
    node = params
    for part in section.split(".")[:-1]:
        node = node[part]
    node[section.split(".")[-1]][key] = value
    with pytest.raises(ParamsError, match=rf"'{section}\.{key}' = {value}"):
        load_section(cls, section, params)
