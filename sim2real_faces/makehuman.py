"""The team contract's ``humans`` interface; the implementation lives in :mod:`sim2real_faces.humans`."""

from sim2real_faces.humans import *  # noqa: F403
from sim2real_faces.humans import __all__  # noqa: F401
