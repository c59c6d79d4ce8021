"""The ResultWriter: a Map Run's results exported to storage, in AWS's layout, streamed.

This module owns the files under ``<Prefix>/<map-run-id>/``: ``SUCCEEDED_n.json``, ``FAILED_n.json``
(failed, timed-out and aborted children), ``PENDING_n.json`` (children never started), each opened
lazily and rolled over past ``max_file_bytes``, then ``manifest.json`` listing them, and the Map
state output that points at it. Record shapes are in :mod:`dmap.writers.records`, file framing and
rollover in :mod:`dmap.writers.files`. It does not collect results (the coordinator feeds it
records in child order, which is item-index order) and it holds one record at a time.

A storage failure of any kind becomes ``States.ResultWriterFailed`` (catchable, as on AWS).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from ..errors import ConfigurationError, InvalidStateError, StatesError, StorageError
from ..records import JOURNAL_PREFIX
from ..storage import Storage
from .files import RollingFile, abandon, writer_failed
from .records import FILE_GROUPS, RecordContext, WriterSpec, encode_json, transform_output

logger = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 5 * 1024**3
_GROUPS = ("FAILED", "PENDING", "SUCCEEDED")


def result_base(prefix: str | None, map_run_id: str) -> str:
    """The key prefix of a Map Run's result files: ``<Prefix>/<map-run-id>/``.

    A prefix with or without a trailing ``/`` gives the same keys; an empty or missing prefix puts
    the Map Run's folder at the bucket's root.
    """
    head = (prefix or "").rstrip("/")
    return f"{head}/{map_run_id}/" if head else f"{map_run_id}/"


class ResultWriter:
    """Streams child records into AWS-shaped result files and writes the manifest.

    Use ``write`` for each child record in child order, then ``close`` for the Map state output;
    on failure, ``abort``. As a context manager it closes on a clean exit (if not closed already)
    and aborts on an exception. Not thread-safe: one coordinator thread owns it.

    Args:
        storage: Where to write (S3, MinIO or a local folder).
        spec: The resolved ResultWriter; ``spec.bucket`` is required here.
        map_run_arn: The Map Run's ARN (in the manifest and the state output).
        map_run_id: The Map Run's UUID (the result folder and the child names).
        state_machine_arn: The children's state machine ARN (``StateMachineArn`` of records).
        execution_arn_prefix: A child's ARN without its name.
        redrive_count: The Map Run's redrive count (``RedriveCount`` of records).
        max_file_bytes: The rollover size of a result file, in UTF-8 bytes (AWS: 5 GB).
        arn_prefix: ``arn:aws:states:<region>:<account>:`` the files' ARNs are written with (the API caller's,
            for an execution ``dmap serve`` started: the files are what AWS users parse); None: as given.

    Raises:
        ConfigurationError: If ``spec.bucket`` is missing or ``max_file_bytes`` is not positive.
    """

    def __init__(
        self,
        storage: Storage,
        spec: WriterSpec,
        *,
        map_run_arn: str,
        map_run_id: str,
        state_machine_arn: str,
        execution_arn_prefix: str,
        redrive_count: int = 0,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        resume: dict[str, list[dict[str, Any]]] | None = None,
        arn_prefix: str | None = None,
    ) -> None:
        if not spec.bucket:
            raise ConfigurationError("a ResultWriter that exports to storage needs a Bucket")
        if max_file_bytes <= 0:
            raise ConfigurationError(f"max_file_bytes must be positive, got {max_file_bytes}")
        self._storage = storage
        self._spec = spec
        self._bucket: str = spec.bucket
        self._map_run_arn = map_run_arn

        def shown(arn: str) -> str:
            return arn.replace(JOURNAL_PREFIX, arn_prefix, 1) if arn_prefix else arn

        self._file_map_run_arn = shown(map_run_arn)
        self._context = RecordContext(map_run_id, shown(state_machine_arn), shown(execution_arn_prefix), redrive_count)
        self._base = result_base(spec.prefix, map_run_id)
        self._files = {
            group: RollingFile(
                storage, self._bucket, self._base, group, spec.output_type, max_file_bytes, (resume or {}).get(group)
            )
            for group in _GROUPS
        }
        self._error: StatesError | None = None
        self._closed = False
        self.records_written = 0
        """How many child records were written (AWS's ``resultsWritten`` counts children/items written)."""

    @property
    def manifest_key(self) -> str:
        """The key of ``manifest.json`` (``<Prefix>/<map-run-id>/manifest.json``)."""
        return f"{self._base}manifest.json"

    def check(self) -> None:
        """Fail early, before any child runs, if the bucket cannot be written.

        Raises:
            StatesError: ``States.ResultWriterFailed`` naming the bucket and the storage error code.
        """
        try:
            self._storage.check_writable(self._bucket)
        except (StorageError, OSError) as exc:
            raise writer_failed(self._bucket, "", exc) from exc

    def write(self, record: dict[str, Any]) -> None:
        """Append one child record to the file of its status.

        Args:
            record: A child record (see :mod:`dmap.writers.records`), in child order.

        Raises:
            StatesError: ``States.ResultWriterFailed`` if storage fails (every open upload is then
                abandoned; the writer cannot be used further).
            ValueError: If the record's status is not SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING.
            InvalidStateError: If the writer was closed, aborted or failed.
        """
        self._ensure_usable()
        group = FILE_GROUPS.get(record.get("Status", ""))
        if group is None:
            raise ValueError(f"child {record.get('Child')} has status {record.get('Status')!r}; cannot write it")
        values = transform_output(record, self._spec.transformation, context=self._context)
        files = self._files[group]
        try:
            for value in values:
                files.add(encode_json(value))
        except StatesError as exc:
            self._fail(exc)
            raise
        self.records_written += 1

    def close(self) -> dict[str, Any]:
        """Finish every file, write ``manifest.json`` and return the Map state output.

        Returns:
            ``{"MapRunArn": …, "ResultWriterDetails": {"Bucket": …, "Key": "<Prefix>/<id>/manifest.json"}}``.

        Raises:
            StatesError: ``States.ResultWriterFailed`` if storage fails.
            InvalidStateError: If the writer was closed, aborted or failed.
        """
        self._ensure_usable()
        try:
            for files in self._files.values():
                files.finish()
            self._write_manifest()
        except StatesError as exc:
            self._fail(exc)
            raise
        self._closed = True
        logger.info("Map Run results written to s3://%s/%s", self._bucket, self.manifest_key)
        details = {"Bucket": self._bucket, "Key": self.manifest_key}
        return {"MapRunArn": self._map_run_arn, "ResultWriterDetails": details}

    def checkpoint(self) -> dict[str, list[dict[str, Any]]]:
        """Finish every open file so that everything written so far is durable; return the files.

        The coordinator stores the returned ``ResultFiles`` with the child up to which records were
        written; a coordinator restarted after a crash passes them back as ``resume`` and goes on
        with the next file numbers, so no record is lost or written twice.

        Raises:
            StatesError: ``States.ResultWriterFailed`` if storage fails.
        """
        self._ensure_usable()
        try:
            for files in self._files.values():
                files.finish()
        except StatesError as exc:
            self._fail(exc)
            raise
        return {group: self._files[group].files for group in _GROUPS}

    def abort(self) -> None:
        """Abandon every open upload; no manifest is written. Safe to call more than once."""
        for files in self._files.values():
            files.abort()
        self._closed = True

    def manifest(self) -> dict[str, Any]:
        """The manifest as it stands: finished files only (all of them once ``close`` has run)."""
        return {
            "DestinationBucket": self._bucket,
            "MapRunArn": self._file_map_run_arn,
            "ResultFiles": {group: self._files[group].files for group in _GROUPS},
        }

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()

    def _write_manifest(self) -> None:
        key = self.manifest_key
        try:
            stream = self._storage.open_write(self._bucket, key)
        except (StorageError, OSError) as exc:
            raise writer_failed(self._bucket, key, exc) from exc
        try:
            stream.write(encode_json(self.manifest()))
            stream.close()
        except (StorageError, OSError) as exc:
            abandon(stream)
            raise writer_failed(self._bucket, key, exc) from exc

    @property
    def error(self) -> StatesError | None:
        """The ``States.ResultWriterFailed`` that made this writer unusable, or None."""
        return self._error

    def _fail(self, exc: StatesError) -> None:
        self._error = exc
        self.abort()

    def _ensure_usable(self) -> None:
        if self._error is not None:
            raise InvalidStateError(f"the ResultWriter already failed: {self._error}")
        if self._closed:
            raise InvalidStateError("the ResultWriter is closed")
