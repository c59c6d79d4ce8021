"""The callback pattern and nested workflows inside the interpreter.

Owns what a Task state does with ``arn:aws:states:::lambda:invoke.waitForTaskToken`` and
``arn:aws:states:::states:startExecution`` (request-response, ``.sync``, ``.sync:2``,
``.waitForTaskToken``): the ``$$.Task.Token`` its Parameters/Arguments see, calling the handler or
starting the nested execution, waiting for SendTaskSuccess/Failure under TimeoutSeconds and
HeartbeatSeconds, and shaping the result as AWS does. It does not own where tokens are kept or how
a wait survives a restart: that is the host's :class:`TokenService` (``Runtime.callbacks``; this
module's :class:`MemoryTokens` when none is given) and its :class:`Executions` (``Runtime.executions``).

A wait ends in one of three ways: an :class:`Answer` (the task's result or error), a timeout
(``States.Timeout`` / ``States.HeartbeatTimeout``, which Retry and Catch see like any error), or
:class:`Parked` — the host saved everything needed to resume the execution at this state and
lets go of the thread; the answer later resumes it (``Runtime.resume``).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ErrorName, InvalidToken, StatesError, TaskDoesNotExist, TaskTimedOut
from . import dataflow

if TYPE_CHECKING:
    from ..asl.model import TaskState
    from .executor import Env, Executor

LAMBDA_CALLBACK = "arn:aws:states:::lambda:invoke.waitForTaskToken"
START_EXECUTION = "arn:aws:states:::states:startExecution"
CALLBACK = ".waitForTaskToken"
SYNC = START_EXECUTION + ".sync"
SYNC2 = START_EXECUTION + ".sync:2"
RESOURCES = frozenset({LAMBDA_CALLBACK, START_EXECUTION, SYNC, SYNC2, START_EXECUTION + CALLBACK})
"""The Task resources this module runs."""

STARTED_BY = "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"
"""The input key AWS's console and docs use to pass ``$$.Execution.Id`` to a nested execution."""

_CLOSED_KEPT = 10_000  # ended tasks remembered per process, so a late answer says TaskTimedOut
_POLL = 0.25  # how often an in-slot waiter looks at the abort flag and the execution's deadline


def handles(resource: str) -> bool:
    """True for the resources this module runs (callbacks and nested executions)."""
    return resource in RESOURCES


def wants_token(resource: str) -> bool:
    """True if the resource is a ``.waitForTaskToken`` form: ``$$.Task.Token`` is set for its Parameters."""
    return resource.endswith(CALLBACK) and resource in RESOURCES


# -- tokens ---------------------------------------------------------------------------------------


def new_token(kind: str, execution: str, state: str, **extra: Any) -> str:
    """A fresh task token: URL-safe base64 of compact JSON, with 128 random bits in ``i``.

    Args:
        kind: ``"m"`` for a token kept in a process's memory, ``"r"`` for one kept in Redis.
        execution: The execution ARN the task belongs to (for messages; the record is authoritative).
        state: The Task state's name.
        **extra: More fields (``r``: the Map Run id and ``c``: the child of a distributed child's task).
    """
    body = {"v": 1, "b": kind, "i": secrets.token_urlsafe(16), "e": execution, "s": state, **extra}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """The fields of a token made by :func:`new_token`.

    Raises:
        InvalidToken: ``token`` is not one dmap issued.
    """
    if not isinstance(token, str) or not 1 <= len(token) <= 2048:
        raise InvalidToken("Invalid Token: the task token must be a string of 1 to 2048 characters")
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise InvalidToken(f"Invalid Token: '{token[:64]}' is not a task token dmap issued ({exc})") from None
    if not isinstance(body, dict) or body.get("v") != 1 or not isinstance(body.get("i"), str):
        raise InvalidToken(f"Invalid Token: '{token[:64]}' is not a task token dmap issued")
    return body


# -- what a wait is about -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """How a task waiting for its token ended: an output (SendTaskSuccess) or an error and cause."""

    output: Any = None
    error: str | None = None
    cause: str | None = None

    def result(self) -> Any:
        """The output, or the error raised as the state's :class:`StatesError`."""
        if self.error is not None:
            raise StatesError(self.error, self.cause or "")
        return self.output

    def to_json(self) -> str:
        """The answer as compact JSON text."""
        if self.error is not None:
            return dataflow.compact({"Error": self.error, "Cause": self.cause})
        return dataflow.compact({"Output": self.output})

    @classmethod
    def from_json(cls, text: str | bytes) -> Answer:
        """Read an answer written by :meth:`to_json`."""
        data = json.loads(text)
        if "Error" in data:
            return cls(error=str(data["Error"]), cause=data.get("Cause"))
        return cls(output=data.get("Output"))


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A task about to wait for its token, as the host records it.

    Attributes:
        execution: The execution ARN.
        state: The Task state's name.
        resource: The Task's Resource.
        timeout: TimeoutSeconds (None: the execution's own limit).
        heartbeat: HeartbeatSeconds (None: no heartbeat needed).
        parkable: The state runs at the top level of its execution, so the host may park it.
        input: The state's raw input (what a resume re-enters it with), when parkable.
        variables: The variables at the state's entry, when parkable.
        attempts: The state's Retry attempts so far, per retrier.
    """

    execution: str
    state: str
    resource: str
    timeout: float | None
    heartbeat: float | None
    parkable: bool = False
    input: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    attempts: list[int] = field(default_factory=list)

    def deadlines(self, started: float, beat: float) -> tuple[float | None, float | None]:
        """``(timeout, heartbeat)`` deadlines as epoch seconds from the task's start and its last beat."""
        return (
            None if self.timeout is None else started + self.timeout,
            None if self.heartbeat is None else beat + self.heartbeat,
        )


def expired_answer(state: str, request_timeout: float | None, heartbeat: float | None, *, timed_out: bool) -> Answer:
    """The error a task gets when its TimeoutSeconds or HeartbeatSeconds passed without an answer."""
    if timed_out:
        return Answer(
            error=ErrorName.TIMEOUT.value, cause=f"Task '{state}' timed out after {request_timeout:g} seconds"
        )
    return Answer(
        error=ErrorName.HEARTBEAT_TIMEOUT.value,
        cause=f"Task '{state}' received no SendTaskHeartbeat or answer for {heartbeat:g} seconds",
    )


class Parked(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """Raised through the interpreter when the host parked the execution at a waiting Task.

    A BaseException so no ``except Exception`` on the way catches it: the execution did not end,
    its thread lets go and the answer resumes it elsewhere.
    """


@dataclass(slots=True)
class Resume:
    """Where a parked execution continues: the Task state, its token, the answer it got, its Retry attempts.

    ``input`` and ``variables`` are the state's raw input and the variables at its entry: what the
    execution re-enters it with (``execute(start_at=state, ...)``). ``tokens`` is set when the
    execution was parked waiting for rate-limit tokens rather than for an answer: the tokens it holds,
    ``{key: [due epoch ms, lateness allowed in s]}`` (:mod:`dmap.flow.hooks`); ``answer`` is then unused.
    """

    state: str
    token: str
    answer: Answer
    attempts: list[int]
    input: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    used: bool = False
    tokens: dict[str, list[float]] | None = None


class TokenService(Protocol):
    """Where task tokens live: the host's side of the callback pattern."""

    def token_for(self, key: str, execution: str, state: str) -> str:
        """The token of the task ``key`` names (the same one again if the host already issued it)."""
        ...

    def open(self, token: str, request: TokenRequest) -> bool:
        """Record the task as waiting; False if it was recorded before (a resumed execution: do not start it again)."""
        ...

    def wait(self, token: str, request: TokenRequest, check: Callable[[], None]) -> Answer:
        """Block until the task is answered or expires; ``check`` raises to stop (abort, deadline). May raise Parked."""
        ...

    def close(self, token: str) -> None:
        """Forget a task that failed before it could wait (its handler raised)."""
        ...


class Executions(Protocol):
    """Starts nested executions (``states:startExecution``): the host's side of nested workflows."""

    def start(self, request: NestedStart, notify: str | None) -> dict[str, Any]:
        """Start an execution; answer the task ``notify`` (a token) with its describe shape when it ends.

        Returns:
            ``{"ExecutionArn": ..., "StartDate": <epoch ms>}``.

        Raises:
            StatesError: It cannot start (``StepFunctions.StateMachineDoesNotExistException``...).
        """
        ...


@dataclass(frozen=True, slots=True)
class NestedStart:
    """A ``states:startExecution`` request: Parameters/Arguments StateMachineArn, Input, Name."""

    state_machine_arn: str
    input: Any
    name: str | None
    parent: str


# -- the local implementation ---------------------------------------------------------------------


@dataclass(slots=True)
class _Waiting:
    request: TokenRequest
    started: float
    beat: float
    answer: Answer | None = None
    closed: bool = False


class MemoryTokens:
    """Tokens in this process's memory: the local backend and executions run without a host service.

    A waiting task holds its thread (nothing else could resume it here). Answers come from this
    process: :func:`dmap.send_task_success` in a handler, another thread, or ``dmap serve``.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tasks: dict[str, _Waiting] = {}
        self._watches: dict[str, str] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()  # recently ended: a late answer is TaskTimedOut

    def token_for(self, key: str, execution: str, state: str) -> str:
        """A fresh token (a process that restarts has no task to find again)."""
        return new_token("m", execution, state)

    def open(self, token: str, request: TokenRequest) -> bool:
        """Record the task; False if this token waits already."""
        now = time.time()
        with self._cond:
            if token in self._tasks:
                return False
            self._tasks[token] = _Waiting(request, now, now)
            return True

    def close(self, token: str) -> None:
        """Forget the task."""
        with self._cond:
            self._tasks.pop(token, None)

    def answer(self, token: str, answer: Answer) -> None:
        """SendTaskSuccess/Failure: hand the answer to the waiting task.

        Raises:
            TaskDoesNotExist: No task of this process has the token.
            TaskTimedOut: The task was answered, timed out or its execution stopped.
        """
        with self._cond:
            task = self._find(token)
            task.answer = answer
            task.closed = True
            self._cond.notify_all()

    def heartbeat(self, token: str) -> None:
        """SendTaskHeartbeat: the task's HeartbeatSeconds start again."""
        with self._cond:
            self._find(token).beat = time.time()

    def _find(self, token: str) -> _Waiting:
        decode_token(token)
        task = self._tasks.get(token)
        if task is None and token in self._closed:
            raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
        if task is None:
            raise TaskDoesNotExist("Task does not exist anymore")
        if task.closed:
            raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")
        return task

    def wait(self, token: str, request: TokenRequest, check: Callable[[], None]) -> Answer:
        """Block this thread until the answer, a timeout, or ``check`` raising."""
        with self._cond:
            task = self._tasks[token]
            try:
                while task.answer is None:
                    check_after = time.monotonic() + _POLL
                    timeout_at, beat_at = request.deadlines(task.started, task.beat)
                    now = time.time()
                    if timeout_at is not None and now >= timeout_at or beat_at is not None and now >= beat_at:
                        timed_out = timeout_at is not None and now >= timeout_at
                        task.answer = expired_answer(
                            request.state, request.timeout, request.heartbeat, timed_out=timed_out
                        )
                        break
                    due = min(d for d in (timeout_at, beat_at, now + _POLL) if d is not None)
                    self._cond.wait(max(0.001, due - now))
                    if time.monotonic() >= check_after:
                        self._cond.release()
                        try:
                            check()
                        finally:
                            self._cond.acquire()
                return task.answer
            finally:
                task.closed = True
                self._tasks.pop(token, None)
                self._closed[token] = None
                while len(self._closed) > _CLOSED_KEPT:
                    self._closed.popitem(last=False)

    def watch(self, execution: str, token: str) -> None:
        """Answer ``token`` when ``execution`` ends (a ``.sync`` parent waits on it)."""
        with self._cond:
            self._watches[execution] = token

    def execution_ended(self, execution: str, describe: dict[str, Any]) -> None:
        """An execution ended: answer the task that waits on it, if any (it may have gone: ignored)."""
        with self._cond:
            token = self._watches.pop(execution, None)
        if token is not None:
            try:
                self.answer(token, Answer(output=describe))
            except (TaskDoesNotExist, TaskTimedOut):
                pass


local_tokens = MemoryTokens()
"""The tokens of executions in this process that have no host service (the local backend's)."""


# -- the Task state -------------------------------------------------------------------------------


def _service(ex: Executor) -> TokenService:
    service: TokenService = ex.runtime.callbacks or local_tokens
    return service


def _key(ex: Executor, env: Env) -> str:
    """What names this task within its execution, the same when the execution runs again after a restart."""
    item = env.context.get("Map", {}).get("Item", {}).get("Index", "")
    retry = env.context.get("State", {}).get("RetryCount", 0)
    return f"{ex.info.execution_arn}|{env.name}|{env.entered_event}|{item}|{retry}"


def _resume_for(ex: Executor, env: Env, *, take: bool) -> Resume | None:
    resume: Resume | None = ex.runtime.resume
    if resume is None or resume.used or resume.state != env.name:
        return None
    if take:
        resume.used = True
    return resume


def prepare(ex: Executor, state: TaskState, env: Env) -> None:
    """Give a ``.waitForTaskToken`` Task its ``$$.Task.Token`` before its Parameters/Arguments are evaluated."""
    if not wants_token(state.resource):
        return
    resume = _resume_for(ex, env, take=False)
    token = (
        resume.token if resume is not None else _service(ex).token_for(_key(ex, env), ex.info.execution_arn, env.name)
    )
    env.context["Task"] = {"Token": token}


def run(
    ex: Executor, state: TaskState, raw: Any, args: Any, env: Env, *, timeout: float | None, heartbeat: float | None
) -> Any:
    """Run a callback or nested-execution Task; its raw result (before ResultSelector/ResultPath).

    Its history is one Task invocation (TaskScheduled, TaskStarted, then TaskSucceeded or the failure).
    """
    from . import history as events

    task = events.TaskEvents(ex.history, env.chain, state.resource, ex.info.execution_arn)
    task.scheduled(args, timeout, heartbeat)
    try:
        result = _run(ex, state, raw, args, env, timeout=timeout, heartbeat=heartbeat)
    except StatesError as exc:
        task.ended(exc)
        raise
    task.succeeded(result)
    return result


def _run(
    ex: Executor, state: TaskState, raw: Any, args: Any, env: Env, *, timeout: float | None, heartbeat: float | None
) -> Any:
    resource = state.resource
    if resource == START_EXECUTION:
        return _start(ex, args, env, notify=None)
    resume = _resume_for(ex, env, take=True)
    if resume is not None:
        return _shape(resource, resume.answer)
    service = _service(ex)
    token = (
        env.context["Task"]["Token"]
        if wants_token(resource)
        else service.token_for(_key(ex, env), ex.info.execution_arn, env.name)
    )
    position = ex.position
    parkable = position is not None and position[0] == env.name and position[1] is raw
    request = TokenRequest(
        execution=ex.info.execution_arn,
        state=env.name,
        resource=resource,
        timeout=timeout,
        heartbeat=heartbeat,
        parkable=parkable,
        input=position[1] if parkable and position else None,
        variables=position[2] if parkable and position else {},
        attempts=list(getattr(env, "attempts", None) or []),
    )
    if service.open(token, request):
        try:
            if resource == LAMBDA_CALLBACK:
                _call_lambda(ex, state, args, env, timeout)
            else:
                _start(ex, args, env, notify=None if wants_token(resource) else token)
        except BaseException:
            service.close(token)
            raise
    return _shape(resource, service.wait(token, request, ex._check_alive))


def park_point(ex: Executor, state: TaskState, env: Env, raw: Any) -> TokenRequest | None:
    """Where a Task running at the top level of its execution can be parked and resumed; None elsewhere.

    Inside a Parallel branch or an inline Map iteration (or without ``raw``) the execution cannot
    be resumed at the state, so whoever waits there waits in its thread.
    """
    position = ex.position
    if raw is None or position is None or position[0] != env.name or position[1] is not raw:
        return None
    return TokenRequest(
        execution=ex.info.execution_arn,
        state=env.name,
        resource=state.resource,
        timeout=None,
        heartbeat=None,
        parkable=True,
        input=raw,
        variables=position[2],
        attempts=list(env.attempts or []),
    )


def _call_lambda(ex: Executor, state: TaskState, args: Any, env: Env, timeout: float | None) -> None:
    """Invoke the handler as ``lambda:invoke`` does; its result is not the task's (the token's answer is)."""
    from .states import invoke
    from .tasks import LAMBDA_INVOKE

    invoke(
        ex, state.model_copy(update={"resource": LAMBDA_INVOKE}), args, env, timeout=timeout, heartbeat=None, quiet=True
    )


def _start(ex: Executor, args: Any, env: Env, *, notify: str | None) -> dict[str, Any]:
    if not isinstance(args, dict) or not isinstance(args.get("StateMachineArn"), str):
        raise StatesError(
            ErrorName.RUNTIME,
            f"The state '{env.name}' calls states:startExecution without a StateMachineArn in its Parameters/Arguments",
        )
    executions: Executions | None = ex.runtime.executions
    if executions is None:
        raise StatesError(
            ErrorName.TASK_FAILED,
            "states:startExecution needs a backend that keeps state machines (dmap.run, dmap serve); "
            "this execution runs without one",
        )
    name = args.get("Name")
    value = args.get("Input", {})
    if isinstance(value, str):  # AWS accepts the input as JSON text too
        try:
            value = json.loads(value)
        except ValueError:
            raise StatesError(
                "StepFunctions.InvalidExecutionInputException", f"Invalid State Machine Execution Input: '{value}'"
            ) from None
    request = NestedStart(
        args["StateMachineArn"], value, str(name) if name is not None else None, ex.info.execution_arn
    )
    return executions.start(request, notify)


def _shape(resource: str, answer: Answer) -> Any:
    """The task's result: the token's output, or for ``.sync``/``.sync:2`` the nested execution's description."""
    result = answer.result()
    if resource not in (SYNC, SYNC2):
        return result
    if not isinstance(result, dict) or result.get("Status") != "SUCCEEDED":
        raise StatesError(ErrorName.TASK_FAILED, dataflow.compact(result))
    if resource == SYNC2 and isinstance(result.get("Output"), str):
        return {**result, "Output": json.loads(result["Output"])}
    return result
