"""Lease heartbeats: one daemon thread per process renews the run leases of the children it runs.

A worker that dies stops renewing; its leases expire and the coordinator re-dispatches the items.
A lease that could not be renewed (reclaimed meanwhile) is logged: the child's late result will
still be counted once, by the store's first-result-wins rule.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .store import RunStore

logger = logging.getLogger(__name__)


class Heartbeat:
    """Renews leases every third of their length while children run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[tuple[str, int, str], tuple[RunStore, int]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, store: RunStore, run: str, child: int, token: str, lease_ms: int) -> None:
        """Start renewing a child's lease."""
        with self._lock:
            self._active[(run, child, token)] = (store, lease_ms)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="dmap-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, run: str, child: int, token: str) -> None:
        """Stop renewing a child's lease (it completed)."""
        with self._lock:
            self._active.pop((run, child, token), None)

    def _loop(self) -> None:
        while True:
            with self._lock:
                active = dict(self._active)
            interval = min((lease for _, lease in active.values()), default=30_000) / 3000.0
            self._wake.wait(interval)
            by_run: dict[tuple[int, str], list[tuple[int, str]]] = {}
            stores: dict[int, Any] = {}
            for (run, child, token), (store, lease_ms) in active.items():
                stores[id(store)] = (store, lease_ms)
                by_run.setdefault((id(store), run), []).append((child, token))
            for (store_id, run), leases in by_run.items():
                store, lease_ms = stores[store_id]
                try:
                    kept = store.renew(run, leases, lease_ms=lease_ms)
                except Exception:  # a Redis hiccup: try again next beat
                    logger.warning("lease renewal failed for map run %s", run, exc_info=True)
                    continue
                for (child, token), ok in zip(leases, kept, strict=False):
                    with self._lock:
                        still_running = (run, child, token) in self._active
                    if not ok and still_running:
                        logger.warning("lease of child %s of map run %s was lost (reclaimed)", child, run)
                        self.remove(run, child, token)


heartbeat = Heartbeat()
"""The process-wide heartbeat."""
