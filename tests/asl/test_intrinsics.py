"""Tests for dmap.asl.intrinsics: the parser, every States.* function and their failures."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from dmap.asl.intrinsics import (
    FUNCTIONS,
    IntrinsicCall,
    IntrinsicSyntaxError,
    Literal,
    PathArgument,
    evaluate,
    is_intrinsic,
    java_double,
    java_round,
    parse,
)
from dmap.errors import StatesError

INTRINSIC_FAILURE = "States.IntrinsicFailure"


def run(text: str, data: Any = None, **kwargs: Any) -> Any:
    return evaluate(text, {} if data is None else data, **kwargs)


def failure(text: str, data: Any = None) -> StatesError:
    with pytest.raises(StatesError) as info:
        run(text, data)
    assert info.value.name == INTRINSIC_FAILURE
    assert info.value.cause.startswith("Invalid arguments in States.")
    return info.value


# -- recognising and parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("States.Format('x')", True),
        ("States.UUID()", True),
        ("States.Nope(1)", True),  # looks like one; parse() rejects the name
        ("$.a", False),
        ("States.Format", False),
        (" States.UUID()", False),
        (42, False),
    ],
)
def test_is_intrinsic_recognises_the_call_shape(text: Any, expected: bool) -> None:
    assert is_intrinsic(text) is expected


def test_parse_builds_a_tree_of_calls_literals_and_paths() -> None:
    call = parse("States.Format('{} has {} items', $.name, States.ArrayLength($$.Execution.Input.items))")
    assert call.name == "States.Format"
    assert call.args[0] == Literal("{} has {} items", ("", " has ", " items"))
    assert call.args[1] == PathArgument("$.name")
    inner = call.args[2]
    assert isinstance(inner, IntrinsicCall)
    assert inner.name == "States.ArrayLength"
    assert inner.args == (PathArgument("$$.Execution.Input.items"),)
    assert inner.text == "States.ArrayLength($$.Execution.Input.items)"


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("1", 1),
        ("-17", -17),
        ("2.5", 2.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("'plain'", "plain"),
        ("''", ""),
        ("'it\\'s'", "it's"),
        ("'a\\\\b'", "a\\b"),
        ("'\\{\\}'", "{}"),
        ("'keep \\n as is'", "keep \\n as is"),
    ],
)
def test_literals_parse_to_json_values(argument: str, value: Any) -> None:
    (literal,) = parse(f"States.Array({argument})").args
    assert isinstance(literal, Literal)
    assert literal.value == value
    assert type(literal.value) is type(value)


@pytest.mark.parametrize(
    "path",
    [
        "$",
        "$.a['b, c']",
        "$.users[?(@.name == 'x, y')].id",
        "$.list[0,1]",
        "$$.Map.Item.Value",
        "$var.items[0]",
        "$.a.length()",
    ],
)
def test_path_arguments_keep_brackets_commas_and_quotes_together(path: str) -> None:
    call = parse(f"States.Array({path}, 1)")
    assert call.args == (PathArgument(path), Literal(1))


def test_whitespace_around_arguments_is_allowed() -> None:
    assert run("States.Array(  1 ,\t'a'  , $.x )  ", {"x": None}) == [1, "a", None]


def test_nesting_up_to_ten_calls_deep_is_allowed() -> None:
    text = "States.ArrayLength(" * 1 + "States.Array(" * 9 + "1" + ")" * 10
    assert run(text) == 1


def test_nesting_eleven_calls_deep_is_rejected() -> None:
    text = "States.Array(" * 11 + ")" * 11
    with pytest.raises(IntrinsicSyntaxError, match="nested at most 10 deep"):
        parse(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("States.Nope(1)", "unknown intrinsic function 'States.Nope'"),
        ("States.Format('unterminated)", "unterminated string literal"),
        ("States.Format('dangling\\')", "unterminated string literal"),
        ("States.Array(1", "unexpected end of expression"),
        ("States.Array(1 2)", "expected ',' or ')'"),
        ("States.Array(1,)", "unexpected ')'"),
        ("States.Array(1) tail", "unexpected text after the closing parenthesis"),
        ("States.Array(foo)", "unexpected 'f'"),
        ("States.Array($.a[)", "invalid path argument"),
        ("States.Array($.a['x)", "invalid path argument"),
        ("States.Format(1, 2)", "the first argument of States.Format must be a string"),
        ("$.a", "expected an intrinsic function call"),
    ],
)
def test_malformed_calls_raise_a_syntax_error_that_says_why(text: str, fragment: str) -> None:
    with pytest.raises(IntrinsicSyntaxError) as info:
        parse(text)
    assert fragment in info.value.reason
    assert info.value.text == text
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("name", "bad_counts"),
    [
        ("States.Format", [0]),
        ("States.StringToJson", [0, 2]),
        ("States.JsonToString", [0, 2]),
        ("States.ArrayPartition", [1, 3]),
        ("States.ArrayContains", [1, 3]),
        ("States.ArrayRange", [2, 4]),
        ("States.ArrayGetItem", [1, 3]),
        ("States.ArrayLength", [0, 2]),
        ("States.ArrayUnique", [0, 2]),
        ("States.Base64Encode", [0, 2]),
        ("States.Base64Decode", [0, 2]),
        ("States.Hash", [1, 3]),
        ("States.JsonMerge", [2, 4]),
        ("States.MathRandom", [1, 4]),
        ("States.MathAdd", [1, 3]),
        ("States.StringSplit", [1, 3]),
        ("States.UUID", [1]),
    ],
)
def test_wrong_argument_counts_are_rejected_statically(name: str, bad_counts: list[int]) -> None:
    for count in bad_counts:
        args = ", ".join(["'x'"] * count)
        with pytest.raises(IntrinsicSyntaxError, match=re.escape(f"{name} expects")):
            parse(f"{name}({args})")


def test_every_documented_function_is_known() -> None:
    documented = (
        "Format StringToJson JsonToString Array ArrayPartition ArrayContains ArrayRange ArrayGetItem ArrayLength "
        "ArrayUnique Base64Encode Base64Decode Hash JsonMerge MathRandom MathAdd StringSplit UUID"
    )
    assert sorted(FUNCTIONS) == sorted(f"States.{name}" for name in documented.split())


def test_parsing_is_cached() -> None:
    assert parse("States.Array(1, 2)") is parse("States.Array(1, 2)")


# -- evaluation ------------------------------------------------------------------------------------


def test_a_missing_path_argument_is_a_runtime_error_worded_for_the_field() -> None:
    with pytest.raises(StatesError) as info:
        evaluate("States.Format('{}', $.missing)", {"a": 1}, field="greeting.$")
    assert info.value.name == "States.Runtime"
    assert info.value.cause == (
        "The JSONPath '$.missing' specified for the field 'greeting.$' could not be found in the input '{\"a\":1}'"
    )
    with pytest.raises(StatesError) as info:
        evaluate("States.Array($.missing)", {})
    assert info.value.cause == "The JSONPath '$.missing' could not be found in the input '{}'"


def test_paths_read_state_data_context_and_variables() -> None:
    result = evaluate(
        "States.Array($.a, $$.Map.Item.Index, $v.b[1], $.list[*])",
        {"a": 1, "list": [7, 8]},
        context={"Map": {"Item": {"Index": 4}}},
        variables={"v": {"b": ["x", "y"]}},
    )
    assert result == [1, 4, "y", [7, 8]]


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("States.Format('Hello, my name is {}.', $.name)", {"name": "Arnav"}, "Hello, my name is Arnav."),
        ("States.Format($.template, $.name)", {"template": "Hi {}!", "name": "A"}, "Hi A!"),
        ("States.Format('no placeholders')", {}, "no placeholders"),
        ("States.Format('{}{}', 1, 2)", {}, "12"),
        ("States.Format('\\{\\} and {}', 'x')", {}, "{} and x"),
        ("States.Format('{} {} {} {}', null, true, 1.1, 'it\\'s')", {}, "null true 1.1 it's"),
        ("States.Format('{}', $.o)", {"o": {"Arg1": 1, "Arg2": []}}, "{Arg1=1, Arg2=[]}"),
        ("States.Format('{}', $.o)", {"o": [1, "a", {"b": None}, [2.0]]}, "[1, a, {b=null}, [2.0]]"),
        ("States.Format('{}', $.s)", {"s": '{"Arg1": 1}'}, '{"Arg1": 1}'),
        ("States.Format('{}', 10000000.0)", {}, "1.0E7"),
    ],
)
def test_format_interpolates_values_as_aws_prints_them(text: str, data: Any, expected: str) -> None:
    assert run(text, data) == expected


def test_format_needs_as_many_values_as_placeholders() -> None:
    assert "2 placeholder(s) '{}' but 1 value(s)" in failure("States.Format('{} {}', 1)").cause
    assert "0 placeholder(s)" in failure("States.Format($.t, 1)", {"t": "none"}).cause
    assert "must be a string" in failure("States.Format($.t)", {"t": 5}).cause


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"Arg1": 1, "Arg2": []}', {"Arg1": 1, "Arg2": []}),
        ('[1, 2, "HelloWorld"]', [1, 2, "HelloWorld"]),
        ('"HelloWorld"', "HelloWorld"),
        ("1.1", 1.1),
        ("-0", 0),
        ("true", True),
        ("null", None),
        ("", None),
        ("   ", None),
    ],
)
def test_string_to_json_parses_json_text(value: str, expected: Any) -> None:
    assert run("States.StringToJson($.s)", {"s": value}) == expected


@pytest.mark.parametrize("value", ["{not json", "[1,", "NaN", "1 2"])
def test_string_to_json_fails_on_invalid_json(value: str) -> None:
    assert "not valid JSON" in failure("States.StringToJson($.s)", {"s": value}).cause


def test_string_to_json_needs_a_string() -> None:
    assert "must be a string, got an object" in failure("States.StringToJson($.s)", {"s": {}}).cause


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "null"), (1.1, "1.1"), ("Hi", '"Hi"'), ([1, 2, "x"], '[1,2,"x"]'), ({"a": 1, "b": []}, '{"a":1,"b":[]}')],
)
def test_json_to_string_writes_compact_json(value: Any, expected: str) -> None:
    assert run("States.JsonToString($.v)", {"v": value}) == expected


def test_array_collects_its_arguments_in_order() -> None:
    assert run("States.Array()") == []
    assert run("States.Array('a', 1, $.x, States.Array())", {"x": {"k": 1}}) == ["a", 1, {"k": 1}, []]


@pytest.mark.parametrize(
    ("array", "size", "expected"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], 4, [[1, 2, 3, 4], [5, 6, 7, 8], [9]]),
        ([], 1, []),
        ([0, 1], 5, [[0, 1]]),
        ([1, 2, 3, 4, 5], 2.6, [[1, 2, 3], [4, 5]]),
    ],
)
def test_array_partition_chunks_an_array(array: list[Any], size: Any, expected: Any) -> None:
    assert run("States.ArrayPartition($.a, $.n)", {"a": array, "n": size}) == expected


@pytest.mark.parametrize(("array", "size"), [([1], 0), ([1], -1), ([1], 0.4), ("abc", 2), ([1], "2"), ([1], True)])
def test_array_partition_rejects_bad_arguments(array: Any, size: Any) -> None:
    failure("States.ArrayPartition($.a, $.n)", {"a": array, "n": size})


@pytest.mark.parametrize(
    ("array", "value", "expected"),
    [
        ([[1, 2, 3], 2], [1, 2, 3], True),
        ([{"1": 2, "2": []}], {"2": [], "1": 2}, True),
        ([], None, False),
        ([[1, 2, 3], 2], None, False),
        ([True, False], False, True),
        ([1], True, False),
        ([True], 1, False),
        ([1], 1.0, True),
    ],
)
def test_array_contains_compares_json_values(array: list[Any], value: Any, expected: bool) -> None:
    assert run("States.ArrayContains($.a, $.v)", {"a": array, "v": value}) is expected


def test_array_contains_needs_an_array() -> None:
    failure("States.ArrayContains($.a, 1)", {"a": {"x": 1}})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("1, 9, 2", [1, 3, 5, 7, 9]),
        ("0, 10, 3", [0, 3, 6, 9]),
        ("1, 9, 9", [1]),
        ("5, 5, 1", [5]),
        ("9, 1, -2", [9, 7, 5, 3, 1]),
        ("9, 1, 2", []),
        ("0.6, 4.4, 1.5", [1, 3]),
    ],
)
def test_array_range_includes_the_end_when_the_step_lands_on_it(args: str, expected: list[int]) -> None:
    assert run(f"States.ArrayRange({args})") == expected


def test_array_range_allows_at_most_1000_elements() -> None:
    assert len(run("States.ArrayRange(1, 1000, 1)")) == 1000
    assert "1001 elements; the maximum is 1000" in failure("States.ArrayRange(1, 1001, 1)").cause
    assert "the maximum is 1000" in failure("States.ArrayRange(0, 9223372036854775807, 1)").cause


@pytest.mark.parametrize("args", ["1, 9, 0", "'1', 9, 2", "1, null, 2", "1, 9, $.a"])
def test_array_range_rejects_a_zero_step_and_non_numbers(args: str) -> None:
    failure(f"States.ArrayRange({args})", {"a": [2]})


def test_array_get_item_returns_the_item_at_an_index() -> None:
    data = {"a": [1, 2, 3, 4, 5, 6, 7, 8, 9]}
    assert run("States.ArrayGetItem($.a, 5)", data) == 6
    assert run("States.ArrayGetItem($.a, 0.0)", data) == 1


@pytest.mark.parametrize(
    ("index", "fragment"),
    [(9, "index 9 is out of bounds for an array of length 9"), (-1, "out of bounds"), (1.5, "must be an integer")],
)
def test_array_get_item_rejects_indexes_outside_the_array(index: Any, fragment: str) -> None:
    assert fragment in failure("States.ArrayGetItem($.a, $.i)", {"a": list(range(9)), "i": index}).cause


def test_array_length_counts_items_and_needs_an_array() -> None:
    assert run("States.ArrayLength($.a)", {"a": [1, [2, 3], None]}) == 3
    assert 'must be an array, got "abc"' in failure("States.ArrayLength($.a)", {"a": "abc"}).cause


def test_array_unique_keeps_first_occurrences_in_order() -> None:
    data = {"a": [1, 2, 3, 3, 3, 3, 3, 3, 4]}
    assert run("States.ArrayUnique($.a)", data) == [1, 2, 3, 4]
    mixed: list[Any] = [None, None, True, 1, 1.0, "1", [], [], {"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1, "b": 1}]
    assert run("States.ArrayUnique($.a)", {"a": mixed}) == [None, True, 1, "1", [], {"a": 1, "b": 2}, {"a": 1, "b": 1}]


def test_base64_encode_and_decode_round_trip_utf8() -> None:
    assert run("States.Base64Encode('Data to encode')") == "RGF0YSB0byBlbmNvZGU="
    assert run("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')") == "Data to encode"
    assert run("States.Base64Encode('')") == ""
    assert run("States.Base64Decode(States.Base64Encode('héllo ✓'))") == "héllo ✓"
    assert run("States.Base64Decode('RGF0YQ')") == "Data"  # padding is optional, as in Java's decoder


def test_base64_rejects_more_than_10000_characters_and_bad_input() -> None:
    assert len(run("States.Base64Encode($.s)", {"s": "a" * 10_000})) > 10_000
    assert "at most 10000 characters, got 10001" in failure("States.Base64Encode($.s)", {"s": "a" * 10_001}).cause
    assert "at most 10000" in failure("States.Base64Decode($.s)", {"s": "A" * 10_004}).cause
    assert "not valid base64" in failure("States.Base64Decode('***')").cause
    failure("States.Base64Encode($.s)", {"s": 12})


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        (
            "SHA-384",
            "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562",
        ),
        (
            "SHA-512",
            "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce"
            "2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4",
        ),
    ],
)
def test_hash_matches_the_digests_aws_returns(algorithm: str, digest: str) -> None:
    assert run("States.Hash($.d, $.alg)", {"d": "input data", "alg": algorithm}) == digest


def test_hash_rejects_unknown_algorithms_and_oversized_input() -> None:
    assert "unsupported algorithm 'SHA-3'" in failure("States.Hash('x', 'SHA-3')").cause
    assert "at most 10000" in failure("States.Hash($.d, 'MD5')", {"d": "x" * 10_001}).cause


def test_json_merge_is_shallow_and_the_second_object_wins() -> None:
    data = {"a": {"a": {"a1": 1, "a2": 2}, "b": 2, "d": 3}, "b": {"a": {"a3": 1, "a4": 2}, "c": 3, "d": 4}}
    before = {k: dict(v) for k, v in data.items()}
    assert run("States.JsonMerge($.a, $.b, false)", data) == {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3, "d": 4}
    assert data == before


def test_json_merge_of_a_parsed_literal_and_the_context_input() -> None:
    text = 'States.JsonMerge(States.StringToJson(\'{"x": "false"}\'), $$.Execution.Input.f, false)'
    assert evaluate(text, {}, context={"Execution": {"Input": {"f": {"k": "v"}}}}) == {"x": "false", "k": "v"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("$.o, $.o, true", "only shallow merging is supported"),
        ("$.o, $.o, 'false'", "must be a boolean"),
        ("$.o, $.l, false", "the second argument must be an object, got an array"),
        ("$.l, $.o, false", "the first argument must be an object"),
    ],
)
def test_json_merge_rejects_deep_merges_and_non_objects(args: str, fragment: str) -> None:
    assert fragment in failure(f"States.JsonMerge({args})", {"o": {}, "l": []}).cause


def test_math_random_stays_in_the_half_open_range() -> None:
    values = {run("States.MathRandom(3, 5)") for _ in range(200)}
    assert values <= {3, 4}
    assert {run("States.MathRandom(3, 4)") for _ in range(20)} == {3}
    assert all(-99999 <= run("States.MathRandom(-99999, -9999)") < -9999 for _ in range(20))


def test_math_random_with_a_seed_is_reproducible() -> None:
    first = run("States.MathRandom(1, 1000000, 42)")
    assert all(run("States.MathRandom(1, 1000000, 42)") == first for _ in range(5))
    assert 1 <= first < 1_000_000


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("7, 7", "must be less than the end"),
        ("10, 1", "must be less than the end"),
        ("'1', 9", "must be a number"),
        ("1, 9, 'seed'", "the seed must be a number"),
        ("1, 2147483648", "between -2147483648 and 2147483647"),
    ],
)
def test_math_random_rejects_empty_ranges_and_non_integers(args: str, fragment: str) -> None:
    assert fragment in failure(f"States.MathRandom({args})").cause


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (-9, 3, -6),
        (1.49, 1.50, 3),
        (1.50, 1.51, 4),
        (-1.49, -1.50, -2),
        (-1.50, -1.51, -3),
        (0.5, 0, 1),
        (2.5, 0, 3),
        (-0.5, 0, 0),
        (-0.5, 0.5, 1),
        (-2.5, 0, -2),
        (-3.5, 0, -3),
        (111, -1, 110),
    ],
)
def test_math_add_rounds_half_up_like_java_as_recorded_on_aws(first: float, second: float, expected: int) -> None:
    result = run("States.MathAdd($.a, $.b)", {"a": first, "b": second})
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("first", "second", "fragment"),
    [
        (2147483647, 1, "the sum must be between"),
        (-2147483648, -1, "the sum must be between"),
        (2147483648, 0, "the first argument must be between"),
        ("1", 2, "must be a number"),
        (True, 2, "must be a number, got true"),
    ],
)
def test_math_add_is_limited_to_32_bit_integers(first: Any, second: Any, fragment: str) -> None:
    assert fragment in failure("States.MathAdd($.a, $.b)", {"a": first, "b": second}).cause


@pytest.mark.parametrize(
    ("text", "delimiters", "expected"),
    [
        ("1,2,3,4,5", ",", ["1", "2", "3", "4", "5"]),
        ("This.is+a,test=string", ".+,=", ["This", "is", "a", "test", "string"]),
        (", , ,", ",", [" ", " "]),
        (",,,,", ",", []),
        ("split on T and \nnew line", "T\n", ["split on ", " and ", "new line"]),
        ("a]b[c", "[]", ["a", "b", "c"]),
        ("abc", "", ["abc"]),
        ("", ",", []),
    ],
)
def test_string_split_treats_every_character_as_a_delimiter(text: str, delimiters: str, expected: list[str]) -> None:
    assert run("States.StringSplit($.s, $.d)", {"s": text, "d": delimiters}) == expected


def test_string_split_needs_strings() -> None:
    assert "the delimiters (second argument) must be a string" in failure("States.StringSplit('a', 1)").cause


def test_uuid_returns_distinct_version_4_uuids() -> None:
    first, second = run("States.UUID()"), run("States.UUID()")
    assert first != second
    assert uuid.UUID(first).version == 4


def test_nested_calls_compose_as_in_the_aws_documentation() -> None:
    # The documentation's nine-deep example, with one placeholder per value.
    text = (
        "States.Format('{}.{}', "
        "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.Arn, '/'), 2), '.'), 0), "
        "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.Arn, '/'), 2), '.'), 1))"
    )
    data = {"Arn": "arn:aws:imagebuilder:us-east-1:123:image-recipe/name/1.2.3"}
    assert run(text, data) == "1.2"


def test_a_failing_inner_call_names_the_inner_call() -> None:
    error = failure("States.Array(States.ArrayGetItem($.a, 5))", {"a": []})
    assert error.cause.startswith("Invalid arguments in States.ArrayGetItem($.a, 5): ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.5, 1), (1.5, 2), (2.5, 3), (-0.5, 0), (-1.5, -1), (-2.5, -2), (-1.51, -2), (0.49999999999999994, 0)],
)
def test_java_round_rounds_half_up(value: float, expected: int) -> None:
    assert java_round(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1.0"),
        (1.1, "1.1"),
        (-0.0, "-0.0"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (-1.5e20, "-1.5E20"),
        (float("inf"), "Infinity"),
        (float("nan"), "NaN"),
    ],
)
def test_java_double_formats_like_double_to_string(value: float, expected: str) -> None:
    assert java_double(value) == expected
