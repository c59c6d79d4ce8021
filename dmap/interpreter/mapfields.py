"""The Map fields whose value may come from a path: MaxConcurrency and the failure tolerances.

Shared by the inline Map and the distributed coordinator; the AWS cause wording of a bad value
is reproduced exactly ("The MaxConcurrencyPath field refers to value \\"NoNumber\\" which is not a
valid integer: $.x").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..asl.model import MapState
from ..errors import ErrorName, StatesError
from . import dataflow

INLINE_DEFAULT_CONCURRENCY = 40


def _path_value(path: str, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    return dataflow.select(path, data, context, variables, path)


def _integer(field: str, path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise StatesError(
            ErrorName.RUNTIME,
            f'The {field} field refers to value "{_show(value)}" which is not a valid integer: {path}',
        )
    return int(value)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else dataflow.compact(value)


def max_concurrency(state: MapState, data: Any, context: Any, variables: Mapping[str, Any] | None) -> int:
    """``MaxConcurrency`` or the value at ``MaxConcurrencyPath`` (0 = no limit)."""
    if state.max_concurrency_path is not None:
        path = state.max_concurrency_path
        value = _integer("MaxConcurrencyPath", path, _path_value(path, data, context, variables))
        if value < 0:
            raise StatesError(
                ErrorName.RUNTIME, f"Expected non-negative integer for MaxConcurrency, got '{value}' instead."
            )
        return value
    return int(state.max_concurrency) if isinstance(state.max_concurrency, int) else 0


def tolerated_failure_count(state: MapState, data: Any, context: Any, variables: Mapping[str, Any] | None) -> int:
    """``ToleratedFailureCount`` or the value at its path (default 0)."""
    if state.tolerated_failure_count_path is not None:
        path = state.tolerated_failure_count_path
        value = _integer("ToleratedFailureCountPath", path, _path_value(path, data, context, variables))
        if value < 0:
            raise StatesError(ErrorName.RUNTIME, "ToleratedFailureCount cannot be negative.")
        return value
    return int(state.tolerated_failure_count) if isinstance(state.tolerated_failure_count, int) else 0


def tolerated_failure_percentage(
    state: MapState, data: Any, context: Any, variables: Mapping[str, Any] | None
) -> float:
    """``ToleratedFailurePercentage`` or the value at its path (default 0)."""
    if state.tolerated_failure_percentage_path is not None:
        path = state.tolerated_failure_percentage_path
        value = _path_value(path, data, context, variables)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise StatesError(
                ErrorName.RUNTIME,
                f'The ToleratedFailurePercentagePath field refers to value "{_show(value)}" '
                f"which is not a valid float: {path}",
            )
        if not 0 <= value <= 100:
            raise StatesError(ErrorName.RUNTIME, "ToleratedFailurePercentage must be between 0 and 100.")
        return float(value)
    value = state.tolerated_failure_percentage
    return float(value) if isinstance(value, int | float) else 0.0
