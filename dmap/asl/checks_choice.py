"""Choice-rule checks: shape (one comparison with Variable, or one of And/Or/Not), Next placement, operand types.

Owns the rules of ``Choices`` entries for both query languages (JSONata rules are a
``Condition``). It does not own the transition targets (``checks_graph``) or path syntax of
``Variable`` and ``...Path`` operands (``checks_paths``, called from here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import checks_paths
from .checks_common import (
    INVALID_CHOICE,
    WRONG_LANGUAGE,
    Loc,
    Report,
    StateCtx,
    as_mapping,
    is_number,
    is_timestamp,
    jsonata_body,
)

_OPS = ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
#: Every comparison operator and the kind of operand it takes.
OPERATORS: dict[str, str] = {
    **{f"String{op}": "string" for op in _OPS},
    "StringMatches": "string",
    **{f"Numeric{op}": "number" for op in _OPS},
    "BooleanEquals": "boolean",
    **{f"Timestamp{op}": "timestamp" for op in _OPS},
    **{f"{kind}{op}Path": "path" for kind in ("String", "Numeric", "Timestamp") for op in _OPS},
    "BooleanEqualsPath": "path",
    **{f"Is{t}": "boolean" for t in ("Null", "Present", "Numeric", "String", "Boolean", "Timestamp")},
}
_COMBINATORS = ("And", "Or", "Not")
_EXPECTED = {
    "string": "a string",
    "number": "a number",
    "boolean": "true or false",
    "timestamp": 'an ISO-8601 timestamp string such as "2016-03-14T01:59:00Z"',
    "path": 'a path string such as "$.value"',
}


def check_choice(report: Report, ctx: StateCtx) -> None:
    """Check every rule of a Choice state.

    Args:
        report: Where diagnostics go.
        ctx: The Choice state.
    """
    choices = ctx.body.get("Choices")
    if not isinstance(choices, list):
        return
    for i, rule in enumerate(choices):
        body = as_mapping(rule)
        if body is None:
            continue
        loc = (*ctx.loc, "Choices", i)
        if "Next" not in body:
            report.error(
                INVALID_CHOICE,
                "a Choice rule needs 'Next': the state to go to when the rule matches",
                loc,
            )
        if ctx.jsonata:
            _check_jsonata_rule(report, body, loc)
        else:
            _check_rule(report, body, loc, top=True)


def _check_jsonata_rule(report: Report, rule: Mapping[str, Any], loc: Loc) -> None:
    for name in rule:
        if name in OPERATORS or name in _COMBINATORS or name == "Variable":
            report.error(
                WRONG_LANGUAGE,
                f"'{name}' is a JSONPath Choice field, and this state uses JSONata: write the test as "
                '"Condition": "{% expression %}", or set QueryLanguage to JSONPath',
                (*loc, name),
            )
    if "Condition" not in rule:
        report.error(
            INVALID_CHOICE, "a JSONata Choice rule needs 'Condition': a \"{% expression %}\" or a boolean", loc
        )
        return
    condition = rule["Condition"]
    if not isinstance(condition, bool) and jsonata_body(condition) is None:
        report.error(
            INVALID_CHOICE,
            f'Condition must be a JSONata expression "{{% ... %}}" or a boolean, got {condition!r}',
            (*loc, "Condition"),
        )


def _check_rule(report: Report, rule: Mapping[str, Any], loc: Loc, *, top: bool) -> None:
    for name in ("Condition", "Output"):
        if name in rule:
            report.error(
                WRONG_LANGUAGE,
                f"'{name}' is a JSONata Choice field, and this state uses JSONPath: use Variable with a "
                "comparison operator, or set QueryLanguage to JSONata",
                (*loc, name),
            )
    if not top:
        for name in ("Next", "Assign"):
            if name in rule:
                report.error(
                    INVALID_CHOICE,
                    f"a rule nested in And/Or/Not can't have '{name}': only the top-level rule of Choices has one",
                    (*loc, name),
                )
    operators = [name for name in rule if name in OPERATORS]
    combinators = [name for name in rule if name in _COMBINATORS]
    if operators and combinators:
        report.error(
            INVALID_CHOICE,
            f"a Choice rule is either a comparison ({', '.join(operators)}) or a combination "
            f"({', '.join(combinators)}), not both: split it, or nest the comparison inside the combination",
            loc,
        )
    elif len(operators) > 1:
        report.error(
            INVALID_CHOICE,
            f"a Choice rule has exactly one comparison operator, found {', '.join(operators)}: combine several "
            "tests with And/Or",
            loc,
        )
    elif operators:
        _check_comparison(report, rule, loc, operators[0])
    elif len(combinators) > 1:
        report.error(INVALID_CHOICE, f"a Choice rule takes one of And, Or, Not; found {', '.join(combinators)}", loc)
    elif combinators:
        _check_combination(report, rule, loc, combinators[0])
    else:
        report.error(
            INVALID_CHOICE,
            'a Choice rule needs a test: Variable with one comparison operator (e.g. "StringEquals"), or And, Or, Not',
            loc,
        )


def _check_comparison(report: Report, rule: Mapping[str, Any], loc: Loc, operator: str) -> None:
    if "Variable" not in rule:
        report.error(INVALID_CHOICE, f"a {operator} comparison needs 'Variable': the path of the value to test", loc)
    elif isinstance(rule["Variable"], str):
        checks_paths.check_path(report, rule["Variable"], (*loc, "Variable"), "Variable")
    operand = rule[operator]
    kind = OPERATORS[operator]
    if kind == "path":
        if isinstance(operand, str):
            checks_paths.check_path(report, operand, (*loc, operator), operator)
            return
    elif _fits(kind, operand):
        return
    report.error(INVALID_CHOICE, f"{operator} takes {_EXPECTED[kind]}, got {operand!r}", (*loc, operator))


def _fits(kind: str, operand: Any) -> bool:
    if kind == "string":
        return isinstance(operand, str)
    if kind == "number":
        return is_number(operand)
    if kind == "boolean":
        return isinstance(operand, bool)
    return is_timestamp(operand)


def _check_combination(report: Report, rule: Mapping[str, Any], loc: Loc, combinator: str) -> None:
    if "Variable" in rule:
        report.error(
            INVALID_CHOICE,
            f"a rule with {combinator} has no 'Variable': put Variable in each nested rule",
            (*loc, "Variable"),
        )
    value = rule[combinator]
    if combinator == "Not":
        nested = as_mapping(value)
        if nested is None:
            report.error(INVALID_CHOICE, "Not takes one Choice rule (an object)", (*loc, "Not"))
        else:
            _check_rule(report, nested, (*loc, "Not"), top=False)
        return
    if not isinstance(value, list) or not value:
        report.error(INVALID_CHOICE, f"{combinator} takes a non-empty array of Choice rules", (*loc, combinator))
        return
    for i, item in enumerate(value):
        nested = as_mapping(item)
        if nested is not None:
            _check_rule(report, nested, (*loc, combinator, i), top=False)
