"""Choice rule evaluation for JSONPath rules: every comparison operator, And/Or/Not, IsPresent...

AWS semantics: a comparison whose value has the wrong type is simply false (``NumericEquals`` on a
string, ``IsNull`` on a number); timestamps follow the RFC 3339 profile of ISO 8601 (a time zone is
required); ``StringMatches`` supports ``*`` wildcards with ``\\*`` and ``\\\\`` escapes. A
``Variable`` path that does not exist is a ``States.Runtime`` error, except under ``IsPresent``.
JSONata ``Condition`` rules are evaluated by the data-flow layer, not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..asl import paths
from ..asl.model import ChoiceRule
from ..errors import ErrorName, StatesError

_MISSING = object()
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def evaluate(rule: ChoiceRule, data: Any, context: Any, variables: Mapping[str, Any] | None = None) -> bool:
    """True if the JSONPath Choice rule matches the state's effective input ``data``."""
    if rule.and_ is not None:
        return all(evaluate(r, data, context, variables) for r in rule.and_)
    if rule.or_ is not None:
        return any(evaluate(r, data, context, variables) for r in rule.or_)
    if rule.not_ is not None:
        return not evaluate(rule.not_, data, context, variables)
    if rule.operator is None or rule.variable is None:
        raise StatesError(ErrorName.RUNTIME, "a Choice rule has no comparison operator")
    value = _select(rule.variable, data, context, variables)
    if rule.operator == "IsPresent":
        return (value is not _MISSING) == bool(rule.operand)
    if value is _MISSING:
        raise StatesError(
            ErrorName.RUNTIME,
            f"Invalid path '{rule.variable}': The choice state's condition path references an invalid value.",
        )
    operand = rule.operand
    if rule.operator.endswith("Path"):
        operand = _select(str(rule.operand), data, context, variables)
        if operand is _MISSING:
            raise StatesError(
                ErrorName.RUNTIME,
                f"Invalid path '{rule.operand}': The choice state's condition path references an invalid value.",
            )
        return _COMPARE[rule.operator.removesuffix("Path")](value, operand)
    return _COMPARE[rule.operator](value, operand)


def _select(path: str, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    try:
        return paths.select(path, data, context=context, variables=variables)
    except paths.PathNotFound:
        return _MISSING


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def parse_timestamp(v: Any) -> datetime | None:
    """An RFC 3339 timestamp as a datetime, or None if ``v`` is not one."""
    if not isinstance(v, str) or not _TIMESTAMP.match(v):
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None


def _typed(check: Callable[[Any], bool], compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: check(a) and check(b) and compare(a, b)


def _timestamps(compare: Callable[[datetime, datetime], bool]) -> Callable[[Any, Any], bool]:
    def check(a: Any, b: Any) -> bool:
        ta, tb = parse_timestamp(a), parse_timestamp(b)
        return ta is not None and tb is not None and compare(ta, tb)

    return check


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """``StringMatches`` pattern: ``*`` matches anything; ``\\*`` a literal star; ``\\\\`` a backslash."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    **{f"String{name}": _typed(_is_str, fn) for name, fn in _ORDER.items()},
    **{f"Numeric{name}": _typed(_is_number, fn) for name, fn in _ORDER.items()},
    **{f"Timestamp{name}": _timestamps(fn) for name, fn in _ORDER.items()},
    "BooleanEquals": lambda a, b: isinstance(a, bool) and isinstance(b, bool) and a == b,
    "StringMatches": lambda a, b: isinstance(a, str) and isinstance(b, str) and bool(_glob(b).match(a)),
    "IsNull": lambda a, b: (a is None) == bool(b),
    "IsNumeric": lambda a, b: _is_number(a) == bool(b),
    "IsString": lambda a, b: isinstance(a, str) == bool(b),
    "IsBoolean": lambda a, b: isinstance(a, bool) == bool(b),
    "IsTimestamp": lambda a, b: (parse_timestamp(a) is not None) == bool(b),
}
