"""One trace across processes: an execution, its Map Run and its children on two real celery workers.

The coordinator (this process) records its spans with an in-memory exporter; the two ``dmap
worker`` processes are configured only by the standard ``OTEL_*`` variables and export over
OTLP/HTTP to a tiny collector this test runs (protobuf decoded with opentelemetry-proto). The
trace context reaches the workers in the child messages.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import dmap
from dmap import metrics_aws

from . import flows
from .conftest import Background, Cluster

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.proto")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

ITEMS = 12
FAILING = frozenset({3, 7})


@dataclass(frozen=True)
class Received:
    """One span as an OTLP collector received it (ids as hex, attributes as Python values)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any]
    status_code: int
    events: dict[str, dict[str, Any]]
    service: str


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


class Collector:
    """An OTLP/HTTP trace receiver on loopback (``POST /v1/traces``, protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector._receive(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="otlp-collector", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def _receive(self, request: Any) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    events = {event.name: _attributes(event.attributes) for event in span.events}
                    found.append(
                        Received(
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.name,
                            _attributes(span.attributes),
                            span.status.code,
                            events,
                            service,
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def named(self, prefix: str) -> list[Received]:
        """The spans received so far whose name starts with ``prefix``."""
        with self._lock:
            return [span for span in self.spans if span.name.startswith(prefix)]

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A running OTLP/HTTP collector."""
    made = Collector()
    try:
        yield made
    finally:
        made.close()


def test_one_trace_ties_an_execution_its_map_run_and_children_on_two_workers(
    cluster: Cluster, collector: Collector, memory_spans: InMemorySpanExporter
) -> None:
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "dmap-test-worker",
    }
    cluster.start_workers(2, concurrency=1, env=otel)
    backend = cluster.celery()
    # Item 0 holds its worker until every other item has run: the other worker must run those.
    data = flows.work_input(cluster.ns, ITEMS, failing=FAILING, hold={0})
    run = Background(lambda: dmap.run(flows.work_map(tolerated_count=len(FAILING)), input=data, backend=backend))
    cluster.wait_for(lambda: len(cluster.calls()) == ITEMS, "every item to have run once")
    cluster.conn.set(f"itest:{cluster.ns}:release", "1")
    execution = run.result()
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    cluster.wait_for(lambda: len(collector.named("child ")) >= ITEMS, "the workers' child spans at the collector")
    cluster.wait_for(lambda: len(collector.named("handler ")) >= ITEMS, "the workers' handler spans")

    local = {span.name.split(" ")[0]: span for span in memory_spans.get_finished_spans()}
    root, map_run = local["execution"], local["map_run"]
    trace_id = format(root.context.trace_id, "032x")
    assert root.parent is None
    assert map_run.parent is not None and map_run.parent.span_id == root.context.span_id
    assert map_run.context.trace_id == root.context.trace_id
    assert root.attributes is not None and root.attributes["dmap.execution.arn"] == execution.execution_arn

    children = collector.named("child ")
    assert len(children) == ITEMS  # one span per child, each from a worker process
    map_run_id = format(map_run.context.span_id, "016x")
    assert {(span.trace_id, span.parent_id) for span in children} == {(trace_id, map_run_id)}
    assert {span.service for span in children} == {"dmap-test-worker"}
    workers = {span.attributes["dmap.worker"] for span in children}
    assert len(workers) == 2, workers  # two worker processes, one trace
    assert sorted(span.attributes["dmap.item.index"] for span in children) == list(range(ITEMS))
    failed = {span.attributes["dmap.item.index"] for span in children if span.status_code == 2}  # STATUS_CODE_ERROR
    assert failed == FAILING

    handlers = collector.named("handler ")
    by_parent = {span.span_id: span for span in children}
    for span in handlers:
        assert span.trace_id == trace_id
        child = by_parent[span.parent_id]  # every handler span sits inside its child's span
        assert span.attributes["dmap.item.index"] == child.attributes["dmap.item.index"]
    errors = {span.attributes["dmap.item.index"]: span for span in handlers if span.status_code == 2}
    assert set(errors) == FAILING
    for index, span in errors.items():
        assert span.events["exception"]["exception.type"] == "ValueError"
        assert f"[{index}]" in span.events["exception"]["exception.message"]

    # The same run, counted for the AWS-named metrics in the cluster's Redis (what every exporter reads).
    counted = metrics_aws.RedisExecutionCounters(backend.redis.client, backend.redis.prefix).read()
    assert counted == {("ExecutionsStarted", "dmap"): 1, ("ExecutionsSucceeded", "dmap"): 1}
