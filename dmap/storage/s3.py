"""S3 (or MinIO) storage through boto3: streaming ranged reads, paginated listings, multipart writes.

This module owns talking to S3 and turning botocore failures into :class:`dmap.errors.StorageError`
with S3's error code and a message that names the bucket and key. It does not parse objects (that is
:mod:`dmap.readers`) nor lay out result files (:mod:`dmap.writers`).

The client comes from boto3's own configuration (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``,
profiles...); dmap adds no endpoint flag of its own. Reads and writes go through smart_open's S3
reader and multipart writer with the shared client (retries on dropped connections, HTTP Range seeks).
Credentials are never logged.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from ..errors import StorageError
from . import ObjectInfo

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

#: Multipart part size: 8 MiB keeps a writer's memory small; 10,000 parts still allow 80 GB objects.
PART_SIZE = 8 * 1024 * 1024
#: Read buffer of the stream handed to readers (line iteration happens in C over it).
READ_BUFFER = 1024 * 1024

_HTTP_CODES = {"403": "AccessDenied", "404": "NoSuchKey", "301": "PermanentRedirect"}
_MESSAGES = {
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchKey": "The specified key does not exist",
    "AccessDenied": "Access Denied",
}

T = TypeVar("T")


def storage_error(exc: BaseException, bucket: str, key: str | None = None) -> StorageError:
    """Turn a botocore/smart_open failure into a StorageError naming the bucket (and key).

    Args:
        exc: The exception raised by boto3 or smart_open (its ``__cause__`` is examined too).
        bucket: The bucket being accessed.
        key: The key being accessed, if any.

    Returns:
        A StorageError whose ``code`` is S3's error code (``NoSuchKey``, ``AccessDenied``...).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, StorageError):
        return exc
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ClientError | BotoCoreError):
        cause = cause.__cause__ or cause.__context__
    where = f"bucket '{bucket}'" + (f", key '{key}'" if key is not None else "")
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        code = str(error.get("Code") or "")
        code = _HTTP_CODES.get(code, code) or "StorageError"
        if code == "NoSuchKey" and key is None:
            code = "NoSuchBucket"  # a HEAD on a bucket answers a bare 404
        message = _MESSAGES.get(code) or str(error.get("Message") or cause)
        return StorageError(f"{message} ({where})", code=code)
    if isinstance(cause, BotoCoreError):
        return StorageError(_explained(cause, bucket, key, where), code=type(cause).__name__)
    return StorageError(f"{type(exc).__name__}: {exc} ({where})", code="StorageError")


def _explained(cause: BaseException, bucket: str, key: str | None, where: str) -> str:
    """botocore's message, plus what to set when it is about missing credentials or an unreachable endpoint."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, PartialCredentialsError

    uri = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    if isinstance(cause, NoCredentialsError | PartialCredentialsError):
        return (
            f"no AWS credentials for {uri}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "or DMAP_S3_ROOT to use a local folder"
        )
    if isinstance(cause, EndpointConnectionError):
        return f"cannot reach S3 for {uri} ({cause}): check AWS_ENDPOINT_URL_S3 (MinIO, moto) or the network"
    return f"{cause} ({where})"


def _guard(call: Callable[[], T], bucket: str, key: str | None) -> T:
    try:
        return call()
    except StorageError:
        raise
    except Exception as exc:  # botocore, urllib3 and smart_open raise many unrelated types
        raise storage_error(exc, bucket, key) from exc


class _RawReader(io.RawIOBase):
    """A raw, seekable view of smart_open's S3 reader whose failures are StorageErrors."""

    def __init__(self, inner: Any, bucket: str, key: str) -> None:
        self._inner = inner
        self._bucket = bucket
        self._key = key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data: bytes = _guard(lambda: self._inner.read(len(view)), self._bucket, self._key)
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(_guard(lambda: self._inner.seek(offset, whence), self._bucket, self._key))

    def tell(self) -> int:
        return int(self._inner.tell())

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                super().close()


class S3Writer(io.BufferedIOBase):
    """A streaming multipart upload: the object appears on :meth:`close`, never on :meth:`abort`.

    Leaving a ``with`` block by an exception aborts the upload instead of publishing a partial object.
    """

    def __init__(self, inner: Any, bucket: str, key: str) -> None:
        self._inner = inner
        self._bucket = bucket
        self._key = key

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return int(_guard(lambda: self._inner.write(data), self._bucket, self._key))

    def close(self) -> None:
        """Complete the upload; the object becomes visible."""
        if self.closed:
            return
        try:
            _guard(self._inner.close, self._bucket, self._key)
        except StorageError:
            self._abort_inner()
            raise
        finally:
            super().close()

    def abort(self) -> None:
        """Abort the upload: no object is created (a no-op once closed)."""
        if self.closed:
            return
        try:
            self._abort_inner()
        finally:
            super().close()

    def _abort_inner(self) -> None:
        try:
            self._inner.terminate()
        except Exception as exc:  # best effort: S3 expires abandoned uploads by lifecycle rules
            logger.warning("could not abort the upload of s3://%s/%s: %s", self._bucket, self._key, exc)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class S3Storage:
    """The :class:`~dmap.storage.Storage` protocol on S3 or any S3-compatible service.

    Args:
        client: A boto3 S3 client; default: ``boto3.client("s3")`` from boto3's environment, made on
            first use (a run over an in-memory manifest never pays the client's few hundred ms).
    """

    def __init__(self, client: S3Client | None = None) -> None:
        self._client = client
        self._making = threading.Lock()  # one client, whichever thread asks first (see warm)

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client (created on first use)."""
        if self._client is None:
            with self._making:
                if self._client is None:
                    import boto3

                    self._client = boto3.client("s3")
        return self._client

    def warm(self) -> None:
        """Make the client in a background thread now: importing boto3 and loading S3's endpoint rules
        take about 0.4 s, which a Map Run reading or writing S3 would otherwise spend before its first grant."""
        if self._client is None:
            threading.Thread(target=lambda: self.client, name="dmap-s3-client", daemon=True).start()

    def open_read(self, bucket: str, key: str, *, version_id: str | None = None) -> BinaryIO:
        """Open ``s3://bucket/key`` for buffered, seekable streaming reads (HTTP Range on seek)."""
        from smart_open.s3 import Reader

        inner = _guard(lambda: Reader(bucket, key, version_id=version_id, client=self.client), bucket, key)
        return cast(BinaryIO, io.BufferedReader(_RawReader(inner, bucket, key), READ_BUFFER))

    def list_objects(self, bucket: str, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """List objects under ``prefix`` in key order, one ListObjectsV2 page (1,000 keys) at a time."""
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        pages = iter(paginator.paginate(**kwargs))
        while True:
            page = _guard(lambda: next(pages, None), bucket, None)
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    key=obj["Key"],
                    size=int(obj.get("Size", 0)),
                    etag=obj.get("ETag", ""),
                    last_modified=obj["LastModified"].timestamp(),
                    storage_class=obj.get("StorageClass", "STANDARD"),
                )

    def open_write(self, bucket: str, key: str) -> BinaryIO:
        """Start a streaming multipart upload of ``s3://bucket/key`` (8 MiB parts)."""
        from smart_open.s3 import MultipartWriter

        inner = _guard(lambda: MultipartWriter(bucket, key, part_size=PART_SIZE, client=self.client), bucket, key)
        return cast(BinaryIO, S3Writer(inner, bucket, key))

    def check_writable(self, bucket: str) -> None:
        """Check that ``bucket`` exists and is reachable (HeadBucket); write permission shows at upload."""
        _guard(lambda: self.client.head_bucket(Bucket=bucket), bucket, None)
