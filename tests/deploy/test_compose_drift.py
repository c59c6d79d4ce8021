"""docker-compose.yml agrees with the code: settings names, the CLI, ports, buckets, leases, health."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from dmap import metrics
from examples.demo import seed

from .conftest import ROOT
from .drift import (
    assert_importable,
    check_environment,
    check_metrics_args,
    check_run_args,
    check_worker_args,
    parse_cli,
    ping_command_targets_own_node,
    redis_host_port,
)

DMAP_IMAGE = "dmap:local"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml with anchors and merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def dmap_services(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if s.get("image") == DMAP_IMAGE}


def seconds(duration: str) -> float:
    """A Compose duration (``2m``, ``90s``, ``1m30s``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_the_cluster_has_the_services_of_the_design(services: dict[str, Any]) -> None:
    assert {"redis", "minio", "minio-init", "worker", "flower", "demo", "metrics", "serve"} <= set(services)
    assert set(dmap_services(services)) == {"worker", "demo", "metrics", "serve"}
    for service in dmap_services(services).values():
        assert service["build"]["context"] == "."


def test_every_environment_name_is_a_dmap_setting_or_a_boto3_variable(services: dict[str, Any]) -> None:
    for name, service in dmap_services(services).items():
        settings = check_environment(service["environment"], f"compose service {name}")
        assert settings.backend == "celery"
        host, port, _ = redis_host_port(settings.redis_url)
        assert host in services and port == 6379
        assert settings.broker_url is None  # the broker is the same Redis


def test_the_worker_command_is_a_valid_dmap_worker_command(services: dict[str, Any]) -> None:
    worker = services["worker"]
    params = check_worker_args(worker["command"], check_environment(worker["environment"], "worker"))
    assert params["imports"] == ["examples.demo.handlers"]
    assert params["concurrency"] >= 1


def test_the_demo_runs_the_demo_definition_over_the_seeded_manifest(services: dict[str, Any]) -> None:
    demo = services["demo"]
    params = check_run_args(demo["command"], check_environment(demo["environment"], "demo"))
    assert params["manifest"] == seed.MANIFEST_URI
    assert params["imports"] == ["examples.demo.handlers"]
    assert params["output"] == "json"
    definition = json.loads((ROOT / params["definition"]).read_text("utf-8"))
    state = definition["States"]["PriceOrders"]
    assert state["ItemReader"]["Parameters"] == {"Bucket": seed.INPUT_BUCKET, "Key": seed.ORDERS_KEY}
    assert state["ResultWriter"]["Parameters"]["Bucket"] == seed.RESULTS_BUCKET


def test_the_seed_job_creates_the_buckets_and_the_object_the_demo_reads(services: dict[str, Any]) -> None:
    init = services["minio-init"]
    script = " ".join(init["command"])
    assert f"local/{seed.INPUT_BUCKET}" in script and f"local/{seed.RESULTS_BUCKET}" in script
    assert f"local/{seed.INPUT_BUCKET}/{seed.ORDERS_KEY}" in script
    source = next(v.split(":")[0] for v in init["volumes"] if v.endswith(":/seed:ro"))
    assert (ROOT / source / seed.ORDERS_FILE.name).resolve() == seed.ORDERS_FILE.resolve()
    endpoint = services["worker"]["environment"]["AWS_ENDPOINT_URL_S3"]
    assert endpoint == "http://minio:9000" and "http://minio:9000" in script


def test_the_demo_starts_from_cold_in_dependency_order(services: dict[str, Any]) -> None:
    depends = services["demo"]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["minio-init"]["condition"] == "service_completed_successfully"
    assert depends["worker"]["condition"] == "service_healthy"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency, how in service.get("depends_on", {}).items():
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health check"


def test_redis_keeps_an_append_only_file_and_never_evicts(services: dict[str, Any]) -> None:
    command = " ".join(services["redis"]["command"])
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in command


def test_the_worker_stops_gracefully_within_the_lease_story(services: dict[str, Any]) -> None:
    worker = services["worker"]
    settings = check_environment(worker["environment"], "worker")
    assert worker["stop_signal"] == "SIGTERM"
    assert seconds(worker["stop_grace_period"]) >= settings.lease_seconds + 60
    assert ping_command_targets_own_node(worker["healthcheck"]["test"][1])


def test_flower_is_told_to_enable_task_events_on_the_same_broker(services: dict[str, Any]) -> None:
    command = services["flower"]["command"]
    assert "--enable_events=True" in command
    broker = next(c.split("=", 1)[1] for c in command if c.startswith("--broker="))
    assert broker == check_environment(services["worker"]["environment"], "worker").effective_broker_url


def test_the_metrics_exporter_serves_the_default_port(services: dict[str, Any]) -> None:
    exporter = services["metrics"]
    assert exporter["entrypoint"] == ["python", "-m", "dmap.metrics"]
    port = check_metrics_args(exporter["command"])
    assert port == metrics.DEFAULT_PORT
    assert f"127.0.0.1:{port}:{port}" in exporter["ports"]


def test_the_api_server_serves_its_port_and_is_checked_on_its_readiness_route(services: dict[str, Any]) -> None:
    serve = services["serve"]
    command, params = parse_cli(serve["command"])
    assert command == "serve" and params["host"] == "0.0.0.0"
    assert f"127.0.0.1:{params['port']}:{params['port']}" in serve["ports"]
    for module in params["imports"]:
        assert_importable(module)
    assert f"http://127.0.0.1:{params['port']}/health/ready" in " ".join(serve["healthcheck"]["test"])
    assert check_environment(serve["environment"], "serve").backend == "celery"
