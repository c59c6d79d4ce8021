"""Tracing overhead: ``python -m bench.telemetry`` — the hooks when tracing is off, and a traced local run.

* **off**: what :mod:`dmap.telemetry` adds to the hot path when no ``OTEL_*`` variable asks for
  traces — one ``tracer()`` call per child and per Task handler call, one ``carrier()`` per
  dispatch batch — timed with ``timeit`` in nanoseconds per call;
* **on vs off**: the local backend's 10,000-item one-Task map (:mod:`bench.local`) untraced and
  traced into an SDK provider whose batch processor hands the spans to an exporter that drops them
  (the SDK's own cost, not a network's), runs alternated so a shared machine's noise hits both.

Every number is the best of ``--repeat`` runs, with the range. It prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Sequence
from typing import Any

import dmap
from dmap import telemetry

from . import local


def emit(line: str = "") -> None:
    """One line of the report on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hook_costs(number: int = 1_000_000) -> dict[str, float]:
    """Nanoseconds per call of the hooks on the hot path, tracing off."""
    telemetry.configure(None)
    try:
        return {
            "tracer() per child / handler call": min(timeit.repeat(telemetry.tracer, number=number, repeat=5))
            / number
            * 1e9,
            "carrier() per dispatch batch": min(timeit.repeat(telemetry.carrier, number=number, repeat=5))
            / number
            * 1e9,
        }
    finally:
        telemetry.reset()


class _Dropping:
    """A span exporter that accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def traced_provider() -> Any:
    """An SDK provider with a batch processor (default OTEL_BSP_* settings) and a dropping exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropping()))  # type: ignore[arg-type]
    return provider


def on_off(items: int, repeat: int, max_concurrency: int) -> tuple[list[float], list[float]]:
    """Items/s of the one-Task local map, untraced and traced, alternating."""
    off: list[float] = []
    on: list[float] = []
    provider = traced_provider()
    try:
        for _ in range(repeat):
            telemetry.configure(None)
            off.append(local.rate_local("Task", max_concurrency, items))
            telemetry.configure(provider)
            on.append(local.rate_local("Task", max_concurrency, items))
    finally:
        telemetry.reset()
        provider.shutdown()
    return off, on


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--max-concurrency", type=int, default=0)
    args = parser.parse_args(argv)
    dmap.task(local.HANDLER)(local.noop)
    emit(f"dmap {dmap.__version__} tracing overhead")
    for what, ns in hook_costs().items():
        emit(f"(off) {what}: {ns:.0f} ns")
    off, on = on_off(args.items, args.repeat, args.max_concurrency)
    best_off, best_on = max(off), max(on)
    emit(
        f"(local, {args.items:,} one-Task children, MaxConcurrency {args.max_concurrency}, best of {args.repeat}) "
        f"untraced {best_off:,.0f}/s ({min(off):,.0f}-{best_off:,.0f}) | traced {best_on:,.0f}/s "
        f"({min(on):,.0f}-{best_on:,.0f}) = {best_on / best_off:.2f} x  (2 spans per child: child, handler)"
    )


if __name__ == "__main__":
    main()
