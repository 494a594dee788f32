"""Benchmark face analysis (sim2real_faces.faces.analyze_files) on real-dev photos, 1 and 2 processes.

    python benchmarks/face_analysis.py 200            # 200 images, workers 1 and 2
    python benchmarks/face_analysis.py 557 --workers 1 2 --no-crops

For each worker count it prints two figures:
- end to end: analyze_files on N images, including process start, MediaPipe import and model load
  (what a stage run pays);
- steady state: the same N images through a pool whose w workers have all loaded MediaPipe already
  (the per-image cost once every worker is up; process start is reported separately).
Images are read from disk (like the stage) and aligned crops are written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SIM2REAL_ASSET_MIRROR", str(REPO.parent / "shared" / "assets"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _timed_run(files: list[str], params, workers: int, crop_dir: Path | None) -> float:
    """End to end: analyze_files as a stage calls it."""
    from sim2real_faces.faces import analyze_files

    crops = [crop_dir / f"{i:05d}.png" for i in range(len(files))] if crop_dir else None
    start = time.perf_counter()
    table = analyze_files(files, params, crop_paths=crops, workers=workers, desc=f"{workers} worker(s)")
    elapsed = time.perf_counter() - start
    if (table["status"] == "unreadable").any():
        raise SystemExit(
            f"unreadable images in the benchmark set: {list(table.loc[table.status == 'unreadable', 'file'])}"
        )
    return elapsed


def _pid(_: object) -> int:
    return os.getpid()


def _warm_run(files: list[str], params, workers: int, crop_dir: Path | None) -> tuple[float, float]:
    """(start-up seconds, seconds for all files) with a pool of analyze_files' own worker functions."""
    import multiprocessing

    from sim2real_faces.faces import analysis

    crops = [str(crop_dir / f"{i:05d}.png") if crop_dir else None for i in range(len(files))]
    items = list(zip(files, crops, strict=True))
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=analysis._worker_init, initargs=(params,)) as pool:
        seen: set[int] = set()
        while len(seen) < workers:  # a worker answers only once its initializer (model load) is done
            seen.update(pool.map(_pid, range(4 * workers), chunksize=1))
        startup = time.perf_counter() - start
        start = time.perf_counter()
        for _ in pool.imap(
            analysis._worker_task, items, chunksize=max(1, min(8, len(items) // (4 * workers)))
        ):
            pass
        elapsed = time.perf_counter() - start
        pool.close()
        pool.join()
    return startup, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=200, help="number of real-dev images (max 557)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "real-dev")
    parser.add_argument("--no-crops", action="store_true", help="do not write aligned crops")
    args = parser.parse_args()

    import pandas as pd

    from sim2real_faces.faces import FaceParams

    manifest = pd.read_csv(args.photos / "manifest.csv")
    # Every k-th row so all three datasets (48 px, 256 px, 350 px photos) are in the mix.
    step = max(1, len(manifest) // args.n)
    files = [str(args.photos / p) for p in manifest["path"].iloc[::step].iloc[: args.n]]
    params = FaceParams()
    print(
        f"face analysis benchmark: {len(files)} images from {args.photos}, crop {params.crop_size}px, "
        f"views {list(params.pad_fractions)}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            crop_dir = None if args.no_crops else Path(tmp) / f"w{workers}"
            total = _timed_run(files, params, workers, crop_dir)
            startup, steady = _warm_run(files, params, workers, crop_dir)
            results.append((workers, total, startup, steady))
    n = len(files)
    header = ("workers", "end-to-end img/s", "ms/img", "steady img/s", "ms/img", "start s")
    print("{:>7} {:>17} {:>7} {:>13} {:>7} {:>7}".format(*header))
    for workers, total, startup, steady in results:
        print(
            f"{workers:>7} {n / total:>17.1f} {1000 * total / n:>7.1f} "
            f"{n / steady:>13.1f} {1000 * steady / n:>7.1f} {startup:>7.2f}"
        )


if __name__ == "__main__":
    main()
