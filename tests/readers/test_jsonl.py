"""JSON Lines items: one per non-empty line; failures name the line."""

from __future__ import annotations

import pytest

from dmap.errors import StatesError

from .conftest import Objects


def test_each_non_empty_line_is_one_item(objects: Objects) -> None:
    objects.put("l.jsonl", '{"a": 1}\n\n  \n[1, 2]\n"s"\n3.5\n')
    items = list(objects.open(key="l.jsonl", input_type="JSONL"))
    assert [i.value for i in items] == [{"a": 1}, [1, 2], "s", 3.5]
    assert [i.index for i in items] == [0, 1, 2, 3]
    assert items[0].source == f"S3://{objects.bucket}/l.jsonl"


def test_a_last_line_without_newline_and_crlf_endings_are_read(local_objects: Objects) -> None:
    local_objects.put("crlf.jsonl", b'{"a": 1}\r\n{"a": 2}')
    assert local_objects.values(key="crlf.jsonl", input_type="JSONL") == [{"a": 1}, {"a": 2}]


def test_a_malformed_line_fails_naming_its_line_number(objects: Objects) -> None:
    objects.put("bad.jsonl", '{"a": 1}\n\n{"a": }\n{"a": 3}\n')
    stream = objects.open(key="bad.jsonl", input_type="JSONL")
    assert next(stream).value == {"a": 1}
    with pytest.raises(StatesError) as info:
        next(stream)
    assert info.value.name == "States.ItemReaderFailed"
    assert info.value.cause.startswith(f"The JSON Lines object S3://{objects.bucket}/bad.jsonl is not valid: line 3,")


def test_invalid_utf8_and_non_json_constants_fail_naming_the_line(local_objects: Objects) -> None:
    local_objects.put("u.jsonl", b'"ok"\n"\xc3\x28"\n')
    local_objects.put("nan.jsonl", b"1\nNaN\n")
    with pytest.raises(StatesError, match="not valid UTF-8: line 2"):
        local_objects.values(key="u.jsonl", input_type="JSONL")
    with pytest.raises(StatesError, match="line 2"):
        local_objects.values(key="nan.jsonl", input_type="JSONL")
