"""Test support for the ResultWriter: an in-memory Storage double and child record builders.

``MemoryStorage`` implements the :class:`dmap.storage.Storage` protocol the way S3 behaves for a
writer: an object appears only when its stream is closed, an aborted stream never appears, and a
missing bucket fails with ``NoSuchBucket``. It can also be told to fail at open, write or close,
to stand for each point where a real multipart upload may fail.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from dmap.errors import StorageError
from dmap.storage import ObjectInfo


class MemoryStream(io.BytesIO):
    """A write stream whose bytes become an object on close, or vanish on abort."""

    def __init__(self, storage: MemoryStorage, bucket: str, key: str) -> None:
        super().__init__()
        self._storage = storage
        self._bucket = bucket
        self._key = key
        self.aborted = False

    def write(self, data: Any) -> int:
        if self._storage.fail == "write":
            raise StorageError("connection reset while uploading a part", code=self._storage.code)
        return super().write(data)

    def close(self) -> None:
        if self.closed:
            return
        if not self.aborted:
            if self._storage.fail == "close":
                self._storage.open_streams.discard(self)
                super().close()
                raise StorageError("CompleteMultipartUpload failed", code=self._storage.code)
            self._storage.objects[(self._bucket, self._key)] = self.getvalue()
        self._storage.open_streams.discard(self)
        super().close()

    def abort(self) -> None:
        """Drop the upload: the object never appears."""
        self.aborted = True
        self.close()


class MemoryStorage:
    """A dict-backed Storage: ``objects[(bucket, key)] = bytes``."""

    def __init__(self, buckets: tuple[str, ...] = ("results",), *, fail: str | None = None, code: str = "AccessDenied"):
        self.buckets = set(buckets)
        self.objects: dict[tuple[str, str], bytes] = {}
        self.open_streams: set[MemoryStream] = set()
        self.fail = fail
        self.code = code

    def _bucket(self, bucket: str) -> None:
        if bucket not in self.buckets:
            raise StorageError(f"The specified bucket does not exist: {bucket}", code="NoSuchBucket")

    def open_read(self, bucket: str, key: str, *, version_id: str | None = None) -> BinaryIO:
        self._bucket(bucket)
        if (bucket, key) not in self.objects:
            raise StorageError(f"no such key {key}", code="NoSuchKey")
        return io.BytesIO(self.objects[(bucket, key)])

    def list_objects(self, bucket: str, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        self._bucket(bucket)
        for (b, key), data in sorted(self.objects.items()):
            if b == bucket and key.startswith(prefix) and (start_after is None or key > start_after):
                yield ObjectInfo(key=key, size=len(data), etag='"0"', last_modified=0.0)

    def open_write(self, bucket: str, key: str) -> BinaryIO:
        self._bucket(bucket)
        if self.fail == "open":
            raise StorageError("Access Denied", code=self.code)
        stream = MemoryStream(self, bucket, key)
        self.open_streams.add(stream)
        return cast(BinaryIO, stream)

    def check_writable(self, bucket: str) -> None:
        self._bucket(bucket)
        if self.fail is not None:
            raise StorageError("Access Denied", code=self.code)

    def keys(self, bucket: str = "results") -> list[str]:
        """Every object key in ``bucket``, sorted."""
        return sorted(k for b, k in self.objects if b == bucket)

    def json(self, key: str, bucket: str = "results") -> Any:
        """An object parsed as JSON."""
        return json.loads(self.objects[(bucket, key)])


MAP_RUN_ID = "fd5d5e09-8644-4804-b61a-9860092818fd"
MAP_RUN_ARN = f"arn:aws:states:local:000000000000:mapRun:orders/getOrders:{MAP_RUN_ID}"
STATE_MACHINE_ARN = "arn:aws:states:local:000000000000:stateMachine:orders/getOrders"
EXECUTION_ARN_PREFIX = "arn:aws:states:local:000000000000:execution:orders/getOrders:"

WRITER_ARGS: dict[str, Any] = {
    "map_run_arn": MAP_RUN_ARN,
    "map_run_id": MAP_RUN_ID,
    "state_machine_arn": STATE_MACHINE_ARN,
    "execution_arn_prefix": EXECUTION_ARN_PREFIX,
}

# The Transformation NONE record of the AWS Developer Guide (reference §1.9), values abridged.
AWS_SUCCEEDED_RECORD: dict[str, Any] = {
    "ExecutionArn": (
        "arn:aws:states:region:account-id:execution:orderProcessing/getOrders:da4e9fc7-abab-3b27-9a77-a277e463b709"
    ),
    "Input": "{}",
    "InputDetails": {"Included": True},
    "Name": "da4e9fc7-abab-3b27-9a77-a277e463b709",
    "Output": '[{"customer_id":"145538","order_id":"100000"}]',
    "OutputDetails": {"Included": True},
    "RedriveCount": 0,
    "RedriveStatus": "NOT_REDRIVABLE",
    "RedriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
    "StartDate": "2025-02-04T01:49:50.099Z",
    "StateMachineArn": "arn:aws:states:region:account-id:stateMachine:orderProcessing/getOrders",
    "Status": "SUCCEEDED",
    "StopDate": "2025-02-04T01:49:50.163Z",
}


def succeeded(child: int, output: Any, *, item: Any = None) -> dict[str, Any]:
    """A SUCCEEDED child record whose output is ``output`` (encoded as the worker would)."""
    return {
        "Child": child,
        "Index": child,
        "Items": 1,
        "Status": "SUCCEEDED",
        "Input": json.dumps({"n": child} if item is None else item, separators=(",", ":")),
        "Output": json.dumps(output, separators=(",", ":")),
        "StartDate": "2025-02-04T01:49:50.099Z",
        "StopDate": "2025-02-04T01:49:50.163Z",
        "Attempts": 1,
        "Worker": "host:1",
    }


def unsuccessful(child: int, status: str = "FAILED", error: str = "ValueError", cause: str = "bad") -> dict[str, Any]:
    """A FAILED, TIMED_OUT or ABORTED child record."""
    return {
        "Child": child,
        "Index": child,
        "Items": 1,
        "Status": status,
        "Input": json.dumps({"n": child}, separators=(",", ":")),
        "Error": error,
        "Cause": cause,
        "StartDate": "2025-02-04T01:49:50.099Z",
        "StopDate": "2025-02-04T01:49:51.000Z",
        "Attempts": 1,
        "Worker": "host:1",
    }


def pending(child: int) -> dict[str, Any]:
    """A PENDING (never started) child record."""
    return {"Child": child, "Index": child, "Items": 1, "Status": "PENDING", "Input": json.dumps({"n": child})}
