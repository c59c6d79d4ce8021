"""deploy/k8s agrees with the code: settings names, CLI commands, ports, the queue KEDA watches, leases."""

from __future__ import annotations

from typing import Any

import pytest

from dmap import metrics
from examples.demo import seed

from .conftest import K8S, find, load_documents
from .drift import (
    check_environment,
    check_metrics_args,
    check_run_args,
    check_worker_args,
    parse_cli,
    ping_command_targets_own_node,
    redis_host_port,
)

BASE = K8S / "base"
DEMO = K8S / "overlays" / "demo"
PRODUCTION = K8S / "overlays" / "production"
TASK_ALLOWANCE = 60
"""Seconds a worker's grace period must leave for its running children beyond one lease."""


def documents(*files: str, folder: Any = BASE) -> list[dict[str, Any]]:
    return [doc for name in files for doc in load_documents(folder / name)]


def settings_env(*patches: dict[str, Any]) -> dict[str, Any]:
    """The environment a dmap container gets: base ConfigMap + Secret, then overlay patches."""
    base = documents("settings.yaml", "credentials.yaml")
    env = {**find(base, "ConfigMap", "dmap-settings")["data"], **find(base, "Secret", "dmap-credentials")["stringData"]}
    for patch in patches:
        env.update(patch.get("data") or patch.get("stringData") or {})
    return env


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    spec = doc["spec"]["template"]["spec"] if "template" in doc["spec"] else doc["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def test_the_cli_parser_used_here_rejects_what_dmap_would_reject() -> None:
    # typer vendors click, so its UsageError is not click's: match the messages instead.
    with pytest.raises(Exception, match="No such option: --no-such-option"):
        parse_cli(["worker", "--no-such-option"])
    with pytest.raises(Exception, match="No such command"):
        parse_cli(["no-such-command"])


def test_every_setting_in_the_configmaps_and_secrets_is_a_real_one() -> None:
    check_environment(settings_env(), "base")
    demo = [*documents("settings.yaml", folder=DEMO), *documents("credentials.yaml", folder=DEMO)]
    check_environment(settings_env(*demo), "overlays/demo")
    production = documents("credentials.yaml", folder=PRODUCTION)
    check_environment(settings_env(*production), "overlays/production")


def test_the_worker_runs_dmap_worker_and_drains_within_its_grace_period() -> None:
    worker_doc = find(documents("worker.yaml"), "Deployment", "dmap-worker")
    settings = check_environment(settings_env(), "base")
    worker = container(worker_doc, "worker")
    assert [e["configMapRef"]["name"] for e in worker["envFrom"] if "configMapRef" in e] == ["dmap-settings"]
    assert [e["secretRef"]["name"] for e in worker["envFrom"] if "secretRef" in e] == ["dmap-credentials"]
    check_worker_args(worker["args"], settings)
    grace = worker_doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= settings.lease_seconds + TASK_ALLOWANCE
    assert "preStop" not in worker.get("lifecycle", {})  # SIGTERM is Celery's warm shutdown; nothing to drain
    assert ping_command_targets_own_node(worker["livenessProbe"]["exec"]["command"][2])
    assert worker["resources"]["requests"] and worker["resources"]["limits"]
    production = find(documents("worker.yaml", folder=PRODUCTION), "Deployment", "dmap-worker")
    assert production["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= grace


def test_the_worker_disruption_budget_selects_the_workers() -> None:
    docs = documents("worker.yaml")
    pdb = find(docs, "PodDisruptionBudget", "dmap-worker")
    labels = find(docs, "Deployment", "dmap-worker")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_coordinator_jobs_run_valid_definitions() -> None:
    settings = check_environment(settings_env(), "base")
    job = find(documents("coordinator-job.yaml"), "Job", "dmap-coordinator")
    params = check_run_args(container(job, "coordinator")["args"], settings)
    assert params["name"], "a fixed execution name lets a replaced coordinator pod resume the run"
    demo_job = find(documents("coordinator-job.yaml", folder=DEMO), "Job", "dmap-coordinator")
    demo_params = check_run_args(container(demo_job, "coordinator")["args"], settings)
    assert demo_params["manifest"] == seed.MANIFEST_URI
    init = demo_job["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][:3] == ["python", "-m", "examples.demo.seed"]
    assert find(documents("coordinator-job.yaml", folder=PRODUCTION), "Job", "dmap-coordinator")["spec"]["suspend"]


def test_the_in_cluster_redis_matches_the_url_and_keeps_an_append_only_file() -> None:
    docs = documents("redis.yaml")
    host, port, _ = redis_host_port(settings_env()["DMAP_REDIS_URL"])
    service = find(docs, "Service", host)
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    args = " ".join(container(find(docs, "StatefulSet", host), "redis")["args"])
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in args


def test_the_metrics_exporter_serves_and_advertises_the_default_port() -> None:
    docs = documents("metrics.yaml")
    exporter = container(find(docs, "Deployment", "dmap-metrics"), "metrics")
    assert exporter["command"] == ["python", "-m", "dmap.metrics"]
    assert check_metrics_args(exporter["args"]) == metrics.DEFAULT_PORT
    assert [p["containerPort"] for p in exporter["ports"]] == [metrics.DEFAULT_PORT]
    service = find(docs, "Service", "dmap-metrics")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(metrics.DEFAULT_PORT)


def test_keda_scales_the_worker_deployment_on_the_queue_list_of_the_external_redis() -> None:
    keda = documents("keda.yaml", folder=PRODUCTION)
    scaled = find(keda, "ScaledObject", "dmap-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "dmap-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    env = settings_env(*documents("credentials.yaml", folder=PRODUCTION))
    settings = check_environment(env, "overlays/production")
    assert meta["listName"] == settings.queue  # the Redis transport's LIST is named after the queue
    host, port, db = redis_host_port(settings.effective_broker_url)
    assert meta["address"] == f"{host}:{port}"
    assert meta["databaseIndex"] == str(db)
    assert meta["enableTLS"] == str(settings.effective_broker_url.startswith("rediss://")).lower()
    worker = container(find(documents("worker.yaml", folder=PRODUCTION), "Deployment", "dmap-worker"), "worker")
    assert int(meta["listLength"]) == parse_cli(worker["args"])[1]["concurrency"]
    auth = find(keda, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert find(keda, "Secret", ref["name"])["stringData"][ref["key"]]


def test_the_built_production_overlay_uses_the_external_redis_only(built_overlays: dict[str, str]) -> None:
    import yaml

    docs = [d for d in yaml.safe_load_all(built_overlays["production"]) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "dmap-redis") not in kinds and ("Service", "dmap-redis") not in kinds
    assert ("ScaledObject", "dmap-worker") in kinds and ("Deployment", "dmap-worker") in kinds
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"dmap"}
    demo = [d for d in yaml.safe_load_all(built_overlays["demo"]) if d]
    assert ("StatefulSet", "dmap-redis") in {(d["kind"], d["metadata"]["name"]) for d in demo}


def test_the_api_server_is_probed_on_its_health_routes_behind_a_service() -> None:
    docs = documents("serve.yaml")
    server = container(find(docs, "Deployment", "dmap-serve"), "serve")
    command, params = parse_cli(server["args"])
    assert command == "serve" and params["host"] == "0.0.0.0"
    assert [p["containerPort"] for p in server["ports"]] == [params["port"]]
    assert server["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health/live"
    service = find(docs, "Service", "dmap-serve")
    assert service["spec"]["ports"][0]["port"] == params["port"]
    assert service["spec"]["selector"] == find(docs, "Deployment", "dmap-serve")["spec"]["selector"]["matchLabels"]
