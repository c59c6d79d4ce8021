"""State machine operations: CreateStateMachine, DescribeStateMachine, ListStateMachines,
UpdateStateMachine, DeleteStateMachine and ValidateStateMachineDefinition.

State machines live in the durable registry of :mod:`dmap.machines` (Redis on celery, files under
``DMAP_HOME`` on local). Versions and aliases are not kept: ``publish`` and qualified ARNs answer
``ValidationException`` saying so.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ...asl import Severity, validate
from ...errors import DefinitionError
from ...identity import check_name
from ...interpreter.context import iso_now
from ...machines import StateMachineRecord, machines
from .. import arns
from ..paging import cursor, page_size, token
from ..protocol import ApiError, Call, operation, required

TYPES = ("STANDARD", "EXPRESS")
NOT_SUPPORTED = "dmap serve does not support state machine versions or aliases"


def machine_arn(call: Call, body: dict[str, Any], field: str = "stateMachineArn") -> str:
    """The journal's ARN of the state machine a request names (unqualified only).

    Raises:
        ApiError: ``InvalidArn``; ``ValidationException`` for a version or alias ARN.
    """
    arn = call.arn(body, field, "stateMachine", "stateMachineVersion", "stateMachineAlias")
    name = arn.split(":stateMachine:", 1)[-1] if ":stateMachine:" in arn else ""
    if not name or ":" in name:
        raise ApiError("ValidationException", f"{NOT_SUPPORTED}: {body[field]}")
    return arn


def find(call: Call, arn: str) -> StateMachineRecord:
    """A registered state machine.

    Raises:
        ApiError: ``StateMachineDoesNotExist``.
    """
    record = machines(call.backend).get(arn)
    if record is None:
        raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
    return record


def checked_definition(text: Any) -> dict[str, Any]:
    """A definition of the API (JSON text, never a path) as data, valid as dmap runs it.

    Raises:
        DefinitionError: It is not JSON or has an ERROR diagnostic (``InvalidDefinition``).
    """
    if not isinstance(text, str):
        raise ApiError("ValidationException", "definition must be a string of JSON")
    diagnostics = validate(text if text.lstrip().startswith(("{", "[")) else json.dumps(text))
    errors = [d for d in diagnostics if d.severity == Severity.ERROR]
    if errors:
        raise DefinitionError(errors)
    data: dict[str, Any] = json.loads(text)
    return data


def _no_versions(body: dict[str, Any]) -> None:
    if body.get("publish") or body.get("versionDescription"):
        raise ApiError("ValidationException", f"{NOT_SUPPORTED}: publish a state machine without 'publish'")


def _check_role(body: dict[str, Any]) -> None:
    role = body.get("roleArn")
    if role is not None and (not isinstance(role, str) or not role.startswith("arn:")):
        raise ApiError("InvalidArn", f"Invalid Arn: 'Invalid ARN prefix: {role}'")


def _configure(record: StateMachineRecord, body: dict[str, Any]) -> None:
    """Keep the logging and tracing configuration a request gives (dmap only reports them back)."""
    if isinstance(body.get("loggingConfiguration"), dict):
        record.logging_configuration = body["loggingConfiguration"]
    if isinstance(body.get("tracingConfiguration"), dict):
        record.tracing_configuration = body["tracingConfiguration"]


@operation("CreateStateMachine")
def create_state_machine(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Register a state machine; the same name with the same definition, role and type returns it again."""
    _no_versions(body)
    name, role = required(body, "name"), required(body, "roleArn")
    text = required(body, "definition")
    kind = body.get("type") or "STANDARD"
    if kind not in TYPES:
        raise ApiError("ValidationException", f"type must be STANDARD or EXPRESS, not {kind!r}")
    if not isinstance(name, str) or not name:
        raise ApiError("InvalidName", f"Invalid Name: '{name}'")
    try:
        check_name(name)
    except Exception:  # InvalidName: AWS words it its own way
        raise ApiError("InvalidName", f"Invalid Name: '{name}'") from None
    _check_role(body)
    checked_definition(text)
    arn = arns.internal("stateMachine", name)
    registry = machines(call.backend)
    existing = registry.get(arn)
    if existing is not None:
        if (existing.definition, existing.role_arn, existing.type) == (text, role, kind):
            return {"stateMachineArn": arn, "creationDate": arns.epoch(existing.creation_date)}
        raise ApiError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
    record = StateMachineRecord(
        arn=arn,
        name=name,
        definition=text,
        role_arn=role,
        type=kind,
        creation_date=iso_now(),
        revision_id=str(uuid.uuid4()),
        tags={str(t.get("key")): str(t.get("value", "")) for t in body.get("tags") or []},
    )
    _configure(record, body)
    registry.put(record)
    return {"stateMachineArn": arn, "creationDate": arns.epoch(record.creation_date)}


def describe(record: StateMachineRecord) -> dict[str, Any]:
    """DescribeStateMachine's response for a record."""
    out: dict[str, Any] = {
        "stateMachineArn": record.arn,
        "name": record.name,
        "status": record.status,
        "definition": record.definition,
        "roleArn": record.role_arn,
        "type": record.type,
        "creationDate": arns.epoch(record.creation_date),
        "loggingConfiguration": record.logging_configuration,
        "tracingConfiguration": record.tracing_configuration,
    }
    if record.revision_id:
        out["revisionId"] = record.revision_id
    if record.description:
        out["description"] = record.description
    return out


@operation("DescribeStateMachine")
def describe_state_machine(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """A registered state machine."""
    return describe(find(call, machine_arn(call, body)))


@operation("ListStateMachines")
def list_state_machines(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """State machines in ARN order, a page at a time."""
    limit, after = page_size(body), cursor("ListStateMachines", body)
    records, last = machines(call.backend).page(limit=limit, after=after)
    out: dict[str, Any] = {
        "stateMachines": [
            {"stateMachineArn": r.arn, "name": r.name, "type": r.type, "creationDate": arns.epoch(r.creation_date)}
            for r in records
        ]
    }
    if last is not None:
        out["nextToken"] = token("ListStateMachines", last)
    return out


@operation("UpdateStateMachine")
def update_state_machine(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Change a state machine's definition, role, logging or tracing; new executions use it."""
    _no_versions(body)
    record = find(call, machine_arn(call, body))
    fields = ("definition", "roleArn", "loggingConfiguration", "tracingConfiguration")
    if all(body.get(f) is None for f in fields):
        raise ApiError(
            "MissingRequiredParameter",
            "Either the definition, the role ARN, the LoggingConfiguration, or the TracingConfiguration must be "
            "specified",
        )
    _check_role(body)
    if body.get("definition") is not None:
        checked_definition(body["definition"])
        record.definition = body["definition"]
    if body.get("roleArn") is not None:
        record.role_arn = body["roleArn"]
    _configure(record, body)
    record.updated_date, record.revision_id = iso_now(), str(uuid.uuid4())
    machines(call.backend).put(record)
    return {"updateDate": arns.epoch(record.updated_date), "revisionId": record.revision_id}


@operation("DeleteStateMachine")
def delete_state_machine(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Forget a state machine (deleting one that does not exist succeeds, as on AWS); its executions stay."""
    machines(call.backend).delete(machine_arn(call, body))
    return {}


@operation("ValidateStateMachineDefinition")
def validate_state_machine_definition(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """dmap's diagnostics in AWS's shape: ``result`` OK or FAIL, locations as JSON pointers."""
    text = required(body, "definition")
    if not isinstance(text, str):
        raise ApiError("ValidationException", "definition must be a string of JSON")
    kind = body.get("type") or "STANDARD"
    if kind not in TYPES:
        raise ApiError("ValidationException", f"type must be STANDARD or EXPRESS, not {kind!r}")
    severity = body.get("severity") or "ERROR"
    if severity not in ("ERROR", "WARNING"):
        raise ApiError("ValidationException", f"severity must be ERROR or WARNING, not {severity!r}")
    limit = page_size(body)
    found = validate(text if text.lstrip().startswith(("{", "[")) else json.dumps(text))
    shown = [d for d in found if severity == "WARNING" or d.severity == Severity.ERROR]
    diagnostics = []
    for d in shown[:limit]:
        item = {"severity": str(d.severity), "code": d.code, "message": d.message}
        if d.location:
            item["location"] = d.location
        diagnostics.append(item)
    result = "FAIL" if any(d.severity == Severity.ERROR for d in found) else "OK"
    return {"result": result, "diagnostics": diagnostics, "truncated": len(shown) > limit}
