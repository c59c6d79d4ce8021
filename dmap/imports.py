"""Importing the modules that register task handlers (``--import`` and ``DMAP_IMPORTS``).

This module owns turning what a user typed into an imported module, and an import that fails into
one message that says what to type or where the error is (``file:line``). It accepts a module name
(``pkg.handlers``), a file path (``path/to/handlers.py``) and the common slip ``handlers.py`` meant
as the module ``handlers``. It does not register anything itself: the imported code does, through
``@dmap.task``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from .errors import HandlerImportError

_IMPORT_MACHINERY = "<frozen "  # importlib's own frames: noise between the user and their error


def import_handlers(specs: Iterable[str], *, cwd: str | None = None) -> list[str]:
    """Import each handler module; return the module names imported (what workers import too).

    The current folder is put on ``sys.path`` first, as ``python -m`` does, so ``--import
    handlers`` finds ``./handlers.py``.

    Args:
        specs: Module names, ``.py`` file paths, or ``name.py`` meaning the module ``name``.
        cwd: The folder relative paths and modules are found from (default: the current one).

    Returns:
        The dotted module name of each spec, in order.

    Raises:
        HandlerImportError: A module is missing, has a syntax error or raises while importing.
    """
    base = os.path.abspath(cwd or os.getcwd())
    if base not in sys.path:
        sys.path.insert(0, base)
    return [import_handler(spec, base) for spec in specs]


def import_handler(spec: str, base: str) -> str:
    """Import one handler module (see :func:`import_handlers`); return its module name."""
    spec = spec.strip()
    path = Path(base, spec)
    looks_like_path = spec.endswith(".py") or "/" in spec or os.sep in spec
    if looks_like_path and path.is_file():
        module = _module_name_for(path.resolve(), base)
    elif looks_like_path:
        module = spec[: -len(".py")] if spec.endswith(".py") else spec
        module = module.strip("/").replace("/", ".").replace(os.sep, ".")
        if not _exists(module):
            raise HandlerImportError(
                spec,
                f"no file {path} and no module {module!r} on the Python path; "
                "give the path of an existing .py file or a module name such as pkg.handlers",
            )
    else:
        module = spec
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise HandlerImportError(
                spec,
                f"no module named {exc.name!r} (looked in {base} and the Python path); "
                "give a module name like pkg.handlers or a path like path/to/handlers.py",
            ) from None
        raise HandlerImportError(spec, _located(exc)) from None  # the module imports something missing
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else "?"
        line = f": {exc.text.strip()}" if exc.text and exc.text.strip() else ""
        raise HandlerImportError(spec, f"SyntaxError at {where}: {exc.msg}{line}") from None
    except Exception as exc:  # whatever the module raises at import time is the user's to see
        raise HandlerImportError(spec, _located(exc)) from None
    return module


def _module_name_for(path: Path, base: str) -> str:
    """The module name of a ``.py`` file: dotted from ``base`` when every folder on the way is a package.

    Otherwise its folder goes on ``sys.path`` and the file's stem is the name, so a file outside any
    package still imports (and ``examples/x/handlers.py`` is the same module as ``examples.x.handlers``).
    """
    try:
        relative = path.relative_to(base)
    except ValueError:
        relative = None
    if relative is not None:
        parts = list(relative.with_suffix("").parts)
        folders = [Path(base, *parts[:i]) for i in range(1, len(parts))]
        if all((folder / "__init__.py").is_file() for folder in folders):
            return ".".join(parts)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return path.stem


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _located(exc: BaseException) -> str:
    """``ErrorType at file:line: message``, at the deepest frame outside Python's import machinery."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_IMPORT_MACHINERY)]
    frames = [f for f in frames if f.filename != __file__]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}: {exc}"
