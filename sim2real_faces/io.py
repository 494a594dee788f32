"""Writing outputs so that an interrupted stage never leaves a mix of old and new files.

- :func:`atomic_file`: write into a temporary sibling, ``os.replace`` it over the target on success.
- :func:`atomic_dir`: fill a temporary sibling folder, swap it in for the target on success.
- :func:`write_marker` / :func:`check_marker`: a completion marker (``complete.json``) written last,
  holding the sha256 of a feature table and of every file in its crop folder. A reader that finds no
  marker, or a table or crops that no longer match it, refuses them with
  :class:`~sim2real_faces.errors.IncompleteOutputError`: the outputs are from an interrupted run, or
  one of them was rewritten without the other. Content digests (not modification times) are compared,
  so a ``dvc checkout`` that restores the files in any order still passes.

On an exception (Ctrl-C included) the temporary sibling is removed and the previous outputs are left
as they were; leftovers of a killed run (``.<name>.tmp-*``) are removed by the next run.

Reading what such a stage wrote: :func:`read_renders_metadata` (a renders folder's ``metadata.csv``,
checked against its ``images/``) and :func:`image_size`.

Running an external tool: :func:`run_logged` (argv, timeout, kept log; failures as the project's errors
with the end of the log, worded by :class:`RunErrors`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sim2real_faces.errors import IncompleteOutputError, ProjectError

if TYPE_CHECKING:
    import pandas as pd

MARKER = "complete.json"


def _temp_sibling(target: Path, directory: bool) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    # Leftovers of a run that was killed outright (no finally ran): they would otherwise end up inside
    # a DVC output folder such as data/real.
    for stale in [*target.parent.glob(f"{prefix}*"), *target.parent.glob(f".{target.name}.old-*")]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    handle, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    os.close(handle)
    return Path(name)


@contextmanager
def atomic_file(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` in one rename."""
    target = Path(target)
    temp = _temp_sibling(target, directory=False)
    try:
        yield temp
        os.chmod(temp, 0o644)  # mkstemp creates 0600
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_text(target: Path | str, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_file(target) as temp:
        temp.write_text(text)


def write_json(target: Path | str, data: Any, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON (with a final newline) to ``target`` atomically (its folder is
    created): every metrics and description file of the project."""
    write_text(target, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def write_csv(target: Path | str, frame: Any) -> None:
    """Write a pandas DataFrame to ``target`` (no index) atomically."""
    with atomic_file(target) as temp:
        frame.to_csv(temp, index=False)


@contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it takes ``target``'s place.

    The old folder is renamed aside, the new one renamed in, then the old one deleted: at every
    moment ``target`` is either the complete old folder, absent (between two renames), or the
    complete new one.
    """
    target = Path(target)
    temp = _temp_sibling(target, directory=True)
    old: Path | None = None
    try:
        yield temp
        os.chmod(temp, 0o755)  # mkdtemp creates 0700
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            old.rmdir()
            os.replace(target, old)
        os.replace(temp, target)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(folder: Path | str, exclude: tuple[str, ...] = (MARKER,)) -> dict[str, Any]:
    """``{"n_files": .., "sha256": ..}`` over every file below ``folder`` (relative path + content)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    n_files = 0
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in exclude):
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(file_sha256(path).encode() + b"\n")
            n_files += 1
    return {"n_files": n_files, "sha256": digest.hexdigest()}


def marker_content(table: Path, crops: Path, name: str | None = None) -> dict[str, Any]:
    """What :func:`write_marker` records: the table's and the crop folder's digests (no times: same bytes).

    ``name``: the table's final file name when ``table`` is still its temporary sibling.
    """
    return {
        "table": {"file": name or table.name, "sha256": file_sha256(table)},
        "crops": folder_digest(crops),
    }


def write_marker(marker: Path | str, table: Path | str, crops: Path | str, name: str | None = None) -> None:
    """Write the completion marker for ``table`` and ``crops`` (call it after both are complete)."""
    write_json(marker, marker_content(Path(table), Path(crops), name))


def check_marker(marker: Path | str, table: Path | str, crops: Path | str, stage: str) -> None:
    """Refuse ``table`` + ``crops`` unless ``marker`` exists and matches both (see module docstring)."""
    marker, table, crops = Path(marker), Path(table), Path(crops)
    rerun = f"Rerun the stage that writes them: `dvc repro {stage}` (or `python -m stages.{stage}`)."
    if not marker.is_file():
        raise IncompleteOutputError(
            f"{table}: its completion marker {marker} is missing, so the table and the crops in {crops} "
            f"may come from an interrupted run or from an older version of the stage. {rerun}"
        )
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError) as error:
        raise IncompleteOutputError(f"{marker} cannot be read ({error}). {rerun}") from None
    if not table.is_file():
        raise IncompleteOutputError(f"{table} not found. {rerun}")
    actual = marker_content(table, crops)
    if not isinstance(recorded, dict) or recorded.get("table") != actual["table"]:
        raise IncompleteOutputError(
            f"{table} is not the table its completion marker {marker} was written for (changed after the "
            f"run that wrote it, e.g. by an interrupted run). {rerun}"
        )
    if recorded.get("crops") != actual["crops"]:
        raise IncompleteOutputError(
            f"the crops in {crops} ({actual['crops']['n_files']} files) are not the ones {table} was "
            f"written with ({recorded.get('crops', {}).get('n_files')} files): the feature table is "
            f"older than its crops (an interrupted run?). {rerun}"
        )


@contextmanager
def table_with_crops(
    table: Path | str, crops: Path | str, marker: bool = True
) -> Iterator[tuple[Path, Path]]:
    """Yield (temporary table path, temporary crop folder) for a feature table and the crops it names.

    On success the completion marker ``<crops>/complete.json`` is written into the new crop folder
    (unless ``marker`` is False), the folder is swapped in, then the table replaced: a reader that sees
    a marker matching both knows they belong together (:func:`check_marker`). On an exception nothing
    is moved.
    """
    table, crops = Path(table), Path(crops)
    with atomic_file(table) as temp_table, atomic_dir(crops) as temp_crops:
        yield temp_table, temp_crops
        if marker:
            write_marker(temp_crops / MARKER, temp_table, temp_crops, name=table.name)


def read_renders_metadata(folder: Path | str, producer: str, error: type[ProjectError]) -> pd.DataFrame:
    """A renders folder's ``metadata.csv`` (beside its ``images/``) as a DataFrame, checked.

    ``file`` and ``class`` present, every file listed once and on disk under ``images/``; otherwise
    ``error`` is raised, its message naming the stage that writes the folder (``producer``, e.g.
    ``generate`` for data/synthetic/raw) to rerun.
    """
    import pandas as pd

    folder = Path(folder)
    path = folder / "metadata.csv"
    if not path.is_file():
        raise error(f"{path} not found: run `dvc repro {producer}` first.")
    metadata = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in ("file", "class") if c not in metadata.columns]
    if missing:
        raise error(f"{path} lacks column(s) {missing}; it must hold file (relative to images/) and class.")
    duplicated = metadata["file"][metadata["file"].duplicated()].tolist()
    if duplicated:
        raise error(f"{path}: file(s) listed twice: {duplicated[:5]}")
    absent = [f for f in metadata["file"] if not (folder / "images" / f).is_file()]
    if absent:
        raise error(
            f"{len(absent)} image(s) listed in {path} are missing under {folder / 'images'} "
            f"(e.g. {absent[:3]}); rerun `dvc repro {producer}`."
        )
    return metadata


def png_options(level: int) -> list[int]:
    """OpenCV PNG options: zlib ``level``, the "up" row filter and zlib's run-length strategy (all
    fixed: the same image gives the same bytes). "up" suits renders and encodes about 40% faster than
    libpng's adaptive filter choice; on noisy 1792x1267 frames the RLE strategy is a further ~30%
    faster than the default deflate strategy and its files are ~10% smaller."""
    import cv2

    return [
        cv2.IMWRITE_PNG_COMPRESSION,
        int(level),
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_UP,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
    ]


def image_size(path: Path | str) -> tuple[int, int] | None:
    """(width, height) of an image file; None when OpenCV cannot read it."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (int(image.shape[1]), int(image.shape[0]))


@dataclass(frozen=True)
class RunErrors:
    """How :func:`run_logged` reports a tool that failed: the errors it raises and their messages.

    ``timeout``, ``start`` and ``exit`` are ``str.format`` templates over ``program`` (``command[0]``),
    ``head`` (``command[:12]``), ``timeout_s``, ``log`` (the log path), and for ``start`` also ``error``
    (why it could not start), for ``exit`` also ``code`` (exit status), ``seconds`` (run time) and
    ``tail`` (the end of the log). ``log_by``: ``"program"`` when the tool writes the log itself (the
    tail is the log's, or stderr's without one), ``"runner"`` when :func:`run_logged` writes the tool's
    stdout + stderr there (the tail is stderr's, or stdout's when stderr is empty).
    """

    failed: type[Exception]  # raised on a timeout or a non-zero exit
    not_started: type[Exception]  # raised when the program cannot be started
    timeout: str
    start: str
    exit: str
    log_by: Literal["program", "runner"] = "program"
    tail_chars: int = 3000


def run_logged(command: Sequence[str], timeout_s: float, log_path: Path | str, what: RunErrors) -> None:
    """Run ``command`` (argv, no shell) within ``timeout_s`` seconds, its log kept at ``log_path`` (its
    folder is created); a timeout, a non-zero exit or a program that cannot start raises ``what``'s
    errors with their messages."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    names = {"program": command[0], "head": command[:12], "timeout_s": timeout_s, "log": log_path}
    start = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise what.failed(what.timeout.format(**names)) from error
    except OSError as error:
        raise what.not_started(what.start.format(**names, error=error)) from error
    if what.log_by == "runner":
        log_path.write_text(result.stdout + result.stderr)
    if result.returncode == 0:
        return
    n = what.tail_chars
    if what.log_by == "runner":
        tail = (result.stderr or result.stdout)[-n:]
    else:
        tail = log_path.read_text(errors="replace")[-n:] if log_path.is_file() else result.stderr[-n:]
    seconds = time.monotonic() - start
    raise what.failed(what.exit.format(**names, code=result.returncode, seconds=seconds, tail=tail))
