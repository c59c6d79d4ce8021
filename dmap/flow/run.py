"""Flow control of one Map Run as its coordinator and the control plane see it.

The coordinator switches adaptive concurrency on at the start (``flow={"adaptive": True}``) and
calls :meth:`RunFlow.tick` from its dispatch loop (the additive increase); ``describe-map-run``,
the progress line and the metrics read :func:`flow_state`. The rule itself is in
:mod:`dmap.flow.adaptive`; the waiting counts in :mod:`dmap.flow.hooks`.
"""

from __future__ import annotations

import time
from typing import Any

from .adaptive import Adaptive
from .hooks import waiting_stats
from .options import FlowOptions

TICK_SECONDS = 0.1
"""How often the coordinator may grow the effective concurrency (a window is counted in successes, not time)."""


class RunFlow:
    """The coordinator's handle on a Map Run's flow control.

    Args:
        store: The run store.
        run: The run id.
        options: The execution's flow options, or None.
    """

    def __init__(self, store: Any, run: str, options: FlowOptions | None) -> None:
        self.store, self.run, self.options = store, run, options
        self.adaptive = Adaptive(store)
        self._next = 0.0
        self.history: list[tuple[float, int]] = []  # (monotonic time, effective concurrency) at each change

    def start(self) -> None:
        """Switch adaptive concurrency on when asked (a resumed run keeps its state: ``on`` is idempotent)."""
        if self.options is not None and self.options.adaptive:
            self.adaptive.switch_on(self.run, self.options.min_concurrency)

    def tick(self) -> None:
        """The additive increase, at most every :data:`TICK_SECONDS`."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + TICK_SECONDS
        out = self.adaptive.grow(self.run)
        if out is not None and out[0] and (not self.history or self.history[-1][1] != out[1]):
            self.history.append((now, out[1]))


def update_flow(store: Any, run: str, *, adaptive: bool | None, min_concurrency: int | None) -> None:
    """``update-map-run --adaptive/--no-adaptive --min-concurrency N``: switch and set the floor at once."""
    switch = Adaptive(store)
    if adaptive is False:
        switch.switch_off(run)
    if min_concurrency is not None:
        switch.set_floor(run, min_concurrency)
    if adaptive:
        switch.switch_on(run, min_concurrency)


def flow_state(store: Any, run: str, max_concurrency: int) -> dict[str, Any]:
    """dmap's flow fields of a Map Run for ``describe-map-run`` (beside AWS's fields).

    ``effectiveConcurrency`` is the limit ``acquire`` applies now: the adaptive one while adaptive
    concurrency is on, else MaxConcurrency. ``waiting`` children wait for a rate-limit token (they
    are RUNNING in the counts: they hold their permit); ``throttledCalls`` counts the throttling
    errors children saw, ``waitedMs`` the time they spent waiting for tokens.
    """
    state = Adaptive(store).state(run)
    out: dict[str, Any] = {
        "effectiveConcurrency": state.get("effectiveConcurrency", max_concurrency),
        "adaptive": "effectiveConcurrency" in state,
        "throttledCalls": state["throttledCalls"],
    }
    if "minConcurrency" in state:
        out["minConcurrency"] = state["minConcurrency"]
    out.update(waiting_stats(store, run))
    return out
