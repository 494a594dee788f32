"""The generate stage's work: plan the frames, render them in worker processes, write PNGs + metadata.

Layout written under ``out_dir`` (``data/synthetic/raw``):

- ``images/<class>_<index>.png``: RGB PNGs, fixed zlib level, no timestamps (byte-identical reruns);
- ``metadata.csv``: one row per image, sorted by file: file, class, identity and its labels
  (ethnicity, ethnicity weights, gender, age), expression preset, intensity, every sampled
  randomizer value, seed;
- ``identities.json``: the full identity specs (everything needed to rebuild the people).

Every frame depends only on its own seed (:func:`sim2real_faces.render.plan.frame_seed`) and the
params, never on which worker renders it or in which order, so the output is the same for any number
of workers. Rendering happens only in spawned worker processes: the calling process never creates a
GL context, so it may run MediaPipe afterwards (tests do).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from tqdm import tqdm

from sim2real_faces.io import png_options
from sim2real_faces.render.plan import FrameJob, identity_columns, plan_jobs
from sim2real_faces.render.randomizers import RandomizerParamsError
from sim2real_faces.render.scene import SceneParams, metadata_row, sample_frame


@dataclass(frozen=True)
class GenerateParams(SceneParams):
    """Params section ``generate`` (conf/generate.yaml): the scene's keys (:class:`SceneParams`:
    size, anti-aliasing, randomizers, shading, shadows), flat in the section, and these."""

    backend: Literal["embedded", "unity"] = "embedded"
    n_per_class: int = 600
    workers: int = 2
    png_compression: int = 1  # zlib level 0-9 (fixed: same bytes on every run)

    def scene(self) -> SceneParams:
        """The section's scene keys as a plain :class:`SceneParams` (what the rendering workers get)."""
        return SceneParams(**{f.name: getattr(self, f.name) for f in fields(SceneParams)})

    def validate(self, where: str = "generate") -> None:
        if self.n_per_class < 1:
            raise RandomizerParamsError(f"params '{where}.n_per_class' = {self.n_per_class} must be >= 1.")
        if self.workers < 1:
            raise RandomizerParamsError(f"params '{where}.workers' = {self.workers} must be >= 1.")
        if not 0 <= self.png_compression <= 9:
            raise RandomizerParamsError(
                f"params '{where}.png_compression' = {self.png_compression}: use 0..9."
            )
        self.scene().validate(where)


# ------------------------------------------------------------------------------------------- worker side

_WORKER: dict[str, Any] = {}


@dataclass(frozen=True)
class WorkerConfig:
    """What every rendering worker needs (picklable)."""

    scene: SceneParams
    identities: list[dict[str, Any]]  # IdentitySpec.to_dict() of each identity
    expressions: Any  # ExpressionParams (section "expressions")
    image_dir: str
    png_compression: int
    threads: int  # llvmpipe rasteriser threads per worker


def _init_worker(config: WorkerConfig) -> None:
    os.environ["LP_NUM_THREADS"] = str(config.threads)  # before the GL context exists
    _WORKER.clear()
    _WORKER["config"] = config
    _WORKER["humans"] = OrderedDict()
    _WORKER["presets"] = {}


def _human(index: int):
    from sim2real_faces.humans import Human, IdentitySpec

    humans: OrderedDict = _WORKER["humans"]
    if index not in humans:
        spec = IdentitySpec.from_dict(_WORKER["config"].identities[index])
        humans[index] = Human.build(spec)
        while len(humans) > 2:  # jobs arrive sorted by identity: a tiny cache suffices
            humans.popitem(last=False)
    humans.move_to_end(index)
    return humans[index]


def _preset(name: str) -> dict[str, float]:
    from sim2real_faces.humans import resolve_preset

    cache = _WORKER["presets"]
    if name not in cache:
        cache[name] = resolve_preset(name, _WORKER["config"].expressions)
    return cache[name]


def _renderer():
    if "renderer" not in _WORKER:
        from sim2real_faces.render.scene import SceneRenderer

        _WORKER["renderer"] = SceneRenderer(_WORKER["config"].scene)
    return _WORKER["renderer"]


def render_job(job: FrameJob) -> tuple[dict[str, Any], float]:
    """Render one frame in this (worker) process, write its PNG; returns (metadata row, seconds)."""
    import cv2

    start = time.perf_counter()
    config: WorkerConfig = _WORKER["config"]
    sample = sample_frame(job, config.scene, config.expressions)
    human = _human(job.identity)
    weights = {} if sample.unit_weights is not None else _preset(sample.values["expression"])
    image = _renderer().render(human, weights, sample)
    path = Path(config.image_dir) / job.file
    ok = cv2.imwrite(str(path), image[:, :, ::-1], png_options(config.png_compression))
    if not ok:
        raise OSError(f"OpenCV could not write {path}; check the disk and the folder's permissions.")
    row = metadata_row(job, identity_columns(human.spec), sample)
    return row, time.perf_counter() - start


# ------------------------------------------------------------------------------------------- parent side


def render_jobs(
    jobs: Sequence[FrameJob], config: WorkerConfig, workers: int, desc: str = "render"
) -> list[dict[str, Any]]:
    """Render ``jobs`` in ``workers`` spawned processes (always at least one: never in this process).

    Returns the metadata rows sorted by file.
    """
    ctx = mp.get_context("spawn")
    workers = max(1, min(workers, len(jobs)))
    Path(config.image_dir).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    chunk = max(1, min(8, len(jobs) // (4 * workers)))
    with (
        ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool,
        tqdm(total=len(jobs), desc=desc, unit="img") as progress,
    ):
        for row, _seconds in pool.imap_unordered(render_job, jobs, chunksize=chunk):
            rows.append(row)
            progress.update()
    return sorted(rows, key=lambda r: r["file"])


def worker_threads(workers: int) -> int:
    """llvmpipe threads per worker: the machine's cores shared among the workers (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def write_dataset(
    out_dir: Path,
    params: GenerateParams,
    identities: Sequence[Any],
    expressions: Any,
    root_seed: int,
) -> pd.DataFrame:
    """Render the whole dataset into ``out_dir`` (images/, metadata.csv, identities.json).

    ``identities`` are ``IdentitySpec`` s, ``expressions`` the ``ExpressionParams`` (its classes,
    in order, are the dataset's classes).
    """
    from sim2real_faces.humans import validate_expression_params

    params.validate()
    validate_expression_params(expressions)
    classes = list(expressions.classes)
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    if image_dir.exists():
        for old in image_dir.glob("*.png"):
            old.unlink()
    image_dir.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(classes, params.n_per_class, len(identities), root_seed)
    config = WorkerConfig(
        scene=params.scene(),
        identities=[spec.to_dict() for spec in identities],
        expressions=expressions,
        image_dir=str(image_dir),
        png_compression=params.png_compression,
        threads=worker_threads(params.workers),
    )
    rows = render_jobs(jobs, config, params.workers, desc="generate")
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "metadata.csv", index=False)
    (out_dir / "identities.json").write_text(
        json.dumps([spec.to_dict() for spec in identities], indent=2, sort_keys=True) + "\n"
    )
    return table
