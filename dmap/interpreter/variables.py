"""Workflow variables: AWS's size limits on what ``Assign`` stores (both query languages)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ErrorName, StatesError
from . import dataflow

#: AWS: "The maximum size of a single variable is 256Kib", and the same for all variables of one Assign.
VARIABLE_LIMIT = 256 * 1024
#: AWS: "The total size of all stored variables cannot exceed 10MiB per execution."
VARIABLES_TOTAL_LIMIT = 10 * 1024 * 1024


def check_assignments(assignments: Mapping[str, Any], variables: Mapping[str, Any], state_name: str) -> None:
    """Enforce AWS's variable limits before ``assignments`` are stored into ``variables``.

    Raises:
        StatesError: ``States.DataLimitExceeded`` for a variable or an Assign over 256 KiB, or for stored
            variables over 10 MiB once the assignments are applied.
    """
    total = 0
    for name, value in assignments.items():
        size = dataflow.size_of(value)
        total += size
        if size > VARIABLE_LIMIT:
            raise _too_big(state_name, f"the variable '{name}' ({size} bytes > {VARIABLE_LIMIT})")
    if total > VARIABLE_LIMIT:
        raise _too_big(state_name, f"the variables of one Assign ({total} bytes > {VARIABLE_LIMIT})")
    stored = sum(dataflow.size_of(v) for k, v in variables.items() if k not in assignments) + total
    if stored > VARIABLES_TOTAL_LIMIT:
        raise _too_big(state_name, f"all stored variables ({stored} bytes > {VARIABLES_TOTAL_LIMIT})")


def _too_big(state_name: str, what: str) -> StatesError:
    return StatesError(
        ErrorName.DATA_LIMIT_EXCEEDED,
        f"The state/task '{state_name}' assigned variables with a size exceeding the maximum number of bytes "
        f"service limit: {what}.",
    )
