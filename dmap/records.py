"""Executions and Map Runs as callers see them: statuses, AWS-shaped ARNs and describe-style dicts.

These are plain records. Where they are stored (in process for the local backend, in Redis for
the celery backend) is the control plane's business; this module only shapes them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .interpreter.context import ACCOUNT, REGION, execution_arn, state_machine_arn
from .store import Counts


class ExecutionStatus(StrEnum):
    """An execution's status, valued as AWS's strings."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"


class MapRunStatus(StrEnum):
    """A Map Run's status, valued as AWS's strings."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"


JOURNAL_PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:"
"""What every ARN of the journal starts with, whatever region and account a caller's ARN named."""

_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:states:([^:]*):([^:]*):([A-Za-z]+):(.+)$")


def parse_arn(arn: str) -> tuple[str, str] | None:
    """``(resource type, rest)`` of a Step Functions ARN in any partition, region and account; None if not one.

    ``arn:aws:states:us-east-1:123456789012:execution:orders:x`` is ``("execution", "orders:x")``.
    """
    found = _ARN.match(arn) if isinstance(arn, str) else None
    return (found.group(3), found.group(4)) if found else None


def journal_arn(arn: str) -> str:
    """The journal's form of a Step Functions ARN (``arn:aws:states:local:000000000000:…``).

    dmap is one region and one account: an ARN as AWS, boto3 or ``dmap serve`` shows it (any
    region, any account id) names the same execution or Map Run as the journal's own ARN. Every
    verb of the control plane and the CLI takes ARNs through here; anything that is not a Step
    Functions ARN is returned as given (the verb then reports it unknown).
    """
    parsed = parse_arn(arn)
    return f"{JOURNAL_PREFIX}{parsed[0]}:{parsed[1]}" if parsed else arn


def map_run_arn(state_machine: str, label: str, run_id: str) -> str:
    """``arn:aws:states:<region>:<acct>:mapRun:<stateMachine>/<label>:<id>`` as AWS shapes it."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:{state_machine}/{label}:{run_id}"


def parse_map_run_arn(arn: str) -> tuple[str, str, str] | None:
    """``(state_machine, label, run_id)`` of a Map Run ARN, or None if it is not one."""
    head, sep, rest = arn.partition(":mapRun:")
    if not sep or not head.startswith("arn:aws:states:"):
        return None
    path, _, run_id = rest.rpartition(":")
    state_machine, _, label = path.partition("/")
    return (state_machine, label, run_id) if state_machine and label and run_id else None


def new_run_id(execution: str, state: str, attempt: int | str) -> str:
    """A Map Run id, deterministic for (execution ARN, Map state, attempt) so a resumed run finds its state."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{execution}#{state}#{attempt}"))


@dataclass(slots=True)
class MapRun:
    """A Map Run: one execution of a DISTRIBUTED Map state.

    Attributes mirror DescribeMapRun (snake_case); :meth:`describe` gives AWS's own field names.
    """

    map_run_arn: str
    execution_arn: str
    state_name: str
    label: str
    status: MapRunStatus = MapRunStatus.RUNNING
    start_date: str = ""
    stop_date: str | None = None
    max_concurrency: int = 0
    tolerated_failure_count: int = 0
    tolerated_failure_percentage: float = 0.0
    item_counts: dict[str, int] = field(default_factory=lambda: Counts().as_dict())
    execution_counts: dict[str, int] = field(default_factory=lambda: Counts().as_dict())
    redrive_count: int = 0
    error: str | None = None
    cause: str | None = None
    result_files: dict[str, list[dict[str, Any]]] | None = None
    """ResultWriter files already durable (``ResultFiles`` of manifest.json) — for resume and redrive."""
    results_upto: int = 0
    """Children before this one have their records in ``result_files`` (and no longer in the run store)."""
    flow: dict[str, Any] | None = None
    """dmap's flow-control fields (``effectiveConcurrency``, ``throttledCalls``, ``waiting``...; DESIGN §13)."""

    @property
    def state_machine_arn(self) -> str:
        """The children's state machine ARN: ``…:stateMachine:<name>/<label>`` (ListMapRuns' stateMachineArn)."""
        head, _, rest = self.map_run_arn.partition(":mapRun:")
        return f"{head}:stateMachine:{rest.rsplit(':', 1)[0]}"

    @property
    def run_id(self) -> str:
        """The UUID at the end of the ARN (also the ResultWriter folder name)."""
        return self.map_run_arn.rsplit(":", 1)[-1]

    def describe(self) -> dict[str, Any]:
        """The DescribeMapRun response shape."""
        out: dict[str, Any] = {
            "mapRunArn": self.map_run_arn,
            "executionArn": self.execution_arn,
            "status": str(self.status),
            "startDate": self.start_date,
            "maxConcurrency": self.max_concurrency,
            "toleratedFailurePercentage": float(self.tolerated_failure_percentage),
            "toleratedFailureCount": self.tolerated_failure_count,
            "itemCounts": dict(self.item_counts),
            "executionCounts": dict(self.execution_counts),
            "redriveCount": self.redrive_count,
        }
        if self.stop_date:
            out["stopDate"] = self.stop_date
        if self.flow:
            out.update(self.flow)
        return out


@dataclass(slots=True)
class Execution:
    """A workflow execution, as :func:`dmap.run` returns it (like StartSyncExecution's response)."""

    execution_arn: str
    name: str
    state_machine_name: str
    status: ExecutionStatus = ExecutionStatus.RUNNING
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    start_date: str = ""
    stop_date: str | None = None
    redrive_count: int = 0
    map_runs: list[MapRun] = field(default_factory=list)
    manifest: str | None = None
    """The ``--manifest`` the execution was started with (an S3 URI or an absolute path), for redrive and resume."""
    manifest_items: str | None = None
    """The type of an in-process iterable manifest (``"list"``, ``"generator"``...): a redrive needs it again."""
    resume_state: str | None = None
    resume_input: Any = None
    resume_variables: dict[str, Any] | None = None
    redrive_date: str | None = None
    flow: dict[str, Any] | None = None
    """The flow options it was started with (``dmap.run(..., flow=...)``), kept for a resumed coordinator."""
    role_arn: str | None = None
    """The role of the state machine it runs (CreateStateMachine's ``roleArn``); None: dmap's default role."""
    arn_prefix: str | None = None
    """``arn:aws:states:<region>:<account>:`` of the API caller that started it (``dmap serve``): the ARNs its
    ResultWriter files hold are written in that form, as the caller sees them; None: the journal's own."""

    @property
    def state_machine_arn(self) -> str:
        """The ARN of the state machine this execution ran."""
        return state_machine_arn(self.state_machine_name)

    def describe(self) -> dict[str, Any]:
        """The DescribeExecution response shape (input/output as JSON values, not strings)."""
        out: dict[str, Any] = {
            "executionArn": self.execution_arn,
            "stateMachineArn": self.state_machine_arn,
            "name": self.name,
            "status": str(self.status),
            "startDate": self.start_date,
            "input": self.input,
            "redriveCount": self.redrive_count,
            "mapRunArns": [m.map_run_arn for m in self.map_runs],
        }
        for key, value in (("stopDate", self.stop_date), ("output", self.output), ("error", self.error)):
            if value is not None:
                out[key] = value
        if self.cause is not None:
            out["cause"] = self.cause
        return out


def new_execution(state_machine: str, name: str | None, input: Any) -> Execution:
    """A fresh RUNNING execution record."""
    from .interpreter.context import iso_now

    name = name or str(uuid.uuid4())
    return Execution(execution_arn(state_machine, name), name, state_machine, input=input, start_date=iso_now())
