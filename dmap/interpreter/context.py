"""The execution environment of one workflow run: the ``$$`` context object, the clock, the hooks.

:class:`ExecutionInfo` is what AWS exposes as ``$$.Execution`` and ``$$.StateMachine``.
:class:`Runtime` bundles what the interpreter needs from outside — the handler registry, a clock
(injectable, so tests of Wait and Retry do not sleep), the payload limit, the abort check and the
hook that runs a DISTRIBUTED Map (the coordinator) — so the interpreter itself knows nothing of
Redis, Celery or S3.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..config import DEFAULT_PAYLOAD_LIMIT
from .tasks import Registry, registry

if TYPE_CHECKING:
    from ..asl.model import MapState
    from .history import History

ACCOUNT = "000000000000"
_SHARED_RNG = random.Random()  # seeding one per execution from urandom costs more than a small child's work
REGION = "local"
DEFAULT_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/dmap"
"""``$$.Execution.RoleArn`` of an execution no state machine gave a role (the CLI's and Python API's runs)."""


_second: tuple[int, str] = (-1, "")  # the last whole second formatted: strftime is most of a timestamp's cost
_millisecond: tuple[int, str] = (-1, "")  # the last timestamp made, by its epoch millisecond


def iso_now(moment: datetime | None = None) -> str:
    """A timestamp as AWS prints them: ISO-8601, milliseconds, ``Z``."""
    global _second, _millisecond
    if moment is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    now = time.time_ns() // 1_000_000
    last = _millisecond
    if last[0] == now:  # a child's several timestamps mostly fall in one millisecond
        return last[1]
    second, ms = divmod(now, 1000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    text = f"{cached[1]}{ms:03d}Z"
    _millisecond = (now, text)
    return text


def state_machine_arn(name: str) -> str:
    """The AWS-shaped ARN of a state machine named ``name``."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def execution_arn(state_machine: str, name: str) -> str:
    """The AWS-shaped ARN of execution ``name`` of state machine ``state_machine``."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine}:{name}"


class Clock(Protocol):
    """Wall-clock time and sleeping, injectable for tests."""

    def now(self) -> datetime:
        """The current UTC time."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (or pretend to)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that advances only when slept on; records every sleep (for tests and dry runs)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the fake time by ``seconds`` without blocking."""
        from datetime import timedelta

        with self._lock:
            self.sleeps.append(seconds)
            self._now = self._now + timedelta(seconds=max(0.0, seconds))


@dataclass(frozen=True)
class ExecutionInfo:
    """``$$.Execution`` and ``$$.StateMachine`` of one execution."""

    name: str
    state_machine_name: str
    input: Any
    start_time: str = field(default_factory=iso_now)
    redrive_count: int = 0
    arn: str = ""
    role_arn: str = DEFAULT_ROLE_ARN
    """The state machine's role (CreateStateMachine's ``roleArn``): ``$$.Execution.RoleArn`` and ExecutionStarted's."""

    @property
    def execution_arn(self) -> str:
        """The execution ARN (given, or built from the names)."""
        return self.arn or execution_arn(self.state_machine_name, self.name)

    def context_object(self) -> dict[str, Any]:
        """The static part of ``$$``."""
        return {
            "Execution": {
                "Id": self.execution_arn,
                "Input": self.input,
                "Name": self.name,
                "RoleArn": self.role_arn,
                "StartTime": self.start_time,
                "RedriveCount": self.redrive_count,
            },
            "StateMachine": {"Id": state_machine_arn(self.state_machine_name), "Name": self.state_machine_name},
        }


@dataclass(frozen=True)
class MapInvocation:
    """One entry into a DISTRIBUTED Map state, handed to the coordinator.

    Attributes:
        state_name: The Map state's name.
        state: Its definition.
        input: The Map's effective input (after InputPath).
        context: The ``$$`` object of the Map state.
        variables: The variables visible to the Map state (children do not see them; ItemSelector does).
        language: ``JSONPath`` or ``JSONata``.
        entered_event: The history event id of the MapStateEntered event (for AWS-style causes).
        started: Called with the Map Run ARN once the Map Run has started (its MapRunStarted event).
    """

    state_name: str
    state: MapState
    input: Any
    context: dict[str, Any]
    variables: dict[str, Any]
    language: str
    entered_event: int
    started: Callable[[str], None] | None = None


DistributedMapRunner = Callable[[MapInvocation], Any]
"""Runs a DISTRIBUTED Map and returns its result (the array of outputs, or the ResultWriter details)."""


@dataclass
class Runtime:
    """What an execution needs from its host.

    Attributes:
        registry: Task handlers.
        clock: Wall clock and sleeping (Wait states, Retry backoff).
        payload_limit: Max bytes of a state's output (``States.DataLimitExceeded`` past it).
        distributed_map: Runs DISTRIBUTED Maps; None makes them an error (inside children without a backend).
        should_abort: Polled before each state; True stops the execution as ABORTED.
        deadline: ``time.monotonic()`` at which the execution times out (machine TimeoutSeconds, EXPRESS 5 min).
        item_index: The first item index when running a distributed child (for causes and TaskContext).
        rng: Randomness for jitter and ``States.MathRandom`` without a seed.
        history: Numbers and records the execution's history events (:mod:`.history`); None numbers
            them only (children of a Distributed Map: nobody reads their history).
        flow: Flow-control hooks of a distributed child (:class:`dmap.flow.hooks.ChildFlow`): rate-limit
            tokens before each Task call, throttling reports and extra backoff on Task errors.
        callbacks: Where task tokens live (a :class:`~dmap.interpreter.callbacks.TokenService`); None: this
            process's memory.
        executions: Starts nested executions (``states:startExecution``); None: they fail.
        resume: Where a parked execution continues (a :class:`~dmap.interpreter.callbacks.Resume`).
        stop_reason: StopExecution's ``(error, cause)`` once the execution is stopped (None: neither was
            given); its ExecutionAborted event records them, as DescribeExecution returns them.
    """

    registry: Registry = field(default_factory=lambda: registry)
    clock: Clock = field(default_factory=SystemClock)
    payload_limit: int = DEFAULT_PAYLOAD_LIMIT
    distributed_map: DistributedMapRunner | None = None
    should_abort: Callable[[], bool] | None = None
    deadline: float | None = None
    item_index: int | None = None
    rng: random.Random = field(default_factory=lambda: _SHARED_RNG)
    history: History | None = None
    flow: Any = None
    callbacks: Any = None
    executions: Any = None
    resume: Any = None
    stop_reason: Callable[[], tuple[str | None, str | None] | None] | None = None
