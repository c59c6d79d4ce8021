"""The AWS-recorded ASL conformance corpus, one test per case (skipped when ``../shared`` is absent)."""

from __future__ import annotations

from typing import Any

import pytest

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
