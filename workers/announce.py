"""What a worker's log says about its handlers: which are registered at start, and each handler failure.

A worker that lacks a handler, or runs one that raises on every item, should say so in its own log,
where the operator looks first, not only in ``dmap failures``. The failures are logged by the
interpreter (``dmap.handlers``, WARNING: handler, item index, error with URL passwords redacted,
never the input); this module makes a worker show them and names the handlers at start.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_ready

from dmap.interpreter.tasks import registry

logger = logging.getLogger("dmap.worker")
"""The worker's own log, shown at INFO beside Celery's (see :func:`configure`)."""


@worker_init.connect
@worker_process_init.connect
def configure(**_: Any) -> None:
    """Show ``dmap.*`` INFO messages in a worker (Celery configures only its own loggers here).

    The handler is added once; ``workers.app`` keeps ``worker_hijack_root_logger`` off, so the
    root logger belongs to the user.
    """
    dmap_logger = logging.getLogger("dmap")
    if not any(getattr(h, "_dmap_worker", False) for h in dmap_logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"))
        handler._dmap_worker = True  # type: ignore[attr-defined]
        dmap_logger.addHandler(handler)
        dmap_logger.propagate = False  # a root handler the user set up would print every line twice
    if dmap_logger.level == logging.NOTSET or dmap_logger.level > logging.INFO:
        dmap_logger.setLevel(logging.INFO)


@worker_ready.connect
def announce_handlers(**_: Any) -> None:
    """One INFO line at start naming every registered handler (or warning that there are none)."""
    names = registry.names()
    if names:
        logger.info("dmap worker ready: %d task handler(s) registered: %s", len(names), ", ".join(names))
    else:
        logger.warning(
            "dmap worker ready with no task handlers registered: children calling a Task will fail; "
            "start it with --import MODULE (or DMAP_IMPORTS)"
        )
