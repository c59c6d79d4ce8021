"""Object storage: where item sources are read from and results are written to.

Two implementations of one small :class:`Storage` protocol:

* :class:`~dmap.storage.s3.S3Storage` — real S3 or MinIO through boto3, configured only by boto3's
  own environment (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``...).
* :class:`~dmap.storage.local.LocalStorage` — ``DMAP_S3_ROOT``: a folder that stands in for S3
  (bucket = sub-folder); keys can never escape it.

Readers and writers use only this protocol, so every reader works on both. Errors are raised as
:class:`dmap.errors.StorageError` with an S3-style ``code`` (``NoSuchBucket``, ``NoSuchKey``,
``AccessDenied``...), never as botocore or OS exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed object, with the fields AWS's listObjectsV2 items carry."""

    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str = "STANDARD"


class Storage(Protocol):
    """A minimal S3: streaming reads, paginated listings, streaming (multipart) writes."""

    def open_read(self, bucket: str, key: str, *, version_id: str | None = None) -> BinaryIO:
        """Open an object for streaming reads (seekable where the backend allows, for Parquet)."""
        ...

    def list_objects(self, bucket: str, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """List objects under ``prefix`` in key order, lazily, page by page, after ``start_after``."""
        ...

    def open_write(self, bucket: str, key: str) -> BinaryIO:
        """Open an object for streaming writes; the object appears when the stream is closed."""
        ...

    def check_writable(self, bucket: str) -> None:
        """Raise StorageError unless ``bucket`` exists and can be written."""
        ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` (any case of the scheme, as AWS writes ``S3://``) into bucket and key.

    Args:
        uri: An S3 URI; the key may be empty (``s3://bucket`` or ``s3://bucket/``).

    Returns:
        ``(bucket, key)``.

    Raises:
        ConfigurationError: If ``uri`` is not an ``s3://`` URI with a bucket.
    """
    from ..errors import ConfigurationError

    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() != "s3":
        raise ConfigurationError(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigurationError(f"S3 URI without a bucket: {uri!r}")
    return bucket, key


def get_storage(s3_root: str | None = None) -> Storage:
    """The storage dmap reads items from and writes results to.

    A local folder (:class:`~dmap.storage.local.LocalStorage`) when ``s3_root`` or ``DMAP_S3_ROOT``
    is set, else S3 through boto3 (:class:`~dmap.storage.s3.S3Storage`), configured by boto3's own
    environment (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``...).

    Args:
        s3_root: A folder that stands in for S3; overrides ``DMAP_S3_ROOT``.

    Returns:
        A Storage.
    """
    import os

    root = s3_root or os.environ.get("DMAP_S3_ROOT")
    if root:
        from .local import LocalStorage

        return LocalStorage(root)
    from .s3 import S3Storage

    return S3Storage()
