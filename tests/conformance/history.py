"""Compare dmap's GetExecutionHistory with the ``expected_history`` AWS recorded, as the corpus README says.

Same events in order (``type``, ``id``, ``previousEventId``) and the same ``…EventDetails`` with
deep-equal contents: ``input``/``output`` compared as JSON values, the placeholders (``timestamp``,
``snf_role_arn``, ``<…>`` segments, ``111111111111``) as wildcards.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from .runner import same

_PAYLOADS = ("input", "output")
_WILDCARDS = ("snf_role_arn", "map_run_arn")


def run_history(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a case on the local backend and read its whole history through the control plane, page by page."""
    import dmap

    execution = dmap.run(case["definition"], input=case.get("input"), name=f"hist-{uuid.uuid4().hex[:12]}")
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = dmap.get_execution_history(execution.execution_arn, max_results=1000, next_token=token)
        events.extend(page)
        token = page.next_token
        if token is None:
            return events


def compare(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    """The first difference between two histories, or ``""`` when they match."""
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        where = f"event #{index + 1} ({want['type']})"
        for key in ("type", "id", "previousEventId"):
            if want[key] != have.get(key):
                return f"{where}: {key} {have.get(key)!r} != {want[key]!r}"
        want_keys = {k for k in want if k.endswith("EventDetails")}
        have_keys = {k for k in have if k.endswith("EventDetails")}
        if want_keys != have_keys:
            return f"{where}: details {sorted(have_keys)} != {sorted(want_keys)}"
        for key in want_keys:
            problem = _details(want[key], have[key])
            if problem:
                return f"{where}: {key}.{problem}"
    if len(expected) != len(got):
        extra = [e["type"] for e in got[len(expected) :]] or [e["type"] for e in expected[len(got) :]]
        return f"{len(got)} events != {len(expected)} (first unmatched: {extra[:3]})"
    return ""


def _details(want: dict[str, Any], have: dict[str, Any]) -> str:
    if set(want) != set(have):
        return f"fields {sorted(have)} != {sorted(want)}"
    for field, value in want.items():
        if field in _PAYLOADS:
            if not same(_parsed(value), _parsed(have[field])):
                return f"{field} {have[field]!r} != {value!r}"
        elif not _matches(value, have[field]):
            return f"{field} {have[field]!r} != {value!r}"
    return ""


def _parsed(value: Any) -> Any:
    """A recorded payload as a JSON value: strings are JSON text, objects were parsed by the snapshot tool."""
    return json.loads(value) if isinstance(value, str) else value


def _matches(want: Any, have: Any) -> bool:
    if isinstance(want, str) and (want in _WILDCARDS or "<" in want or "111111111111" in want):
        if want in _WILDCARDS:
            return isinstance(have, str)
        parts = re.split(r"<[^>]*>|111111111111", want)
        pattern = "[^:/]+".join(re.escape(part) for part in parts)
        return isinstance(have, str) and re.fullmatch(pattern, have) is not None
    return same(want, have)
