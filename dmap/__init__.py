"""dmap: AWS Step Functions Distributed Map semantics on your own machines.

The whole public surface is re-exported here; anything not in ``__all__`` is private.
"""

from __future__ import annotations

from .api import run
from .asl import load, validate
from .asl.diagnostics import Diagnostic, Severity
from .asl.model import StateMachine
from .callbacks import send_task_failure, send_task_heartbeat, send_task_success
from .control import (
    HistoryPage,
    ItemFailure,
    describe_execution,
    describe_map_run,
    get_execution_history,
    list_executions,
    list_failures,
    list_map_runs,
    redrive_execution,
    stop_execution,
    update_map_run,
)
from .errors import (
    BackendError,
    ConfigurationError,
    DefinitionError,
    DmapError,
    ErrorName,
    ExecutionAlreadyExists,
    ExecutionNotRedrivable,
    InvalidName,
    InvalidOutput,
    InvalidStateError,
    InvalidToken,
    NotFoundError,
    SourceNotReadable,
    StatesError,
    StorageError,
    TaskDoesNotExist,
    TaskTimedOut,
    TaskTokenError,
)
from .flow import FlowOptions, Limit, delete_limit, list_limits, set_limit
from .interpreter import TaskContext, task
from .records import Execution, ExecutionStatus, MapRun, MapRunStatus
from .store.workers import WorkerInfo, list_workers

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
    # Control plane
    "describe_execution",
    "list_executions",
    "get_execution_history",
    "HistoryPage",
    "stop_execution",
    "redrive_execution",
    "list_map_runs",
    "describe_map_run",
    "update_map_run",
    "list_failures",
    # Callbacks (the task-token pattern)
    "send_task_success",
    "send_task_failure",
    "send_task_heartbeat",
    "ItemFailure",
    "list_workers",
    "WorkerInfo",
    # Flow control (protect what children call)
    "FlowOptions",
    "set_limit",
    "list_limits",
    "delete_limit",
    "Limit",
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
    "ExecutionAlreadyExists",
    "InvalidName",
    "InvalidStateError",
    "ExecutionNotRedrivable",
    "BackendError",
    "StorageError",
    "SourceNotReadable",
    "StatesError",
    "ErrorName",
    "TaskTokenError",
    "TaskDoesNotExist",
    "InvalidToken",
    "TaskTimedOut",
    "InvalidOutput",
]
