"""Textured humans, data side: uv seams, map choice, baking, params and the GLB export."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sim2real_faces.humans import (
    Human,
    HumanParams,
    HumanParamsError,
    IdentitySpec,
    formats,
    load_preset,
    sample_identities,
    study6_identities,
    textures,
    validate_human_params,
)
from sim2real_faces.humans.textures import TextureParams
from sim2real_faces.params import ParamsError, from_dict
from sim2real_faces.unity import gltf

CONF = Path(__file__).resolve().parents[1] / "conf" / "humans" / "default.yaml"


@pytest.fixture(scope="module")
def humans_params() -> HumanParams:
    """The default YAML's humans section with small maps (fast)."""
    params = from_dict(HumanParams, yaml.safe_load(CONF.read_text()), "humans")
    assert params.textures is not None
    return dataclasses.replace(params, textures=dataclasses.replace(params.textures, max_size=128))


@pytest.fixture(scope="module")
def tex_params(humans_params: HumanParams) -> TextureParams:
    assert humans_params.textures is not None
    return humans_params.textures


@pytest.fixture(scope="module")
def textured(humans_params: HumanParams) -> list[IdentitySpec]:
    return sample_identities(dataclasses.replace(humans_params, count=4), 7)


@pytest.fixture(scope="module")
def human(textured: list[IdentitySpec]) -> Human:
    spec = next(s for s in textured if s.hair_style != "none")
    return Human.build(spec)


# -------------------------------------------------------------------------------------- uv seams
def test_obj_keeps_corner_uvs_and_seams_split() -> None:
    obj = formats.load_obj(formats.BASE_OBJ)
    assert obj.triangle_uv is not None and obj.uv_table is not None
    assert obj.triangle_uv.shape == obj.triangles.shape and obj.triangle_uv.min() >= 0
    body = obj.triangle_groups == obj.groups.index("body")
    split = formats.split_uv_seams(obj.triangles[body], obj.triangle_uv[body], obj.uv_table)
    n_body = len(np.unique(obj.triangles[body]))
    assert n_body < len(split.source) < 1.2 * n_body  # seams add copies, not a soup
    # every split triangle is the same corner triangle with the corner's own uv
    assert np.array_equal(split.source[split.triangles], obj.triangles[body])
    assert np.array_equal(split.uv[split.triangles], obj.uv_table[obj.triangle_uv[body]])


def _seam_twins(human: Human, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows of ``part`` that copy the same vertex with different uv."""
    source = human.part_source(part)
    order = np.argsort(source, kind="stable")
    same = source[order][1:] == source[order][:-1]
    a, b = order[:-1][same], order[1:][same]
    return a, b


def test_split_copies_move_together_under_morph_and_pose(human: Human) -> None:
    parts = {p.name: p for p in human.neutral()}
    for name in ("skin", "hair", "teeth"):
        a, b = _seam_twins(human, name)
        assert len(a) >= 2, f"{name} has no uv seams to test"
        uv = parts[name].uv
        assert uv is not None and len(uv) == len(parts[name].vertices)
        assert (np.abs(uv[a] - uv[b]).max(axis=1) > 0).all()  # twins differ in uv...
        rest = human.part_rest(name)
        assert np.array_equal(rest[a], rest[b])  # ...not in the morphed rest position
    a, b = _seam_twins(human, "skin")
    posed = human.pose(load_preset("laugh01"), 1.0)[0]
    moved = np.linalg.norm(posed.vertices - human.part_rest("skin"), axis=1)
    face = a[(moved[a] > 1e-3)]
    assert len(face) > 5, "laugh01 moves no seam vertex"
    assert np.array_equal(posed.vertices[a], posed.vertices[b])
    # normals from the welded mesh: no crease along the seams
    assert np.allclose(posed.normals[a], posed.normals[b], atol=1e-6)
    deltas = human.expression_deltas(load_preset("laugh01"), 1.0)["skin"]
    assert np.array_equal(deltas[a], deltas[b])
    weights = human.skin_weights("skin")
    assert (weights[a] != weights[b]).nnz == 0


def test_textures_off_geometry_is_unchanged(human: Human) -> None:
    plain = Human.build(dataclasses.replace(human.spec, textures=None))
    for p, q in zip(plain.neutral(), human.neutral(), strict=False):
        if p.name == q.name:
            assert p.texture is None
            assert np.array_equal(p.vertices, q.vertices) and np.array_equal(p.triangles, q.triangles)
    assert "cornea" not in plain.part_names and "cornea" in human.part_names


# ----------------------------------------------------------------------------------- map choice
@pytest.mark.parametrize(
    ("ethnicity", "gender", "age", "expected"),
    [
        ("african", "male", 25.0, ["young_darkskinned_male_diffuse"]),
        ("african", "male", 80.0, ["old_darkskinned_male_diffuse"]),
        ("african", "female", 75.0, ["young_darkskinned_female_diffuse"]),  # the only dark female map
        (
            "caucasian",
            "male",
            80.0,
            ["middleage_lightskinned_male_diffuse", "middleage_lightskinned_male_diffuse2"],
        ),
        ("caucasian", "female", 70.0, ["middleage_lightskinned_female_diffuse2"]),
        (
            "asian",
            "female",
            22.0,
            ["young_lightskinned_female_diffuse2", "young_lightskinned_female_diffuse3"],
        ),
        (
            "asian",
            "male",
            30.0,
            [
                "young_lightskinned_male_diffuse",
                "young_lightskinned_male_diffuse2",
                "young_lightskinned_male_diffuse3",
            ],
        ),
    ],
)
def test_skin_map_is_the_nearest_published_one(
    tex_params: TextureParams, ethnicity: str, gender: str, age: float, expected: list[str]
) -> None:
    names = set()
    for seed in range(12):
        spec = textures.choose_textures(
            tex_params, {ethnicity: 1.0}, gender, age, "none", np.random.default_rng(seed)
        )
        assert len(spec.skin_maps) == 1 and list(spec.skin_maps.values()) == [1.0]
        names.add(spec.labels()["skin_map"])
        assert spec.skin_material.endswith(f"_{ethnicity}_{gender}.mhmat")
    assert names == set(expected)  # ties are all drawn, nothing else is


def test_missing_upstream_maps_are_never_chosen() -> None:
    published = {m.rel for m in textures.skin_maps()}
    named = formats.load_mhmat("assets/skins/old_caucasian_male/old_caucasian_male.mhmat")["diffuseTexture"]
    assert named.endswith("old_lightskinned_male_diffuse.png")
    assert "assets/skins/textures/old_lightskinned_male_diffuse.png" not in published
    assert not any("special_suit" in rel for rel in published)
    assert len(published) == 12
    assert textures.hair_map("afro01") is None and textures.hair_map("bob01") is None
    assert textures.hair_map("short02") == "assets/hair/short02/short02_diffuse.png"
    assert len(textures.iris_maps()) == 9


def test_mixed_identities_blend_dark_and_light_maps(tex_params: TextureParams) -> None:
    rng = np.random.default_rng(0)
    mixed = textures.choose_textures(
        tex_params, {"african": 0.5, "caucasian": 0.5}, "male", 30.0, "none", rng
    )
    assert sorted(mixed.skin_maps.values()) == [0.5, 0.5]
    dark, light = (formats.load_rgba_image(rel, 128) for rel in sorted(mixed.skin_maps))
    flat = dataclasses.replace(mixed, tone_shift=0.0, tone_gain=(1.0, 1.0, 1.0))
    baked = textures.srgb8_to_linear(textures.bake_skin(flat, (0.5, 0.4, 0.3))[..., :3]).mean()
    means = [textures.srgb8_to_linear(m[..., :3]).mean() for m in (dark, light)]
    assert abs(baked - np.mean(means)) < 0.01  # half of each map, in linear light
    assert {"dark", "light"} == {"dark" if "darkskinned" in rel else "light" for rel in mixed.skin_maps}
    mostly = textures.choose_textures(
        tex_params, {"african": 0.9, "asian": 0.1}, "male", 30.0, "none", np.random.default_rng(0)
    )
    assert list(mostly.skin_maps.values()) == [1.0] and "darkskinned" in next(iter(mostly.skin_maps))


def test_tone_shift_moves_the_face_to_the_identity_albedo(tex_params: TextureParams) -> None:
    spec = textures.choose_textures(
        tex_params, {"african": 1.0}, "male", 30.0, "none", np.random.default_rng(1)
    )
    spec = dataclasses.replace(spec, tone_gain=(1.0, 1.0, 1.0))
    target = (0.9, 0.72, 0.62)  # a light albedo on a dark map
    baked = textures.bake_skin(spec, target)
    assert baked.dtype == np.uint8 and baked.shape == (128, 128, 4) and (baked[..., 3] == 255).all()
    # the median under the head vertices, measured on the baked map
    obj = formats.load_obj(formats.BASE_OBJ)
    body = obj.triangle_groups == obj.groups.index("body")
    split = formats.split_uv_seams(obj.triangles[body], obj.triangle_uv[body], obj.uv_table)
    head = formats.base_mesh().vertices[split.source, 1] > textures.HEAD_ABOVE_Y
    median = np.median(
        textures.srgb8_to_linear(textures.sample_nearest(baked, split.uv[head])[:, :3]), axis=0
    )
    assert np.allclose(median, textures.srgb_to_linear(target), rtol=0.08)
    untouched = textures.bake_skin(dataclasses.replace(spec, tone_shift=0.0), target)
    assert np.array_equal(
        untouched[..., :3], formats.load_rgba_image(next(iter(spec.skin_maps)), 128)[..., :3]
    )


# ------------------------------------------------------------------------------- determinism
def test_same_seed_same_texture_bytes(humans_params: HumanParams) -> None:
    params = dataclasses.replace(humans_params, count=3)
    a = sample_identities(params, 5)
    b = sample_identities(params, 5)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    ha, hb = Human.build(a[0]), Human.build(b[0])
    for pa, pb in zip(ha.neutral(), hb.neutral(), strict=True):
        assert (pa.texture is None) == (pb.texture is None)
        if pa.texture is not None:
            assert pa.texture.tobytes() == pb.texture.tobytes()
    other = sample_identities(params, 6)
    assert [s.textures for s in other] != [s.textures for s in a]
    # textures draw from their own stream: the people themselves do not change with them
    off = sample_identities(dataclasses.replace(params, textures=None), 5)
    assert [dataclasses.replace(s, textures=None) for s in a] == off


def test_textured_parts_are_well_formed_and_cached(human: Human) -> None:
    first = {p.name: p for p in human.pose(load_preset("smile02"), 0.5)}
    again = {p.name: p for p in human.pose(load_preset("cry01"), 1.0, tears=True)}
    for name in ("skin", "eyes", "eyebrows", "eyelashes", "teeth", "tongue", "hair"):
        part = first[name]
        assert part.texture is not None and part.texture.dtype == np.uint8 and part.texture.shape[2] == 4
        assert part.texture is again[name].texture  # baked once: the renderer caches by id()
        assert part.uv is not None and part.uv.shape == (len(part.vertices), 2)
        assert part.uv.min() >= -0.01 and part.uv.max() <= 1.01  # hair uv overshoot 1 by 0.3 %
        assert part.alpha_mode in ("opaque", "mask", "blend") and part.specular_color.shape == (3,)
    skin = first["skin"]
    assert skin.alpha_mode == "opaque" and 0.0 < skin.sss <= 1.0 and skin.shininess == 64.0
    assert np.allclose(skin.specular_color, 0.0627, atol=0.04)
    assert first["hair"].alpha_mode == "mask" and first["eyebrows"].alpha_mode == "blend"
    assert first["cornea"].texture is None and first["cornea"].opacity < 0.2
    assert again["tears"].texture is None and again["tears"].alpha_mode == "blend"
    assert all(p.sss == 0.0 for n, p in first.items() if n != "skin")
    assert set(human.texture_labels) == {"skin_map", "iris_map"}


def test_brow_map_is_mostly_transparent_and_tinted(human: Human) -> None:
    brows = {p.name: p for p in human.neutral()}["eyebrows"]
    alpha = brows.texture[..., 3]
    assert (alpha == 0).mean() > 0.6 and alpha.max() > 200
    strands = brows.texture[..., :3][alpha >= 128].astype(float) / 255.0
    colour = textures.srgb_to_linear(human.spec.eyebrow_color)
    mean = textures.srgb8_to_linear((strands * 255).astype(np.uint8)).mean(axis=0)
    assert np.allclose(mean, colour, rtol=0.35, atol=0.01)  # luminance x brow colour, mean kept


def test_missing_hair_map_untextured_or_error(humans_params: HumanParams, tex_params: TextureParams) -> None:
    spec = dataclasses.replace(study6_identities()[0], eyebrow_mode="proxy", hair_style="bob01")
    loose = dataclasses.replace(tex_params, hair_missing_map="untextured")
    chosen = textures.choose_textures(
        loose, spec.ethnicity, "female", 30.0, "bob01", np.random.default_rng(0)
    )
    hair = {p.name: p for p in Human.build(dataclasses.replace(spec, textures=chosen)).neutral()}["hair"]
    assert hair.texture is None and hair.alpha_mode == "opaque"
    assert np.allclose(hair.albedo, spec.hair_color)
    with pytest.raises(HumanParamsError, match="bob01"):
        textures.choose_textures(
            tex_params, spec.ethnicity, "female", 30.0, "bob01", np.random.default_rng(0)
        )
    styles = {"female": ["bob01", "long01"], "male": ["afro01"]}
    with pytest.raises(HumanParamsError, match=r"afro01.*bob01|hair_missing_map"):
        validate_human_params(dataclasses.replace(humans_params, hair_styles=styles))
    validate_human_params(dataclasses.replace(humans_params, hair_styles=styles, textures=loose))


# -------------------------------------------------------------------------------------- params
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"max_size": 0}, "max_size"),
        ({"max_size": 10000}, "max_size"),
        ({"tone_shift": 1.5}, "tone_shift"),
        ({"tone_jitter": -0.1}, "tone_jitter"),
        ({"sss_per_scale": 3.0}, "sss_per_scale"),
        ({"alpha_cutoff": 1.2}, "alpha_cutoff"),
        ({"blend_min_share": 0.9}, "blend_min_share"),
        ({"iris_maps": ["purple"]}, "purple"),
        ({"iris_maps": []}, "iris_maps"),
        ({"skin_age_years": {"young": 25.0, "old": 75.0}}, "skin_age_years"),
        ({"skin_age_years": {"young": 80.0, "middleage": 50.0, "old": 75.0}}, "skin_age_years"),
        ({"alpha_modes": {"eyebrows": "blend", "eyelashes": "blend", "hair": "fuzzy"}}, "fuzzy"),
        ({"alpha_modes": {"eyebrows": "blend"}}, "alpha_modes"),
    ],
)
def test_bad_texture_params_stop_with_clear_errors(
    humans_params: HumanParams, tex_params: TextureParams, change: dict, match: str
) -> None:
    bad = dataclasses.replace(humans_params, textures=dataclasses.replace(tex_params, **change))
    with pytest.raises(ParamsError, match=match):
        validate_human_params(bad)


def test_texture_params_need_every_key_and_right_types() -> None:
    data = yaml.safe_load(CONF.read_text())
    broken = dict(data, textures={k: v for k, v in data["textures"].items() if k != "max_size"})
    with pytest.raises(ParamsError, match=r"humans\.textures\.max_size"):
        from_dict(HumanParams, broken, "humans")
    broken = dict(data, textures=dict(data["textures"], enabled="yes"))
    with pytest.raises(ParamsError, match="enabled"):
        from_dict(HumanParams, broken, "humans")


def test_painted_brows_and_skin_maps_do_not_mix(
    humans_params: HumanParams, textured: list[IdentitySpec]
) -> None:
    with pytest.raises(HumanParamsError, match="painted"):
        validate_human_params(dataclasses.replace(humans_params, eyebrow_mode="painted"))
    with pytest.raises(HumanParamsError, match="painted"):
        Human.build(dataclasses.replace(textured[0], eyebrow_mode="painted"))
    assert humans_params.textures is not None
    no_skin = dataclasses.replace(humans_params.textures, skin=False)
    validate_human_params(dataclasses.replace(humans_params, eyebrow_mode="painted", textures=no_skin))


def test_texture_spec_round_trips_and_rejects_unknown_maps(textured: list[IdentitySpec]) -> None:
    spec = textured[0]
    assert IdentitySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.textures is not None
    bad = dataclasses.replace(
        spec.textures, skin_maps={"assets/skins/textures/old_lightskinned_male_diffuse.png": 1.0}
    )
    with pytest.raises(HumanParamsError, match="not a registered"):
        Human.build(dataclasses.replace(spec, textures=bad))
    with pytest.raises(HumanParamsError, match="sum to 1"):
        Human.build(
            dataclasses.replace(
                spec,
                textures=dataclasses.replace(
                    spec.textures, skin_maps={next(iter(spec.textures.skin_maps)): 0.4}
                ),
            )
        )


# ------------------------------------------------------------------------------------------ GLB
def test_glb_carries_textures_and_alpha_modes(human: Human, tmp_path: Path) -> None:
    meshes = gltf.human_meshes(human, {"laugh01": load_preset("laugh01")}, [1.0])
    path = tmp_path / "person.glb"
    path.write_bytes(gltf.glb_bytes("person", meshes, gltf.identity_markers(human)))
    document, binary = gltf.read_glb(path)
    materials = {m["name"]: m for m in document["materials"]}
    meshes_by_name = {m["name"]: m for m in document["meshes"]}
    parts = {p.name: p for p in human.pose({}, 0.0, tears=True)}
    assert (
        len(document["images"])
        == len(document["textures"])
        == sum(p.texture is not None for p in parts.values())
    )
    for name, part in parts.items():
        material = materials[name]
        pbr = material["pbrMetallicRoughness"]
        primitive = meshes_by_name[name]["primitives"][0]
        if part.texture is None:
            assert "baseColorTexture" not in pbr
            continue
        assert pbr["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]
        texture = document["textures"][pbr["baseColorTexture"]["index"]]
        image = document["images"][texture["source"]]
        view = document["bufferViews"][image["bufferView"]]
        png = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        assert image["mimeType"] == "image/png"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")), part.texture)
        uv = gltf.accessor_array(document, binary, primitive["attributes"]["TEXCOORD_0"])
        assert np.allclose(uv[:, 0], part.uv[:, 0]) and np.allclose(uv[:, 1], 1.0 - part.uv[:, 1])
        assert "COLOR_0" not in primitive["attributes"]
    assert materials["hair"]["alphaMode"] == "MASK" and materials["hair"]["alphaCutoff"] == 0.5
    assert materials["eyebrows"]["alphaMode"] == "BLEND" and materials["cornea"]["alphaMode"] == "BLEND"
    assert "alphaMode" not in materials["skin"]
    assert len(document["samplers"]) == 1
    # the morph target still moves every split copy of a seam vertex alike
    a, b = _seam_twins(human, "skin")
    skin = meshes_by_name["skin"]["primitives"][0]
    delta = gltf.accessor_array(document, binary, skin["targets"][0]["POSITION"])
    assert np.array_equal(delta[a], delta[b]) and np.abs(delta).max() > 0.01


def test_study6_people_get_their_nearest_maps(humans_params: HumanParams) -> None:
    six = sample_identities(dataclasses.replace(humans_params, identity_set="study6", count=6), 0)
    skins = {s.name: s.texture_labels()["skin_map"] for s in six}
    assert skins["black_female"] == "young_darkskinned_female_diffuse"
    assert skins["black_male"] == "young_darkskinned_male_diffuse"
    assert skins["old_caucasian_female"] == "middleage_lightskinned_female_diffuse2"
    assert skins["old_caucasian_male"].startswith("middleage_lightskinned_male_diffuse")
    assert skins["young_asian_female"].startswith("young_lightskinned_female_diffuse")
    assert skins["young_asian_male"].startswith("young_lightskinned_male_diffuse")
    assert all(s.eyebrow_mode == "proxy" and s.textures is not None for s in six)


def test_texture_files_are_registered_and_verified() -> None:
    from sim2real_faces import assets

    names = [
        n
        for n in assets.names("makehuman/")
        if (n.endswith(".png") and "/litspheres/" not in n) or (n.endswith(".mhmat") and "/skins/" in n)
    ]
    assert len([n for n in names if "/skins/textures/" in n]) == 13
    assert len([n for n in names if n.endswith(".mhmat")]) >= 18
    for name in names:
        assert assets.fetch(name).is_file()  # the mirror's copy matches the pinned sha256
    rows = assets.registry()
    assert rows["makehuman/assets/hair/short02/short02_diffuse.png"].url.startswith(
        "https://media.githubusercontent.com/media/makehumancommunity/makehuman-assets/"
    )


def test_textures_disabled_gives_flat_people(humans_params: HumanParams) -> None:
    assert humans_params.textures is not None
    off = dataclasses.replace(humans_params.textures, enabled=False)
    specs = sample_identities(dataclasses.replace(humans_params, count=2, textures=off), 7)
    assert all(
        s.textures is None and s.texture_labels() == {"skin_map": "none", "iris_map": "none"} for s in specs
    )
