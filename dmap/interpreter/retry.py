"""Retry and Catch: which retrier or catcher matches an error, and how long to back off.

Pure functions over the definition models; the interpreter owns the loop and the clock.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..asl.model import Catcher, Retrier
from ..errors import UNCATCHABLE, ErrorName


def matches(error_equals: Sequence[str], error: str) -> bool:
    """True if an ``ErrorEquals`` list matches ``error`` under AWS's wildcard rules.

    ``States.ALL`` matches everything except ``States.Runtime`` and ``States.DataLimitExceeded``;
    ``States.TaskFailed`` matches any error except ``States.Timeout`` (and those two).
    """
    if error in error_equals:
        return True
    if error in UNCATCHABLE:
        return False
    if ErrorName.ALL.value in error_equals:
        return True
    return ErrorName.TASK_FAILED.value in error_equals and error != ErrorName.TIMEOUT.value


def find_retrier(retriers: Sequence[Retrier], error: str) -> int | None:
    """The index of the first retrier whose ErrorEquals matches, or None."""
    if error in UNCATCHABLE:
        return None
    return next((i for i, r in enumerate(retriers) if matches(r.error_equals, error)), None)


def find_catcher(catchers: Sequence[Catcher], error: str) -> Catcher | None:
    """The first catcher whose ErrorEquals matches, or None."""
    if error in UNCATCHABLE:
        return None
    return next((c for c in catchers if matches(c.error_equals, error)), None)


def backoff_seconds(retrier: Retrier, attempt: int, rng: random.Random | None = None) -> float:
    """The delay before retry number ``attempt`` (0-based) of ``retrier``.

    ``IntervalSeconds * BackoffRate ** attempt``, capped by ``MaxDelaySeconds``; with
    ``JitterStrategy: FULL`` a uniform random value in ``[0, delay]``.
    """
    delay = retrier.interval_seconds * retrier.backoff_rate**attempt
    if retrier.max_delay_seconds is not None:
        delay = min(delay, float(retrier.max_delay_seconds))
    if retrier.jitter_strategy == "FULL":
        delay = (rng or random).uniform(0, delay)
    return float(delay)
