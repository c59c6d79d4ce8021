"""dmap.telemetry in one process: what turns tracing on, that off loads no tracer, spans on the local backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap import telemetry
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from tests.definitions import distributed_map

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402


@dmap.task("TelemetryWork")
def work(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Fail the items marked ``fail``."""
    if event.get("fail"):
        raise KeyError(f"item {event['i']} is marked to fail")
    return event


DEFINITION = distributed_map(
    {"Work": {"Type": "Task", "Resource": "TelemetryWork", "End": True}},
    name="Fan",
    ItemsPath="$.items",
    ToleratedFailureCount=5,
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_SERVICE_NAME": "only-a-name"}, False),
    ],
)
def test_the_standard_otel_variables_decide_whether_traces_are_wanted(environ: dict[str, str], expected: bool) -> None:
    assert telemetry.wanted(environ) is expected


def test_without_otel_variables_a_run_loads_no_tracer() -> None:
    script = textwrap.dedent(
        """
        import os, sys
        for name in [n for n in os.environ if n.startswith("OTEL_")]:
            del os.environ[name]
        import dmap
        from dmap import telemetry

        @dmap.task("Quiet")
        def quiet(event, context):
            return event

        definition = {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "End": True,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "Quiet", "End": True}}}}}}
        execution = dmap.run(definition, input={"items": [1, 2, 3]})
        assert execution.status == "SUCCEEDED", execution.cause
        assert telemetry.tracer() is None
        # redis-py imports the OpenTelemetry API for its own metrics when it is installed; dmap's
        # tracing parts (the SDK's tracer, the propagators) stay unloaded.
        loaded = [n for n in sys.modules if n.startswith(("opentelemetry.sdk.trace", "opentelemetry.propagate"))]
        assert not loaded, loaded
        print("untraced")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "untraced"


def test_otel_sdk_disabled_wins_over_an_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry.reset()
    try:
        assert telemetry.tracer() is None
        assert telemetry.carrier() is None
    finally:
        telemetry.reset()


def test_local_children_on_pool_threads_join_their_map_runs_trace(memory_spans: InMemorySpanExporter) -> None:
    backend = LocalBackend(Settings())
    try:
        items = [{"i": i, "fail": i == 2} for i in range(4)]
        execution = dmap.run(DEFINITION, input={"items": items}, backend=backend)
    finally:
        backend.close()
    assert execution.status == "SUCCEEDED"
    finished = memory_spans.get_finished_spans()
    kinds: dict[str, list[Any]] = {}
    for span in finished:
        kinds.setdefault(span.name.split(" ")[0], []).append(span)
    (root,), (map_run,) = kinds["execution"], kinds["map_run"]
    assert {span.context.trace_id for span in finished} == {root.context.trace_id}
    assert map_run.parent.span_id == root.context.span_id
    assert {child.parent.span_id for child in kinds["child"]} == {map_run.context.span_id}
    assert map_run.attributes["dmap.map_run.items.failed"] == 1
    (failed_child,) = [child for child in kinds["child"] if child.status.status_code == StatusCode.ERROR]
    assert failed_child.attributes["dmap.item.index"] == 2
    assert failed_child.attributes["error.type"] == "KeyError"
    (failed_handler,) = [span for span in kinds["handler"] if span.status.status_code == StatusCode.ERROR]
    assert failed_handler.parent.span_id == failed_child.context.span_id
    (event,) = failed_handler.events
    assert (event.name, event.attributes["exception.type"]) == ("exception", "KeyError")


def test_console_spans_leave_the_clis_json_output_intact(tmp_path: Path) -> None:
    """``OTEL_TRACES_EXPORTER=console`` printed spans to stdout, between ``dmap run --output json``'s JSON."""
    definition = tmp_path / "fan.json"
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "End": True}},
    }
    fan = {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": processor, "End": True}
    definition.write_text(json.dumps({"StartAt": "Fan", "States": {"Fan": fan}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMAP_", "OTEL_"))}
    env.update(OTEL_TRACES_EXPORTER="console", DMAP_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "dmap", "run", str(definition), "--input", '{"items": [1, 2]}', "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "SUCCEEDED"  # stdout is the JSON document alone
    assert '"name": "execution fan"' in done.stderr  # the spans went to stderr
