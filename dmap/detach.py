"""Detached executions: the whole execution, coordinator included, runs as a task on the cluster.

``dmap run --detach`` (or ``dmap.run(..., wait=False)`` on the celery backend through
:func:`submit`) stores the execution in the journal and sends one ``dmap.run_execution`` task.
Whichever worker takes it runs the execution and holds an *execution lease* in Redis, renewed
every few seconds. Every worker also runs a small reaper: when a lease expires (the worker running
that coordinator died), one reaper claims it atomically and sends the task again; the new
coordinator resumes the Map Run where it stopped (same execution name, same Map Run id, the run
store's cursor and leases), so closing the terminal — or losing a worker — does not stop a run.
A redrive is handed over the same way (:func:`submit_redrive`, what ``dmap serve`` does on celery).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from .errors import BackendError, ConfigurationError

logger = logging.getLogger(__name__)

RUN_EXECUTION_TASK = "dmap.run_execution"
LEASE_MS = 15_000
_RECLAIM = """
-- KEYS: 1 lease ZSET (arn -> expiry ms), 2 owner STRING of the arn. ARGV: arn, queue_wait_ms.
-- Claims an execution whose lease expired and that nobody owns: it gets a fresh queue-wait lease.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > now or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_RENEW = """
-- KEYS: 1 lease ZSET, 2 owner STRING. ARGV: arn, owner, lease_ms. Renews only the owner's lease; an owner
-- key that expired while Redis was down (or restarted) is set again unless another worker took it.
local current = redis.call('GET', KEYS[2])
if current and current ~= ARGV[2] then return 0 end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
_HAND_OVER = """
-- KEYS: 1 lease ZSET, 2 owner STRING. ARGV: arn, owner. A coordinator that stopped without ending its
-- execution (Redis or the broker was gone too long) lets its lease expire now, so a reaper resumes it at
-- its next pass; a lease another worker owns by now is left alone.
local current = redis.call('GET', KEYS[2])
if current and current ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000 - 1, ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""
_EXPIRED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
"""


def _keys(backend: Any) -> tuple[str, str]:
    prefix = backend.redis.prefix
    return f"{prefix}:j:detached", f"{prefix}:j:detached-spec"


def _owner_key(backend: Any, arn: str) -> str:
    return f"{backend.redis.prefix}:j:detached-owner:{arn}"


def _queue_wait_ms(backend: Any) -> int:
    """How long a submitted execution may wait in the queue before a reaper sends it again."""
    return int(backend.settings.dispatch_lease_seconds * 1000)


def submit(
    definition: Any,
    *,
    manifest: str | None = None,
    input: Any = None,
    name: str | None = None,
    max_concurrency: int | None = None,
    backend: Any = None,
    state_machine: str | None = None,
    flow: dict[str, Any] | None = None,
    origin: dict[str, str] | None = None,
) -> Any:
    """Validate a definition, record the execution and hand it to the cluster; returns the RUNNING execution.

    ``state_machine`` files the execution under that state machine name (a nested execution of a
    stored state machine); by default the name comes from the definition's file name.

    Names follow AWS's StartExecution rule (:mod:`dmap.identity`): the name of a RUNNING execution
    with the same input and manifest returns that execution (sent to the cluster again only if no
    live process runs it any more); no second coordinator ever starts for it.

    Raises:
        ConfigurationError: The backend is not celery, or the manifest is a local iterable.
        SourceNotReadable: The manifest cannot be read (a local path is recorded absolute).
        DefinitionError: The definition is invalid.
        ExecutionAlreadyExists: The name belongs to a closed execution, or to a RUNNING one with
            another input or manifest.
    """
    from . import identity
    from .admission import check_source
    from .api import prepare, state_machine_name
    from .backends import get_backend
    from .backends.celery import CeleryBackend

    engine = get_backend(backend)  # DMAP_BACKEND when not given: never a celery Redis the user did not ask for
    if not isinstance(engine, CeleryBackend):
        raise ConfigurationError(
            f"--detach needs the celery backend: the {engine.name} backend runs the execution in this process, "
            "which ends when the command returns; use --backend celery with workers (dmap worker), or drop --detach"
        )
    if manifest is not None and not isinstance(manifest, str | Path):
        raise ConfigurationError("a detached execution needs a manifest the workers can read (s3://... or a path)")
    manifest = check_source(manifest, engine)  # before anything is recorded: the worker reads it later, elsewhere
    machine = prepare(definition, engine, detached=True)
    sm_name = state_machine or state_machine_name(definition)  # the name the execution is filed under
    admission = identity.admit(engine, sm_name, name, input, manifest)
    execution = admission.execution
    if not admission.owned:  # RUNNING with this input and source, and a live process runs it: attach, send nothing
        identity.attached(execution)
        return execution
    if admission.new:  # a resumed execution keeps its stored record as it is
        execution.flow = flow  # the flow options travel in the record (dmap.flow)
        identity.stamp(execution, origin)  # the role and the caller's ARN form too
        engine.journal.save_execution(
            execution, definition=machine.model_dump(by_alias=True, exclude_unset=True, mode="json")
        )
    lease_key, spec_key = _keys(engine)
    spec = {"manifest": str(manifest) if manifest is not None else None, "max_concurrency": max_concurrency}
    client = engine.redis.client
    spec["queue"] = engine.settings.queue
    client.hset(spec_key, execution.execution_arn, json.dumps(spec))
    client.zadd(lease_key, {execution.execution_arn: int(time.time() * 1000) + _queue_wait_ms(engine)})
    # From here the detached lease says who runs it. (A claim left by an error above is not renewed: it expires.)
    identity.release(engine, execution.execution_arn)
    engine.app.send_task(RUN_EXECUTION_TASK, args=(execution.execution_arn,), queue=engine.settings.queue)
    return execution


def submit_redrive(engine: Any, machine: Any, execution: Any, source: Any, redriven: dict[str, Any]) -> Any:
    """Hand a redrive to the cluster, as :func:`submit` hands a new execution: it outlives the caller.

    ``execution`` is the record :func:`dmap.control.redrive_execution` made RUNNING again (its
    redrive count and date set) while holding the execution's claim; ``redriven`` maps Map state
    names to the Map Runs the redrive continues in place. The record is saved, the redrive is
    written to the detached spec (the Map Run ARNs, the item source) and one ``dmap.run_execution``
    task is sent; the claim is then released, as :func:`submit` does (the lease says who runs it).

    Raises:
        ConfigurationError: The backend is not celery, or the items come from an in-process iterable
            the workers cannot read (redrive it in this process instead).
    """
    from . import identity
    from .backends.celery import CeleryBackend
    from .sources import ReadToTheEnd

    if not isinstance(engine, CeleryBackend):
        raise ConfigurationError(f"a detached redrive needs the celery backend, not {engine.name}")
    read_to_end = isinstance(source, ReadToTheEnd)
    if not (read_to_end or source is None or isinstance(source, str | Path)):
        raise ConfigurationError("a detached redrive needs items the workers can read (s3://... or a path)")
    lease_key, spec_key = _keys(engine)
    spec = {
        "manifest": None if read_to_end or source is None else str(source),
        "read_to_end": read_to_end,
        "max_concurrency": None,
        "queue": engine.settings.queue,
        "redrive": [m.map_run_arn for m in redriven.values()],
    }
    client = engine.redis.client
    engine.journal.save_execution(
        execution, definition=machine.model_dump(by_alias=True, exclude_unset=True, mode="json")
    )
    client.hset(spec_key, execution.execution_arn, json.dumps(spec))
    client.zadd(lease_key, {execution.execution_arn: int(time.time() * 1000) + _queue_wait_ms(engine)})
    identity.release(engine, execution.execution_arn)
    engine.app.send_task(RUN_EXECUTION_TASK, args=(execution.execution_arn,), queue=engine.settings.queue)
    return execution


def run_detached(engine: Any, arn: str) -> str:
    """Run (or resume) a detached execution on this worker while owning its lease; returns its final status.

    Only one worker owns an execution at a time (a Redis key set NX with a TTL the owner renews);
    a second delivery of the same execution finds it owned and returns ``"busy"``.
    """
    from . import identity
    from .api import prepare
    from .child import worker_id
    from .records import ExecutionStatus
    from .sources import ReadToTheEnd

    lease_key, spec_key = _keys(engine)
    owner_key, me = _owner_key(engine, arn), f"{worker_id()}:{threading.get_ident()}"
    client = engine.redis.client
    if client.zscore(lease_key, arn) is None:
        return "gone"  # finished, or never detached
    if not client.set(owner_key, me, nx=True, px=LEASE_MS):
        return "busy"  # another worker runs it
    renew = client.register_script(_RENEW)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(LEASE_MS / 3000):
            try:
                if not renew(keys=[lease_key, owner_key], args=[arn, me, LEASE_MS]):
                    logger.warning("lost the lease of detached execution %s (another worker took it over)", arn)
                    identity.claims(engine).mark_lost(arn)  # the coordinator here stops at its next check
                    return
            except Exception:  # a Redis outage longer than DMAP_REDIS_OUTAGE_SECONDS: the next beat tries again
                logger.warning("could not renew the lease of detached execution %s", arn, exc_info=True)

    renew(keys=[lease_key, owner_key], args=[arn, me, LEASE_MS])
    threading.Thread(target=beat, name="dmap-execution-lease", daemon=True).start()
    try:
        execution = engine.journal.execution(arn)
        definition = engine.journal.definition(arn)
        if execution is None or definition is None or execution.status != ExecutionStatus.RUNNING:
            return "gone"
        spec = json.loads(client.hget(spec_key, arn) or "{}")
        redrive = _take_redrive(engine, arn, spec)
        if redrive is None:
            execution.map_runs = []  # the coordinator re-attaches (and resumes) its Map Runs
        try:
            engine.run(
                prepare(definition),
                execution,
                manifest=ReadToTheEnd() if spec.get("read_to_end") else spec.get("manifest"),
                max_concurrency=spec.get("max_concurrency"),
                wait=True,
                redrive=redrive,
            )
        except BackendError as exc:  # Redis or the broker gone too long, or the claim lost: left RUNNING
            logger.warning("detached execution %s stopped here: %s", arn, exc)
            return "handed over"
        return str(execution.status)
    finally:
        done.set()
        _let_go(engine, arn, me)


def _let_go(engine: Any, arn: str, me: str) -> None:
    """After a coordinator stopped: forget an ended execution, or hand a RUNNING one to the reapers.

    Whatever stopped the coordinator — Redis or the broker gone longer than ``DMAP_REDIS_OUTAGE_SECONDS``,
    a lost claim, an error — an execution that is still RUNNING keeps its lease, expired at once, so the
    next reaper pass resumes it. With Redis still unreachable nothing can be written: the lease then
    expires by itself.
    """
    from .records import ExecutionStatus

    lease_key, spec_key = _keys(engine)
    owner_key, client = _owner_key(engine, arn), engine.redis.client
    try:
        execution = engine.journal.execution(arn)
        if execution is None or execution.status != ExecutionStatus.RUNNING:
            client.zrem(lease_key, arn)
            client.hdel(spec_key, arn)
            if client.get(owner_key) in (me, me.encode()):
                client.delete(owner_key)
        elif client.eval(_HAND_OVER, 2, lease_key, owner_key, arn, me):
            logger.warning("detached execution %s handed over: a reaper resumes it", arn)
    except Exception:  # Redis still gone: the lease expires on its own and a reaper resumes it then
        logger.warning("could not hand over detached execution %s; its lease expires on its own", arn, exc_info=True)


def _take_redrive(engine: Any, arn: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The Map Runs a detached redrive continues in place (state name -> Map Run), once.

    The spec forgets them as they are taken: a coordinator resumed after this one died goes on
    with the same Map Runs (found by their ids, as any resumed run) instead of redriving them again.
    """
    arns = spec.pop("redrive", None)
    if arns is None:
        return None
    _, spec_key = _keys(engine)
    engine.redis.client.hset(spec_key, arn, json.dumps(spec))
    runs = (engine.journal.map_run(a) for a in arns)
    return {m.state_name: m for m in runs if m is not None}


class Reaper:
    """Re-sends detached executions whose coordinator stopped renewing its lease (one per worker process)."""

    def __init__(self, engine: Any, interval: float = 5.0) -> None:
        self.engine, self.interval = engine, interval
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the daemon thread."""
        threading.Thread(target=self._loop, name="dmap-reaper", daemon=True).start()

    def stop(self) -> None:
        """Stop the daemon thread."""
        self._stop.set()

    def _loop(self) -> None:
        client = self.engine.redis.client
        lease_key, spec_key = _keys(self.engine)
        expired = client.register_script(_EXPIRED)
        reclaim = client.register_script(_RECLAIM)
        while not self._stop.wait(self.interval):
            try:
                if _just_restarted(client):
                    continue
                for raw in expired(keys=[lease_key]):
                    arn = raw.decode() if isinstance(raw, bytes) else str(raw)
                    owner = _owner_key(self.engine, arn)
                    if reclaim(keys=[lease_key, owner], args=[arn, _queue_wait_ms(self.engine)]):
                        spec = json.loads(client.hget(spec_key, arn) or "{}")
                        queue = spec.get("queue") or self.engine.settings.queue
                        logger.warning(
                            "resuming detached execution %s on queue %s (its coordinator stopped)", arn, queue
                        )
                        self.engine.app.send_task(RUN_EXECUTION_TASK, args=(arn,), queue=queue)
            except Exception:
                logger.warning("reaper pass failed", exc_info=True)


def _just_restarted(client: Any) -> bool:
    """True while a restarted Redis is younger than a lease: live owners riding out the outage renew first.

    Leases and owner keys count down while Redis is down; without this grace a reaper could resume an
    execution whose coordinator is alive and about to renew, and two coordinators would run it.
    """
    uptime = client.info("server").get("uptime_in_seconds")
    return isinstance(uptime, int) and uptime * 1000 < LEASE_MS
