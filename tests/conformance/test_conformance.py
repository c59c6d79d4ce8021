"""The AWS-recorded ASL conformance corpus, one test per case (skipped when ``../shared`` is absent).

Every case is run and its status and output (or error) compared; the 232 cases that carry the
execution history AWS recorded also have their GetExecutionHistory compared event by event.
"""

from __future__ import annotations

from typing import Any

import pytest

from .history import compare, run_history
from .runner import CORPUS, load_cases, run_case

CASES = load_cases()

#: Cases dmap does not pass yet, each with the reason (xfail_strict: a fixed case must leave this list).
XFAIL: dict[str, str] = {}


@pytest.mark.skipif(not CASES, reason=f"conformance corpus not found at {CORPUS}")
@pytest.mark.parametrize("case", CASES, ids=[str(c["id"]) for c in CASES])
def test_conformance_case_matches_aws(case: dict[str, Any]) -> None:
    if case["id"] in XFAIL:
        pytest.xfail(XFAIL[case["id"]])
    passed, _, detail = run_case(case)
    assert passed, detail


@pytest.mark.skipif(not CASES, reason=f"conformance corpus not found at {CORPUS}")
def test_most_failure_causes_match_aws_word_for_word() -> None:
    failing = [c for c in CASES if c["expected"]["status"] != "SUCCEEDED"]
    matched = sum(1 for c in failing if run_case(c)[1])
    assert matched >= len(failing) * 0.9, f"only {matched} of {len(failing)} causes match AWS's wording"


HISTORY_CASES = [c for c in CASES if "expected_history" in c]

_BEFORE_NOV_2024 = (
    "recorded by AWS before November 2024, when a Distributed Map's MapStateExited pointed to MapRunSucceeded; "
    "AWS's later recordings (2024-11-15, 2024-12-13, 2025-01-09) point it to MapRunStarted, which dmap reproduces"
)
#: Histories dmap does not reproduce, each with the reason (xfail_strict: a fixed case must leave this list).
HISTORY_XFAIL: dict[str, str] = {
    case_id: _BEFORE_NOV_2024
    for case_id in (
        "ls_test_map_state_config_distributed_item_selector_get_execution_history",
        "ls_test_map_state_config_distributed_parameters_get_execution_history",
        "ls_test_map_state_config_distributed_reentrant_get_execution_history",
        "ls_test_map_state_config_inline_item_selector_get_execution_history",
        "ls_test_map_state_legacy_config_distributed_get_execution_history",
        "ls_test_map_state_legacy_config_distributed_item_selector_get_execution_history",
        "ls_test_map_state_legacy_config_distributed_parameters_get_execution_history",
        "ls_test_map_state_tolerated_failure_count_path[0]_get_execution_history",
        "ls_test_map_state_tolerated_failure_count_path[1]_get_execution_history",
        "ls_test_map_state_tolerated_failure_percentage_path[0]_get_execution_history",
        "ls_test_map_state_tolerated_failure_percentage_path[1.1]_get_execution_history",
        "ls_test_map_state_tolerated_failure_percentage_path[100]_get_execution_history",
        "ls_test_map_state_tolerated_failure_percentage_path[1]_get_execution_history",
    )
}


@pytest.mark.skipif(not HISTORY_CASES, reason=f"conformance corpus not found at {CORPUS}")
@pytest.mark.parametrize("case", HISTORY_CASES, ids=[str(c["id"]) for c in HISTORY_CASES])
def test_execution_history_matches_the_one_aws_recorded(case: dict[str, Any]) -> None:
    if case["id"] in HISTORY_XFAIL:
        pytest.xfail(HISTORY_XFAIL[case["id"]])
    problem = compare(case["expected_history"]["events"], run_history(case))
    assert not problem, problem


def test_the_history_xfail_list_names_only_cases_that_carry_a_history() -> None:
    known = {str(c["id"]) for c in HISTORY_CASES}
    assert not CASES or set(HISTORY_XFAIL) <= known
