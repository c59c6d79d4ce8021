"""Text-delimited objects as items (``InputType: CSV``), parsed by AWS's documented rules, streamed.

This module owns the CSV dialect of Step Functions ("How Step Functions parses input CSV files" and
the AWS-recorded edge cases in the reference, §1.4):

* the field separator is ``CSVDelimiter`` (COMMA, PIPE, SEMICOLON, SPACE, TAB); a newline ends a record;
* every value is a string; whitespace is kept as is;
* a field that starts with ``"`` is quoted: it may hold separators and newlines, ``""`` inside is one
  quote; in an unquoted field ``""`` is also one quote (AWS's own example turns
  ``{""MyKey"":""MyValue""}`` into ``{"MyKey":"MyValue"}``);
* a backslash escapes the next character: ``\\\\`` is a backslash, ``\\"`` a quote, ``\\,`` a
  separator; a backslash before any other character is dropped (the character is kept);
* headers come from the first row (FIRST_ROW) or from ``CSVHeaders`` (GIVEN); duplicates fail with
  AWS's cause ``CSV headers cannot contain duplicates.``; an empty header name is the key ``""``;
* a row with fewer fields gets ``""`` for the missing ones; extra fields are dropped;
* every line is a record, including blank and whitespace-only ones (a blank line is a row of empty
  values; the newline ending the last line does not start another record).

dmap's own choices where AWS says nothing: a UTF-8 byte-order mark is ignored; a quote that is never
closed fails (it would otherwise swallow the rest of the file); a header row over 10 KiB (AWS's limit)
fails. Lines without quotes or backslashes are split with ``str.split`` (fast path).

Resuming: before each row is yielded, ``where`` gets ``o`` (the byte offset just after its record,
a record spanning lines included) and ``l`` (its last line number); ``at`` with those fields reads
the header row first (FIRST_ROW), then continues at that offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from . import reader_failed, seek_forward

DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}
DUPLICATE_HEADERS = "CSV headers cannot contain duplicates."
MAX_HEADER_BYTES = 10 * 1024

_BOM = "\ufeff"
_QUOTED_STOP = re.compile(r'["\\]')


class _Unterminated(Exception):
    """A quoted field still open at the end of the data."""


class _Lines:
    """Decoded lines of a binary stream, numbered, with UTF-8 errors that name the line."""

    def __init__(self, stream: BinaryIO, uri: str) -> None:
        self._it = iter(stream)
        self._uri = uri
        self.number = 0
        self.last_size = 0
        self.offset = 0  # bytes consumed: the offset just after the last line returned

    def next(self) -> str | None:
        raw = next(self._it, None)
        if raw is None:
            return None
        self.number += 1
        self.last_size = len(raw)
        self.offset += self.last_size
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise reader_failed(
                f"The CSV object {self._uri} is not valid UTF-8: line {self.number}, byte {exc.start + 1} of the line."
            ) from exc
        if self.number == 1 and text.startswith(_BOM):
            text = text[1:]
        return text


class Tokenizer:
    """Splits lines into fields for one separator, pulling more lines for quoted newlines.

    Args:
        delimiter: The one-character field separator.
    """

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self._stop = re.compile("[" + re.escape(delimiter) + '"\\\\\r\n]')

    def split(self, text: str, more: Iterator[str | None] | None = None) -> list[str]:
        """The fields of the record starting with line ``text`` (with its line ending, if any).

        Args:
            text: One line.
            more: Where the following lines come from, when a quoted field spans lines.

        Raises:
            _Unterminated: If a quoted field is still open when the lines run out.
        """
        if '"' not in text and "\\" not in text:
            if text[-1:] == "\n":
                text = text[:-1]
            if text[-1:] == "\r":
                text = text[:-1]
            return text.split(self.delimiter)
        return self._split_slow(text, more)

    def _split_slow(self, text: str, more: Iterator[str | None] | None) -> list[str]:  # noqa: C901 - one state machine
        fields: list[str] = []
        buf: list[str] = []
        i = 0
        quoted = False
        at_start = True
        delimiter = self.delimiter
        while True:
            if quoted:
                m = _QUOTED_STOP.search(text, i)
                if m is None:
                    buf.append(text[i:])
                    nxt = next(more, None) if more is not None else None
                    if nxt is None:
                        raise _Unterminated
                    text, i = nxt, 0
                    continue
                j = m.start()
                buf.append(text[i:j])
                if text[j] == '"':
                    if text.startswith('"', j + 1):
                        buf.append('"')
                        i = j + 2
                    else:
                        quoted = False
                        i = j + 1
                else:  # a backslash: the next character is literal (a newline included)
                    buf.append(text[j + 1 : j + 2])
                    i = j + 2
                continue
            m = self._stop.search(text, i)
            if m is None:
                buf.append(text[i:])
                break
            j = m.start()
            if j > i:
                buf.append(text[i:j])
                at_start = False
            c = text[j]
            if c == delimiter:
                fields.append("".join(buf))
                buf = []
                at_start = True
                i = j + 1
            elif c == "\n" or (c == "\r" and text[j + 1 :] in ("\n", "")):
                break
            elif c == "\r":
                buf.append(c)
                at_start = False
                i = j + 1
            elif c == '"':
                if at_start:
                    quoted = True
                    at_start = False
                    i = j + 1
                else:
                    buf.append('"')
                    i = j + 2 if text.startswith('"', j + 1) else j + 1
            else:  # a backslash outside quotes
                nxt_char = text[j + 1 : j + 2]
                if nxt_char and nxt_char not in "\r\n":
                    buf.append(nxt_char)
                    at_start = False
                    i = j + 2
                else:
                    i = j + 1  # dropped before the line end
        fields.append("".join(buf))
        return fields


def check_headers(headers: Sequence[str]) -> list[str]:
    """The headers as a list, or AWS's failure when two are equal."""
    if len(set(headers)) != len(headers):
        raise reader_failed(DUPLICATE_HEADERS)
    return list(headers)


def iter_csv(
    stream: BinaryIO,
    uri: str,
    *,
    delimiter: str = "COMMA",
    header_location: str = "FIRST_ROW",
    headers: Sequence[str] | None = None,
    skip: int = 0,
    at: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
) -> Iterator[dict[str, str]]:
    """The rows of a delimited text object as ``{header: value}`` items of strings.

    Args:
        stream: The (decompressed) object.
        uri: ``S3://bucket/key``, named in failure causes.
        delimiter: ``ReaderConfig.CSVDelimiter``.
        header_location: ``FIRST_ROW`` or ``GIVEN``.
        headers: ``CSVHeaders`` (required with GIVEN).
        skip: Rows (after the header) to pass over first; ignored with ``at``.
        at: ``{"o": byte offset, "l": line number}`` from an earlier ``where``: the rows from there.
        where: Updated with ``o`` and ``l`` of the row about to be yielded.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for duplicate headers, invalid UTF-8 (naming the
            line), an unclosed quote or an unknown delimiter.
    """
    separator = DELIMITERS.get(delimiter)
    if separator is None:
        raise reader_failed(f"Unknown CSVDelimiter {delimiter!r}; expected one of {', '.join(DELIMITERS)}.")
    lines = _Lines(stream, uri)
    records = _records(lines, Tokenizer(separator), uri)
    if header_location == "GIVEN":
        if not headers:
            raise reader_failed("CSVHeaderLocation GIVEN needs CSVHeaders.")
        names = check_headers(headers)
    else:
        first = next(records, None)
        if first is None:
            return
        if lines.last_size > MAX_HEADER_BYTES and lines.number == 1:
            raise reader_failed(f"The CSV header row of {uri} is larger than 10 KiB ({lines.last_size} bytes).")
        names = check_headers(first)
    if at is not None and int(at["o"]) > lines.offset:
        # The header (if any) is read; jump over the rows already read. The line iterator of a file
        # object reads from its current position, so it continues at the offset after the seek.
        skip = 0
        seek_forward(stream, int(at["o"]) - lines.offset)
        lines.offset, lines.number = int(at["o"]), int(at["l"])
    width = len(names)
    for fields in records:
        if skip:
            skip -= 1
            continue
        if len(fields) < width:
            fields = fields + [""] * (width - len(fields))
        if where is not None:
            where["o"], where["l"] = lines.offset, lines.number
        yield dict(zip(names, fields, strict=False))


def iter_records(stream: BinaryIO, uri: str, *, delimiter: str = "COMMA") -> Iterator[list[str]]:
    """The raw records of a delimited text object, the header row included, split as :func:`iter_csv` splits them.

    Counting uses it: one record per row however many lines a quoted field spans, without building items.

    Raises:
        StatesError: ``States.ItemReaderFailed`` for invalid UTF-8, an unclosed quote or an unknown delimiter.
    """
    separator = DELIMITERS.get(delimiter)
    if separator is None:
        raise reader_failed(f"Unknown CSVDelimiter {delimiter!r}; expected one of {', '.join(DELIMITERS)}.")
    return _records(_Lines(stream, uri), Tokenizer(separator), uri)


def _records(lines: _Lines, tokenizer: Tokenizer, uri: str) -> Iterator[list[str]]:
    more = iter(lines.next, None)
    split = tokenizer.split
    while (text := lines.next()) is not None:
        first = lines.number
        try:
            yield split(text, more)
        except _Unterminated:
            raise reader_failed(
                f"The CSV object {uri} has a quoted field opened on line {first} that is never closed."
            ) from None
