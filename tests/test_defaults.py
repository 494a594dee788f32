"""conf/ is the one source of every params value.

For every profile, each section of the composed params loads into the dataclass its stage reads; for
the default profile, every default a dataclass declares (a field default, or a nested section's
own defaults) equals the composed value. A dataclass may carry no defaults at all. And the classes
rendered (``expressions.classes``) must be :data:`sim2real_faces.CLASSES`, checked when params load.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml

from sim2real_faces import CLASSES
from sim2real_faces.compose import compose
from sim2real_faces.params import ParamsError, from_dict, load_params, load_section

# Section of params.yaml -> "module:Class" that loads it (grep `load_section(` in stages/ and
# sim2real_faces/). Modules move: this table is the one place to update.
SECTIONS: dict[str, str] = {
    "face": "sim2real_faces.faces:FaceParams",
    "real": "stages.prepare_real:RealParams",
    "humans": "sim2real_faces.humans:HumanParams",
    "expressions": "sim2real_faces.humans:ExpressionParams",
    "generate": "sim2real_faces.render.dataset:GenerateParams",
    "unity": "sim2real_faces.unity:UnityParams",
    "downscale": "sim2real_faces.render.downscale:DownscaleParams",
    "extract": "stages.extract:ExtractParams",
    "features": "sim2real_faces.faces:FeatureParams",
    "filter": "stages.filter:FilterParams",
    "split": "sim2real_faces.training:SplitParams",
    "train.mlp": "sim2real_faces.training:MlpParams",
    "train.mobilenetv2": "sim2real_faces.training:CnnParams",
    "train.vgg16": "sim2real_faces.training:CnnParams",
    "train.fusion": "sim2real_faces.training:FusionParams",
    "evaluate": "sim2real_faces.evaluation:EvaluateParams",
    "expression_gap": "sim2real_faces.expression_gap:GapParams",
}
SCALARS = {"seed", "profile_name"}  # top-level values that are no section
PROFILES = ("default", "paper", "tiny")

REPO = Path(__file__).resolve().parents[1]


def section_class(section: str) -> type:
    module, name = SECTIONS[section].split(":")
    return getattr(importlib.import_module(module), name)


def get(data: Mapping[str, Any], section: str) -> Any:
    for part in section.split("."):
        data = data[part]
    return data


_COMPOSED: dict[str, dict[str, Any]] = {}


def composed(profile: str) -> dict[str, Any]:
    if profile not in _COMPOSED:
        _COMPOSED[profile] = compose([f"profile={profile}"], REPO / "conf")
    return _COMPOSED[profile]


def _sections(data: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of the sections: top-level mappings, and those under ``train``."""
    names = set()
    for key, value in data.items():
        if prefix == "" and key in SCALARS:
            continue
        name = f"{prefix}{key}"
        names |= _sections(value, f"{name}.") if name == "train" else {name}
    return names


@pytest.mark.parametrize("profile", PROFILES)
def test_the_table_names_every_section(profile):
    assert _sections(composed(profile)) == set(SECTIONS), "update SECTIONS at the top of this file"


@pytest.mark.parametrize("section", sorted(SECTIONS))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_section_of_every_profile_loads(profile, section):
    assert dataclasses.is_dataclass(load_section(section_class(section), section, composed(profile)))


# ---------------------------------------------------------------------------------- defaults = conf


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds directly (``X``, ``X | None``, ``Annotated[X, ...]``), else None."""
    if typing.get_origin(hint) is Annotated:
        return _dataclass_of(typing.get_args(hint)[0])
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(hint) if a is not type(None)]
        return _dataclass_of(found[0]) if len(found) == 1 else None
    return hint if dataclasses.is_dataclass(hint) else None


def default_drift(cls: type, data: Mapping[str, Any], where: str) -> list[str]:
    """Every declared default of ``cls`` (and of its nested sections) that differs from ``data``."""
    loaded = from_dict(cls, data, where)
    hints = typing.get_type_hints(cls, include_extras=True)
    drift = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        value = getattr(loaded, f.name)
        if default is not dataclasses.MISSING and default != value:
            drift.append(f"{where}.{f.name}: code default {default!r}, conf {value!r}")
        nested = _dataclass_of(hints[f.name])
        if nested is not None and isinstance(data.get(f.name), Mapping):
            drift += default_drift(nested, data[f.name], f"{where}.{f.name}")
    return drift


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_code_defaults_are_the_default_profiles_conf(section):
    """``Params()`` (where it can be built) is the composed section; no field default disagrees."""
    cls, data = section_class(section), get(composed("default"), section)
    assert default_drift(cls, data, section) == []
    try:
        built = cls()
    except TypeError:  # some fields have no default: nothing more to compare
        return
    assert built == load_section(cls, section, composed("default"))


@dataclasses.dataclass(frozen=True)
class Inner:
    sigma: float = 0.0


@dataclasses.dataclass(frozen=True)
class Outer:
    size: int
    inner: Inner = dataclasses.field(default_factory=Inner)
    mode: str = "a"


def test_the_drift_check_finds_a_stale_default():
    data = {"size": 3, "inner": {"sigma": 1.0}, "mode": "a"}
    assert default_drift(Outer, data, "x") == [
        "x.inner: code default Inner(sigma=0.0), conf Inner(sigma=1.0)",
        "x.inner.sigma: code default 0.0, conf 1.0",
    ]


# ------------------------------------------------------------------------------- classes, once


def _params_file(tmp_path: Path, classes: dict[str, list[str]]) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["expressions"]["classes"] = classes
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_renders_exactly_the_projects_classes(profile):
    assert set(composed(profile)["expressions"]["classes"]) == set(CLASSES)
    assert load_params(REPO / "params.yaml")


def test_an_extra_class_stops_at_load_naming_where_to_add_it(tmp_path):
    classes = {c: ["laugh01"] for c in (*CLASSES, "surprised")}
    with pytest.raises(ParamsError, match=r"not in CLASSES \['surprised'\].*sim2real_faces/__init__\.py"):
        load_params(_params_file(tmp_path, classes))


def test_a_missing_class_stops_at_load_naming_where_to_add_it(tmp_path):
    classes = {c: ["laugh01"] for c in CLASSES[1:]}
    with pytest.raises(ParamsError, match=rf"missing \['{CLASSES[0]}'\].*conf/expressions/presets\.yaml"):
        load_params(_params_file(tmp_path, classes))


def test_the_generate_stage_stops_before_rendering_a_class_the_project_lacks(tmp_path, monkeypatch):
    from stages import generate

    _params_file(tmp_path, {c: ["laugh01"] for c in (*CLASSES, "surprised")})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match="surprised"):
        generate.main()
    assert not (tmp_path / "data").exists()
