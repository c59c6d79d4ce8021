"""Detached executions: the whole execution, coordinator included, runs as a task on the cluster.

``dmap run --detach`` (or ``dmap.run(..., wait=False)`` on the celery backend through
:func:`submit`) stores the execution in the journal and sends one ``dmap.run_execution`` task.
Whichever worker takes it runs the execution and holds an *execution lease* in Redis, renewed
every few seconds. Every worker also runs a small reaper: when a lease expires (the worker running
that coordinator died), one reaper claims it atomically and sends the task again; the new
coordinator resumes the Map Run where it stopped (same execution name, same Map Run id, the run
store's cursor and leases), so closing the terminal — or losing a worker — does not stop a run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

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
-- KEYS: 1 lease ZSET, 2 owner STRING. ARGV: arn, owner, lease_ms. Renews only the owner's lease.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
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
    admission = identity.admit(engine, state_machine or state_machine_name(definition), name, input, manifest)
    execution = admission.execution
    if not admission.owned:  # RUNNING with this input and source, and a live process runs it: attach, send nothing
        identity.attached(execution)
        return execution
    if admission.new:  # a resumed execution keeps its stored record as it is
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


def run_detached(engine: Any, arn: str) -> str:
    """Run (or resume) a detached execution on this worker while owning its lease; returns its final status.

    Only one worker owns an execution at a time (a Redis key set NX with a TTL the owner renews);
    a second delivery of the same execution finds it owned and returns ``"busy"``.
    """
    from .api import prepare
    from .child import worker_id
    from .records import ExecutionStatus

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
                renew(keys=[lease_key, owner_key], args=[arn, me, LEASE_MS])
            except Exception:  # a Redis hiccup: the next beat tries again
                logger.warning("could not renew the lease of detached execution %s", arn, exc_info=True)

    renew(keys=[lease_key, owner_key], args=[arn, me, LEASE_MS])
    threading.Thread(target=beat, name="dmap-execution-lease", daemon=True).start()
    try:
        execution = engine.journal.execution(arn)
        definition = engine.journal.definition(arn)
        if execution is None or definition is None or execution.status != ExecutionStatus.RUNNING:
            return "gone"
        spec = json.loads(client.hget(spec_key, arn) or "{}")
        execution.map_runs = []  # the coordinator re-attaches (and resumes) its Map Runs
        engine.run(
            prepare(definition),
            execution,
            manifest=spec.get("manifest"),
            max_concurrency=spec.get("max_concurrency"),
            wait=True,
        )
        return str(execution.status)
    finally:
        done.set()
        client.zrem(lease_key, arn)
        client.hdel(spec_key, arn)
        if client.get(owner_key) in (me, me.encode()):
            client.delete(owner_key)


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
