"""Rendering throughput: images/s of the generate stage's workers at given sizes and process counts.

    python benchmarks/render.py [--frames 24] [--sizes 1792x1267 820x571] [--workers 1 2] [--msaa 0]

Runs the real pipeline of one frame (sample every randomizer, pose the MakeHuman person, render,
write the PNG) in spawned worker processes exactly as ``stages.generate`` does, on the default params
(24 random identities, the default randomizers), into a temporary folder. Reports wall-clock images/s
(the first frames of each worker, which compile shaders and build people, are included: that is what a
run pays) plus the CPU seconds per image of the workers, which is less sensitive to other load on the
machine. Prints a table and writes JSON with ``--json``.
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

from sim2real_faces.makehuman import ExpressionParams, HumanParams, sample_identities
from sim2real_faces.render.dataset import GenerateParams, WorkerConfig, plan_jobs, render_jobs, worker_threads


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench(
    width: int, height: int, workers: int, frames: int, msaa: int, identities: int, seed: int = 42
) -> dict:
    params = dataclasses.replace(GenerateParams(), width=width, height=height, workers=workers, msaa=msaa)
    params.validate()
    expressions = ExpressionParams()
    # The stage renders 75 frames per person (1800 / 24): a few people keep the building share as small.
    people = sample_identities(dataclasses.replace(HumanParams(), count=identities), seed)
    n_per_class = max(1, frames // len(expressions.classes))
    jobs = plan_jobs(list(expressions.classes), n_per_class, len(people), seed)
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        config = WorkerConfig(
            scene=params.scene(),
            identities=[s.to_dict() for s in people],
            expressions=expressions,
            image_dir=tmp,
            png_compression=params.png_compression,
            threads=worker_threads(workers),
        )
        cpu0, start = _children_cpu(), time.perf_counter()
        render_jobs(jobs, config, workers, desc=f"{width}x{height} x{workers}")
        wall = time.perf_counter() - start
        cpu = _children_cpu() - cpu0  # counted when the pool's workers have exited
        png_mb = sum(p.stat().st_size for p in Path(tmp).glob("*.png")) / 1e6
    return {
        "width": width,
        "height": height,
        "workers": workers,
        "msaa": msaa,
        "frames": len(jobs),
        "identities": len(people),
        "seconds": round(wall, 2),
        "images_per_s": round(len(jobs) / wall, 3),
        "worker_cpu_s_per_image": round(cpu / len(jobs), 3),
        "png_mb_per_image": round(png_mb / len(jobs), 3),
        "minutes_for_1800": round(1800 / (len(jobs) / wall) / 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--sizes", nargs="+", default=["1792x1267", "820x571"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--msaa", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shared_assets = Path(__file__).resolve().parents[2] / "shared" / "assets"
    if "SIM2REAL_ASSET_MIRROR" not in os.environ and shared_assets.is_dir():  # as the Makefile does
        os.environ["SIM2REAL_ASSET_MIRROR"] = str(shared_assets)
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        for workers in args.workers:
            rows.append(bench(width, height, workers, args.frames, args.msaa, args.identities))
    load = os.getloadavg()[0]
    print(f"\ncpu cores: {os.cpu_count()}, load average before the last run: {load:.1f}")
    print(f"{'size':>10} {'proc':>4} {'img/s':>7} {'cpu s/img':>9} {'PNG MB':>7} {'1800 in min':>11}")
    for r in rows:
        print(
            f"{r['width']}x{r['height']:<5} {r['workers']:>4} {r['images_per_s']:>7.2f} "
            f"{r['worker_cpu_s_per_image']:>9.3f} {r['png_mb_per_image']:>7.2f} "
            f"{r['minutes_for_1800']:>11.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu_count": os.cpu_count(), "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
