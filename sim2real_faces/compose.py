"""Compose ``conf/`` into ``params.yaml`` exactly as ``dvc exp run`` does (DVC's Hydra integration).

``python -m sim2real_faces.compose [override ...]``, e.g. ``profile=tiny``; no overrides gives the
committed ``params.yaml``. :func:`composed_section` and :func:`load_composed` give one section of a
composition (tests and notebooks: the values the pipeline would run, e.g. ``expressions`` with
``expressions=presets``), since the params dataclasses hold no values of their own that conf/ lacks.
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sim2real_faces.params import CONF_DIR as REPO_CONF_DIR
from sim2real_faces.params import check_classes, from_dict

CONF_DIR = Path("conf")

T = TypeVar("T")


def compose(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """Return the composed config as plain data."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        write_params(out, overrides, conf_dir)
        return yaml.safe_load(out.read_text())


@functools.cache
def _composed(overrides: tuple[str, ...], conf_dir: Path) -> dict[str, Any]:
    return compose(list(overrides), conf_dir)


def composed_section(name: str, overrides: tuple[str, ...] = (), conf_dir: Path = REPO_CONF_DIR) -> Any:
    """A fresh copy of the dotted section ``name`` of conf/ composed with ``overrides`` (cached).

    ``composed_section("expressions", ("expressions=presets",))``; load it into its dataclass with
    :func:`sim2real_faces.params.from_dict`.
    """
    data: Any = _composed(tuple(overrides), conf_dir.resolve())
    for part in name.split("."):
        data = data[part]
    return copy.deepcopy(data)


def load_composed(
    cls: type[T], name: str, overrides: tuple[str, ...] = (), conf_dir: Path = REPO_CONF_DIR
) -> T:
    """Section ``name`` of conf/ composed with ``overrides``, loaded into dataclass ``cls``."""
    return from_dict(cls, composed_section(name, overrides, conf_dir), name)


def write_params(output: Path, overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> None:
    """Write the composition to ``output`` with DVC's own composer, so the bytes match ``dvc exp run``."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(
        output, str(conf_dir.resolve()), None, "config", str(conf_dir.resolve()), overrides or []
    )


def main() -> None:
    """Recompose params.yaml from conf/ (and check what crosses sections, as every stage does)."""
    write_params(Path("params.yaml"), sys.argv[1:])
    check_classes(yaml.safe_load(Path("params.yaml").read_text()))
    print("params.yaml composed from conf/" + (f" with {sys.argv[1:]}" if sys.argv[1:] else ""))


if __name__ == "__main__":
    main()
