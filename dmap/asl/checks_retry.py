"""Retry and Catch checks: which states may have them, ErrorEquals and ``States.ALL`` placement, retrier values.

Owns the rules of one state's ``Retry``/``Catch`` arrays. It does not own catcher transitions
(``checks_graph``), catcher ResultPath syntax (``checks_paths``) or catcher Assign names
(``checks_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .checks_common import (
    FALLIBLE,
    INVALID_CATCH,
    INVALID_RETRY,
    SCHEMA,
    Loc,
    Report,
    StateCtx,
    as_mapping,
    is_int,
    is_number,
)

MAX_DELAY_SECONDS = 31_622_400


def check_retry_catch(report: Report, ctx: StateCtx) -> None:
    """Check Retry and Catch: where they may appear, ErrorEquals and States.ALL placement, retrier values.

    Args:
        report: Where diagnostics go.
        ctx: The state.
    """
    for name, code in (("Retry", INVALID_RETRY), ("Catch", INVALID_CATCH)):
        if name not in ctx.body:
            continue
        if ctx.type not in FALLIBLE:
            report.error(
                SCHEMA,
                f"'{name}' is only allowed on Task, Parallel and Map states, not on a {ctx.type} state",
                (*ctx.loc, name),
            )
            continue
        entries = ctx.body[name]
        if not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            entry_body = as_mapping(entry)
            if entry_body is None:
                continue
            entry_loc = (*ctx.loc, name, i)
            _check_error_equals(report, entry_body, entry_loc, code, last=i == len(entries) - 1, kind=name)
            if name == "Retry":
                _check_retrier(report, entry_body, entry_loc)


def _check_error_equals(
    report: Report, entry: Mapping[str, Any], loc: Loc, code: str, *, last: bool, kind: str
) -> None:
    errors = entry.get("ErrorEquals")
    if not isinstance(errors, list):
        return
    at = (*loc, "ErrorEquals")
    what = "retrier" if kind == "Retry" else "catcher"
    if not errors:
        report.error(code, f'ErrorEquals is empty: list the error names this {what} handles (or "States.ALL")', at)
    elif "States.ALL" in errors and len(errors) > 1:
        report.error(code, '"States.ALL" must appear alone in its ErrorEquals: remove the other names', at)
    elif "States.ALL" in errors and not last:
        report.error(
            code,
            f'the {what} with "States.ALL" must be the last one in {kind}: the ones after it can never match',
            at,
        )


def _check_retrier(report: Report, retrier: Mapping[str, Any], loc: Loc) -> None:
    rate = retrier.get("BackoffRate")
    if is_number(rate) and rate < 1:
        report.error(
            INVALID_RETRY, f"BackoffRate must be >= 1.0 (it multiplies the interval), got {rate}", (*loc, "BackoffRate")
        )
    delay = retrier.get("MaxDelaySeconds")
    if is_int(delay) and not 0 < delay <= MAX_DELAY_SECONDS:
        report.error(
            INVALID_RETRY,
            f"MaxDelaySeconds must be between 1 and {MAX_DELAY_SECONDS}, got {delay}",
            (*loc, "MaxDelaySeconds"),
        )
    jitter = retrier.get("JitterStrategy")
    if isinstance(jitter, str) and jitter not in ("FULL", "NONE"):
        report.error(
            INVALID_RETRY, f'JitterStrategy must be "FULL" or "NONE", got {jitter!r}', (*loc, "JitterStrategy")
        )
    interval = retrier.get("IntervalSeconds")
    if is_int(interval) and interval < 1:
        report.error(INVALID_RETRY, f"IntervalSeconds must be >= 1, got {interval}", (*loc, "IntervalSeconds"))
    attempts = retrier.get("MaxAttempts")
    if is_int(attempts) and attempts < 0:
        report.error(
            INVALID_RETRY, f"MaxAttempts must be >= 0 (0 = never retry), got {attempts}", (*loc, "MaxAttempts")
        )
