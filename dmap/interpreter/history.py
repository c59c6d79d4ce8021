"""History events: numbered and linked the way AWS numbers them, recorded only when someone listens.

Every execution numbers its events (ids from 1), because causes quote them ("entered at the event
id #4"). AWS links each event to a cause, ``previousEventId``, which is not ``id - 1``: a branch
(the top level, a Map iteration, a Parallel branch) has a :class:`Chain` whose ``source`` is the
event its next one points to; most events move the source on, some (MapIterationSucceeded,
MapStateSucceeded, ParallelStateSucceeded) do not. A sub-branch forks the chain and is joined back.

:class:`History` does the numbering. With a ``sink`` it also builds each event's AWS-shaped dict
and hands it on; without one (children of a Distributed Map, the hot path) it only counts, and
callers skip building details by checking :attr:`History.recording` first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from . import dataflow

Sink = Callable[[dict[str, Any]], None]
"""Receives each recorded event: ``{"id", "previousEventId", "type", "timestamp", <details key>: {...}}``."""

PAYLOAD_CAP = 256 * 1024
"""The most bytes of an input/output a history event keeps (AWS's own cap); longer ones are cut, ``truncated``."""


class Chain:
    """The causal position of one branch: the id its next event points to (``source``) and its last event."""

    __slots__ = ("source", "last")

    def __init__(self, source: int = 0) -> None:
        self.source = source
        self.last = source

    def fork(self) -> Chain:
        """A chain for a sub-branch, starting at this one's source."""
        return Chain(self.source)

    def join(self, other: Chain) -> None:
        """Take a finished sub-branch back: the later of both positions."""
        self.source = max(self.source, other.source)
        self.last = max(self.last, other.last)


class History:
    """Numbers one execution's events; records them into ``sink`` when given.

    Args:
        sink: Where recorded events go; None only counts.
        first_id: The id of the next event (a resumed or redriven execution goes on from its stored events).
    """

    __slots__ = ("sink", "recording", "_next", "_lock")

    def __init__(self, sink: Sink | None = None, *, first_id: int = 1) -> None:
        self.sink = sink
        self.recording = sink is not None
        self._next = first_id
        self._lock = threading.Lock()

    def add(
        self,
        chain: Chain,
        type: str,
        key: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        update: bool = True,
        previous: int | None = None,
    ) -> int:
        """Number (and record) an event of ``chain``; return its id.

        Args:
            chain: The branch it belongs to.
            type: The AWS event type (``PassStateEntered``...).
            key: Its details key (``stateEnteredEventDetails``...), if it has details.
            details: The details (build them only when :attr:`recording`).
            update: Whether the branch's next event points to this one.
            previous: Point to this id instead of the chain's source (EvaluationFailed points where its
                state's Entered event pointed).
        """
        with self._lock:
            event_id = self._next
            self._next = event_id + 1
            before = chain.source if previous is None else previous
            chain.last = event_id
            if update:
                chain.source = event_id
            if self.sink is not None:
                event: dict[str, Any] = {
                    "id": event_id,
                    "previousEventId": before,
                    "type": type,
                    "timestamp": round(time.time(), 3),
                }
                if key is not None:
                    event[key] = details if details is not None else {}
                self.sink(event)
        return event_id

    @property
    def next_id(self) -> int:
        """The id the next event gets."""
        return self._next


def payload(value: Any) -> tuple[str, dict[str, bool]]:
    """A payload as AWS shows it in an event: compact JSON text (cut at :data:`PAYLOAD_CAP`) and its details."""
    text = dataflow.compact(value)
    if len(text) > PAYLOAD_CAP // 4 and len(text.encode("utf-8")) > PAYLOAD_CAP:
        return text.encode("utf-8")[:PAYLOAD_CAP].decode("utf-8", "ignore"), {"truncated": True}
    return text, {"truncated": False}


def entered(name: str, value: Any) -> dict[str, Any]:
    """``stateEnteredEventDetails``."""
    text, details = payload(value)
    return {"name": name, "input": text, "inputDetails": details}


def exited(name: str, value: Any) -> dict[str, Any]:
    """``stateExitedEventDetails``."""
    text, details = payload(value)
    return {"name": name, "output": text, "outputDetails": details}


def error_details(error: str | None, cause: str | None) -> dict[str, Any]:
    """``{error, cause}`` with the missing ones absent (AWS omits them, never null)."""
    found: dict[str, Any] = {}
    if error:
        found["error"] = error
    if cause:
        found["cause"] = cause
    return found


_STATES_PREFIX = "arn:aws:states:::"


class TaskEvents:
    """The events of one Task invocation: Lambda-style for a function resource, Task-style for an integration.

    A Lambda function ARN (or a registered name) gives LambdaFunctionScheduled/Started/Succeeded/
    Failed/TimedOut; ``arn:aws:states:::<service>:<action>`` (``lambda:invoke``, ``aws-sdk:s3:...``)
    gives TaskScheduled/Started/Succeeded/Failed/TimedOut with ``resourceType``/``resource``.
    """

    __slots__ = ("history", "chain", "resource", "region", "service", "action")

    def __init__(self, history: History, chain: Chain, resource: str, execution_arn: str) -> None:
        self.history, self.chain, self.resource = history, chain, resource
        parts = execution_arn.split(":")
        self.region = parts[3] if len(parts) > 3 else ""
        self.service: str | None = None
        self.action = ""
        if resource.startswith(_STATES_PREFIX):
            self.service, _, self.action = resource.removeprefix(_STATES_PREFIX).rpartition(":")

    def _names(self) -> dict[str, str]:
        return {"resourceType": self.service or "", "resource": self.action}

    def scheduled(self, parameters: Any, timeout: float | None, heartbeat: float | None) -> None:
        """TaskScheduled + TaskStarted (or the Lambda pair)."""
        history, chain = self.history, self.chain
        if self.service is None:
            details: dict[str, Any] | None = None
            if history.recording:
                text, sizes = payload(parameters)
                details = {"resource": self.resource, "input": text, "inputDetails": sizes}
                if timeout is not None:
                    details["timeoutInSeconds"] = int(timeout)
            history.add(chain, "LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails", details)
            history.add(chain, "LambdaFunctionStarted")
            return
        if history.recording:
            scheduled: dict[str, Any] = {**self._names(), "region": self.region, "parameters": payload(parameters)[0]}
            if timeout is not None:
                scheduled["timeoutInSeconds"] = int(timeout)
            if heartbeat is not None:
                scheduled["heartbeatInSeconds"] = int(heartbeat)
            history.add(chain, "TaskScheduled", "taskScheduledEventDetails", scheduled)
            history.add(chain, "TaskStarted", "taskStartedEventDetails", self._names())
        else:
            history.add(chain, "TaskScheduled")
            history.add(chain, "TaskStarted")

    def succeeded(self, output: Any) -> None:
        """TaskSucceeded (or LambdaFunctionSucceeded) with the result."""
        history = self.history
        kind = "LambdaFunction" if self.service is None else "Task"
        details = None
        if history.recording:
            text, sizes = payload(output)
            details = {"output": text, "outputDetails": sizes}
            if self.service is not None:
                details = {**self._names(), **details}
        key = "lambdaFunctionSucceededEventDetails" if self.service is None else "taskSucceededEventDetails"
        history.add(self.chain, f"{kind}Succeeded", key, details)

    def ended(self, error: Any) -> None:
        """TaskFailed/TaskTimedOut (or the Lambda pair) for a StatesError."""
        history = self.history
        timed_out = str(error.name).startswith("States.") and "Timeout" in str(error.name)
        kind = ("LambdaFunction" if self.service is None else "Task") + ("TimedOut" if timed_out else "Failed")
        details = None
        if history.recording:
            details = error_details(error.name, error.cause)
            if self.service is not None:
                details = {**self._names(), **details}
        history.add(self.chain, kind, kind[0].lower() + kind[1:] + "EventDetails", details)
