"""Protect what children call (DESIGN §13): shared rate limits, adaptive concurrency and ``dmap plan``.

Outside the ASL, so definitions stay portable: limits are set with ``dmap limits set`` /
:func:`set_limit`, adaptive concurrency per Map Run with ``dmap run --adaptive`` /
``dmap.run(..., flow={"adaptive": True})``, and ``dmap plan`` counts and prices a run before it runs.

Modules: :mod:`.rates` (``50/s``), :mod:`.limits` (the token buckets), :mod:`.adaptive` (AIMD on the
run's permits), :mod:`.hooks` (inside a child), :mod:`.run` (the coordinator's side and describe),
:mod:`.cost` and :mod:`.plan` (``dmap plan``), :mod:`.cli` (the commands).
"""

from __future__ import annotations

from typing import Any

from .limits import limits_for
from .options import FlowOptions
from .rates import Limit, make_limit

__all__ = ["FlowOptions", "Limit", "delete_limit", "list_limits", "set_limit"]


def _limits(backend: Any) -> Any:
    from ..backends import get_backend

    return limits_for(get_backend(backend).store)


def set_limit(key: str, rate: str, *, burst: int | None = None, backend: Any = None) -> Limit:
    """Limit calls to ``key`` across the cluster: every child of every Map Run waits for a token first.

    Args:
        key: A Task resource (a Lambda ARN or function name: either form matches the other), an
            ``http:invoke`` host (``api.example.com`` or ``host:port``), or a label a Map Run takes
            with ``flow={"limit": "label"}`` / ``dmap run --limit label``.
        rate: ``50/s``, ``3000/m`` or ``100/h``.
        burst: Calls that may go at once after a quiet spell (default 1: evenly spread).
        backend: The backend whose Redis keeps the limit (the local backend without Redis keeps it in
            this process).

    Returns:
        The limit as stored.

    Raises:
        ConfigurationError: A bad rate, burst or key.
    """
    limit = make_limit(key, rate, burst)
    _limits(backend).set(limit)
    return limit


def list_limits(*, backend: Any = None) -> list[Limit]:
    """Every rate limit, by key."""
    limits: list[Limit] = _limits(backend).all()
    return limits


def delete_limit(key: str, *, backend: Any = None) -> bool:
    """Remove the limit on ``key``; False when there was none."""
    return bool(_limits(backend).delete(key))
