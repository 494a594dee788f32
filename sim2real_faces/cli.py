"""How every stage is started: ``if __name__ == "__main__": run_stage(main)``.

The project's own errors (:class:`~sim2real_faces.errors.ProjectError`: assets, params, photos,
weights, models, inputs) end the command with their message on stderr and exit status 2, without a
traceback; their causes (e.g. a network error under an asset error) are not shown either. ``--debug``
on the command line or ``SIM2REAL_DEBUG=1`` in the environment prints the full chained traceback
instead. Ctrl-C ends with status 130 and one line, SIGTERM (under :func:`run_stage`) with 143:
both unwind normally, so outputs written through :mod:`sim2real_faces.io` are not moved into place
and their temporary files are removed. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sim2real_faces.errors import ProjectError

DEBUG_ENV = "SIM2REAL_DEBUG"
DEBUG_FLAG = "--debug"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that ``finally`` blocks (temporary outputs) run."""


def debug_enabled(argv: Sequence[str] = ()) -> bool:
    """True when ``--debug`` is in ``argv`` or ``SIM2REAL_DEBUG`` is set to anything but ''/0/false/no."""
    value = os.environ.get(DEBUG_ENV, "").strip().lower()
    return DEBUG_FLAG in argv or value not in ("", "0", "false", "no")


def _print_chain(error: BaseException) -> None:
    """The full traceback, including causes a library raised ``from None`` to keep its message short."""
    node: BaseException | None = error
    seen: set[int] = set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        node.__suppress_context__ = False
        node = node.__cause__ or node.__context__
    traceback.print_exception(error, file=sys.stderr)


def call(main: Callable[..., Any], argv: Sequence[str] | None = None, name: str | None = None) -> int:
    """Run ``main`` and return the exit status (0, main's own int, 2 for a project error, 130 for Ctrl-C).

    ``argv``: the arguments for a ``main(argv)`` (default: ``sys.argv[1:]``); ``--debug`` is taken out
    before ``main`` sees them. A ``main()`` without parameters is called without arguments (its own
    argparse, if any, then reads ``sys.argv``, from which ``--debug`` is removed as well).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(args)
    args = [a for a in args if a != DEBUG_FLAG]
    name = name or _stage_name(main)
    try:
        if inspect.signature(main).parameters:
            result = main(args)
        else:
            if DEBUG_FLAG in sys.argv:
                sys.argv = [a for a in sys.argv if a != DEBUG_FLAG]
            result = main()
    except ProjectError as error:
        if debug:
            _print_chain(error)
        print(f"{name}: error: {error}", file=sys.stderr)
        if not debug:
            print(f"({DEBUG_FLAG} or {DEBUG_ENV}=1 shows the traceback)", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exit_:  # argparse's usage errors (status 2) and explicit exits
        code = exit_.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)  # sys.exit("message") prints it, as Python itself would
        return 1
    except (KeyboardInterrupt, Terminated) as stop:
        if debug:
            traceback.print_exc()
        print(f"{name}: interrupted.", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


def run_stage(main: Callable[..., Any]) -> NoReturn:
    """``sys.exit(call(main))``: the one line under every stage's ``if __name__ == "__main__":``."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(call(main))


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(f"signal {signum}")


def _stage_name(main: Callable[..., Any]) -> str:
    module = getattr(main, "__module__", "") or ""
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    return module.rsplit(".", 1)[-1] or "stage"
