"""Import a Unity Perception dataset into the embedded renderer's layout (``images/`` + ``metadata.csv``).

Two on-disk formats are read:

- **Perception 0.x** (what the study's Perception 0.5.0 wrote, and Perception 1.x's legacy
  ``PerceptionEndpoint``): ``<root>/Dataset<guid>/captures_NNN.json`` (150 captures per file, any
  number of files), ``metrics_NNN.json``, ``metric_definitions.json``; capture ``filename`` values
  are relative to ``<root>`` (e.g. ``RGB<guid>/rgb_2.png``).
- **SOLO** (Perception 1.x's default): ``<root>/sequence.<N>/step<S>.frame_data.json`` with the RGB
  capture ``step<S>.<sensor id>.png`` beside it, plus ``metadata.json`` and ``*_definitions.json``.

Per-image labels come from a metric that the ``SampleMetadataReporter`` randomizer
(``unity/Assets/Scripts/Randomizers.cs``) reports once per iteration: id :data:`SAMPLE_METRIC_ID`, a
Perception ``GenericMetric`` whose single string value is a JSON object (schema :data:`SAMPLE_SCHEMA`)::

    {"schema": "sim2real-faces/sample/1", "iteration": 7, "class": "happy", "identity": "id03",
     "expression": "laugh01", "intensity": 0.74, "head_yaw": 12.5, "light0_intensity": 1.9, ...}

In SOLO it appears in the frame's ``metrics`` as ``{"@type": "type.unity.com/unity.solo.GenericMetric",
"id": "sim2real.sample", "value": "<that JSON>"}``; in the 0.x layout as a ``metrics_NNN.json`` entry
whose ``metric_definition`` is the definition named ``sim2real.sample`` and whose ``values`` is
``["<that JSON>"]`` (a JSON object instead of the string is accepted too). ``class``, ``identity``,
``expression`` and ``intensity`` are required; every other key becomes a metadata column as is.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim2real_faces.errors import ProjectError

SAMPLE_METRIC_ID = "sim2real.sample"
SAMPLE_SCHEMA = "sim2real-faces/sample/1"
REQUIRED_FIELDS = ("class", "identity", "expression", "intensity")
SOLO_RGB = "type.unity.com/unity.solo.RGBCamera"
SOLO_GENERIC_METRIC = "type.unity.com/unity.solo.GenericMetric"


class PerceptionFormatError(ProjectError, ValueError):
    """A Perception dataset is missing files, holds malformed JSON or lacks what the importer needs."""


@dataclass
class Capture:
    """One RGB camera capture with the metrics reported for it."""

    image: Path
    sequence: int | str
    step: int
    source: Path  # the JSON file that described it
    metrics: list[dict[str, Any]] = field(default_factory=list)


def load_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file and the position."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise PerceptionFormatError(f"{path} not found: the Perception dataset is incomplete.") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PerceptionFormatError(
            f"{path}: malformed JSON ({error}); the Unity run was probably interrupted: generate again."
        ) from error


def _numbered(paths: Iterator[Path], pattern: str) -> list[Path]:
    """Paths sorted by the integer captured by ``pattern`` (``captures_2`` before ``captures_10``)."""
    found = []
    for path in paths:
        match = re.fullmatch(pattern, path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def detect_format(root: Path) -> tuple[str, Path]:
    """(``"solo"`` or ``"perception0"``, the folder that holds the data) for a dataset root."""
    root = Path(root)
    if not root.is_dir():
        raise PerceptionFormatError(f"{root} is not a folder: no Perception output to import.")
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for folder in candidates:
        if any(folder.glob("sequence.*/step*.frame_data.json")):
            return "solo", folder
    if root.name.startswith("Dataset") and any(root.glob("captures_*.json")):
        return "perception0", root.parent
    for folder in candidates:  # Perception 1.x's legacy endpoint writes <base>/<guid>/Dataset<guid>/
        datasets = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("Dataset"))
        if len(datasets) == 1:
            return "perception0", folder
        if len(datasets) > 1:
            raise PerceptionFormatError(
                f"{folder} holds several Dataset* folders {datasets}: import one run at a time."
            )
    raise PerceptionFormatError(
        f"{root} holds neither SOLO data (sequence.N/stepS.frame_data.json) nor a Perception 0.x "
        "Dataset*/captures_*.json folder."
    )


def _sample_definition_ids(dataset_dir: Path) -> set[str]:
    """Ids under which the sample metric is registered in a 0.x ``metric_definitions.json``."""
    path = dataset_dir / "metric_definitions.json"
    if not path.is_file():
        return set()
    definitions = load_json(path).get("metric_definitions")
    if not isinstance(definitions, list):
        raise PerceptionFormatError(f"{path}: 'metric_definitions' must be a list.")
    return {
        str(d.get("id")) for d in definitions if SAMPLE_METRIC_ID in (str(d.get("name")), str(d.get("id")))
    }


def read_perception0(root: Path) -> list[Capture]:
    """Camera captures of a 0.x dataset (all ``captures_*.json`` files) with their sample metrics."""
    (dataset_dir,) = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith("Dataset")]
    capture_files = _numbered(dataset_dir.iterdir(), r"captures_(\d+)\.json")
    if not capture_files:
        raise PerceptionFormatError(f"{dataset_dir} has no captures_*.json file.")
    captures: list[Capture] = []
    by_id: dict[str, Capture] = {}
    by_step: dict[tuple[str, int], Capture] = {}
    for path in capture_files:
        document = load_json(path)
        entries = document.get("captures") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise PerceptionFormatError(f"{path}: expected an object with a 'captures' list.")
        for entry in entries:
            sensor = entry.get("sensor") or {}
            if sensor.get("modality") != "camera":
                continue  # lidar and other sensors are not images
            if not entry.get("filename"):
                raise PerceptionFormatError(f"{path}: capture {entry.get('id')} has no filename.")
            capture = Capture(
                root / entry["filename"], str(entry.get("sequence_id")), int(entry["step"]), path
            )
            captures.append(capture)
            by_id[str(entry.get("id"))] = capture
            by_step[(str(entry.get("sequence_id")), int(entry["step"]))] = capture
    sample_ids = _sample_definition_ids(dataset_dir)
    for path in _numbered(dataset_dir.iterdir(), r"metrics_(\d+)\.json"):
        document = load_json(path)
        entries = document.get("metrics") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise PerceptionFormatError(f"{path}: expected an object with a 'metrics' list.")
        for entry in entries:
            if str(entry.get("metric_definition")) not in sample_ids:
                continue
            target = by_id.get(str(entry.get("capture_id"))) or by_step.get(
                (str(entry.get("sequence_id")), int(entry.get("step", -1)))
            )
            if target is None:
                raise PerceptionFormatError(
                    f"{path}: a {SAMPLE_METRIC_ID} metric (capture {entry.get('capture_id')}, sequence "
                    f"{entry.get('sequence_id')}, step {entry.get('step')}) matches no camera capture."
                )
            values = entry.get("values")
            if not isinstance(values, list) or len(values) != 1:
                raise PerceptionFormatError(f"{path}: {SAMPLE_METRIC_ID} values must be a one-item list.")
            target.metrics.append({"id": SAMPLE_METRIC_ID, "value": values[0], "source": str(path)})
    return captures


def read_solo(root: Path) -> list[Capture]:
    """RGB captures of a SOLO dataset (``sequence.N/stepS.frame_data.json``) with their metrics."""
    captures: list[Capture] = []
    for sequence_dir in _numbered(root.iterdir(), r"sequence\.(\d+)"):
        for frame_file in _numbered(sequence_dir.iterdir(), r"step(\d+)\.frame_data\.json"):
            frame = load_json(frame_file)
            if not isinstance(frame, dict):
                raise PerceptionFormatError(f"{frame_file}: expected a JSON object (a SOLO frame).")
            entries = frame.get("captures") or []
            rgb = [c for c in entries if c.get("@type") == SOLO_RGB]
            if not rgb:
                types = sorted({str(c.get("@type")) for c in entries})
                raise PerceptionFormatError(
                    f"{frame_file}: no capture of type {SOLO_RGB} (found {types}); the importer needs the "
                    "RGB camera image."
                )
            if len(rgb) > 1:
                raise PerceptionFormatError(f"{frame_file}: {len(rgb)} RGB cameras; the scenario uses one.")
            if not rgb[0].get("filename"):
                raise PerceptionFormatError(
                    f"{frame_file}: the RGB capture has no filename (images not saved?)."
                )
            metrics = [m for m in frame.get("metrics") or [] if m.get("id") == SAMPLE_METRIC_ID]
            for metric in metrics:
                if metric.get("@type") != SOLO_GENERIC_METRIC:
                    raise PerceptionFormatError(
                        f"{frame_file}: metric {SAMPLE_METRIC_ID} has type {metric.get('@type')!r}; expected "
                        f"{SOLO_GENERIC_METRIC} with a single string value."
                    )
                if "value" not in metric:
                    raise PerceptionFormatError(f"{frame_file}: metric {SAMPLE_METRIC_ID} has no 'value'.")
                metric["source"] = str(frame_file)
            captures.append(
                Capture(
                    sequence_dir / rgb[0]["filename"],
                    int(frame.get("sequence", -1)),
                    int(frame["step"]),
                    frame_file,
                    metrics,
                )
            )
    return captures


def read_captures(root: Path) -> tuple[str, list[Capture]]:
    """(format, RGB captures in order) of the Perception dataset at ``root``."""
    fmt, folder = detect_format(Path(root))
    captures = read_solo(folder) if fmt == "solo" else read_perception0(folder)
    if not captures:
        raise PerceptionFormatError(f"{root}: the Perception dataset holds no RGB camera capture.")
    for capture in captures:
        if not capture.image.is_file():
            raise PerceptionFormatError(
                f"{capture.source} names image {capture.image}, which is missing: the Unity run was "
                "interrupted or the folder was copied partly; generate again."
            )
    return fmt, captures


def sample_fields(capture: Capture) -> dict[str, Any]:
    """The per-image labels and randomizer values of one capture (from the sample metric)."""
    if len(capture.metrics) != 1:
        raise PerceptionFormatError(
            f"{capture.source}: capture {capture.image.name} has {len(capture.metrics)} {SAMPLE_METRIC_ID} "
            f"metrics (needs exactly 1); was it generated by this repository's unity/ project "
            "(SampleMetadataReporter)?"
        )
    value = capture.metrics[0]["value"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise PerceptionFormatError(
                f"{capture.metrics[0]['source']}: {SAMPLE_METRIC_ID} value is not JSON ({error})."
            ) from error
    if not isinstance(value, dict):
        raise PerceptionFormatError(
            f"{capture.metrics[0]['source']}: {SAMPLE_METRIC_ID} must be a JSON object."
        )
    if value.get("schema") != SAMPLE_SCHEMA:
        raise PerceptionFormatError(
            f"{capture.metrics[0]['source']}: {SAMPLE_METRIC_ID} schema {value.get('schema')!r}, expected "
            f"{SAMPLE_SCHEMA!r}."
        )
    missing = [k for k in REQUIRED_FIELDS if k not in value]
    if missing:
        raise PerceptionFormatError(f"{capture.metrics[0]['source']}: {SAMPLE_METRIC_ID} lacks {missing}.")
    bad = [k for k, v in value.items() if isinstance(v, (dict, list))]
    if bad:
        raise PerceptionFormatError(
            f"{capture.metrics[0]['source']}: {SAMPLE_METRIC_ID} fields {bad} are nested; use flat scalars."
        )
    return {k: v for k, v in value.items() if k != "schema"}


def import_dataset(root: Path, out_dir: Path, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Copy the captures of a Perception dataset to ``out_dir/images/`` and write ``out_dir/metadata.csv``
    (``file``, ``class``, ``identity``, ``expression``, ``intensity``, every other sample field, then
    ``perception_sequence``, ``perception_step``). Returns the metadata table.

    Without ``names`` every capture must carry exactly one sample metric and images are numbered
    ``00000.png``, ... in capture order. With ``names`` (the scenario's file names by iteration) the
    sample's ``iteration`` picks the name; captures without a sample metric or beyond the last
    iteration (Perception may capture a frame while the scenario winds down) are skipped and counted in
    ``table.attrs["skipped"]``; a missing or repeated iteration is an error.
    """
    _format, captures = read_captures(root)
    rows = []
    images_dir = Path(out_dir) / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    skipped = 0
    seen: dict[int, Path] = {}
    for index, capture in enumerate(captures):
        if names is not None and not capture.metrics:
            skipped += 1
            continue
        fields = sample_fields(capture)
        if names is None:
            name = f"{index:05d}.png"
        else:
            iteration = fields.get("iteration")
            if not isinstance(iteration, int) or iteration < 0:
                raise PerceptionFormatError(
                    f"{capture.source}: sample without a valid 'iteration' ({iteration!r})."
                )
            if iteration >= len(names):
                skipped += 1
                continue
            if iteration in seen:
                raise PerceptionFormatError(
                    f"{capture.source}: iteration {iteration} captured twice (also in {seen[iteration]})."
                )
            seen[iteration] = capture.source
            name = names[iteration]
        target = images_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if capture.image.suffix.lower() == ".png":
            shutil.copyfile(capture.image, target)
        else:
            import cv2

            image = cv2.imread(str(capture.image), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise PerceptionFormatError(f"{capture.image}: cannot be decoded.")
            cv2.imwrite(str(target), image)
        rows.append(
            {"file": name, **fields, "perception_sequence": capture.sequence, "perception_step": capture.step}
        )
    if names is not None:
        missing = sorted(set(range(len(names))) - set(seen))
        if missing:
            raise PerceptionFormatError(
                f"{root}: no image for {len(missing)} of {len(names)} iterations (first: {missing[:5]}); "
                "see the Unity log."
            )
    table = pd.DataFrame(rows)
    first = ["file", *REQUIRED_FIELDS]
    table = table[first + [c for c in table.columns if c not in first]]
    table.to_csv(Path(out_dir) / "metadata.csv", index=False)
    table.attrs["skipped"] = skipped
    return table
