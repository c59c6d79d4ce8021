"""Where a Map Run's child results go: the inline Map output, or the ResultWriter's files.

Two sinks with one shape (``drain`` while the run goes on, ``finish`` at its end):

* :class:`InlineResults` — no ResultWriter: records stay in the run store until the Map Run ends
  (a redrive or a restarted coordinator finds them all), then become the ordered output array,
  bounded by the payload limit.
* :class:`ExportedResults` — a ResultWriter: records are streamed to the result files in child
  order while the run goes on. Every ``SEGMENT`` records the open files are finished (durable) and
  their list is saved with the Map Run before the records are dropped from the store, so the store
  stays bounded and a coordinator killed at any moment resumes without losing or repeating a record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ErrorName, StatesError
from .interpreter import dataflow
from .records import MapRun
from .store import ChildStatus, RunStore
from .writers import RecordContext, ResultWriter, WriterSpec, apply_writer_config

CHUNK = 500
SEGMENT = 10_000
"""Records between two durable checkpoints of the result files (bounds what the run store holds)."""
SEGMENT_BYTES = 16 * 1024 * 1024
"""...or fewer, once the records written since the last checkpoint hold this many characters: a record
carries its child's input, and 10,000 records of 256 KiB batches would be 2.5 GB held in the store."""
GAP_SPAN = 2048
"""Children whose statuses and record presence are read in one round trip each, to pass over written ones."""


class InlineResults:
    """The Map output without ResultWriter export: child outputs in child order."""

    def __init__(
        self,
        store: RunStore,
        run: str,
        *,
        state_name: str,
        payload_limit: int,
        writer_spec: WriterSpec | None = None,
        context: RecordContext | None = None,
    ) -> None:
        self.store, self.run, self.state_name, self.limit = store, run, state_name, payload_limit
        self.writer_spec, self.context = writer_spec, context

    def drain(self) -> None:
        """Nothing to do while running: records stay in the store until the end."""

    def finish(self, *, failed: bool, pending: Callable[[], Iterator[dict[str, Any]]]) -> Any:
        """The ordered output array (None for a failed run, whose output is never used)."""
        if failed:
            return None
        size, out = 2, []
        for value, text in self._values():
            size += len((dataflow.compact(value) if text is None else text).encode("utf-8")) + 1
            if size > self.limit:
                raise StatesError(
                    ErrorName.DATA_LIMIT_EXCEEDED,
                    f"The state/task '{self.state_name}' returned a result with a size exceeding the maximum "
                    f"number of bytes service limit ({self.limit} bytes); add a ResultWriter to export the "
                    "results to S3, or ResultSelector/ItemSelector to shrink them.",
                )
            out.append(value)
        return out

    def _values(self) -> Iterator[tuple[Any, str | None]]:
        """Each output value, with its compact JSON when the record holds it already (no second dump)."""
        records = records_from(self.store, self.run, 0, take=False)
        if self.writer_spec is not None and self.context is not None:
            for value in apply_writer_config(records, self.writer_spec, context=self.context):
                yield value, None
            return
        for record in records:
            if record.get("Status") == "SUCCEEDED":
                yield dataflow.parse(record["Output"]), record["Output"]
            else:
                yield failure_entry(record), None


class ExportedResults:
    """Child records streamed to a ResultWriter with durable checkpoints (see the module docstring)."""

    def __init__(
        self, store: RunStore, run: str, writer: ResultWriter, map_run: MapRun, save: Callable[[MapRun], None]
    ) -> None:
        self.store, self.run, self.writer, self.map_run, self.save = store, run, writer, map_run, save
        self.next = map_run.results_upto  # the next child whose record is to be written
        self._marks_from, self._marks = 0, ""  # record_marks of a span from _marks_from (see _written_from)
        self.since_checkpoint = 0
        self._since_bytes = 0  # characters of the records written since the last checkpoint

    def drain(self) -> None:
        """Write the records of the children finished in order since the last call; checkpoint every SEGMENT.

        Raises:
            StatesError: ``States.ResultWriterFailed``, again, once the writer has failed.
        """
        if self.writer.error is not None:
            raise self.writer.error
        for record in self._ready():
            self.writer.write(record)
            self.since_checkpoint += 1
            if self.since_checkpoint >= SEGMENT or self._since_bytes >= SEGMENT_BYTES:
                self.checkpoint()

    def _ready(self) -> Iterator[dict[str, Any]]:
        total = self.store.counts(self.run).executions.total
        while self.next < total:
            batch = self.store.read_results(self.run, self.next, CHUNK)
            if not batch:
                # No record: written before a redrive (passed over a span at a time), or still running.
                written = self._written_from(total)
                if written:
                    self.next += written
                    continue
                # The status is read first and the record again after, so a child finishing in
                # between is never taken for one written before.
                if not self.store.statuses(self.run, self.next, 1)[0].terminal:
                    return
                if self.store.read_results(self.run, self.next, 1):
                    continue
                self.next += 1
                continue
            for text in batch:
                self.next += 1  # before the yield: a checkpoint taken while the record is written counts it
                self._since_bytes += len(text)
                yield json.loads(text)

    def _written_from(self, total: int) -> int:
        """How many children from ``self.next`` on finished with their records already written (marks cached).

        A child marked ``w`` stays so for the whole run (only a redrive, before the run, resets it), so
        the marks of a span are read once, not once per gap.
        """
        offset = self.next - self._marks_from
        if not 0 <= offset < len(self._marks):
            self._marks_from, offset = self.next, 0
            self._marks = self.store.record_marks(self.run, self.next, min(GAP_SPAN, total - self.next))
        rest = self._marks[offset:]
        return len(rest) - len(rest.lstrip("w"))

    def checkpoint(self) -> None:
        """Make every written record durable, remember where, then drop those records from the store."""
        self.map_run.result_files = self.writer.checkpoint()
        first, self.map_run.results_upto = self.map_run.results_upto, self.next
        self.save(self.map_run)
        drop(self.store, self.run, first, self.next)
        self.since_checkpoint = self._since_bytes = 0

    def finish(self, *, failed: bool, pending: Callable[[], Iterator[dict[str, Any]]]) -> Any:
        """Write what is left, then PENDING records of children that never started, then the manifest."""
        self.drain()
        for record in pending():
            self.writer.write(record)
        output = self.writer.close()
        self.map_run.result_files = self.writer.manifest()["ResultFiles"]
        first, self.map_run.results_upto = self.map_run.results_upto, self.next
        self.save(self.map_run)
        drop(self.store, self.run, first, self.next)
        return output


def _runs_with_records(store: RunStore, run: str, first: int, upto: int) -> Iterator[tuple[int, int]]:
    """``(child, count)`` of each run of consecutive children in ``first`` .. ``upto - 1`` with a record in the store.

    Read ``GAP_SPAN`` children at a time (:meth:`~dmap.store.RunStore.record_marks`), so children
    whose records were written before a redrive cost no round trip each.
    """
    child = first
    while child < upto:
        marks = store.record_marks(run, child, min(GAP_SPAN, upto - child))
        for found in re.finditer("r+", marks):
            yield child + found.start(), found.end() - found.start()
        child += len(marks)


def records_from(store: RunStore, run: str, first: int, *, take: bool) -> Iterator[dict[str, Any]]:
    """Every finished child's record from child ``first`` on, in child order (children without one are skipped)."""
    fetch = store.take_results if take else store.read_results
    for child, count in _runs_with_records(store, run, first, store.counts(run).executions.total):
        while count > 0:
            batch = fetch(run, child, min(CHUNK, count))
            for text in batch:
                yield dataflow.parse(text)
            if not batch:
                break
            child, count = child + len(batch), count - len(batch)


def drop(store: RunStore, run: str, first: int, upto: int) -> None:
    """Remove the records of children ``first`` .. ``upto - 1`` from the store (they are durable elsewhere)."""
    for child, count in _runs_with_records(store, run, first, upto):
        while count > 0:
            taken = store.take_results(run, child, min(CHUNK, count))
            if not taken:
                break
            child, count = child + len(taken), count - len(taken)


def pending_children(store: RunStore, run: str, upto: int) -> Iterator[dict[str, Any]]:
    """PENDING records of granted children that never started (queued when the run stopped)."""
    for first in range(0, upto, 4096):
        for offset, status in enumerate(store.statuses(run, first, min(4096, upto - first))):
            if status == ChildStatus.PENDING:
                child = first + offset
                yield {"Child": child, "Status": "PENDING", "Input": store.child_input(run, child) or "null"}


def failure_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A tolerated failed child's entry in the inline output (dmap's documented choice)."""
    return {"Status": record.get("Status"), "Error": record.get("Error"), "Cause": record.get("Cause")}
