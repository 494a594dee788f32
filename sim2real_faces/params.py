"""One small typed loader for ``params.yaml``.

DVC composes ``conf/`` into ``params.yaml`` (its Hydra integration); stages never call Hydra
themselves. Each module declares the dataclass of the section it reads, and
:func:`load_section` turns that section into an instance, checking names and types so a typo
in ``params.yaml`` or a ``-S`` override stops with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

PARAMS_FILE = Path("params.yaml")

T = TypeVar("T")


class ParamsError(ValueError):
    """A params section is missing, misspelt or has a value of the wrong type."""


def load_params(path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Read the whole ``params.yaml`` as a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run the stage from the repository root (dvc repro does).")
    with path.open() as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping at its top level.")
    return data


def load_section(cls: type[T], name: str, params: Mapping[str, Any] | None = None) -> T:
    """Build dataclass ``cls`` from the dotted section ``name`` of params.yaml.

    ``load_section(MlpParams, "train.mlp")`` reads ``params["train"]["mlp"]``.
    """
    data: Any = load_params() if params is None else params
    for part in name.split("."):
        if not isinstance(data, Mapping) or part not in data:
            raise ParamsError(
                f"params.yaml has no section '{name}' (missing '{part}'); recompose it from conf/."
            )
        data = data[part]
    return from_dict(cls, data, name)


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Recursively build dataclass ``cls`` from a mapping, rejecting unknown and missing keys."""
    if not isinstance(data, Mapping):
        raise ParamsError(f"params '{where}' must be a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"params '{where}' has unknown key(s) {unknown}; known: {sorted(fields)}.")
    values = {}
    for key, field in fields.items():
        if key not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ParamsError(f"params '{where}.{key}' is missing.")
            continue
        values[key] = _convert(hints[key], data[key], f"{where}.{key}")
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ParamsError as error:
                errors.append(str(error))
        raise ParamsError(f"params '{where}' = {value!r} matches none of {hint}: {errors}")
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"params '{where}' = {value!r}; choose one of {list(args)}.")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"params '{where}' must be a list, got {value!r}.")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ParamsError(f"params '{where}' must have {len(args)} items, got {value!r}.")
            return tuple(
                _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"params '{where}' must be a mapping, got {value!r}.")
        key_t, val_t = args if args else (Any, Any)
        return {_convert(key_t, k, where): _convert(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"params '{where}' must be a number, got {value!r}.")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params '{where}' must be an integer, got {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params '{where}' must be true or false, got {value!r}.")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"params '{where}' must be a string, got {value!r}.")
        return value
    if hint is Path:
        if not isinstance(value, str):
            raise ParamsError(f"params '{where}' must be a path string, got {value!r}.")
        return Path(value)
    return value
