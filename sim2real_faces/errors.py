"""The project's own error base class.

Every error that means "the input, a param, a file or the setup is wrong, and here is how to fix it"
derives from :class:`ProjectError` (besides its usual builtin base such as ``ValueError``). Stages run
through :func:`sim2real_faces.cli.run_stage`, which prints such an error as its message alone and
exits with status 2; anything else is a bug and keeps its full traceback.
"""

from __future__ import annotations


class ProjectError(Exception):
    """An expected failure with a message that names the file or key and the fix."""


class IncompleteOutputError(ProjectError, RuntimeError):
    """A stage's outputs are partial or out of step (an interrupted run); rerun the stage that wrote them."""
