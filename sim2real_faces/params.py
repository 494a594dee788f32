"""One small typed loader for ``params.yaml``.

DVC composes ``conf/`` into ``params.yaml`` (its Hydra integration); stages never call Hydra
themselves. Each module declares the dataclass of the section it reads, and
:func:`load_section` turns that section into an instance, checking names and types so a typo
in ``params.yaml`` or a ``-S`` override stops with a message naming the key.

Numbers must be finite (``.nan`` and ``.inf`` are refused). Ranges are declared on the field's type
with :class:`Range` through ``typing.Annotated``, and checked at load, before a stage reads any data::

    @dataclass(frozen=True)
    class FilterParams:
        min_confidence: Probability      # float in [0, 1]
        workers: Count                   # int >= 1
        size: Annotated[int, Range(8, 4096)]

The error names the key, the value and the allowed range. A dataclass's own ``__post_init__`` checks
(relations between keys) raising ``ValueError`` are reported as :class:`ParamsError` naming the section.

``conf/`` is the one source of every value: a dataclass field either has no default or the conf value
(literal, or read from conf/ by :func:`conf_default`); ``tests/test_defaults.py`` compares them.
:func:`load_params` also checks what crosses sections: the rendered classes (``expressions.classes``)
must be the project's :data:`sim2real_faces.CLASSES` (:func:`check_classes`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml

from sim2real_faces.errors import ProjectError

PARAMS_FILE = Path("params.yaml")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

T = TypeVar("T")


class ParamsError(ProjectError, ValueError):
    """A params section is missing, misspelt or has a value of the wrong type or out of its range."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric param (``None``: unbounded); ``open_low``/``open_high`` exclude the ends.

    Use as ``Annotated[float, Range(0.0, 1.0)]``; for lists and tuples of numbers it applies to every item.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    what: str = ""

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            text = (
                f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
            )
        elif self.low is not None:
            text = f"{'>' if self.open_low else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{'<' if self.open_high else '<='} {self.high:g}"
        else:
            text = "any finite number"
        return f"{text} ({self.what})" if self.what else text

    def contains(self, value: float) -> bool:
        """True when ``value`` lies in the interval."""
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.open_high and value == self.high)))


Probability = Annotated[float, Range(0.0, 1.0, what="a probability or confidence")]
"""A float in [0, 1]: probabilities, confidences, shares, IoU thresholds."""
Fraction = Annotated[float, Range(0.0, 1.0, what="a fraction")]
"""A float in [0, 1]."""
ConfidenceLevel = Annotated[float, Range(0.0, 1.0, open_low=True, open_high=True, what="a coverage")]
"""A float strictly between 0 and 1 (e.g. the coverage of a confidence interval)."""
Count = Annotated[int, Range(1, None, what="a count")]
"""An int >= 1: workers, sizes in items, epochs."""
NonNegativeInt = Annotated[int, Range(0, None)]
"""An int >= 0."""
PositiveInt = Annotated[int, Range(1, None, what="a size")]
"""An int >= 1 used as a size in pixels or bytes."""
PositiveFloat = Annotated[float, Range(0.0, None, open_low=True, what="a size")]
"""A float > 0."""
NonNegativeFloat = Annotated[float, Range(0.0, None)]
"""A float >= 0 (0 turns the term off: penalties, margins)."""


def load_params(path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """Read the whole ``params.yaml`` as a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path} not found: run the stage from the repository root (dvc repro does).")
    with path.open() as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path} must hold a mapping at its top level.")
    check_classes(data)
    return data


def check_classes(params: Mapping[str, Any]) -> None:
    """Stop when the classes rendered (keys of ``expressions.classes``) are not :data:`CLASSES`.

    Every stage after generate (split, training, evaluation) works with ``sim2real_faces.CLASSES``;
    a class in one and not the other would render and then fail at split. Checked whenever
    params.yaml is read (:func:`load_params`), so the generate stage stops before its first frame. A
    params file without that section is left to the section's loader.
    """
    from sim2real_faces import CLASSES

    expressions = params.get("expressions")
    classes = expressions.get("classes") if isinstance(expressions, Mapping) else None
    if not isinstance(classes, Mapping):
        return
    missing = [c for c in CLASSES if c not in classes]
    extra = [str(c) for c in classes if c not in CLASSES]
    if not missing and not extra:
        return
    fixes = []
    if missing:
        fixes.append(
            f"missing {missing}: give them presets under expressions.classes (conf/expressions/presets.yaml, "
            "and a prototype under facs.classes in conf/expressions/facs.yaml), or drop them from CLASSES"
        )
    if extra:
        fixes.append(
            f"not in CLASSES {extra}: add them to CLASSES in sim2real_faces/__init__.py, or remove them "
            "from conf/expressions/*.yaml (and any profile in conf/profile/ that sets expressions.classes)"
        )
    raise ParamsError(
        f"params 'expressions.classes' renders {list(classes)}, but the project's classes "
        f"(sim2real_faces.CLASSES) are {list(CLASSES)}; " + "; ".join(fixes) + ". Then run `make params`."
    )


@functools.cache
def _conf_file(path: Path) -> Any:
    if not path.is_file():
        raise ParamsError(f"{path} not found: the params defaults live there; restore it from git.")
    with path.open() as handle:
        return yaml.safe_load(handle) or {}


def conf_default(cls: type[T], file: str, key: str, where: str) -> Callable[[], T]:
    """A ``default_factory``: ``cls`` from the dotted ``key`` of ``conf/<file>`` (the one source).

    For a field whose default is a whole sub-section, e.g. ``field(default_factory=conf_default(
    TextureParams, "humans/default.yaml", "textures", "humans.textures"))``.
    """

    def make() -> T:
        path = CONF_DIR / file
        data: Any = _conf_file(path)
        for part in key.split("."):
            if not isinstance(data, Mapping) or part not in data:
                raise ParamsError(f"{path} has no section '{key}'; restore it from git.")
            data = data[part]
        return from_dict(cls, data, where)

    return make


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
    hints = typing.get_type_hints(cls, include_extras=True)
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
    try:
        return cls(**values)
    except ProjectError:
        raise
    except ValueError as error:  # a __post_init__ check across keys
        raise ParamsError(f"params '{where}': {error}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        converted = _convert(args[0], value, where)
        for bound in (a for a in args[1:] if isinstance(a, Range)):
            _check_range(bound, converted, where)
        return converted
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
        if not math.isfinite(value):
            raise ParamsError(f"params '{where}' = {value!r}; it must be a finite number (not NaN or inf).")
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


def _check_range(bound: Range, value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_range(bound, item, f"{where}[{index}]")
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not bound.contains(value):
        raise ParamsError(f"params '{where}' = {value!r} is out of range; allowed: {bound}.")


def check_value(bound: Range, value: float, where: str) -> None:
    """Raise :class:`ParamsError` unless the number ``value`` lies in ``bound`` (NaN never does).

    For ``__post_init__`` checks, e.g. a bound that depends on another key:
    ``check_value(Range(0, self.max_epochs), self.warmup_epochs, "phase2.warmup_epochs")``.
    """
    if value != value or not bound.contains(value):
        raise ParamsError(f"params '{where}' = {value!r} is out of range; allowed: {bound}.")


def check_ranges(instance: Any, where: str) -> None:
    """Check every :class:`Range`-annotated field of a dataclass instance (call from ``__post_init__``).

    :func:`from_dict` checks the same ranges while loading; this makes a section built directly in
    code (tests, notebooks) obey them too.
    """
    hints = typing.get_type_hints(type(instance), include_extras=True)
    for field in dataclasses.fields(instance):
        _check_hint(hints.get(field.name), getattr(instance, field.name), f"{where}.{field.name}")


def _check_hint(hint: Any, value: Any, where: str) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        for bound in (a for a in args[1:] if isinstance(a, Range)):
            if isinstance(value, float) and not math.isfinite(value):
                raise ParamsError(
                    f"params '{where}' = {value!r}; it must be a finite number (not NaN or inf)."
                )
            _check_range(bound, value, where)
        _check_hint(args[0], value, where)
    elif origin in (list, tuple) and isinstance(value, (list, tuple)) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = list(zip(args, value, strict=False))
        else:
            items = [(args[0], v) for v in value]
        for index, (item_hint, item) in enumerate(items):
            _check_hint(item_hint, item, f"{where}[{index}]")
    elif origin in (typing.Union, types.UnionType) and value is not None:
        for arg in (a for a in args if typing.get_origin(a) is Annotated):
            _check_hint(arg, value, where)
