"""JSONata states (``QueryLanguage: JSONata``): Arguments, Output, Assign, Items, Condition.

Placeholder until the JSONata adapter lands: every JSONata state fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ErrorName, StatesError


def _unsupported(*_: Any) -> tuple[Any, str | None]:
    raise StatesError(ErrorName.RUNTIME, "QueryLanguage JSONata is not supported by this dmap version yet")


def caught(*_: Any) -> tuple[Any, dict[str, Any]]:
    """The output of a JSONata Catch (not supported yet)."""
    raise StatesError(ErrorName.RUNTIME, "QueryLanguage JSONata is not supported by this dmap version yet")


RUNNERS: dict[str, Callable[..., tuple[Any, str | None]]] = {
    kind: _unsupported for kind in ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
}
