"""Nested workflows: ``arn:aws:states:::states:startExecution`` starts an execution of a stored state machine.

Owns the host side of nested executions (the interpreter's side is
:mod:`dmap.interpreter.callbacks`): finding the state machine in :func:`dmap.machines.machines`,
starting a normal execution of it — the same journal, the same name rule as ``dmap.run`` and
StartExecution — on the local backend (a thread of this process) or on the celery backend (handed
to the workers, coordinator included, so it outlives the caller), and, for ``.sync``/``.sync:2``,
answering the parent's task with the execution's DescribeExecution shape when it ends
(:func:`execution_ended`). It does not wait: the parent's task waits for its token like any callback,
so a distributed child waiting on a nested execution parks on celery as it does for a callback.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any

from .errors import DefinitionError, ErrorName, ExecutionAlreadyExists, InvalidName, StatesError
from .interpreter.callbacks import Answer, NestedStart, decode_token, local_tokens
from .interpreter.context import execution_arn
from .interpreter.dataflow import compact
from .keys import callback_watch_key

logger = logging.getLogger(__name__)


def epoch_ms(stamp: str | None) -> int | None:
    """An AWS-style timestamp (``2026-12-06T12:00:00.000Z``) as epoch milliseconds, as the integration returns dates."""
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def describe(execution: Any, state_machine_arn: str | None = None) -> dict[str, Any]:
    """An execution as ``states:startExecution.sync`` returns it: DescribeExecution's fields, capitalized.

    ``Input`` and ``Output`` are JSON text (``.sync:2`` parses ``Output``); dates are epoch milliseconds.
    """
    out: dict[str, Any] = {
        "ExecutionArn": execution.execution_arn,
        "Input": compact(execution.input if execution.input is not None else {}),
        "InputDetails": {"Included": True},
        "Name": execution.name,
    }
    if str(execution.status) == "SUCCEEDED":
        out["Output"] = compact(execution.output)
        out["OutputDetails"] = {"Included": True}
    out["RedriveCount"] = execution.redrive_count
    out["StartDate"] = epoch_ms(execution.start_date)
    out["StateMachineArn"] = state_machine_arn or execution.state_machine_arn
    out["Status"] = str(execution.status)
    if execution.stop_date:
        out["StopDate"] = epoch_ms(execution.stop_date)
    if execution.error is not None:
        out["Error"] = execution.error
    if execution.cause is not None:
        out["Cause"] = execution.cause
    return out


class NestedExecutions:
    """Starts nested executions on one backend (``Runtime.executions``)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def start(self, request: NestedStart, notify: str | None) -> dict[str, Any]:
        """Start the execution; ``notify`` (a token) is answered with its :func:`describe` when it ends.

        Raises:
            StatesError: ``StepFunctions.StateMachineDoesNotExistException``, ``...ExecutionAlreadyExistsException``,
                ``...InvalidNameException`` or ``States.TaskFailed`` (an invalid definition).
        """
        from . import identity
        from .api import prepare
        from .machines import machines
        from .records import journal_arn

        # The ARN CreateStateMachine returned names the request's region and account; the registry keeps its own.
        record = machines(self.engine).get(journal_arn(request.state_machine_arn))
        if record is None:
            raise StatesError(
                "StepFunctions.StateMachineDoesNotExistException",
                f"State Machine Does Not Exist: '{request.state_machine_arn}'",
            )
        name = request.name or str(uuid.uuid4())
        try:
            identity.check_name(name)
            machine = prepare(record.definition, self.engine)
        except InvalidName as exc:
            raise StatesError("StepFunctions.InvalidNameException", str(exc)) from None
        except DefinitionError as exc:
            raise StatesError(ErrorName.TASK_FAILED, f"the state machine {record.arn} cannot run here: {exc}") from None
        arn = execution_arn(record.name, name)
        role = {"role_arn": record.role_arn}  # AWS runs a started state machine with its own role
        if notify is not None:
            watch(self.engine, arn, notify, record.arn)
        try:
            if getattr(self.engine, "redis", None) is not None:
                from .detach import submit

                execution = submit(
                    machine,
                    input=request.input,
                    name=name,
                    backend=self.engine,
                    state_machine=record.name,
                    origin=role,
                )
            else:
                execution = identity.start(
                    self.engine,
                    machine,
                    record.name,
                    name,
                    request.input,
                    None,
                    wait=False,
                    max_concurrency=None,
                    origin=role,
                )
        except ExecutionAlreadyExists as exc:
            raise StatesError("StepFunctions.ExecutionAlreadyExistsException", str(exc)) from None
        if notify is not None and str(execution.status) != "RUNNING":  # ended before the watch could see it
            execution_ended(self.engine, execution)
        return {"ExecutionArn": execution.execution_arn, "StartDate": epoch_ms(execution.start_date)}


def executions_for(engine: Any) -> NestedExecutions | None:
    """The nested-execution starter of ``engine`` (None without a backend)."""
    return NestedExecutions(engine) if engine is not None else None


_machine_arns: dict[str, str] = {}  # execution -> the registry ARN of its state machine (local backend)


def watch(engine: Any, execution: str, token: str, state_machine_arn: str) -> None:
    """Answer ``token`` with ``execution``'s description when it ends."""
    if decode_token(token).get("b") == "m" or getattr(engine, "redis", None) is None:
        local_tokens.watch(execution, token)
        _machine_arns[execution] = state_machine_arn
        return
    store = engine.redis
    ttl = max(1, int(engine.settings.retention_days * 86400))
    store.client.set(callback_watch_key(store.prefix, execution), json.dumps([token, state_machine_arn]), ex=ttl)


def execution_ended(engine: Any, execution: Any) -> None:
    """An execution ended: answer the ``.sync`` parent task that waits on it, if any.

    Called by the backend once the final record is saved. Never raises: a parent that is gone, or a
    Redis hiccup, must not change how the execution itself ended.
    """
    arn = execution.execution_arn
    try:
        if getattr(engine, "redis", None) is None:
            local_tokens.execution_ended(arn, describe(execution, _machine_arns.pop(arn, None)))
            return
        from .callbacks import deliver

        store = engine.redis
        text = store.client.getdel(callback_watch_key(store.prefix, arn))
        if text is None:
            return
        token, machine_arn = json.loads(text)
        deliver(engine, token, decode_token(token), Answer(output=describe(execution, machine_arn)))
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("could not tell the parent of %s that it ended", arn, exc_info=True)
