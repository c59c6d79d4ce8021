"""A local folder that stands in for S3 (``DMAP_S3_ROOT``): bucket = sub-folder, key = relative path.

This module owns mapping buckets and keys to files safely and imitating what readers and writers
see from S3: S3 error codes, quoted-MD5 ETags, listings in S3 key order (lexicographic over the
whole key, recursive) with ``start_after``, and objects that appear atomically when a write stream
is closed. It does not parse objects or decide what to write.

Keys can never escape their bucket: absolute keys, ``.``/``..`` segments and any path that resolves
(after symlinks) outside the bucket folder fail with ``AccessDenied``. Symlinked sub-folders are
not followed by listings (no loops); symlinked files inside the bucket are listed and readable.

Limits of the stand-in: a key with an empty segment (``a//b``, ``dir/``) cannot be a file, so it
reads as ``NoSuchKey`` and cannot be written; files named ``.*.dmap-tmp`` (writes in progress) are
hidden from listings; listing computes each file's MD5 once (cached by path, size, mtime and inode).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from ..errors import StorageError
from . import ObjectInfo

logger = logging.getLogger(__name__)

_TMP_SUFFIX = ".dmap-tmp"
_HASH_CHUNK = 1024 * 1024


@lru_cache(maxsize=65536)
def _md5_etag(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """The quoted MD5 of a file's content; cached while its size, mtime and inode are unchanged."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return f'"{digest.hexdigest()}"'


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class LocalWriter(io.BufferedIOBase):
    """A write stream into a hidden temporary file, renamed over the object on :meth:`close`.

    Leaving a ``with`` block by an exception (or calling :meth:`abort`) deletes the temporary file:
    the object never appears half-written.
    """

    def __init__(self, fd: int, tmp: str, target: str, bucket: str, key: str) -> None:
        self._file = io.FileIO(fd, "wb", closefd=True)
        self._tmp = tmp
        self._target = target
        self._where = f"bucket '{bucket}', key '{key}'"
        self._md5 = hashlib.md5(usedforsecurity=False)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        try:
            self._file.write(view)
        except OSError as exc:
            raise StorageError(f"cannot write ({self._where}): {exc}", code="InternalError") from exc
        self._md5.update(view)
        return len(view)

    def close(self) -> None:
        """Publish the object: flush, fsync and atomically rename the temporary file over it."""
        if self.closed:
            return
        try:
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._target)
        except OSError as exc:
            self._discard()
            raise StorageError(f"cannot write ({self._where}): {exc}", code="InternalError") from exc
        finally:
            super().close()

    def abort(self) -> None:
        """Drop the write: the temporary file is deleted and no object appears."""
        if self.closed:
            return
        try:
            self._discard()
        finally:
            super().close()

    def _discard(self) -> None:
        self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


class LocalStorage:
    """The :class:`~dmap.storage.Storage` protocol on a local folder.

    Args:
        root: The folder standing in for S3; each sub-folder is a bucket.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def open_read(self, bucket: str, key: str, *, version_id: str | None = None) -> BinaryIO:
        """Open the file of ``bucket``/``key`` (seekable). Local objects have only the version ``null``."""
        path = self._object_path(bucket, key)
        if version_id not in (None, "null"):
            raise StorageError(
                f"The specified version does not exist (bucket '{bucket}', key '{key}', version '{version_id}')",
                code="NoSuchVersion",
            )
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller owns the stream
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageError(
                f"The specified key does not exist (bucket '{bucket}', key '{key}')", code="NoSuchKey"
            ) from exc
        except PermissionError as exc:
            raise StorageError(f"Access Denied (bucket '{bucket}', key '{key}')", code="AccessDenied") from exc

    def list_objects(self, bucket: str, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """List files under ``prefix`` in S3 key order, directory by directory, after ``start_after``."""
        base = self._bucket_dir(bucket)
        folder, sep, name_prefix = prefix.rpartition("/")
        if sep and any(s in ("", ".", "..") for s in folder.split("/")):
            return  # no file can have such a key (a leading "/" is an empty first segment)
        start = base.joinpath(*folder.split("/")) if folder else base
        key_prefix = folder + "/" if folder else ""
        real_base = os.path.realpath(base)
        if not _inside(os.path.realpath(start), real_base):
            return
        yield from self._walk(str(start), key_prefix, name_prefix, start_after, real_base, bucket)

    def open_write(self, bucket: str, key: str) -> BinaryIO:
        """Open a write stream; the file appears atomically (rename) when the stream is closed."""
        path = self._object_path(bucket, key, writing=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise IsADirectoryError(str(path))
            tmp = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise StorageError(
                f"the key conflicts with an existing file or folder (bucket '{bucket}', key '{key}')",
                code="InvalidArgument",
            ) from exc
        except PermissionError as exc:
            raise StorageError(f"Access Denied (bucket '{bucket}', key '{key}')", code="AccessDenied") from exc
        return cast(BinaryIO, LocalWriter(fd, tmp, str(path), bucket, key))

    def check_writable(self, bucket: str) -> None:
        """Raise StorageError unless the bucket folder exists and this process may write into it."""
        base = self._bucket_dir(bucket)
        if not os.access(base, os.W_OK | os.X_OK):
            raise StorageError(f"Access Denied (bucket '{bucket}' is not writable)", code="AccessDenied")

    def _bucket_dir(self, bucket: str) -> Path:
        if not bucket or bucket in (".", "..") or "/" in bucket or "\x00" in bucket or (os.sep in bucket):
            raise StorageError(f"The specified bucket is not valid (bucket '{bucket}')", code="InvalidBucketName")
        path = self.root / bucket
        if not path.is_dir():
            # Name the variable and the fix: "bucket does not exist" alone sends people to the AWS console.
            raise StorageError(
                f"The specified bucket does not exist: DMAP_S3_ROOT={self.root} has no folder "
                f"'{bucket}' for bucket '{bucket}'; create {path} or point DMAP_S3_ROOT at the folder that holds it",
                code="NoSuchBucket",
            )
        if not _inside(os.path.realpath(path), os.path.realpath(self.root)):
            logger.warning("refused a bucket folder that resolves outside the root: %r", bucket)
            raise StorageError(f"Access Denied: the bucket escapes the root (bucket '{bucket}')", code="AccessDenied")
        return path

    def _object_path(self, bucket: str, key: str, *, writing: bool = False) -> Path:
        base = self._bucket_dir(bucket)
        segments = key.split("/")
        unsafe = key.startswith("/") or "\x00" in key or any(s in (".", "..") for s in segments)
        unsafe = unsafe or any(sep in key for sep in (os.sep, os.altsep) if sep and sep != "/")
        if unsafe:
            raise StorageError(
                f"Access Denied: the key escapes its bucket (bucket '{bucket}', key '{key}')", code="AccessDenied"
            )
        if "" in segments:
            code, what = ("InvalidArgument", "cannot be stored") if writing else ("NoSuchKey", "does not exist")
            raise StorageError(f"The specified key {what} (bucket '{bucket}', key '{key}')", code=code)
        path = base.joinpath(*segments)
        if not _inside(os.path.realpath(path), os.path.realpath(base)):
            logger.warning("refused a key that resolves outside its bucket: bucket %r key %r", bucket, key)
            raise StorageError(
                f"Access Denied: the key escapes its bucket (bucket '{bucket}', key '{key}')", code="AccessDenied"
            )
        return path

    def _walk(
        self, folder: str, key_prefix: str, name_prefix: str, start_after: str | None, real_base: str, bucket: str
    ) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(folder) as scan:
                entries = [e for e in scan if e.name.startswith(name_prefix) and not _is_temp(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return
        except PermissionError as exc:
            raise StorageError(
                f"Access Denied (bucket '{bucket}', folder '{key_prefix}')", code="AccessDenied"
            ) from exc
        # S3 orders whole keys, so a folder sorts as "name/" ("a-b" < "a/c" because "-" < "/").
        ordered = sorted((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in entries)
        for name, entry in ordered:
            key = key_prefix + name
            if name.endswith("/"):
                if start_after is not None and key <= start_after and not start_after.startswith(key):
                    continue  # every key in this folder sorts before start_after
                yield from self._walk(entry.path, key, "", start_after, real_base, bucket)
                continue
            if start_after is not None and key <= start_after:
                continue
            info = self._info(entry, key, real_base)
            if info is not None:
                yield info

    def _info(self, entry: os.DirEntry[str], key: str, real_base: str) -> ObjectInfo | None:
        try:
            if entry.is_symlink() and not _inside(os.path.realpath(entry.path), real_base):
                return None  # unreadable through this storage, so not listed
            if not entry.is_file():
                return None
            st = entry.stat()
            etag = _md5_etag(entry.path, st.st_size, st.st_mtime_ns, st.st_ino)
        except (FileNotFoundError, PermissionError):
            return None  # vanished or unreadable between scandir and stat
        return ObjectInfo(key=key, size=st.st_size, etag=etag, last_modified=st.st_mtime)
