"""The base class of every definition model: frozen, AWS field names as aliases, unknown fields rejected."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class AslModel(BaseModel):
    """A frozen pydantic model whose fields are populated from their AWS (PascalCase) names."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=False)


def is_jsonata(value: Any) -> bool:
    """True for a JSONata expression string ``{% ... %}`` (AWS allows no space outside the braces)."""
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}") and len(value) >= 4


def _number(low: float, high: float, *, integer: bool, low_open: bool = False) -> Callable[[Any], Any]:
    kind = "an integer" if integer else "a number"
    bounds = f"{'>' if low_open else '>='} {low:g}" + ("" if math.isinf(high) else f" and <= {high:g}")

    def check(value: Any) -> Any:
        if is_jsonata(value):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be {kind} {bounds} (or a JSONata expression), got {value!r}")
        if integer and (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"must be an integer, got {value!r}")
        if value < low or value > high or (low_open and value == low):
            raise ValueError(f"must be {bounds}, got {value!r}")
        return int(value) if integer else value

    return check


#: A non-negative integer (MaxConcurrency, ToleratedFailureCount, MaxItems) or a JSONata expression.
NonNegativeInt = Annotated[int | str, BeforeValidator(_number(0, math.inf, integer=True))]
#: A positive integer (TimeoutSeconds, MaxItemsPerBatch) or a JSONata expression.
PositiveInt = Annotated[int | str, BeforeValidator(_number(0, 99_999_999, integer=True, low_open=True))]
#: A percentage 0-100 or a JSONata expression.
Percentage = Annotated[float | str, BeforeValidator(_number(0, 100, integer=False))]
#: Wait seconds: a non-negative integer or a JSONata expression.
Seconds = Annotated[int | str, BeforeValidator(_number(0, 99_999_999, integer=True))]
