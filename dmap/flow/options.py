"""What a Map Run asks of flow control: ``dmap.run(..., flow=...)`` and ``dmap run --adaptive ...``.

Outside the ASL on purpose (DESIGN §13): a definition stays portable to AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError

_FIELDS = {"adaptive", "min_concurrency", "limit", "throttle_errors"}


@dataclass(frozen=True, slots=True)
class FlowOptions:
    """Flow control of the Map Runs of one execution.

    Attributes:
        adaptive: AIMD on throttling errors: cut the effective concurrency x0.7 on a throttle, grow
            it +1 per window of successes, up to MaxConcurrency.
        min_concurrency: The floor the effective concurrency never goes below.
        limit: A rate-limit key every Task call of the run's children takes a token of (a label set
            with ``dmap limits set LABEL 50/s``), besides the keys of the called resources.
        throttle_errors: More error names (fnmatch patterns) that count as throttling.
    """

    adaptive: bool = False
    min_concurrency: int = 1
    limit: str | None = None
    throttle_errors: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.min_concurrency < 1:
            raise ConfigurationError(f"min_concurrency must be at least 1, got {self.min_concurrency}")

    @classmethod
    def of(cls, value: FlowOptions | Mapping[str, Any] | None) -> FlowOptions | None:
        """Options from a :class:`FlowOptions`, a dict with the same names, or None.

        Raises:
            ConfigurationError: An unknown name or a bad value.
        """
        if value is None or isinstance(value, FlowOptions):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"flow must be a dict or dmap.FlowOptions, not {type(value).__name__}")
        unknown = set(value) - _FIELDS
        if unknown:
            raise ConfigurationError(f"unknown flow options {sorted(unknown)}; known: {sorted(_FIELDS)}")
        data = dict(value)
        if "throttle_errors" in data:
            names = data["throttle_errors"]
            data["throttle_errors"] = (names,) if isinstance(names, str) else tuple(str(n) for n in names)
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (kept with the execution, so a resumed coordinator keeps them)."""
        return {
            "adaptive": self.adaptive,
            "min_concurrency": self.min_concurrency,
            "limit": self.limit,
            "throttle_errors": list(self.throttle_errors),
        }
