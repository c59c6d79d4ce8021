"""The celery backend: children are Celery tasks on workers anywhere; run state and broker are Redis.

The coordinator (in the caller, or on a worker for detached runs) publishes each Map Run's
:class:`~dmap.child.ChildPlan` to Redis once and sends each granted child as a tiny JSON message
``(run, child, token)``; a worker fetches the plan once per run and runs the child through the
same :func:`~dmap.child.run_child` as the local backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import redis
from kombu.exceptions import OperationalError

from .. import telemetry
from ..child import ChildPlan
from ..config import Settings
from ..errors import BackendError
from ..journal import RedisJournal
from ..outage import ride_out
from ..pacing import legacy_pack_size
from ..store import Lease
from ..store.redis import RedisRunStore
from ..store.workers import read_workers
from . import Backend

CHILD_TASK = "dmap.run_child"
CHILDREN_TASK = "dmap.run_children"


def pack_size(granted: int, most: int) -> int:
    """Children per message without a pacer: 1 until many permits come at once (32+), then up to ``most``."""
    return legacy_pack_size(granted, most)


_PLAN_CACHE = 256


def plan_key(prefix: str, run: str) -> str:
    """The Redis key of a Map Run's plan (same hash tag as the run's store keys)."""
    return f"{prefix}:{{{run}}}:plan"


class CeleryBackend(Backend):
    """Celery workers + :class:`~dmap.store.redis.RedisRunStore` (DMAP_REDIS_URL / DMAP_BROKER_URL)."""

    name = "celery"

    def __init__(self, settings: Settings | None = None, *, app: Any = None) -> None:
        super().__init__(settings)
        try:
            self.redis = RedisRunStore.from_url(self.settings.redis_url, socket_connect_timeout=5)
            self.redis.client.ping()
        except redis.RedisError as exc:
            where = f"Redis at {_safe(self.settings.redis_url)} (DMAP_REDIS_URL)"
            raise BackendError(f"cannot reach {where} for the celery backend: {_safe(exc)}") from None
        # Reached once (a wrong URL fails fast above): from now on an outage is ridden out, not fatal.
        ride_out(self.redis.client, self.settings.redis_outage_seconds)
        self.store = self.redis
        retention = int(self.settings.retention_days * 86400)
        self.journal = RedisJournal(self.redis.client, self.redis.prefix, retention)
        self._app = app
        self._plans: OrderedDict[str, ChildPlan] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        """The Celery app children are sent with (``workers.app`` unless one was given)."""
        if self._app is None:
            from workers.app import create_app

            self._app = create_app(self.settings)
        return self._app

    def publish_plan(self, plan: ChildPlan) -> None:
        """Store the plan in Redis for the workers (kept for the retention period)."""
        ttl = int(self.settings.retention_days * 86400)
        self.redis.client.set(plan_key(self.redis.prefix, plan.run_id), plan.to_json(), ex=ttl)

    def plan(self, run: str) -> ChildPlan | None:
        """A Map Run's plan, from a small per-process cache or from Redis."""
        with self._lock:
            cached = self._plans.get(run)
            if cached is not None:
                self._plans.move_to_end(run)
                return cached
        text = self.redis.client.get(plan_key(self.redis.prefix, run))
        if text is None:
            return None
        plan = ChildPlan.from_json(text)
        with self._lock:
            self._plans[run] = plan
            while len(self._plans) > _PLAN_CACHE:
                self._plans.popitem(last=False)
        return plan

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        """Send the granted children, several to a message when many permits came at once.

        Each child is still its own execution with its own lease and token; packing only shares
        Celery's per-message cost. The coordinator sizes packs itself (:meth:`dispatch_packs`,
        :class:`~dmap.pacing.Pacer`); this is the rule for callers without a pacer.
        """
        size = pack_size(len(leases), self.settings.dispatch_pack)
        self.dispatch_packs(plan, [leases[i : i + size] for i in range(0, len(leases), size)])

    def dispatch_packs(self, plan: ChildPlan, packs: Sequence[Sequence[Lease]]) -> None:
        """Send each pack as one message (a pack of one as ``dmap.run_child``), on one pooled producer.

        A worker swaps a pack's dispatch leases for run leases as it takes it, so a worker that dies
        with a pack costs one run lease; one that runs a long child gives the rest of its pack back.
        When tracing is on, each message also carries the Map Run's trace context (kwarg ``trace``).
        """
        app = self.app
        trace = telemetry.carrier()
        kwargs = None if trace is None else {"trace": trace}
        try:
            with app.producer_or_acquire() as producer:
                for pack in packs:
                    if not pack:
                        continue
                    if len(pack) == 1:
                        args: tuple[Any, ...] = (plan.run_id, pack[0].child, pack[0].token)
                        name = CHILD_TASK
                    else:
                        args, name = (plan.run_id, [[lease.child, lease.token] for lease in pack]), CHILDREN_TASK
                    app.send_task(
                        name, args=args, kwargs=kwargs, queue=self.settings.queue, producer=producer, ignore_result=True
                    )
        except OperationalError as exc:  # kombu's word for a broker that went away: an infrastructure fault
            where = f"the broker at {_safe(self.settings.effective_broker_url)} (DMAP_BROKER_URL)"
            raise BackendError(f"cannot send children of map run {plan.run_id} to {where}: {_safe(exc)}") from None

    def worker_slots(self) -> int:
        """The pool slots of the live ``dmap worker`` processes on this backend's queue (the registry)."""
        workers = read_workers(self.redis.client, self.redis.prefix)
        return sum(w.concurrency for w in workers if self.settings.queue in w.queues)

    def close(self) -> None:
        """Close the Redis connections."""
        self.redis.close()


def _safe(exc: BaseException | str) -> str:
    """An error message without credentials (redis-py may echo the URL)."""
    from ..config import redact

    return redact(str(exc))
