"""Tests for dmap.asl.paths: the grammar, Jayway's definite/indefinite rules, select and assign."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dmap.asl.paths import (
    PathAssignError,
    PathNotFound,
    PathSyntaxError,
    assign,
    compact_json,
    is_definite,
    is_path,
    is_reference_path,
    select,
)

DOC: dict[str, Any] = {
    "name": "dmap",
    "none": None,
    "nested": {"deep": {"value": 42}},
    "list": [10, 20, 30],
    "users": [{"year": 1997, "status": 0, "tags": []}, {"year": 1998, "status": 1}],
    "delivery-partner": "UQS",
    "odd keys": {"a b": 1, "it's": 2, "where": 3},
}


@pytest.mark.parametrize(
    "text",
    [
        "$",
        "$.name",
        "$.nested.deep.value",
        "$.list[0]",
        "$.list[-1]",
        "$['odd keys']['a b']",
        '$["odd keys"]',
        "$.delivery-partner",
        "$.users[*].year",
        "$..year",
        "$.users[?(@.status == 0)]",
        "$.users[?(@.year > 1997 && @.status == 1)]",
        "$.list[0:2]",
        "$.list[0,2]",
        "$['name','none']",
        "$.list.length()",
        "$$",
        "$$.Execution.Input",
        "$$.Map.Item.Value",
        "$order",
        "$order.items[0].id",
        "$_x1['a']",
    ],
)
def test_valid_asl_paths_are_recognised(text: str) -> None:
    assert is_path(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name",
        ".name",
        "$.",
        "$.a.",
        "$.a[",
        "$.a[0",
        "$.a['b]",
        "$[]",
        "$.a b",
        "$..",
        "$.a[x]",
        "$1",
        "$.a[?(@.b ==]",
    ],
)
def test_malformed_paths_are_rejected(text: str) -> None:
    assert not is_path(text)


def test_non_strings_are_not_paths() -> None:
    assert not is_path(42)  # type: ignore[arg-type]
    assert not is_reference_path(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$", True),
        ("$.a.b", True),
        ("$.a[0]['b c']", True),
        ("$.a[-1]", True),
        ("$.a.length()", True),
        ("$.a[*]", False),
        ("$.a.*", False),
        ("$..a", False),
        ("$.a[?(@.b)]", False),
        ("$.a[0:1]", False),
        ("$.a[0,1]", False),
        ("$['a','b']", True),  # Jayway merges a trailing union into one object: definite
        ("$[*]['a','b']", False),
        ("$.[0]", True),
    ],
)
def test_definite_paths_are_only_fields_and_single_indexes(text: str, expected: bool) -> None:
    assert is_definite(text) is expected


def test_is_definite_raises_for_an_invalid_path() -> None:
    with pytest.raises(PathSyntaxError) as info:
        is_definite("$.a[")
    assert info.value.path == "$.a["


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$", True),
        ("$.a.b", True),
        ("$.a[2]", True),
        ("$['a b'].c", True),
        ("$.a[*]", False),
        ("$..a", False),
        ("$.a[?(@.x)]", False),
        ("$.a[0:2]", False),
        ("$.a.length()", False),
        ("a.b", False),
    ],
)
def test_reference_paths_allow_only_fields_and_indexes(text: str, expected: bool) -> None:
    assert is_reference_path(text) is expected


def test_reference_paths_can_exclude_context_and_variables_as_resultpath_requires() -> None:
    assert is_reference_path("$$.Execution.Id")
    assert is_reference_path("$var.a")
    assert not is_reference_path("$$.Execution.Id", allow_context=False)
    assert not is_reference_path("$var.a", allow_variables=False)
    assert is_reference_path("$.a", allow_context=False, allow_variables=False)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.name", "dmap"),
        ("$.none", None),
        ("$.nested.deep.value", 42),
        ("$.nested['deep']", {"value": 42}),
        ("$.list[1]", 20),
        ("$.list[-1]", 30),
        ("$.users[1].year", 1998),
        ("$.delivery-partner", "UQS"),
        ("$['odd keys']['a b']", 1),
        ("$['odd keys']['it\\'s']", 2),
        ('$["odd keys"]["it\'s"]', 2),
        ("$['odd keys'].where", 3),
        ("$.list.length()", 3),
        ("$.name.length()", 4),
    ],
)
def test_definite_paths_return_the_value_itself(path: str, expected: Any) -> None:
    assert select(path, DOC) == expected


def test_the_root_path_returns_the_whole_document_unchanged() -> None:
    assert select("$", DOC) is DOC


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.users[*].year", [1997, 1998]),
        ("$..year", [1997, 1998]),
        ("$.users[?(@.status == 0)]", [{"year": 1997, "status": 0, "tags": []}]),
        ("$.users[?(@.tags)].year", [1997]),
        ("$.users[?(@.year > 1996 && @.status == 1)].year", [1998]),
        ("$.users[?(@.year == 2000)]", []),
        ("$.list[0:2]", [10, 20]),
        ("$.list[0,2]", [10, 30]),
        ("$.list[*]", [10, 20, 30]),
        ("$.missing[*]", []),
        ("$['odd keys'].*", [1, 2, 3]),
        ("$..where", [3]),
    ],
)
def test_indefinite_paths_return_the_list_of_matches(path: str, expected: Any) -> None:
    assert select(path, DOC) == expected


def test_a_single_filter_match_is_still_a_list_as_aws_returns_it() -> None:
    doc = {"users": [{"year": 1997, "status": 0}, {"year": 1998, "status": 1}]}
    assert select("$.users[?(@.status == 0)]", doc) == [{"year": 1997, "status": 0}]


def test_length_of_an_indefinite_path_counts_the_matches() -> None:
    assert select("$.users[*].year.length()", DOC) == 2


@pytest.mark.parametrize(
    "path", ["$.missing", "$.nested.missing", "$.name.inner", "$.list[3]", "$.list[-4]", "$.list.first", "$.nested[0]"]
)
def test_a_definite_path_that_matches_nothing_raises_path_not_found(path: str) -> None:
    with pytest.raises(PathNotFound) as info:
        select(path, DOC)
    assert info.value.path == path
    assert info.value.data is DOC


def test_path_not_found_words_its_cause_as_aws_does() -> None:
    with pytest.raises(PathNotFound) as info:
        select("$.x", {"a": 1, "b": "é"})
    assert str(info.value) == 'The JSONPath \'$.x\' could not be found in the input \'{"a":1,"b":"é"}\''
    assert info.value.cause("x.$") == (
        "The JSONPath '$.x' specified for the field 'x.$' could not be found in the input '{\"a\":1,\"b\":\"é\"}'"
    )


def test_path_not_found_hints_at_what_exists_where_the_lookup_stopped() -> None:
    item = {"Etag": "e", "Key": "k", "Size": 1}
    with pytest.raises(PathNotFound) as info:
        select("$.Bucket", item)
    assert "no field 'Bucket' at '$'" in info.value.hint
    assert "'Etag', 'Key', 'Size'" in info.value.hint
    with pytest.raises(PathNotFound) as info:
        select("$.list[7]", DOC)
    assert "no index 7 at '$.list', which is an array of length 3" in info.value.hint


def test_length_of_a_number_is_not_found() -> None:
    with pytest.raises(PathNotFound):
        select("$.nested.deep.value.length()", DOC)


def test_context_paths_read_the_context_object() -> None:
    context = {"Execution": {"Input": {"a": 1}}, "Map": {"Item": {"Index": 3, "Value": "v"}}}
    assert select("$$.Map.Item.Index", DOC, context=context) == 3
    assert select("$$.Execution.Input.a", DOC, context=context) == 1
    assert select("$$", DOC, context=context) is context
    with pytest.raises(PathNotFound) as info:
        select("$$.Map.Item.Key", DOC, context=context)
    assert info.value.data is context


def test_context_paths_without_a_context_find_nothing() -> None:
    assert select("$$", DOC) is None
    with pytest.raises(PathNotFound):
        select("$$.Execution", DOC)


def test_variable_paths_read_the_variable_then_the_rest_of_the_path() -> None:
    variables = {"order": {"items": [{"id": "i1"}, {"id": "i2"}]}, "count": 2}
    assert select("$count", DOC, variables=variables) == 2
    assert select("$order.items[1].id", DOC, variables=variables) == "i2"
    assert select("$order.items[*].id", DOC, variables=variables) == ["i1", "i2"]


def test_an_undefined_variable_is_path_not_found_naming_the_variable() -> None:
    with pytest.raises(PathNotFound) as info:
        select("$missing.a", DOC, variables={"other": 1})
    assert info.value.undefined_variable == "missing"
    assert "the variable '$missing' is not defined (defined: other)" in info.value.cause("a.$")
    with pytest.raises(PathNotFound):
        select("$missing", DOC)


def test_select_rejects_invalid_syntax() -> None:
    with pytest.raises(PathSyntaxError):
        select("$.a[", DOC)


def test_assign_at_the_root_returns_the_value() -> None:
    assert assign({"a": 1}, "$", [1, 2]) == [1, 2]


def test_assign_adds_a_field_without_touching_the_input() -> None:
    data = {"a": {"b": 1}, "keep": {"x": [1]}}
    before = copy.deepcopy(data)
    out = assign(data, "$.a.c", "new")
    assert out == {"a": {"b": 1, "c": "new"}, "keep": {"x": [1]}}
    assert data == before
    assert out["keep"] is data["keep"]  # only the objects along the path are copied


def test_assign_creates_intervening_objects() -> None:
    assert assign({}, "$.a.b['c d']", 1) == {"a": {"b": {"c d": 1}}}
    assert assign({"x": 1}, "$.result", None) == {"x": 1, "result": None}


def test_assign_replaces_an_existing_value() -> None:
    assert assign({"a": {"b": 1}}, "$.a", 5) == {"a": 5}


def test_assign_replaces_an_array_element_in_range() -> None:
    data = {"a": [{"v": 1}, {"v": 2}]}
    assert assign(data, "$.a[1].v", 9) == {"a": [{"v": 1}, {"v": 9}]}
    assert assign(data, "$.a[-1]", 0) == {"a": [{"v": 1}, 0]}
    assert data == {"a": [{"v": 1}, {"v": 2}]}


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"a": "text"}, "$.a.b", "'$.a' is the value \"text\", not an object"),
        ({"a": None}, "$.a.b", "'$.a' is the value null, not an object"),
        ([1, 2], "$.a", "'$' is an array of length 2, not an object"),
        ("scalar", "$.a", "not an object"),
        ({"a": [1]}, "$.a[3]", "index 3 is out of range for '$.a' (length 1)"),
        ({"a": {"b": 1}}, "$.a[0]", "not an array"),
        ({}, "$.a[0]", "'$.a' is missing, not an array"),
    ],
)
def test_assign_fails_when_an_intermediate_is_not_a_container(data: Any, path: str, fragment: str) -> None:
    with pytest.raises(PathAssignError) as info:
        assign(data, path, 1)
    assert info.value.path == path
    assert fragment in str(info.value)


@pytest.mark.parametrize("path", ["$$.Execution", "$var.a", "$.a[*]", "$..a", "$.a.length()", "$.a["])
def test_assign_accepts_only_reference_paths_on_the_state_data(path: str) -> None:
    with pytest.raises(PathAssignError):
        assign({"a": [1]}, path, 1)


def test_compact_json_has_no_spaces_and_keeps_unicode() -> None:
    assert compact_json({"a": [1, 2.5, None, True], "b": "ü"}) == '{"a":[1,2.5,null,true],"b":"ü"}'


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.[1]", 20),
        ("$.list.[1]", 20),
        ("$.['name']", "dmap"),
        ("$.users.[*].year", [1997, 1998]),
    ],
)
def test_a_dot_before_a_bracket_is_read_as_the_bracket_alone_as_jayway_does(path: str, expected: Any) -> None:
    data = [10, 20] if path == "$.[1]" else DOC
    assert is_path(path)
    assert select(path, data) == expected


@pytest.mark.parametrize("path", ["$.", "$.[", "$.[0].", "$.a.", "$..[0"])
def test_a_dot_that_ends_a_path_or_opens_nothing_is_still_rejected(path: str) -> None:
    assert not is_path(path)


def test_a_trailing_union_of_fields_is_one_object_with_those_fields_as_in_jayway() -> None:
    assert select("$['name','none']", DOC) == {"name": "dmap", "none": None}
    assert select("$.nested['deep','absent']", DOC) == {"deep": {"value": 42}}


def test_a_trailing_union_after_a_wildcard_is_one_object_per_element() -> None:
    items = [{"bucket": "b1", "key": "k1", "size": 1}, {"bucket": "b2"}, 7, {"other": 1}]
    assert select("$[*]['bucket','key']", items) == [{"bucket": "b1", "key": "k1"}, {"bucket": "b2"}, {}]


def test_a_union_followed_by_more_steps_iterates_over_its_fields() -> None:
    doc = {"a": {"c": 1}, "b": {"c": 2}}
    assert select("$['a','b'].c", doc) == [1, 2]


def test_a_definite_trailing_union_on_a_non_object_is_not_found() -> None:
    with pytest.raises(PathNotFound) as info:
        select("$.list['a','b']", DOC)
    assert "needs an object" in info.value.hint


def test_a_trailing_union_is_not_a_reference_path() -> None:
    assert not is_reference_path("$['a','b']")


def test_a_deep_scan_of_a_union_is_every_object_holding_all_those_fields_in_document_order() -> None:
    doc = {"a": 1, "b": 2, "x": [{"a": 3, "b": 4, "c": {"a": 5, "b": 6}}, {"a": 7}], "y": {"a": 8, "b": 9}}
    assert select("$..['a','b']", doc) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5, "b": 6}, {"a": 8, "b": 9}]
    assert select("$.x..['a','b']", doc) == [{"a": 3, "b": 4}, {"a": 5, "b": 6}]
