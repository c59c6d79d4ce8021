"""Path, intrinsic and payload-template checks of JSONPath states.

Owns *which* fields hold a Path, a Reference Path, an intrinsic or a payload template, and how
their problems are reported. The grammars themselves belong to :mod:`.paths`,
:mod:`.intrinsics` and :mod:`.payload`. JSONata states are skipped: their ``...Path`` fields are
reported as not allowed by ``checks_state``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import intrinsics, paths, payload
from .checks_common import (
    INVALID_INTRINSIC,
    INVALID_PATH,
    INVALID_PAYLOAD,
    INVALID_REFERENCE_PATH,
    Loc,
    Report,
    StateCtx,
    as_mapping,
)

#: Fields whose value is a Path (``null`` allowed).
PATH_FIELDS = ("InputPath", "OutputPath")
#: Fields whose value is a Reference Path (one node; ``$$`` context and ``$name`` variables allowed).
REFERENCE_PATH_FIELDS = (
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentagePath",
)
#: Fields whose value is a Reference Path or an intrinsic function call.
INTRINSIC_FIELDS = ("ErrorPath", "CausePath")
#: Fields whose value is a payload template (keys ending ``.$`` are evaluated).
TEMPLATE_FIELDS = ("Parameters", "ItemSelector", "ResultSelector", "Assign", "Credentials")
#: Nested fields: (container, field) -> "reference" or "template".
_NESTED: dict[tuple[str, ...], str] = {
    ("ItemReader", "ReaderConfig", "MaxItemsPath"): "reference",
    ("ItemBatcher", "MaxItemsPerBatchPath"): "reference",
    ("ItemBatcher", "MaxInputBytesPerBatchPath"): "reference",
    ("ItemReader", "Parameters"): "template",
    ("ResultWriter", "Parameters"): "template",
    ("ItemBatcher", "BatchInput"): "template",
}
_REFERENCE_HELP = (
    "a Reference Path is '$' followed only by .field, ['field'] and [index] steps (no *, .., filters, "
    "slices, unions or functions), and selects exactly one node"
)


def check_state_paths(report: Report, ctx: StateCtx) -> None:
    """Check every path, intrinsic and payload template of one JSONPath state.

    Args:
        report: Where diagnostics go.
        ctx: The state (JSONata states are skipped).
    """
    if ctx.jsonata:
        return
    body, loc = ctx.body, ctx.loc
    _check_fields(report, body, loc)
    for name in TEMPLATE_FIELDS:
        if name in body and not (name == "Credentials" and ctx.type != "Task"):
            check_template(report, body[name], (*loc, name))
    for parts, kind in _NESTED.items():
        value = _dig(body, parts)
        if kind == "template" and value is not None:
            check_template(report, value, (*loc, *parts))
        elif isinstance(value, str):
            check_reference_path(report, value, (*loc, *parts), parts[-1])
    for container in ("Catch", "Choices"):
        entries = body.get(container)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            entry_body = as_mapping(entry)
            if entry_body is None:
                continue
            if container == "Catch" and isinstance(entry_body.get("ResultPath"), str):
                check_result_path(report, entry_body["ResultPath"], (*loc, container, i, "ResultPath"))
            if "Assign" in entry_body:
                check_template(report, entry_body["Assign"], (*loc, container, i, "Assign"))


def _check_fields(report: Report, body: Mapping[str, Any], loc: Loc) -> None:
    """The state's own path-valued fields."""
    for name, value in body.items():
        if not isinstance(value, str):
            continue
        if name in PATH_FIELDS:
            check_path(report, value, (*loc, name), name)
        elif name in REFERENCE_PATH_FIELDS:
            check_reference_path(report, value, (*loc, name), name)
        elif name in INTRINSIC_FIELDS:
            _check_intrinsic_or_reference(report, value, (*loc, name), name)
        elif name == "ResultPath":
            check_result_path(report, value, (*loc, name))


def _dig(body: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = body
    for part in parts:
        node = as_mapping(node)
        if node is None or part not in node:
            return None
        node = node[part]
    return node


def _syntax_problem(text: str) -> str | None:
    """The parser's reason if ``text`` is not a valid ASL path, else None."""
    try:
        paths.is_definite(text)
    except paths.PathSyntaxError as exc:
        return exc.reason
    return None


def check_path(report: Report, text: str, loc: Loc, name: str) -> None:
    """Report ``text`` if it is not a valid Path (``$...``, ``$$...`` or a ``$variable...``).

    Args:
        report: Where diagnostics go.
        text: The path.
        loc: Its location.
        name: The field name, for the message.
    """
    problem = _syntax_problem(text)
    if problem is not None:
        report.error(INVALID_PATH, f"{name} {text!r} is not a valid JSONPath: {problem}", loc)


def check_reference_path(report: Report, text: str, loc: Loc, name: str) -> None:
    """Report ``text`` if it is not a Reference Path (context and variable paths allowed)."""
    problem = _syntax_problem(text)
    if problem is not None:
        report.error(INVALID_REFERENCE_PATH, f"{name} {text!r} is not a valid JSONPath: {problem}", loc)
    elif not paths.is_reference_path(text):
        report.error(INVALID_REFERENCE_PATH, f"{name} {text!r} must be a Reference Path: {_REFERENCE_HELP}", loc)


def check_result_path(report: Report, text: str, loc: Loc) -> None:
    """Report a ResultPath that is not a Reference Path on the state data (no ``$$``, no variables)."""
    if text.startswith("$$"):
        report.error(
            INVALID_REFERENCE_PATH,
            f"ResultPath {text!r} can't write into the context object ($$): use a path on the state data such "
            'as "$.result"',
            loc,
        )
    elif text.startswith("$") and len(text) > 1 and text[1] not in ".[" and _syntax_problem(text) is None:
        report.error(
            INVALID_REFERENCE_PATH,
            f"ResultPath {text!r} names a variable, and ResultPath can only write into the state data: use "
            'Assign to set variables, or a path such as "$.result"',
            loc,
        )
    else:
        check_reference_path(report, text, loc, "ResultPath")


def _check_intrinsic_or_reference(report: Report, text: str, loc: Loc, name: str) -> None:
    if intrinsics.is_intrinsic(text):
        try:
            intrinsics.parse(text)
        except intrinsics.IntrinsicSyntaxError as exc:
            report.error(INVALID_INTRINSIC, f"{name}: {exc.reason} (in {text!r})", loc)
        return
    check_reference_path(report, text, loc, name)


def check_template(report: Report, template: Any, loc: Loc) -> None:
    """Report the static problems of a payload template (``.$`` values: paths and intrinsics).

    Args:
        report: Where diagnostics go.
        template: The template as written.
        loc: The location of the field holding it.
    """
    for relative, message in payload.check_template(template):
        parts = _parts(relative)
        value = _dig_any(template, parts)
        if isinstance(value, str) and intrinsics.is_intrinsic(value):
            code = INVALID_INTRINSIC
        elif isinstance(value, str) and value.startswith("$"):
            code = INVALID_PATH
        else:
            code = INVALID_PAYLOAD
        report.error(code, message, (*loc, *parts))


def _parts(relative: str) -> list[str | int]:
    """Split a relative JSON pointer (``/a/0/b.$``) into its unescaped parts."""
    if not relative:
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in relative.split("/")[1:]]


def _dig_any(template: Any, parts: list[str | int]) -> Any:
    node = template
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, str) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
