"""JSONPath for ASL: parse, classify, select and assign, with AWS's (Jayway's) result rules.

This module owns the path grammar ASL accepts (``$...`` state data, ``$$...`` the context object,
``$name...`` a variable), the split between *definite* paths (only fields and single indexes: the
result is the value itself, or :class:`PathNotFound`) and *indefinite* ones (wildcards, ``..``,
filters, slices, unions: the result is the list of matches, possibly empty), and ResultPath
assignment. Definite paths are walked here directly, which keeps the hot ``$.a.b`` case fast;
indefinite ones are compiled once with ``jsonpath_ng.ext`` and cached.

It does not own payload templates (:mod:`.payload`), intrinsic functions (:mod:`.intrinsics`) or
the choice of ASL error names: callers turn :class:`PathNotFound` / :class:`PathAssignError` into
``States.Runtime`` and friends with the wording of the field they were evaluating.

Results share structure with the data they were selected from; treat every document as immutable.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "PathAssignError",
    "PathNotFound",
    "PathSyntaxError",
    "assign",
    "compact_json",
    "is_definite",
    "is_path",
    "is_reference_path",
    "select",
]

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_DOT_NAME = re.compile(r"[\w\-]+")
_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_TRAILING_FUNCTION = re.compile(r"\.(length)\(\)$")
_PARSE_LOCK = threading.Lock()

Step = str | int


def compact_json(value: Any) -> str:
    """Serialise ``value`` as AWS prints JSON in causes: compact, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class PathSyntaxError(ValueError):
    """Raised when a string is not a valid ASL path."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"invalid JSONPath {path!r}: {reason}")


class PathNotFound(LookupError):
    """Raised when a definite path (or a variable reference) matches nothing.

    Attributes:
        path: The path as written.
        data: The document the path was applied to (state data, context object or variable value).
        hint: Where the lookup stopped and what was there instead, for error messages that teach.
    """

    def __init__(self, path: str, data: Any, hint: str = "", *, undefined_variable: str | None = None) -> None:
        super().__init__(path)
        self.path = path
        self.data = data
        self.hint = hint
        self.undefined_variable = undefined_variable

    def cause(self, field: str | None = None) -> str:
        """AWS's wording, naming the payload field (e.g. ``"a.$"``) when there is one."""
        where = f" specified for the field '{field}'" if field else ""
        if self.undefined_variable is not None:
            return f"The JSONPath '{self.path}'{where} could not be resolved: {self.hint}"
        found = f"The JSONPath '{self.path}'{where} could not be found in the input '{compact_json(self.data)}'"
        return found + _listing_hint(self.path, self.data)

    def __str__(self) -> str:
        # Built lazily: Choice rules (IsPresent) raise this often and never print it.
        return self.cause()


_LISTING_FIELDS = frozenset({"Etag", "Key", "LastModified", "Size"})


def _listing_hint(path: str, data: Any) -> str:
    """DESIGN §3: a child reading ``$.Bucket`` from an s3:listObjectsV2 item; say why and how to fix it."""
    if "Bucket" not in path or not isinstance(data, dict) or not _LISTING_FIELDS <= data.keys():
        return ""
    return (
        ". Items from an s3:listObjectsV2 ItemReader carry no Bucket (only Etag, Key, LastModified, Size, "
        'StorageClass): give the Map an ItemSelector such as {"Bucket.$": "$.bucket", '
        '"Key.$": "$$.Map.Item.Value.Key"}, taking the bucket from the Map\'s input'
    )


class PathAssignError(ValueError):
    """Raised when a ResultPath cannot be applied to a document."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Unable to apply ResultPath '{path}': {reason}")


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A parsed path: which document it reads, and how."""

    text: str
    root: str  # "$" (state data), "$$" (context object) or a variable name
    steps: tuple[Step, ...] | None  # definite steps, None when indefinite
    function: str | None  # a trailing Jayway function, e.g. "length"
    expr: Any  # the compiled jsonpath-ng expression, for indefinite paths only
    merge: tuple[str, ...] | None = None  # a trailing ['a','b']: Jayway gathers those fields into one object
    scan: bool = False  # '..' before the trailing union: every object below that has all of its fields


def _scan_quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted name starting at ``text[i]`` (a quote); return it and the index after it."""
    quote = text[i]
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted name")


def _scan_balanced(text: str, i: int) -> int:
    """Return the index just past the ``]`` closing the bracket that opens at ``text[i]``."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            _, i = _scan_quoted(text, i)
            continue
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced brackets")


def _quote(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{escaped}']"


def _bracket(text: str, i: int) -> tuple[list[Step] | None, str, int]:
    """Parse one ``[...]`` step at ``text[i]``: (steps or None, jsonpath-ng text, next index).

    The steps are None for an indefinite step, one field or index for a definite one, and two or more
    names for a union of fields (``['a','b']``), which the caller tells apart by their count.
    """
    match = _INDEX.match(text, i)
    if match:
        return [int(match.group(1))], match.group(0), match.end()
    j = i + 1
    while j < len(text) and text[j] == " ":
        j += 1
    if j < len(text) and text[j] in "'\"":
        names: list[str] = []
        while True:
            name, j = _scan_quoted(text, j)
            names.append(name)
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] == ",":
                j += 1
                while j < len(text) and text[j] == " ":
                    j += 1
                continue
            break
        if j >= len(text) or text[j] != "]":
            raise ValueError("expected ']' after a quoted name")
        if len(names) == 1:
            return [names[0]], _quote(names[0]), j + 1
        return list[Step](names), "[" + ",".join(_quote(n)[1:-1] for n in names) + "]", j + 1
    end = _scan_balanced(text, i)
    inner = text[i + 1 : end - 1].strip()
    if not inner:
        raise ValueError("empty brackets")
    if not (inner == "*" or inner.startswith("?") or re.fullmatch(r"[-\d\s,:]+", inner)):
        raise ValueError(f"unsupported bracket expression [{inner}]")
    return None, text[i:end], end


def _deep_scan(body: str, i: int, parts: list[str]) -> int:
    """Append a ``..`` step and the name or ``*`` after it (a bracket is left to the caller); the next index."""
    parts.append("..")
    if i < len(body) and body[i] == "*":
        parts.append("*")
        return i + 1
    if i < len(body) and body[i] != "[":
        match = _DOT_NAME.match(body, i)
        if not match:
            raise ValueError(f"expected a field name after '..' at {i}")
        parts.append(_quote(match.group(0)))
        return match.end()
    return i


def _tokenize(body: str) -> tuple[tuple[Step, ...] | None, str, tuple[str, ...] | None]:
    """Split the part of a path after its root into steps.

    Returns the definite steps (None if any step is indefinite), an equivalent jsonpath-ng text
    rooted at ``$`` with every field in bracket notation (jsonpath-ng reserves words like ``where``),
    and the names of a trailing field union (``['a','b']``), which is not part of the other two:
    Jayway reads a union that ends a path as one object holding those fields, not as a list of values.
    """
    steps: list[Step] = []
    parts: list[str] = ["$"]
    definite = True
    merge: tuple[str, ...] | None = None
    i = 0
    while i < len(body):
        if merge is not None:  # a union before more steps is an iteration over its fields, as in Jayway
            parts.append("[" + ",".join(_quote(n)[1:-1] for n in merge) + "]")
            definite, merge = False, None
        ch = body[i]
        if body.startswith("..", i):
            definite = False
            i = _deep_scan(body, i + 2, parts)
            continue
        if ch == ".":
            if body.startswith("[", i + 1):
                i += 1  # Jayway reads '$.[0]' and "$.['a']" as '$[0]' and "$['a']"
                continue
            if body.startswith("*", i + 1):
                definite = False
                parts.append(".*")
                i += 2
                continue
            match = _DOT_NAME.match(body, i + 1)
            if not match:
                raise ValueError(f"expected a field name at {i + 1}")
            steps.append(match.group(0))
            parts.append(_quote(match.group(0)))
            i = match.end()
            continue
        if ch == "[":
            found, text, i = _bracket(body, i)
            if found is None:
                definite = False
                parts.append(text)
            elif len(found) > 1:
                merge = tuple(str(n) for n in found)  # after '..' the scan stays in parts: see _compile
            else:
                steps.extend(found)
                parts.append(text)
            continue
        raise ValueError(f"unexpected character {ch!r} at {i}")
    return (tuple(steps) if definite else None), "".join(parts), merge


def _split_root(text: str) -> tuple[str, str]:
    if text.startswith("$$"):
        return "$$", text[2:]
    match = _VARIABLE.match(text)
    if match:
        return match.group(1), text[match.end() :]
    if text.startswith("$"):
        return "$", text[1:]
    raise ValueError("a path must start with '$'")


def _jsonpath_ng(text: str) -> Any:
    from jsonpath_ng.ext.parser import parse

    # The ply-based parser is not thread-safe, and it warns (DeprecationWarning) on legacy syntax.
    with _PARSE_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse(text)


@lru_cache(maxsize=4096)
def _compile(text: str) -> _Compiled:
    """Parse ``text`` once; raise :class:`PathSyntaxError` if it is not a valid ASL path."""
    try:
        root, body = _split_root(text)
        function = None
        match = _TRAILING_FUNCTION.search(body)
        if match:
            function = match.group(1)
            body = body[: match.start()]
        steps, normalised, merge = _tokenize(body)
        scan = merge is not None and normalised.endswith("..")
        if merge is not None and function is not None:
            # '$['a','b'].length()': the union is not the last token, so Jayway iterates over its fields.
            normalised += "[" + ",".join(_quote(n)[1:-1] for n in merge) + "]"
            steps, merge, scan = None, None, False
        elif scan:
            normalised = normalised.removesuffix("..")  # the documents to scan; select() walks them
        expr = None
        if steps is None:
            expr = _jsonpath_ng(normalised)
    except PathSyntaxError:
        raise
    except Exception as exc:  # jsonpath-ng raises several unrelated exception types
        raise PathSyntaxError(text, str(exc)) from None
    return _Compiled(text=text, root=root, steps=steps, function=function, expr=expr, merge=merge, scan=scan)


def is_path(text: str) -> bool:
    """Tell whether ``text`` is a valid ASL Path: ``$...``, ``$$...`` or a variable ``$name...``."""
    if not isinstance(text, str):
        return False
    try:
        _compile(text)
    except PathSyntaxError:
        return False
    return True


def is_definite(text: str) -> bool:
    """Tell whether a valid path selects one value (fields and single indexes only, or a function).

    Raises:
        PathSyntaxError: ``text`` is not a valid path.
    """
    compiled = _compile(text)
    return compiled.steps is not None or compiled.function is not None


def is_reference_path(text: str, *, allow_context: bool = True, allow_variables: bool = True) -> bool:
    """Tell whether ``text`` is an AWS Reference Path: ``$`` then only ``.field``, ``['field']``, ``[n]``.

    Args:
        text: The candidate path.
        allow_context: Accept ``$$...`` paths (ResultPath does not).
        allow_variables: Accept ``$name...`` variable paths (ResultPath does not).
    """
    if not isinstance(text, str):
        return False
    try:
        compiled = _compile(text)
    except PathSyntaxError:
        return False
    if compiled.steps is None or compiled.function is not None or compiled.merge is not None:
        return False
    if compiled.root == "$$":
        return allow_context
    return compiled.root == "$" or allow_variables


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:20])
        return f"an object with fields [{keys}{', ...' if len(value) > 20 else ''}]"
    if isinstance(value, list):
        return f"an array of length {len(value)}"
    return f"the value {compact_json(value)}"


def _location(root: str, steps: tuple[Step, ...]) -> str:
    out = "$" if root == "$" else ("$$" if root == "$$" else f"${root}")
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if _DOT_NAME.fullmatch(step) else _quote(step))
    return out


def _walk(compiled: _Compiled, steps: tuple[Step, ...], doc: Any) -> Any:
    node = doc
    for n, step in enumerate(steps):
        if isinstance(step, str):
            if isinstance(node, dict) and step in node:
                node = node[step]
                continue
            what = "field"
        else:
            if isinstance(node, list) and -len(node) <= step < len(node):
                node = node[step]
                continue
            what = "index"
        where = _location(compiled.root, steps[:n])
        hint = f"no {what} {step!r} at '{where}', which is {_describe(node)}"
        raise PathNotFound(compiled.text, doc, hint)
    return node


def _merge(compiled: _Compiled, names: tuple[str, ...], value: Any, doc: Any) -> dict[str, Any]:
    """Jayway's trailing ``['a','b']``: one object with those of the fields that exist (missing ones left out)."""
    if not isinstance(value, dict):
        fields = ",".join(_quote(n)[1:-1] for n in names)
        raise PathNotFound(compiled.text, doc, f"[{fields}] needs an object, not {_describe(value)}")
    return {name: value[name] for name in names if name in value}


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in ``value``, itself first, then depth-first in document order (Jayway's deep-scan order)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _apply_function(compiled: _Compiled, value: Any, doc: Any) -> Any:
    # Only length() for now: the one Jayway function AWS users reach for.
    if isinstance(value, (list, dict, str)):
        return len(value)
    raise PathNotFound(compiled.text, doc, f"length() needs an array, object or string, not {_describe(value)}")


def select(
    path: str,
    data: Any,
    *,
    context: Any = None,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """Apply an ASL path.

    Args:
        path: ``$...`` (applied to ``data``), ``$$...`` (applied to ``context``) or ``$name...``
            (applied to ``variables[name]``).
        data: The state data.
        context: The context object (``$$``).
        variables: The variables in scope.

    Returns:
        The value for a definite path; the list of matches (possibly empty) for an indefinite one.

    Raises:
        PathSyntaxError: ``path`` is not a valid path.
        PathNotFound: a definite path matched nothing, or the variable is not defined.
    """
    compiled = _compile(path)
    if compiled.root == "$":
        doc = data
    elif compiled.root == "$$":
        doc = context
    else:
        if variables is None or compiled.root not in variables:
            known = ", ".join(sorted(variables or ())) or "none"
            hint = f"the variable '${compiled.root}' is not defined (defined: {known})"
            raise PathNotFound(path, None, hint, undefined_variable=compiled.root)
        doc = variables[compiled.root]
    if compiled.steps is not None:
        value = _walk(compiled, compiled.steps, doc)
        if compiled.merge is not None:
            value = _merge(compiled, compiled.merge, value, doc)
    else:
        value = [match.value for match in compiled.expr.find(doc)]
        if compiled.merge is not None and compiled.scan:
            names = compiled.merge  # Jayway's scan keeps only the objects that hold every field of the union
            value = [{n: o[n] for n in names} for v in value for o in _objects(v) if all(n in o for n in names)]
        elif compiled.merge is not None:  # indefinite upstream: Jayway skips what is not an object
            value = [_merge(compiled, compiled.merge, v, doc) for v in value if isinstance(v, dict)]
    if compiled.function is not None:
        return _apply_function(compiled, value, doc)
    return value


_MISSING: Any = object()


def _set(node: Any, steps: tuple[Step, ...], i: int, value: Any, path: str) -> Any:
    step = steps[i]
    where = _location("$", steps[:i])
    if isinstance(step, str):
        if node is _MISSING:
            node = {}
        elif not isinstance(node, dict):
            raise PathAssignError(path, f"'{where}' is {_describe(node)}, not an object")
        new_dict = dict(node)
        last = i == len(steps) - 1
        new_dict[step] = value if last else _set(node.get(step, _MISSING), steps, i + 1, value, path)
        return new_dict
    if node is _MISSING or not isinstance(node, list):
        shown = "missing" if node is _MISSING else _describe(node)
        raise PathAssignError(path, f"'{where}' is {shown}, not an array")
    if not -len(node) <= step < len(node):
        raise PathAssignError(path, f"index {step} is out of range for '{where}' (length {len(node)})")
    new_list = list(node)
    new_list[step] = value if i == len(steps) - 1 else _set(node[step], steps, i + 1, value, path)
    return new_list


def assign(data: Any, path: str, value: Any) -> Any:
    """Apply a ResultPath: return a new document with ``value`` placed at ``path``.

    ``data`` is never mutated: only the objects and arrays along the path are copied. Missing
    intermediate fields are created as objects.

    Args:
        data: The document (the state's raw input).
        path: A Reference Path rooted at ``$`` (no context, no variables).
        value: The value to place.

    Returns:
        The new document; ``value`` itself when ``path`` is ``$``.

    Raises:
        PathAssignError: the path is not a ``$`` reference path, an intermediate exists but is not
            an object (or, for an index step, an array), or an index is out of range.
    """
    try:
        compiled = _compile(path)
    except PathSyntaxError as exc:
        raise PathAssignError(path, exc.reason) from None
    if compiled.root != "$" or compiled.steps is None or compiled.function is not None or compiled.merge is not None:
        raise PathAssignError(path, "a ResultPath must be a reference path on the state data ('$...')")
    if not compiled.steps:
        return value
    return _set(data, compiled.steps, 0, value, path)
