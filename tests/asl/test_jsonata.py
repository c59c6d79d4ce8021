"""The JSONata adapter: evaluation, ``$states`` and variables, AWS's extra functions, bounds and error causes."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dmap.asl import jsonata
from dmap.errors import StatesError

STATES: dict[str, Any] = {
    "input": {"a": 1.0, "n": None, "list": [1, None], "name": "Bob", "items": [1, 2, 3]},
    "context": {"Execution": {"Id": "arn:exec"}},
}


def ev(text: str, variables: dict[str, Any] | None = None, field: str = "Output") -> Any:
    return jsonata.evaluate(text, states=STATES, variables=variables or {}, field=field)


def cause_of(text: str, variables: dict[str, Any] | None = None, field: str = "Output") -> str:
    with pytest.raises(StatesError) as info:
        ev(text, variables, field)
    assert info.value.name == "States.QueryEvaluationError"
    return info.value.cause


# --- recognising and evaluating -----------------------------------------------------------------


def test_only_a_whole_braced_string_is_an_expression() -> None:
    assert jsonata.is_expression("{% $x %}")
    assert jsonata.is_expression("{%$x%}")
    assert not jsonata.is_expression(" {% $x %}")
    assert not jsonata.is_expression("Hello {% $x %}")
    assert not jsonata.is_expression("{% $x")
    assert not jsonata.is_expression(42)


def test_states_input_context_and_variables_are_bound() -> None:
    assert ev("{% 'Hello ' & $states.input.name %}") == "Hello Bob"
    assert ev("{% $states.context.Execution.Id %}") == "arn:exec"
    assert ev("{% $price * 2 %}", {"price": 21}) == 42


def test_states_result_and_error_output_are_visible_when_given() -> None:
    states = {**STATES, "result": {"v": 7}, "errorOutput": {"Error": "E"}}
    assert jsonata.evaluate("{% $states.result.v %}", states=states, variables={}, field="Output") == 7
    assert jsonata.evaluate("{% $states.errorOutput.Error %}", states=states, variables={}, field="Output") == "E"


def test_json_null_is_a_value_and_stays_apart_from_undefined() -> None:
    assert ev("{% $states.input.n %}") is None
    assert ev("{% $exists($states.input.n) %}") is True
    assert ev("{% $nothing %}", {"nothing": None}) is None
    assert ev("{% $type($nothing) %}", {"nothing": None}) == "null"
    assert ev("{% $states.input.list %}") == [1, None]
    assert ev("{% {'k': null} %}") == {"k": None}


def test_integral_numbers_come_back_as_integers() -> None:
    assert ev("{% $states.input.a %}") == 1
    assert isinstance(ev("{% $states.input.a %}"), int)
    assert ev("{% 0.5 + 0.25 %}") == 0.75


def test_results_are_fresh_copies_of_the_bound_data() -> None:
    value = ev("{% $states.input.items %}")
    value.append(4)
    assert STATES["input"]["items"] == [1, 2, 3]


def test_sequences_become_plain_lists_and_singletons_collapse() -> None:
    assert ev("{% $map([1,2,3], function($v){ $v * 2 }) %}") == [2, 4, 6]
    assert type(ev("{% $map([1,2,3], function($v){ $v * 2 }) %}")) is list
    assert ev("{% $map([1], function($v){ $v * 2 }) %}") == 2
    assert ev("{% [1..3] %}") == [1, 2, 3]


def test_resolve_walks_objects_and_arrays_and_leaves_plain_values() -> None:
    template = {"greeting": "{% 'Hi ' & $states.input.name %}", "static": "text", "n": 4, "list": ["{% 1 + 1 %}", None]}
    resolved = jsonata.resolve(template, states=STATES, variables={}, field="Output")
    assert resolved == {"greeting": "Hi Bob", "static": "text", "n": 4, "list": [2, None]}
    assert jsonata.resolve("Hello {% $x %}", states=STATES, variables={}, field="Output") == "Hello {% $x %}"


# --- causes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "field", "named"),
    [
        ({"v": "{% $states.input.missing %}"}, "Output", "Output/v"),
        ({"a": {"b": "{% $states.input.missing %}"}}, "Output", "Output/a/b"),
        ("{% $states.input.missing %}", "Output", "Output"),
        ({"values": ["{% $states.input.missing %}", 1]}, "Output", "Output/values[0]"),
        ({"a": {"b": [[1, "{% $states.input.missing %}"]]}}, "Output", "Output/a/b[0][1]"),
        ({"x": "{% $states.input.missing %}"}, "Assign", "Assign/x"),
    ],
)
def test_an_undefined_result_names_the_expression_and_the_field_path(template: Any, field: str, named: str) -> None:
    with pytest.raises(StatesError) as info:
        jsonata.resolve(template, states=STATES, variables={}, field=field)
    assert info.value.name == "States.QueryEvaluationError"
    assert info.value.cause == (
        "The JSONata expression '$states.input.missing' specified for the field "
        f"'{named}' returned nothing (undefined)."
    )


def test_a_function_result_is_an_unsupported_result_type() -> None:
    expected = "The JSONata expression '{0}' specified for the field 'Output' returned an unsupported result type."
    assert cause_of("{% function($v){ $v } %}") == expected.format("function($v){ $v }")
    assert cause_of("{% {'f': $sum} %}") == expected.format("{'f': $sum}")


def test_an_evaluation_error_carries_the_jsonata_code_and_message() -> None:
    assert cause_of("{% 1 + {} %}") == (
        "The JSONata expression '1 + {}' specified for the field 'Output' threw an error during evaluation. "
        "T2002: The right side of the + operator must evaluate to a number"
    )
    assert "function" in cause_of("{% $sqrt(-1) %}") and "Object" not in cause_of("{% $sqrt(-1) %}")


def test_a_syntax_error_is_a_query_evaluation_error() -> None:
    assert cause_of("{% 1 + %}") == (
        "The JSONata expression '1 +' specified for the field 'Output' threw an error during evaluation. "
        "S0207: Unexpected end of expression"
    )


def test_a_python_level_failure_inside_the_library_is_still_a_query_evaluation_error() -> None:
    assert "threw an error during evaluation: " in cause_of("{% 1/0 %}")


def test_eval_is_not_available() -> None:
    assert cause_of("{% $eval('1') %}").endswith("T1006: Attempted to invoke a non-function")


def test_unexpected_type_cause_matches_aws_wording() -> None:
    error = jsonata.unexpected_type("{% 1 %}", "Items", "array", 1)
    assert error.name == "States.QueryEvaluationError"
    assert error.cause == (
        "The JSONata expression '1' specified for the field 'Items' returned an unexpected result type. "
        "Expected 'array', but was 'number' for value: 1"
    )
    assert (
        '\'object\' for value: {"foo":"bar"}'
        in jsonata.unexpected_type("{% $o %}", "Items", "array", {"foo": "bar"}).cause
    )
    assert (
        jsonata.json_type(True) == "boolean"
        and jsonata.json_type(None) == "null"
        and jsonata.json_type("s") == "string"
    )


# --- bounds -------------------------------------------------------------------------------------


def test_an_endless_loop_stops_at_the_one_second_limit_without_leaking_a_thread() -> None:
    before = threading.active_count()
    cause = cause_of("{% ($f := function($x){ $f($x + 1) }; $f(1)) %}")
    assert cause.endswith("threw an error during evaluation: Expression evaluation timeout: Check for infinite loop")
    assert threading.active_count() == before


def test_each_evaluation_gets_its_own_clock() -> None:
    # The compiled expression is cached; a stale start time would make the second call time out at once.
    text = "{% $sum([1..1000]) %}"
    assert ev(text) == 500500
    assert ev(text) == 500500


def test_recursion_deeper_than_aws_allows_is_a_stack_overflow() -> None:
    head = "{% ($f := function($x){ $x <= 0 ? 0 : 1 + $f($x - 1) }; $f("
    assert ev(head + "31)) %}") == 31
    assert cause_of(head + "32)) %}").endswith(
        "Stack overflow error: Check for non-terminating recursive function.  Consider rewriting as tail-recursive"
    )


def test_evaluation_is_safe_from_many_threads_at_once() -> None:
    expressions = [
        ("{% $states.input.a + $x %}", lambda a, x: a + x),
        ("{% $map([1, 2], function($v){ $v * $x + $states.input.a }) %}", lambda a, x: [x + a, 2 * x + a]),
        ("{% ($y := $x * 2; $y + $states.input.a) %}", lambda a, x: 2 * x + a),
    ]

    def work(worker: int) -> int:
        wrong = 0
        for step in range(100):
            text, expected = expressions[(worker + step) % len(expressions)]
            states = {"input": {"a": worker}, "context": {}}
            got = jsonata.evaluate(text, states=states, variables={"x": step}, field="Output")
            wrong += got != expected(worker, step)
        return wrong

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(work, range(32))) == 0


# --- the functions Step Functions adds ----------------------------------------------------------


def test_partition_chunks_an_array() -> None:
    assert ev("{% $partition([1,2,3,4,5], 2) %}") == [[1, 2], [3, 4], [5]]
    assert ev("{% $partition([0], 1) %}") == [[0]]
    assert ev("{% $partition([1,2,3,4,5], 2.9) %}") == [[1, 2], [3, 4], [5]]
    assert ev("{% $partition([1,2,3]) %}") == [[1, 2, 3]]
    assert "returned nothing" in cause_of("{% $partition([], 2) %}")
    assert "returned nothing" in cause_of("{% $partition([1], 0) %}")
    assert cause_of("{% $partition([1], -1) %}").endswith("D3137: Second argument must be zero or greater")


def test_range_counts_inclusively_by_step_and_collapses_a_single_value() -> None:
    assert ev("{% $range(0, 10, 2) %}") == [0, 2, 4, 6, 8, 10]
    assert ev("{% $range(0, 9, 3) %}") == [0, 3, 6, 9]
    assert ev("{% $range(10, 0, -2) %}") == [10, 8, 6, 4, 2, 0]
    assert ev("{% $range(1, 9, 9) %}") == 1
    assert ev("{% $range(-1.7, 2, 1) %}") == [-1, 0, 1, 2]  # integer arguments are truncated
    assert "returned nothing" in cause_of("{% $range(5, 1, 1) %}")
    assert "returned nothing" in cause_of("{% $range(1, 5, 0) %}")
    assert cause_of("{% $range(1, 1000000000, 1) %}").endswith(
        "threw an error during evaluation: "
        "Expression evaluation memory limit exceeded: Check for excessive memory usage"
    )


def test_hash_supports_the_aws_algorithms_only() -> None:
    assert ev("{% $hash('Hello', 'MD5') %}") == "8b1a9953c4611296a827abf8c47804d7"
    assert ev("{% $hash('Hello', 'SHA-1') %}") == "f7ff9e8b7bb2e09b70935a5d785e0cc5d9d0abf0"
    assert ev("{% $hash('Hello', 'SHA-256') %}") == "185f8db32271fe25f561a6fc938b2e264306ec304eda518007d1764826381969"
    assert ev("{% $hash('ñ', 'MD5') %}") == "94e9342ecbb1458b6043ecd3bfcbc192"
    assert "not supported" in cause_of("{% $hash('Hello', 'md5') %}")
    assert "T0410" in cause_of("{% $hash(42, 'MD5') %}")


def test_random_is_reproducible_with_a_seed_like_aws() -> None:
    assert ev("{% $random(42) %}") == 0.7275636800328681
    assert ev("{% $random(0) %}") == 0.730967787376657
    assert ev("{% $random(0.9) %}") == ev("{% $random(0) %}")
    unseeded = ev("{% $random() %}")
    assert 0 <= unseeded < 1


def test_uuid_is_a_fresh_version_4_uuid() -> None:
    first, second = ev("{% $uuid() %}"), ev("{% $uuid() %}")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first)
    assert first != second
    assert "T0410" in cause_of("{% $uuid('seed') %}")


def test_parse_reads_json_text() -> None:
    assert ev('{% $parse(\'{"Arg1": 1, "Arg2": []}\') %}') == {"Arg1": 1, "Arg2": []}
    assert ev("{% $parse('-0') %}") == 0
    assert ev("{% $parse('1.1') %}") == 1.1
    assert ev("{% $parse('null') %}") is None
    assert ev("{% $exists($parse('null')) %}") is True
    assert "Invalid JSON" in cause_of("{% $parse('not json') %}")
    assert "Invalid JSON" in cause_of('{% $parse(\'{"a": 1, "a": 2}\') %}')
    assert "Invalid JSON" in cause_of("{% $parse('1e400') %}")


def test_the_extra_functions_can_be_passed_as_values() -> None:
    assert ev("{% $map(['{\"a\":1}', '{\"a\":2}'], $parse).a %}") == [1, 2]
