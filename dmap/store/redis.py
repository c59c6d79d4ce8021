"""The Redis run store: the semaphore, the aggregator and the child records as Lua scripts on Redis.

This module owns :class:`RedisRunStore`, the :class:`~dmap.store.RunStore` of the celery backend
and of anything that must survive a process crash. Every mutation is one Lua script from
``dmap/lua/`` (atomic, timed by the Redis ``TIME`` clock, never a client clock); reads are plain
commands. Key names come from :mod:`dmap.keys`; all keys of a run share a ``{run}`` hash tag so a
Redis Cluster keeps them in one slot. The scripts bound their work per call (256 reclaims, 500
renewals or results, 8,192 statuses scanned by a redrive step); this module splits larger requests.
It does not dispatch Celery tasks and keeps no state of its own besides cached key names.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis

from ..errors import ConfigurationError, NotFoundError
from ..keys import DEFAULT_PREFIX, WAKE_INDEX, run_keys
from . import (
    ABORTED,
    RUN,
    STALE,
    Acquired,
    ChildSpec,
    ChildStatus,
    Completed,
    Counts,
    Done,
    Lease,
    RunConfig,
    RunCounts,
    Started,
    TotalMismatch,
    record_error,
)
from .activity import RunActivity, parse_fields

_SCRIPTS = (
    "create",
    "update_config",
    "acquire",
    "start",
    "renew",
    "complete",
    "set_total",
    "declare_total",
    "abort",
    "take_results",
    "record_marks",
    "redrive",
    "expire",
    "requeue",
    "close",
    "step",
    "release",
)
_RENEW_BATCH = 500
_RESULTS_BATCH = 500
_FAILURES_BATCH = 500
_REDRIVE_CHUNK = 500  # failure-index entries per redrive step (a few ms of Lua; tens on a loaded machine)
_MAX_REDO = 1000  # redo entries examined per acquire; the script wakes the coordinator for more
_STATUSES = tuple(ChildStatus)
_STALE = Started(STALE)
_TEXT_FIELDS = frozenset(("abort", "tp", "cr", "aq"))  # run-hash fields that are not counts
_COUNT_KEYS = ("running", "succeeded", "failed", "timedOut", "aborted")


@cache
def _script_text(name: str) -> str:
    lua = resources.files("dmap") / "lua"
    return (lua / "_lib.lua").read_text("utf-8") + "\n" + (lua / f"{name}.lua").read_text("utf-8")


def _started(reply: Sequence[Any]) -> Started:
    """A start's outcome from the reply of ``start_child`` in ``_lib.lua``: {1, input, attempt, first, items}
    = RUN, {2} = ABORTED, {0} = STALE."""
    code = int(reply[0])
    if code == 1:
        return Started(RUN, _text(reply[1]), int(reply[2]), int(reply[3]), int(reply[4]))
    return Started(ABORTED) if code == 2 else _STALE


def _done_args(done: Done | None) -> tuple[Any, ...]:
    """step.lua's five completion arguments for ``done`` (all empty when there is none).

    Raises:
        ValueError: ``done.status`` is not terminal.
    """
    if done is None:
        return ("", "", "", "", "")
    if not done.status.terminal:
        raise ValueError(f"complete needs a terminal status, got {done.status.name}")
    error = "" if done.status is ChildStatus.SUCCEEDED else record_error(done.record)
    return (done.child, done.token, int(done.status), done.record, error)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


class RedisRunStore:
    """A :class:`~dmap.store.RunStore` on Redis (standalone, TLS or a Cluster: one slot per run).

    Args:
        client: A redis-py client that returns bytes (``decode_responses=False``, the default):
            the per-child statuses are binary.
        prefix: The prefix of every key (several dmap installations may share one Redis).

    Raises:
        ConfigurationError: The client decodes responses.
    """

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        if client.get_encoder().decode_responses:
            raise ConfigurationError("RedisRunStore needs a Redis client with decode_responses=False")
        self.client = client
        self.prefix = prefix
        self._scripts = {name: client.register_script(_script_text(name)) for name in _SCRIPTS}
        self._keys: dict[str, list[str]] = {}
        self._blocker: redis.Redis | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX, **kwargs: Any) -> RedisRunStore:
        """A store on the Redis at ``url`` (``redis://``, ``rediss://`` TLS, passwords, ``/db``).

        Args:
            url: Any URL :meth:`redis.Redis.from_url` accepts.
            prefix: The prefix of every key.
            **kwargs: More client options (``socket_timeout``, ``ssl_ca_certs``...).
        """
        return cls(redis.Redis.from_url(url, **kwargs), prefix)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()
        if self._blocker is not None:
            self._blocker.close()

    def _k(self, run: str) -> list[str]:
        keys = self._keys.get(run)
        if keys is None:
            if len(self._keys) > 1024:
                self._keys.clear()
            keys = self._keys[run] = run_keys(self.prefix, run)
        return keys

    def _call(self, name: str, run: str, *args: Any) -> Any:
        return self._scripts[name](keys=self._k(run), args=args)

    # -- configuration ------------------------------------------------------------------------

    def create_run(self, run: str, config: RunConfig) -> bool:
        """Create the run's state if absent; False when it already existed (a resume)."""
        c = config
        args = (c.max_concurrency, c.tolerated_failure_count, repr(float(c.tolerated_failure_percentage)))
        return bool(self._call("create", run, *args, c.max_attempts))

    def config(self, run: str) -> RunConfig | None:
        """The run's current configuration, or None if the run is unknown."""
        mc, tc, tp, ma = self.client.hmget(self._k(run)[0], ["mc", "tc", "tp", "ma"])
        if mc is None:
            return None
        return RunConfig(int(mc), _int(tc), float(tp or 0), _int(ma, 3))

    def update_config(
        self,
        run: str,
        *,
        max_concurrency: int | None = None,
        tolerated_failure_count: int | None = None,
        tolerated_failure_percentage: float | None = None,
    ) -> None:
        """Change limits of a live run; re-checks the tolerance and wakes the coordinator.

        Raises:
            NotFoundError: The run does not exist.
        """
        pct = "" if tolerated_failure_percentage is None else repr(float(tolerated_failure_percentage))
        mc = "" if max_concurrency is None else max_concurrency
        tc = "" if tolerated_failure_count is None else tolerated_failure_count
        if self._call("update_config", run, mc, tc, pct) == -1:
            raise NotFoundError("Map Run", run)

    def set_total(self, run: str, *, items: int, children: int) -> bool:
        """Declare the totals once; True if the percentage tolerance now aborts the run.

        Raises:
            NotFoundError: The run does not exist.
            TotalMismatch: Other totals were declared before, or fewer than were already granted.
        """
        result = self._call("set_total", run, items, children)
        if isinstance(result, list):  # the script refused: {known_items, known_children, granted_items, granted...}
            it, et, ci, cc = (_int(v, -1) for v in result)
            known = None if it < 0 else (it, et)
            raise TotalMismatch(run, (items, children), known, (ci, cc))
        if result == -1:
            raise NotFoundError("Map Run", run)
        return bool(result)

    def declare_total(self, run: str, *, items: int, children: int | None = None) -> bool:
        """Declare the source's totals ahead of the reader (first declaration wins); True if this aborts the run.

        Raises:
            NotFoundError: The run does not exist.
        """
        result = self._call("declare_total", run, items, "" if children is None else children)
        if result == -1:
            raise NotFoundError("Map Run", run)
        return bool(result)

    def totals(self, run: str) -> tuple[int, int] | None:
        """The declared ``(items, children)`` totals, or None while unknown."""
        it, et = self.client.hmget(self._k(run)[0], ["it", "et"])
        return None if it is None else (int(it), _int(et))

    def abort(self, run: str, reason: str) -> bool:
        """Set the abort flag with ``reason`` unless set; wakes the coordinator."""
        return bool(self._call("abort", run, reason))

    def aborted(self, run: str) -> str | None:
        """The abort reason, or None while the run is not aborted."""
        value = self.client.hget(self._k(run)[0], "abort")
        return None if value is None else _text(value)

    # -- the semaphore ------------------------------------------------------------------------

    def acquire(self, run: str, children: Sequence[ChildSpec], *, dispatch_lease_ms: int, stage: int = 0) -> Acquired:
        """Reclaim expired leases, then grant permits to redo children first, then to ``children``.

        With every permit out, up to ``stage`` more of ``children`` wait on the redo list without a
        lease (counted in ``granted_new``): workers take them as they free permits (:meth:`step_take`).

        Raises:
            NotFoundError: The run does not exist.
        """
        args: list[Any] = [dispatch_lease_ms, secrets.token_hex(4), _MAX_REDO, max(0, stage)]
        for s in children:
            args += (s.child, s.first, s.items, s.cursor, s.input)
        out = self._call("acquire", run, *args)
        if out == -1:
            raise NotFoundError("Map Run", run)
        leases = [Lease(int(out[i]), _text(out[i + 1]), int(out[i + 2])) for i in range(5, len(out), 3)]
        return Acquired(leases, int(out[0]), int(out[1]), int(out[2]), int(out[3]), int(out[4]))

    def wait(self, run: str, timeout_ms: int) -> str | None:
        """Block on the run's wake list (``BLPOP``) until a token arrives or ``timeout_ms`` passes.

        ``timeout_ms <= 0`` does not block. With a client ``socket_timeout``, the wait runs on a
        separate connection pool without one.
        """
        key = self._k(run)[WAKE_INDEX]
        if timeout_ms <= 0:
            value = self.client.lpop(key)
            return None if value is None else _text(value)
        popped = self._blocking().blpop([key], timeout=timeout_ms / 1000)
        return None if popped is None else _text(popped[1])

    def _blocking(self) -> redis.Redis:
        # BLPOP outlives a short socket_timeout (Redis checks blocking timeouts only every 100 ms
        # or so): blocking calls get their own pool with the same settings but no read timeout.
        if self._blocker is None:
            pool = self.client.connection_pool
            if not pool.connection_kwargs.get("socket_timeout"):
                return self.client
            kwargs = {**pool.connection_kwargs, "socket_timeout": None, "socket_keepalive": True}
            self._blocker = redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))
        return self._blocker

    # -- workers ------------------------------------------------------------------------------

    def start(self, run: str, child: int, token: str, *, lease_ms: int, worker: str = "") -> Started:
        """RUN (with the input) if ``token`` holds the child's lease and the child is pending; else STALE/ABORTED."""
        return _started(self._call("start", run, child, token, lease_ms, worker))

    def renew(self, run: str, leases: Sequence[tuple[int, str]], *, lease_ms: int) -> list[bool]:
        """Extend the leases still held by these tokens; False for a lost one (never re-created)."""
        result: list[bool] = []
        for i in range(0, len(leases), _RENEW_BATCH):
            args: list[Any] = [lease_ms]
            for child, token in leases[i : i + _RENEW_BATCH]:
                args += (child, token)
            result += [bool(v) for v in self._call("renew", run, *args)]
        return result

    def complete(self, run: str, child: int, token: str, status: ChildStatus, record: str) -> Completed:
        """Record the child's first terminal result, release the token's own lease, check the tolerance.

        Raises:
            ValueError: ``status`` is not terminal.
        """
        if not status.terminal:
            raise ValueError(f"complete needs a terminal status, got {status.name}")
        error = "" if status is ChildStatus.SUCCEEDED else record_error(record)
        recorded, aborted = self._call("complete", run, child, token, int(status), record, error)
        return Completed(bool(recorded), bool(aborted))

    def step(
        self,
        run: str,
        *,
        done: Done | None,
        start: tuple[int, str] | None,
        lease_ms: int,
        worker: str = "",
        renew: Sequence[tuple[int, str]] = (),
    ) -> tuple[Completed | None, Started | None, list[bool]]:
        """Renew, complete, start: :func:`dmap.store.step` in one Lua call (``step.lua``).

        Raises:
            ValueError: ``done.status`` is not terminal, or more than 500 renewals.
        """
        if len(renew) > _RENEW_BATCH:
            raise ValueError(f"step renews at most {_RENEW_BATCH} leases, got {len(renew)}")
        args: list[Any] = [lease_ms, worker, *_done_args(done)]
        args += ("", "") if start is None else (start[0], start[1])
        for child, token in renew:
            args += (child, token)
        out = self._call("step", run, *args)
        completed = None if done is None else Completed(bool(out[0]), bool(out[1]))
        renewed = [bool(v) for v in out[2 : 2 + len(renew)]]
        started: Started | None = None
        if start is not None:
            started = _started(out[2 + len(renew) :])
        return completed, started, renewed

    def step_take(
        self,
        run: str,
        *,
        done: Done | None,
        nonce: str,
        lease_ms: int,
        worker: str = "",
    ) -> tuple[Completed | None, tuple[int, str, Started] | None]:
        """Complete ``done``, then take the next staged child for this worker and start it: one ``step.lua`` call.

        The take is a grant (a free permit under MaxConcurrency, a new token ``<attempt>-<nonce>``)
        and a start, so the child comes back RUNNING with its input; None when no permit is free, the
        run is aborted or no child waits (staged by :meth:`acquire`, or given back). ``nonce`` must be
        new for every call (tokens fence a child's attempts).

        Raises:
            ValueError: ``done.status`` is not terminal.
        """
        args: list[Any] = [lease_ms, worker, *_done_args(done)]
        args += ("+", nonce)
        out = self._call("step", run, *args)
        completed = None if done is None else Completed(bool(out[0]), bool(out[1]))
        if len(out) <= 2:
            return completed, None
        child, token = int(out[-2]), _text(out[-1])
        return completed, (child, token, _started(out[2:-2]))

    def release(self, run: str, leases: Sequence[tuple[int, str]]) -> int:
        """Give back unstarted children of a pack: :func:`dmap.store.release` (``release.lua``)."""
        n = 0
        for i in range(0, len(leases), _RENEW_BATCH):
            args: list[Any] = []
            for child, token in leases[i : i + _RENEW_BATCH]:
                args += (child, token)
            n += int(self._call("release", run, *args))
        return n

    # -- reads --------------------------------------------------------------------------------

    def close_aborted(self, run: str) -> int:
        """Record every child still holding a lease ABORTED and drop every lease (aborted runs only)."""
        return max(0, int(self._call("close", run)))

    def cursor(self, run: str) -> tuple[int | str, int, int]:
        """``(reader_cursor, next_child, next_item)`` as last stored by :meth:`acquire`."""
        cr, cc, ci = self.client.hmget(self._k(run)[0], ["cr", "cc", "ci"])
        reader = _text(cr) if cr is not None else "0"
        # acquire.lua stores the cursor as sent: digits for a source read by index, else a reader position.
        return (int(reader) if reader.isdigit() else reader), _int(cc), _int(ci)

    def counts(self, run: str) -> RunCounts:
        """The run's item and execution counts now (zeros for an unknown run), read atomically."""
        keys = self._k(run)
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys[0])
        pipe.zcard(keys[2])
        raw, leases = pipe.execute()
        h = {_text(k): int(float(v)) for k, v in raw.items() if _text(k) not in _TEXT_FIELDS}
        if "mc" not in h:
            return RunCounts()
        # Final totals once the reader is exhausted, else declared ones (a count), else what was read so far.
        items_total = h["it"] if "it" in h else max(h.get("dt", 0), h.get("ci", 0))
        children_total = h["et"] if "et" in h else max(h.get("dc", 0), h.get("cc", 0))
        return RunCounts(
            items=_counts(h, "i", items_total),
            executions=_counts(h, "e", children_total),
            reclaimed=h.get("rec", 0),
            duplicates=h.get("dup", 0),
            leases=int(leases),
            total_known="it" in h or "dt" in h,
        )

    def statuses(self, run: str, first_child: int, count: int) -> list[ChildStatus]:
        """The statuses of ``count`` children from ``first_child`` (PENDING beyond the known ones)."""
        if count <= 0:
            return []
        last = first_child + count - 1
        raw: bytes = self.client.getrange(self._k(run)[1], first_child // 2, last // 2) or b""  # type: ignore[assignment]
        out = []
        for c in range(first_child, last + 1):
            i = c // 2 - first_child // 2
            byte = raw[i] if i < len(raw) else 0
            out.append(_STATUSES[byte >> 4 if c % 2 == 0 else byte & 15])
        return out

    def take_results(self, run: str, first_child: int, limit: int) -> list[str]:
        """Remove and return the records of the contiguous finished children from ``first_child``."""
        out: list[str] = []
        while len(out) < limit:
            want = min(_RESULTS_BATCH, limit - len(out))
            batch = self._call("take_results", run, first_child + len(out), want)
            out += [_text(r) for r in batch]
            if len(batch) < want:
                break
        return out

    def requeue_unstarted(self, run: str) -> int:
        """Expire the leases of granted children that never started (no attempt counted)."""
        return int(self._call("requeue", run))

    def record_marks(self, run: str, first_child: int, count: int) -> str:
        """One character per child from ``first_child``: ``-`` not finished, ``r`` record here, ``w`` written."""
        return _text(self._call("record_marks", run, first_child, count))

    def read_results(self, run: str, first_child: int, limit: int) -> list[str]:
        """The records of the contiguous finished children from ``first_child``, left in place (plain HMGETs)."""
        res = self._k(run)[7]
        out: list[str] = []
        while len(out) < limit:
            want = min(_RESULTS_BATCH, limit - len(out))
            start = first_child + len(out)
            batch = self.client.hmget(res, [str(c) for c in range(start, start + want)])
            for record in batch:
                if record is None:
                    return out
                out.append(_text(record))
        return out

    def failures(
        self, run: str, *, error: str | None = None, after: int | None = None, limit: int | None = None
    ) -> Iterator[str]:
        """The records of failed, timed-out and aborted children by child number (``error``, ``after`` filter).

        Pages of the failure indexes (ZRANGEBYSCORE / ZRANGEBYLEX with LIMIT), each followed by one
        HMGET of its records; the pages are no larger than ``limit``, so a page of 10 reads 10.
        """
        keys = self._k(run)
        left = limit if limit is not None else -1
        if error is None:
            low: str = "-inf" if after is None else f"({after}"
            while left != 0:
                size = _FAILURES_BATCH if left < 0 else min(left, _FAILURES_BATCH)
                children: list[Any] = self.client.zrangebyscore(keys[9], low, "+inf", start=0, num=size)
                records = list(self._failure_records(keys, children))
                yield from records
                left = left - len(records) if left > 0 else left
                if len(children) < size:
                    return
                low = "(" + _text(children[-1])
        else:
            name = error.replace("\n", " ") + "\n"
            lex_low = "[" + name if after is None else "(" + name + f"{after:012d}"
            while left != 0:
                size = _FAILURES_BATCH if left < 0 else min(left, _FAILURES_BATCH)
                high = "[" + name + "\xff"
                members: list[Any] = self.client.zrangebylex(keys[10], lex_low, high, start=0, num=size)
                records = list(self._failure_records(keys, [_text(m)[len(name) :].lstrip("0") or "0" for m in members]))
                yield from records
                left = left - len(records) if left > 0 else left
                if len(members) < size:
                    return
                lex_low = "(" + _text(members[-1])

    def _failure_records(self, keys: list[str], children: Sequence[Any]) -> Iterator[str]:
        if not children:
            return
        for value in self.client.hmget(keys[8], [_text(c) for c in children]):
            if value is not None:
                yield _text(value).split("\n", 1)[1]

    def failure_count(self, run: str, *, error: str | None = None) -> int:
        """How many failure records there are (``error`` filters): one ZCARD/ZLEXCOUNT on the failure indexes."""
        keys = self._k(run)
        if error is None:
            return int(self.client.zcard(keys[9]))
        name = error.replace("\n", " ") + "\n"
        return int(self.client.zlexcount(keys[10], "[" + name, "[" + name + "\xff"))

    def failure_errors(self, run: str, *, limit: int = 50) -> list[tuple[str, int]]:
        """The distinct ``Error`` names with their counts: per name, one ZRANGEBYLEX to find it and one ZLEXCOUNT.

        The error index sorts by name, so the next name starts after ``"<name>\\n\\xff"``.
        """
        key = self._k(run)[10]
        out: list[tuple[str, int]] = []
        low = "-"
        while len(out) < limit:
            found: list[Any] = self.client.zrangebylex(key, low, "+", start=0, num=1)
            if not found:
                break
            name = _text(found[0]).rsplit("\n", 1)[0]
            out.append((name, int(self.client.zlexcount(key, "[" + name + "\n", "[" + name + "\n\xff"))))
            low = "(" + name + "\n\xff"
        return out

    def activity(self, run: str) -> RunActivity:
        """Items finished per time bucket and the histogram of child run times: one HGETALL of the ``act`` hash."""
        raw: dict[Any, Any] = self.client.hgetall(self._k(run)[11])
        return parse_fields({_text(k): int(v) for k, v in raw.items()})

    def child_input(self, run: str, child: int) -> str | None:
        """The stored input of a child (kept for children that did not succeed)."""
        value = self.client.hget(self._k(run)[4], str(child))
        return None if value is None else _text(value)

    # -- lifecycle ----------------------------------------------------------------------------

    def reset_for_redrive(self, run: str) -> int:
        """Make every FAILED, TIMED_OUT and ABORTED child PENDING again, re-queue it, clear the abort flag.

        Walks the failure index (every such child is in it) in pages of ``_REDRIVE_CHUNK``, one atomic
        script per page: the work and the round trips follow the failures, not the run's size (10,000
        failures of a 1,000,000-child run: 21 calls), and no call blocks Redis for long. Run it while no
        coordinator runs.

        Raises:
            NotFoundError: The run does not exist.
        """
        reset, after, first = 0, -1, True
        while True:
            out = self._call("redrive", run, after, _REDRIVE_CHUNK, "1" if first else "0")
            if out == -1:
                raise NotFoundError("Map Run", run)
            reset += int(out[0])
            if int(out[1]) < _REDRIVE_CHUNK:
                return reset
            after, first = int(out[2]), False

    def delete_run(self, run: str) -> None:
        """Remove all state of the run (one ``DEL`` of its keys)."""
        self.client.delete(*self._k(run))

    def expire_run(self, run: str, seconds: float) -> None:
        """Let every key of the run expire ``seconds`` from now (retention of finished runs)."""
        self._call("expire", run, max(1, int(seconds)))


def _counts(h: dict[str, int], kind: str, total: int) -> Counts:
    running, succeeded, failed, timed_out, aborted = (h.get(f"{kind}{code}", 0) for code in range(1, 6))
    return Counts(
        pending=total - running - succeeded - failed - timed_out - aborted,
        running=running,
        succeeded=succeeded,
        failed=failed,
        timedOut=timed_out,
        aborted=aborted,
        total=total,
        resultsWritten=h.get(f"{kind}w", 0),
    )
