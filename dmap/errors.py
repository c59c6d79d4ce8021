"""The dmap error tree and the ASL error names.

Two kinds of failure live here. Python exceptions rooted at :class:`DmapError` are raised to
*callers* of dmap (an invalid definition, an unreachable Redis). ASL-level failures — what a
state machine's ``Retry``/``Catch`` sees — are data: a :class:`StatesError` carrying an error
name (one of :class:`ErrorName`'s literal ``States.*`` strings, or any user string such as a
handler's exception class) and a cause string. The interpreter turns them into the execution's
``error``/``cause``; they never escape :func:`dmap.run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .asl.diagnostics import Diagnostic


class ErrorName(StrEnum):
    """The predefined ASL error names, valued as the literal strings AWS uses."""

    ALL = "States.ALL"
    TASK_FAILED = "States.TaskFailed"
    TIMEOUT = "States.Timeout"
    HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
    PERMISSIONS = "States.Permissions"
    DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
    RUNTIME = "States.Runtime"
    EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
    ITEM_READER_FAILED = "States.ItemReaderFailed"
    RESULT_WRITER_FAILED = "States.ResultWriterFailed"
    QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
    BRANCH_FAILED = "States.BranchFailed"
    NO_CHOICE_MATCHED = "States.NoChoiceMatched"
    PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
    RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
    INTRINSIC_FAILURE = "States.IntrinsicFailure"
    HTTP_SOCKET = "States.Http.Socket"


#: Errors that ``States.ALL`` does not match (AWS: terminal, not retriable, not catchable).
UNCATCHABLE: frozenset[str] = frozenset({ErrorName.RUNTIME.value, ErrorName.DATA_LIMIT_EXCEEDED.value})


class DmapError(Exception):
    """Base class for every exception dmap raises to its callers."""


class DefinitionError(DmapError):
    """Raised when a state machine definition is invalid; carries every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str | None = None) -> None:
        self.diagnostics = list(diagnostics)
        self.source = source
        lines = [f"  {d}" for d in self.diagnostics]
        where = f" {source}" if source else ""
        super().__init__(f"invalid definition{where} ({len(self.diagnostics)} problem(s)):\n" + "\n".join(lines))


class ConfigurationError(DmapError):
    """Raised when settings or arguments given to dmap are invalid."""


class HandlerImportError(ConfigurationError):
    """Raised when a handler module given to ``--import`` or ``DMAP_IMPORTS`` cannot be imported.

    Args:
        spec: What the user gave (a module name or a file path).
        reason: Why it failed, with the ``file:line`` of the error when there is one.
    """

    def __init__(self, spec: str, reason: str) -> None:
        self.spec = spec
        self.reason = reason
        super().__init__(f"cannot import handler module {spec!r}: {reason}")


class NotFoundError(DmapError):
    """Raised when an execution or Map Run ARN names nothing dmap knows."""

    def __init__(self, kind: str, arn: str) -> None:
        self.kind = kind
        self.arn = arn
        super().__init__(f"{kind} does not exist: {arn}")


class InvalidStateError(DmapError):
    """Raised when an operation does not apply to an execution or Map Run in its current status."""


class ExecutionAlreadyExists(DmapError):
    """Raised when an execution name is taken: closed, or RUNNING with another input or item source.

    AWS's StartExecution rule: within one state machine a name runs once. Only a RUNNING execution
    with the same input and item source is attached to (resumed) instead.

    Attributes:
        execution_arn: The ARN of the existing execution.
        status: Its status (``"SUCCEEDED"``, ``"FAILED"``, ``"RUNNING"``...).
        reason: Why the name cannot be reused: ``"closed"``, ``"input"`` or ``"source"``.
    """

    REDRIVABLE = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})

    def __init__(self, execution_arn: str, status: str, reason: str = "closed") -> None:
        self.execution_arn, self.status, self.reason = execution_arn, str(status), reason
        if reason == "closed":
            what = f"execution {execution_arn} already exists and is {self.status} (a name runs once per state machine)"
            if self.status in self.REDRIVABLE:
                todo = f"re-run what did not finish with `dmap redrive-execution {execution_arn}`, or pick a new --name"
            else:
                todo = "pick a new --name (or leave it out for a generated one)"
        else:
            differs = "input" if reason == "input" else "item source (--manifest)"
            what = (
                f"execution {execution_arn} is RUNNING with a different {differs} (the same name attaches only to the"
                " same input and item source)"
            )
            todo = f"wait for it, stop it with `dmap stop-execution {execution_arn}`, or pick a new --name"
        super().__init__(f"{what}; {todo}")


class ExecutionNotRedrivable(DmapError):
    """Raised when a redrive needs items from a source that cannot be read again (give it with ``manifest=``).

    Args:
        arn: The execution ARN.
        missing: What cannot be read again (``"the in-process list of items"``, a file path...).
        state_name: The Map state whose unread items need it.
    """

    def __init__(self, arn: str, missing: str, *, state_name: str | None = None) -> None:
        self.arn, self.missing, self.state_name = arn, missing, state_name
        where = f" of Map state '{state_name}'" if state_name else ""
        super().__init__(
            f"Execution {arn} cannot be redriven: items{where} that never ran come from {missing}, which cannot be "
            "read again. Give the same items again: dmap.redrive_execution(arn, manifest=...) or "
            "dmap redrive-execution EXECUTION --manifest URI (the reader skips to where the run stopped)."
        )


class InvalidName(ConfigurationError):
    """Raised when an execution name breaks AWS's naming rule (1-80 characters, no whitespace or ``/:*?``...).

    Attributes:
        name: The name given.
        reason: What is wrong with it.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(
            f"invalid execution name {name!r}: {reason}; AWS allows 1-80 characters without whitespace, "
            'control characters or any of < > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /'
        )


class BackendError(DmapError):
    """Raised when the execution backend (Redis, the Celery broker) fails or cannot be reached."""


class HandedOver(BackendError):
    """Raised when a coordinator stops because another process took its execution over (its claim was lost)."""


class StorageError(DmapError):
    """Raised when object storage (S3, MinIO, ``DMAP_S3_ROOT``) cannot be read or written."""

    def __init__(self, message: str, *, code: str = "StorageError") -> None:
        self.code = code
        super().__init__(message)


class SourceNotReadable(ConfigurationError, StorageError):
    """Raised when an execution's item source cannot be read before the execution is accepted.

    A detached execution is read later by a worker, so its manifest is checked at submission: a local
    file must exist and be readable, an ``s3://`` object must exist, an ``s3://`` prefix must be listable.
    It is a :class:`ConfigurationError` (the CLI exits 2) and a :class:`StorageError` (``code`` is S3's).

    Args:
        source: The source as given (``s3://...`` or a path).
        reason: What is wrong with it.
        code: An S3-style error code (``NoSuchKey``, ``NoSuchBucket``, ``AccessDenied``...).
    """

    def __init__(self, source: str, reason: str, *, code: str = "NoSuchKey") -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"item source {source!r} cannot be read: {reason}; nothing was submitted", code=code)


class StatesError(DmapError):
    """Raised inside an execution for an ASL-level failure: ``name`` is what ``ErrorEquals`` matches.

    Args:
        name: An :class:`ErrorName` or any user error string (e.g. a handler's exception class).
        cause: The human-readable cause, as AWS would report it.
    """

    def __init__(self, name: ErrorName | str, cause: str = "") -> None:
        self.name = name.value if isinstance(name, ErrorName) else str(name)
        self.cause = cause
        super().__init__(f"{self.name}: {cause}" if cause else self.name)


class TaskTokenError(DmapError):
    """Raised when SendTaskSuccess/Failure/Heartbeat cannot be applied; ``code`` is AWS's error code.

    Args:
        code: ``TaskDoesNotExist``, ``InvalidToken``, ``TaskTimedOut`` or ``InvalidOutput``.
        message: What went wrong, for the caller.
    """

    code = "TaskTokenError"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class TaskDoesNotExist(TaskTokenError):
    """Raised when a task token names no task this backend knows (never issued here, or expired)."""

    code = "TaskDoesNotExist"


class InvalidToken(TaskTokenError):
    """Raised when a task token is not one dmap issued (not its format)."""

    code = "InvalidToken"


class TaskTimedOut(TaskTokenError):
    """Raised when a task token's task is already closed: answered, timed out, or its execution ended."""

    code = "TaskTimedOut"


class InvalidOutput(TaskTokenError):
    """Raised when SendTaskSuccess's output is not JSON text (or is over the payload limit)."""

    code = "InvalidOutput"
