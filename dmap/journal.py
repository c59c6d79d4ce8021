"""The journal: durable records of executions and Map Runs, for describe/list/stop/redrive.

What the control plane reads. One protocol, two implementations: :class:`MemoryJournal` (the
local backend: this process only) and :class:`RedisJournal` (the celery backend: any machine that
reaches the Redis, kept for ``DMAP_RETENTION_DAYS`` after an execution ends). Live item counts of
a RUNNING Map Run come from the run store, not from here.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict
from typing import Any, Protocol

import redis

from .interpreter.context import execution_arn
from .records import Execution, ExecutionStatus, MapRun, MapRunStatus

_GLOB = re.compile(r"[*?\[\]\\]")
"""The characters a Redis MATCH pattern treats as glob syntax (escaped in a name matched literally)."""


def execution_to_dict(execution: Execution) -> dict[str, Any]:
    """An execution record as plain JSON data (its Map Runs by ARN)."""
    data = asdict(execution)
    data["status"] = str(execution.status)
    data["map_runs"] = [m.map_run_arn for m in execution.map_runs]
    return data


def map_run_to_dict(map_run: MapRun) -> dict[str, Any]:
    """A Map Run record as plain JSON data."""
    data = asdict(map_run)
    data["status"] = str(map_run.status)
    return data


def map_run_from_dict(data: dict[str, Any]) -> MapRun:
    """Rebuild a Map Run record."""
    return MapRun(**{**data, "status": MapRunStatus(data["status"])})


class Journal(Protocol):
    """Where execution and Map Run records live."""

    def save_execution(self, execution: Execution, *, definition: dict[str, Any] | None = None) -> None:
        """Create or update an execution record (and, once, its definition)."""
        ...

    def execution(self, arn: str) -> Execution | None:
        """An execution by ARN, with its Map Runs."""
        ...

    def definition(self, arn: str) -> dict[str, Any] | None:
        """The definition an execution ran (for redrive)."""
        ...

    def executions(self, *, limit: int = 100) -> list[Execution]:
        """The most recent executions first."""
        ...

    def executions_page(self, *, limit: int = 100, after: Any = None) -> tuple[list[Execution], Any]:
        """One page of :meth:`executions`: those after ``after``, and where the next page starts (None: no more).

        ``after`` is a value this method returned (JSON-able), never built by callers.
        """
        ...

    def has_executions_of(self, state_machine: str) -> bool:
        """Whether any execution of the state machine named ``state_machine`` is kept."""
        ...

    def save_map_run(self, map_run: MapRun) -> None:
        """Create or update a Map Run record."""
        ...

    def map_run(self, arn: str) -> MapRun | None:
        """A Map Run by ARN."""
        ...

    def request_stop(self, arn: str, *, error: str | None = None, cause: str | None = None) -> None:
        """Ask a running execution to stop (its coordinator and interpreter poll this), with StopExecution's reason."""
        ...

    def stop_requested(self, arn: str) -> bool:
        """True once :meth:`request_stop` was called for the execution."""
        ...

    def stop_reason(self, arn: str) -> tuple[str | None, str | None] | None:
        """``(error, cause)`` given to :meth:`request_stop`; None without a request or when it gave neither."""
        ...

    def clear_stop(self, arn: str) -> None:
        """Forget a stop request (before a redrive)."""
        ...


class MemoryJournal:
    """A journal in this process's memory (the local backend)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executions: dict[str, dict[str, Any]] = {}
        self._definitions: dict[str, dict[str, Any]] = {}
        self._map_runs: dict[str, dict[str, Any]] = {}
        self._stops: dict[str, tuple[str | None, str | None]] = {}

    def save_execution(self, execution: Execution, *, definition: dict[str, Any] | None = None) -> None:
        """Create or update an execution record."""
        with self._lock:
            self._executions[execution.execution_arn] = execution_to_dict(execution)
            if definition is not None:
                self._definitions[execution.execution_arn] = definition

    def execution(self, arn: str) -> Execution | None:
        """An execution by ARN."""
        with self._lock:
            data = self._executions.get(arn)
            runs = [self._map_runs[a] for a in (data or {}).get("map_runs", []) if a in self._map_runs]
        return _execution_from(data, runs) if data else None

    def definition(self, arn: str) -> dict[str, Any] | None:
        """The definition an execution ran."""
        with self._lock:
            return self._definitions.get(arn)

    def executions(self, *, limit: int = 100) -> list[Execution]:
        """The most recent executions first."""
        return self.executions_page(limit=limit)[0]

    def executions_page(self, *, limit: int = 100, after: Any = None) -> tuple[list[Execution], Any]:
        """One page of :meth:`executions`, ordered by (start date, ARN) descending; ``after`` is such a pair."""
        with self._lock:
            order = sorted(((self._executions[a]["start_date"], a) for a in self._executions), reverse=True)
        if after is not None:
            mark = (str(after[0]), str(after[1]))
            order = [key for key in order if key < mark]
        page = order[:limit]
        found = [e for e in (self.execution(a) for _, a in page) if e is not None]
        return found, (list(page[-1]) if len(order) > limit and page else None)

    def has_executions_of(self, state_machine: str) -> bool:
        """Whether any execution of ``state_machine`` is kept."""
        with self._lock:
            return any(d["state_machine_name"] == state_machine for d in self._executions.values())

    def save_map_run(self, map_run: MapRun) -> None:
        """Create or update a Map Run record."""
        with self._lock:
            self._map_runs[map_run.map_run_arn] = map_run_to_dict(map_run)

    def map_run(self, arn: str) -> MapRun | None:
        """A Map Run by ARN."""
        with self._lock:
            data = self._map_runs.get(arn)
        return map_run_from_dict(data) if data else None

    def request_stop(self, arn: str, *, error: str | None = None, cause: str | None = None) -> None:
        """Ask a running execution to stop."""
        with self._lock:
            self._stops[arn] = (error, cause)

    def stop_requested(self, arn: str) -> bool:
        """True once a stop was requested."""
        return arn in self._stops

    def stop_reason(self, arn: str) -> tuple[str | None, str | None] | None:
        """The error and cause of the stop request, if it gave either."""
        reason = self._stops.get(arn)
        return reason if reason is not None and reason != (None, None) else None

    def clear_stop(self, arn: str) -> None:
        """Forget a stop request."""
        with self._lock:
            self._stops.pop(arn, None)


class RedisJournal:
    """A journal in Redis, shared by every machine of a cluster (the celery backend)."""

    def __init__(self, client: redis.Redis, prefix: str = "dmap", retention_seconds: int = 90 * 86400) -> None:
        self.client, self.prefix, self.retention = client, prefix, retention_seconds

    def _key(self, kind: str, arn: str = "") -> str:
        return f"{self.prefix}:j:{kind}:{arn}" if arn else f"{self.prefix}:j:{kind}"

    def save_execution(self, execution: Execution, *, definition: dict[str, Any] | None = None) -> None:
        """Create or update an execution record; finished ones expire after the retention period."""
        data = execution_to_dict(execution)
        pipe = self.client.pipeline()
        key = self._key("x", execution.execution_arn)
        pipe.set(key, json.dumps(data, default=str))
        pipe.zadd(self._key("xs"), {execution.execution_arn: _score(execution.start_date)})
        if definition is not None:
            pipe.set(self._key("d", execution.execution_arn), json.dumps(definition))
        if execution.status != ExecutionStatus.RUNNING:
            pipe.expire(key, self.retention)
            pipe.expire(self._key("d", execution.execution_arn), self.retention)
        pipe.execute()

    def execution(self, arn: str) -> Execution | None:
        """An execution by ARN."""
        text = self.client.get(self._key("x", arn))
        if text is None:
            return None
        data = json.loads(text)
        runs = [r for r in (self._map_run_data(a) for a in data.get("map_runs", [])) if r is not None]
        return _execution_from(data, runs)

    def definition(self, arn: str) -> dict[str, Any] | None:
        """The definition an execution ran."""
        text = self.client.get(self._key("d", arn))
        return json.loads(text) if text else None

    def executions(self, *, limit: int = 100) -> list[Execution]:
        """The most recent executions first (expired ones are pruned from the index)."""
        return self.executions_page(limit=limit)[0]

    def executions_page(self, *, limit: int = 100, after: Any = None) -> tuple[list[Execution], Any]:
        """One page of :meth:`executions`: ``ZREVRANGEBYSCORE`` of the start-date index with ``LIMIT``.

        ``after`` is ``[score, arn]`` of the last execution of the previous page; executions of the
        same start date follow in reverse ARN order (the sorted set's own), so none is skipped or repeated.
        """
        index = self._key("xs")
        high, offset = ("+inf", 0) if after is None else (repr(float(after[0])), 0)
        found: list[Execution] = []
        last: list[Any] | None = None
        more = False
        while not more:
            want = limit - len(found) + 1  # one more: whether a next page exists
            rows: Any = self.client.zrevrangebyscore(index, high, "-inf", start=offset, num=want, withscores=True)
            offset += len(rows)
            for raw, score in rows:
                arn = raw.decode() if isinstance(raw, bytes) else str(raw)
                if after is not None and score == float(after[0]) and arn >= str(after[1]):
                    continue  # the previous page's (same start date, ARN not below its last)
                if len(found) == limit:
                    more = True
                    break
                execution = self.execution(arn)
                if execution is None:
                    self.client.zrem(index, arn)  # expired: pruned from the index
                    offset -= 1
                    continue
                found.append(execution)
                last = [score, arn]
            if len(rows) < want:
                break
        return found, (last if more else None)

    def has_executions_of(self, state_machine: str) -> bool:
        """Whether any execution of ``state_machine`` is kept: a ``ZSCAN`` of the index for its ARNs (stops at the
        first one whose record has not expired; reads the whole index only when there is none)."""
        prefix = execution_arn(state_machine, "")  # ...:execution:<state_machine>:
        pattern = _GLOB.sub(r"\\\g<0>", prefix) + "*"
        for raw, _ in self.client.zscan_iter(self._key("xs"), match=pattern, count=1000):
            arn = raw.decode() if isinstance(raw, bytes) else str(raw)
            # Execution names hold no ':': a longer state machine name sharing the prefix does not count.
            if ":" not in arn[len(prefix) :] and self.client.exists(self._key("x", arn)):
                return True
        return False

    def save_map_run(self, map_run: MapRun) -> None:
        """Create or update a Map Run record."""
        key = self._key("m", map_run.map_run_arn)
        self.client.set(key, json.dumps(map_run_to_dict(map_run), default=str), ex=self.retention)

    def _map_run_data(self, arn: str) -> dict[str, Any] | None:
        text = self.client.get(self._key("m", arn))
        return json.loads(text) if text else None

    def map_run(self, arn: str) -> MapRun | None:
        """A Map Run by ARN."""
        data = self._map_run_data(arn)
        return map_run_from_dict(data) if data else None

    def request_stop(self, arn: str, *, error: str | None = None, cause: str | None = None) -> None:
        """Ask a running execution to stop; the value is the reason as JSON (the coordinator's worker reads it)."""
        reason = json.dumps({"error": error, "cause": cause})
        self.client.set(self._key("stop", arn), reason, ex=self.retention)

    def stop_requested(self, arn: str) -> bool:
        """True once a stop was requested."""
        return bool(self.client.exists(self._key("stop", arn)))

    def stop_reason(self, arn: str) -> tuple[str | None, str | None] | None:
        """The error and cause of the stop request, if it gave either (an older dmap's request, ``"1"``, gave none)."""
        text = self.client.get(self._key("stop", arn))
        try:
            data = json.loads(text) if text else None
        except ValueError:
            return None
        if not isinstance(data, dict) or (data.get("error") is None and data.get("cause") is None):
            return None
        return data.get("error"), data.get("cause")

    def clear_stop(self, arn: str) -> None:
        """Forget a stop request."""
        self.client.delete(self._key("stop", arn))


def _score(date: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _execution_from(data: dict[str, Any], runs: list[dict[str, Any]]) -> Execution:
    fields = {k: v for k, v in data.items() if k != "map_runs"}
    fields["status"] = ExecutionStatus(fields["status"])
    return Execution(**fields, map_runs=[map_run_from_dict(r) for r in runs])
