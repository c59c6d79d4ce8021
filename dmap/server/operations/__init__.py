"""The Step Functions operations, one module per family; importing this package registers them all."""

from __future__ import annotations

from . import (
    callbacks,  # noqa: F401  (registers its operations)
    executions,  # noqa: F401  (registers its operations)
    history,  # noqa: F401  (registers GetExecutionHistory)
    machines,  # noqa: F401  (registers its operations)
    map_runs,  # noqa: F401  (registers its operations)
    test_state,  # noqa: F401  (registers its operation)
)
