"""Task handlers: the ``@dmap.task`` registry and how a ``Resource`` resolves to a Python callable.

Only registered handlers can be invoked by a definition (and, in later parts, explicitly enabled
service integrations). Resolution follows DESIGN §2: a direct Lambda function ARN
(``arn:aws:lambda:<region>:<acct>:function:NAME[:qualifier]``), the optimized
``arn:aws:states:::lambda:invoke`` integration with ``Parameters.FunctionName`` (its result wrapped
like AWS's), or the registered name itself. A handler's exception becomes a Lambda-style error:
``Error`` = the exception's class name, ``Cause`` = ``{"errorMessage", "errorType", "stackTrace"}``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ErrorName, StatesError
from .dataflow import compact, parse

logger = logging.getLogger(__name__)
handler_logger = logging.getLogger("dmap.handlers")
"""One WARNING per handler exception. Workers show it (``workers.announce``); elsewhere it is silent
unless the application configures logging: the CLI and the Python API report failures themselves,
and a million failing items must not mean a million lines on a terminal."""
handler_logger.addHandler(logging.NullHandler())

Handler = Callable[[Any, "TaskContext"], Any]
F = TypeVar("F", bound=Callable[..., Any])

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_CALLBACK = LAMBDA_INVOKE + ".waitForTaskToken"
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)  # dmap's own frames are noise in a handler's stackTrace
_LAMBDA_ARN = re.compile(r"arn:aws[a-z-]*:lambda:")  # every partition: aws, aws-cn, aws-us-gov


def new_request_id() -> str:
    """A random version-4 UUID string, like ``str(uuid.uuid4())`` but without its system call.

    ``uuid4`` reads ``os.urandom``, which releases the GIL: with a few threads running Tasks, getting
    it back cost more than the rest of a no-op Task. A request id needs uniqueness, not secrecy; the
    ``random`` module's generator is reseeded in every forked worker.
    """
    n = random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (4 << 76) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class TaskContext:
    """What a handler receives as its second argument: a Lambda-style context plus dmap's extras.

    Attributes:
        function_name: The registered name the resource resolved to.
        state_name: The Task state running the handler.
        execution_arn: The execution (or child execution) ARN.
        aws_request_id: A unique id of this invocation.
        item_index: The item index when running inside a distributed Map child (else None).
        deadline: ``time.monotonic()`` value at which TimeoutSeconds expires (None = no timeout).
    """

    function_name: str
    state_name: str
    execution_arn: str
    aws_request_id: str
    item_index: int | None = None
    deadline: float | None = None
    _last_heartbeat: float = field(default_factory=time.monotonic, repr=False)
    _cancelled: bool = field(default=False, repr=False)  # set once by call_handler; a plain flag is enough

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the Task's TimeoutSeconds (a large number when it has none), like Lambda's."""
        if self.deadline is None:
            return 900_000
        return max(0, int((self.deadline - time.monotonic()) * 1000))

    def heartbeat(self) -> None:
        """Tell dmap the handler is alive (for ``HeartbeatSeconds``)."""
        self._last_heartbeat = time.monotonic()

    @property
    def cancelled(self) -> bool:
        """True once the execution was stopped or timed out; long handlers should check it and return."""
        return self._cancelled


class Registry:
    """Maps resource names to handlers. The module-level :data:`registry` is what ``@dmap.task`` fills."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        """Register ``handler`` under ``name`` (a function name or a full Lambda ARN); the last one wins.

        A *different* function taking a name already registered is logged as a WARNING naming both
        (two modules using one name is a bug that otherwise shows only as the wrong handler running);
        the same function registered again, as when its module is reloaded, is not.
        """
        previous = self._handlers.get(name)
        if previous is not None and _origin(previous) != _origin(handler):
            logger.warning(
                "task name %r registered twice: %s replaces %s; give one of them another name",
                name,
                _origin(handler),
                _origin(previous),
            )
        self._handlers[name] = handler

    def unregister(self, name: str) -> None:
        """Remove a registration (tests use this)."""
        self._handlers.pop(name, None)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))

    def lookup(self, function: str) -> tuple[str, Handler] | None:
        """Find the handler of a function name or Lambda ARN (qualifier ignored when not registered as such)."""
        if function in self._handlers:
            return function, self._handlers[function]
        name = _function_name(function)
        if name is not None and name in self._handlers:
            return name, self._handlers[name]
        return None

    def resolve(self, resource: str, parameters: Any = None) -> Resolved | None:
        """Resolve a Task ``Resource`` (and, for ``lambda:invoke``, its static FunctionName) to a handler.

        Returns None when nothing registered matches. For ``lambda:invoke`` with a dynamic
        ``FunctionName.$`` the check is deferred to run time and a placeholder is returned.
        """
        if resource == LAMBDA_CALLBACK:  # the callback pattern calls its function as lambda:invoke does
            resource = LAMBDA_INVOKE
        if resource == LAMBDA_INVOKE:  # exactly: made-up suffixes are not request-response
            if isinstance(parameters, Mapping) and "FunctionName.$" in parameters:
                return Resolved(name="", handler=None, wrap=True)
            function = parameters.get("FunctionName") if isinstance(parameters, Mapping) else None
            found = self.lookup(function) if isinstance(function, str) else None
            return Resolved(found[0], found[1], wrap=True) if found else None
        found = self.lookup(resource)
        return Resolved(found[0], found[1], wrap=False) if found else None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A resolved resource: the handler and whether its result is wrapped like ``lambda:invoke``'s."""

    name: str
    handler: Handler | None
    wrap: bool


registry = Registry()


def task(name: str, *, registry_: Registry | None = None) -> Callable[[F], F]:
    """Register a function as the handler of a Task resource.

    Args:
        name: A function name (``"MyProcessorFunction"``) or a full Lambda ARN.

    Example::

        @dmap.task("MyProcessorFunction")
        def process(event: dict, context: dmap.TaskContext) -> dict:
            return {"ok": True}
    """

    def decorate(fn: F) -> F:
        (registry_ or registry).register(name, fn)
        return fn

    return decorate


def _origin(handler: Handler) -> str:
    """``module.qualname`` of a handler: what stays the same when its module is imported again."""
    module = getattr(handler, "__module__", None) or "?"
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return f"{module}.{name}"


def _function_name(function: str) -> str | None:
    """``NAME`` from ``arn:aws:lambda:region:acct:function:NAME[:qualifier]``, or the bare name."""
    if _LAMBDA_ARN.match(function):
        parts = function.split(":")
        return parts[6] if len(parts) >= 7 and parts[5] == "function" else None
    return function.split(":")[0] if function else None


def lambda_error(exc: BaseException) -> StatesError:
    """A handler exception as AWS reports a Lambda function error (Error = class name, Cause = JSON)."""
    error_type = type(exc).__name__
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_PACKAGE_DIR)]
    stack = [line.rstrip("\n") for line in traceback.format_list(frames)][-10:]
    cause = {"errorMessage": str(exc), "errorType": error_type, "requestId": "", "stackTrace": stack}
    return StatesError(error_type, json.dumps(cause))


def marshal(value: Any, function: str) -> Any:
    """A handler's return value as the JSON it stands for (tuples -> arrays, keys -> strings).

    Raises AWS's ``Runtime.MarshalError`` for what is not JSON (NaN, bytes, sets, cycles).
    """
    return marshal_json(value)[0]


def marshal_json(value: Any) -> tuple[Any, str]:
    """:func:`marshal`, with the value's compact JSON (what its size is measured on, made once).

    Raises:
        StatesError: ``Runtime.MarshalError`` for what is not JSON (NaN, bytes, sets, cycles).
    """
    try:
        text = compact(value, allow_nan=False)
        return parse(text), text
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"Unable to marshal response: {exc}"
        cause = {"errorMessage": message, "errorType": "Runtime.MarshalError", "requestId": "", "stackTrace": []}
        raise StatesError("Runtime.MarshalError", json.dumps(cause)) from None


def wrap_lambda_result(payload: Any, *, request_id: str | None = None, function: str | None = None) -> dict[str, Any]:
    """The result of ``arn:aws:states:::lambda:invoke``, shaped like AWS's Lambda Invoke response.

    AWS returns the SDK's response object around the function's output, and definitions read its
    metadata (``$.SdkHttpMetadata.HttpStatusCode``, ``$.SdkResponseMetadata.RequestId``), so every
    field is there, with the headers Lambda sends.

    Args:
        payload: The handler's (marshalled) return value.
        request_id: The invocation's request id (the handler's ``context.aws_request_id``); a new one if None.
        function: The FunctionName as given; a numeric qualifier (``fn:7``) is the executed version.

    Returns:
        ``{ExecutedVersion, Payload, SdkHttpMetadata, SdkResponseMetadata, StatusCode}`` as AWS orders them.
    """
    request_id = request_id or new_request_id()
    version = _executed_version(function)
    headers = {  # the order of AWS's AllHttpHeaders
        "X-Amz-Executed-Version": version,
        "x-amzn-Remapped-Content-Length": "0",
        "Connection": "keep-alive",
        "x-amzn-RequestId": request_id,
        "Content-Length": str(len(json.dumps(payload).encode("utf-8"))),
        "Date": formatdate(usegmt=True),
        "X-Amzn-Trace-Id": f"root=1-{int(time.time()):08x}-{random.getrandbits(96):024x};sampled=0",
        "Content-Type": "application/json",
    }
    return {
        "ExecutedVersion": version,
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {name: [value] for name, value in headers.items()},
            "HttpHeaders": dict(sorted(headers.items(), key=lambda item: item[0].lower())),
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200,
    }


def _executed_version(function: str | None) -> str:
    """``$LATEST`` unless the function is qualified by a version number (an alias's version is unknown here)."""
    if not function:
        return "$LATEST"
    if _LAMBDA_ARN.match(function):
        parts = function.split(":")
        qualifier = parts[7] if len(parts) == 8 else ""
    else:
        qualifier = function.partition(":")[2]  # "name:7"
    return qualifier if qualifier.isdigit() else "$LATEST"


def unresolved(resource: str, function: str | None, names: list[str], *, state: str | None = None) -> StatesError:
    """The error for a resource that resolves to no registered handler (a run-time FunctionName.$)."""
    return StatesError(ErrorName.TASK_FAILED, unresolved_message(resource, function, names, state=state))


def unresolved_message(resource: str, function: str | None, names: list[str], *, state: str | None = None) -> str:
    """Why a Task resource has no handler, and what to do: for run-time errors and pre-run diagnostics alike.

    Args:
        resource: The Task's Resource.
        function: The ``lambda:invoke`` FunctionName, if any.
        names: The registered handler names.
        state: The state's name, used as the handler name a fix suggests.
    """
    if function is None:
        service = _service_integration(resource, state or "NAME")
        if service is not None:
            return service
    what = f"function {function!r}" if function else f"resource {resource!r}"
    listing = ", ".join(names) if names else "none"
    return (
        f"{what} is not a registered dmap task handler (registered: {listing}); "
        "register it with @dmap.task(name) in a module the workers import (--import/DMAP_IMPORTS)"
    )


_STATES_PREFIX = "arn:aws:states:::"
_INTEGRATION_PATTERN = re.compile(r"\.(sync(:\d+)?|waitForTaskToken)$")
#: Optimized integrations whose service Step Functions' aws-sdk integration spells differently.
_SDK_SERVICE = {"events": "eventbridge", "states": "sfn", "elasticmapreduce": "emr", "bedrock": "bedrockruntime"}


def _nested(resource: str) -> bool:
    from .callbacks import handles

    return handles(resource)


def _service_integration(resource: str, handler: str) -> str | None:
    """The message for an ``arn:aws:states:::<service>:<action>`` integration dmap does not run, else None."""
    if not resource.startswith(_STATES_PREFIX) or resource.startswith(_STATES_PREFIX + "lambda:"):
        return None
    body = resource.removeprefix(_STATES_PREFIX)
    pattern = _INTEGRATION_PATTERN.search(body)
    service, _, action = body[: pattern.start() if pattern else None].partition(":")
    if not service or not action:
        return None
    sdk = _SDK_SERVICE.get(service.lower(), service.lower())
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{handler}"
    also = f" (nor its {pattern.group(0)} pattern)" if pattern else ""
    via_sdk = ""
    if ":" not in action and _sdk_action_exists(sdk, action):
        via_sdk = (
            f'call {service} through the AWS SDK integration, which dmap runs when it is enabled: "Resource": '
            f'"{_STATES_PREFIX}aws-sdk:{sdk}:{action}" with DMAP_INTEGRATIONS=aws-sdk:{sdk} on the coordinator and the '
            "workers (it takes the API's own parameter names and returns the API's response); or "
        )
    return (
        f"{resource!r} is an AWS service integration, which dmap does not run{also}. To run this definition, "
        f"{via_sdk}do the work in a Python handler registered with @dmap.task({handler!r}) and use "
        f'"Resource": "{arn}" (or {LAMBDA_INVOKE!r} with "FunctionName": "{handler}")'
    )


def _sdk_action_exists(service: str, action: str) -> bool:
    """True if ``aws-sdk:<service>:<action>`` names an operation of botocore's models (False when unreadable)."""
    from ..integrations.aws_sdk import handler

    try:
        handler(service, action)
    except Exception:  # noqa: BLE001 - a suggestion must never break the diagnostic it improves
        return False
    return True


def call_handler(
    handler: Handler,
    payload: Any,
    context: TaskContext,
    *,
    timeout: float | None,
    heartbeat: float | None,
) -> Any:
    """Call a handler; enforce TimeoutSeconds/HeartbeatSeconds; turn its exception into a Lambda-style error.

    Without limits the handler runs in the calling thread. With limits it runs in a daemon thread the
    caller waits on: Python cannot kill a thread, so a handler that hangs past its timeout is abandoned
    (its :attr:`TaskContext.cancelled` is set) and the state fails with ``States.Timeout`` at once —
    the slot comes back; long handlers should check ``context.cancelled``.
    """
    if timeout is None and heartbeat is None:
        try:
            return handler(payload, context)
        except StatesError:
            raise  # an integration reports an AWS error (name and cause) of its own
        except (Exception, SystemExit) as exc:
            _log_failure(context, exc)
            raise lambda_error(exc) from None
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = handler(payload, context)
        except BaseException as exc:  # noqa: B036 - report everything the handler raised, never kill the worker
            box["error"] = exc
        finally:
            done.set()

    start = time.monotonic()
    context.deadline = start + timeout if timeout is not None else None
    context.heartbeat()
    threading.Thread(target=target, name=f"dmap-task-{context.state_name}", daemon=True).start()
    while True:
        limits = [t for t in (context.deadline, context._last_heartbeat + heartbeat if heartbeat else None) if t]
        if done.wait(max(0.0, min(limits) - time.monotonic())):
            break
        now = time.monotonic()
        if context.deadline is not None and now >= context.deadline:
            context._cancelled = True
            raise StatesError(ErrorName.TIMEOUT, f"Task '{context.state_name}' timed out after {timeout:g} seconds")
        if heartbeat is not None and now >= context._last_heartbeat + heartbeat:
            context._cancelled = True
            raise StatesError(
                ErrorName.HEARTBEAT_TIMEOUT,
                f"Task '{context.state_name}' sent no heartbeat for {heartbeat:g} seconds",
            )
    if "error" in box:
        error = box["error"]
        if isinstance(error, StatesError):
            raise error
        _log_failure(context, error)
        raise lambda_error(error)
    return box["result"]


def _log_failure(context: TaskContext, exc: BaseException) -> None:
    """A handler's exception in the log: the handler, the item index, the error (never the input)."""
    from ..config import redact

    where = f"item {context.item_index}" if context.item_index is not None else f"state {context.state_name!r}"
    handler_logger.warning(
        "handler %s raised on %s of %s: %s: %s",
        context.function_name,
        where,
        context.execution_arn,
        type(exc).__name__,
        redact(str(exc))[:500],
    )


def check_resources(data: Mapping[str, Any], handlers: Registry) -> list[Any]:
    """Diagnostics for every Task (at any depth of the raw definition) whose resource resolves to nothing.

    Checked before a run, over the raw JSON so they are reported together with every other problem.
    ``lambda:invoke`` with a dynamic ``FunctionName.$`` can only be checked when it runs.
    """
    from .. import integrations
    from ..asl.diagnostics import Diagnostic, Severity, pointer

    found = []
    for where, name, state in _raw_states(data, ()):
        resource = state.get("Resource")
        if state.get("Type") != "Task" or not isinstance(resource, str):
            continue
        if resource.startswith(_STATES_PREFIX + "states:startExecution") and _nested(resource):
            continue  # nested workflows: the state machine is looked up when the Task runs
        if integrations.is_integration(resource):
            if integrations.resolve(resource) is None:
                message = f"state '{name}': {integrations.disabled_reason(resource)}"
                code = integrations.unavailable_code(resource)
                found.append(Diagnostic(Severity.ERROR, code, message, pointer(*where, "Resource")))
            continue
        parameters = state.get("Parameters") or state.get("Arguments")
        if handlers.resolve(resource, parameters):
            continue
        function = parameters.get("FunctionName") if isinstance(parameters, Mapping) else None
        why = unresolved_message(
            resource, function if isinstance(function, str) else None, handlers.names(), state=name
        )
        code = integrations.NOT_SUPPORTED if _service_integration(resource, name) else "UNRESOLVED_RESOURCE"
        found.append(Diagnostic(Severity.ERROR, code, f"state '{name}': {why}", pointer(*where, "Resource")))
    return found


def _raw_states(
    node: Any, prefix: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str, dict[str, Any]]]:
    """Every state dict of a raw definition, nested ones included, with its JSON-pointer parts."""
    states = node.get("States") if isinstance(node, Mapping) else None
    if not isinstance(states, Mapping):
        return
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        where = (*prefix, "States", name)
        yield where, str(name), state
        branches = state.get("Branches") if state.get("Type") == "Parallel" else None
        for i, branch in enumerate(branches if isinstance(branches, list) else []):
            yield from _raw_states(branch, (*where, "Branches", i))
        if state.get("Type") == "Map":
            for key in ("ItemProcessor", "Iterator"):
                yield from _raw_states(state.get(key), (*where, key))
