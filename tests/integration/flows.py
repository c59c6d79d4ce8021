"""Definitions and inputs of the integration tests: one DISTRIBUTED Map over ``ITestWork``.

Owns only the shape of the test workflows; the handlers live in :mod:`tests.integration.handlers`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def work_map(
    *,
    max_concurrency: int = 0,
    tolerated_count: int | None = None,
    tolerated_percentage: float | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    """A state machine whose DISTRIBUTED Map runs ``ITestWork`` once per item (or per batch).

    The ItemSelector adds the Map input's ``ns`` (the test's counter namespace) and
    ``sleep_ms`` to each item, so items stay small.
    """
    selector = {
        "i.$": "$$.Map.Item.Value.i",
        "fail.$": "$$.Map.Item.Value.fail",
        "poison.$": "$$.Map.Item.Value.poison",
        "hold.$": "$$.Map.Item.Value.hold",
        "ns.$": "$.ns",
        "sleep_ms.$": "$.sleep_ms",
    }
    state: dict[str, Any] = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": selector,
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": "ITestWork", "End": True}},
        },
        "End": True,
    }
    if tolerated_count is not None:
        state["ToleratedFailureCount"] = tolerated_count
    if tolerated_percentage is not None:
        state["ToleratedFailurePercentage"] = tolerated_percentage
    if batch is not None:
        state["ItemBatcher"] = {"MaxItemsPerBatch": batch}
    return {"StartAt": "Fan", "States": {"Fan": state}}


def work_input(
    ns: str,
    count: int,
    *,
    failing: Collection[int] = (),
    poison: Collection[int] = (),
    hold: Collection[int] = (),
    sleep_ms: float = 0,
) -> dict[str, Any]:
    """The execution input: ``count`` items ``{"i", "fail", "poison", "hold"}`` and the shared fields."""
    items = [{"i": i, "fail": i in failing, "poison": i in poison, "hold": i in hold} for i in range(count)]
    return {"ns": ns, "sleep_ms": sleep_ms, "items": items}


def expected_output(count: int) -> list[dict[str, int]]:
    """The Map output of a run in which every one of ``count`` single items succeeded."""
    return [{"i": i, "double": 2 * i} for i in range(count)]
