"""Execution operations: StartExecution, StartSyncExecution, DescribeExecution, ListExecutions,
StopExecution, RedriveExecution and DescribeStateMachineForExecution.

Each is a thin adapter over the verbs the CLI and the Python API call (:func:`dmap.run`,
:mod:`dmap.control`), so an execution started here is the one ``dmap describe-execution`` and
``dmap.describe_execution`` see. On the celery backend StartExecution hands the execution to the
cluster (as ``dmap run --detach``): it outlives the server. On the local backend it runs in the
server's process.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ... import control
from ...api import run
from ...errors import DefinitionError, InvalidStateError
from ...interpreter.context import DEFAULT_ROLE_ARN, iso_now
from ...machines import machines
from ...records import Execution, ExecutionStatus
from .. import arns
from ..paging import cursor, page_size, token
from ..protocol import ApiError, Call, definition_message, operation
from .machines import find, machine_arn

STATUSES = tuple(s.value for s in ExecutionStatus)
REDRIVABLE = ("FAILED", "TIMED_OUT", "ABORTED")
SCAN = 1000
"""Most journal records one filtered ListExecutions request reads (a short page then carries a nextToken)."""
EXPRESS_MEMORY_MB = 64
"""What AWS bills an Express execution for at least; dmap reports it (it does not meter memory)."""


def execution_input(body: dict[str, Any]) -> Any:
    """The execution input of a request (``input``, JSON text; absent is ``{}``).

    Raises:
        ApiError: ``InvalidExecutionInput`` when it is not JSON.
    """
    text = body.get("input")
    if text is None:
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ApiError("InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exc}'") from None


def _start(call: Call, body: dict[str, Any], *, wait: bool) -> tuple[Execution, dict[str, Any]]:
    """Start an execution of a registered state machine by dmap's (and AWS's) name rule."""
    record = find(call, machine_arn(call, body))
    value = execution_input(body)
    if wait and record.type != "EXPRESS":
        raise ApiError("StateMachineTypeNotSupported", "This operation is not supported by this type of state machine")
    try:
        execution = run(
            json.loads(record.definition),
            input=value,
            backend=call.backend,
            name=body.get("name"),
            wait=wait,
            state_machine=record.name,
            role_arn=record.role_arn,
            arn_prefix=arns.external_prefix(call.region, call.account),
        )
    except DefinitionError as exc:  # a Task resource with no handler: nothing ran, and the caller should know why
        raise ApiError("ValidationException", definition_message(exc)) from None
    return execution, value


@operation("StartExecution")
def start_execution(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Start an execution; the name of a RUNNING execution with the same input returns it (AWS's idempotency)."""
    execution, _ = _start(call, body, wait=False)
    return {"executionArn": execution.execution_arn, "startDate": arns.epoch(execution.start_date)}


@operation("StartSyncExecution")
def start_sync_execution(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Run an EXPRESS state machine's execution to its end and return its outcome with AWS's billing details."""
    began = time.monotonic()
    execution, _ = _start(call, body, wait=True)
    elapsed_ms = (time.monotonic() - began) * 1000
    out: dict[str, Any] = {
        "executionArn": execution.execution_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "startDate": arns.epoch(execution.start_date),
        "stopDate": arns.epoch(execution.stop_date or iso_now()),
        "status": str(execution.status),
        "input": json.dumps(execution.input),
        "inputDetails": {"included": True},
        "billingDetails": {
            # AWS bills Express in 100 ms steps and 64 MB at least.
            "billedMemoryUsedInMB": EXPRESS_MEMORY_MB,
            "billedDurationInMilliseconds": max(100, int(math.ceil(elapsed_ms / 100.0)) * 100),
        },
    }
    if execution.status == ExecutionStatus.SUCCEEDED:
        out["output"], out["outputDetails"] = json.dumps(execution.output), {"included": True}
    _outcome(execution, out)
    return out


def _outcome(execution: Execution, out: dict[str, Any]) -> None:
    if execution.error is not None:
        out["error"] = execution.error
    if execution.cause is not None:
        out["cause"] = execution.cause


def describe(execution: Execution) -> dict[str, Any]:
    """DescribeExecution's response for an execution."""
    status = str(execution.status)
    out: dict[str, Any] = {
        "executionArn": execution.execution_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": arns.epoch(execution.start_date),
        "input": json.dumps(execution.input),
        "inputDetails": {"included": True},
        "redriveCount": execution.redrive_count,
    }
    if execution.stop_date and status != "RUNNING":
        out["stopDate"] = arns.epoch(execution.stop_date)
    if status == "SUCCEEDED":
        out["output"], out["outputDetails"] = json.dumps(execution.output), {"included": True}
    _outcome(execution, out)
    if execution.redrive_date:
        out["redriveDate"] = arns.epoch(execution.redrive_date)
    if status in REDRIVABLE:
        out["redriveStatus"] = "REDRIVABLE"
    else:
        out["redriveStatus"] = "NOT_REDRIVABLE"
        out["redriveStatusReason"] = f"Execution is {status} and cannot be redriven"
    return out


def execution_arn(call: Call, body: dict[str, Any]) -> str:
    """The journal's ARN of the execution a request names."""
    return call.arn(body, "executionArn", "execution", "express")


@operation("DescribeExecution")
def describe_execution(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """An execution as the journal has it (live while RUNNING)."""
    return describe(control.describe_execution(execution_arn(call, body), backend=call.backend))


def list_item(execution: Execution) -> dict[str, Any]:
    """ListExecutions' entry for an execution."""
    out: dict[str, Any] = {
        "executionArn": execution.execution_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": str(execution.status),
        "startDate": arns.epoch(execution.start_date),
        "redriveCount": execution.redrive_count,
    }
    if execution.stop_date and execution.status != ExecutionStatus.RUNNING:
        out["stopDate"] = arns.epoch(execution.stop_date)
    if execution.redrive_date:
        out["redriveDate"] = arns.epoch(execution.redrive_date)
    return out


def _filters(body: dict[str, Any]) -> tuple[str | None, bool | None]:
    """``statusFilter`` and ``redriveFilter`` as :func:`dmap.control.list_executions` takes them."""
    status, redrive = body.get("statusFilter"), body.get("redriveFilter")
    if status is not None and status not in STATUSES:
        raise ApiError("ValidationException", f"statusFilter must be one of {', '.join(STATUSES)}, not {status!r}")
    if redrive is not None and redrive not in ("REDRIVEN", "NOT_REDRIVEN"):
        raise ApiError("ValidationException", f"redriveFilter must be REDRIVEN or NOT_REDRIVEN, not {redrive!r}")
    return status, None if redrive is None else redrive == "REDRIVEN"


@operation("ListExecutions")
def list_executions(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """The most recent executions first, filtered by state machine, status, redrive or Map Run, a page at a time.

    A state machine need not be registered: executions the CLI started under a name are listed too; a name
    with neither a registered state machine nor any execution is ``StateMachineDoesNotExist``, as on AWS.
    Filtered pages read at most :data:`SCAN` journal records; a page may then hold fewer than
    ``maxResults`` executions and still carry a ``nextToken`` (AWS's contract allows it).
    """
    if body.get("mapRunArn") is not None:
        if body.get("stateMachineArn") is not None:
            raise ApiError("ValidationException", "give stateMachineArn or mapRunArn, not both")
        return _map_run_children(call, body)
    machine = machine_arn(call, body) if body.get("stateMachineArn") is not None else None
    if machine is not None and machines(call.backend).get(machine) is None:
        # Executions the CLI filed under a name have no registry record: list them; a name nothing ran is AWS's error.
        if not control.has_executions_of(machine, backend=call.backend):
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{machine}'")
    status, redriven = _filters(body)
    page = control.list_executions(
        backend=call.backend,
        limit=page_size(body),
        next_token=cursor("ListExecutions", body),
        status=status,
        state_machine=machine,
        redriven=redriven,
        scan=SCAN,
    )
    found = [list_item(e) for e in page]
    next_token = page.next_token
    out: dict[str, Any] = {"executions": found}
    if next_token is not None:
        out["nextToken"] = token("ListExecutions", next_token)
    return out


def _map_run_children(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """The child executions of a Map Run: failed, timed-out or aborted ones from their failure records (with
    ``itemCount``), the others from the run store's per-child statuses."""
    from ...writers.records import child_execution_name

    arn = call.arn(body, "mapRunArn", "mapRun")
    status = body.get("statusFilter")
    if body.get("redriveFilter") is not None:
        raise ApiError("ValidationException", "dmap does not filter the child executions of a Map Run by redrive")
    if status is not None and status not in STATUSES:
        raise ApiError("ValidationException", f"statusFilter must be one of {', '.join(STATUSES)}, not {status!r}")
    map_run = control.describe_map_run(arn, backend=call.backend)
    if status not in REDRIVABLE:
        return _map_run_statuses(call, body, map_run, status)
    head, _, rest = map_run.map_run_arn.partition(":mapRun:")
    machine = rest.rsplit(":", 1)[0]
    limit, after = page_size(body), cursor("ListExecutions", body)
    page = control.list_failures(arn, limit=limit, backend=call.backend, next_token=after)
    found: list[dict[str, Any]] = []
    for failure in page:
        if failure.status != status:
            continue
        name = child_execution_name(map_run.run_id, failure.child)
        item = {
            "executionArn": f"{head}:execution:{machine}:{name}",
            "stateMachineArn": f"{head}:stateMachine:{machine}",
            "name": name,
            "status": failure.status,
            "startDate": arns.epoch(map_run.start_date),
            "mapRunArn": map_run.map_run_arn,
            "itemCount": failure.items,
        }
        found.append(item)
    out: dict[str, Any] = {"executions": found}
    if page.next_token is not None:
        out["nextToken"] = token("ListExecutions", page.next_token)
    return out


def _map_run_statuses(call: Call, body: dict[str, Any], map_run: Any, status: str | None) -> dict[str, Any]:
    """Child executions of a Map Run from the run store's per-child statuses (every status, or one).

    Reads at most :data:`SCAN` children a request; children that never started (PENDING) are not
    executions yet and are not listed. Without records of their own, they carry the Map Run's start date.
    """
    from ...writers.records import child_execution_name

    head, _, rest = map_run.map_run_arn.partition(":mapRun:")
    machine = rest.rsplit(":", 1)[0]
    limit, start = page_size(body), int(cursor("ListExecutions", body) or 0)
    found: list[dict[str, Any]] = []
    scanned = 0
    next_start_or_end: int | None = start  # read exactly what the page still misses: nothing read is skipped
    while next_start_or_end is not None and len(found) < limit and scanned < SCAN:
        read, after = control.child_statuses(
            map_run.map_run_arn, start=next_start_or_end, count=limit - len(found), backend=call.backend
        )
        scanned += len(read)
        for child, child_status in read:
            if child_status == "PENDING" or (status is not None and child_status != status):
                continue
            name = child_execution_name(map_run.run_id, child)
            found.append(
                {
                    "executionArn": f"{head}:execution:{machine}:{name}",
                    "stateMachineArn": f"{head}:stateMachine:{machine}",
                    "name": name,
                    "status": child_status,
                    "startDate": arns.epoch(map_run.start_date),
                    "mapRunArn": map_run.map_run_arn,
                }
            )
        next_start_or_end = after
        if not read:
            break
    out: dict[str, Any] = {"executions": found}
    if next_start_or_end is not None:
        out["nextToken"] = token("ListExecutions", next_start_or_end)
    return out


@operation("StopExecution")
def stop_execution(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Stop a RUNNING execution: it ends ABORTED, with the request's ``error`` and ``cause``, once its running
    children reach their next state."""
    error, cause = body.get("error"), body.get("cause")
    for field, value in (("error", error), ("cause", cause)):
        if value is not None and not isinstance(value, str):
            raise ApiError("ValidationException", f"{field} must be a string")
    control.stop_execution(execution_arn(call, body), error=error, cause=cause, backend=call.backend)
    return {"stopDate": time.time()}


@operation("RedriveExecution")
def redrive_execution(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Redrive a FAILED, TIMED_OUT or ABORTED execution from where it stopped.

    On the celery backend the workers run it (as StartExecution's executions): it outlives the server.
    """
    arn = execution_arn(call, body)
    detach = call.backend.name == "celery"
    try:
        execution = control.redrive_execution(arn, backend=call.backend, wait=False, detach=detach)
    except InvalidStateError as exc:
        raise ApiError("ExecutionNotRedrivable", str(exc)) from None
    except DefinitionError as exc:  # a handler gone since the start: RedriveExecution declares no InvalidDefinition
        raise ApiError("ValidationException", definition_message(exc)) from None
    return {"redriveDate": arns.epoch(execution.redrive_date) or time.time()}


@operation("DescribeStateMachineForExecution")
def describe_state_machine_for_execution(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """The state machine an execution ran: the registered one, or the definition the journal kept with it."""
    arn = execution_arn(call, body)
    execution = control.describe_execution(arn, backend=call.backend)
    record = machines(call.backend).get(execution.state_machine_arn)
    changed = record is not None and record.updated_date is not None and record.updated_date > execution.start_date
    if record is not None and not changed:
        out: dict[str, Any] = {
            "stateMachineArn": record.arn,
            "name": record.name,
            "definition": record.definition,
            "roleArn": record.role_arn,
            "updateDate": arns.epoch(record.updated_date or record.creation_date),
            "loggingConfiguration": record.logging_configuration,
            "tracingConfiguration": record.tracing_configuration,
        }
        if record.revision_id:
            out["revisionId"] = record.revision_id
        return out
    definition = control.execution_definition(arn, backend=call.backend) or {}
    return {
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.state_machine_name,
        "definition": json.dumps(definition),
        "roleArn": execution.role_arn or DEFAULT_ROLE_ARN,
        "updateDate": arns.epoch(execution.start_date),
    }
