"""The Unity editor: where it is (:func:`find_editor`), its command line (:func:`build_unity_command`)
and the run (:func:`run_unity`: argv list, no shell, log kept, timeout from params).

The editor comes from ``unity.editor`` or, when that is empty, the environment variable ``UNITY_EDITOR``.

Batch mode notes. Perception captures only in Play mode, and the editor cannot enter Play mode from
``-executeMethod`` when ``-quit`` is on the command line (it quits when the method returns), so the
command omits ``-quit``: ``Sim2Real.Editor.BatchGenerate.Run`` builds the scene, enters Play mode and
calls ``EditorApplication.Exit`` (0 on success) when the scenario has finished. It also omits
``-nographics``, which disables the GPU device the cameras render with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from sim2real_faces.io import RunErrors, run_logged
from sim2real_faces.unity.errors import UnityError, UnityNotFoundError
from sim2real_faces.unity.scenario import UnityParams

EDITOR_ENV = "UNITY_EDITOR"
EXECUTE_METHOD = "Sim2Real.Editor.BatchGenerate.Run"
UNITY_RUN = RunErrors(
    failed=UnityError,
    not_started=UnityNotFoundError,
    timeout="Unity did not finish within unity.timeout_s={timeout_s} s; log: {log}",
    start="could not start the Unity editor {program}: {error}",
    exit="Unity exited with code {code} after {seconds:.0f} s; log: {log}\n{tail}",
    log_by="program",  # -logFile
    tail_chars=3000,
)


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
    run_logged(argv, timeout_s, log_file, UNITY_RUN)
