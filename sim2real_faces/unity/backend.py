"""The Unity backend of stage ``generate`` (``generate.backend: unity``), end to end.

:func:`generate_with_unity` takes the embedded renderer's frame plan (:mod:`sim2real_faces.render.plan`),
writes the scenario JSON (:mod:`sim2real_faces.unity.scenario`: iterations, seed and every randomizer
parameter), exports the identities and background shapes as GLB files into ``unity/Assets/``
(:mod:`sim2real_faces.unity.gltf`), runs the Unity editor in batch mode on ``unity/``
(:mod:`sim2real_faces.unity.editor`) and imports the Perception output with
:mod:`sim2real_faces.unity.perception` into the embedded renderer's layout: ``<out_dir>/images/*.png``
and ``<out_dir>/metadata.csv``. ``generate.post`` (grey frames, blur, noise, JPEG) is image-space: it is
applied here in Python to the imported images (:func:`apply_post_to_images`), with the embedded
renderer's sampler and function, so both backends post-process a file name with the same values.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim2real_faces.io import png_options
from sim2real_faces.render.plan import identity_columns, plan_jobs, post_values
from sim2real_faces.render.randomizers import PostParams, apply_post
from sim2real_faces.unity.editor import build_unity_command, find_editor, run_unity
from sim2real_faces.unity.errors import UnityError
from sim2real_faces.unity.gltf import export_identities, export_shapes
from sim2real_faces.unity.perception import import_dataset
from sim2real_faces.unity.scenario import (
    IdentityEntry,
    UnityParams,
    UnityScenario,
    build_scenario,
    write_scenario,
)

if TYPE_CHECKING:
    from sim2real_faces.render.dataset import GenerateParams

HUMANS_DIR = "Assets/Humans"  # inside the Unity project (gitignored): identity GLBs
SHAPES_DIR = "Assets/Shapes"  # background shape GLBs


# ---------------------------------------------------------------------------------------------------------
# Image-space post effects (generate.post) on the imported images.
# ---------------------------------------------------------------------------------------------------------

POST_COLUMNS = (
    "post_blur_sigma",
    "post_noise_sigma",
    "post_jpeg_quality",
    "post_noise_seed",
    "post_grayscale",
)


def apply_post_to_images(
    images_dir: Path, seeds: Mapping[str, int], post: PostParams, png_compression: int
) -> pd.DataFrame:
    """Apply ``generate.post`` to the imported images ``images_dir/<file>`` in place (once: the import
    copies fresh captures) and return one row per file: ``file`` and :data:`POST_COLUMNS`.

    ``seeds`` maps each file to its frame seed (``plan_jobs``); the values come from that seed's
    ``post`` stream (:func:`sim2real_faces.render.plan.post_values`) and are applied by ``apply_post``,
    exactly as the embedded renderer does for the same file. Every image is written
    back as an RGB PNG (alpha dropped) with the embedded renderer's PNG options, also when the sampled
    effects are off, so both backends' images have the same format and reruns the same bytes.
    """
    import cv2
    from tqdm import tqdm

    post.validate()
    rows = []
    for file in tqdm(sorted(seeds), desc="post (unity)", unit="img"):
        path = Path(images_dir) / file
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UnityError(f"{path}: the imported Perception image cannot be decoded; generate again.")
        values = post_values(post, seeds[file])
        image = apply_post(np.ascontiguousarray(bgr[:, :, ::-1]), values)
        if not cv2.imwrite(str(path), image[:, :, ::-1], png_options(png_compression)):
            raise OSError(f"OpenCV could not write {path}; check the disk and the folder's permissions.")
        rows.append({"file": file, **{column: values[column] for column in POST_COLUMNS}})
    return pd.DataFrame(rows, columns=["file", *POST_COLUMNS])


# ---------------------------------------------------------------------------------------------------------
# The whole backend.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_unity` produced: the scenario (and its JSON), the images' file names and the
    frame seeds (the embedded renderer's, used for ``generate.post``)."""

    scenario: UnityScenario
    scenario_json: Path
    files: list[str]  # image file name of each iteration
    identities: list[IdentityEntry]
    seeds: list[int] = field(default_factory=list)  # frame seed of each iteration (plan_jobs)


def prepare_unity(
    generate: GenerateParams,
    unity: UnityParams,
    identities: Sequence[Any],
    expressions: Any,
    seed: int,
    out_dir: Path,
    perception_dir: Path,
) -> Prepared:
    """Everything before the editor runs: the embedded renderer's frame plan (``plan_jobs``: class,
    identity and file of each image), the GLBs (identities in ``unity/Assets/Humans/``, background
    shapes in ``unity/Assets/Shapes/``) and ``<out_dir>/unity_scenario.json`` pointing Perception at
    ``perception_dir``."""
    generate.validate()
    project = Path(unity.project)
    if not (project / "Assets" / "Scripts" / "ScenarioConfig.cs").is_file():
        raise UnityError(f"unity.project={unity.project!r} is not this repository's Unity project (unity/).")
    jobs = sorted(
        plan_jobs(list(expressions.classes), generate.n_per_class, len(identities), seed),
        key=lambda j: j.index,
    )
    names = [spec.name for spec in identities]
    plan = [{"class": job.class_name, "identity": names[job.identity]} for job in jobs]
    glbs = export_identities(identities, expressions, unity.intensity_steps, project / HUMANS_DIR)
    entries = [
        IdentityEntry(
            spec.name, Path(glbs[spec.name]).relative_to(project).as_posix(), identity_columns(spec)
        )
        for spec in identities
    ]
    shapes = export_shapes(generate.background.shapes, project / SHAPES_DIR)
    shape_assets = [Path(p).relative_to(project).as_posix() for p in shapes]
    scenario = build_scenario(generate, unity, expressions, entries, plan, seed, perception_dir, shape_assets)
    scenario_json = write_scenario(scenario, Path(out_dir) / "unity_scenario.json")
    return Prepared(scenario, scenario_json, [job.file for job in jobs], entries, [job.seed for job in jobs])


def generate_with_unity(
    generate: GenerateParams,
    unity: UnityParams,
    identities: Sequence[Any],
    expressions: Any,
    seed: int,
    out_dir: Path,
) -> pd.DataFrame:
    """Stage generate with ``generate.backend: unity``: same plan, params and layout as the embedded one.

    Finds the editor first (one clear error without it), runs :func:`prepare_unity`, runs the editor
    (log ``<out_dir>/unity.log``), imports the Perception dataset and applies ``generate.post`` to its
    images (:func:`apply_post_to_images`): ``<out_dir>/images/<file>`` and ``<out_dir>/metadata.csv`` with
    the embedded renderer's columns (identity columns, expression, intensity, every randomizer value,
    the ``post_*`` values) plus ``iteration``; ``seed`` is the Unity run's seed (Perception reseeds every
    iteration from it; the post values come from the frame seeds of ``plan_jobs``). Returns the metadata.
    """
    out_dir = Path(out_dir)
    editor = find_editor(unity)  # fail fast, before exporting anything
    raw = Path(tempfile.mkdtemp(prefix="perception-"))
    prepared = prepare_unity(generate, unity, identities, expressions, seed, out_dir, raw)
    if (out_dir / "images").exists():
        shutil.rmtree(out_dir / "images")
    log_file = out_dir / "unity.log"
    argv = build_unity_command(
        editor, Path(unity.project), prepared.scenario_json, log_file, unity.extra_args
    )
    run_unity(argv, unity.timeout_s, log_file)
    metadata = import_dataset(raw, out_dir, names=prepared.files)
    skipped = metadata.attrs.get("skipped", 0)
    reported = sorted(set(POST_COLUMNS) & set(metadata.columns))
    if reported:
        raise UnityError(f"the Unity samples report {reported}; post effects are applied in Python only.")
    post = apply_post_to_images(
        out_dir / "images",
        dict(zip(prepared.files, prepared.seeds, strict=True)),
        generate.post,
        generate.png_compression,
    )
    metadata = metadata.merge(post, on="file", how="left", validate="one_to_one")
    metadata = finish_metadata(metadata, prepared.identities, prepared.scenario)
    metadata.to_csv(out_dir / "metadata.csv", index=False)
    print(f"generate (unity): {len(metadata)} images imported, {skipped} unlabelled/extra captures skipped")
    if unity.keep_raw_output:
        shutil.move(str(raw), out_dir / "perception")
    else:
        shutil.rmtree(raw)
    return metadata


def finish_metadata(
    metadata: pd.DataFrame, entries: Sequence[IdentityEntry], scenario: UnityScenario
) -> pd.DataFrame:
    """Check the import against the scenario and lay the table out like the embedded renderer's."""
    if len(metadata) != scenario.iterations:
        raise UnityError(f"Unity wrote {len(metadata)} labelled images for {scenario.iterations} iterations.")
    if scenario.plan:
        expected = [(p["class"], p["identity"]) for p in scenario.plan]
        got = list(zip(metadata["class"], metadata["identity"], strict=True))
        if sorted(got) != sorted(expected):
            raise UnityError("the classes/identities Unity reports differ from the scenario's plan.")
    labels = pd.DataFrame([e.labels for e in entries])
    if "identity" not in labels.columns:
        labels["identity"] = [e.name for e in entries]
    label_columns = [c for c in labels.columns if c != "identity"]
    metadata = metadata.drop(columns=[c for c in label_columns if c in metadata.columns])
    metadata = metadata.merge(labels, on="identity", how="left", validate="many_to_one")
    metadata["seed"] = scenario.seed
    first = ["file", "class", "identity", *label_columns, "expression", "intensity"]
    metadata = metadata[first + [c for c in metadata.columns if c not in first]]
    return metadata.sort_values("file", kind="stable").reset_index(drop=True)
