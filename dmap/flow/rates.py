"""Rate limits as users write them (``50/s``, ``3000/m``) and as the token bucket keeps them.

Owns parsing and the :class:`Limit` record only; where limits live and how tokens are taken is
:mod:`dmap.flow.limits`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigurationError

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Limit:
    """A shared rate limit on one key.

    Attributes:
        key: What is limited: a Task resource (Lambda ARN or function name), an ``http:invoke`` host
            (``api.example.com``) or a label a Map Run names with ``flow={"limit": ...}``.
        rate: The rate as given (``50/s``).
        per_second: Calls per second it allows on average.
        burst: Calls that may go at once after a quiet spell (the bucket's size).
    """

    key: str
    rate: str
    per_second: float
    burst: int

    @property
    def interval_ms(self) -> float:
        """Milliseconds between two tokens."""
        return 1000.0 / self.per_second

    def as_dict(self) -> dict[str, object]:
        """The limit as JSON-ready fields (``dmap limits list --output json``)."""
        return {"key": self.key, "rate": self.rate, "perSecond": self.per_second, "burst": self.burst}


def parse_rate(text: str) -> float:
    """Calls per second of a rate written ``N/s``, ``N/m`` or ``N/h`` (``50/s``, ``3000/m``, ``0.5/s``).

    Raises:
        ConfigurationError: The text is not a positive rate.
    """
    match = _RATE.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ConfigurationError(f"a rate looks like 50/s, 3000/m or 100/h, not {text!r}")
    per_second = float(match.group(1)) / _UNITS[match.group(2)]
    if not math.isfinite(per_second) or per_second <= 0:
        raise ConfigurationError(f"a rate must be above 0, not {text!r}")
    return per_second


def make_limit(key: str, rate: str, burst: int | None = None) -> Limit:
    """A :class:`Limit`; ``burst`` defaults to 1 (calls spread evenly, never two at once beyond the rate).

    Raises:
        ConfigurationError: An empty key, a bad rate or a burst below 1.
    """
    if not key or not key.strip():
        raise ConfigurationError("a rate limit needs a key: a Lambda ARN or function name, an http host or a label")
    if burst is not None and burst < 1:
        raise ConfigurationError(f"burst must be at least 1, got {burst}")
    return Limit(key.strip(), rate.strip(), parse_rate(rate), burst or 1)
