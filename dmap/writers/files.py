"""One status's result files (``SUCCEEDED_0.json``, ``SUCCEEDED_1.json``...), streamed and rolled over.

This module owns the byte layout of a result file — a JSON array (``[``, records joined by ``,``,
``]``) or JSON Lines (one record and ``\\n`` per line) — its exact size in bytes, and the rollover
to the next file when a record would push it past the size limit. It does not know what a record
means (:mod:`dmap.writers.records`) nor which files make up a Map Run's results (:mod:`dmap.writers.s3`).

Only the open file's stream and the record being written are in memory; the stream is whatever
:meth:`dmap.storage.Storage.open_write` returns (a multipart upload on S3).
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from ..errors import ErrorName, StatesError, StorageError
from ..storage import Storage

logger = logging.getLogger(__name__)

#: (head, separator, line end, tail) of a file, per OutputType.
_FRAMING: dict[str, tuple[bytes, bytes, bytes, bytes]] = {
    "JSON": (b"[", b",", b"", b"]"),
    "JSONL": (b"", b"", b"\n", b""),
}


def writer_failed(bucket: str, key: str, exc: BaseException) -> StatesError:
    """The ``States.ResultWriterFailed`` error for a storage failure on ``bucket``/``key``.

    Args:
        bucket: The destination bucket.
        key: The object being written (or ``""`` for the bucket itself).
        exc: The storage error (its S3-style ``code`` is named in the cause).

    Returns:
        The StatesError to raise; its cause names the bucket, the key and the error code.
    """
    code = exc.code if isinstance(exc, StorageError) else type(exc).__name__
    where = f"s3://{bucket}/{key}" if key else f"bucket '{bucket}'"
    return StatesError(ErrorName.RESULT_WRITER_FAILED, f"Failed to write the Map Run results to {where}: {code}: {exc}")


def abandon(stream: BinaryIO) -> None:
    """Drop a half-written object without publishing it (abort the multipart upload), best effort."""
    for name in ("abort", "terminate"):
        method = getattr(stream, name, None)
        if callable(method):
            try:
                method()
            except (StorageError, OSError, ValueError) as exc:  # already failing: keep the first error
                logger.warning("could not abandon a partial result file: %s", exc)
            return
    logger.warning("storage stream %r cannot be aborted; leaving it unclosed", type(stream).__name__)


class RollingFile:
    """The files of one status group under a Map Run's result prefix.

    Args:
        storage: Where to write.
        bucket: The destination bucket.
        base: The key prefix of every file, ending in ``/`` (``<Prefix>/<map-run-id>/``).
        group: ``SUCCEEDED``, ``FAILED`` or ``PENDING``; files are named ``<group>_<n>.json``.
        output_type: ``JSON`` or ``JSONL`` (the extension stays ``.json`` either way, as on AWS).
        max_bytes: A file is rolled over before a record would make it larger than this; a single
            record larger than the limit gets a file of its own.
        done: Files finished by an earlier coordinator of the same Map Run (resume, redrive): kept in
            the manifest, and the numbering goes on after them.
    """

    def __init__(
        self,
        storage: Storage,
        bucket: str,
        base: str,
        group: str,
        output_type: str,
        max_bytes: int,
        done: list[dict[str, object]] | None = None,
    ) -> None:
        self._storage = storage
        self._bucket = bucket
        self._base = base
        self._group = group
        self._head, self._sep, self._end, self._tail = _FRAMING[output_type]
        self._max_bytes = max_bytes
        self._stream: BinaryIO | None = None
        self._key = ""
        self._size = 0
        self._count = 0
        self._done: list[dict[str, object]] = list(done or [])

    @property
    def files(self) -> list[dict[str, object]]:
        """The finished files as manifest entries ``{"Key", "Size"}``, in order."""
        return list(self._done)

    def add(self, data: bytes) -> None:
        """Append one encoded record, opening or rolling over a file as needed.

        Raises:
            StatesError: ``States.ResultWriterFailed`` if storage fails.
        """
        if self._stream is not None and self._count:
            cost = len(self._sep) + len(data) + len(self._end)
            if self._size + cost + len(self._tail) > self._max_bytes:
                self.finish()
        if self._stream is None:
            self._open()
        chunk = (self._sep if self._count else b"") + data + self._end
        self._write(chunk)
        self._count += 1

    def finish(self) -> None:
        """Close the open file, if any, so that it appears in storage with its final size.

        Raises:
            StatesError: ``States.ResultWriterFailed`` if storage fails.
        """
        stream = self._stream
        if stream is None:
            return
        self._write(self._tail)
        try:
            stream.close()
        except (StorageError, OSError) as exc:
            self._stream = None
            raise writer_failed(self._bucket, self._key, exc) from exc
        self._stream = None
        self._done.append({"Key": self._key, "Size": self._size})
        logger.debug("result file s3://%s/%s: %d records, %d bytes", self._bucket, self._key, self._count, self._size)

    def abort(self) -> None:
        """Abandon the open file (its upload is aborted, it never appears); finished files stay."""
        stream, self._stream = self._stream, None
        if stream is not None:
            abandon(stream)

    def _open(self) -> None:
        self._key = f"{self._base}{self._group}_{len(self._done)}.json"
        try:
            self._stream = self._storage.open_write(self._bucket, self._key)
        except (StorageError, OSError) as exc:
            raise writer_failed(self._bucket, self._key, exc) from exc
        self._size = 0
        self._count = 0
        self._write(self._head)

    def _write(self, chunk: bytes) -> None:
        if not chunk:
            return
        assert self._stream is not None
        try:
            self._stream.write(chunk)
        except (StorageError, OSError) as exc:
            raise writer_failed(self._bucket, self._key, exc) from exc
        self._size += len(chunk)
