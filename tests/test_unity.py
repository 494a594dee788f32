"""Unity backend: scenario JSON (every param, round trip, same schema as the C#), editor command line
and errors, generate.post on imported Perception images, a stand-in editor run end to end, and the GLB
export of humans and shapes."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trimesh
import yaml

from sim2real_faces.params import from_dict
from sim2real_faces.render.dataset import GenerateParams
from sim2real_faces.render.plan import plan_jobs, stream_rngs
from sim2real_faces.render.randomizers import (
    CLEAN_FRAMES,
    BackgroundParams,
    CameraParams,
    HeadRotationParams,
    LightParams,
    PlacementParams,
    PostParams,
    apply_post,
    sample_post,
)
from sim2real_faces.render.scene import sample_frame
from sim2real_faces.unity import (
    EXECUTE_METHOD,
    POST_COLUMNS,
    IdentityEntry,
    UnityError,
    UnityNotFoundError,
    UnityParams,
    UnityScenario,
    apply_post_to_images,
    build_scenario,
    build_unity_command,
    find_editor,
    generate_with_unity,
    read_scenario,
    run_unity,
    scenario_to_json,
    write_scenario,
)
from sim2real_faces.unity import gltf as g
from sim2real_faces.unity.perception import import_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIG_CS = REPO / "unity" / "Assets" / "Scripts" / "ScenarioConfig.cs"
RANDOMIZERS_CS = REPO / "unity" / "Assets" / "Scripts" / "Randomizers.cs"
SOLO = REPO / "tests" / "fixtures" / "solo"


def _default_generate(**changes) -> GenerateParams:
    """Section generate as conf/generate.yaml sets it (post effects on)."""
    data = yaml.safe_load((REPO / "conf" / "generate.yaml").read_text())
    return dataclasses.replace(from_dict(GenerateParams, data, "generate"), **changes)


def _perturbed(obj):
    """A copy of a params dataclass with every field changed from its default (recursively)."""
    changes = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = _perturbed(value)
        elif isinstance(value, bool):
            changes[f.name] = not value
        elif isinstance(value, int):
            changes[f.name] = value + 1
        elif isinstance(value, float):
            changes[f.name] = value + 0.25
        elif isinstance(value, tuple) and value and all(isinstance(v, (int, float)) for v in value):
            changes[f.name] = tuple(type(v)(v + i + 1) for i, v in enumerate(value))
        elif isinstance(value, tuple):
            changes[f.name] = tuple(reversed(value))[: max(1, len(value) - 1)]
        elif f.name == "projection":
            changes[f.name] = "perspective"
        elif f.name == "tonemap":
            changes[f.name] = "clamp"
    return dataclasses.replace(obj, **changes)


@dataclasses.dataclass(frozen=True)
class _Expressions:
    """Stands for ExpressionParams (classes, intensity, tears, custom presets)."""

    classes: dict = dataclasses.field(
        default_factory=lambda: {"angry": ["anger01"], "crying": ["cry01"], "happy": ["laugh01", "smile01"]}
    )
    intensity: tuple = (0.3, 0.9)
    tears: dict = dataclasses.field(default_factory=lambda: {"crying": 0.5})
    custom: dict = dataclasses.field(default_factory=dict)


def _scenario(tmp_path, generate=None) -> UnityScenario:
    generate = generate or _perturbed(GenerateParams())
    entries = [
        IdentityEntry("id0", "Assets/Humans/id0.glb", {"identity": "id0", "gender": "female", "age": 30.0})
    ]
    plan = [{"class": c, "identity": "id0"} for c in ("angry", "crying", "happy")]
    shapes = [f"Assets/Shapes/{s}.glb" for s in generate.background.shapes]
    return build_scenario(generate, UnityParams(), _Expressions(), entries, plan, 7, tmp_path / "raw", shapes)


def test_every_param_lands_in_the_scenario_json_and_round_trips(tmp_path):
    generate = _perturbed(GenerateParams())
    scenario = _scenario(tmp_path, generate)
    path = write_scenario(scenario, tmp_path / "scenario.json")
    data = json.loads(path.read_text())
    for section in ("background", "placement", "head", "lights", "camera"):
        expected = json.loads(json.dumps(dataclasses.asdict(getattr(generate, section))))
        assert data[section] == expected, section
        assert expected != json.loads(json.dumps(dataclasses.asdict(getattr(GenerateParams(), section))))
    assert (data["width"], data["height"], data["msaa"]) == (generate.width, generate.height, generate.msaa)
    assert data["classes"] == _Expressions().classes and data["intensity"] == [0.3, 0.9]
    assert data["tears"] == {"crying": 0.5} and data["intensity_steps"] == [0.5, 1.0]
    assert data["iterations"] == 3 and 0 <= data["seed"] < 2**32
    assert read_scenario(path) == scenario
    assert scenario_to_json(read_scenario(path)) == path.read_text()
    assert "post" not in data  # applied in Python to the imported images


def test_background_ranges_are_used_by_the_csharp_randomizer():
    """Every range of BackgroundParams is read by the wall randomizer (per-axis rotation, HSV colours)."""
    body = RANDOMIZERS_CS.read_text().split("class BackgroundWallRandomizer", 1)[1].split("class ", 1)[0]
    for f in dataclasses.fields(BackgroundParams):
        assert f"bg.{f.name}" in body, f.name
    for axis in "xyz":
        assert f"U(bg.rotation_{axis}_deg)" in body
    assert body.count("U(bg.saturation)") == 2 and body.count("U(bg.value)") == 2  # both pattern colours


def _cs_fields(class_name: str) -> set[str]:
    text = CONFIG_CS.read_text()
    body = re.search(rf"public class {class_name}\s*\{{(.*?)\n    \}}", text, re.S).group(1)
    fields = set()
    for line in body.splitlines():
        match = re.match(
            r"\s*\[JsonRequired(?:, JsonProperty\(\"(\w+)\"\))?\]\s*public [\w<>\[\], ]+ (\w+);", line
        )
        if match:
            fields.add(match.group(1) or match.group(2))
    return fields


@pytest.mark.parametrize(
    ("cs_class", "params_class"),
    [
        ("ScenarioConfig", UnityScenario),
        ("BackgroundConfig", BackgroundParams),
        ("PlacementConfig", PlacementParams),
        ("HeadConfig", HeadRotationParams),
        ("LightsConfig", LightParams),
        ("CameraConfig", CameraParams),
        ("IdentityConfig", IdentityEntry),
    ],
)
def test_the_csharp_side_reads_exactly_these_params(cs_class, params_class):
    assert _cs_fields(cs_class) == {f.name for f in dataclasses.fields(params_class)}


POST = PostParams(
    blur_sigma=(0.5, 1.5), noise_sigma=(1.0, 4.0), jpeg_quality=(60, 90), grayscale_probability=0.5
)


def _rgb(path: Path) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def _check_post(table: pd.DataFrame, seeds: dict, post: PostParams) -> None:
    assert table["file"].tolist() == sorted(seeds) and list(table.columns) == ["file", *POST_COLUMNS]
    for row in table.to_dict("records"):
        assert row == {"file": row["file"], **sample_post(post, stream_rngs(seeds[row["file"]])["post"])}
    assert table["post_blur_sigma"].between(*post.blur_sigma).all()
    assert table["post_noise_sigma"].between(*post.noise_sigma).all()
    assert table["post_jpeg_quality"].between(*post.jpeg_quality).all()
    assert set(table["post_grayscale"]) <= {0, 1}


def test_post_effects_on_the_imported_solo_fixture(tmp_path):
    """generate.post on a SOLO import: the embedded sampler's values per frame seed, the embedded
    apply_post on the RGB pixels, the same bytes on a rerun."""
    outputs = []
    for run in ("a", "b"):
        import_dataset(SOLO, tmp_path / run)
        seeds = {f"{i:05d}.png": 1000 + 17 * i for i in range(3)}
        table = apply_post_to_images(tmp_path / run / "images", seeds, POST, png_compression=1)
        _check_post(table, seeds, POST)
        outputs.append(table)
    assert outputs[0].equals(outputs[1])
    for i, row in enumerate(outputs[0].to_dict("records")):
        source = _rgb(SOLO / f"sequence.{i}" / "step0.camera.png")  # RGBA in the fixture; alpha dropped
        written = (tmp_path / "a" / "images" / row["file"]).read_bytes()
        assert written == (tmp_path / "b" / "images" / row["file"]).read_bytes()
        result = _rgb(tmp_path / "a" / "images" / row["file"])
        np.testing.assert_array_equal(result, apply_post(source, row))
        assert not np.array_equal(result, source)  # blur >= 0.5 and noise >= 1 always change the tiny image


def test_post_effects_many_frames_within_bounds_and_grey_share(tmp_path):
    """60 frames (copies of a SOLO capture) with the plan's frame seeds: bounds, both grey and colour
    frames, grey ones R == G == B (noise, drawn per channel, and the JPEG round trip off)."""
    post = dataclasses.replace(POST, noise_sigma=(0.0, 0.0), jpeg_quality=(100, 100))
    images = tmp_path / "images"
    images.mkdir()
    jobs = plan_jobs(["angry", "crying", "happy"], 20, 4, root_seed=5)
    for job in jobs:
        shutil.copyfile(SOLO / "sequence.1" / "step0.camera.png", images / job.file)
    seeds = {job.file: job.seed for job in jobs}
    table = apply_post_to_images(images, seeds, post, png_compression=1)
    _check_post(table, seeds, post)
    assert 10 < table["post_grayscale"].sum() < 50
    assert table["post_blur_sigma"].nunique() == 60
    for row in table.to_dict("records"):
        image = _rgb(images / row["file"])
        grey = (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        assert grey == bool(row["post_grayscale"]), row


def test_post_values_are_the_embedded_renderers_for_the_same_file():
    from sim2real_faces.compose import load_composed
    from sim2real_faces.humans import ExpressionParams

    generate = _default_generate(width=64, height=48)
    presets = load_composed(ExpressionParams, "expressions", ("expressions=presets",))
    expressions = dataclasses.replace(presets, classes={"angry": ["anger01"], "happy": ["laugh01"]})
    for job in plan_jobs(list(expressions.classes), 3, 2, root_seed=11):
        embedded = sample_frame(job, generate.scene(), expressions).values
        unity = sample_post(generate.post, stream_rngs(job.seed)["post"])
        assert unity == {k: embedded[k] for k in POST_COLUMNS}


def test_undecodable_imported_image_is_an_error_naming_it(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(UnityError, match=r"x\.png: the imported Perception image cannot be decoded"):
        apply_post_to_images(tmp_path, {"x.png": 1}, POST, 1)


def test_invalid_scenarios_are_refused(tmp_path):
    scenario = dataclasses.replace(_scenario(tmp_path), intensity_steps=[1.0, 0.5])
    with pytest.raises(UnityError, match="intensity_steps"):
        write_scenario(scenario, tmp_path / "s.json")
    scenario = dataclasses.replace(_scenario(tmp_path), plan=[{"class": "sad", "identity": "id0"}] * 3)
    with pytest.raises(UnityError, match="known class"):
        write_scenario(scenario, tmp_path / "s.json")


def test_unity_command_line(tmp_path):
    argv = build_unity_command(
        Path("/opt/unity/Editor/Unity"),
        tmp_path / "unity",
        tmp_path / "s.json",
        tmp_path / "u.log",
        ["-gpu", "0"],
    )
    assert argv == [
        "/opt/unity/Editor/Unity",
        "-batchmode",
        "-projectPath",
        str(tmp_path / "unity"),
        "-executeMethod",
        EXECUTE_METHOD,
        "-logFile",
        str(tmp_path / "u.log"),
        "-sim2realScenario",
        str(tmp_path / "s.json"),
        "-gpu",
        "0",
    ]
    assert "-quit" not in argv and "-nographics" not in argv  # module doc: Play mode needs both off
    source = (REPO / "unity" / "Assets" / "Scripts" / "Editor" / "BatchGenerate.cs").read_text()
    namespace, cls, method = EXECUTE_METHOD.rsplit(".", 2)
    assert f"namespace {namespace}\n" in source and f"public static class {cls}\n" in source
    assert f"public static void {method}()" in source


def _executable(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_editor_lookup_errors_name_the_param_and_the_variable(tmp_path):
    with pytest.raises(UnityNotFoundError, match=r"unity\.editor.*UNITY_EDITOR"):
        find_editor(UnityParams(), environ={})
    with pytest.raises(UnityNotFoundError, match=r"\$UNITY_EDITOR"):
        find_editor(UnityParams(), environ={"UNITY_EDITOR": str(tmp_path / "missing")})
    with pytest.raises(UnityNotFoundError, match=r"from unity\.editor"):
        find_editor(UnityParams(editor=str(tmp_path / "nope")), environ={})
    exe = _executable(tmp_path / "Unity", "")
    assert find_editor(UnityParams(), environ={"UNITY_EDITOR": str(exe)}) == exe
    assert find_editor(UnityParams(editor=str(exe)), environ={"UNITY_EDITOR": "/x"}) == exe


def test_generate_without_unity_stops_first_with_one_message(tmp_path, monkeypatch):
    """`-S generate.backend=unity` with the default params (post effects on) and no editor."""
    monkeypatch.delenv("UNITY_EDITOR", raising=False)
    generate = _default_generate(backend="unity")
    assert generate.post != CLEAN_FRAMES  # the default camera effects no longer stop the Unity path
    with pytest.raises(UnityNotFoundError, match=r"unity\.editor.*UNITY_EDITOR") as error:
        generate_with_unity(generate, UnityParams(), [], _Expressions(), 1, tmp_path)
    assert len(str(error.value).splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_failing_and_hanging_editors(tmp_path):
    log = tmp_path / "unity.log"
    fail = _executable(
        tmp_path / "fail",
        f"open({str(log)!r}, 'w').write('Scripts have compiler errors')\nraise SystemExit(1)\n",
    )
    with pytest.raises(UnityError, match=r"code 1(.|\n)*compiler errors"):
        run_unity([str(fail)], 30, log)
    hang = _executable(tmp_path / "hang", "import time\ntime.sleep(30)\n")
    with pytest.raises(UnityError, match=r"unity\.timeout_s=1"):
        run_unity([str(hang)], 1, log)


FAKE_EDITOR = r"""
import json, sys, pathlib, shutil
args = sys.argv[1:]
scenario = json.load(open(args[args.index("-sim2realScenario") + 1]))
log = pathlib.Path(args[args.index("-logFile") + 1])
log.write_text("fake editor\n")
assert "-batchmode" in args and args[args.index("-executeMethod") + 1] == "Sim2Real.Editor.BatchGenerate.Run"
project = pathlib.Path(args[args.index("-projectPath") + 1])
for identity in scenario["identities"]:
    assert (project / identity["glb"]).is_file(), identity
solo = pathlib.Path(scenario["output_dir"]) / "solo"
png = pathlib.Path(SOLO_PNG).read_bytes()
for i, entry in enumerate(scenario["plan"] + [scenario["plan"][0]]):  # one wind-down capture too many
    seq = solo / f"sequence.{i}"
    seq.mkdir(parents=True)
    (seq / "step0.camera.png").write_bytes(png)
    value = {"schema": "sim2real-faces/sample/1", "iteration": i, "class": entry["class"],
             "identity": entry["identity"], "expression": scenario["classes"][entry["class"]][0],
             "intensity": scenario["intensity"][0], "head_yaw_deg": 1.5 * i, "tears": 0}
    frame = {"frame": i + 1, "sequence": i, "step": 0, "timestamp": 0.0,
             "captures": [{"@type": "type.unity.com/unity.solo.RGBCamera", "id": "camera",
                           "filename": "step0.camera.png", "annotations": []}],
             "metrics": [{"@type": "type.unity.com/unity.solo.GenericMetric", "id": "sim2real.sample",
                          "sensorId": "camera", "value": json.dumps(value)}]}
    (seq / "step0.frame_data.json").write_text(json.dumps(frame))
"""


def _TinyExpressions():
    from sim2real_faces.compose import load_composed
    from sim2real_faces.humans import ExpressionParams

    classes = {"angry": ["anger01"], "crying": ["cry01"], "happy": ["laugh01"]}
    presets = load_composed(ExpressionParams, "expressions", ("expressions=presets",))
    return dataclasses.replace(presets, classes=classes, intensity=(0.2, 1.0))


def test_stand_in_editor_end_to_end(tmp_path, monkeypatch):
    """Everything around Unity (export, scenario, command, import, metadata layout) with a stand-in
    editor that writes a SOLO dataset the way the C# scenario does."""
    from sim2real_faces.humans import study6_identities

    png = REPO / "tests" / "fixtures" / "solo" / "sequence.0" / "step0.camera.png"
    editor = _executable(tmp_path / "Unity", f"SOLO_PNG = {str(png)!r}\n" + FAKE_EDITOR)
    monkeypatch.setenv("UNITY_EDITOR", str(editor))
    project = tmp_path / "unity"
    shutil.copytree(REPO / "unity", project, ignore=shutil.ignore_patterns("Humans", "Shapes", "Library"))
    identities = study6_identities()[:2]
    generate = _default_generate(backend="unity", n_per_class=2)
    out = tmp_path / "raw"
    metadata = generate_with_unity(
        generate, UnityParams(project=str(project)), identities, _TinyExpressions(), 42, out
    )
    assert len(metadata) == 6 and sorted(metadata["file"]) == metadata["file"].tolist()
    assert metadata["file"].tolist()[:2] == ["angry_00000.png", "angry_00001.png"]
    jobs = {j.file: j for j in plan_jobs(["angry", "crying", "happy"], 2, 2, 42)}
    for row in metadata.to_dict("records"):  # post effects: the embedded sampler per frame seed, applied
        values = sample_post(generate.post, stream_rngs(jobs[row["file"]].seed)["post"])
        assert {k: row[k] for k in POST_COLUMNS} == values
        np.testing.assert_array_equal(_rgb(out / "images" / row["file"]), apply_post(_rgb(png), values))
    written = pd.read_csv(out / "metadata.csv")
    assert list(written.columns[:9]) == [
        "file",
        "class",
        "identity",
        "ethnicity",
        "eth_african",
        "eth_asian",
        "eth_caucasian",
        "gender",
        "age",
    ]
    assert set(written["identity"]) == {s.name for s in identities}
    assert list(written.columns[-6:]) == [*POST_COLUMNS, "seed"]  # as the embedded metadata ends
    assert written.groupby("class")["identity"].nunique().tolist() == [2, 2, 2]
    scenario = read_scenario(out / "unity_scenario.json")
    assert scenario.iterations == 6 and (written["seed"] == scenario.seed).all()
    assert (out / "unity.log").read_text() == "fake editor\n"
    assert sorted(p.name for p in (project / "Assets" / "Humans").iterdir()) == sorted(
        f"{s.name}.glb" for s in identities
    )


# ------------------------------------------------------------------------------------------------ GLB


def test_glb_writer_round_trip_with_sparse_morph_targets(tmp_path):
    box = trimesh.creation.box()
    v = np.asarray(box.vertices, np.float32)
    up = np.zeros_like(v)
    up[v[:, 1] > 0, 1] = 0.5  # only the top face moves
    mesh = g.GlbMesh(
        "box",
        v,
        box.faces,
        box.vertex_normals,
        targets={"lift@1.00": (up, None), "still@1.00": (0 * up, None)},
    )
    path = tmp_path / "box.glb"
    path.write_bytes(g.glb_bytes("root", [mesh], {"eye_center": [0, 1, 2]}))
    loaded = trimesh.load(path)
    assert sum(len(geom.vertices) for geom in loaded.geometry.values()) == len(v)
    document, binary = g.read_glb(path)
    primitive = document["meshes"][0]["primitives"][0]
    assert document["meshes"][0]["extras"]["targetNames"] == ["lift@1.00", "still@1.00"]
    lift = document["accessors"][primitive["targets"][0]["POSITION"]]
    assert lift["sparse"]["count"] == int((v[:, 1] > 0).sum()) < len(v)
    np.testing.assert_allclose(g.accessor_array(document, binary, primitive["targets"][0]["POSITION"]), up)
    np.testing.assert_allclose(g.accessor_array(document, binary, primitive["attributes"]["POSITION"]), v)
    assert [n["name"] for n in document["nodes"]] == ["box", "eye_center", "root"]


def test_exported_human_loads_back_with_its_expressions(tmp_path):
    from sim2real_faces.humans import Human, resolve_preset, study6_identities

    spec = study6_identities()[1]
    paths = g.export_identities([spec], _TinyExpressions(), [0.5, 1.0], tmp_path)
    loaded = trimesh.load(paths[spec.name])
    human = Human.build(spec)
    neutral = {p.name: p for p in human.pose({}, 0.0, tears=True)}
    assert set(loaded.geometry) == set(neutral)
    for name, part in neutral.items():
        assert len(loaded.geometry[name].vertices) <= len(part.vertices)  # trimesh merges duplicates
    document, binary = g.read_glb(paths[spec.name])
    expected = [f"{p}@{s}" for p in ("anger01", "cry01", "laugh01") for s in ("0.50", "1.00")]
    skin = next(m for m in document["meshes"] if m["name"] == "skin")
    assert skin["extras"]["targetNames"] == expected
    assert len(skin["primitives"][0]["targets"]) == 6
    # base + morph target at weight 1 == the pose the embedded renderer draws
    target = skin["primitives"][0]["targets"][expected.index("laugh01@1.00")]
    base = g.accessor_array(document, binary, skin["primitives"][0]["attributes"]["POSITION"])
    delta = g.accessor_array(document, binary, target["POSITION"])
    posed = {p.name: p for p in human.pose(resolve_preset("laugh01"), 1.0, tears=True)}
    np.testing.assert_allclose(base + delta, posed["skin"].vertices, atol=1e-4)
    assert np.abs(delta).max() > 0.05  # the smile really moves the face (decimetres)
    names = {n["name"] for n in document["nodes"]}
    assert {"eye_center", "neck_pivot", "face_forward", "tears", spec.name} <= names
    before = paths[spec.name].stat().st_mtime_ns
    g.export_identities([spec], _TinyExpressions(), [0.5, 1.0], tmp_path)  # same key: kept
    assert paths[spec.name].stat().st_mtime_ns == before


def test_exported_shapes_match_the_renderer(tmp_path):
    from sim2real_faces.render.shapes import unit_shape

    for path in g.export_shapes(["cube", "torus"], tmp_path):
        document, binary = g.read_glb(path)
        vertices = g.accessor_array(
            document, binary, document["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
        )
        np.testing.assert_allclose(vertices, unit_shape(path.stem)[0])
        assert len(trimesh.load(path).geometry) == 1


def test_conf_unity_is_valid():
    data = yaml.safe_load((REPO / "conf" / "unity.yaml").read_text())
    assert from_dict(UnityParams, data, "unity") == UnityParams()
