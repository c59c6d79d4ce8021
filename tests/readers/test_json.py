"""JSON items: arrays, objects as Key/Value pairs, ItemsPointer, and AWS's causes for what cannot be read."""

from __future__ import annotations

import json

import pytest

from dmap.errors import StatesError
from dmap.readers.jsonfile import NON_ITERABLE, POINTER_NOT_FOUND, parse_pointer

from .conftest import Objects


def _failure(objects: Objects, **fields: object) -> StatesError:
    with pytest.raises(StatesError) as info:
        objects.values(**fields)
    assert info.value.name == "States.ItemReaderFailed"
    return info.value


def test_a_top_level_array_yields_its_elements_with_the_object_as_source(objects: Objects) -> None:
    objects.put("a.json", json.dumps([{"verdict": "true"}, 2, "three", None, [4]]))
    items = list(objects.open(key="a.json", input_type="JSON"))
    assert [i.value for i in items] == [{"verdict": "true"}, 2, "three", None, [4]]
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert {i.source for i in items} == {f"S3://{objects.bucket}/a.json"}
    assert all(i.key is None for i in items)


def test_an_object_selected_with_an_empty_items_pointer_yields_key_value_pairs_with_the_key(
    local_objects: Objects,
) -> None:
    local_objects.put("o.json", '{"first": {"a": 1}, "second": [1, 2]}')
    items = list(local_objects.open(key="o.json", input_type="JSON", items_pointer=""))
    assert [(i.value, i.key) for i in items] == [
        ({"Key": "first", "Value": {"a": 1}}, "first"),
        ({"Key": "second", "Value": [1, 2]}, "second"),
    ]


def test_a_top_level_object_without_items_pointer_fails_and_names_the_pointer_to_use(local_objects: Objects) -> None:
    local_objects.put("wrapped.json", '{"count": 2, "items": [{"id": 1}, {"id": 2}]}')
    with pytest.raises(StatesError) as failure:
        list(local_objects.open(key="wrapped.json", input_type="JSON"))
    assert failure.value.name == "States.ItemReaderFailed"
    assert failure.value.cause.startswith("Attempting to map over non-iterable node.")
    assert '"ItemsPointer": "/items"' in failure.value.cause


def test_numbers_keep_json_types_with_floats_not_decimals(local_objects: Objects) -> None:
    local_objects.put("n.json", "[1, 2.5, 1e2, 9223372036854775807, -0.0]")
    values = local_objects.values(key="n.json", input_type="JSON")
    assert values == [1, 2.5, 100.0, 9223372036854775807, -0.0]
    assert [type(v) for v in values] == [int, float, float, int, float]


def test_integers_beyond_64_bits_fail_with_a_hint(local_objects: Objects) -> None:
    local_objects.put("huge.json", "[12345678901234567890]")
    assert "store them as strings" in _failure(local_objects, key="huge.json", input_type="JSON").cause


def test_a_missing_input_type_reads_json(local_objects: Objects) -> None:
    local_objects.put("d.json", "[true]")
    assert local_objects.values(key="d.json") == [True]


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/inventory/products/featured", [{"id": 1}, {"id": 2}]),
        ("/inventory/by~1slash", [{"Key": "x", "Value": 1}]),
        ("/inventory/shelves/1/items", ["c"]),
        ("/inventory/tilde~0key", [7]),
        ("/inventory/products", [{"Key": "featured", "Value": [{"id": 1}, {"id": 2}]}, {"Key": "n", "Value": 3}]),
    ],
)
def test_items_pointer_selects_a_nested_array_or_object(objects: Objects, pointer: str, expected: list[object]) -> None:
    doc = {
        "meta": {"inventory": "not this one"},
        "inventory": {
            "products": {"featured": [{"id": 1}, {"id": 2}], "n": 3},
            "by/slash": {"x": 1},
            "shelves": [{"items": ["a", "b"]}, {"items": ["c"]}],
            "tilde~key": [7],
        },
    }
    objects.put("nested.json", json.dumps(doc))
    assert objects.values(key="nested.json", input_type="JSON", items_pointer=pointer) == expected


def test_items_pointer_keys_can_contain_dots_without_confusion(local_objects: Objects) -> None:
    local_objects.put("dots.json", json.dumps({"a.b": [1], "a": {"b": [2]}}))
    assert local_objects.values(key="dots.json", input_type="JSON", items_pointer="/a.b") == [1]
    assert local_objects.values(key="dots.json", input_type="JSON", items_pointer="/a/b") == [2]


def test_a_pointer_that_matches_nothing_fails_with_the_aws_cause(local_objects: Objects) -> None:
    local_objects.put("p.json", json.dumps({"items": [1], "list": [0]}))
    for pointer in ("/nope", "/items/3", "/list/00", "items"):
        assert (
            _failure(local_objects, key="p.json", input_type="JSON", items_pointer=pointer).cause == POINTER_NOT_FOUND
        )


def test_a_pointer_to_a_scalar_fails_as_a_non_iterable_node(local_objects: Objects) -> None:
    local_objects.put("s.json", json.dumps({"count": 3}))
    assert _failure(local_objects, key="s.json", input_type="JSON", items_pointer="/count").cause == NON_ITERABLE


@pytest.mark.parametrize("body", ['"just a string"', "42", "null", "  true  "])
def test_a_scalar_document_fails_as_a_non_iterable_node(objects: Objects, body: str) -> None:
    objects.put("scalar.json", body)
    assert _failure(objects, key="scalar.json", input_type="JSON").cause == "Attempting to map over non-iterable node."


def test_malformed_json_fails_naming_the_object_line_and_column(objects: Objects) -> None:
    objects.put("bad.json", '[\n  {"a": 1},\n  {"b" 2}\n]')
    cause = _failure(objects, key="bad.json", input_type="JSON").cause
    assert cause.startswith(f"The JSON in S3://{objects.bucket}/bad.json is not valid: parse error")
    assert "line 3, column" in cause


def test_malformed_json_far_into_a_large_document_is_located(local_objects: Objects) -> None:
    body = "[" + ",\n".join(json.dumps({"n": i}) for i in range(20000)) + ",\n{oops}]"
    local_objects.put("big.json", body)
    stream = local_objects.open(key="big.json", input_type="JSON")
    with pytest.raises(StatesError) as info:
        for _ in stream:
            pass
    assert "line 20001, column 2" in info.value.cause
    assert stream.next_index == 20000


def test_an_empty_or_truncated_document_is_malformed(local_objects: Objects) -> None:
    local_objects.put("empty.json", "")
    local_objects.put("cut.json", '[{"a": 1}, {"b":')
    assert "premature EOF" in _failure(local_objects, key="empty.json", input_type="JSON").cause
    assert "premature EOF" in _failure(local_objects, key="cut.json", input_type="JSON").cause


def test_not_json_at_all_is_malformed_not_non_iterable(local_objects: Objects) -> None:
    local_objects.put("text.json", "hello world")
    cause = _failure(local_objects, key="text.json", input_type="JSON").cause
    assert "is not valid" in cause and "lexical error" in cause


def test_a_byte_order_mark_and_leading_whitespace_are_ignored(local_objects: Objects) -> None:
    local_objects.put("bom.json", b"\xef\xbb\xbf \n\t [1, 2]")
    assert local_objects.values(key="bom.json", input_type="JSON") == [1, 2]


def test_invalid_utf8_in_json_fails_as_malformed(local_objects: Objects) -> None:
    local_objects.put("bin.json", b'["ok", "\xff"]')
    assert "S3://data/bin.json is not valid" in _failure(local_objects, key="bin.json", input_type="JSON").cause


def test_pointer_parsing_unescapes_tokens() -> None:
    assert parse_pointer("") == []
    assert parse_pointer("/") == [""]
    assert parse_pointer("/a~1b/~0c/0") == ["a/b", "~c", "0"]
