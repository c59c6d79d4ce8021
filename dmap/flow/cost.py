"""What a Map Run's children would cost on AWS Step Functions (DESIGN §13): prices and the arithmetic.

Prices (us-east-1, checked against aws.amazon.com/step-functions/pricing and
../shared/reference/aws-distributed-map.md §7): Standard workflows $0.025 per 1,000 state transitions
($0.000025 each; retries count as transitions); Express workflows $1.00 per million requests plus
duration at $0.06 per GB-hour ($0.0000166667 per GB-second, AWS's first tier: the next 4,000
GB-hours cost $0.03 and the rest $0.01642, so large monthly volumes cost less than this says),
each execution's duration rounded up to 100 ms and its memory billed in 64-MB chunks (AWS's
estimate: 50 MB + the definition + the execution's data). The free tier (4,000 transitions a month)
is left out. Owns no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICE_PER_TRANSITION = 0.000025
PRICE_PER_EXPRESS_REQUEST = 1.00 / 1_000_000
PRICE_PER_GB_SECOND = 0.06 / 3600
EXPRESS_BASE_MB = 50.0
EXPRESS_CHUNK_MB = 64
EXPRESS_ROUND_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class StandardCost:
    """Standard children: ``children x transitions per child x $0.000025``."""

    children: int
    transitions_per_child: float
    transitions: float
    dollars: float


@dataclass(frozen=True, slots=True)
class ExpressCost:
    """Express children: requests plus GB-seconds, with the assumptions that priced them."""

    children: int
    memory_mb: int
    seconds_per_child: float
    billed_seconds_per_child: float
    gb_seconds: float
    request_dollars: float
    duration_dollars: float
    dollars: float


def standard_cost(children: int, transitions_per_child: float) -> StandardCost:
    """The Standard price of ``children`` child executions of ``transitions_per_child`` transitions each."""
    transitions = children * transitions_per_child
    return StandardCost(children, transitions_per_child, transitions, transitions * PRICE_PER_TRANSITION)


def express_memory_mb(definition_bytes: int, input_bytes: float) -> int:
    """AWS's memory estimate of one Express execution, rounded up to a 64-MB chunk."""
    used = EXPRESS_BASE_MB + (definition_bytes + input_bytes) / (1024 * 1024)
    return EXPRESS_CHUNK_MB * max(1, math.ceil(used / EXPRESS_CHUNK_MB))


def express_cost(children: int, memory_mb: int, seconds_per_child: float) -> ExpressCost:
    """The Express price of ``children`` executions, each ``seconds_per_child`` long in ``memory_mb``."""
    billed = max(1, math.ceil(round(seconds_per_child / EXPRESS_ROUND_SECONDS, 9))) * EXPRESS_ROUND_SECONDS
    gb_seconds = children * billed * memory_mb / 1024
    requests = children * PRICE_PER_EXPRESS_REQUEST
    duration = gb_seconds * PRICE_PER_GB_SECOND
    return ExpressCost(
        children, memory_mb, seconds_per_child, billed, gb_seconds, requests, duration, requests + duration
    )
