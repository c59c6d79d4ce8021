"""External compression of item sources: GZIP and ZSTD, detected and decompressed as a stream.

This module owns recognising a compressed object (by its magic bytes; the ``.gz``/``.zst``/``.zstd``
extension is only a cross-check) and handing readers a buffered stream of the decompressed bytes,
never the whole object. It does not parse anything. Parquet is compressed inside the file
(GZIP/ZSTD/Snappy pages), so a Parquet object must not be compressed again from outside.
"""

from __future__ import annotations

import gzip
import io
from typing import Any, BinaryIO, cast

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_EXTENSIONS = {".gz": "GZIP", ".gzip": "GZIP", ".zst": "ZSTD", ".zstd": "ZSTD"}
#: Buffer of the decompressed stream; lines are split from it in C.
BUFFER_SIZE = 1024 * 1024
_ZSTD_INPUT = 64 * 1024


class CompressionError(ValueError):
    """Raised when an object's bytes contradict its compression extension."""


def peekable(stream: BinaryIO) -> io.BufferedReader:
    """``stream`` itself if it can peek (files, dmap's S3 streams), else a buffered view of it."""
    if isinstance(stream, io.BufferedReader):
        return stream
    return io.BufferedReader(cast(io.RawIOBase, stream), BUFFER_SIZE)


def detect(head: bytes) -> str | None:
    """``GZIP``, ``ZSTD`` or None for the first bytes of an object."""
    if head.startswith(GZIP_MAGIC):
        return "GZIP"
    if head.startswith(ZSTD_MAGIC):
        return "ZSTD"
    return None


def extension_compression(key: str) -> str | None:
    """The compression a key's extension announces (``data.csv.gz`` → ``GZIP``), or None."""
    lower = key.lower()
    for ext, kind in _EXTENSIONS.items():
        if lower.endswith(ext):
            return kind
    return None


def sniff(stream: BinaryIO) -> tuple[io.BufferedReader, str | None]:
    """Peek at ``stream`` without consuming it; returns the peekable stream and its compression."""
    buffered = peekable(stream)
    return buffered, detect(buffered.peek(4)[:4])


def decompressed(stream: BinaryIO, key: str) -> BinaryIO:
    """A buffered binary stream of the object's content, decompressed when it is GZIP or ZSTD.

    Args:
        stream: The object's bytes, as opened from storage (closed with the returned stream).
        key: The object key, whose extension must agree with the bytes.

    Returns:
        A readable, line-iterable binary stream.

    Raises:
        CompressionError: If the key says ``.gz``/``.zst`` but the bytes are not of that format.
    """
    buffered, kind = sniff(stream)
    expected = extension_compression(key)
    if expected and kind != expected and buffered.peek(1):
        raise CompressionError(f"the key ends in a {expected} extension but the object is not {expected} data")
    if kind == "GZIP":
        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))
    if kind == "ZSTD":
        return cast(BinaryIO, io.BufferedReader(_ZstdReader(buffered), BUFFER_SIZE))
    return cast(BinaryIO, buffered)


class _ZstdReader(io.RawIOBase):
    """ZSTD frames decompressed one chunk at a time; a truncated last frame is an error.

    zstandard's own stream_reader ends quietly at a truncated frame, which would drop items silently.
    """

    def __init__(self, source: io.BufferedReader) -> None:
        import zstandard

        self._source = source
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._fed = False  # whether the current frame has received input
        self._pending = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._offset >= len(self._pending):
            chunk = self._source.read(_ZSTD_INPUT)  # small, as one chunk may inflate many times over
            if not chunk:
                if self._fed and not self._frame.eof:
                    import zstandard

                    raise zstandard.ZstdError("the ZSTD data ends in the middle of a frame (truncated object)")
                return 0
            self._pending, self._offset = self._feed(chunk), 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending) - self._offset)
        view[:n] = self._pending[self._offset : self._offset + n]
        self._offset += n
        return n

    def _feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self._frame.eof:  # the next frame of a multi-frame object
                self._frame = self._decompressor.decompressobj()
            self._fed = True
            out.append(self._frame.decompress(chunk))
            chunk = self._frame.unused_data if self._frame.eof else b""
        return b"".join(out)

    def close(self) -> None:
        if not self.closed:
            try:
                self._source.close()
            finally:
                super().close()
