"""JSONPath input/output processing: InputPath -> Parameters -> ResultSelector -> ResultPath -> OutputPath.

Each function applies one step exactly as AWS does and turns a path that cannot be applied into
a ``States.Runtime`` error whose cause names the path and the value it was applied to. The
interpreter's state functions call them in AWS's order; JSONata states use ``jsonata_flow``.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Mapping
from typing import Any

from ..asl import intrinsics, paths, payload
from ..errors import ErrorName, StatesError

_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_default = json.JSONEncoder().default


def compact(value: Any, *, allow_nan: bool = True) -> str:
    """Compact JSON, as AWS prints values inside causes (``allow_nan=False``: NaN/Infinity raise ValueError)."""
    if _make_encoder is None:  # no C accelerator
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)
    # What json.dumps does with these arguments, minus its per-call JSONEncoder: a child's input,
    # output and record are each serialized once per child, and that wrapper was half the cost.
    encode = _make_encoder({}, _default, json.encoder.encode_basestring, None, ":", ",", False, False, allow_nan)
    return "".join(encode(value, 0))


_scan: Any = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009 - the C scanner json.loads ends in; untyped


def parse(text: str) -> Any:
    """``json.loads(text)``, faster on the compact JSON dmap writes itself (no whitespace around the value).

    Raises:
        json.JSONDecodeError: ``text`` is not JSON (from ``json.loads``, with its message).
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:  # nothing parses at 0 (whitespace, garbage): json.loads says why
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def size_of(value: Any) -> int:
    """The UTF-8 size in bytes of a value's compact JSON (what AWS's 256 KiB limit counts)."""
    return len(compact(value).encode("utf-8"))


def select(path: str, data: Any, context: Any, variables: Mapping[str, Any] | None, field: str) -> Any:
    """Apply a Path field; a path that matches nothing is AWS's ``States.Runtime`` "Invalid path"."""
    try:
        return paths.select(path, data, context=context, variables=variables)
    except paths.PathNotFound:
        raise StatesError(
            ErrorName.RUNTIME,
            f"Invalid path '{path}' : No results for path: {_bracketed(path)}",
        ) from None


def input_path(path: str | None, raw: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    """``InputPath``: ``null`` gives ``{}``, ``$`` the raw input, otherwise the selected value."""
    if path is None:
        return {}
    if path == "$":
        return raw
    return select(path, raw, context, variables, "InputPath")


def output_path(path: str | None, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    """``OutputPath``: ``null`` gives ``{}``, ``$`` the value, otherwise the selected value."""
    if path is None:
        return {}
    if path == "$":
        return data
    return select(path, data, context, variables, "OutputPath")


def template(value: Any, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    """A payload template (Parameters, ItemSelector, ResultSelector, Assign)."""
    return payload.resolve(value, data, context=context, variables=variables)


def result_path(path: str | None, raw: Any, result: Any) -> Any:
    """``ResultPath``: ``null`` keeps the raw input, ``$`` replaces it, otherwise insert the result into it."""
    if path is None:
        return raw
    if path == "$":
        return result
    try:
        return paths.assign(raw, path, result)
    except paths.PathAssignError as exc:
        raise StatesError(
            ErrorName.RUNTIME,
            f"Invalid path '{path}' : Unable to apply ResultPath to input {compact(raw)}: {exc}",
        ) from None


def string_or_path(literal: str | None, path: str | None, data: Any, context: Any, variables: Any) -> str | None:
    """A Fail state's ``Error``/``Cause`` or its ``ErrorPath``/``CausePath`` (a path or an intrinsic)."""
    if path is None:
        return literal
    if intrinsics.is_intrinsic(path):
        value = intrinsics.evaluate(path, data, context=context, variables=variables)
    else:
        value = select(path, data, context, variables, "Path")
    return value if isinstance(value, str) else compact(value)


def _bracketed(path: str) -> str:
    """``$.a.b`` as Jayway prints it in errors: ``$['a']['b']``."""
    if not path.startswith("$"):
        return path
    body = path[1:].lstrip("$")
    out = "$"
    for part in body.split("."):
        if part:
            name, _, rest = part.partition("[")
            out += f"['{name}']" if name else ""
            out += f"[{rest}" if rest else ""
    return out
