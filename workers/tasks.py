"""The one Celery task of dmap: run a child of a Map Run by reference ``(run, child, token)``.

The message carries no payload: the child's input waits in the run store, and the plan of its
Map Run is fetched from Redis once per process. Whatever happens inside the child is recorded as
its result; the task itself never fails, so Celery never retries or re-queues it — the leases do.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown

from dmap import telemetry
from dmap.backends.celery import CHILD_TASK, CHILDREN_TASK, CeleryBackend
from dmap.callbacks import RESUME_TASK, Sweeper, resume_child
from dmap.child import run_pack, run_resumed
from dmap.detach import RUN_EXECUTION_TASK, Reaper, run_detached
from dmap.heartbeat import heartbeat
from dmap.store.workers import WorkerBeacon, this_worker

from .app import app

logger = logging.getLogger(__name__)
TAKE_SECONDS = 1.0
"""How long one message may go on taking the run's staged children before the worker reads its next message."""
_backend: tuple[int, CeleryBackend] | None = None
_beacon: WorkerBeacon | None = None


def backend() -> CeleryBackend:
    """This process's backend (created after a prefork fork, never shared across processes)."""
    global _backend
    if _backend is None or _backend[0] != os.getpid():
        _backend = (os.getpid(), CeleryBackend(app=app))
    return _backend[1]


@app.task(name=CHILD_TASK, ignore_result=True)
def run_child_task(run: str, child: int, token: str, trace: dict[str, str] | None = None) -> str:
    """Run one child if its token is still current; returns ``run`` if it ran, else ``stale``.

    ``trace`` is the Map Run's W3C trace context, sent only when the coordinator traces.
    """
    engine = backend()
    plan = engine.plan(run)
    if plan is None:
        logger.warning("no plan for map run %s (expired or deleted); child %s skipped", run, child)
        return "stale"
    # A pack of one: its completion takes the next staged child, if any (as run_children_task's last one).
    ran = run_pack(
        engine.store,
        plan,
        [(int(child), str(token))],
        heartbeat=heartbeat,
        engine=engine,
        release_after=engine.settings.pack_release_seconds,
        trace=trace,
        take_for=TAKE_SECONDS,
    )
    return "run" if ran else "stale"


@app.task(name=CHILDREN_TASK, ignore_result=True)
def run_children_task(run: str, children: list[list[Any]], trace: dict[str, str] | None = None) -> int:
    """Run a pack of children of one Map Run, one after another; returns how many ran.

    Their leases are renewed from the moment the pack arrives, so if this worker dies the
    children not yet started come back after one run lease (:func:`dmap.child.run_pack`).
    """
    engine = backend()
    plan = engine.plan(run)
    if plan is None:
        logger.warning("no plan for map run %s (expired or deleted); %d children skipped", run, len(children))
        return 0
    pack = [(int(child), str(token)) for child, token in children]
    # One store round trip per child: the first swaps the pack's dispatch leases for run leases (a
    # worker killed now costs one run lease, not DMAP_DISPATCH_LEASE_SECONDS) and starts the first
    # child; each later one completes a child and starts the next. A child that runs long gives the
    # unstarted rest back to other workers.
    release_after = engine.settings.pack_release_seconds
    return run_pack(
        engine.store,
        plan,
        pack,
        heartbeat=heartbeat,
        engine=engine,
        release_after=release_after,
        trace=trace,
        take_for=TAKE_SECONDS,
    )


@app.task(name=RESUME_TASK, ignore_result=True)
def resume_child_task(run: str, child: int, parked: str, token: str) -> str:
    """Resume a parked child whose task token was answered: run it on from that Task state."""
    engine = backend()
    taken = resume_child(engine, run, int(child), str(parked), str(token))
    if taken is None:
        return "stale"  # a duplicate message, or the child ended or was taken over meanwhile
    started, resume = taken
    plan = engine.plan(run)
    if plan is None:
        return "stale"
    return run_resumed(engine.store, plan, int(child), str(parked), started, resume, heartbeat=heartbeat, engine=engine)


@app.task(name=RUN_EXECUTION_TASK, ignore_result=True)
def run_execution_task(arn: str) -> str:
    """Run (or resume) a detached execution, coordinator included, on this worker."""
    return run_detached(backend(), arn)


@worker_ready.connect
def _start_reaper(**_: object) -> None:
    """One reaper per worker (in the main process): resumes detached executions whose coordinator died."""
    Reaper(CeleryBackend(app=app)).start()


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    """One callback sweeper per worker (main process): fails parked tasks whose Timeout/HeartbeatSeconds ran out."""
    Sweeper(CeleryBackend(app=app)).start()


@worker_ready.connect
def _advertise(sender: Any = None, **_: object) -> None:
    """Put this worker in the registry (main process, daemon thread): pool children never wait on it."""
    global _beacon
    controller = getattr(sender, "controller", None)
    running = getattr(sender, "app", None) or app  # `dmap worker` runs an app of its own, with its own -Q
    consume = getattr(getattr(getattr(running, "amqp", None), "queues", None), "consume_from", None) or {}
    queues = sorted(str(name) for name in consume) or [running.conf.task_default_queue]
    node = str(getattr(sender, "hostname", None) or f"dmap@{os.uname().nodename}")
    engine = CeleryBackend(app=app)
    info = this_worker(node, queues, int(getattr(controller, "concurrency", 0) or 0))
    _beacon = WorkerBeacon(engine.redis.client, engine.redis.prefix, info)
    _beacon.start()
    logger.info("advertised as %s on queue(s) %s with handlers %s", info.id, ", ".join(queues), info.handlers)


@worker_process_shutdown.connect
def _flush_spans(**_: object) -> None:
    """Export the spans a pool process still buffers before it exits (a no-op without tracing)."""
    telemetry.flush()


@worker_shutdown.connect
def _withdraw(**_: object) -> None:
    """Leave the registry at once on a clean shutdown (a killed worker drops out when its record expires)."""
    if _beacon is not None:
        _beacon.stop()
