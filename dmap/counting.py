"""Early tolerance: count a Map Run's items in the background so its total is known long before its reader's end.

AWS judges ToleratedFailurePercentage against the *total* number of items (failed items x 100 >
percentage x total, strict). Without the total the rule cannot be applied, so a run with a broken
handler would run every item before failing. This module owns learning the total early: a
:class:`TotalCounter` thread counts the same source the coordinator reads (``readers.count``,
streamed, bounded memory), concurrently with dispatch, and hands the number to a callback (the
coordinator declares it to the run store). It does not dispatch, and a count that fails never fails
the run: the reader reports real errors where they belong; the total just stays unknown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

from .asl.model import MapState
from .readers.count import CountCancelled, count_items
from .sources import override_spec, reader_spec, state_items
from .storage import Storage, get_storage

logger = logging.getLogger(__name__)


def count_source(
    state: MapState,
    data: Any,
    context: Any,
    variables: Mapping[str, Any] | None,
    *,
    manifest: str | Path | Iterable[Any] | None,
    language: str = "JSONPath",
    storage: Storage | None = None,
    cancelled: threading.Event | None = None,
) -> int | None:
    """How many items ``sources.open_source`` yields for this Map, counted without running anything.

    Args:
        state: The DISTRIBUTED Map.
        data: The Map's input.
        context: The context object.
        variables: The variables in scope.
        manifest: The ``--manifest`` override (a path, an S3 URI, or Python items).
        language: The Map's query language.
        storage: The backend's object storage (default: the environment's).
        cancelled: Set it to stop the count (it then raises ``CountCancelled``).

    Returns:
        The number of items, MaxItems applied; None for Python items that can only be iterated once.

    Raises:
        StatesError: The source cannot be read (the reader will say so too).
        CountCancelled: ``cancelled`` was set.
    """
    if manifest is not None and not isinstance(manifest, str | Path):
        # A list counts itself; an iterator would be consumed by counting it.
        return len(manifest) if isinstance(manifest, Sized) and not isinstance(manifest, Iterator) else None
    spec = reader_spec(state, data, context, variables)
    if manifest is not None:
        spec, local = override_spec(manifest, spec)
        storage = local or storage
    if spec is None:
        if language == "JSONata":
            from .interpreter.jsonata_flow import map_items

            return len(map_items(state, data, context, dict(variables or {})))
        return len(state_items(state, data, context, variables))
    return count_items(spec, storage or get_storage(), cancelled=cancelled)


class TotalCounter:
    """A daemon thread that counts a source once and reports the total; never raises to its owner.

    Args:
        count: Counts the source; gets the cancellation event, returns the total or None if uncountable.
        report: Called once with the total when the count finishes (not after :meth:`cancel`).
        name: The thread's name (logs).
    """

    def __init__(
        self, count: Callable[[threading.Event], int | None], report: Callable[[int], object], *, name: str
    ) -> None:
        self._count, self._report = count, report
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.total: int | None = None
        """The counted total once known (also when cancelled after the count)."""

    def start(self) -> None:
        """Start counting in the background."""
        self._thread.start()

    def cancel(self) -> None:
        """Stop counting (the reader reached the end first, or the run is over); does not wait."""
        self._cancelled.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (tests and orderly shutdowns)."""
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            total = self._count(self._cancelled)
        except CountCancelled:
            return
        except Exception as exc:  # an uncountable source: the run goes on, the reader reports real errors
            logger.info("%s: the items could not be counted ahead (%s); the total is known at the end", self.name, exc)
            return
        if total is None or self._cancelled.is_set():
            return
        self.total = total
        try:
            self._report(total)
        except Exception as exc:  # the run ended meanwhile (its state gone), or the store is unreachable for a moment
            logger.warning("%s: could not declare the total of %d items: %s", self.name, total, exc)

    @property
    def name(self) -> str:
        """The thread's name."""
        return self._thread.name
