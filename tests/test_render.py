"""Renderer and scene randomizers: bounds of every sampler, seeds, params errors, tiny deterministic renders.

No GL context is ever created in the pytest process (MediaPipe may live here, and the two must not
share a process);
renders run in a child process (``python -c``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from sim2real_faces.compose import composed_section, load_composed
from sim2real_faces.humans import ExpressionParams
from sim2real_faces.render.dataset import GenerateParams
from sim2real_faces.render.gl import INSTANCE_FLOATS, PATTERNS
from sim2real_faces.render.plan import FrameJob, frame_seed, plan_jobs, stream_rngs
from sim2real_faces.render.randomizers import (
    CLEAN_FRAMES,
    BackgroundParams,
    HeadRotationParams,
    LightParams,
    PlacementParams,
    PostParams,
    RandomizerParamsError,
    apply_post,
    light_arrays,
    poisson_disk,
    sample_background,
    sample_post,
)
from sim2real_faces.render.scene import SceneParams, sample_frame

REPO = Path(__file__).resolve().parents[1]
# Section expressions of the choice expressions=presets (conf/expressions/presets.yaml).
PRESETS = load_composed(ExpressionParams, "expressions", ("expressions=presets",))


def _within(value: float, bounds: tuple[float, float], tol: float = 1e-9) -> bool:
    return bounds[0] - tol <= value <= bounds[1] + tol


# ------------------------------------------------------------------------------------------ samplers


def test_frame_samples_respect_every_bound():
    params = SceneParams(
        width=320,
        height=226,
        placement=PlacementParams(x=(-0.3, 0.1), y=(0.0, 0.25), view_height=(3.0, 3.5)),
        head=HeadRotationParams(pitch_deg=(-30, 30), yaw_deg=(-10, 25), roll_deg=(-5, 5)),
        lights=LightParams(
            intensity=(0.5, 3.0), color=(0.4, 1.0), azimuth_deg=(45, 60), elevation_deg=(10, 40)
        ),
        post=PostParams(blur_sigma=(0.0, 1.5), noise_sigma=(1.0, 4.0), jpeg_quality=(60, 95)),
    )
    expressions = PRESETS
    seen = {k: [] for k in ("head_pitch_deg", "head_yaw_deg", "light_left_intensity", "light_right_g")}
    for i in range(120):
        cls = ("angry", "crying", "happy")[i % 3]
        v = sample_frame(FrameJob(i, "f.png", cls, 0, frame_seed(3, i % 3, i)), params, expressions).values
        assert v["expression"] in expressions.classes[cls]
        assert _within(v["intensity"], expressions.intensity)
        assert _within(v["place_x"], params.placement.x) and _within(v["place_y"], params.placement.y)
        assert _within(v["view_height_dm"], params.placement.view_height)
        assert _within(v["head_pitch_deg"], params.head.pitch_deg)
        assert _within(v["head_yaw_deg"], params.head.yaw_deg)
        assert _within(v["head_roll_deg"], params.head.roll_deg)
        for side in ("left", "right"):
            assert _within(v[f"light_{side}_intensity"], params.lights.intensity)
            assert _within(v[f"light_{side}_azimuth_deg"], params.lights.azimuth_deg)
            assert _within(v[f"light_{side}_elevation_deg"], params.lights.elevation_deg)
            for ch in "rgb":
                assert _within(v[f"light_{side}_{ch}"], params.lights.color)
        assert _within(v["light_ambient"], params.lights.ambient)
        assert _within(v["post_blur_sigma"], params.post.blur_sigma)
        assert _within(v["post_noise_sigma"], params.post.noise_sigma)
        assert 60 <= v["post_jpeg_quality"] <= 95
        assert v["tears"] in (0, 1) and (v["tears"] == 0 or cls in expressions.tears)
        for key in seen:
            seen[key].append(v[key])
    # the samplers use their ranges, not a corner of them
    assert np.ptp(seen["head_pitch_deg"]) > 40 and np.ptp(seen["light_left_intensity"]) > 2.0
    assert min(seen["head_yaw_deg"]) < 0 < max(seen["head_yaw_deg"])


def test_background_respects_bounds_and_separation():
    params = BackgroundParams(
        layers=2,
        separation=0.5,
        scale=(0.6, 1.2),
        hue_offset_deg=(-90, 45),
        shapes=("cube", "sphere", "torus"),
    )
    rng = np.random.default_rng(0)
    half_w, half_h = 2.4, 1.7
    sample = sample_background(params, rng, (1.0, 2.0, 3.0), (half_w, half_h))
    unit = 2 * half_h / 6
    assert {name for name, _ in sample.instances} == {"cube", "sphere", "torus"}
    everything = np.concatenate([inst for _, inst in sample.instances])
    assert everything.shape[1] == INSTANCE_FLOATS
    assert sample.values["bg_objects"] == len(everything)
    depths = sorted(set(np.round(everything[:, 2], 5)))
    assert len(depths) == 2  # two layers, `separation` wall units apart, `depth` behind the centre
    assert depths[1] == pytest.approx(3.0 - params.depth * unit, abs=1e-4)
    assert depths[1] - depths[0] == pytest.approx(params.separation * unit, abs=1e-4)
    assert sample.instances[0][1][0, 2] == pytest.approx(depths[1], abs=1e-4)  # nearest layer drawn first
    for layer_z in depths:
        layer = everything[np.isclose(everything[:, 2], layer_z)]
        dist, _ = cKDTree(layer[:, :2]).query(layer[:, :2], k=2)
        assert dist[:, 1].min() >= params.separation * unit - 1e-4
        # the wall covers the whole view (plus margin)
        assert layer[:, 0].min() < 1.0 - half_w and layer[:, 0].max() > 1.0 + half_w
        assert layer[:, 1].min() < 2.0 - half_h and layer[:, 1].max() > 2.0 + half_h
    scales = everything[:, 12] / unit
    assert scales.min() >= 0.6 - 1e-5 and scales.max() <= 1.2 + 1e-5
    hues = np.degrees(everything[:, 24])
    assert hues.min() >= -90 - 1e-4 and hues.max() <= 45 + 1e-4 and np.ptp(hues) > 100
    colours = everything[:, 15:21]
    assert colours.min() >= 0 and colours.max() <= 1
    rot = everything[:, 3:12].reshape(-1, 3, 3)
    assert np.allclose(rot @ rot.transpose(0, 2, 1), np.eye(3), atol=1e-5)  # proper rotations
    assert set(everything[:, 21].astype(int)) <= set(range(len(PATTERNS)))
    # the study's rotations: x and y within [-30, 30] degrees, none about z
    study = dataclasses.replace(
        params, rotation_x_deg=(-30, 30), rotation_y_deg=(-30, 30), rotation_z_deg=(0, 0)
    )
    inst = np.concatenate(
        [i for _, i in sample_background(study, rng, (0, 0, 0), (half_w, half_h)).instances]
    )
    matrices = inst[:, 3:12].reshape(-1, 3, 3).transpose(0, 2, 1)  # stored column-major for GLSL
    euler = Rotation.from_matrix(matrices).as_euler("xyz", degrees=True)
    assert np.abs(euler[:, :2]).max() <= 30 + 1e-3 and np.abs(euler[:, 2]).max() < 1e-3
    assert np.ptp(euler[:, 0]) > 40 and np.ptp(euler[:, 1]) > 40


def test_poisson_disk_is_a_near_maximal_packing():
    rng = np.random.default_rng(5)
    points = poisson_disk(10.0, 6.0, 0.4, rng)
    dist, _ = cKDTree(points).query(points, k=2)
    assert dist[:, 1].min() >= 0.4
    assert points.min() >= 0 and points[:, 0].max() <= 10.0 and points[:, 1].max() <= 6.0
    # near-maximal: almost no spot of the rectangle is farther than 2 radii from a point
    grid = np.stack(np.meshgrid(np.linspace(0, 10, 80), np.linspace(0, 6, 50)), -1).reshape(-1, 2)
    gap, _ = cKDTree(points).query(grid)
    assert np.mean(gap > 0.8) < 0.01


def test_disabled_background_and_light_arrays():
    empty = sample_background(BackgroundParams(enabled=False), np.random.default_rng(0), (0, 0, 0), (1, 1))
    assert empty.instances == [] and empty.values["bg_objects"] == 0
    values = {
        "light_left_intensity": 2.0,
        "light_left_r": 1.0,
        "light_left_g": 0.5,
        "light_left_b": 0.4,
        "light_left_azimuth_deg": 60.0,
        "light_left_elevation_deg": 50.0,
        "light_right_intensity": 0.5,
        "light_right_r": 0.4,
        "light_right_g": 0.4,
        "light_right_b": 1.0,
        "light_right_azimuth_deg": 45.0,
        "light_right_elevation_deg": 0.0,
        "light_ambient": 0.1,
    }
    dirs, cols, ambient = light_arrays(values)
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1)
    assert dirs[0, 0] < 0 < dirs[1, 0]  # left light on -x, right on +x, both in front (+z)
    assert dirs[0, 2] > 0 and dirs[1, 2] > 0
    assert dirs[0, 1] == pytest.approx(np.sin(np.radians(50)))
    assert np.allclose(cols[0], [2.0, 1.0, 0.8]) and np.allclose(cols[1], [0.2, 0.2, 0.5])  # scaled once
    assert np.allclose(ambient, 0.1)


def test_post_effects_follow_their_samples():
    image = np.full((40, 60, 3), 128, np.uint8)
    image[:, 30:] = 20
    off = sample_post(CLEAN_FRAMES, np.random.default_rng(1))
    assert off["post_jpeg_quality"] == 100
    assert np.array_equal(apply_post(image, off), image)
    noisy = sample_post(dataclasses.replace(CLEAN_FRAMES, noise_sigma=(5, 5)), np.random.default_rng(1))
    out = apply_post(image, noisy)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert 4.0 < np.std(out[:, :20].astype(float)) < 6.0  # sensor noise of sigma 5 on the flat part
    assert np.array_equal(out, apply_post(image, noisy))  # the noise is seeded by the sample
    blurred = apply_post(
        image, sample_post(dataclasses.replace(CLEAN_FRAMES, blur_sigma=(2, 2)), np.random.default_rng(1))
    )
    assert (
        20 < blurred[20, 30, 0] < 128 and blurred[20, 0, 0] == 128
    )  # the edge is smoothed, not the flat part
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0] = 200
    grey = apply_post(
        colour,
        sample_post(dataclasses.replace(CLEAN_FRAMES, grayscale_probability=1.0), np.random.default_rng(1)),
    )
    assert np.all(grey[..., 0] == grey[..., 1]) and np.all(grey[..., 1] == grey[..., 2]) and grey[0, 0, 0] > 0
    jpeg = apply_post(
        out, sample_post(dataclasses.replace(CLEAN_FRAMES, jpeg_quality=(30, 30)), np.random.default_rng(1))
    )
    assert np.std(jpeg[:, :20].astype(float)) < np.std(out[:, :20].astype(float))  # JPEG smooths the noise


def test_grey_frames_get_grey_noise():
    colour = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    values = sample_post(
        dataclasses.replace(CLEAN_FRAMES, noise_sigma=(5, 5), grayscale_probability=1.0),
        np.random.default_rng(2),
    )
    out = apply_post(colour, values)
    assert values["post_grayscale"] and np.std(out.astype(float) - out[..., :1]) == 0.0


# -------------------------------------------------------------------------------------------- seeds


def test_seeds_are_stable_and_independent_per_stream():
    assert frame_seed(42, 1, 7) == frame_seed(42, 1, 7)
    assert len({frame_seed(42, c, i) for c in range(3) for i in range(200)}) == 600
    assert frame_seed(42, 0, 0) != frame_seed(43, 0, 0)
    a, b = stream_rngs(11), stream_rngs(11)
    assert [r.random() for r in a.values()] == [r.random() for r in b.values()]
    assert len({round(r.random(), 12) for r in stream_rngs(11).values()}) == len(a)
    params, expressions = SceneParams(), PRESETS
    job = FrameJob(0, "f.png", "happy", 0, frame_seed(42, 2, 0))
    assert sample_frame(job, params, expressions).values == sample_frame(job, params, expressions).values
    # changing one randomizer's range leaves the other randomizers' values unchanged
    other = dataclasses.replace(params, lights=LightParams(intensity=(1.0, 1.0)))
    v1, v2 = sample_frame(job, params, expressions).values, sample_frame(job, other, expressions).values
    assert v1["head_yaw_deg"] == v2["head_yaw_deg"] and v1["place_x"] == v2["place_x"]
    assert v2["light_left_intensity"] == 1.0 != v1["light_left_intensity"]


def test_plan_gives_every_identity_every_class_and_keeps_prefixes():
    jobs = plan_jobs(["angry", "crying", "happy"], 8, 4, root_seed=9)
    assert len(jobs) == 24 and len({j.file for j in jobs}) == 24
    for ident in range(4):
        classes = [j.class_name for j in jobs if j.identity == ident]
        assert sorted(classes) == ["angry"] * 2 + ["crying"] * 2 + ["happy"] * 2
    more = {j.file: j.seed for j in plan_jobs(["angry", "crying", "happy"], 12, 4, root_seed=9)}
    assert all(more[j.file] == j.seed for j in jobs)  # more images per class keep the first ones


# --------------------------------------------------------------------------------------- bad params


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"n_per_class": -5}, "generate.n_per_class"),
        ({"workers": 0}, "generate.workers"),
        ({"lights": LightParams(intensity=(3.0, 0.5))}, "generate.lights.intensity"),
        ({"lights": LightParams(color=(0.4, 1.5))}, "generate.lights.color"),
        ({"head": HeadRotationParams(yaw_deg=(30.0, -30.0))}, "generate.head.yaw_deg"),
        ({"placement": PlacementParams(view_height=(5.0, 3.0))}, "generate.placement.view_height"),
        ({"background": BackgroundParams(layers=-1)}, "generate.background.layers"),
        ({"background": BackgroundParams(shapes=("cube", "teapot"))}, "teapot"),
        ({"background": BackgroundParams(patterns=("plaid",))}, "plaid"),
        ({"background": BackgroundParams(hue_offset_deg=(90.0, -90.0))}, "inverted"),
        ({"post": PostParams(jpeg_quality=(90, 40))}, "generate.post.jpeg_quality"),
        ({"msaa": 3}, "generate.msaa"),
        ({"post": PostParams(grayscale_probability=1.5)}, "generate.post.grayscale_probability"),
    ],
)
def test_bad_generate_params_stop_with_a_named_error(change, needle):
    with pytest.raises(RandomizerParamsError, match=needle.replace(".", r"\.")):
        dataclasses.replace(GenerateParams(), **change).validate()


def _write_params(folder: Path, **sections) -> None:
    import yaml

    data = {
        "seed": 1,
        "humans": {},
        "expressions": composed_section("expressions", ("expressions=presets",)),
        "generate": {"n_per_class": 1, "width": 64, "height": 48},
    }
    for key, value in sections.items():
        data[key] = {**data[key], **value}  # these keys changed
    (folder / "params.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("sections", "error", "needle"),
    [
        (
            {
                "expressions": {
                    "classes": {"angry": ["anger01", "furious99"], "crying": ["cry01"], "happy": ["laugh01"]}
                }
            },
            "UnknownPresetError",
            "furious99",
        ),
        ({"humans": {"ethnicity_mix": {"african": 1.0, "martian": 1.0}}}, "HumanParamsError", "martian"),
        ({"humans": {"count": -2}}, "HumanParamsError", "humans.count"),
        ({"expressions": {"intensity": [1.0, 0.2]}}, "HumanParamsError", "inverted"),
        ({"generate": {"n_per_class": -1}}, "RandomizerParamsError", "n_per_class"),
        ({"generate": {"lights": {"intensity": [3.0, 0.5]}}}, "RandomizerParamsError", "inverted"),
        ({"generate": {"frames": 3}}, "ParamsError", "unknown key"),
    ],
)
def test_generate_stage_refuses_bad_params_before_rendering(tmp_path, monkeypatch, sections, error, needle):
    from stages import generate

    _write_params(tmp_path, **sections)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match=needle) as info:
        generate.main()
    assert type(info.value).__name__ == error
    assert not (tmp_path / "data").exists()  # nothing rendered


# ------------------------------------------------------------------------------------- tiny renders

_PROBE = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    from sim2real_faces.humans import ExpressionParams, Human, resolve_preset, study6_identities
    from sim2real_faces.render.plan import FrameJob, frame_seed
    from sim2real_faces.render.scene import SceneParams, SceneRenderer, sample_frame
    from sim2real_faces.compose import load_composed
    from sim2real_faces.render.randomizers import BackgroundParams, LightParams, HeadRotationParams
    from sim2real_faces.render.randomizers import CLEAN_FRAMES
    params = SceneParams(width=96, height=68, msaa=int(sys.argv[1]), post=CLEAN_FRAMES)
    expressions = load_composed(ExpressionParams, "expressions", ("expressions=presets",))
    human = Human.build(study6_identities()[2])
    renderer = SceneRenderer(params)
    out = {"renderer": renderer.renderer.renderer_name, "hashes": [], "stats": {}}
    for i in range(2):
        job = FrameJob(i, "x.png", "happy", 2, frame_seed(5, 2, i))
        sample = sample_frame(job, params, expressions)
        weights = resolve_preset(sample.values["expression"], expressions)
        for _ in range(2):  # the same frame twice in one process
            image = renderer.render(human, weights, sample)
            out["hashes"].append(hashlib.sha256(image.tobytes()).hexdigest())
    out["shape"] = list(image.shape)
    # a plain scene: no wall, frontal head, one white light from the front-left, none from the right
    plain = SceneParams(width=96, height=68, msaa=int(sys.argv[1]),
                        background=BackgroundParams(enabled=False),
                        head=HeadRotationParams(pitch_deg=(0, 0), yaw_deg=(0, 0)), post=CLEAN_FRAMES)
    r2 = SceneRenderer(plain)
    sample = sample_frame(FrameJob(0, "x.png", "happy", 2, 7), plain, expressions)
    sample.values.update({"place_x": 0.0, "place_y": 0.0, "light_ambient": 0.0, "fill_on": 0,
                          "light_right_intensity": 0.0, "light_left_intensity": 2.0,
                          "light_left_r": 1.0, "light_left_g": 1.0, "light_left_b": 1.0})
    image = r2.render(human, {}, sample)
    grey = (image.astype(int) - np.array([128, 128, 128])).__abs__().sum(axis=2) <= 3
    out["stats"]["background_grey_corner"] = bool(grey[:5, :5].all())
    out["stats"]["centre_not_grey"] = bool(~grey[30:38, 44:52].any())
    out["stats"]["lit_side_mean"] = float(image[25:45, 30:48].mean())   # the face's right half (image left)
    out["stats"]["dark_side_mean"] = float(image[25:45, 48:66].mean())
    print(json.dumps(out))
    """
)


def _probe(msaa: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(msaa)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tiny_render_is_deterministic_and_lit_from_the_light_side():
    first, second = _probe(0), _probe(0)
    assert "llvmpipe" in first["renderer"] or first["renderer"]
    assert first["shape"] == [68, 96, 3]
    h = first["hashes"]
    assert h[0] == h[1] and h[2] == h[3]  # same frame twice in one process
    assert h[0] != h[2]  # different seeds, different frames
    assert first["hashes"] == second["hashes"]  # and in a fresh process
    stats = first["stats"]
    assert stats["background_grey_corner"] and stats["centre_not_grey"]
    # the left light (on -x, i.e. the image's left for a camera looking at the face) lights that side
    assert stats["lit_side_mean"] > stats["dark_side_mean"] + 10


def test_multisampled_render_is_deterministic():
    first, second = _probe(4), _probe(4)
    assert first["hashes"] == second["hashes"]
    assert first["hashes"][0] == first["hashes"][1]


# ------------------------------------------------------------------- textures, alpha, shadows, params

_GL_PROBE = textwrap.dedent(
    """
    import hashlib, json
    import numpy as np
    from sim2real_faces.humans import formats
    from sim2real_faces.humans.textures import srgb_to_linear
    from sim2real_faces.render import gl

    def quad(z, uv=True):
        v = np.array([[-1, -1, z], [1, -1, z], [1, 1, z], [-1, 1, z]], np.float32)
        n = np.tile(np.array([0, 0, 1], np.float32), (4, 1))
        t = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
        return v, n, t, np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)

    # Unlit colour: ambient 1 from every side, no lights, no tone curve: pixel = the texel's sRGB value.
    light = gl.Lighting(np.array([[0, 0, 1.0], [0, 0, 1.0]]), np.zeros((2, 3)), np.ones(3),
                        exposure=1.0, tonemap="clamp")
    cam = gl.Camera(target=(0.0, 0.0, 0.0), half_height=1.0)
    r = gl.Renderer(72, 72, samples=0)  # 9 pixels per texel: pixel centres on texel centres
    out = {}
    tex = np.full((8, 8, 4), 128, np.uint8)
    tex[..., 3] = 255
    tex[1, 5, :3] = (255, 0, 0)   # image row 1 from the top, column 5
    v, n, t, uv = quad(0.0)
    mesh = gl.DrawMesh(v, n, np.zeros((4, 3), np.float32), t, specular=0.0, uv=uv, texture=tex)
    images = [r.render(cam, light, [mesh]) for _ in range(2)]
    out["texel_pixel"] = images[0][13, 49].tolist()       # the centre of texel (1, 5)
    out["flipped_pixel"] = images[0][58, 49].tolist()     # where it would land with v flipped
    out["grey_pixel"] = images[0][30, 10].tolist()
    out["same_bytes"] = hashlib.sha256(images[0].tobytes()).hexdigest() == hashlib.sha256(
        images[1].tobytes()).hexdigest()

    # Alpha: a brow map over flat skin. Transparent texels must leave the skin exactly as it is.
    brow = formats.load_rgba_image("assets/eyebrows/eyebrow001/eyebrow001.png", 512)
    skin_colour = np.full((4, 3), srgb_to_linear(np.array([0.8, 0.6, 0.5]), np.float32), np.float32)
    skin = gl.DrawMesh(v, n, skin_colour, t, specular=0.0)
    v2, n2, t2, uv2 = quad(0.05)
    r2 = gl.Renderer(512, 512, samples=0)  # one pixel per texel of the 512 px map
    bare = r2.render(cam, light, [skin]).astype(int)
    alpha = brow[..., 3]  # the map's top row is the quad's top (v = 1)
    from scipy.ndimage import maximum_filter, minimum_filter
    clear = maximum_filter(alpha, size=3) == 0  # transparent texels (and their neighbours: filtering)
    solid = minimum_filter(alpha, size=3) >= 160  # brow hair
    for mode in ("mask", "blend"):
        layer = gl.DrawMesh(v2, n2, np.zeros((4, 3), np.float32), t2, specular=0.0, uv=uv2,
                            texture=np.ascontiguousarray(brow), alpha_mode=mode, alpha_cutoff=0.5)
        img = r2.render(cam, light, [skin, layer]).astype(int)
        diff = np.abs(img - bare).max(axis=2)
        out[mode] = {"clear_pixels": int(clear.sum()), "clear_max_change": int(diff[clear].max()),
                     "solid_pixels": int(solid.sum()),
                     "solid_darker": float((bare - img).sum(axis=2)[solid].mean()) if solid.any() else 0.0}
    print(json.dumps(out))
    """
)


def _run_child(code: str, *args: str, timeout: int = 300) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_texels_land_on_their_pixels_and_transparent_brow_texels_leave_skin_alone():
    out = _run_child(_GL_PROBE)
    # the red texel shows where the OBJ convention puts it (v = 0 at the image's bottom row)
    assert out["texel_pixel"] == [255, 0, 0]
    assert out["flipped_pixel"] == [128, 128, 128] and out["grey_pixel"] == [128, 128, 128]
    assert out["same_bytes"]
    for mode in ("mask", "blend"):
        stats = out[mode]
        assert stats["clear_pixels"] > 1000, stats  # most of a brow map is transparent
        assert stats["clear_max_change"] == 0, (mode, stats)
        assert stats["solid_pixels"] > 20 and stats["solid_darker"] > 30, (mode, stats)


_SHADOW_PROBE = textwrap.dedent(
    """
    import json
    import numpy as np
    from sim2real_faces.humans import Human, study6_identities
    from sim2real_faces.render import gl
    from sim2real_faces.render.scene import SceneParams, part_to_draw, shading_of

    human = Human.build(study6_identities()[4])
    parts = human.pose({}, 0.0)
    meshes = [part_to_draw(p, np.eye(3), human.neck_pivot, 0.0) for p in parts]
    eye = human.eye_center
    cam = gl.Camera(target=tuple(float(x) for x in eye - np.array([0, 0.4, 0])), half_height=1.4)
    # one white light from the person's left (+x), low and to the side: the nose shadows the right cheek
    a, e = np.radians(70.0), np.radians(15.0)
    direction = np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    light = gl.Lighting(np.array([direction, [0.0, 0.0, 1.0]]), np.array([[3.0, 3.0, 3.0], [0, 0, 0]]),
                        np.full(3, 0.05), exposure=0.5, tonemap="aces")
    r = gl.Renderer(320, 320, samples=0)
    _, on = shading_of(SceneParams())  # the shipped shadow settings (conf/generate.yaml)
    assert on.enabled
    images = {name: r.render(cam, light, meshes, shadows=s).astype(float)
              for name, s in (("off", gl.NO_SHADOWS), ("on", on))}
    def box(x0, x1, y0, y1):
        pts = np.array([[x0, y0, eye[2]], [x1, y1, eye[2]]])
        (px0, py0), (px1, py1) = cam.project(pts, 320, 320)
        return slice(int(min(py0, py1)), int(max(py0, py1))), slice(int(min(px0, px1)), int(max(px0, px1)))
    nose_x = float(eye[0])
    right_eye, left_eye = human.eye_centers["right"], human.eye_centers["left"]
    mouth_y = float(human.mouth_center[1])
    below_eye = float(eye[1]) - 0.15
    right_cheek = box(float(right_eye[0]), nose_x - 0.08, mouth_y, below_eye)
    left_cheek = box(nose_x + 0.08, float(left_eye[0]), mouth_y, below_eye)
    out = {k: {"right": float(img[right_cheek].mean()), "left": float(img[left_cheek].mean())}
           for k, img in images.items()}
    print(json.dumps(out))
    """
)


def test_shadows_darken_the_cheek_away_from_the_light_only():
    out = _run_child(_SHADOW_PROBE)
    off, on = out["off"], out["on"]
    # the right cheek (image left) lies behind the nose as seen from the light on the person's left
    assert on["right"] < 0.9 * off["right"], out
    # the lit cheek is not darkened (no shadow acne): within 3%
    assert abs(on["left"] - off["left"]) <= 0.03 * off["left"], out


def test_new_samplers_respect_their_bounds_and_probability():
    from sim2real_faces.render.randomizers import (
        AmbientParams,
        FillLightParams,
        ambient_colors,
        fill_light_arrays,
        sample_ambient,
        sample_fill_light,
    )

    amb = AmbientParams(gradient=True, sky_color=(0.6, 0.9), ground_color=(0.2, 0.4))
    fill = FillLightParams(
        probability=0.3, intensity=(0.2, 0.5), color=(0.5, 1.0), azimuth_deg=(-30, 30), elevation_deg=(-20, 0)
    )
    rng = np.random.default_rng(0)
    ons = []
    for _ in range(400):
        a = sample_ambient(amb, rng)
        assert all(_within(a[f"ambient_sky_{c}"], amb.sky_color) for c in "rgb")
        assert all(_within(a[f"ambient_ground_{c}"], amb.ground_color) for c in "rgb")
        f = sample_fill_light(fill, rng)
        ons.append(f["fill_on"])
        direction, colour = fill_light_arrays(f)
        if f["fill_on"]:
            assert _within(f["fill_intensity"], fill.intensity)
            assert _within(f["fill_azimuth_deg"], fill.azimuth_deg)
            assert direction[1] <= 1e-6  # elevation <= 0: from below or level
            assert np.isclose(np.linalg.norm(direction), 1.0)
        else:
            assert f["fill_intensity"] == 0.0 and not colour.any()
    assert 0.22 < np.mean(ons) < 0.38
    sky, ground = ambient_colors({"light_ambient": 0.5, **a})
    assert np.allclose(sky, 0.5 * np.array([a[f"ambient_sky_{c}"] for c in "rgb"]))
    assert np.allclose(ground, 0.5 * np.array([a[f"ambient_ground_{c}"] for c in "rgb"]))
    flat = sample_ambient(dataclasses.replace(amb, gradient=False), rng)
    assert set(flat.values()) == {1.0}  # flat grey ambient: lights.ambient alone


def test_new_streams_leave_the_earlier_randomizers_unchanged():
    """The ambient and fill-light streams are appended: every earlier value is drawn as before."""
    params, expressions = SceneParams(), PRESETS
    job = FrameJob(0, "f.png", "angry", 0, frame_seed(11, 0, 3))
    with_fill = sample_frame(job, params, expressions).values
    no_fill = sample_frame(
        job,
        dataclasses.replace(params, fill_light=dataclasses.replace(params.fill_light, probability=0.0)),
        expressions,
    ).values
    for key, value in with_fill.items():
        if not key.startswith("fill_"):
            assert no_fill[key] == value, key


@pytest.mark.parametrize(
    ("section", "change", "needle"),
    [
        ("ambient", {"sky_color": (0.9, 0.2)}, "generate.ambient.sky_color"),
        ("ambient", {"ground_color": (0.0, 1.5)}, "generate.ambient.ground_color"),
        ("fill_light", {"probability": 1.5}, "generate.fill_light.probability"),
        ("fill_light", {"intensity": (-1.0, 0.5)}, "generate.fill_light.intensity"),
        ("fill_light", {"color": (0.5, 1.2)}, "generate.fill_light.color"),
        ("fill_light", {"azimuth_deg": (-120.0, 0.0)}, "generate.fill_light.azimuth_deg"),
        ("fill_light", {"elevation_deg": (30.0, 10.0)}, "generate.fill_light.elevation_deg"),
        ("shading", {"wrap": -0.1}, "generate.shading.wrap"),
        ("shading", {"sss_tint": (1.0, 2.0, 0.3)}, "generate.shading.sss_tint[1]"),
        ("shading", {"fresnel": float("nan")}, "generate.shading.fresnel"),
        ("shading", {"fresnel_power": 0.5}, "generate.shading.fresnel_power"),
        ("shading", {"cornea": -1.0}, "generate.shading.cornea"),
        ("shading", {"cornea_shininess": 1.0}, "generate.shading.cornea_shininess"),
        ("shading", {"mouth_occlusion": 1.5}, "generate.shading.mouth_occlusion"),
        ("shadows", {"map_size": 1000}, "generate.shadows.map_size"),
        ("shadows", {"softness": -1.0}, "generate.shadows.softness"),
        ("shadows", {"bias": 50.0}, "generate.shadows.bias"),
        ("shadows", {"normal_offset": -0.5}, "generate.shadows.normal_offset"),
    ],
)
def test_bad_render_params_stop_with_a_named_error(section, change, needle):
    params = GenerateParams()
    bad = dataclasses.replace(getattr(params, section), **change)
    with pytest.raises(RandomizerParamsError, match=re.escape(needle)):
        dataclasses.replace(params, **{section: bad}).validate()


def test_new_sections_take_their_defaults_from_conf():
    import yaml

    from sim2real_faces.params import from_dict

    conf = yaml.safe_load((REPO / "conf" / "generate.yaml").read_text())
    loaded = from_dict(GenerateParams, conf, "generate")
    for section in ("ambient", "fill_light", "shading", "shadows"):
        assert getattr(GenerateParams(), section) == getattr(loaded, section), section
