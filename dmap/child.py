"""One child execution of a Map Run, on whichever worker picked it up.

The worker side of the engine: fenced start through the run store, the ItemProcessor run by the
same interpreter as everything else, and one atomic completion that records the first terminal
result. A :class:`ChildPlan` is everything a worker needs to know about a Map Run, published once
per run by the coordinator (so each dispatch message carries only ``(run, child, token)``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from . import telemetry
from .asl.model import Branch
from .errors import ErrorName
from .flow.hooks import ChildFlow
from .flow.limits import Limits, limits_for
from .interpreter import ExecutionInfo, Runtime, execute
from .interpreter.callbacks import Parked
from .interpreter.callbacks import handles as _is_callback
from .interpreter.context import ACCOUNT, DEFAULT_ROLE_ARN, REGION, iso_now
from .interpreter.dataflow import compact, parse
from .interpreter.tasks import Registry, registry
from .store import RUN, ChildStatus, Done, RunStore, Started, release, step
from .writers import child_execution_name

logger = logging.getLogger(__name__)

EXPRESS_LIMIT_SECONDS = 300.0
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
PARKED: Any = object()
"""What :func:`_run_started` returns for a child that parked at a Task waiting for its token."""
_NAMES = {status: status.name for status in ChildStatus}  # Enum.name is a descriptor lookup per call
_STATUS = {
    "SUCCEEDED": ChildStatus.SUCCEEDED,
    "FAILED": ChildStatus.FAILED,
    "TIMED_OUT": ChildStatus.TIMED_OUT,
    "ABORTED": ChildStatus.ABORTED,
}


_worker_id = WORKER_ID
_nonce_prefix = secrets.token_hex(5)  # a process's nonces of taken children: unique across processes and forks


def _forked() -> None:
    global _worker_id, _nonce_prefix
    _worker_id = f"{socket.gethostname()}:{os.getpid()}"
    _nonce_prefix = secrets.token_hex(5)


os.register_at_fork(after_in_child=_forked)  # getpid per child cost as much as a store call on a loaded machine


def worker_id() -> str:
    """``host:pid`` of this process (recomputed in a forked child)."""
    return _worker_id


@dataclass(frozen=True)
class ChildPlan:
    """What every child of one Map Run shares.

    Attributes:
        run_id: The Map Run id (the UUID at the end of its ARN).
        map_run_arn: The Map Run ARN.
        state_machine_name: The parent state machine's name.
        label: The Map Run label (children run as state machine ``<name>/<label>``).
        processor: The ItemProcessor definition as JSON (AWS field names).
        language: The inherited query language.
        execution_type: STANDARD or EXPRESS (EXPRESS children time out after 5 minutes).
        payload_limit: Max bytes of a child's output.
        lease_ms: The run lease a worker holds (renewed by its heartbeat).
        blocking: Whether the processor can block (Task/Wait); the local backend runs others inline.
        flow: The Map Run's flow options (:meth:`dmap.flow.FlowOptions.as_dict`), or None.
        role_arn: The parent execution's role (children run with it, as on AWS); None: dmap's default.
    """

    run_id: str
    map_run_arn: str
    state_machine_name: str
    label: str
    processor: dict[str, Any]
    language: str = "JSONPath"
    execution_type: str = "STANDARD"
    payload_limit: int = 256 * 1024
    lease_ms: int = 30_000
    blocking: bool = True
    flow: dict[str, Any] | None = None
    role_arn: str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> str:
        """The plan as JSON text (for Redis)."""
        data = asdict(self)
        data.pop("_cache")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ChildPlan:
        """Read a plan written by :meth:`to_json`."""
        return cls(**json.loads(text))

    @cached_property
    def branch(self) -> Branch:
        """The ItemProcessor as a model (parsed once per plan)."""
        return Branch.model_validate(self.processor)

    def child_name(self, child: int) -> str:
        """A child's execution name: a UUID stable across attempts and resumes (the same the ResultWriter prints)."""
        return child_execution_name(self.run_id, child)

    def child_arn(self, child: int) -> str:
        """A child's execution ARN, shaped as AWS's (``…:execution:<sm>/<label>:<name>``)."""
        machine = f"{self.state_machine_name}/{self.label}"
        return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{self.child_name(child)}"


class AbortWatch:
    """``should_abort`` for a child: asks the store at most every ``interval`` seconds."""

    def __init__(self, store: RunStore, run: str, interval: float = 0.25) -> None:
        self._store, self._run, self._interval = store, run, interval
        self._next = time.monotonic() + interval  # start() has just checked the flag
        self._aborted = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._aborted and now >= self._next:
            self._aborted = self._store.aborted(self._run) is not None
            self._next = now + self._interval
        return self._aborted


def run_child(
    store: RunStore,
    plan: ChildPlan,
    child: int,
    token: str,
    *,
    handlers: Registry | None = None,
    heartbeat: Any = None,
    engine: Any = None,
    lease_ms: int | None = None,
    trace: Mapping[str, str] | None = None,
    take_for: float = 0.0,
) -> str:
    """Run one child if its token is current; record its result. Returns the start outcome.

    Never raises for anything a definition or a handler does: every failure becomes the child's
    recorded FAILED result with an AWS error name and cause. ``engine`` (a backend) lets the child
    coordinate a nested DISTRIBUTED Map of its own. ``lease_ms`` overrides the plan's run lease
    (the local backend holds its children's leases with :data:`~dmap.store.memory.HELD`).
    ``trace`` is the Map Run's W3C trace context from the child message (:mod:`dmap.telemetry`).

    For up to ``take_for`` seconds, a store that can (``step_take``) lets the completion take the
    next child the coordinator staged and start it under the same call: the permit this child frees
    goes straight to the next one, and this thread runs it with no hand-off and no coordinator
    wake-up. It stops when no child waits or no permit is free (the coordinator grants then).
    """
    me = worker_id()
    run = plan.run_id
    lease = plan.lease_ms if lease_ms is None else lease_ms
    started = store.start(run, child, token, lease_ms=lease, worker=me)
    outcome = started.outcome
    if outcome != RUN:
        return outcome
    taker = getattr(store, "step_take", None) if take_for > 0 else None
    take_until = time.monotonic() + take_for if taker is not None else 0.0
    while True:
        status, record = _run_started(store, plan, child, token, started, handlers, heartbeat, engine, me, lease, trace)
        if status is PARKED:  # a parked child completes when its answer resumes it (run_resumed)
            return outcome
        if taker is None or time.monotonic() >= take_until:
            store.complete(run, child, token, status, record)
            return outcome
        done = Done(child, token, status, record)
        _, took = taker(run, done=done, nonce=_take_nonce(), lease_ms=lease, worker=me)
        if took is None:
            return outcome
        child, token, started = took


_takes = itertools.count()


def _take_nonce() -> str:
    """A nonce for the token of a child taken with ``step_take`` (``<attempt>-<nonce>``), new on every call.

    Unique across processes and forks (a random prefix per process) without a system call per take.
    """
    return f"{_nonce_prefix}{next(_takes):x}"


def run_resumed(
    store: RunStore,
    plan: ChildPlan,
    child: int,
    token: str,
    started: Started,
    resume: Any,
    *,
    handlers: Registry | None = None,
    heartbeat: Any = None,
    engine: Any = None,
) -> str:
    """Run a parked child from the Task state whose answer came (:func:`dmap.callbacks.resume_child`); complete it.

    ``token`` is the child's store token while parked; the child may park again at a later Task.
    """
    me = worker_id()
    status, record = _run_started(
        store, plan, child, token, started, handlers, heartbeat, engine, me, plan.lease_ms, resume=resume
    )
    if status is not PARKED:
        store.complete(plan.run_id, child, token, status, record)
    return started.outcome


def run_pack(
    store: RunStore,
    plan: ChildPlan,
    pack: Sequence[tuple[int, str]],
    *,
    handlers: Registry | None = None,
    heartbeat: Any = None,
    engine: Any = None,
    release_after: float = 1.0,
    trace: Mapping[str, str] | None = None,
    take_for: float = 0.0,
) -> int:
    """Run a pack of children of one Map Run one after another, one store round trip per child.

    The first call swaps every dispatch lease of the pack for a run lease (a worker killed now
    costs one run lease, not the dispatch lease) and starts the first child; each later call
    completes the child that ended and starts the next (:func:`dmap.store.step`). Each child is
    still its own execution with its own token: fencing and counting are those of
    :func:`run_child`. While one child runs longer than ``release_after`` seconds, the pack-mates
    it has not started are given back (:func:`dmap.store.release`) so other workers run them.
    ``trace`` is the Map Run's W3C trace context from the pack's message (:mod:`dmap.telemetry`).

    Then, for up to ``take_for`` seconds from the start, a store that can (``step_take``: Redis) lets
    the call that completes a child also take the next child the coordinator staged and start it, a
    permit freed and taken again in one script: the worker runs on without a message or a coordinator
    round trip, one store round trip per child. It stops when no child waits or no permit is free
    (the coordinator sends what it grants then), and after ``take_for`` seconds, so the messages
    queued behind this one (other packs, other runs) wait at most about that long.

    Returns:
        How many children this call ran.
    """
    run, me = plan.run_id, worker_id()
    taker = getattr(store, "step_take", None) if take_for > 0 else None
    take_until = time.monotonic() + take_for
    if heartbeat is not None:
        for child, token in pack:
            heartbeat.add(store, run, child, token, plan.lease_ms)
    guard = _PackGuard(store, run, heartbeat)
    todo = list(pack)
    done: Done | None = None
    renew: Sequence[tuple[int, str]] = todo
    ran = 0
    try:
        while todo or done is not None:
            nxt: tuple[int, str] | None
            taken = not todo and taker is not None and time.monotonic() < take_until
            if taken and taker is not None:
                _, took = taker(run, done=done, nonce=_take_nonce(), lease_ms=plan.lease_ms, worker=me)
                done = None
                if took is None:
                    break
                nxt, started = (took[0], took[1]), took[2]
            else:
                nxt = todo.pop(0) if todo else None
                _, started, _ = step(
                    store, run, done=done, start=nxt, lease_ms=plan.lease_ms, worker=me, renew=renew[:_MOST_RENEWALS]
                )
                renew, done = (), None
                if nxt is None or started is None:
                    break
            if started.outcome != RUN:
                if heartbeat is not None and not taken:
                    heartbeat.remove(run, *nxt)
                continue
            ran += 1
            guard.arm(todo, release_after)
            try:
                status, record = _run_started(
                    store, plan, nxt[0], nxt[1], started, handlers, heartbeat, engine, me, plan.lease_ms, trace
                )
            finally:
                given_back = guard.disarm()
            if given_back:
                todo = [lease for lease in todo if lease not in given_back]
            done = None if status is PARKED else Done(nxt[0], nxt[1], status, record)
    finally:
        if heartbeat is not None:
            for child, token in pack:
                heartbeat.remove(run, child, token)
    return ran


_MOST_RENEWALS = 500  # step.lua's bound; a larger pack's rest is renewed by the heartbeat


class _PackGuard:
    """Gives a pack's unstarted children back when the child running now outlasts a budget.

    One watcher thread per process (:class:`_Watcher`) fires the release; the release and the
    worker's next start are both atomic Lua on the same keys, so each unstarted child either
    starts here (the release skips it: RUNNING) or is given back (its token here is then stale).
    """

    def __init__(self, store: RunStore, run: str, heartbeat: Any) -> None:
        self._store, self._run, self._heartbeat = store, run, heartbeat
        self._lock = threading.Lock()
        self._waiting: list[tuple[int, str]] = []
        self._given_back: set[tuple[int, str]] = set()
        self._armed = False

    def arm(self, waiting: Sequence[tuple[int, str]], seconds: float) -> None:
        """Watch the child that starts now; ``waiting`` are the pack-mates behind it."""
        if not waiting or seconds <= 0:
            return
        with self._lock:
            self._waiting, self._armed = list(waiting), True
        _watcher().watch(self, time.monotonic() + seconds)

    def disarm(self) -> set[tuple[int, str]]:
        """The child ended: stop watching; returns the pack-mates given back meanwhile."""
        with self._lock:
            if not self._armed:
                return self._given_back
            self._armed = False
        _watcher().unwatch(self)
        with self._lock:
            return self._given_back

    def fire(self) -> None:
        """The budget ran out while the child still runs: give the waiting pack-mates back."""
        with self._lock:
            if not self._armed or not self._waiting:
                return
            waiting, self._waiting = self._waiting, []
            try:
                given = release(self._store, self._run, waiting)
            except Exception:  # a Redis hiccup: the pack-mates simply wait for this worker
                logger.warning("could not give back %d children of map run %s", len(waiting), self._run, exc_info=True)
                return
            self._given_back.update(waiting)
        logger.info(
            "gave back %d of %d waiting children of map run %s (a pack-mate runs long)", given, len(waiting), self._run
        )
        if self._heartbeat is not None:
            for child, token in waiting:
                self._heartbeat.remove(self._run, child, token)


class _Watcher:
    """One daemon thread per process that fires the guards whose budget ran out."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, _PackGuard]] = {}
        threading.Thread(target=self._loop, name="dmap-pack-guard", daemon=True).start()

    def watch(self, guard: _PackGuard, deadline: float) -> None:
        with self._cond:
            self._due[id(guard)] = (deadline, guard)
            self._cond.notify()

    def unwatch(self, guard: _PackGuard) -> None:
        with self._cond:
            self._due.pop(id(guard), None)

    def _loop(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [self._due.pop(key)[1] for key in [k for k, (at, _) in self._due.items() if at <= now]]
                if not due:
                    nearest = min((d for d, _ in self._due.values()), default=now + 60)
                    self._cond.wait(max(0.001, nearest - now))
                    continue
            for guard in due:
                guard.fire()


_watchers: dict[int, _Watcher] = {}
_watchers_lock = threading.Lock()


def _watcher() -> _Watcher:
    """This process's watcher (a forked pool process starts its own)."""
    pid = os.getpid()
    watcher = _watchers.get(pid)
    if watcher is None:
        with _watchers_lock:
            watcher = _watchers.get(pid)
            if watcher is None:
                _watchers.clear()
                watcher = _watchers[pid] = _Watcher()
    return watcher


def _run_started(
    store: RunStore,
    plan: ChildPlan,
    child: int,
    token: str,
    started: Started,
    handlers: Registry | None,
    heartbeat: Any,
    engine: Any,
    me: str,
    lease: int,
    trace: Mapping[str, str] | None = None,
    *,
    resume: Any = None,
) -> tuple[ChildStatus, str]:
    """Run a started child's ItemProcessor; its terminal status and result record (JSON), not yet completed.

    ``lease`` is the run lease it was started with (``<= 0``: held by this process, never expiring).
    ``resume`` continues a parked child. Returns :data:`PARKED` when the child parked at a Task
    waiting for its token: nothing to complete, the answer resumes it.
    """
    if heartbeat is not None:
        heartbeat.add(store, plan.run_id, child, token, lease)
    start_date = iso_now()
    record: dict[str, Any] = {"Child": child, "Index": started.first, "Items": started.items, "Input": started.input}
    try:
        if telemetry.tracer() is None:
            status, fields = _execute(
                store, plan, child, started, handlers or registry, engine, start_date, token, resume
            )
        else:  # traced: the same call inside the child's span, parented to its Map Run's
            status, fields = telemetry.child_span(
                plan,
                child,
                started,
                trace,
                me,
                lambda: _execute(store, plan, child, started, handlers or registry, engine, start_date, token, resume),
            )
    except Parked:
        return PARKED, ""
    except Exception as exc:  # the interpreter reports failures as results; this is a bug guard
        logger.exception("child %s of map run %s crashed the interpreter", child, plan.run_id)
        status, fields = ChildStatus.FAILED, {"Error": ErrorName.RUNTIME.value, "Cause": f"internal error: {exc!r}"}
    except BaseException:
        if lease <= 0:  # a held lease never expires: let it go as a dead worker's would, so the child runs again
            store.renew(plan.run_id, [(child, token)], lease_ms=1)
        raise
    finally:
        if heartbeat is not None:
            heartbeat.remove(plan.run_id, child, token)
    record.update(fields)
    record.update(
        {
            "Status": _NAMES[status],
            "StartDate": start_date,
            "StopDate": iso_now(),
            "Attempts": started.attempt,
            "Worker": me,
        }
    )
    return status, compact(record)


def _limits(plan: ChildPlan, store: RunStore) -> Limits:
    """The flow limits the plan's children obey, resolved once per plan and store, not once per child.

    Resolving reads the environment and takes a process-wide lock (:func:`~dmap.flow.limits.limits_for`);
    the limits object itself stays live (a limit set later is still seen).
    """
    cached = plan._cache.get("limits")
    if cached is None or cached[0] is not store:
        cached = plan._cache["limits"] = (store, limits_for(store))
    limits: Limits = cached[1]
    return limits


def _waits(plan: ChildPlan) -> bool:
    """True if the plan's ItemProcessor has a callback or nested-execution Task at any depth (checked once per plan)."""
    found = plan._cache.get("waits")
    if found is None:
        found = plan._cache["waits"] = _has_callback(plan.processor)
    return bool(found)


def _has_callback(node: Any) -> bool:
    if isinstance(node, dict):
        resource = node.get("Resource")
        if node.get("Type") == "Task" and isinstance(resource, str) and _is_callback(resource):
            return True
        return any(_has_callback(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_callback(value) for value in node)
    return False


def _parking(engine: Any, plan: ChildPlan, child: int, token: str, start: str) -> Any:
    """The child's parking service for long waits for rate-limit tokens, built when first needed; None on local."""
    if getattr(engine, "redis", None) is None:
        return None

    def service() -> Any:
        from .callbacks import child_tokens

        return child_tokens(engine, plan.run_id, child, token, start)

    return service


class _NestedMaps:
    """``Runtime.distributed_map`` of a child: builds its coordinator hook only if a nested Map runs (rarely)."""

    __slots__ = ("_engine", "_info", "_runner")

    def __init__(self, engine: Any, info: ExecutionInfo) -> None:
        self._engine, self._info = engine, info
        self._runner: Any = None

    def __call__(self, invocation: Any) -> Any:
        if self._runner is None:  # one per execution: it numbers the attempts of each Map state (Retry)
            from .coordinator import MapRunner
            from .records import Execution

            info = self._info
            me = Execution(
                info.execution_arn, info.name, info.state_machine_name, input=info.input, start_date=info.start_time
            )
            self._runner = MapRunner(self._engine, me)
        return self._runner(invocation)


def _execute(
    store: RunStore,
    plan: ChildPlan,
    child: int,
    started: Started,
    handlers: Registry,
    engine: Any,
    start_date: str,
    token: str = "",
    resume: Any = None,
) -> tuple[ChildStatus, dict[str, Any]]:
    value = parse(started.input or "null")
    child_input = value
    first = started.first
    deadline = time.monotonic() + EXPRESS_LIMIT_SECONDS if plan.execution_type == "EXPRESS" else None
    watch = AbortWatch(store, plan.run_id)
    parking = _parking(engine, plan, child, token, start_date)
    runtime = Runtime(
        registry=handlers,
        payload_limit=plan.payload_limit,
        should_abort=watch,
        deadline=deadline,
        item_index=first,
        flow=ChildFlow(
            store, plan.run_id, child, plan.flow, should_abort=watch, parking=parking, limits=_limits(plan, store)
        ),
    )
    name = plan.child_name(child)
    machine = f"{plan.state_machine_name}/{plan.label}"
    info = ExecutionInfo(
        name=name,
        state_machine_name=machine,
        input=child_input,
        start_time=start_date,
        arn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}",
        role_arn=plan.role_arn or DEFAULT_ROLE_ARN,
    )
    if engine is not None:
        runtime.distributed_map = _NestedMaps(engine, info)
    start_at, variables = None, None
    waits = _waits(plan)
    if waits:  # callbacks and nested executions: the host's services
        from .callbacks import child_tokens
        from .nested import executions_for

        runtime.callbacks = child_tokens(engine, plan.run_id, child, token, start_date)
        runtime.executions = executions_for(engine)
    redis = getattr(engine, "redis", None) is not None
    if resume is None and redis and (waits or runtime.flow.limits.any()):  # a child parked before may resume
        from .callbacks import resume_point

        resume = resume_point(engine, plan.run_id, child)
    if resume is not None:
        runtime.resume, start_at, value, variables = resume, resume.state, resume.input, resume.variables
        runtime.flow.resume = resume
    result = execute(
        plan.branch,
        value,
        runtime=runtime,
        info=info,
        language=plan.language,
        start_at=start_at,
        variables=variables,
    )
    if result.status == "SUCCEEDED":
        # execute() has checked the output against the payload limit (the same limit) and kept its JSON.
        return ChildStatus.SUCCEEDED, {"Output": result.output_json or compact(result.output)}
    return _STATUS[result.status], {"Error": result.error or "", "Cause": result.cause or ""}
