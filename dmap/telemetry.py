"""OpenTelemetry traces of executions, Map Runs, children and handlers (optional extra: ``pip install 'dmap[otel]'``).

One trace per execution: the execution's span, a span per Map Run under it, and under each Map Run
a span per child execution, wherever the child ran; inside a child, a span per Task handler call,
carrying the item index and, when it fails, the error (exception recorded, status ERROR). A child
finds its Map Run's span through the W3C trace context the coordinator puts in the child message
(plain JSON strings: ``{"traceparent": "00-…"}``), so spans from every worker process join one trace.

Tracing is opt-in and configured by the standard ``OTEL_*`` variables, read once per process:
``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none`` or any exporter entry point) or an OTLP
endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns it on;
``OTEL_SDK_DISABLED=true`` keeps it off whatever else is set. A process whose application has
already installed an SDK tracer provider (``opentelemetry-instrument``, its own setup) is traced
into that provider. Otherwise, and whenever the packages are missing, every hook here is a cheap
no-op: nothing of OpenTelemetry is imported and the hot paths pay one call and one comparison.

This module owns span names, attributes and the provider it may build; it never changes run state.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .child import ChildPlan
    from .records import Execution, MapRun
    from .store import ChildStatus, Started

logger = logging.getLogger(__name__)

TRACER_NAME = "dmap"
"""The instrumentation scope of every dmap span."""
CAUSE_LIMIT = 4096
"""Characters of an error cause kept on a span (AWS allows 32,768; traces backends truncate far less)."""
_FAILED = frozenset({"FAILED", "TIMED_OUT"})
_UNRESOLVED: Any = object()

_tracer: Any = _UNRESOLVED
_provider: Any = None  # the provider this module built (flushed at shutdown), never one it was given


def tracer() -> Any:
    """The dmap tracer, or None when tracing is off. Resolved from the environment on first use."""
    found = _tracer
    if found is _UNRESOLVED:
        found = _resolve()
    return found


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return tracer() is not None


def configure(provider: Any) -> None:
    """Trace into ``provider`` (an SDK ``TracerProvider``) from now on; None turns tracing off.

    For applications and tests that set up OpenTelemetry themselves. It replaces whatever the
    environment said; :func:`reset` goes back to reading it.
    """
    global _tracer
    _tracer = None if provider is None else provider.get_tracer(TRACER_NAME, _version())


def reset() -> None:
    """Forget the resolved configuration (the next hook reads the ``OTEL_*`` variables again)."""
    global _tracer
    _tracer = _UNRESOLVED


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered by the provider built here (a worker process about to exit)."""
    if _provider is not None:
        try:
            _provider.force_flush(timeout_millis)
        except Exception:  # exporting is best effort: a collector away must not fail a shutdown
            logger.warning("could not flush the trace exporter", exc_info=True)


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (before looking at what is installed)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _resolve() -> Any:
    """Decide once per process whether to trace, and into which provider."""
    global _tracer, _provider
    found: Any = None
    try:
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            found = None
        elif _global_sdk_provider() is not None:
            found = _global_sdk_provider().get_tracer(TRACER_NAME, _version())
        elif wanted():
            _provider = _provider_from_env()
            found = None if _provider is None else _provider.get_tracer(TRACER_NAME, _version())
    except Exception:  # a broken exporter setup must never stop a run: it runs untraced
        logger.error("OpenTelemetry tracing is configured but could not start; tracing is off", exc_info=True)
        found = None
    _tracer = found
    return found


def _global_sdk_provider() -> Any:
    """The SDK tracer provider an application has already installed, if any (never imports OpenTelemetry)."""
    if "opentelemetry.trace" not in sys.modules:
        return None  # nobody in this process has used OpenTelemetry: no provider can be set
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


def _provider_from_env() -> Any:
    """An SDK provider whose resource, sampler, batching and exporters all come from ``OTEL_*``; made global."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning("OTEL_* variables ask for traces but opentelemetry-sdk is missing: pip install 'dmap[otel]'")
        return None
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {SERVICE_NAME: "dmap"})  # the env wins over attributes given here
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER(_ARG) are read by the SDK
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    for name in names:
        if name != "none":
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))  # OTEL_BSP_* read by the SDK
    trace.set_tracer_provider(provider)  # the handlers' own spans then nest under dmap's
    logger.info("OpenTelemetry traces on: exporter(s) %s", ", ".join(names))
    return provider


def _exporter(name: str) -> Any:
    """A span exporter by its ``OTEL_TRACES_EXPORTER`` name; OTLP endpoints and headers come from the SDK's env."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr: stdout is the CLI's data (`dmap run --output json | jq`), which spans must not break.
        return ConsoleSpanExporter(out=sys.stderr)
    if name == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol.strip() == "grpc":  # not in dmap[otel]: gRPC pulls grpcio, a large native package
            from importlib import import_module

            try:
                grpc = import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
            except ImportError:
                raise ValueError(
                    "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc installed"
                ) from None
            return grpc.OTLPSpanExporter()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from importlib.metadata import entry_points

    for point in entry_points(group="opentelemetry_traces_exporter", name=name):
        return point.load()()
    raise ValueError(f"no OpenTelemetry span exporter named {name!r} is installed (OTEL_TRACES_EXPORTER)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dmap")
    except PackageNotFoundError:
        return "0"


# -- context carried to the workers ----------------------------------------------------------------


def carrier() -> dict[str, str] | None:
    """The current span's W3C trace context as JSON-ready strings (``traceparent``…), or None when off/no span."""
    if tracer() is None:
        return None
    from opentelemetry import propagate

    fields: dict[str, str] = {}
    propagate.inject(fields)  # OTEL_PROPAGATORS: tracecontext (+ baggage) by default
    return fields or None


def _parent(fields: Mapping[str, str] | None) -> Any:
    """The context a child's span starts in: the carried one, or this thread's (a child run inline)."""
    if not fields:
        return None
    from opentelemetry import propagate

    return propagate.extract(dict(fields))


# -- spans -------------------------------------------------------------------------------------------


@contextmanager
def execution_span(execution: Execution) -> Iterator[None]:
    """The span of one execution run in this process (a resume or a redrive is a span of its own)."""
    found = tracer()
    if found is None:
        yield
        return
    attributes = {
        "dmap.execution.arn": execution.execution_arn,
        "dmap.execution.name": execution.name,
        "dmap.state_machine.name": execution.state_machine_name,
        "dmap.execution.redrive_count": execution.redrive_count,
    }
    with found.start_as_current_span(f"execution {execution.state_machine_name}", attributes=attributes) as span:
        yield
        _outcome(span, str(execution.status), execution.error, execution.cause, "dmap.execution.status")


@contextmanager
def map_run_span(map_run: MapRun, state_name: str) -> Iterator[None]:
    """The span of one Map Run (current while it dispatches, so :func:`carrier` hands it to the children)."""
    found = tracer()
    if found is None:
        yield
        return
    attributes = {
        "dmap.map_run.arn": map_run.map_run_arn,
        "dmap.map_run.label": map_run.label,
        "dmap.execution.arn": map_run.execution_arn,
        "dmap.state.name": state_name,
        "dmap.map_run.redrive_count": map_run.redrive_count,
    }
    with found.start_as_current_span(f"map_run {state_name}", attributes=attributes) as span:
        try:
            yield
        finally:
            span.set_attribute("dmap.map_run.max_concurrency", map_run.max_concurrency)
            for status, count in (map_run.item_counts or {}).items():
                span.set_attribute(f"dmap.map_run.items.{status}", count)
            _outcome(span, str(map_run.status), map_run.error, map_run.cause, "dmap.map_run.status")


def child_span(
    plan: ChildPlan,
    child: int,
    started: Started,
    trace: Mapping[str, str] | None,
    worker: str,
    run: Callable[[], tuple[ChildStatus, dict[str, Any]]],
) -> tuple[ChildStatus, dict[str, Any]]:
    """Run one started child (``run``) inside its span, parented to its Map Run's span through ``trace``."""
    found = tracer()
    if found is None:
        return run()
    attributes = {
        "dmap.map_run.arn": plan.map_run_arn,
        "dmap.child.index": child,
        "dmap.item.index": started.first,
        "dmap.item.count": started.items,
        "dmap.child.attempt": started.attempt,
        "dmap.worker": worker,
    }
    name = f"child {plan.state_machine_name}/{plan.label}"
    with found.start_as_current_span(name, context=_parent(trace), attributes=attributes) as span:
        status, fields = run()
        _outcome(span, status.name, fields.get("Error"), fields.get("Cause"), "dmap.child.status")
        return status, fields


@contextmanager
def handler_span(function: str, state_name: str, item_index: int | None) -> Iterator[None]:
    """The span of one Task handler call; a failure is recorded as its exception with status ERROR.

    Handlers fail as :class:`~dmap.errors.StatesError` (the AWS error name the exception became), so
    the recorded ``exception.type`` is that name (``ValueError``, ``States.Timeout``...), not the wrapper's.
    """
    found = tracer()
    if found is None:
        yield
        return
    from opentelemetry.trace import Status, StatusCode

    from .errors import StatesError

    attributes: dict[str, Any] = {"dmap.handler": function, "dmap.state.name": state_name}
    if item_index is not None:
        attributes["dmap.item.index"] = item_index
    with found.start_as_current_span(
        f"handler {function}", attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield
        except StatesError as exc:
            cause = _clip(exc.cause)
            span.record_exception(exc, {"exception.type": exc.name, "exception.message": cause})
            span.set_attribute("error.type", exc.name)
            span.set_status(Status(StatusCode.ERROR, f"{exc.name}: {cause}"))
            raise
        except BaseException as exc:
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {_clip(str(exc))}"))
            raise


def _outcome(span: Any, status: str, error: str | None, cause: str | None, key: str) -> None:
    """Record a terminal status on ``span``: FAILED and TIMED_OUT are errors with their error and cause."""
    span.set_attribute(key, status)
    if status not in _FAILED:
        return
    from opentelemetry.trace import Status, StatusCode

    name, text = error or status, _clip(cause or "")
    span.set_attribute("error.type", name)
    span.add_event("exception", {"exception.type": name, "exception.message": text})
    span.set_status(Status(StatusCode.ERROR, f"{name}: {text}" if text else name))


def _clip(text: str) -> str:
    """A cause fit for a span: credentials in URLs redacted, at most :data:`CAUSE_LIMIT` characters."""
    from .config import redact

    return redact(text[: CAUSE_LIMIT * 2])[:CAUSE_LIMIT]
