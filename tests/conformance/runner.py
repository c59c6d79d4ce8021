"""Run the AWS-recorded ASL conformance cases through dmap and compare, as the corpus README says.

``python -m tests.conformance.runner`` prints the pass counts (status+output/error, and causes).
The corpus lives beside the project in ``../shared/conformance`` and is never copied into it.
"""

from __future__ import annotations

import json
import math
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "cases"


def load_cases() -> list[dict[str, Any]]:
    """Every case of the corpus, sorted by id (empty when the corpus is absent)."""
    if not CORPUS.is_dir():
        return []
    return sorted((json.loads(p.read_text()) for p in CORPUS.glob("*.json")), key=lambda c: str(c["id"]))


def same(a: Any, b: Any) -> bool:
    """Deep equality where an integral float equals the same int (``1.0 == 1``), as the corpus asks."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def run_case(case: dict[str, Any]) -> tuple[bool, bool, str]:
    """Run one case; returns ``(passed, cause_matches, detail)``."""
    import dmap

    # A name runs once (AWS's rule): a case run again (the causes test reruns them) needs a new one.
    name = f"conf-{abs(hash(case['id']))}-{uuid.uuid4().hex[:8]}"
    execution = dmap.run(case["definition"], input=case.get("input"), name=name)
    expected = case["expected"]
    got = {"status": execution.status, "output": execution.output, "error": execution.error, "cause": execution.cause}
    if expected["status"] != execution.status:
        return False, False, f"status {execution.status} != {expected['status']}: {got}"
    if expected["status"] == "SUCCEEDED":
        ok = same(execution.output, expected.get("output"))
        return ok, True, "" if ok else f"output {json.dumps(execution.output)} != {json.dumps(expected.get('output'))}"
    ok = (execution.error or None) == (expected.get("error") or None)
    cause_ok = (execution.cause or "") == (expected.get("cause") or "")
    return ok, cause_ok, "" if ok else f"error {execution.error!r} != {expected.get('error')!r} ({execution.cause})"


def main() -> int:
    """Print the pass counts and the failing cases."""
    cases = load_cases()
    if not cases:
        print(f"conformance corpus not found at {CORPUS}")
        return 0
    counts: Counter[str] = Counter()
    for case in cases:
        try:
            ok, cause_ok, detail = run_case(case)
        except Exception as exc:  # report, do not stop the tally
            ok, cause_ok, detail = False, False, f"raised {type(exc).__name__}: {exc}"
        counts["passed" if ok else "failed"] += 1
        if case["expected"]["status"] != "SUCCEEDED":
            counts["cause_match" if cause_ok else "cause_mismatch"] += 1
        if not ok:
            print(f"FAIL {case['id']}: {detail[:300]}")
    print(dict(counts), "of", len(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
