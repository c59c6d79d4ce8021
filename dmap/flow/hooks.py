"""Flow control inside one child execution: the interpreter's ``Runtime.flow`` hooks.

Before each Task call the child takes a token of every limited key the call touches (the Lambda
function as written and by name, the ``http:invoke`` host, the Map Run's label); on each Task error
it reports throttling to the Map Run's adaptive concurrency and, while adaptive concurrency is on,
lengthens the ASL Retry's backoff by a random share of it (full jitter on top), so throttled
children do not come back in step.

Waiting. The bucket reserves each caller its own moment, so a waiter sleeps once, exactly as long
as needed, without polling Redis. A token is reserved only while it is near (:data:`HORIZON_MS`):
a caller further back asks again just before its turn, so tokens go to whoever is ready then. A
caller that wakes too late for its moment takes a new token rather than call beside the next
caller (:meth:`ChildFlow._take`). Waiting children stay RUNNING in the
counts (they hold their permit) and are counted apart as ``waiting`` (a per-run sorted set scored
by when each wait ends, so a worker killed while waiting drops out of the count by itself).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..keys import F_LATE, F_WAITED_MS, F_WAITS, flow_wait_key, run_keys
from .adaptive import Adaptive, is_throttle
from .limits import NO_LIMIT, TOO_FAR, Limits, late_tolerance, limits_for

HORIZON_MS = 30_000
"""The longest wait a token is reserved for; a caller further back waits and asks again later.

Reserving far ahead lets a parked child sleep off its wait with one resume message instead of
coming back to ask; the horizon bounds what a Map Run aborted (or killed) while its children held
reservations leaves unused: at most this long of the rate."""
HTTP_INVOKE = "arn:aws:states:::http:invoke"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_SLICE = 1.0  # seconds between two looks at the abort flag while waiting


def call_keys(resource: str, function: str | None, payload: Any, label: str | None) -> list[str]:
    """The rate-limit keys one Task call touches, most specific first, without duplicates.

    Args:
        resource: The Task's Resource.
        function: ``FunctionName`` of a ``lambda:invoke`` Task.
        payload: The evaluated Parameters/Arguments (``ApiEndpoint`` of an ``http:invoke`` Task).
        label: The Map Run's own limit key, if it set one.
    """
    keys: list[str] = []
    if resource.startswith(HTTP_INVOKE):
        endpoint = payload.get("ApiEndpoint") if isinstance(payload, Mapping) else None
        if isinstance(endpoint, str):
            parts = urlsplit(endpoint)
            keys += [k for k in (parts.netloc, parts.hostname or "") if k]
    elif resource.startswith(LAMBDA_INVOKE) and function:
        keys += [function, _function_name(function)]
    elif not resource.startswith("arn:aws:states:::"):
        keys += [resource, _function_name(resource)]
    if label:
        keys.append(label)
    return list(dict.fromkeys(k for k in keys if k))


def _function_name(ref: str) -> str:
    """``NAME`` of ``arn:aws:lambda:<region>:<acct>:function:NAME[:qualifier]``; else ``ref``."""
    parts = ref.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[5] == "function":
        return parts[6]
    return ref


class ChildFlow:
    """The flow-control hooks of one child execution (``Runtime.flow``).

    Args:
        store: The run store (its Redis, if any, holds the limits and the waiting set).
        run: The Map Run id.
        child: The child number.
        options: The Map Run's flow options as a dict (:meth:`FlowOptions.as_dict`), or None.
        should_abort: The child's abort check, asked while it waits.
        limits: The limits to obey (default: those of ``store``).
        parking: Returns the host's parking service (``park_after`` seconds and ``park_for_tokens``,
            :class:`dmap.callbacks.ChildTokens`), or None where a child cannot park (the local backend).
        resume: Where a parked child resumes (:class:`~dmap.interpreter.callbacks.Resume`), if it does.
    """

    def __init__(
        self,
        store: Any,
        run: str,
        child: int,
        options: Mapping[str, Any] | None,
        *,
        should_abort: Callable[[], bool] | None = None,
        limits: Limits | None = None,
        parking: Callable[[], Any] | None = None,
        resume: Any = None,
    ) -> None:
        self.store, self.run, self.child = store, run, child
        options = options or {}
        self.label: str | None = options.get("limit")
        self.extra_names: tuple[str, ...] = tuple(options.get("throttle_errors") or ())
        self.limits = limits if limits is not None else limits_for(store)
        self.should_abort = should_abort
        self.started = time.monotonic()
        self.adaptive_on = bool(options.get("adaptive"))
        self.waited_ms = 0
        self.late_tokens = 0
        self.parking, self.resume = parking, resume
        self._adaptive: Adaptive | None = None

    # -- rate limits ---------------------------------------------------------------------------

    def active(self) -> bool:
        """Whether :meth:`before_call` has anything to do: a limit is set somewhere, or the child resumes parked."""
        return self.resume is not None or self.limits.any()

    def before_call(self, resource: str, function: str | None, payload: Any, point: Any = None) -> None:
        """Take a token of every limited key of this call, waiting as long as the bucket says.

        ``point`` (a :class:`~dmap.interpreter.callbacks.TokenRequest`) is given when the Task runs at
        the top level of the child: a wait longer than the host's ``park_after`` then parks the child
        (raises :class:`~dmap.interpreter.callbacks.Parked`) instead of holding the worker slot.
        """
        held = self._resumed(point)
        if not self.limits.any():  # no limit anywhere (the usual case): no keys to work out
            return
        keys = [key for key in call_keys(resource, function, payload, self.label) if self.limits.limited(key)]
        if keys:
            self._take(keys, point, held)

    def _resumed(self, point: Any) -> dict[str, tuple[float, float]]:
        """The tokens a child parked at this Task holds (its resume point), on this process's monotonic clock."""
        resume = self.resume
        if point is None or resume is None or resume.used or resume.tokens is None or resume.state != point.state:
            return {}
        resume.used = True
        offset = time.monotonic() - time.time()
        return {key: (due / 1000 + offset, float(allowed)) for key, (due, allowed) in resume.tokens.items()}

    def _take(self, keys: list[str], point: Any = None, held: dict[str, tuple[float, float]] | None = None) -> None:
        """Hold a token of each key for one moment, then return at that moment (never later than it allows).

        Each token is reserved for a moment on this process's monotonic clock (when it was asked
        for, plus the wait the bucket said: never before the bucket's moment). A caller that wakes
        later than its moment by more than :func:`late_tolerance` would call beside the next
        caller's token, so it lets its token go unused and takes a new one (the late-waker rule:
        a busy machine slows the calls down, it never bunches them). With several keys, each later
        key is asked for no sooner than the tokens already held, and those that fell behind the
        latest one are taken again.
        """
        held = {} if held is None else held  # key -> (moment on the monotonic clock, lateness allowed in s)
        while True:
            moment, far = max((m for m, _ in held.values()), default=0.0), 0.0
            for key in keys:
                if key in held:
                    continue
                asked = time.monotonic()
                token = self.limits.take(key, HORIZON_MS, math.ceil(max(0.0, moment - asked) * 1000))
                if token.outcome == NO_LIMIT:  # deleted meanwhile
                    held[key] = (asked, math.inf)
                elif token.outcome == TOO_FAR:  # nothing reserved: ask again when the token is near
                    far = token.wait_ms / 1000
                    break
                else:
                    held[key] = (asked + token.wait_ms / 1000, late_tolerance(token.interval_ms))
                    moment = max(moment, held[key][0])
            if far:
                self._wait_or_park(far - HORIZON_MS / 1000 + random.uniform(0.25, 0.5) * HORIZON_MS / 1000, point, {})
            else:
                self._wait_or_park(moment - time.monotonic(), point, held)
            if self.should_abort is not None and self.should_abort():
                return  # the interpreter sees the flag before the next state; the call may go or not
            if far:
                continue
            now = time.monotonic()
            late = [key for key, (mine, allowed) in held.items() if now - mine > allowed]
            if not late:
                return
            for key in late:
                del held[key]
            self._count_late(len(late))

    def _wait_or_park(self, seconds: float, point: Any, held: dict[str, tuple[float, float]]) -> None:
        """Wait in this slot, or park the child when the wait is long and the host can resume it at this Task.

        A parked child is resumed ``park_after / 2`` seconds before its tokens are due (so a resume
        message that is a little late still finds them), keeps them, and waits out the rest here.
        """
        parking = self.parking() if self.parking is not None and point is not None else None
        if parking is None or seconds <= parking.park_after:
            self._wait(seconds)
            return
        countdown = seconds - parking.park_after / 2
        offset = time.time() - time.monotonic()
        tokens = {key: [(mine + offset) * 1000, allowed] for key, (mine, allowed) in held.items()}
        self._mark_waiting(time.time() + seconds, seconds)
        parking.park_for_tokens(point, countdown, tokens)

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        until = time.time() + seconds
        self._mark_waiting(until, seconds)
        try:
            end = time.monotonic() + seconds
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return
                if self.should_abort is not None and self.should_abort():
                    return  # the interpreter sees the flag before the next state; the call may go or not
                time.sleep(min(_SLICE, left))
        finally:
            self._unmark_waiting()

    def _mark_waiting(self, until: float, seconds: float) -> None:
        ms = int(seconds * 1000)
        self.waited_ms += ms
        client = getattr(self.store, "client", None)
        if client is None:
            self.store.flow(self.run, lambda s, _a, _b: _memory_wait(s, self.child, until, ms))
            return
        pipe = client.pipeline(transaction=False)
        pipe.zadd(flow_wait_key(self.store.prefix, self.run), {str(self.child): until * 1000})
        pipe.hincrby(run_keys(self.store.prefix, self.run)[0], F_WAITED_MS, ms)
        pipe.hincrby(run_keys(self.store.prefix, self.run)[0], F_WAITS, 1)
        pipe.execute()

    def _count_late(self, tokens: int) -> None:
        self.late_tokens += tokens
        client = getattr(self.store, "client", None)
        if client is None:
            self.store.flow(self.run, lambda s, _a, _b: s.__setitem__(F_LATE, s.get(F_LATE, 0) + tokens))
            return
        client.hincrby(run_keys(self.store.prefix, self.run)[0], F_LATE, tokens)

    def _unmark_waiting(self) -> None:
        client = getattr(self.store, "client", None)
        if client is None:
            self.store.flow(self.run, lambda s, _a, _b: s.pop(f"wait:{self.child}", None))
            return
        client.zrem(flow_wait_key(self.store.prefix, self.run), str(self.child))

    # -- throttling ----------------------------------------------------------------------------

    def on_error(self, error: str) -> None:
        """A Task failed with ``error``: report a throttle to the Map Run (counts it; cuts when adaptive)."""
        if not is_throttle(error, self.extra_names):
            return
        if self._adaptive is None:
            self._adaptive = Adaptive(self.store)
        out = self._adaptive.throttled(self.run, self.child, self.started)
        if out is not None:
            self.adaptive_on = out[0]

    def extra_backoff(self, error: str, delay: float, rng: random.Random | None = None) -> float:
        """Seconds added to an ASL Retry's delay: a uniform share of it for a throttle while adaptive is on."""
        if not self.adaptive_on or delay <= 0 or not is_throttle(error, self.extra_names):
            return 0.0
        return (rng or random).uniform(0.0, delay)


def _memory_wait(state: dict[str, float], child: int, until: float, ms: int) -> None:
    state[f"wait:{child}"] = until
    state[F_WAITED_MS] = state.get(F_WAITED_MS, 0) + ms
    state[F_WAITS] = state.get(F_WAITS, 0) + 1


def waiting_stats(store: Any, run: str) -> dict[str, int]:
    """``waiting`` (children waiting for a token now), ``waitedMs``, ``waits`` and ``lateTokens`` of a Map Run.

    ``lateTokens`` counts tokens left unused because their child woke too late to call on time.
    """
    client = getattr(store, "client", None)
    now = time.time()
    if client is None:
        state = store.flow(run, lambda s, _a, _b: dict(s)) or {}
        waiting = sum(1 for k, v in state.items() if k.startswith("wait:") and v >= now - 1)
        return {
            "waiting": waiting,
            "waitedMs": int(state.get(F_WAITED_MS, 0)),
            "waits": int(state.get(F_WAITS, 0)),
            "lateTokens": int(state.get(F_LATE, 0)),
        }
    key = flow_wait_key(store.prefix, run)
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(key, "-inf", (now - 60) * 1000)  # left by workers killed while waiting
    pipe.zcount(key, (now - 1) * 1000, "+inf")
    pipe.hmget(run_keys(store.prefix, run)[0], [F_WAITED_MS, F_WAITS, F_LATE])
    _, waiting, (waited, waits, late) = pipe.execute()
    counts = {"waitedMs": waited, "waits": waits, "lateTokens": late}
    return {"waiting": int(waiting), **{name: int(value or 0) for name, value in counts.items()}}
