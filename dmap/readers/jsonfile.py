"""JSON objects as items (``InputType: JSON``), streamed with ijson's C backend.

This module owns iterating one JSON document: the elements of an array, or the key/value pairs of an
object as ``{"Key": k, "Value": v}`` (with ``$$.Map.Item.Key`` = k), at the root or at the node an
``ItemsPointer`` (RFC 6901 JSON pointer) selects. Only one item is built at a time. It also owns
the causes of JSON failures: AWS's strings for a pointer that matches nothing and for a scalar node,
and, for malformed JSON, the line, column and byte where parsing stopped.

With a pointer, the document is parsed as events up to the node, then only the node's subtree is
fed to ijson; whatever follows the node is not read (nor validated).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson

from . import Row, reader_failed

#: AWS's causes (reference Addendum, "Cause strings").
NON_ITERABLE = "Attempting to map over non-iterable node."
POINTER_NOT_FOUND = "The provided ReaderConfig.ItemsPointer does not match any valid path in the JSON structure."

_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"
_CHUNK = 64 * 1024
_STARTS = ("start_map", "start_array")
_ENDS = ("end_map", "end_array")
_TO_SPACE = bytes.maketrans(b"\r\n", b"  ")

if ijson.backend_name != "yajl2_c":  # pragma: no cover - wheels ship the C backend
    import logging

    logging.getLogger(__name__).warning(
        "ijson uses its %s backend, ~20x slower than yajl2_c; reinstall ijson with its C extension", ijson.backend_name
    )


class _Tracked:
    """A read() view of a stream that remembers where it is, to place ijson's errors in the file."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._pending = b""
        self._peeked: bytes | None = None
        self.offset = 0  # bytes skipped before the first chunk (a UTF-8 BOM)
        self.consumed = 0
        self.newlines = 0
        self.line_start = 0
        self.last = b""
        self.last_start = 0
        self.last_newlines = 0
        self.last_line_start = 0

    def first_byte(self) -> bytes:
        """The first byte that is not whitespace (b"" for an empty document), without consuming it."""
        if self._peeked is not None:
            return self._peeked
        data = self._stream.read(_CHUNK)
        if data.startswith(_BOM):
            data, self.offset = data[3:], 3
        while data and not data.lstrip(_WHITESPACE):
            more = self._stream.read(_CHUNK)
            if not more:
                break
            data += more
        self._pending = data
        self._peeked = data.lstrip(_WHITESPACE)[:1]
        return self._peeked

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson probes the stream's type this way
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._stream.read(size if size > 0 else _CHUNK)
        self.last, self.last_start = data, self.consumed
        self.last_newlines, self.last_line_start = self.newlines, self.line_start
        newlines = data.count(b"\n")
        if newlines:
            self.newlines += newlines
            self.line_start = self.consumed + data.rfind(b"\n") + 1
        self.consumed += len(data)
        return data

    def locate(self, exc: Exception) -> str:
        """Where the parser stopped: ``line L, column C (byte B)`` when yajl's excerpt is found, else a range."""
        text = str(exc)
        if "invalid bytes in UTF8" in text:  # yajl's excerpt is undecodable: find the bad byte ourselves
            try:
                self.last.decode("utf-8")
            except UnicodeDecodeError as bad:
                if bad.reason != "unexpected end of data":  # not a character cut by the chunk boundary
                    return self._at(bad.start)
        lines = text.split("\n")
        if len(lines) >= 2 and len(lines[1]) > 40 and not text.startswith("b'"):
            # yajl prints up to 30 bytes either side of the offending byte, which is always in column 40.
            before, after = lines[1][:40].lstrip(" "), lines[1][40:]
            needle = (before + after).encode()
            chunk = self.last.translate(_TO_SPACE)
            found = chunk.find(needle)
            if found >= 0 and chunk.find(needle, found + 1) < 0:
                # yajl's caret sits just after the offending token; point at its last byte instead.
                return self._at(max(found + len(before.encode()) - 1, 0))
        if self.last:
            return f"bytes {self.offset + self.last_start + 1}-{self.offset + self.consumed}"
        return f"the end of the data (byte {self.offset + self.consumed})"

    def _at(self, pos: int) -> str:
        """``line L, column C (byte B)`` of offset ``pos`` in the last chunk read."""
        nl = self.last.rfind(b"\n", 0, pos)
        line = self.last_newlines + self.last.count(b"\n", 0, pos) + 1
        start = self.last_start + nl + 1 if nl >= 0 else self.last_line_start
        byte = self.last_start + pos
        return f"line {line}, column {byte - start + 1} (byte {self.offset + byte + 1})"


def _reason(exc: Exception) -> str:
    text = str(exc)
    if text.startswith("b'"):
        text = text[2:]
    return text.split("\n", 1)[0].split("\\n", 1)[0].strip().rstrip(".") or type(exc).__name__


def _malformed(uri: str, tracked: _Tracked, exc: Exception) -> Exception:
    reason = _reason(exc)
    if "integer overflow" in reason:
        # yajl's integers are 64-bit; parsing every number as Decimal instead would slow every file down.
        reason += " (integers beyond 64 bits are not supported: store them as strings)"
    return reader_failed(f"The JSON in {uri} is not valid: {reason} at {tracked.locate(exc)}.")


def parse_pointer(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer (``/a~1b/0`` → ``["a/b", "0"]``).

    Raises:
        StatesError: ``States.ItemReaderFailed`` (AWS's no-match cause) for a pointer not starting with ``/``.
    """
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise reader_failed(POINTER_NOT_FOUND)
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def iter_json(stream: BinaryIO, uri: str, pointer: str | None, skip: int = 0) -> Iterator[Row]:
    """The items of one JSON document, from item ``skip`` on.

    Args:
        stream: The (decompressed) document.
        uri: ``S3://bucket/key``, named in failure causes.
        pointer: ``ReaderConfig.ItemsPointer``, or None for the root.
        skip: Items to pass over first (resume).

    Yields:
        ``(value, key)``: an array element with key None, or ``({"Key": k, "Value": v}, k)``.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for a scalar node, an unmatched pointer or bad JSON.
    """
    tracked = _Tracked(stream)
    try:
        if pointer == "":  # an explicit root: iterate an object's key/value pairs (AWS's object iteration)
            rows = _pairs_or_elements(tracked)
        elif pointer:
            rows = _at_pointer(tracked, parse_pointer(pointer))
        else:
            rows = _at_root(tracked)
        yield from itertools.islice(rows, skip, None)
    except ijson.JSONError as exc:
        raise _malformed(uri, tracked, exc) from exc


def _at_root(tracked: _Tracked) -> Iterator[Row]:
    first = tracked.first_byte()
    if first == b"[":
        for value in ijson.items(tracked, "item", use_float=True):
            yield value, None
    elif first == b"{":
        # DESIGN §3: a manifest shaped {"items": [...]} is the classic mistake; fail as AWS did and teach.
        raise reader_failed(f"{NON_ITERABLE} {_object_hint(tracked)}")
    else:
        for _ in ijson.parse(tracked, use_float=True):
            pass  # a malformed scalar fails here; a valid one is not iterable
        raise reader_failed(NON_ITERABLE)


def _pairs_or_elements(tracked: _Tracked) -> Iterator[Row]:
    if tracked.first_byte() == b"{":
        for key, value in ijson.kvitems(tracked, "", use_float=True):
            yield {"Key": key, "Value": value}, key
    else:
        yield from _at_root(tracked)


def _object_hint(tracked: _Tracked, budget: int = 10_000) -> str:
    """How to fix a top-level object: point ItemsPointer at its first array (looked for in the first events)."""
    for count, (prefix, event, _) in enumerate(ijson.parse(tracked, use_float=True)):
        if event == "start_array" and prefix and "." not in prefix:
            return (
                f'The top-level JSON value is an object, not an array: to iterate its "{prefix}" array set '
                f'"ReaderConfig": {{"InputType": "JSON", "ItemsPointer": "/{prefix}"}}.'
            )
        if count >= budget:
            break
    return (
        "The top-level JSON value is an object, not an array: set ReaderConfig.ItemsPointer to the array to "
        'iterate, or to "" to iterate the object\'s key/value pairs.'
    )


def _matches(stack: list[list[Any]], tokens: list[str]) -> bool:
    for (is_array, at), token in zip(stack, tokens, strict=True):
        if is_array:
            if not token.isdigit() or (len(token) > 1 and token[0] == "0") or int(token) != at:
                return False
        elif at != token:
            return False
    return True


def _at_pointer(tracked: _Tracked, tokens: list[str]) -> Iterator[Row]:
    events = ijson.parse(tracked, use_float=True)
    stack: list[list[Any]] = []  # one [is_array, current key or index] per open container
    depth = len(tokens)
    for prefix, event, value in events:
        if event == "map_key":
            stack[-1][1] = value
            continue
        if event in _ENDS:
            stack.pop()
            continue
        if stack and stack[-1][0]:
            stack[-1][1] += 1
        if len(stack) == depth and _matches(stack, tokens):
            if event not in _STARTS:
                raise reader_failed(NON_ITERABLE)
            subtree = _subtree((prefix, event, value), events)
            if event == "start_array":
                for element in ijson.items(subtree, f"{prefix}.item" if prefix else "item"):
                    yield element, None
            else:
                for key, member in ijson.kvitems(subtree, prefix):
                    yield {"Key": key, "Value": member}, key
            return
        if event in _STARTS:
            stack.append([event == "start_array", -1 if event == "start_array" else None])
    raise reader_failed(POINTER_NOT_FOUND)


def _subtree(first: tuple[str, str, Any], events: Iterator[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
    """The events of one node, from its start event to its matching end."""
    yield first
    depth = 1
    for item in events:
        event = item[1]
        if event in _STARTS:
            depth += 1
        elif event in _ENDS:
            depth -= 1
        yield item
        if depth == 0:
            return
