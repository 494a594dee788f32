"""Rendering throughput and where the time goes, with the default profile's params (everything on).

    python benchmarks/render.py [--frames 48] [--sizes 1792x1267 820x571] [--workers 1 2]
                                [--identities 4] [--params params.yaml] [--json out.json]

Runs the real pipeline of one frame (sample every randomizer, pose the MakeHuman person, render,
post effects, write the PNG) in spawned worker processes exactly as ``stages.generate`` does, with
sections ``generate``, ``humans`` and ``expressions`` of ``--params`` (the composed default
profile: textures, shadows, fill light and camera effects on), into a temporary folder.

For each size and process count it reports wall-clock images/s (the first frames of each worker,
which compile shaders and build people, are included: that is what a run pays) and the CPU seconds
per image of the workers (less sensitive to other load on the machine). Then, per size, one
single-process run with the renderer's phase timer on (it waits for the rasteriser after each phase,
so it runs apart from the throughput runs) splits a frame's time into: sampling, posing (pose units,
skinning, head rotation), shadow maps, raster, read-back, post effects and PNG encoding + writing.

``--floor`` adds the same breakdown with flat fragment shaders (the head shows its texture's colour,
each background shape its first pattern colour, no lighting, shadows or patterns; geometry, depth
passes, alpha tests and the wall's overdraw unchanged): what the rasteriser costs before any
shading, the lower bound of a frame at that size on this machine. Images of that run are not valid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim2real_faces.humans import ExpressionParams, HumanParams, sample_identities
from sim2real_faces.io import png_options
from sim2real_faces.params import load_params, load_section
from sim2real_faces.render import dataset
from sim2real_faces.render.dataset import GenerateParams, WorkerConfig, render_jobs, worker_threads
from sim2real_faces.render.plan import plan_jobs

PHASES = ("sample", "pose", "shadow", "raster_head", "raster_background", "readback", "post", "png")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_job(job) -> dict[str, float]:
    """One frame as ``dataset.render_job`` renders it, with the seconds of every phase (worker side)."""
    import cv2

    from sim2real_faces.render.scene import sample_frame

    config = dataset._WORKER["config"]
    t0 = time.perf_counter()
    sample = sample_frame(job, config.scene, config.expressions)
    t1 = time.perf_counter()
    human = dataset._human(job.identity)
    weights = (
        {}
        if getattr(sample, "unit_weights", None) is not None
        else dataset._preset(sample.values["expression"])
    )
    scene = dataset._renderer()
    scene.renderer.profile = True
    t2 = time.perf_counter()
    image = scene.render(human, weights, sample)
    t3 = time.perf_counter()
    path = Path(config.image_dir) / job.file
    if not cv2.imwrite(str(path), image[:, :, ::-1], png_options(config.png_compression)):
        raise OSError(f"could not write {path}")
    t4 = time.perf_counter()
    times = dict(scene.renderer.timings)
    times["sample"] = t1 - t0
    times["png"] = t4 - t3
    times["pose"] = (t3 - t2) - sum(times.get(k, 0.0) for k in PHASES[2:-1])
    times["build"] = t2 - t1  # building a person (first frame of each identity) and the GL context
    return times


def _setup(params_file: Path, width: int, height: int, workers: int, identities: int, seed: int):
    params = load_params(params_file)
    gen = load_section(GenerateParams, "generate", params)
    gen = dataclasses.replace(gen, width=width, height=height, workers=workers)
    gen.validate()
    expressions = load_section(ExpressionParams, "expressions", params)
    humans = dataclasses.replace(load_section(HumanParams, "humans", params), count=identities)
    # The stage renders 75 frames per person (1800 / 24): a few people keep the building share as small.
    people = sample_identities(humans, seed)
    return gen, expressions, people


def _jobs(expressions, people, frames: int, seed: int) -> list:
    """About ``frames`` frames spread over the classes, planned as the generate stage plans them."""
    n_per_class = max(1, frames // len(expressions.classes))
    return plan_jobs(list(expressions.classes), n_per_class, len(people), seed)


def _config(gen, expressions, people, image_dir: str, threads: int) -> WorkerConfig:
    """The worker configuration the generate stage would build, writing into ``image_dir``."""
    return WorkerConfig(
        scene=gen.scene(),
        identities=[s.to_dict() for s in people],
        expressions=expressions,
        image_dir=image_dir,
        png_compression=gen.png_compression,
        threads=threads,
    )


def bench(
    params_file: Path, width: int, height: int, workers: int, frames: int, identities: int, seed: int = 42
) -> dict:
    gen, expressions, people = _setup(params_file, width, height, workers, identities, seed)
    jobs = _jobs(expressions, people, frames, seed)
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        config = _config(gen, expressions, people, tmp, worker_threads(workers))
        cpu0, start = _children_cpu(), time.perf_counter()
        render_jobs(jobs, config, workers, desc=f"{width}x{height} x{workers}")
        wall = time.perf_counter() - start
        cpu = _children_cpu() - cpu0  # counted when the pool's workers have exited
        png_mb = sum(p.stat().st_size for p in Path(tmp).glob("*.png")) / 1e6
    return {
        "width": width,
        "height": height,
        "workers": workers,
        "frames": len(jobs),
        "identities": len(people),
        "seconds": round(wall, 2),
        "images_per_s": round(len(jobs) / wall, 3),
        "worker_cpu_s_per_image": round(cpu / len(jobs), 3),
        "png_mb_per_image": round(png_mb / len(jobs), 3),
        "minutes_for_1800": round(1800 / (len(jobs) / wall) / 60, 1),
    }


# Flat fragment shaders of --floor: same inputs and alpha tests as the real ones, no shading.
FLAT_MESH_FS = """
#version 330
#ifndef ALPHA_TEST
#define ALPHA_TEST 1
#endif
in vec3 v_pos;
in vec3 v_normal;
in vec2 v_uv;
in vec3 v_color;
out vec4 f_color;
uniform sampler2D u_tex;
uniform int u_has_tex;
uniform int u_alpha_pass;
uniform float u_alpha_cutoff;
uniform float u_opacity;
void main() {
    vec4 base = vec4(v_color, 1.0);
    if (u_has_tex == 1) base = texture(u_tex, vec2(v_uv.x, 1.0 - v_uv.y));
#if ALPHA_TEST
    if (u_alpha_pass == 1 && base.a < u_alpha_cutoff) discard;
    if (u_alpha_pass == 2 && (base.a >= u_alpha_cutoff || base.a < 0.004)) discard;
#endif
    f_color = vec4(base.rgb, (u_alpha_pass == 2 ? base.a : 1.0) * u_opacity);
}
"""

FLAT_BACKGROUND_FS = """
#version 330
in vec3 v_col_a;
out vec4 f_color;
void main() {
    f_color = vec4(v_col_a, 1.0);
}
"""


def _init_flat_worker(config: WorkerConfig) -> None:
    """The stage's worker initialiser, with the renderer's fragment shaders swapped for flat ones."""
    from sim2real_faces.render import gl

    gl.MESH_FS = FLAT_MESH_FS
    gl.BACKGROUND_FS = FLAT_BACKGROUND_FS
    dataset._init_worker(config)


def breakdown(
    params_file: Path,
    width: int,
    height: int,
    frames: int,
    identities: int,
    seed: int = 42,
    flat: bool = False,
) -> dict:
    """Mean ms per phase of one worker with one llvmpipe thread (frames that built a person left out).

    ``flat``: with the flat fragment shaders of ``--floor`` (rasterisation without shading)."""
    import multiprocessing as mp

    gen, expressions, people = _setup(params_file, width, height, 1, identities, seed)
    jobs = _jobs(expressions, people, frames, seed)
    init = _init_flat_worker if flat else dataset._init_worker
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        config = _config(gen, expressions, people, tmp, 1)  # one core's share, as each stage worker gets
        with mp.get_context("spawn").Pool(1, initializer=init, initargs=(config,)) as pool:
            times = pool.map(timed_job, jobs, chunksize=1)
    steady = [t for t in times if t["build"] < 0.05] or times  # frames that built no person
    mean = {k: 1000 * sum(t.get(k, 0.0) for t in steady) / len(steady) for k in PHASES}
    mean["total"] = sum(mean.values())
    return {
        "width": width,
        "height": height,
        "shaders": "flat" if flat else "stage",
        "frames": len(steady),
        "ms": {k: round(v, 1) for k, v in mean.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--sizes", nargs="+", default=["1792x1267", "820x571"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--floor", action="store_true", help="also break a frame down with flat fragment shaders"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shared_assets = Path(__file__).resolve().parents[2] / "shared" / "assets"
    if "SIM2REAL_ASSET_MIRROR" not in os.environ and shared_assets.is_dir():  # as the Makefile does
        os.environ["SIM2REAL_ASSET_MIRROR"] = str(shared_assets)
    load_before = os.getloadavg()[0]
    rows, splits = [], []
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        for workers in args.workers:
            rows.append(bench(args.params, width, height, workers, args.frames, args.identities))
        if not args.no_breakdown:
            n = max(12, args.frames // 2)
            splits.append(breakdown(args.params, width, height, n, args.identities))
            if args.floor:
                splits.append(breakdown(args.params, width, height, n, args.identities, flat=True))
    load_after = os.getloadavg()[0]
    print(
        f"\ncpu cores: {os.cpu_count()}, load average (1 min) before: {load_before:.1f}, "
        f"after: {load_after:.1f}"
    )
    print(f"{'size':>10} {'proc':>4} {'img/s':>7} {'cpu s/img':>9} {'PNG MB':>7} {'1800 in min':>11}")
    for r in rows:
        print(
            f"{r['width']}x{r['height']:<5} {r['workers']:>4} {r['images_per_s']:>7.2f} "
            f"{r['worker_cpu_s_per_image']:>9.3f} {r['png_mb_per_image']:>7.2f} "
            f"{r['minutes_for_1800']:>11.1f}"
        )
    if splits:
        print("\nms per frame, one process with one llvmpipe thread:")
        print(f"{'size':>10} {'shaders':>7} " + " ".join(f"{k:>8}" for k in (*PHASES, "total")))
        for s in splits:
            print(
                f"{s['width']}x{s['height']:<5} {s['shaders']:>7} "
                + " ".join(f"{s['ms'][k]:>8.1f}" for k in (*PHASES, "total"))
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"cpu_count": os.cpu_count(), "load_before": load_before, "load_after": load_after}
        result.update({"runs": rows, "breakdown": splits})
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
