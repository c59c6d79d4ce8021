"""Fixtures for the reader tests: one ``objects`` fixture that puts objects in a bucket, on both backends.

``objects`` is parametrized: ``local`` is a :class:`LocalStorage` on ``tmp_path``; ``s3`` is an
:class:`S3Storage` talking to moto over HTTP (the ``bucket`` fixture of ``tests/conftest.py``).
Tests that need only one backend use ``local_objects`` or ``s3_objects``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dmap.readers import ItemStream, ReaderSpec, open_items
from dmap.storage import Storage
from dmap.storage.local import LocalStorage
from dmap.storage.s3 import S3Storage

GET = "arn:aws:states:::s3:getObject"
LIST = "arn:aws:states:::s3:listObjectsV2"


class Objects:
    """A bucket on some storage, with helpers to fill it and read it back."""

    def __init__(self, storage: Storage, bucket: str, put: Any) -> None:
        self.storage = storage
        self.bucket = bucket
        self._put = put

    def put(self, key: str, data: bytes | str) -> None:
        self._put(key, data.encode() if isinstance(data, str) else data)

    def spec(self, **fields: Any) -> ReaderSpec:
        resource = fields.pop("resource", LIST if "key" not in fields else GET)
        return ReaderSpec(resource=resource, bucket=fields.pop("bucket", self.bucket), **fields)

    def open(self, **fields: Any) -> ItemStream:
        start = fields.pop("start", 0)
        position = fields.pop("position", None)
        return open_items(self.spec(**fields), self.storage, start=start, position=position)

    def values(self, **fields: Any) -> list[Any]:
        return [item.value for item in self.open(**fields)]


def local_objects_for(root: Path, bucket: str = "data") -> Objects:
    (root / bucket).mkdir(parents=True, exist_ok=True)

    def put(key: str, data: bytes) -> None:
        path = root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Objects(LocalStorage(root), bucket, put)


@pytest.fixture
def local_objects(tmp_path: Path) -> Objects:
    """A bucket ``data`` in a LocalStorage rooted at ``tmp_path``."""
    return local_objects_for(tmp_path)


@pytest.fixture
def s3_objects(s3_client: Any, bucket: str) -> Objects:
    """A fresh moto bucket behind an S3Storage."""

    def put(key: str, data: bytes) -> None:
        s3_client.put_object(Bucket=bucket, Key=key, Body=data)

    return Objects(S3Storage(s3_client), bucket, put)


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest) -> Iterator[Objects]:
    """The same test on LocalStorage and on S3 (moto over HTTP)."""
    yield request.getfixturevalue(f"{request.param}_objects")
