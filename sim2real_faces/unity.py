"""The Unity backend of stage ``generate`` (``generate.backend: unity``).

:func:`generate_with_unity` writes the scenario JSON (:class:`UnityScenario`: iterations, seed and every
randomizer parameter), exports the identities as GLB files into ``unity/Assets/Humans/`` (see
:mod:`sim2real_faces.gltf_export`), starts the Unity editor in batch mode on ``unity/`` (argv list, no
shell, log kept, timeout from params) and imports the Perception output with
:mod:`sim2real_faces.perception` into the embedded renderer's layout: ``<out_dir>/images/*.png`` and
``<out_dir>/metadata.csv``. ``generate.post`` (grey frames, blur, noise, JPEG) is image-space: it is applied
here in Python to the imported images (:func:`apply_post_to_images`), with the embedded renderer's
sampler and function, so both backends post-process a file name with the same values.

Params: section ``unity`` (:class:`UnityParams`, ``conf/unity/default.yaml``). The editor comes from
``unity.editor`` or, when that is empty, the environment variable ``UNITY_EDITOR``.

Batch mode notes. Perception captures only in Play mode, and the editor cannot enter Play mode from
``-executeMethod`` when ``-quit`` is on the command line (it quits when the method returns), so the
command omits ``-quit``: ``Sim2Real.Editor.BatchGenerate.Run`` builds the scene, enters Play mode and
calls ``EditorApplication.Exit`` (0 on success) when the scenario has finished. It also omits
``-nographics``, which disables the GPU device the cameras render with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sim2real_faces.errors import ProjectError
from sim2real_faces.params import from_dict
from sim2real_faces.render.dataset import GenerateParams, png_options
from sim2real_faces.render.randomizers import (
    BackgroundParams,
    CameraParams,
    HeadRotationParams,
    LightParams,
    PlacementParams,
    PostParams,
    apply_post,
    sample_post,
)
from sim2real_faces.render.scene import stream_rngs

SCENARIO_SCHEMA = "sim2real-faces/unity-scenario/1"
EDITOR_ENV = "UNITY_EDITOR"
EXECUTE_METHOD = "Sim2Real.Editor.BatchGenerate.Run"
HUMANS_DIR = "Assets/Humans"  # inside the Unity project (gitignored): identity GLBs
SHAPES_DIR = "Assets/Shapes"  # background shape GLBs
Range = tuple[float, float]


class UnityError(ProjectError, RuntimeError):
    """The Unity backend is not set up, failed, or produced an unexpected dataset."""


class UnityNotFoundError(UnityError):
    """No Unity editor configured or the configured one does not exist."""


# ---------------------------------------------------------------------------------------------------------
# Params (section "unity") and the scenario the C# side reads (unity/Assets/Scripts/ScenarioConfig.cs).
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnityParams:
    """Params section ``unity``: how to run the editor (the randomizers come from section ``generate``)."""

    editor: str = ""  # Unity editor executable; "" -> environment variable UNITY_EDITOR
    project: str = "unity"  # the Unity project folder, relative to the repository root
    timeout_s: int = 14400  # whole editor run
    output_format: Literal["solo", "perception"] = "solo"  # Perception endpoint: SOLO or legacy 0.x layout
    intensity_steps: list[float] = field(default_factory=lambda: [0.5, 1.0])  # baked morph targets per preset
    extra_args: list[str] = field(default_factory=list)  # appended to the editor command line
    keep_raw_output: bool = False  # keep Perception's own folder as <out_dir>/perception


@dataclass(frozen=True)
class IdentityEntry:
    """One exported identity: its GLB (relative to the Unity project) and its metadata columns."""

    name: str
    glb: str
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UnityScenario:
    """Everything the C# scenario reads (``ScenarioConfig.cs``); written as ``<out_dir>/unity_scenario.json``.

    ``camera``, ``background``, ``placement``, ``head`` and ``lights`` are the embedded renderer's params
    objects (section ``generate``) unchanged, so both backends draw from the same ranges. ``generate.post``
    is not here: Python applies it to the imported images (:func:`apply_post_to_images`).
    """

    iterations: int
    seed: int  # Perception's constants.randomSeed (uint32); it reseeds every iteration
    output_dir: str  # absolute path Perception writes to
    output_format: Literal["solo", "perception"]
    width: int
    height: int
    msaa: int
    camera: CameraParams
    background: BackgroundParams
    placement: PlacementParams
    head: HeadRotationParams
    lights: LightParams
    classes: dict[str, list[str]]  # class -> expression presets (GLB morph targets <preset>@<step>)
    intensity: Range
    intensity_steps: list[float]
    tears: dict[str, float]  # class -> probability of the GLB's "tears" node being shown
    identities: list[IdentityEntry]
    shape_assets: list[str]  # background shape GLBs, named by shape
    plan: list[dict[str, str]] = field(default_factory=list)  # per iteration: {"class", "identity"}
    schema: str = SCENARIO_SCHEMA


def validate_scenario(scenario: UnityScenario) -> None:
    """Stop before starting Unity on values the C# side cannot honour."""
    problems = []
    if scenario.iterations < 1:
        problems.append(f"iterations = {scenario.iterations} (>= 1 needed)")
    if not 0 <= scenario.seed < 2**32:
        problems.append(f"seed = {scenario.seed} (Perception seeds are uint32)")
    if not scenario.classes or any(not presets for presets in scenario.classes.values()):
        problems.append("every class needs at least one expression preset")
    if not scenario.identities:
        problems.append("no identities")
    steps = list(scenario.intensity_steps)
    if not steps or sorted(set(steps)) != steps or steps[0] <= 0:
        problems.append(f"unity.intensity_steps {steps} must be positive and increasing")
    elif not 0 <= scenario.intensity[0] <= scenario.intensity[1] <= steps[-1]:
        problems.append(f"expressions.intensity {list(scenario.intensity)} must lie in [0, {steps[-1]}]")
    names = {e.name for e in scenario.identities}
    for i, entry in enumerate(scenario.plan):
        if set(entry) != {"class", "identity"} or entry["class"] not in scenario.classes:
            problems.append(f"plan[{i}] = {entry} needs a known class and an identity")
            break
        if entry["identity"] not in names:
            problems.append(f"plan[{i}] names unknown identity {entry['identity']!r}")
            break
    if scenario.plan and len(scenario.plan) != scenario.iterations:
        problems.append(f"plan has {len(scenario.plan)} entries for {scenario.iterations} iterations")
    missing_shapes = set(scenario.background.shapes) - {Path(a).stem for a in scenario.shape_assets}
    if missing_shapes:
        problems.append(f"no shape asset for background shapes {sorted(missing_shapes)}")
    if problems:
        raise UnityError("the Unity scenario cannot run: " + "; ".join(problems))


def scenario_to_json(scenario: UnityScenario) -> str:
    """The scenario as deterministic JSON (sorted keys; tuples as lists)."""
    return json.dumps(asdict(scenario), indent=2, sort_keys=True) + "\n"


def write_scenario(scenario: UnityScenario, path: Path) -> Path:
    """Validate and write the scenario JSON."""
    validate_scenario(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scenario_to_json(scenario))
    return path


def read_scenario(path: Path) -> UnityScenario:
    """Read a scenario JSON back (checks names and types like the params loader)."""
    return from_dict(UnityScenario, json.loads(Path(path).read_text()), str(path))


def scenario_seed(root_seed: int) -> int:
    """The uint32 Perception seed of the Unity run, derived from the params' root seed."""
    return int(np.random.SeedSequence(int(root_seed), spawn_key=(0x0417,)).generate_state(1, np.uint32)[0])


def tears_probabilities(generate: Any, expressions: Any) -> dict[str, float]:
    """Class -> probability that a frame shows tears, wherever the params keep it (``expressions.tears``
    as a class -> probability map, or ``generate.tears`` with ``classes`` and ``probability``)."""
    tears = getattr(expressions, "tears", None)
    if isinstance(tears, Mapping):
        return {str(k): float(v) for k, v in tears.items()}
    tears = getattr(generate, "tears", None)
    if tears is not None and hasattr(tears, "classes"):
        return {str(c): float(tears.probability) for c in tears.classes}
    return {}


def build_scenario(
    generate: GenerateParams,
    unity: UnityParams,
    expressions: Any,
    identities: Sequence[IdentityEntry],
    plan: Sequence[Mapping[str, str]],
    seed: int,
    output_dir: Path,
    shape_assets: Sequence[str],
) -> UnityScenario:
    """The scenario for ``generate`` (randomizers, size), ``expressions`` (classes, intensity, tears) and
    ``unity`` (steps, format). ``generate.post`` is applied after the import
    (:func:`apply_post_to_images`)."""
    return UnityScenario(
        iterations=len(plan),
        seed=scenario_seed(seed),
        output_dir=str(Path(output_dir).absolute()),
        output_format=unity.output_format,
        width=generate.width,
        height=generate.height,
        msaa=generate.msaa,
        camera=generate.camera,
        background=generate.background,
        placement=generate.placement,
        head=generate.head,
        lights=generate.lights,
        classes={k: list(v) for k, v in expressions.classes.items()},
        intensity=tuple(expressions.intensity),
        intensity_steps=list(unity.intensity_steps),
        tears=tears_probabilities(generate, expressions),
        identities=list(identities),
        shape_assets=list(shape_assets),
        plan=[dict(p) for p in plan],
    )


# ---------------------------------------------------------------------------------------------------------
# The editor command line.
# ---------------------------------------------------------------------------------------------------------


def find_editor(params: UnityParams, environ: Mapping[str, str] | None = None) -> Path:
    """The Unity editor executable from ``unity.editor`` or ``$UNITY_EDITOR``; clear error otherwise."""
    environ = os.environ if environ is None else environ
    source = "unity.editor" if params.editor else f"${EDITOR_ENV}"
    value = params.editor or environ.get(EDITOR_ENV, "")
    if not value:
        raise UnityNotFoundError(
            "generate.backend=unity needs a Unity editor: set the param unity.editor "
            f"(e.g. `dvc exp run -S unity.editor=/opt/unity/2022.3.22f1/Editor/Unity`) or the environment "
            f"variable {EDITOR_ENV}; or use generate.backend=embedded. See unity/README.md."
        )
    path = Path(value).expanduser()
    if path.suffix == ".app" and path.is_dir():  # macOS bundle
        path = path / "Contents" / "MacOS" / "Unity"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise UnityNotFoundError(
            f"Unity editor {path} (from {source}) not found or not executable; fix unity.editor or "
            f"${EDITOR_ENV}, or use generate.backend=embedded."
        )
    return path


def build_unity_command(
    editor: Path, project: Path, scenario_json: Path, log_file: Path, extra_args: Sequence[str] = ()
) -> list[str]:
    """``<editor> -batchmode -projectPath <p> -executeMethod Sim2Real.Editor.BatchGenerate.Run
    -logFile <log> -sim2realScenario <json> [extra...]`` (no ``-quit``/``-nographics``: module doc)."""
    return [
        str(editor),
        "-batchmode",
        "-projectPath",
        str(Path(project).absolute()),
        "-executeMethod",
        EXECUTE_METHOD,
        "-logFile",
        str(Path(log_file).absolute()),
        "-sim2realScenario",
        str(Path(scenario_json).absolute()),
        *extra_args,
    ]


def run_unity(argv: list[str], timeout_s: int, log_file: Path) -> None:
    """Run the editor; a non-zero exit or a timeout raises with the end of the kept log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise UnityError(
            f"Unity did not finish within unity.timeout_s={timeout_s} s; log: {log_file}"
        ) from error
    except OSError as error:
        raise UnityNotFoundError(f"could not start the Unity editor {argv[0]}: {error}") from error
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.is_file() else result.stderr[-3000:]
        raise UnityError(
            f"Unity exited with code {result.returncode} after {time.monotonic() - start:.0f} s; "
            f"log: {log_file}\n{tail}"
        )


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
    ``post`` stream (:func:`sim2real_faces.render.scene.stream_rngs` + ``sample_post``) and are applied
    by ``apply_post``, exactly as the embedded renderer does for the same file. Every image is written
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
        values = sample_post(post, stream_rngs(seeds[file])["post"])
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
    from sim2real_faces.gltf_export import export_identities, export_shapes
    from sim2real_faces.render.dataset import identity_columns, plan_jobs

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
    from sim2real_faces.perception import import_dataset

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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sim2real_faces.unity prepare [OUT]``: export the GLBs and write the scenario JSON from
    params.yaml (into OUT, default ``unity_run/``) for a run by hand in the Unity editor (unity/README.md)."""
    import argparse

    from sim2real_faces.makehuman import ExpressionParams, HumanParams, sample_identities
    from sim2real_faces.params import load_params, load_section

    parser = argparse.ArgumentParser(prog="python -m sim2real_faces.unity")
    parser.add_argument("command", choices=["prepare"])
    parser.add_argument("out", nargs="?", default="unity_run", type=Path)
    args = parser.parse_args(argv)
    params = load_params()
    generate = load_section(GenerateParams, "generate", params)
    unity = load_section(UnityParams, "unity", params)
    humans = load_section(HumanParams, "humans", params)
    expressions = load_section(ExpressionParams, "expressions", params)
    identities = sample_identities(humans, int(params["seed"]))
    out = args.out.absolute()
    prepared = prepare_unity(
        generate, unity, identities, expressions, int(params["seed"]), out, out / "perception"
    )
    print(
        f"{prepared.scenario_json}: {prepared.scenario.iterations} iterations; "
        f"Perception writes to {out / 'perception'}"
    )


if __name__ == "__main__":
    main()
