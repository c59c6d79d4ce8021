"""Diagnostics: one problem found in a definition, located by a JSON pointer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How bad a diagnostic is: an ERROR stops the definition from running, a WARNING does not."""

    ERROR = "ERROR"
    WARNING = "WARNING"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a definition, shaped like AWS ValidateStateMachineDefinition's diagnostics.

    Attributes:
        severity: ERROR or WARNING.
        code: A stable machine-readable code, e.g. ``SCHEMA_VALIDATION_FAILED``, ``MISSING_TRANSITION_TARGET``.
        message: What is wrong and, where possible, how to fix it.
        location: A JSON pointer into the definition, e.g. ``/States/Map/ItemReader/ReaderConfig/MaxItems``.
    """

    severity: Severity
    code: str
    message: str
    location: str

    def __str__(self) -> str:
        return f"{self.severity} {self.location or '/'}: {self.message} [{self.code}]"


def pointer(*parts: str | int) -> str:
    """Build a JSON pointer (RFC 6901) from path parts, escaping ``~`` and ``/``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
