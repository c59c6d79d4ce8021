"""The optimized ``arn:aws:states:::s3:getObject`` and ``arn:aws:states:::s3:putObject`` Task integrations.

This module owns reading and writing one object for a Task through :func:`dmap.storage.get_storage`,
so the same definition runs on S3 (boto3's environment) and on a local ``DMAP_S3_ROOT`` folder. It
does not parse objects (that is :mod:`dmap.readers`, for ItemReader).

Parameters: ``Bucket``, ``Key`` (and ``VersionId`` for getObject), ``Body`` for putObject — text
as is, any other JSON value as compact JSON. Results have the shape of the aws-sdk integration's:
getObject -> ``{"Body": "<text>", "ContentLength", "ETag", "LastModified"}`` (the body decoded as
UTF-8; at most the payload limit is read), putObject -> ``{"ETag"}``. The metadata comes from a
listing of the key, the one thing both storages offer (so there is no ``ContentType``, and a read
of an older ``VersionId`` has only ``Body`` and ``ContentLength``). Errors are
named like aws-sdk S3 errors: ``S3.NoSuchKeyException``, ``S3.NoSuchBucketException``, and
``S3.S3Exception`` for an error the S3 model does not declare.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from ..errors import ErrorName, StorageError
from ..storage import ObjectInfo, Storage, get_storage
from .common import IntegrationError, compact_json, integration_error, iso_instant, read_capped, text_of


def get_object(payload: Any, context: Any) -> dict[str, Any]:
    """``s3:getObject``: the object's text and metadata.

    Args:
        payload: ``{"Bucket": ..., "Key": ..., "VersionId"?: ...}``.
        context: The TaskContext (its state name goes into causes).

    Raises:
        IntegrationError: ``S3.NoSuchKeyException`` and the like; ``States.Runtime`` for bad parameters;
            ``States.DataLimitExceeded`` for an object larger than the payload limit.
    """
    bucket, key = _where(payload, "getObject")
    version = payload.get("VersionId")
    storage = get_storage()
    try:
        stream = storage.open_read(bucket, key, version_id=str(version) if version is not None else None)
        data = read_capped(stream, f"s3://{bucket}/{key}", str(getattr(context, "state_name", "")))
        # A listing shows the latest version only, so an older version gets no ETag/LastModified.
        info = _info(storage, bucket, key) if version is None else None
    except StorageError as exc:
        raise _s3_error(exc) from None
    result: dict[str, Any] = {"Body": text_of(data), "ContentLength": len(data)}
    if info is not None:
        result["ETag"] = info.etag
        result["LastModified"] = iso_instant(datetime.fromtimestamp(info.last_modified, UTC))
    return result


def put_object(payload: Any, context: Any) -> dict[str, Any]:
    """``s3:putObject``: write ``Body`` to ``Bucket``/``Key``; the new object's ETag.

    Raises:
        IntegrationError: ``S3.NoSuchBucketException`` and the like; ``States.Runtime`` for bad parameters.
    """
    bucket, key = _where(payload, "putObject")
    body = payload.get("Body", "")
    data = (body if isinstance(body, str) else compact_json(body)).encode("utf-8")
    storage = get_storage()
    try:
        with storage.open_write(bucket, key) as stream:
            stream.write(data)
        info = _info(storage, bucket, key)
    except StorageError as exc:
        raise _s3_error(exc) from None
    # The listing's ETag is what S3 reports (a multipart upload's differs from the MD5).
    etag = info.etag if info is not None else f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    return {"ETag": etag}


def _where(payload: Any, action: str) -> tuple[str, str]:
    if not isinstance(payload, dict):
        raise _runtime(action, f"Parameters must be an object with Bucket and Key, not {compact_json(payload)}")
    bucket, key = payload.get("Bucket"), payload.get("Key")
    for field, value in (("Bucket", bucket), ("Key", key)):
        if not isinstance(value, str) or not value:
            raise _runtime(action, f'The field "{field}" is required and must be a non-empty string')
    unknown = sorted(set(payload) - {"Bucket", "Key", "VersionId" if action == "getObject" else "Body"})
    if unknown:
        raise _runtime(action, f'The field "{unknown[0]}" is not supported by Step Functions')
    return str(bucket), str(key)


def _runtime(action: str, problem: str) -> IntegrationError:
    return integration_error(
        ErrorName.RUNTIME, f"The Parameters of s3:{action} could not be used to start the Task: [{problem}]"
    )


def _info(storage: Storage, bucket: str, key: str) -> ObjectInfo | None:
    # The key sorts before every longer key it prefixes, so it is the listing's first entry if it exists.
    for info in storage.list_objects(bucket, key):
        return info if info.key == key else None
    return None


def _s3_error(exc: StorageError) -> IntegrationError:
    from .aws_sdk import service_model
    from .naming import error_name

    return integration_error(error_name(service_model("s3"), exc.code), f"{exc} (Service: S3)")
