"""Every project module a stage runs is one of that stage's DVC deps, so editing it reruns the stage.

The walk starts at the module of each stage's command (``python -m stages.<name>``), follows every
``import``/``from ... import`` of the project (module level and inside functions, since stages import
heavy modules lazily) and asks that each reached file lie under one of the stage's ``deps``. Files the
code reads besides its modules (the asset registry) count like modules. A stage may leave a module out
only through ``LEFT_OUT`` below, each entry with its reason.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim2real_faces", "stages")
# Files read by a module (not imported): a stage reaching the module also depends on them.
DATA_FILES = {"sim2real_faces/assets.py": ("sim2real_faces/registry/makehuman.csv",)}

# (stage name pattern, module path pattern) -> why that stage does not list it.
LEFT_OUT = {
    ("generate", "sim2real_faces/unity/*"): (
        "the Unity backend: editing it must not re-render the embedded default; switching "
        "generate.backend reruns generate through its params"
    ),
}
# stages/train.py imports every model's params class at module level and each model's code in that
# model's branch; train@<model> runs only its own branch, so it lists only its own modules (a CNN-only
# code change must not retrain the MLP). The MLP branch alone reads the feature groups (faces/).
_OTHER_BRANCHES = "imported by stages/train.py for another model's branch, which this model never runs"
_TRAINING = "sim2real_faces/training/{}.py"
for _model, _foreign in {
    "mlp": ("augment", "cnn", "fusion"),
    "mobilenetv2": ("mlp", "fusion"),
    "vgg16": ("mlp", "fusion"),
    "fusion": ("augment", "cnn", "mlp"),
}.items():
    for _module in _foreign:
        LEFT_OUT[(f"train@{_model}", _TRAINING.format(_module))] = _OTHER_BRANCHES
    if _model != "mlp":
        LEFT_OUT[(f"train@{_model}", "sim2real_faces/faces/*")] = _OTHER_BRANCHES


def module_file(name: str) -> Path | None:
    """The file of a dotted project module (package -> its __init__.py), or None if not the project's."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_files(path: Path) -> set[Path]:
    """Project files ``path`` imports directly (``from pkg import sub`` counts ``sub`` when a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[Path] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names += [".".join(parts[: k + 1]) for k in range(len(parts))]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path).split(".")
                drop = node.level - 1 if is_package else node.level
                package = package[: len(package) - drop] if drop else package
                if not is_package:
                    package = package[:-1] if node.level else package
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            parts = base.split(".")
            names += [".".join(parts[: k + 1]) for k in range(len(parts))]
            names += [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            file = module_file(name)
            if file is not None and file != path:
                found.add(file)
    return found


@cache
def closure(start: Path) -> frozenset[Path]:
    """``start`` and every project file reachable through its imports."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(imported_files(path) - seen)
    return frozenset(seen)


def required_paths(module: str) -> set[str]:
    files = closure(module_file(module))
    paths = {str(f.relative_to(ROOT)) for f in files}
    for source, extra in DATA_FILES.items():
        if source in paths:
            paths.update(extra)
    return paths


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def left_out(stage: str, path: str) -> bool:
    return any(
        fnmatch.fnmatch(stage, stage_pattern) and fnmatch.fnmatch(path, path_pattern)
        for stage_pattern, path_pattern in LEFT_OUT
    )


def pipeline_stages() -> list[tuple[str, str, list[str]]]:
    """(name, command, dep paths relative to the root) of every stage, foreach/matrix expanded."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return [
            (stage.addressing.split(":")[-1], stage.cmd, [str(Path(d.def_path)) for d in stage.deps])
            for stage in repo.index.stages
        ]


STAGES = pipeline_stages()


@pytest.mark.parametrize("name,cmd,deps", STAGES, ids=[s[0] for s in STAGES])
def test_stage_deps_hold_every_module_it_imports(name: str, cmd: str, deps: list[str]) -> None:
    match = re.match(r"python -m (stages\.\w+)", cmd)
    assert match, f"stage {name}: command {cmd!r} is not `python -m stages.<name>`"
    missing = sorted(
        path
        for path in required_paths(match.group(1))
        if not covered(path, deps) and not left_out(name, path)
    )
    assert not missing, f"dvc.yaml stage {name!r} runs these files but does not list them in deps: {missing}"


def test_left_out_entries_are_needed() -> None:
    """Each LEFT_OUT entry matches a module some stage really imports and leaves out of its deps."""
    for stage_pattern, path_pattern in LEFT_OUT:
        used = [
            path
            for name, cmd, deps in STAGES
            if fnmatch.fnmatch(name, stage_pattern)
            for path in required_paths(re.match(r"python -m (stages\.\w+)", cmd).group(1))
            if fnmatch.fnmatch(path, path_pattern) and not covered(path, deps)
        ]
        assert used, f"LEFT_OUT entry ({stage_pattern}, {path_pattern}) matches nothing: remove it"


def test_walker_follows_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The walk sees imports inside functions and ``from pkg import submodule``."""
    files = imported_files(ROOT / "stages" / "train.py")
    names = {str(f.relative_to(ROOT)) for f in files}
    assert "sim2real_faces/cli.py" in names  # imported inside main()
    assert any(n.startswith("sim2real_faces/params") for n in names)
