"""The interpreter loop: run a workflow (or a branch) state by state, with Retry and Catch.

One :class:`Executor` per execution. It walks ``Next`` transitions, builds the ``$$`` context of
each state, numbers history events the way AWS does (so causes can say "entered at the event id
#N") and records them when the runtime has a recorder (:mod:`.history`), applies Retry/Catch
around Task, Parallel and Map, and stops on Succeed, Fail, an end state, an abort or a timeout.
The work of each state type is in ``states.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..asl.model import Branch, Catcher, MapState, ParallelState, TaskState
from ..errors import ErrorName, StatesError
from . import dataflow, retry
from . import history as events
from .context import ExecutionInfo, Runtime, iso_now
from .history import Chain, History

_PREFIXED = (ErrorName.RUNTIME.value, ErrorName.QUERY_EVALUATION_ERROR.value)
#: Errors that end the execution from the state that raised them: no <State>Failed event, no Catch.
_TERMINAL = (ErrorName.RUNTIME.value, ErrorName.DATA_LIMIT_EXCEEDED.value)
_runners: dict[str, Any] | None = None


class Aborted(Exception):
    """Raised inside the interpreter when the execution is stopped (the Map Run aborted, stop-execution)."""


@dataclass
class Env:
    """What a state function sees: its name, the ``$$`` object, the variables, its query language.

    ``chain`` is its branch's history position; ``entered_from`` the id its Entered event points to;
    ``child_failed`` is set when the error it raises came from one of its iterations or branches.
    """

    name: str
    context: dict[str, Any]
    variables: dict[str, Any]
    language: str
    entered_event: int
    chain: Chain = field(default_factory=Chain)
    entered_from: int = 0
    child_failed: bool = False
    failure_recorded: bool = False
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
    history: History = field(default_factory=lambda: History(first_id=2))

    def __post_init__(self) -> None:
        self.base_context = self.info.context_object()
        self.position: tuple[str, Any, dict[str, Any]] | None = None

    def failed(self, state_type: str, error: StatesError, env: Env) -> None:
        """Record how a Task, Map or Parallel state failed for good (no retry left), before Catch or the end.

        A query evaluation error is an EvaluationFailed event (pointing where the state's Entered
        event did); then ``<Type>StateFailed``. A terminal error raised by the state itself ends the
        execution with no state event (AWS's tolerance and MaxConcurrency path errors).
        """
        if error.name in _TERMINAL and not env.child_failed:
            return
        if error.name == ErrorName.QUERY_EVALUATION_ERROR.value and not env.child_failed:
            self.evaluation_failed(error, env)
        if state_type != "Task":  # a Task's failure is its TaskFailed/LambdaFunctionFailed event
            self.history.add(env.chain, f"{state_type}StateFailed")

    def evaluation_failed(self, error: StatesError, env: Env) -> None:
        """An EvaluationFailed event for ``error``, once per state entry."""
        if env.failure_recorded:
            return
        env.failure_recorded = True
        history = self.history
        details = None
        if history.recording:
            details = {**events.error_details(error.name, error.cause), "state": env.name}
        history.add(env.chain, "EvaluationFailed", "evaluationFailedEventDetails", details, previous=env.entered_from)

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
        chain: Chain | None = None,
    ) -> Any:
        """Run a workflow from ``StartAt`` (or ``start_at``) to its end; return its output or raise.

        ``cancel`` stops the branch before its next state (a sibling branch or iteration failed).
        ``checkpoint`` records each state's name, input and variables in :attr:`position` (the top
        level does, so a failed execution can be redriven from the state that failed). ``chain`` is
        the branch's history position (a new one at 0 when None).
        """
        global _runners
        if _runners is None:  # states imports this module: resolved once, not on every branch run
            from .states import RUNNERS

            _runners = RUNNERS
        runners = _runners
        language = branch.query_language or language or self.language
        variables = {} if variables is None else variables
        chain = Chain() if chain is None else chain
        history = self.history
        name: str | None = start_at or branch.start_at
        while name is not None:
            if checkpoint:
                self.position = (name, value, dict(variables))
            self._check_alive()
            if cancel is not None and cancel.is_set():
                raise Aborted()
            state = branch.states[name]
            kind = state.type
            before = chain.source
            entered = history.add(
                chain,
                f"{kind}StateEntered",
                "stateEnteredEventDetails",
                events.entered(name, value) if history.recording else None,
            )
            env = Env(
                name=name,
                context={**self.base_context, "State": {"Name": name, "EnteredTime": iso_now(), "RetryCount": 0}},
                variables=variables,
                language=state.query_language or language,
                entered_event=entered,
                chain=chain,
                entered_from=before,
            )
            try:
                value, name = runners[kind](self, state, value, env)
            except StatesError as exc:
                error = env.runtime_error(exc)
                if error.name == ErrorName.QUERY_EVALUATION_ERROR.value and not env.child_failed:
                    self.evaluation_failed(error, env)
                raise error from None
            if kind != "Fail":
                history.add(
                    chain,
                    f"{kind}StateExited",
                    "stateExitedEventDetails",
                    events.exited(env.name, value) if history.recording else None,
                )
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
            if error.name == ErrorName.QUERY_EVALUATION_ERROR.value and not env.child_failed:
                self.evaluation_failed(error, env)
            flow = self.runtime.flow if state.type == "Task" else None
            if flow is not None:  # a throttled service (dmap.flow): counted, and the Map Run may cut its concurrency
                flow.on_error(error.name)
            index = retry.find_retrier(state.retry, error.name)
            if index is not None and attempts[index] < state.retry[index].max_attempts:
                delay = retry.backoff_seconds(state.retry[index], attempts[index], self.runtime.rng)
                if flow is not None:
                    delay += flow.extra_backoff(error.name, delay, self.runtime.rng)
                self.runtime.clock.sleep(delay)
                attempts[index] += 1
                env.context["State"]["RetryCount"] = sum(attempts)
                env.child_failed = env.failure_recorded = False
                continue
            self.failed(state.type, error, env)
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
