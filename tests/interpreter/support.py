"""Helpers of the interpreter tests: a private handler registry and a fake clock per test.

:class:`Harness` runs a definition the way the interpreter is meant to be driven —
``execute(load(defn), input, runtime=Runtime(registry=Registry(), clock=FakeClock()))`` — so no
test leaks handlers into another and nothing ever sleeps for real (Wait and Retry delays are
recorded in ``sfn.clock.sleeps``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dmap.asl
from dmap.interpreter import ExecutionInfo, ExecutionResult, FakeClock, Registry, Runtime, TaskContext, execute

Handler = Callable[[Any, TaskContext], Any]


@dataclass
class Harness:
    """A registry, a clock and a shortcut to run a definition with them."""

    registry: Registry = field(default_factory=Registry)
    clock: FakeClock = field(default_factory=FakeClock)

    def task(self, name: str) -> Callable[[Handler], Handler]:
        """Register a handler in this test's registry only."""

        def decorate(fn: Handler) -> Handler:
            self.registry.register(name, fn)
            return fn

        return decorate

    def run(
        self, definition: dict[str, Any], input: Any = None, *, info: ExecutionInfo | None = None, **runtime: Any
    ) -> ExecutionResult:
        """Load ``definition`` and execute it on ``input``; extra keywords go to :class:`Runtime`."""
        machine = dmap.asl.load(definition)
        return execute(machine, input, runtime=Runtime(registry=self.registry, clock=self.clock, **runtime), info=info)


def machine(*states: tuple[str, dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A definition from ``(name, state)`` pairs; the first one is StartAt."""
    return {"StartAt": states[0][0], "States": dict(states), **top}


def single(state: dict[str, Any]) -> dict[str, Any]:
    """A one-state definition named ``S``; ``End: true`` is added where the type needs it."""
    if state["Type"] not in ("Succeed", "Fail", "Choice") and "Next" not in state:
        state = {**state, "End": True}
    return machine(("S", state))
