"""The Python API: ``dmap.run`` and friends (DESIGN §2).

``run`` loads and validates the definition, checks that every Task resource resolves to a
registered handler, then runs the top-level states with the interpreter in the caller; DISTRIBUTED
Maps are handed to the backend's coordinator.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .asl import DefinitionSource, load
from .asl.model import StateMachine
from .flow.options import FlowOptions
from .interpreter import ExecutionInfo, Runtime, execute
from .interpreter.context import DEFAULT_ROLE_ARN, iso_now
from .interpreter.tasks import check_resources, registry
from .records import Execution, ExecutionStatus

Manifest = str | Path | Iterable[Any] | None


def state_machine_name(definition: DefinitionSource | StateMachine) -> str:
    """The name executions of a definition are filed under: the file's stem, else ``dmap``."""
    if isinstance(definition, Path) or (isinstance(definition, str) and definition.rstrip().endswith(".json")):
        path = Path(definition)
        name = path.name
        for suffix in (".json", ".asl"):
            name = name.removesuffix(suffix)
        if name in ("definition", "statemachine", "state_machine") and path.resolve().parent.name:
            name = path.resolve().parent.name  # examples/quickstart/definition.json -> "quickstart"
        return name or "dmap"
    return "dmap"


def prepare(definition: DefinitionSource | StateMachine, engine: Any = None, *, detached: bool = False) -> StateMachine:
    """Load and validate a definition and resolve its Task resources; raise DefinitionError on any problem.

    On a celery ``engine`` the handlers of the live workers count too, and what the submitter should
    know about them (none listening, different code) is logged as warnings (:mod:`dmap.admission`).
    """
    if engine is None:
        return load(definition, extra_checks=lambda data: check_resources(data, registry))
    from .admission import resource_check

    return load(definition, extra_checks=resource_check(engine, detached=detached))


def run(
    definition: DefinitionSource | StateMachine,
    manifest: Manifest = None,
    *,
    input: Any = None,
    backend: Any = None,
    name: str | None = None,
    wait: bool = True,
    max_concurrency: int | None = None,
    state_machine: str | None = None,
    flow: FlowOptions | dict[str, Any] | None = None,
    role_arn: str | None = None,
    arn_prefix: str | None = None,
) -> Execution:
    """Run a state machine and return its execution (it does not raise for a FAILED execution).

    Args:
        definition: A dict, JSON text, or the path of a definition file.
        manifest: The item source of the first DISTRIBUTED Map: ``"s3://bucket/key"``, ``"s3://bucket/prefix/"``
            (a listing), a local JSON/JSONL file, or an iterable of items.
        input: The execution input (default ``{}``).
        backend: ``"local"`` (default), ``"celery"``, or a Backend instance.
        name: The execution name, unique within the state machine (AWS's StartExecution rule): the name of a
            RUNNING execution with the same input and item source attaches to it (and resumes it if its process
            died); the name of a closed execution, or of a RUNNING one with another input or source, raises.
            A generator (any iterable but a list or tuple) never matches a RUNNING execution's source.
        wait: False returns the RUNNING execution at once; poll it with :func:`dmap.describe_execution`. On
            the celery backend (with a manifest path or URI, or none) the whole execution is handed to the
            workers and outlives this process; its item source is checked first. On the local backend it
            runs in a background thread of *this* process: it ends if the process exits, so keep it alive
            (the CLI's ``--detach`` refuses the local backend for that reason).
        max_concurrency: Overrides ``MaxConcurrency`` of the Map Runs.
        state_machine: The state machine name the execution is filed under (its ARN is
            ``…:execution:<state_machine>:<name>``); default: the definition file's stem, else ``dmap``.
        flow: Flow control of the Map Runs (:class:`dmap.FlowOptions` or a dict of its fields):
            ``{"adaptive": True, "min_concurrency": 2, "limit": "partner-api", "throttle_errors": [...]}``.
        role_arn: The state machine's IAM role, as AWS shows it in ``$$.Execution.RoleArn`` and the history's
            ExecutionStarted event (``dmap serve`` passes CreateStateMachine's ``roleArn``); default
            ``arn:aws:iam::000000000000:role/dmap``.
        arn_prefix: ``arn:aws:states:<region>:<account>:``: the form of the ARNs its ResultWriter files
            (manifest.json, SUCCEEDED_n.json...) hold (``dmap serve`` passes its caller's region and account);
            default the journal's ``arn:aws:states:local:000000000000:``.

    Raises:
        DefinitionError: The definition is invalid or names unregistered handlers (before anything runs).
        ExecutionAlreadyExists: ``name`` belongs to a closed execution, or to a RUNNING one with another input
            or item source (nothing runs, the stored execution is left as it is).
        SourceNotReadable: ``wait=False`` on celery and the manifest cannot be read (nothing is recorded).
        DmapError: An infrastructure fault (Redis unreachable...).
    """
    from .backends import get_backend
    from .backends.celery import CeleryBackend

    engine = get_backend(backend)
    if not wait and isinstance(engine, CeleryBackend) and (manifest is None or isinstance(manifest, str | Path)):
        from .detach import submit  # the cluster runs it, coordinator included: it outlives this process

        detached: Execution = submit(
            definition,
            manifest=str(manifest) if manifest is not None else None,
            input=input,
            name=name,
            max_concurrency=max_concurrency,
            backend=engine,
            state_machine=state_machine,
            flow=_flow_dict(flow),
            origin=_origin(role_arn, arn_prefix),
        )
        return detached
    return start(
        definition,
        manifest,
        input=input,
        backend=engine,
        name=name,
        wait=wait,
        max_concurrency=max_concurrency,
        state_machine=state_machine,
        flow=flow,
        role_arn=role_arn,
        arn_prefix=arn_prefix,
    )


def _origin(role_arn: str | None, arn_prefix: str | None) -> dict[str, str]:
    """The fields of a new execution's record that say where it was started from (see :func:`run`)."""
    return {k: v for k, v in (("role_arn", role_arn), ("arn_prefix", arn_prefix)) if v is not None}


def _flow_dict(flow: FlowOptions | dict[str, Any] | None) -> dict[str, Any] | None:
    options = FlowOptions.of(flow)
    return None if options is None else options.as_dict()


def start(
    definition: DefinitionSource | StateMachine,
    manifest: Manifest = None,
    *,
    input: Any = None,
    backend: Any = None,
    name: str | None = None,
    wait: bool = False,
    max_concurrency: int | None = None,
    state_machine: str | None = None,
    flow: FlowOptions | dict[str, Any] | None = None,
    role_arn: str | None = None,
    arn_prefix: str | None = None,
) -> Execution:
    """Run an execution with its coordinator in this process (a background thread unless ``wait``).

    The CLI uses this to show progress and to stop the execution on Ctrl-C. The returned object's
    status turns terminal a moment before the background thread has saved the record: call
    :func:`dmap.backends.settle` with its ARN before this process exits. Names follow AWS's
    StartExecution rule (:mod:`dmap.identity`): a RUNNING execution of the same name, input and
    item source is attached to (resumed if nothing runs it any more), never started twice.

    Raises:
        ExecutionAlreadyExists: The name belongs to a closed execution, or to a RUNNING one with
            another input or item source.
    """
    from . import identity
    from .backends import get_backend

    engine = get_backend(backend)
    machine = prepare(definition, engine)
    sm_name = state_machine or state_machine_name(definition)
    return identity.start(
        engine,
        machine,
        sm_name,
        name,
        input,
        manifest,
        wait=wait,
        max_concurrency=max_concurrency,
        flow=_flow_dict(flow),
        origin=_origin(role_arn, arn_prefix),
    )


def execute_in_process(machine: StateMachine, execution: Execution, runtime: Runtime) -> Execution:
    """Run the top-level states of ``execution`` here and fill in its outcome."""
    info = ExecutionInfo(
        name=execution.name,
        state_machine_name=execution.state_machine_name,
        input=execution.input,
        start_time=execution.start_date,
        redrive_count=execution.redrive_count,
        arn=execution.execution_arn,
        role_arn=execution.role_arn or DEFAULT_ROLE_ARN,
    )
    result = execute(
        machine,
        execution.resume_input if execution.resume_state else execution.input,
        runtime=runtime,
        info=info,
        start_at=execution.resume_state,
        variables=execution.resume_variables,
    )
    execution.status = ExecutionStatus(result.status)
    execution.output, execution.error, execution.cause = result.output, result.error, result.cause
    execution.resume_state, execution.resume_input, execution.resume_variables = result.position or (None, None, None)
    if result.status == "SUCCEEDED":
        execution.resume_state = execution.resume_input = execution.resume_variables = None
    execution.stop_date = iso_now()
    return execution
