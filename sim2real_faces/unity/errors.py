"""The Unity backend's errors (the GLB export and the Perception import have their own)."""

from __future__ import annotations

from sim2real_faces.errors import ProjectError


class UnityError(ProjectError, RuntimeError):
    """The Unity backend is not set up, failed, or produced an unexpected dataset."""


class UnityNotFoundError(UnityError):
    """No Unity editor configured or the configured one does not exist."""
