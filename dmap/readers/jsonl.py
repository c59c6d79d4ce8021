"""JSON Lines objects as items (``InputType: JSONL``): one item per non-empty line, streamed.

This module owns splitting a stream into lines (in C, from the buffered stream), decoding each line
as UTF-8 and parsing it as one JSON value; a failure names the line. Blank and whitespace-only lines
are not items. It does not open objects or decompress them.

Resuming: before each value is yielded, ``where`` gets ``o`` (the byte offset just after its line in
the decompressed stream) and ``l`` (its line number); ``at`` with those fields starts reading there
(a seek on a seekable stream, else the bytes before it are read and dropped unparsed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, BinaryIO

from . import reader_failed, seek_forward

_BOM = b"\xef\xbb\xbf"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: no double holds it (the JSON reader refuses it the same way)
        raise ValueError(f"the number {text} is out of range")
    return value


# One decoder for every line: json.loads(..., parse_constant=...) would build a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)


def iter_jsonl(
    stream: BinaryIO,
    uri: str,
    skip: int = 0,
    *,
    at: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """The values of a JSON Lines document, from item ``skip`` on (or from the position ``at``).

    Args:
        stream: The (decompressed) document, at its first byte.
        uri: ``S3://bucket/key``, named in failure causes.
        skip: Items (non-empty lines) to pass over unparsed first; ignored with ``at``.
        at: ``{"o": byte offset, "l": line number}`` from an earlier ``where``: start reading there.
        where: Updated with ``o`` and ``l`` of the value about to be yielded.

    Yields:
        One JSON value per non-empty line (numbers with a fraction or exponent as floats).

    Raises:
        StatesError: ``States.ItemReaderFailed`` naming the line that is not UTF-8 or not JSON.
    """
    decode = _DECODER.decode
    lineno = offset = 0
    if at is not None:
        offset, lineno, skip = int(at["o"]), int(at["l"]), 0
        seek_forward(stream, offset)
    for raw in stream:
        lineno += 1
        offset += len(raw)
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[3:]
        if not raw.strip():
            continue
        if skip:
            skip -= 1
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise reader_failed(
                f"The JSON Lines object {uri} is not valid UTF-8: line {lineno}, byte {exc.start + 1} of the line."
            ) from exc
        try:
            value = decode(text)
        except json.JSONDecodeError as exc:
            raise reader_failed(
                f"The JSON Lines object {uri} is not valid: line {lineno}, column {exc.colno}: {exc.msg}."
            ) from exc
        except (ValueError, RecursionError) as exc:
            raise reader_failed(f"The JSON Lines object {uri} is not valid: line {lineno}: {exc}.") from exc
        if where is not None:
            where["o"], where["l"] = offset, lineno
        yield value
