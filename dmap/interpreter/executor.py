"""The interpreter loop: run a workflow (or a branch) state by state, with Retry and Catch.

One :class:`Executor` per execution. It walks ``Next`` transitions, builds the ``$$`` context of
each state, counts history events the way AWS numbers them (so causes can say "entered at the
event id #N"), applies Retry/Catch around Task, Parallel and Map, and stops on Succeed, Fail, an
end state, an abort or a timeout. The work of each state type is in ``states.py``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..asl.model import Branch, Catcher, MapState, ParallelState, TaskState
from ..errors import ErrorName, StatesError
from . import dataflow, retry
from .context import ExecutionInfo, Runtime, iso_now

_PREFIXED = (ErrorName.RUNTIME.value, ErrorName.QUERY_EVALUATION_ERROR.value)
_runners: dict[str, Any] | None = None


class Aborted(Exception):
    """Raised inside the interpreter when the execution is stopped (the Map Run aborted, stop-execution)."""


@dataclass
class Env:
    """What a state function sees: its name, the ``$$`` object, the variables, its query language."""

    name: str
    context: dict[str, Any]
    variables: dict[str, Any]
    language: str
    entered_event: int
    attempts: list[int] | None = None  # the Retry attempts per retrier of the state running now (callbacks park them)

    def runtime_error(self, error: StatesError) -> StatesError:
        """Prefix a Runtime/QueryEvaluation cause the way AWS does (once)."""
        if error.name in _PREFIXED and not error.cause.startswith("An error occurred while executing"):
            prefix = f"An error occurred while executing the state '{self.name}' (entered at the event id #"
            return StatesError(error.name, f"{prefix}{self.entered_event}). {error.cause}")
        return error


@dataclass
class Executor:
    """Runs the states of one execution. Thread-safe for Parallel branches and inline Map iterations."""

    runtime: Runtime
    info: ExecutionInfo
    language: str = "JSONPath"
    _events: Any = field(default_factory=lambda: itertools.count(2))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.base_context = self.info.context_object()
        self.position: tuple[str, Any, dict[str, Any]] | None = None

    def next_event(self, count: int = 1) -> int:
        """Reserve ``count`` history event ids; return the first."""
        with self._lock:
            first = next(self._events)
            for _ in range(count - 1):
                next(self._events)
        return int(first)

    def run_branch(
        self,
        branch: Branch,
        value: Any,
        variables: dict[str, Any] | None = None,
        language: str | None = None,
        cancel: threading.Event | None = None,
        *,
        start_at: str | None = None,
        checkpoint: bool = False,
    ) -> Any:
        """Run a workflow from ``StartAt`` (or ``start_at``) to its end; return its output or raise.

        ``cancel`` stops the branch before its next state (a sibling branch or iteration failed).
        ``checkpoint`` records each state's name, input and variables in :attr:`position` (the top
        level does, so a failed execution can be redriven from the state that failed).
        """
        global _runners
        if _runners is None:  # states imports this module: resolved once, not on every branch run
            from .states import RUNNERS

            _runners = RUNNERS
        runners = _runners
        language = branch.query_language or language or self.language
        variables = {} if variables is None else variables
        name: str | None = start_at or branch.start_at
        while name is not None:
            if checkpoint:
                self.position = (name, value, dict(variables))
            self._check_alive()
            if cancel is not None and cancel.is_set():
                raise Aborted()
            state = branch.states[name]
            env = Env(
                name=name,
                context={**self.base_context, "State": {"Name": name, "EnteredTime": iso_now(), "RetryCount": 0}},
                variables=variables,
                language=state.query_language or language,
                entered_event=self.next_event(),
            )
            try:
                value, name = runners[state.type](self, state, value, env)
            except StatesError as exc:
                raise env.runtime_error(exc) from None
            self.next_event()  # StateExited
        return value

    def with_retry(
        self,
        state: TaskState | ParallelState | MapState,
        raw: Any,
        env: Env,
        body: Callable[[], tuple[Any, dict[str, Any]]],
    ) -> tuple[Any, str | None]:
        """Run ``body`` under the state's Retry and Catch. ``body`` returns ``(output, assignments)``."""
        attempts = self._attempts(state, env)
        env.attempts = attempts
        while True:
            try:
                output, assignments = body()
                env.variables.update(assignments)
                return output, state.next
            except StatesError as exc:
                error = env.runtime_error(exc)
            index = retry.find_retrier(state.retry, error.name)
            if index is not None and attempts[index] < state.retry[index].max_attempts:
                self.runtime.clock.sleep(retry.backoff_seconds(state.retry[index], attempts[index], self.runtime.rng))
                attempts[index] += 1
                env.context["State"]["RetryCount"] = sum(attempts)
                self.next_event(2)
                continue
            catcher = retry.find_catcher(state.catch, error.name)
            if catcher is None:
                raise error
            return self.caught(catcher, raw, error, env), catcher.next

    def _attempts(self, state: TaskState | ParallelState | MapState, env: Env) -> list[int]:
        """The state's Retry attempts: zeros, or those it had when it was parked and is resumed now."""
        resume = self.runtime.resume
        if (
            resume is not None
            and not resume.used
            and resume.state == env.name
            and len(resume.attempts) == len(state.retry)
        ):
            env.context["State"]["RetryCount"] = sum(resume.attempts)
            return list(resume.attempts)
        return [0] * len(state.retry)

    def caught(self, catcher: Catcher, raw: Any, error: StatesError, env: Env) -> Any:
        """The state output after ``catcher`` caught ``error``: the error output placed by ResultPath/Output."""
        error_output = {"Error": error.name, "Cause": error.cause}
        if env.language == "JSONata":
            from . import jsonata_flow

            output, assignments = jsonata_flow.caught(catcher, raw, error_output, env)
        else:
            output = dataflow.result_path(catcher.result_path, raw, error_output)
            assignments = {}
            if catcher.assign is not None:
                from .variables import check_assignments

                assignments = dataflow.template(catcher.assign, error_output, env.context, env.variables)
                check_assignments(assignments, env.variables, env.name)
        env.variables.update(assignments)
        return output

    def check_size(self, value: Any, env: Env, text: str | None = None) -> Any:
        """``States.DataLimitExceeded`` if ``value`` (whose compact JSON is ``text`` if given) is over the limit."""
        size = dataflow.size_of(value) if text is None else len(text.encode("utf-8"))
        if size > self.runtime.payload_limit:
            raise StatesError(
                ErrorName.DATA_LIMIT_EXCEEDED,
                f"The state/task '{env.name}' returned a result with a size exceeding the maximum number of bytes "
                f"service limit ({dataflow.size_of(value)} bytes > {self.runtime.payload_limit}).",
            )
        return value

    def _check_alive(self) -> None:
        if self.runtime.should_abort is not None and self.runtime.should_abort():
            raise Aborted()
        if self.runtime.deadline is not None and time.monotonic() > self.runtime.deadline:
            raise StatesError(
                ErrorName.TIMEOUT, "The execution timed out (TimeoutSeconds or the EXPRESS 5-minute limit)"
            )
