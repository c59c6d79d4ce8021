"""JSONPath payload templates: Parameters, ItemSelector, ResultSelector and JSONPath ``Assign``.

A payload template is any JSON value. Objects are copied key by key and arrays element by element,
however deeply nested (as the ASL spec says and AWS does); a key ending in ``.$`` loses the suffix
and its value, which must be a string, is evaluated: a ``$`` path on the state data, a ``$$`` path
on the context object, a ``$name`` variable path, or an intrinsic function call.

This module owns that evaluation and its errors, raised as ``StatesError("States.Runtime", cause)``
with AWS's wording but *without* the "An error occurred while executing the state ..." prefix (the
interpreter adds it). It also reports the static problems of a template for the definition
validator. It does not own paths (:mod:`.paths`) or intrinsic functions (:mod:`.intrinsics`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ErrorName, StatesError
from . import intrinsics, paths
from .diagnostics import pointer
from .intrinsics import IntrinsicSyntaxError
from .paths import PathNotFound, PathSyntaxError

__all__ = ["check_template", "resolve"]


def _invalid_value(key: str, reason: str = "") -> str:
    detail = f": {reason}" if reason else ""
    return f"The value for the field '{key}' must be a valid JSONPath or a valid intrinsic function call{detail}"


def _not_a_string(key: str, value: Any) -> str:
    return (
        f"The value for the field '{key}' must be a string holding a JSONPath ('$...'), a context path ('$$...'), "
        f"a variable ('$name...') or an intrinsic function call, not {paths.compact_json(value)}"
    )


def _duplicate(name: str) -> str:
    return f"The field '{name}' is given twice, as '{name}' and as '{name}.$'"


def _dynamic(key: str, value: Any, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    if not isinstance(value, str):
        raise StatesError(ErrorName.RUNTIME, _not_a_string(key, value))
    if value.startswith("$"):
        try:
            return paths.select(value, data, context=context, variables=variables)
        except PathNotFound as exc:
            raise StatesError(ErrorName.RUNTIME, exc.cause(key)) from None
        except PathSyntaxError as exc:
            raise StatesError(ErrorName.RUNTIME, _invalid_value(key, exc.reason)) from None
    if intrinsics.is_intrinsic(value):
        try:
            return intrinsics.evaluate(value, data, context=context, variables=variables, field=key)
        except IntrinsicSyntaxError as exc:
            raise StatesError(ErrorName.RUNTIME, _invalid_value(key, exc.reason)) from None
    raise StatesError(ErrorName.RUNTIME, _invalid_value(key))


def resolve(
    template: Any,
    data: Any,
    *,
    context: Any = None,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """Evaluate a payload template.

    Args:
        template: The template (usually an object) as written in the definition.
        data: The document ``$`` paths read (the effective input, or the task result for ResultSelector).
        context: The context object ``$$`` paths read.
        variables: The variables ``$name`` paths read.

    Returns:
        A new value; selected values are shared with ``data``, not copied.

    Raises:
        StatesError: ``States.Runtime`` when a path matches nothing, a ``.$`` value is not a string or
            not a valid path or intrinsic, or a field is given both plain and with ``.$``;
            ``States.IntrinsicFailure`` when an intrinsic function rejects its arguments.
    """
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                name = key[:-2]
                if name in template:
                    raise StatesError(ErrorName.RUNTIME, _duplicate(name))
                out[name] = _dynamic(key, value, data, context, variables)
            else:
                out[key] = resolve(value, data, context=context, variables=variables)
        return out
    if isinstance(template, list):
        return [resolve(item, data, context=context, variables=variables) for item in template]
    return template


def _problems(template: Any, where: tuple[str | int, ...]) -> Iterator[tuple[str, str]]:
    if isinstance(template, list):
        for index, item in enumerate(template):
            yield from _problems(item, (*where, index))
        return
    if not isinstance(template, dict):
        return
    for key, value in template.items():
        location = pointer(*where, key)
        if not key.endswith(".$"):
            yield from _problems(value, (*where, key))
            continue
        if key[:-2] in template:
            yield location, _duplicate(key[:-2])
        if not isinstance(value, str):
            yield location, _not_a_string(key, value)
        elif value.startswith("$"):
            try:
                paths.is_definite(value)
            except PathSyntaxError as exc:
                yield location, _invalid_value(key, exc.reason)
        elif intrinsics.is_intrinsic(value):
            try:
                intrinsics.parse(value)
            except IntrinsicSyntaxError as exc:
                yield location, _invalid_value(key, exc.reason)
        else:
            yield location, _invalid_value(key)


def check_template(template: Any) -> list[tuple[str, str]]:
    """Report a template's static problems for the definition validator.

    Args:
        template: The template as written in the definition.

    Returns:
        ``(location, message)`` pairs, where ``location`` is a JSON pointer relative to the
        template (e.g. ``"/items/0/id.$"``; append it to the field's own pointer). Problems: a
        ``.$`` value that is not a string, not a valid path and not a valid intrinsic call (bad
        syntax, unknown function, wrong argument count), and a field given both plain and with ``.$``.
    """
    return list(_problems(template, ()))
