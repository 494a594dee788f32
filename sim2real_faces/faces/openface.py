"""OpenFace 2.x as the ``openface`` backend (:mod:`sim2real_faces.faces.backend`): run it, parse its CSVs.

The study ran ``FaceLandmarkImg -fdir <class dir> -out_dir <out>`` (one CSV per image, one row per
face). Here OpenFace runs either from a local build (``extract.openface.runner: binary`` with
``extract.openface.binary_dir``) or in a container (``runner: docker``, ``extract.openface.image``
pinned by digest), always with an argv list (never a shell). ``FaceLandmarkImg`` gets the images as
repeated ``-f`` arguments, which its ``ImageCapture`` treats exactly like the files of ``-fdir``, so
several processes can share the work. ``FeatureExtraction`` treats a folder as one video (it tracks
the face from image to image), so it runs once per folder with ``-fdir``; prefer ``FaceLandmarkImg``
for independent images.

Parsing: OpenFace writes ``", "`` separated headers (``frame, timestamp, confidence, ...``) and
plain ``","`` data rows; :func:`read_openface_csv` strips the leading spaces and checks the values.
:func:`openface_table` maps the CSVs back to the input images and returns the same table as the
embedded backend (:func:`sim2real_faces.faces.analysis.analyze_files`): ``file``, ``face``, ``status``
(``ok`` / ``no_face`` / ``unreadable``), ``reason``, ``confidence``, ``success``, ``pose_R*``,
``AU*_r``, the bounding box of the 68 landmarks, and ``aligned`` (OpenFace's similarity-aligned face
image when ``simalign`` is among the outputs).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from sim2real_faces.errors import ProjectError
from sim2real_faces.faces.columns import POSE_COLUMNS
from sim2real_faces.faces.geometry import GEOMETRY_COLUMNS, SCHEME_SIZES, geometry_features
from sim2real_faces.io import RunErrors, run_logged
from sim2real_faces.params import Count, PositiveInt

Program = Literal["FaceLandmarkImg", "FeatureExtraction"]
Output = Literal["aus", "pose", "2Dfp", "3Dfp", "pdmparams", "gaze", "hogalign", "simalign", "tracked"]

# A public OpenFace 2.x build (2018); the digest is the one other projects pin (e.g. OpenFace
# FeatureExtraction at /home/openface-build/build/bin). Check it with `docker pull` before relying on it.
DEFAULT_IMAGE = "algebr/openface@sha256:f43ad4e7fa4530143c7a9e0e8eca7e4f2b45599c1ef19680b68ad1eebba05197"
DEFAULT_IMAGE_BIN_DIR = "/home/openface-build/build/bin"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # what OpenFace's ImageCapture reads from -fdir
CONTAINER_IN = "/data/in"
CONTAINER_OUT = "/data/out"
_AU_R = re.compile(r"^AU\d\d_r$")
_LAST_INT = re.compile(r"(\d+)$")


class OpenFaceError(ProjectError, RuntimeError):
    """Base class: OpenFace is unavailable, failed, or wrote something unexpected."""


class OpenFaceNotFoundError(OpenFaceError):
    """The OpenFace binary or the container runtime/image is not available as configured."""


class OpenFaceRunError(OpenFaceError):
    """OpenFace ran but exited with an error or timed out."""


class OpenFaceOutputError(OpenFaceError):
    """An OpenFace CSV is malformed (missing columns, non-numeric values)."""


OPENFACE_RUN_ERRORS = RunErrors(
    failed=OpenFaceRunError,
    not_started=OpenFaceNotFoundError,
    timeout="OpenFace did not finish within extract.openface.timeout_s={timeout_s} s: {head} ...",
    start="could not start {program}: {error}",
    exit="OpenFace exited with code {code}; log {log}; command {head} ...; output tail:\n{tail}",
    log_by="runner",  # OpenFace prints to stdout/stderr; the runner keeps both as openface.log
    tail_chars=2000,
)


@dataclass(frozen=True)
class OpenFaceParams:
    """Params section ``extract.openface``."""

    program: Program = "FaceLandmarkImg"
    runner: Literal["docker", "binary"] = "docker"
    binary_dir: str = ""  # folder holding a local OpenFace build's executables (runner: binary)
    docker: str = "docker"  # container CLI (runner: docker)
    image: str = DEFAULT_IMAGE  # must be pinned by digest: name@sha256:<64 hex>
    image_bin_dir: str = DEFAULT_IMAGE_BIN_DIR  # where the image keeps the executables
    outputs: list[Output] = field(default_factory=lambda: ["aus", "pose", "2Dfp", "3Dfp", "simalign"])
    sim_size: PositiveInt = (
        112  # -simsize: side of the similarity-aligned face in pixels (OpenFace's default)
    )
    extra_args: list[str] = field(default_factory=list)  # e.g. ["-wild"] or ["-multi_view", "1"]
    timeout_s: Count = 3600  # per OpenFace process


@dataclass(frozen=True)
class Job:
    """One OpenFace process: its argv, the host output folder and the images it covers."""

    argv: list[str]
    out_dir: Path
    inputs: list[Path]
    sequence_dir: Path | None = None  # FeatureExtraction: the folder read as one sequence


def output_flags(params: OpenFaceParams) -> list[str]:
    """OpenFace's output-selection flags (with any output flag set, only those outputs are written)."""
    flags = [f"-{name}" for name in params.outputs]
    if "simalign" in params.outputs:
        flags += ["-simsize", str(params.sim_size)]
    return flags


def _check_image_pinned(image: str) -> None:
    if not re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", image or ""):
        raise OpenFaceNotFoundError(
            f"extract.openface.image = {image!r} is not pinned by digest: set it to <name>@sha256:<64 hex> "
            "(e.g. `docker inspect --format '{{index .RepoDigests 0}}' <image>`), or use "
            "extract.openface.runner=binary with extract.openface.binary_dir, or extract.backend=embedded."
        )


def executable(params: OpenFaceParams) -> str:
    """The program to start: the local binary (checked) or the container CLI (checked)."""
    if params.runner == "binary":
        if not params.binary_dir:
            raise OpenFaceNotFoundError(
                "extract.backend=openface with extract.openface.runner=binary needs "
                f"extract.openface.binary_dir (the folder with OpenFace's {params.program}); "
                "or set extract.openface.runner=docker, or extract.backend=embedded."
            )
        path = Path(params.binary_dir) / params.program
        if not path.is_file() or not os.access(path, os.X_OK):
            raise OpenFaceNotFoundError(
                f"OpenFace's {params.program} not found or not executable at {path} "
                f"(extract.openface.binary_dir={params.binary_dir!r}); build OpenFace 2.x and point "
                "extract.openface.binary_dir at its build/bin, use extract.openface.runner=docker, "
                "or set extract.backend=embedded."
            )
        return str(path)
    _check_image_pinned(params.image)
    found = shutil.which(params.docker)
    if found is None:
        raise OpenFaceNotFoundError(
            f"extract.backend=openface with extract.openface.runner=docker needs the container CLI "
            f"{params.docker!r} (extract.openface.docker), which is not on PATH; install Docker, or use "
            "extract.openface.runner=binary with extract.openface.binary_dir, or extract.backend=embedded."
        )
    return found


def _input_args(program: Program, inputs: Sequence[str], sequence_dir: str | None) -> list[str]:
    if program == "FeatureExtraction":
        assert sequence_dir is not None
        return ["-fdir", sequence_dir]
    args: list[str] = []
    for path in inputs:
        args += ["-f", path]
    return args


def build_command(
    params: OpenFaceParams,
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    sequence_dir: Path | None = None,
    mount_root: Path | None = None,
    exe: str | None = None,
    user: tuple[int, int] | None = None,
) -> list[str]:
    """The argv of one OpenFace run over ``inputs`` (``FaceLandmarkImg``) or ``sequence_dir``
    (``FeatureExtraction``), writing into ``out_dir``.

    runner ``binary``: ``[<binary_dir>/<program>, -f img ..., -out_dir out, flags...]`` with absolute
    paths. runner ``docker``: ``docker run --rm --network none --user uid:gid -v <mount_root>:/data/in:ro
    -v <out_dir>:/data/out --entrypoint <image_bin_dir>/<program> <image> ...`` with the paths
    translated into the container. ``exe`` and ``user`` default to :func:`executable` and the calling
    user (given explicitly in tests).
    """
    exe = exe if exe is not None else executable(params)
    out_dir = Path(out_dir).absolute()
    flags = output_flags(params) + list(params.extra_args)
    if params.runner == "binary":
        ins = [str(Path(p).absolute()) for p in inputs]
        seq = str(Path(sequence_dir).absolute()) if sequence_dir is not None else None
        return [exe, *_input_args(params.program, ins, seq), "-out_dir", str(out_dir), *flags]
    root = Path(mount_root if mount_root is not None else common_root(inputs, sequence_dir)).absolute()

    def inside(path: Path) -> str:
        rel = Path(path).absolute().relative_to(root)
        return f"{CONTAINER_IN}/{rel.as_posix()}" if rel.parts else CONTAINER_IN

    ins = [inside(p) for p in inputs]
    seq = inside(sequence_dir) if sequence_dir is not None else None
    uid, gid = user if user is not None else (os.getuid(), os.getgid())
    return [
        exe,
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        f"{uid}:{gid}",
        "-v",
        f"{root}:{CONTAINER_IN}:ro",
        "-v",
        f"{out_dir}:{CONTAINER_OUT}",
        "--entrypoint",
        f"{params.image_bin_dir.rstrip('/')}/{params.program}",
        params.image,
        *_input_args(params.program, ins, seq),
        "-out_dir",
        CONTAINER_OUT,
        *flags,
    ]


def common_root(inputs: Sequence[Path], sequence_dir: Path | None = None) -> Path:
    """The deepest folder holding every input (what the container mounts read-only)."""
    dirs = [str(Path(p).absolute().parent) for p in inputs]
    if sequence_dir is not None:
        dirs.append(str(Path(sequence_dir).absolute()))
    if not dirs:
        raise ValueError("no OpenFace inputs given")
    return Path(os.path.commonpath(dirs))


def plan_jobs(params: OpenFaceParams, images: Sequence[Path], work_dir: Path, workers: int = 1) -> list[Job]:
    """Split ``images`` into OpenFace processes, each with its own output folder under ``work_dir``.

    FaceLandmarkImg: images of one folder share a stem namespace, so each job holds images of one
    folder; folders with many images are cut into up to ``workers`` chunks. FeatureExtraction: one
    job per folder (a folder is one sequence).
    """
    by_dir: dict[Path, list[Path]] = {}
    for image in images:
        by_dir.setdefault(Path(image).absolute().parent, []).append(Path(image))
    jobs: list[Job] = []
    exe = executable(params)
    for d_index, (folder, files) in enumerate(sorted(by_dir.items())):
        stems = [f.stem for f in files]
        if len(set(stems)) != len(stems):
            raise OpenFaceError(f"{folder}: two images share a file stem; OpenFace names its CSVs by stem.")
        if params.program == "FeatureExtraction":
            out = work_dir / f"dir{d_index:04d}"
            argv = build_command(params, files, out, sequence_dir=folder, exe=exe)
            jobs.append(Job(argv, out, list(files), folder))
            continue
        n_chunks = max(1, min(workers, len(files)))
        for c_index, chunk in enumerate(np.array_split(np.arange(len(files)), n_chunks)):
            chunk_files = [files[i] for i in chunk]
            out = work_dir / f"dir{d_index:04d}_part{c_index:02d}"
            jobs.append(Job(build_command(params, chunk_files, out, exe=exe), out, chunk_files))
    return jobs


def run_job(job: Job, timeout_s: int) -> None:
    """Run one OpenFace process (no shell); errors carry the command and the end of its output."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    run_logged(job.argv, timeout_s, job.out_dir / "openface.log", OPENFACE_RUN_ERRORS)


def read_openface_csv(path: Path) -> pd.DataFrame:
    """One OpenFace CSV as a numeric table with clean column names (header-only files give no rows)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise OpenFaceOutputError(
            f"{path}: not a readable OpenFace CSV ({error}); rerun OpenFace."
        ) from error
    table.columns = [str(c).strip() for c in table.columns]
    required = ["confidence", "success"]
    missing = [c for c in required if c not in table.columns]
    if "face" not in table.columns and "frame" not in table.columns:
        missing.append("face (FaceLandmarkImg) or frame (FeatureExtraction)")
    if missing:
        raise OpenFaceOutputError(
            f"{path}: OpenFace CSV lacks column(s) {missing}; found {list(table.columns)[:8]} ... "
            "Is this an OpenFace 2.x output?"
        )
    for column in table.columns:
        try:
            table[column] = pd.to_numeric(table[column])
        except (ValueError, TypeError) as error:
            raise OpenFaceOutputError(
                f"{path}: column {column!r} has non-numeric values ({error}); the file is corrupt or "
                "truncated: rerun OpenFace."
            ) from error
    return table


def normalise_rows(raw: pd.DataFrame, source: Path) -> pd.DataFrame:
    """Keep the embedded backend's columns of an OpenFace table (face, confidence, success, pose_R*,
    AU*_r, landmark bbox), with ``face`` as an int index; with the 3D landmarks (output ``3Dfp``:
    ``X_i, Y_i, Z_i``, camera-frame mm) also the ``geo_*`` geometry of the 68 iBUG points."""
    out = pd.DataFrame(index=raw.index)
    if "face" in raw.columns:
        out["face"] = raw["face"].astype(int)
    elif "face_id" in raw.columns:
        out["face"] = raw["face_id"].astype(int)
    else:
        out["face"] = 0
    out["confidence"] = raw["confidence"].astype(float)
    out["success"] = raw["success"].astype(int)
    for column in POSE_COLUMNS:
        if column in raw.columns:
            out[column] = raw[column].astype(float)
    for column in [c for c in raw.columns if _AU_R.match(c)]:
        out[column] = raw[column].astype(float)
    xs = [c for c in raw.columns if re.fullmatch(r"x_\d+", c)]
    ys = [c for c in raw.columns if re.fullmatch(r"y_\d+", c)]
    if xs and ys:
        out["bbox_x0"] = raw[xs].min(axis=1)
        out["bbox_y0"] = raw[ys].min(axis=1)
        out["bbox_x1"] = raw[xs].max(axis=1)
        out["bbox_y1"] = raw[ys].max(axis=1)
    n_points = SCHEME_SIZES["ibug68"]
    xyz = [[f"{axis}_{i}" for axis in "XYZ"] for i in range(n_points)]
    if all(c in raw.columns for point in xyz for c in point):
        landmarks = raw[[c for point in xyz for c in point]].to_numpy(float).reshape(-1, n_points, 3)
        found = raw["success"].astype(int).to_numpy() == 1
        geometry = np.full((len(raw), len(GEOMETRY_COLUMNS)), np.nan)
        if found.any():
            geometry[found] = geometry_features(landmarks[found], "ibug68")
        for j, column in enumerate(GEOMETRY_COLUMNS):
            out[column] = geometry[:, j]
    if out["confidence"].isna().any():
        raise OpenFaceOutputError(f"{source}: empty confidence values; rerun OpenFace.")
    return out


def _aligned_images(folder: Path) -> dict[int, Path]:
    """OpenFace's aligned faces in ``folder`` keyed by the number ending their name (face or frame)."""
    found: dict[int, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            match = _LAST_INT.search(path.stem)
            if path.suffix.lower() in IMAGE_SUFFIXES and match:
                found[int(match.group(1))] = path
    return found


def _no_face(file: str, reason: str, status: str = "no_face") -> dict:
    return {"file": file, "face": 0, "status": status, "reason": reason, "confidence": np.nan, "success": 0}


def sequence_frames(folder: Path) -> list[Path]:
    """The images of ``folder`` in the order FeatureExtraction reads them (frame 1, 2, ...)."""
    return sorted(
        (p for p in Path(folder).iterdir() if p.suffix in IMAGE_SUFFIXES),
        key=lambda p: str(p),
    )


def collect_job(job: Job, program: Program, given: dict[Path, str]) -> list[pd.DataFrame]:
    """Parse one job's CSVs into per-image tables (``file`` = the path as the caller gave it)."""
    tables: list[pd.DataFrame] = []
    if program == "FeatureExtraction":
        assert job.sequence_dir is not None
        csv = job.out_dir / f"{job.sequence_dir.name}.csv"
        if not csv.is_file():
            raise OpenFaceOutputError(
                f"FeatureExtraction wrote no {csv}; see {job.out_dir / 'openface.log'}."
            )
        raw = read_openface_csv(csv)
        frames = sequence_frames(job.sequence_dir)
        aligned = _aligned_images(job.out_dir / f"{job.sequence_dir.name}_aligned")
        wanted = {p.absolute() for p in job.inputs}
        for number, image in enumerate(frames, start=1):
            if image.absolute() not in wanted:
                continue
            rows = raw[raw["frame"] == number] if not raw.empty else raw
            tables.append(_image_table(rows, csv, given[image.absolute()], {0: aligned.get(number)}))
        return tables
    for image in job.inputs:
        csv = job.out_dir / f"{image.stem}.csv"
        file = given[image.absolute()]
        if not csv.is_file():
            tables.append(pd.DataFrame([_no_face(file, "openface wrote no CSV (no face detected)")]))
            continue
        raw = read_openface_csv(csv)
        aligned = _aligned_images(job.out_dir / f"{image.stem}_aligned")
        tables.append(_image_table(raw, csv, file, aligned))
    return tables


def _image_table(raw: pd.DataFrame, csv: Path, file: str, aligned: dict[int, Path | None]) -> pd.DataFrame:
    if raw.empty:
        return pd.DataFrame([_no_face(file, "openface found no face")])
    rows = normalise_rows(raw, csv)
    rows = rows[rows["success"] == 1]
    if rows.empty:
        return pd.DataFrame([_no_face(file, "openface: landmark fitting failed (success=0)")])
    rows = rows.sort_values(["confidence", "face"], ascending=[False, True], kind="stable").copy()
    rows.insert(0, "file", file)
    rows.insert(2, "status", "ok")
    rows.insert(3, "reason", "")
    rows["aligned"] = [str(aligned.get(int(f)) or "") for f in rows["face"]]
    return rows.reset_index(drop=True)


def readable(path: Path) -> str:
    """'' when OpenCV can decode ``path`` (OpenFace exits on an unreadable image), else the reason."""
    if not Path(path).is_file():
        return "file not found"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return "" if image is not None and image.size else "OpenCV cannot decode it"


def openface_table(
    paths: Sequence[str | Path], params: OpenFaceParams, work_dir: Path, workers: int = 1
) -> pd.DataFrame:
    """Run OpenFace over ``paths`` and return the face table (one row per face, most confident first
    per image; a ``no_face`` row for an image without a face; an ``unreadable`` row, never sent to
    OpenFace, for a file OpenCV cannot decode)."""
    given = {Path(p).absolute(): str(p) for p in paths}
    good: list[Path] = []
    tables: list[pd.DataFrame] = []
    for p in paths:
        reason = readable(Path(p))
        if reason:
            tables.append(pd.DataFrame([_no_face(str(p), f"unreadable: {reason}", status="unreadable")]))
        else:
            good.append(Path(p))
    if good:
        jobs = plan_jobs(params, good, Path(work_dir), workers)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(run_job, job, params.timeout_s) for job in jobs]
            for future in tqdm(futures, desc=f"OpenFace {params.program}", unit="job"):
                future.result()
        for job in jobs:
            tables.extend(collect_job(job, params.program, given))
    order = {str(p): i for i, p in enumerate(paths)}
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    table["reason"] = table["reason"].fillna("")
    table["_order"] = table["file"].map(order)
    table = table.sort_values(["_order"], kind="stable").drop(columns="_order").reset_index(drop=True)
    return table


def write_crop(aligned: str | Path, crop_path: Path, size: int) -> None:
    """Save OpenFace's aligned face as an RGB PNG of ``size`` x ``size`` pixels."""
    image = cv2.imread(str(aligned), cv2.IMREAD_COLOR)
    if image is None:
        raise OpenFaceOutputError(f"{aligned}: OpenFace's aligned face cannot be read; rerun OpenFace.")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    crop_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(crop_path), image):
        raise OSError(f"could not write {crop_path}")
