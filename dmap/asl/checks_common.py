"""Shared plumbing of the semantic checks: the diagnostic sink, the per-state context and small predicates.

Owns nothing ASL-specific beyond field-name tables used by several check modules. Every helper
here tolerates any JSON value: the checks run over the raw definition, before (and whatever) the
pydantic schema says, so a wrong type is skipped here and reported by the schema.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from .diagnostics import Diagnostic, Severity, pointer

#: A location as path parts from the definition root, e.g. ``("States", "Map", "ItemReader")``.
Loc = tuple[str | int, ...]

JSONPATH = "JSONPath"
JSONATA = "JSONata"

# Stable diagnostic codes (AWS ValidateStateMachineDefinition style).
SCHEMA = "SCHEMA_VALIDATION_FAILED"
MISSING_TARGET = "MISSING_TRANSITION_TARGET"
UNREACHABLE = "UNREACHABLE_STATE"
NO_TERMINAL = "MISSING_TERMINAL_STATE"
INVALID_PATH = "INVALID_PATH"
INVALID_REFERENCE_PATH = "INVALID_REFERENCE_PATH"
INVALID_INTRINSIC = "INVALID_INTRINSIC"
INVALID_PAYLOAD = "INVALID_PAYLOAD_TEMPLATE"
EXCLUSIVE = "MUTUALLY_EXCLUSIVE_FIELDS"
MISSING = "MISSING_REQUIRED_FIELD"
DISTRIBUTED_ONLY = "DISTRIBUTED_ONLY_FIELD"
INVALID_LABEL = "INVALID_LABEL"
DUPLICATE_LABEL = "DUPLICATE_LABEL"
DUPLICATE_STATE = "DUPLICATE_STATE_NAME"
WRONG_LANGUAGE = "FIELD_NOT_ALLOWED_IN_QUERY_LANGUAGE"
INVALID_JSONATA = "INVALID_JSONATA"
INVALID_CHOICE = "INVALID_CHOICE_RULE"
INVALID_RETRY = "INVALID_RETRY"
INVALID_CATCH = "INVALID_CATCH"
INVALID_VARIABLE = "INVALID_VARIABLE_NAME"
ITEMS_PATH_IGNORED = "ITEMS_PATH_IGNORED"

#: The state types that may carry Retry/Catch and produce a result.
FALLIBLE = frozenset({"Task", "Parallel", "Map"})
#: The state types that transition with Next/End.
FLOWING = frozenset({"Pass", "Task", "Wait", "Parallel", "Map"})

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass
class Report:
    """Collects diagnostics; check functions append to it rather than return lists, so none is lost."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, loc: Loc) -> None:
        """Record an ERROR at ``loc``."""
        self.items.append(Diagnostic(Severity.ERROR, code, message, pointer(*loc)))

    def warning(self, code: str, message: str, loc: Loc) -> None:
        """Record a WARNING (something AWS accepts but that is probably a mistake) at ``loc``."""
        self.items.append(Diagnostic(Severity.WARNING, code, message, pointer(*loc)))


@dataclass(frozen=True)
class StateCtx:
    """One state being checked: its name, raw body, location and effective query language."""

    name: str
    body: Mapping[str, Any]
    loc: Loc
    language: str

    @property
    def type(self) -> Any:
        """The raw ``Type`` value (any JSON value; compare, don't assume)."""
        return self.body.get("Type")

    @property
    def jsonata(self) -> bool:
        """True when this state evaluates JSONata rather than JSONPath."""
        return self.language == JSONATA


def as_mapping(value: Any) -> Mapping[str, Any] | None:
    """``value`` if it is a JSON object, else None."""
    return value if isinstance(value, Mapping) else None


def is_int(value: Any) -> TypeGuard[int]:
    """True for a JSON integer (not a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """True for a JSON number (int or float, not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def jsonata_body(value: Any) -> str | None:
    """The expression inside a ``{% ... %}`` string, or None if ``value`` is not one."""
    if isinstance(value, str) and len(value) >= 4 and value.startswith("{%") and value.endswith("%}"):
        return value[2:-2]
    return None


def is_timestamp(value: Any) -> bool:
    """True for an RFC 3339 timestamp as Step Functions accepts it (``2016-03-14T01:59:00Z``)."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def present(body: Mapping[str, Any], *names: str) -> list[str]:
    """The names among ``names`` that ``body`` has, in the order given."""
    return [n for n in names if n in body]


def exclusive(report: Report, body: Mapping[str, Any], loc: Loc, first: str, second: str) -> None:
    """Report ``second`` when ``body`` has both ``first`` and ``second`` (a value and its ``...Path`` twin)."""
    if first in body and second in body:
        report.error(EXCLUSIVE, f"'{first}' and '{second}' can't be used together: keep one of them", (*loc, second))


def names_list(names: list[str], limit: int = 20) -> str:
    """A short, quoted list of names for a message."""
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def did_you_mean(word: str, options: list[str]) -> str:
    """A ``; did you mean 'X'?`` suffix when one option is close to ``word``, else empty."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
