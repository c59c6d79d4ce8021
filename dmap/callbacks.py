"""Task tokens across processes: SendTaskSuccess/Failure/Heartbeat and the tasks that wait for them.

Owns the host side of the callback pattern (the interpreter's side is
:mod:`dmap.interpreter.callbacks`): the public verbs :func:`send_task_success`,
:func:`send_task_failure` and :func:`send_task_heartbeat`; the Redis token services of the celery
backend — :class:`RedisTokens` for a task that waits in its thread (a top-level execution's, whose
token is stored by where the task is, so a coordinator that restarts finds the same task again) and
:class:`ChildTokens` for a distributed child's, which *parks*: the child keeps its lease and its
MaxConcurrency permit, stays RUNNING in the counts, and its worker slot is freed; the answer
resumes it on any worker (:func:`resume_child`); and the :class:`Sweeper` that enforces
TimeoutSeconds and HeartbeatSeconds of parked tasks. It does not run workflows.

A task's record is a Redis HASH (:func:`dmap.keys.callback_key`) with the fields ``st`` (WAITING,
ANSWERED, PARKED, RESUMING, DONE, CLOSED), ``ans`` (the answer, JSON), ``t0``/``beat`` (ms),
``to``/``hb`` (seconds, ``""`` when unset), ``state``, ``exec``, and for a child ``run``, ``child``,
``ct`` (its store token), ``q`` (the queue to resume it on) and ``resume`` (state, input, variables,
Retry attempts: what it re-enters the Task state with).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from .errors import InvalidOutput, InvalidToken, TaskDoesNotExist, TaskTimedOut
from .interpreter.callbacks import (
    Answer,
    Parked,
    Resume,
    TokenRequest,
    decode_token,
    local_tokens,
    new_token,
)
from .interpreter.dataflow import compact, parse
from .keys import (
    callback_children_key,
    callback_due_key,
    callback_key,
    callback_task_key,
    run_keys,
)

logger = logging.getLogger(__name__)

RESUME_TASK = "dmap.resume_child"
"""The Celery task that resumes a parked child."""

PARKED_LEASE_MS = 400 * 86_400_000
"""A parked child's lease: longer than any execution may run (a STANDARD one: a year)."""

_ERROR_MOST, _CAUSE_MOST = 256, 32_768  # AWS's limits for SendTaskFailure


# -- the public verbs -----------------------------------------------------------------------------


def send_task_success(token: str, output: Any, *, backend: Any = None) -> None:
    """Complete a task waiting for its token (``.waitForTaskToken``) with ``output`` (SendTaskSuccess).

    Args:
        token: The ``$$.Task.Token`` the task handed out.
        output: The task's result: JSON text, as AWS's API takes it, or a JSON value that is not a str.
        backend: The backend the task's execution runs on; None: the token says (a local token is
            found in this process, a Redis one on the celery backend of ``DMAP_REDIS_URL``).

    Raises:
        InvalidToken: The token is not one dmap issued.
        InvalidOutput: ``output`` is not JSON, or is over the payload limit.
        TaskDoesNotExist: No task has this token (never issued on this backend, or expired).
        TaskTimedOut: The task was answered before, timed out, or its execution ended.
    """
    if isinstance(output, str):
        try:
            value = json.loads(output)
        except ValueError as exc:
            raise InvalidOutput(f"Invalid Output: the output is not JSON: {exc}") from None
    else:
        value = output
    try:
        text = compact(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidOutput(f"Invalid Output: the output is not JSON: {exc}") from None
    _answer(token, Answer(output=parse(text)), backend, size=len(text.encode("utf-8")))


def send_task_failure(token: str, error: str | None = None, cause: str | None = None, *, backend: Any = None) -> None:
    """Fail a task waiting for its token with ``error`` and ``cause`` (SendTaskFailure).

    Retry and Catch of the Task state see ``error`` as they see any error (``States.TaskFailed`` when
    none is given, as AWS does).

    Args:
        token: The ``$$.Task.Token`` the task handed out.
        error: The error name (up to 256 characters).
        cause: The cause (up to 32,768 characters).
        backend: As for :func:`send_task_success`.

    Raises:
        InvalidToken, TaskDoesNotExist, TaskTimedOut: As for :func:`send_task_success`.
    """
    answer = Answer(error=(error or "States.TaskFailed")[:_ERROR_MOST], cause=(cause or "")[:_CAUSE_MOST])
    _answer(token, answer, backend)


def send_task_heartbeat(token: str, *, backend: Any = None) -> None:
    """Tell a waiting task its work goes on: its HeartbeatSeconds start again (SendTaskHeartbeat).

    Raises:
        InvalidToken, TaskDoesNotExist, TaskTimedOut: As for :func:`send_task_success`.
    """
    body = decode_token(token)
    if body.get("b") == "m":
        local_tokens.heartbeat(token)
        return
    store = _redis(backend)
    record = callback_key(store.prefix, body["i"], body.get("r"))
    result = _script(store, "cb_top", "_cb")(keys=[record, record + ":w"], args=["", "beat"])
    _raise_for(_text(result[0]))
    due = int(result[1])
    if due >= 0:
        store.client.zadd(callback_due_key(store.prefix), {token: due})


def _answer(token: str, answer: Answer, backend: Any, *, size: int = 0) -> None:
    body = decode_token(token)
    if body.get("b") == "m":
        _check_size(size, None)
        local_tokens.answer(token, answer)
        return
    engine = _celery(backend)
    _check_size(size, engine.settings.payload_limit)
    outcome = deliver(engine, token, body, answer)
    _raise_for(outcome)


def _check_size(size: int, limit: int | None) -> None:
    from .config import get_settings

    most = limit or get_settings().payload_limit
    if size > most:
        raise InvalidOutput(f"Invalid Output: {size} bytes is over the payload limit of {most} bytes")


def _raise_for(outcome: str) -> None:
    if outcome == "missing":
        raise TaskDoesNotExist("Task does not exist anymore")
    if outcome == "closed":
        raise TaskTimedOut("Task Timed Out: 'Provided task does not exist anymore'")


def deliver(engine: Any, token: str, body: dict[str, Any], answer: Answer | None) -> str:
    """Apply an answer (None: a timeout, if it is due) to a Redis task; resume its child if it was parked.

    Returns:
        ``missing``, ``closed``, ``notdue``, ``answered`` or ``resume`` (what happened).
    """
    store = engine.redis
    run = body.get("r")
    record = callback_key(store.prefix, body["i"], run)
    text = answer.to_json() if answer is not None else ""
    if run:
        keys = [*run_keys(store.prefix, run), record, record + ":w"]
        lease = int(engine.settings.dispatch_lease_seconds * 1000)
        result = _script(store, "cb_answer", "_lib", "_cb")(keys=keys, args=[text, lease, "0" if answer else "1"])
    else:
        result = _script(store, "cb_top", "_cb")(
            keys=[record, record + ":w"], args=[text, "answer" if answer else "expire"]
        )
    outcome = _text(result[0])
    if outcome == "notdue":
        store.client.zadd(callback_due_key(store.prefix), {token: int(result[1])})
    elif outcome == "resume":
        child, parked = int(result[1]), _text(result[2])
        queue = _text(store.client.hget(record, "q") or engine.settings.queue)
        engine.app.send_task(RESUME_TASK, args=(run, child, parked, token), queue=queue, ignore_result=True)
    if outcome != "notdue":
        store.client.zrem(callback_due_key(store.prefix), token)
    return outcome


# -- Redis token services -------------------------------------------------------------------------


class RedisTokens:
    """Tasks of one execution that wait in their thread, with tokens in Redis (the celery backend).

    The token of a task is stored under a digest of where the task is (execution, state, history
    event id, item index, retry count), so an execution that runs again after its coordinator died
    reaches the same task and finds its answer, and does not start its work a second time.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.store = engine.redis
        self.retention = max(1, int(engine.settings.retention_days * 86400))

    def _record(self, body: dict[str, Any]) -> str:
        return callback_key(self.store.prefix, body["i"], body.get("r"))

    def token_for(self, key: str, execution: str, state: str) -> str:
        """The stored token of the task at ``key``, or a new one stored for it."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        where = callback_task_key(self.store.prefix, digest)
        client = self.store.client
        client.set(where, new_token("r", execution, state), nx=True, ex=self.retention)
        return _text(client.get(where))

    def _fields(self, token: str, request: TokenRequest) -> dict[str, Any]:
        seconds, micros = self.store.client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        return {
            "st": "WAITING",
            "t0": now,
            "beat": now,
            "to": "" if request.timeout is None else f"{request.timeout:g}",
            "hb": "" if request.heartbeat is None else f"{request.heartbeat:g}",
            "state": request.state,
            "exec": request.execution,
            "tok": token,
        }

    def _index_due(self, token: str, fields: dict[str, Any], request: TokenRequest) -> None:
        deadlines = [
            fields["t0"] + request.timeout * 1000 if request.timeout is not None else None,
            fields["t0"] + request.heartbeat * 1000 if request.heartbeat is not None else None,
        ]
        due = [int(d) for d in deadlines if d is not None]
        if due:
            self.store.client.zadd(callback_due_key(self.store.prefix), {token: min(due)})

    def open(self, token: str, request: TokenRequest) -> bool:
        """Record the task as WAITING; False if it was recorded before (the execution runs again)."""
        record = self._record(decode_token(token))
        client = self.store.client
        if not client.hsetnx(record, "st", "WAITING"):
            return False
        fields = self._fields(token, request)
        pipe = client.pipeline()
        pipe.hset(record, mapping=fields)
        pipe.expire(record, self.retention)
        pipe.execute()
        self._index_due(token, fields, request)
        return True

    def close(self, token: str) -> None:
        """Forget a task whose work could not start."""
        self.store.client.delete(self._record(decode_token(token)))
        self.store.client.zrem(callback_due_key(self.store.prefix), token)

    def wait(self, token: str, request: TokenRequest, check: Callable[[], None]) -> Answer:
        """Block this thread until the task is answered or expires; ``check`` is called about once a second."""
        body = decode_token(token)
        record = self._record(body)
        client = self.store.client
        while True:
            state, answer = client.hmget(record, "st", "ans")
            status = _text(state) if state is not None else ""
            if status in ("ANSWERED", "DONE") and answer is not None:
                client.hset(record, "st", "DONE")
                client.zrem(callback_due_key(self.store.prefix), token)
                return Answer.from_json(answer)
            if not status:  # the record expired (retention) or was removed: nothing will answer it
                return Answer(error="States.Timeout", cause=f"the task {request.state!r} is no longer known")
            deliver(self.engine, token, body, None)  # a timeout that is due ends the wait with its error
            check()
            self.store.client.blpop([record + ":w"], timeout=1)


class ChildTokens(RedisTokens):
    """The tasks of one distributed child on the celery backend: a task at the child's top level parks.

    Args:
        engine: The celery backend.
        run: The Map Run id.
        child: The child number.
        token: The child's store token (its lease).
        start: When the child started (its record's StartDate).
    """

    def __init__(self, engine: Any, run: str, child: int, token: str, start: str) -> None:
        super().__init__(engine)
        self.run, self.child, self.child_token, self.start = run, child, token, start

    def token_for(self, key: str, execution: str, state: str) -> str:
        """A new token naming the child (a re-dispatched child finds its task through the run's index)."""
        return new_token("r", execution, state, r=self.run, c=self.child)

    def open(self, token: str, request: TokenRequest) -> bool:
        """Record the task, with what a resume needs when it can park."""
        record = self._record(decode_token(token))
        fields = self._fields(token, request)
        fields.update({"run": self.run, "child": self.child, "ct": self.child_token, "q": self.engine.settings.queue})
        if request.parkable:
            fields["resume"] = self._resume_point(request)
        self._write_child_record(record, token, fields)
        self._index_due(token, fields, request)
        return True

    def _resume_point(self, request: TokenRequest, **extra: Any) -> str:
        """The resume point a parked child restarts from (JSON text), with ``extra`` fields."""
        return compact(
            {
                "state": request.state,
                "input": request.input,
                "variables": request.variables,
                "attempts": request.attempts,
                "start": self.start,
                **extra,
            }
        )

    def _write_child_record(self, record: str, token: str, fields: dict[str, Any]) -> None:
        """Write a child's task record and note it as the last task the child waited on (in the run's cbc HASH)."""
        children = callback_children_key(self.store.prefix, self.run)
        pipe = self.store.client.pipeline()
        pipe.hset(record, mapping=fields)
        pipe.expire(record, self.retention)
        pipe.hset(children, str(self.child), token)
        pipe.expire(children, self.retention)
        pipe.execute()

    def wait(self, token: str, request: TokenRequest, check: Callable[[], None]) -> Answer:
        """Park the child when the task is at its top level (raises Parked); else wait in this thread."""
        if not request.parkable:
            return super().wait(token, request, check)
        record = self._record(decode_token(token))
        keys = [*run_keys(self.store.prefix, self.run), record]
        parked = self.child_token + "p"
        result = _script(self.store, "cb_park", "_lib")(
            keys=keys, args=[self.child, self.child_token, parked, PARKED_LEASE_MS]
        )
        if int(result[0]) == 1:
            self.store.client.zrem(callback_due_key(self.store.prefix), token)
            return Answer.from_json(result[1])
        raise Parked()

    @property
    def park_after(self) -> float:
        """Seconds of waiting for a rate-limit token beyond which the child parks (``DMAP_FLOW_PARK_SECONDS``)."""
        return float(self.engine.settings.flow_park_seconds)

    def park_for_tokens(self, request: TokenRequest, countdown: float, tokens: dict[str, list[float]]) -> NoReturn:
        """Park the child at a Task whose rate-limit tokens are ``countdown`` seconds or more away; raise Parked.

        The same parking as a task waiting for its token, with the answer known in advance: the
        record is written answered (a placeholder) with the resume point and the tokens held, the
        child parks straight to RESUMING, and its resume message goes out with ``countdown``. Its
        lease runs ``countdown`` plus DMAP_DISPATCH_LEASE_SECONDS: if the message is lost with a
        killed worker, the lease expires, the coordinator dispatches the child again and its new
        start resumes from the same Task (:func:`resume_point`) — nothing before it runs twice.
        """
        token = self.token_for("", request.execution, request.state)
        record = self._record(decode_token(token))
        fields = self._fields(token, request)
        fields.update(
            {
                "run": self.run,
                "child": self.child,
                "ct": self.child_token,
                "q": self.engine.settings.queue,
                "ans": Answer().to_json(),
                "resume": self._resume_point(request, tokens=tokens),
            }
        )
        self._write_child_record(record, token, fields)
        parked = self.child_token + "p"
        lease = int((countdown + self.engine.settings.dispatch_lease_seconds) * 1000)
        keys = [*run_keys(self.store.prefix, self.run), record]
        result = _script(self.store, "cb_park", "_lib")(
            keys=keys, args=[self.child, self.child_token, parked, lease, "RESUMING"]
        )
        if int(result[0]) == 2:  # else the child is no longer this worker's: let go all the same
            self.engine.app.send_task(
                RESUME_TASK,
                args=(self.run, self.child, parked, token),
                queue=self.engine.settings.queue,
                countdown=max(0.0, countdown),
                ignore_result=True,
            )
        raise Parked()


# -- resuming parked children ---------------------------------------------------------------------


def resume_child(engine: Any, run: str, child: int, parked: str, token: str) -> tuple[Any, Resume] | None:
    """Take a parked child back (its resume message arrived): ``(Started, Resume)``, or None if it is not due.

    The child's lease becomes a run lease again; the caller runs it from the resume point with
    :func:`dmap.child.run_resumed` and completes it under ``parked`` (its store token now).
    """
    from .child import worker_id
    from .store import RUN, Started

    plan = engine.plan(run)
    if plan is None:
        return None
    store = engine.redis
    record = callback_key(store.prefix, decode_token(token)["i"], run)
    keys = [*run_keys(store.prefix, run), record]
    result = _script(store, "cb_unpark", "_lib")(keys=keys, args=[child, parked, plan.lease_ms, worker_id()])
    if int(result[0]) != 1:
        return None
    started = Started(RUN, _text(result[1]), int(result[2]), int(result[3]), int(result[4]))
    return started, _resume(token, result[5], result[6])


def resume_point(engine: Any, run: str, child: int) -> Resume | None:
    """A re-dispatched child's answered task, to resume from instead of starting over; None to start over.

    A task the child waited on but that nobody answered is closed: the child runs again from its
    start and hands out a new token (its worker died; the old token now gets TaskTimedOut).
    """
    store = engine.redis
    client = store.client
    token = client.hget(callback_children_key(store.prefix, run), str(child))
    if token is None:
        return None
    text = _text(token)
    record = callback_key(store.prefix, decode_token(text)["i"], run)
    state, answer, resume = client.hmget(record, "st", "ans", "resume")
    if answer is not None and resume is not None:
        client.hset(record, "st", "DONE")
        return _resume(text, resume, answer)
    if state is not None and _text(state) in ("WAITING", "PARKED"):
        client.hset(record, "st", "CLOSED")
    return None


def _resume(token: str, resume: Any, answer: Any) -> Resume:
    blob = json.loads(resume)
    return Resume(
        state=blob["state"],
        token=token,
        answer=Answer.from_json(answer),
        attempts=list(blob["attempts"]),
        input=blob["input"],
        variables=dict(blob["variables"] or {}),
        tokens=blob.get("tokens"),
    )


# -- the sweeper ----------------------------------------------------------------------------------


class Sweeper:
    """Fails parked tasks whose TimeoutSeconds or HeartbeatSeconds ran out (one per worker process).

    A parked task has no thread to time it out; every worker runs this loop, and the scripts make
    each expiry happen once whichever worker sees it first.
    """

    def __init__(self, engine: Any, interval: float = 1.0) -> None:
        self.engine, self.interval = engine, interval
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the daemon thread."""
        threading.Thread(target=self._loop, name="dmap-callback-sweeper", daemon=True).start()

    def stop(self) -> None:
        """Stop the daemon thread."""
        self._stop.set()

    def sweep(self) -> int:
        """Expire the tasks that are due now; returns how many were answered with a timeout."""
        store = self.engine.redis
        seconds, micros = store.client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        expired = 0
        for raw in store.client.zrangebyscore(callback_due_key(store.prefix), "-inf", now, start=0, num=100):
            token = _text(raw)
            try:
                outcome = deliver(self.engine, token, decode_token(token), None)
            except InvalidToken:
                store.client.zrem(callback_due_key(store.prefix), token)
                continue
            expired += outcome in ("answered", "resume")
        return expired

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # a Redis hiccup: the next pass tries again
                logger.warning("callback sweep failed", exc_info=True)


# -- helpers --------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


_scripts: dict[tuple[int, str], Any] = {}


def _script(store: Any, name: str, *prefixes: str) -> Any:
    """A Lua script of ``dmap/lua`` registered on the store's client, after the helper files ``prefixes``
    (``_lib``: the run-store helpers, ``_cb``: the task-answer helpers), in that order."""
    key = (id(store.client), name)
    found = _scripts.get(key)
    if found is None:
        from importlib import resources

        lua = resources.files("dmap") / "lua"
        text = "\n".join((lua / f"{part}.lua").read_text("utf-8") for part in (*prefixes, name))
        found = _scripts[key] = store.client.register_script(text)
    return found


def _redis(backend: Any) -> Any:
    return _celery(backend).redis


def _celery(backend: Any) -> Any:
    """The celery backend a Redis token belongs to: ``backend`` if it is one, else one from the settings."""
    from .backends import get_backend

    engine = get_backend(backend) if backend is not None else None
    if engine is None or getattr(engine, "redis", None) is None:
        engine = get_backend("celery")
    return engine


def tokens_for(engine: Any) -> Any:
    """The token service of a top-level execution on ``engine``: Redis on celery, None (this process) on local."""
    return RedisTokens(engine) if getattr(engine, "redis", None) is not None else None


def child_tokens(engine: Any, run: str, child: int, token: str, start: str) -> Any:
    """The token service of a distributed child: parking on celery, None (in-slot, this process) on local."""
    if engine is None or getattr(engine, "redis", None) is None:
        return None
    return ChildTokens(engine, run, child, token, start)
