from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from sim2real_faces.compose import compose
from sim2real_faces.params import ParamsError, from_dict, load_section

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
