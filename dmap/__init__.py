"""dmap: AWS Step Functions Distributed Map semantics on your own machines.

The whole public surface is re-exported here; anything not in ``__all__`` is private.
"""

from __future__ import annotations

from .api import run
from .asl import load, validate
from .asl.diagnostics import Diagnostic, Severity
from .asl.model import StateMachine
from .errors import (
    BackendError,
    ConfigurationError,
    DefinitionError,
    DmapError,
    ErrorName,
    InvalidStateError,
    NotFoundError,
    StatesError,
    StorageError,
)
from .interpreter import TaskContext, task
from .records import Execution, ExecutionStatus, MapRun, MapRunStatus

__version__ = "0.1.0"

__all__ = [
    # Running
    "run",
    "task",
    "TaskContext",
    "Execution",
    "ExecutionStatus",
    "MapRun",
    "MapRunStatus",
    # Definitions
    "load",
    "validate",
    "StateMachine",
    "Diagnostic",
    "Severity",
    # Errors
    "DmapError",
    "DefinitionError",
    "ConfigurationError",
    "NotFoundError",
    "InvalidStateError",
    "BackendError",
    "StorageError",
    "StatesError",
    "ErrorName",
]
