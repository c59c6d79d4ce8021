"""ARNs and timestamps as the API shows them, and as the journal keeps them.

The journal, the CLI and the Python API file every execution under one internal ARN prefix
(``arn:aws:states:local:000000000000:``, DESIGN §7), whatever region a caller used. The API speaks
the caller's language: its responses carry the request's region (from the SigV4 scope) and
``DMAP_ACCOUNT_ID``, and its requests may name any region and account — both are normalised back
to the internal prefix on the way in, so the same execution answers to ``us-east-1`` and
``eu-west-1`` alike (one journal; dmap is one region).

Timestamps are kept as ISO-8601 strings; AWS's JSON protocol sends epoch seconds as numbers.
"""

from __future__ import annotations

from datetime import datetime

from ..records import JOURNAL_PREFIX, parse_arn

INTERNAL_PREFIX = JOURNAL_PREFIX
"""What every ARN of the journal starts with."""


def external_prefix(region: str, account: str) -> str:
    """The ARN prefix of a response to a caller in ``region`` (``arn:aws:states:<region>:<account>:``)."""
    return f"arn:aws:states:{region}:{account}:"


def parse(arn: str) -> tuple[str, str] | None:
    """``(resource type, rest)`` of a Step Functions ARN in any region and account, or None if it is not one."""
    return parse_arn(arn)


def internal(resource_type: str, rest: str) -> str:
    """The journal's ARN of a resource."""
    return f"{INTERNAL_PREFIX}{resource_type}:{rest}"


def epoch(stamp: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (``2026-12-06T12:00:00.123Z``), or None if absent or unreadable."""
    if not stamp:
        return None
    try:
        return round(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp(), 3)
    except ValueError:
        return None
