"""Backends: where children run. One interface, two implementations, one coordinator code path.

* ``local`` (:class:`~dmap.backends.local.LocalBackend`): the embedded default — threads in this
  process and an in-process run store; no servers.
* ``celery`` (:class:`~dmap.backends.celery.CeleryBackend`): children are Celery tasks on workers
  anywhere; the run store and the broker are Redis.

Both run the top level of an execution with the interpreter in the caller and hand every
DISTRIBUTED Map to the same :class:`~dmap.coordinator.Coordinator`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..api import execute_in_process
from ..asl import distributed_maps
from ..asl.model import StateMachine
from ..child import ChildPlan
from ..config import Settings, get_settings
from ..coordinator import MapRunner
from ..errors import ConfigurationError
from ..interpreter import Runtime
from ..records import Execution
from ..storage import Storage, get_storage
from ..store import Lease, RunStore


class Backend:
    """The base of every backend: runs executions; subclasses say where children go.

    Subclasses set :attr:`store` and implement :meth:`publish_plan`, :meth:`dispatch` (the
    :class:`~dmap.coordinator.Engine` protocol). Class-level convenience variants are one-liners.
    """

    name = "base"
    store: RunStore

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._storage: Storage | None = None

    def storage(self) -> Storage:
        """Object storage for readers and writers (``DMAP_S3_ROOT`` or S3), created once."""
        if self._storage is None:
            self._storage = get_storage(self.settings.s3_root)
        return self._storage

    def publish_plan(self, plan: ChildPlan) -> None:
        """Make a Map Run's plan available to the workers."""
        raise NotImplementedError

    def dispatch(self, plan: ChildPlan, leases: Sequence[Lease]) -> None:
        """Send granted children to the workers."""
        raise NotImplementedError

    def run(
        self,
        machine: StateMachine,
        execution: Execution,
        *,
        manifest: Any = None,
        max_concurrency: int | None = None,
        wait: bool = True,
    ) -> Execution:
        """Run an execution: top-level states here, DISTRIBUTED Maps through the coordinator.

        With ``wait=False`` the execution runs in a background thread of this process and the
        RUNNING record is returned at once.
        """
        maps = distributed_maps(machine)
        runner = MapRunner(
            self,
            execution,
            manifest=manifest,
            manifest_state=maps[0][0] if maps else None,
            max_concurrency=max_concurrency,
        )
        if manifest is not None and not maps:
            raise ConfigurationError("--manifest needs a definition with a DISTRIBUTED Map state")
        runtime = Runtime(payload_limit=self.settings.payload_limit, distributed_map=runner)
        if wait:
            return execute_in_process(machine, execution, runtime)
        threading.Thread(
            target=execute_in_process, args=(machine, execution, runtime), name="dmap-execution", daemon=True
        ).start()
        return execution

    def close(self) -> None:
        """Release resources (thread pools, connections)."""


def get_backend(backend: Any = None, settings: Settings | None = None) -> Backend:
    """A backend by name (``"local"``, ``"celery"``), an instance (returned as is), or None for ``DMAP_BACKEND``."""
    if isinstance(backend, Backend):
        return backend
    settings = settings or get_settings()
    name = backend or settings.backend
    if name == "local":
        from .local import LocalBackend

        return LocalBackend.shared(settings)
    if name == "celery":
        from .celery import CeleryBackend

        return CeleryBackend(settings)
    raise ConfigurationError(f"unknown backend {name!r}: use 'local' or 'celery'")
