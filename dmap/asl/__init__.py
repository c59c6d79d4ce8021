"""The Amazon States Language: parse, validate and model definitions. Pure; no I/O beyond reading a file.

:func:`load` turns a definition (dict, JSON text or file path) into a :class:`StateMachine`, or raises
:class:`~dmap.errors.DefinitionError` with every problem found. :func:`validate` returns those
problems without raising: schema errors from the pydantic models and the semantic checks of
``checks.py`` (transitions, reachability, paths, mutually exclusive fields), all located by JSON
pointers.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import DefinitionError
from .checks import check_definition
from .diagnostics import Diagnostic, Severity, pointer
from .model import MapState, StateMachine

__all__ = ["Diagnostic", "Severity", "StateMachine", "check_data", "load", "parse", "validate", "DefinitionSource"]

DefinitionSource = Mapping[str, Any] | str | Path
MAX_DEPTH = 200
"""The deepest nesting a definition may have (pydantic serializes ~254 levels; real definitions use ~20)."""
_STATE_TAGS = frozenset({"Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"})


def parse(definition: DefinitionSource) -> tuple[Any, list[Diagnostic]]:
    """Read a definition into plain JSON data. Returns ``(data, diagnostics)``; data is None if unreadable.

    Args:
        definition: A dict, JSON text, or the path of a ``.json``/``.asl.json`` file.
    """
    if isinstance(definition, Mapping):
        return dict(definition), []
    if isinstance(definition, list | int | float | bool) or definition is None:
        return definition, []  # an already-parsed JSON value that is not an object: check_data says so
    if isinstance(definition, Path) or (isinstance(definition, str) and not definition.lstrip().startswith(("{", "["))):
        path = Path(definition)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return None, [_error("INVALID_JSON_DESCRIPTION", f"cannot read definition file {str(path)!r}: {exc}", "")]
    else:
        text = definition
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        message = f"the definition is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        return None, [_error("INVALID_JSON_DESCRIPTION", message, "")]
    except RecursionError:
        message = f"the definition is nested too deeply to be read (more than {MAX_DEPTH} levels are refused)"
        return None, [_error("INVALID_JSON_DESCRIPTION", message, "")]


def validate(definition: DefinitionSource) -> list[Diagnostic]:
    """Every problem of a definition at once: schema, graph, paths, mode-specific fields.

    Args:
        definition: A dict, JSON text, or the path of a definition file.

    Returns:
        The diagnostics, ERRORs and WARNINGs, ordered by location. Empty when the definition is valid.
    """
    data, diagnostics = parse(definition)
    return diagnostics or check_data(data)  # data None without diagnostics is a JSON null


def check_data(data: Any) -> list[Diagnostic]:
    """:func:`validate` for an already-parsed JSON value."""
    if not isinstance(data, dict):
        return [_error("SCHEMA_VALIDATION_FAILED", f"a definition is a JSON object, got {_json_type(data)}", "")]
    too_deep = _depth_error(data)
    if too_deep is not None:  # the checks and pydantic's serializer recurse: stop before they do
        return [too_deep]
    checks = check_definition(data)
    # Where a semantic check and pydantic flag the same spot, the check's message is the teaching one.
    checked = {d.location for d in checks}
    diagnostics = [d for d in _schema_diagnostics(data) if d.location not in checked] + checks
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for d in diagnostics:
        if (d.code, d.location, d.message) not in seen:
            seen.add((d.code, d.location, d.message))
            unique.append(d)
    return sorted(unique, key=lambda d: (d.location, d.severity != Severity.ERROR, d.code))


def load(
    definition: DefinitionSource | StateMachine,
    *,
    extra_checks: Callable[[dict[str, Any]], list[Diagnostic]] | None = None,
) -> StateMachine:
    """Parse and validate a definition.

    Args:
        definition: A dict, JSON text, the path of a definition file, or an already loaded machine.
        extra_checks: More checks over the raw JSON (``dmap.run`` adds the Task resource resolution), reported
            together with the definition's own problems.

    Raises:
        DefinitionError: if any ERROR diagnostic is found; it carries all of them.
    """
    if isinstance(definition, StateMachine):
        return definition
    source = str(definition) if isinstance(definition, Path) else None
    data, diagnostics = parse(definition)
    if diagnostics:
        raise DefinitionError(diagnostics, source=source)
    found = check_data(data)
    if isinstance(data, dict) and extra_checks is not None:
        # A spot the definition's own checks already flag (a Resource AWS does not know) needs no second,
        # less precise error from the extra checks (no registered handler for it).
        flagged = {d.location for d in found if d.severity == Severity.ERROR}
        found += [d for d in extra_checks(data) if d.location not in flagged]
    errors = [d for d in found if d.severity == Severity.ERROR]
    if errors:
        raise DefinitionError(errors, source=source)
    return StateMachine.model_validate(data)


def _depth_error(data: Any) -> Diagnostic | None:
    """An error at the first node nested deeper than MAX_DEPTH levels (found without recursion), else None."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            message = f"the definition is nested more than {MAX_DEPTH} levels deep here; dmap refuses deeper JSON"
            return _error("DEFINITION_TOO_DEEP", message, pointer(*path[:MAX_DEPTH]))
        if isinstance(node, dict):
            stack.extend((value, (*path, key)) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, index)) for index, value in enumerate(node))
    return None


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def distributed_maps(machine: StateMachine) -> list[tuple[str, MapState]]:
    """The DISTRIBUTED Map states of the top-level workflow, in definition order (name, state)."""
    return [(name, s) for name, s in machine.states.items() if isinstance(s, MapState) and s.distributed]


def _error(code: str, message: str, location: str) -> Diagnostic:
    return Diagnostic(Severity.ERROR, code, message, location)


def _schema_diagnostics(data: dict[str, Any]) -> list[Diagnostic]:
    try:
        StateMachine.model_validate(data)
    except ValidationError as exc:
        return [_render(error, data) for error in exc.errors()]
    return []


def _render(error: Any, data: Any) -> Diagnostic:
    """Turn one pydantic error into a Diagnostic: tag-free JSON pointer, AWS field names, a teaching message."""
    parts, node = _strip_tags(error["loc"], data)
    kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
    field = str(parts[-1]) if parts else ""
    parent = _lookup(data, parts[:-1])
    if kind == "extra_forbidden":
        message = f"'{field}' is not a valid field here" + _suggest(field, parent, error)
    elif kind == "missing":
        message = f"the required field '{field}' is missing"
    elif kind == "union_tag_invalid":
        message = f"unknown state Type {node.get('Type')!r}; expected one of {', '.join(sorted(_STATE_TAGS))}"
        parts = [*parts, "Type"]
    elif kind == "union_tag_not_found":
        message = "a state needs a 'Type' (Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map)"
    elif kind == "literal_error":
        message = f"{field} {message[0].lower()}{message[1:]}, got {error.get('input')!r}"
    return _error("SCHEMA_VALIDATION_FAILED", message, pointer(*parts))


def _strip_tags(loc: Sequence[Any], data: Any) -> tuple[list[Any], Any]:
    """Drop pydantic's discriminator tags (``States/A/Pass/Next`` -> ``States/A/Next``)."""
    parts: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in _STATE_TAGS and part not in node and node.get("Type") == part:
            continue
        parts.append(part)
        node = node.get(part) if isinstance(node, dict) else node[part] if _indexable(node, part) else None
    return parts, node if isinstance(node, dict) else _lookup(data, parts)


def _indexable(node: Any, part: Any) -> bool:
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _lookup(data: Any, parts: Sequence[Any]) -> Any:
    node = data
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif _indexable(node, part):
            node = node[part]
        else:
            return None
    return node if node is not None else {}


def _suggest(field: str, parent: Any, error: Any) -> str:
    known = _known_fields(parent)
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


def _known_fields(parent: Any) -> list[str]:
    """AWS field names valid for the object a bad field was found in (state types only; others are generic)."""
    from . import model

    if not isinstance(parent, dict):
        return []
    classes: dict[str, type[BaseModel]] = {
        "Pass": model.PassState,
        "Task": model.TaskState,
        "Choice": model.ChoiceState,
        "Wait": model.WaitState,
        "Succeed": model.SucceedState,
        "Fail": model.FailState,
        "Parallel": model.ParallelState,
        "Map": model.MapState,
    }
    cls: type[BaseModel] = classes.get(str(parent.get("Type")), model.StateMachine)
    fields = cls.model_fields
    return [f.alias for f in fields.values() if f.alias]
