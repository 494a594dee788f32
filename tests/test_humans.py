"""Tests of sim2real_faces.humans (MakeHuman people, proxies, pose units, identities)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from sim2real_faces.compose import load_composed
from sim2real_faces.humans import (
    LIP_CORNER_VERTICES,
    ExpressionParams,
    Human,
    HumanParams,
    HumanParamsError,
    IdentitySpec,
    UnknownPresetError,
    formats,
    list_presets,
    load_preset,
    resolve_preset,
    rig,
    sample_expression,
    sample_identities,
    study6_identities,
    validate_expression_params,
    validate_human_params,
)
from sim2real_faces.humans.human import morph
from sim2real_faces.humans.identities import macro_targets

# Section expressions of the choice expressions=presets (conf/expressions/presets.yaml).
PRESETS = load_composed(ExpressionParams, "expressions", ("expressions=presets",))


@pytest.fixture(scope="module")
def study6() -> list[IdentitySpec]:
    return study6_identities()


@pytest.fixture(scope="module")
def young_female(study6: list[IdentitySpec]) -> Human:
    return Human.build(study6[4])  # young asian female


@pytest.fixture(scope="module")
def old_male(study6: list[IdentitySpec]) -> Human:
    return Human.build(dataclasses.replace(study6[3], region="full"))  # old caucasian male, whole body


# ------------------------------------------------------------------------------------ data files
def test_base_mesh_keeps_only_body_triangles() -> None:
    mesh = formats.base_mesh()
    assert mesh.vertices.shape == (19158, 3)
    assert mesh.body_quads == 13378
    assert mesh.body_triangles.shape == (26756, 3)
    # no skin triangle touches helper or joint geometry
    helpers = np.concatenate(
        [v for g, v in mesh.group_vertices.items() if g.startswith(("helper-", "joint-"))]
    )
    assert not np.isin(mesh.body_triangles, helpers).any()
    # the face looks along +z, y is up, decimetres
    assert -9.0 < mesh.vertices[:, 1].min() < -8.0 and 8.0 < mesh.vertices[:, 1].max() < 9.0


def test_targets_are_zero_based_and_universal_average_is_empty() -> None:
    target = formats.load_target("core/targets/nose/nose-trans-up.target")
    assert target.indices.min() >= 0 and target.deltas.shape == (len(target.indices), 3)
    empty = formats.load_target(
        "core/targets/macrodetails/universal-female-young-averagemuscle-averageweight.target"
    )
    assert len(empty.indices) == 0


def test_mhclo_with_tag_inside_vertex_block() -> None:
    proxy = formats.load_proxy("assets/eyebrows/eyebrow010/eyebrow010.mhclo")
    assert proxy.fit.shape[0] == len(proxy.obj.vertices) == 124
    assert np.allclose(proxy.fit.sum(axis=1), 1.0, atol=0.02)


def test_bvh_is_read_as_z_up_like_makehuman() -> None:
    anim = formats.load_bvh(formats.FACE_POSEUNITS_BVH)
    assert anim.z_up  # MakeHuman's guess uses lowerleg02.L first; the head's children point forward


# --------------------------------------------------------------------------------------- morphing
def test_morph_is_deterministic_and_depends_on_macros(study6: list[IdentitySpec]) -> None:
    a = morph(study6[0])
    assert np.array_equal(a, morph(study6[0]))
    assert not np.allclose(a, formats.base_mesh().vertices)
    assert np.abs(a - morph(study6[2])).max() > 0.05
    weights = macro_targets(study6[2])  # old caucasian female, 75 years: MakeHuman age 0.885 -> old 0.769
    assert weights["core/targets/macrodetails/caucasian-female-old.target"] == pytest.approx(0.769, abs=0.001)
    assert weights["core/targets/macrodetails/caucasian-female-young.target"] == pytest.approx(
        0.231, abs=0.001
    )
    assert not any("averagemuscle-averageweight" in k for k in weights)


def test_detail_modifiers_change_the_face_only() -> None:
    spec = study6_identities()[1]
    detailed = dataclasses.replace(spec, details={"nose/nose-scale-horiz-decr|incr": 0.8})
    diff = np.linalg.norm(morph(detailed) - morph(spec), axis=1)
    moved = formats.base_mesh().vertices[diff > 1e-6]
    assert len(moved) > 20 and moved[:, 1].min() > 6.0  # only head vertices move


def test_proxies_follow_the_morph(young_female: Human, old_male: Human) -> None:
    groups = formats.base_mesh().group_vertices
    for human in (young_female, old_male):
        eyes = human.part_rest("eyes")
        for side, group in (("left", "helper-l-eye"), ("right", "helper-r-eye")):
            socket = human.base_vertices[groups[group]].mean(axis=0)  # the eye helper of the morphed skin
            ball = eyes[(eyes[:, 0] > 0) == (side == "left")]
            assert np.linalg.norm(human.eye_centers[side][:2] - socket[:2]) < 0.03
            assert (ball.min(axis=0) < socket).all() and (socket < ball.max(axis=0)).all()
    # the two people's eyes are far apart in space, yet each sits in its own socket
    assert np.linalg.norm(young_female.eye_center - old_male.eye_center) > 0.2
    teeth = old_male.part_rest("teeth").mean(axis=0)
    assert abs(teeth[0]) < 0.05 and abs(teeth[1] - old_male.mouth_center[1]) < 0.3


def test_parts_are_well_formed(young_female: Human) -> None:
    parts = {p.name: p for p in young_female.neutral()}
    assert {"skin", "eyes", "eyelashes", "teeth", "tongue", "hair"} <= set(parts)
    assert "eyebrows" not in parts  # painted into the skin by default
    for part in parts.values():
        assert part.vertices.dtype == np.float32 and part.triangles.dtype == np.int32
        assert part.triangles.max() < len(part.vertices)
        lengths = np.linalg.norm(part.normals, axis=1)
        assert np.allclose(lengths[lengths > 0], 1.0, atol=1e-4)
        assert part.albedo.shape in ((3,), (len(part.vertices), 3))
        assert float(part.albedo.min()) >= 0.0 and float(part.albedo.max()) <= 1.0
    skin_colours = parts["skin"].albedo
    assert skin_colours.ndim == 2 and len(np.unique(skin_colours, axis=0)) > 1  # painted brows
    for name in young_female.part_names:
        weights = young_female.skin_weights(name)
        assert np.allclose(np.asarray(weights.sum(axis=1)).ravel(), 1.0)


def test_proxy_eyebrows_mode(study6: list[IdentitySpec]) -> None:
    human = Human.build(dataclasses.replace(study6[0], eyebrow_mode="proxy", eyebrow_style="eyebrow010"))
    parts = {p.name: p for p in human.neutral()}
    # 124 vertices: the brow card has no uv seams (its repeated 'vt' lines hold the same values)
    assert len(parts["eyebrows"].vertices) == 124 and parts["skin"].albedo.shape == (3,)
    assert len(np.unique(human.part_source("eyebrows"))) == 124


# ---------------------------------------------------------------------------------------- posing
def _corners(human: Human, parts) -> np.ndarray:
    return parts[0].vertices[human.skin_rows(list(LIP_CORNER_VERTICES.values()))]


def test_laugh_raises_mouth_corners_and_cry_lowers_them(young_female: Human, old_male: Human) -> None:
    for human in (young_female, old_male):
        neutral = _corners(human, human.neutral())
        laugh = _corners(human, human.pose(load_preset("laugh01"), 1.0))
        half = _corners(human, human.pose(load_preset("laugh01"), 0.5))
        cry = _corners(human, human.pose(load_preset("cry01"), 1.0))
        assert (laugh[:, 1] - neutral[:, 1] > 0.03).all()  # > 3 mm up
        assert (half[:, 1] - neutral[:, 1] > 0).all() and (half[:, 1] < laugh[:, 1]).all()
        assert (cry[:, 1] - neutral[:, 1] < -0.01).all()
        assert (np.abs(laugh[:, 0]) > np.abs(neutral[:, 0])).all()  # and wider


def test_pose_moves_the_face_not_the_feet(old_male: Human) -> None:
    rest = old_male.part_rest("skin")
    posed = old_male.pose(resolve_preset("anger_open", PRESETS), 1.0)[0].vertices
    moved = np.linalg.norm(posed - rest, axis=1)
    feet = rest[:, 1] < -7.0
    assert feet.sum() > 100 and moved[feet].max() < 1e-5
    assert moved[rest[:, 1] > old_male.mouth_center[1] - 0.5].max() > 0.05


def _brow_dy(human: Human, unit: str) -> float:
    """Mean vertical motion of the 20 most moved skin vertices above the person's left eye."""
    rest = human.part_rest("skin")
    eye = human.eye_centers["left"]
    region = np.flatnonzero(
        (np.abs(rest[:, 0] - eye[0]) < 0.3) & (rest[:, 1] > eye[1] + 0.03) & (rest[:, 2] > eye[2])
    )
    d = human.pose({unit: 1.0})[0].vertices[region] - rest[region]
    top = np.argsort(-np.linalg.norm(d, axis=1))[:20]
    assert np.linalg.norm(d[top], axis=1).min() > 0.01, f"{unit} does not move the brow"
    return float(d[top, 1].mean())


def test_brow_units_move_brows_the_named_way(young_female: Human) -> None:
    # With the BVH misread as Y-up these rotate about the wrong axis and barely move vertically.
    assert _brow_dy(young_female, "LeftInnerBrowUp") > 0.03
    assert _brow_dy(young_female, "LeftOuterBrowUp") > 0.03
    assert _brow_dy(young_female, "LeftBrowDown") < -0.03


def test_upper_lid_closed_closes_only_that_eye(young_female: Human) -> None:
    rest = young_female.part_rest("skin")
    posed = young_female.pose({"LeftUpperLidClosed": 1.0})[0].vertices
    d = posed - rest
    for side, expect_moving in (("left", True), ("right", False)):
        eye = young_female.eye_centers[side]
        near = (np.linalg.norm(rest[:, :2] - eye[:2], axis=1) < 0.2) & (rest[:, 2] > eye[2])
        if expect_moving:
            assert d[near, 1].min() < -0.05 and d[near, 1].max() < 0.01  # the lid comes down
        else:
            assert np.abs(d[near]).max() < 1e-6


def test_intensity_zero_and_deltas(young_female: Human) -> None:
    weights = load_preset("smile02")
    neutral = young_female.neutral()
    for a, b in zip(young_female.pose(weights, 0.0), neutral, strict=False):
        assert np.array_equal(a.vertices, b.vertices)
    deltas = young_female.expression_deltas(weights, 0.7)
    posed = {p.name: p.vertices for p in young_female.pose(weights, 0.7)}
    for part in neutral:
        assert np.allclose(part.vertices + deltas[part.name], posed[part.name], atol=1e-5)
    assert "oris05" in young_female.bone_rotations(weights, 0.7)
    with pytest.raises(HumanParamsError):
        young_female.pose(weights, -0.5)


def test_tears_lie_on_the_cheeks(young_female: Human) -> None:
    parts = young_female.pose(load_preset("cry01"), 1.0, tears=True)
    tears = [p for p in parts if p.name == "tears"]
    assert len(tears) == 1 and len(tears[0].triangles) > 20 and tears[0].opacity < 1.0
    v = tears[0].vertices
    assert v[:, 1].max() < young_female.eye_center[1] and v[:, 1].min() > young_female.mouth_center[1] - 0.3
    assert (v[:, 0] < 0).any() and (v[:, 0] > 0).any()  # both cheeks
    assert not any(p.name == "tears" for p in young_female.pose(load_preset("cry01"), 1.0))


# ----------------------------------------------------------------------------------- expressions
def test_every_makehuman_preset_loads() -> None:
    names = list_presets()
    assert {"anger01", "cry01", "laugh01", "laugh02", "smile01", "smile05", "sad02"} <= set(names)
    units = set(rig.rig_template().unit_names)
    for name in names:
        weights = load_preset(name)
        assert weights and set(weights) <= units and all(0 <= w <= 1 for w in weights.values())
        rig.blend_units(weights)


def test_conf_expression_presets_resolve() -> None:
    params = PRESETS
    validate_expression_params(params)
    strong = resolve_preset("anger_brows", params)
    assert strong["LeftBrowDown"] == 1.0 and strong["NoseWrinkler"] == load_preset("anger01")["NoseWrinkler"]
    rng = np.random.default_rng(3)
    choices = [sample_expression(params, "happy", rng) for _ in range(20)]
    assert all(c.preset in params.classes["happy"] and 0.2 <= c.intensity <= 1.0 for c in choices)
    assert not any(c.tears for c in choices)
    crying = [sample_expression(params, "crying", rng).tears for _ in range(200)]
    assert 60 < sum(crying) < 140  # P = 0.5


def test_bad_expression_params_stop_with_clear_errors() -> None:
    with pytest.raises(UnknownPresetError, match="nonexistent01"):
        load_preset("nonexistent01")
    with pytest.raises(UnknownPresetError, match="nonexistent01"):
        validate_expression_params(dataclasses.replace(PRESETS, classes={"angry": ["nonexistent01"]}))
    with pytest.raises(HumanParamsError, match="inverted"):
        validate_expression_params(dataclasses.replace(PRESETS, intensity=(1.0, 0.2)))
    with pytest.raises(HumanParamsError, match="no presets"):
        validate_expression_params(dataclasses.replace(PRESETS, classes={"angry": []}))
    from sim2real_faces.humans import CustomPreset

    bad_unit = dataclasses.replace(
        PRESETS,
        classes={"angry": ["x"]},
        custom={"x": CustomPreset(base="anger01", units={"BrowsDown": 1.0})},
    )
    with pytest.raises(UnknownPresetError, match="BrowsDown"):
        validate_expression_params(bad_unit)
    cycle = dataclasses.replace(
        PRESETS, classes={"angry": ["a"]}, custom={"a": CustomPreset(base="b"), "b": CustomPreset(base="a")}
    )
    with pytest.raises(HumanParamsError, match="cycle"):
        validate_expression_params(cycle)
    with pytest.raises(HumanParamsError, match="probability"):
        validate_expression_params(dataclasses.replace(PRESETS, tears={"crying": 1.5}))
    with pytest.raises(HumanParamsError, match="no such class"):
        validate_expression_params(dataclasses.replace(PRESETS, tears={"sobbing": 0.5}))
    with pytest.raises(HumanParamsError, match="Unknown expression class"):
        sample_expression(PRESETS, "surprised", np.random.default_rng(0))


# ------------------------------------------------------------------------------------ identities
def test_sampling_is_deterministic_and_balanced() -> None:
    params = HumanParams(count=24)
    a = sample_identities(params, 11)
    b = sample_identities(params, 11)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert json.dumps([s.to_dict() for s in a]) != json.dumps(
        [s.to_dict() for s in sample_identities(params, 12)]
    )
    labels = [s.name.split("_")[1] for s in a]
    assert {lab: labels.count(lab) for lab in set(labels)} == {
        "african": 6,
        "asian": 6,
        "caucasian": 6,
        "mixed": 6,
    }
    assert sum(s.gender_label == "female" for s in a) == 12
    ages = np.array([s.age_years for s in a])
    assert ages.min() >= 20 and ages.max() <= 80 and np.histogram(ages, bins=3, range=(20, 80))[0].min() >= 6
    for spec in a:
        assert abs(sum(spec.ethnicity.values()) - 1.0) < 1e-3
        assert not any(k.startswith(("mouth/mouth-angles", "eyebrows/eyebrows-angle")) for k in spec.details)
        assert IdentitySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert len({s.name for s in a}) == 24


def test_study6_is_a_named_set() -> None:
    specs = sample_identities(HumanParams(identity_set="study6"), 0)
    assert [s.name for s in specs] == [
        "black_female",
        "black_male",
        "old_caucasian_female",
        "old_caucasian_male",
        "young_asian_female",
        "young_asian_male",
    ]
    assert (
        specs[0].ethnicity_label == "african" and specs[3].age_years >= 70 and specs[5].gender_label == "male"
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"count": -3}, "count"),
        ({"count": 0}, "count"),
        ({"age_years": (70.0, 30.0)}, "inverted"),
        ({"detail_range": (0.5, -0.5)}, "inverted"),
        ({"detail_count": (10, 2)}, "inverted"),
        ({"muscle": (0.2, 1.5)}, "within"),
        ({"ethnicity_mix": {"martian": 1.0}}, "unknown ethnicity"),
        ({"hair_styles": {"female": ["mohawk"], "male": ["none"]}}, "mohawk"),
        ({"eyebrows": ["eyebrow999"]}, "eyebrow999"),
        (
            {
                "hair_color_weights": {
                    "african": {"green": 1.0},
                    "asian": {"black": 1},
                    "caucasian": {"black": 1},
                }
            },
            "green",
        ),
    ],
)
def test_bad_human_params_stop_with_clear_errors(change: dict, match: str) -> None:
    with pytest.raises(HumanParamsError, match=match):
        validate_human_params(dataclasses.replace(HumanParams(), **change))


def test_bad_identity_specs_stop_with_clear_errors(study6: list[IdentitySpec]) -> None:
    spec = study6[0]
    with pytest.raises(HumanParamsError, match="unknown ethnicity"):
        Human.build(dataclasses.replace(spec, ethnicity={"martian": 1.0}))
    with pytest.raises(HumanParamsError, match="age"):
        Human.build(dataclasses.replace(spec, age_years=120.0))
    with pytest.raises(HumanParamsError, match="modifier"):
        Human.build(dataclasses.replace(spec, details={"nose/no-such-modifier": 0.3}))
    with pytest.raises(HumanParamsError, match="hair style"):
        Human.build(dataclasses.replace(spec, hair_style="mohawk"))
