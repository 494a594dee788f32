"""Exceptions of the humans package: each names the file or param at fault and what to do."""

from __future__ import annotations

from sim2real_faces.errors import ProjectError
from sim2real_faces.params import ParamsError


class HumansError(ProjectError, ValueError):
    """Base class of every error raised by :mod:`sim2real_faces.humans`."""


class HumanParamsError(HumansError, ParamsError):
    """A value in params section ``humans`` or ``expressions`` is out of range or unknown."""


class UnknownPresetError(HumanParamsError):
    """An expression preset or pose unit name that neither MakeHuman nor the params define."""


class MakeHumanFormatError(HumansError):
    """A MakeHuman data file (.obj, .target, .mhclo, .mhskel, .mhw, .bvh, .mhpose) cannot be parsed."""
