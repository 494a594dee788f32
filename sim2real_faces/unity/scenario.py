"""Params section ``unity`` and the scenario JSON the C# side reads (``unity/Assets/Scripts/``).

:class:`UnityScenario` holds everything the Unity scenario needs: iterations, seed, the embedded
renderer's randomizer params (section ``generate``) unchanged, the classes and their expression presets,
the exported identities and background shapes, and the frame plan (class and identity per iteration).
:func:`write_scenario` validates it and writes deterministic JSON; :func:`read_scenario` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sim2real_faces.params import from_dict
from sim2real_faces.render.randomizers import (
    BackgroundParams,
    CameraParams,
    HeadRotationParams,
    LightParams,
    PlacementParams,
)
from sim2real_faces.seeds import UNITY_SCENARIO_WORD, derive_seed
from sim2real_faces.unity.errors import UnityError

if TYPE_CHECKING:
    from sim2real_faces.render.dataset import GenerateParams

SCENARIO_SCHEMA = "sim2real-faces/unity-scenario/1"
Range = tuple[float, float]


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
    is not here: Python applies it to the imported images
    (:func:`sim2real_faces.unity.backend.apply_post_to_images`).
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
    return derive_seed(int(root_seed), UNITY_SCENARIO_WORD)


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
    (:func:`sim2real_faces.unity.backend.apply_post_to_images`)."""
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
