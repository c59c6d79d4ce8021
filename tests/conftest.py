"""Shared fixtures: a real Redis on loopback, fakeredis with Lua, and moto's S3 over HTTP.

The session starts a ``redis-server`` for every loopback Redis URL the fixtures use where nothing
answers (:mod:`tests.services`), so the README's ``pytest`` runs the real-Redis tests on a fresh
machine; without the binary it stops at once with the install command. Only with
``DMAP_TEST_SERVICES=0`` do real-service fixtures skip on a developer machine; under CI (``CI``
set) they fail: a skipped real-Redis test is not a passed one.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = bool(os.environ.get("CI"))
_STARTED: list[Any] = []

# A shell without job control starts background commands (`pytest &`, nohup) with SIGINT ignored, and
# the processes the tests start would inherit it: the Ctrl-C tests' `dmap run` would never see theirs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: Folders of tests/ whose every test needs real services, and the markers their tests get.
MARKED_FOLDERS = {
    "console": ("integration",),  # a real HTTP server
    "control": ("integration",),
    "docker": ("integration", "docker"),  # real containers
    "faults": ("integration",),
    "integration": ("integration",),
    "server": ("integration",),  # a dmap serve process
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of a :data:`MARKED_FOLDERS` folder (``-m "not integration"`` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if here not in path.parents:
            continue
        for marker in MARKED_FOLDERS.get(path.relative_to(here).parts[0], ()):
            item.add_marker(getattr(pytest.mark, marker))


def pytest_configure(config: pytest.Config) -> None:
    """Start the redis-servers the suite needs and nothing provides (see :mod:`tests.services`)."""
    from .services import ServiceError, ensure_redis

    try:
        _STARTED.extend(ensure_redis())
    except ServiceError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the servers this session started (never one that was already running)."""
    from .services import stop

    while _STARTED:
        stop(_STARTED.pop())


REDIS_URL = os.environ.get("DMAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The RabbitMQ of the broker tests, started for the session when nothing answers (``tests.services``).

    Tests share it with whoever else uses it: each one names its own queues (they are durable quorum
    queues: delete them afterwards).
    """
    from .services import AMQP_URL, ServiceError, ensure_rabbitmq, stop_rabbitmq

    try:
        started = ensure_rabbitmq()
    except ServiceError as exc:
        if IN_CI:
            raise
        pytest.skip(str(exc))
    yield AMQP_URL
    if started is not None:
        stop_rabbitmq(started)


def _real_redis_or_skip() -> Any:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            raise
        pytest.skip(f"no redis-server at {REDIS_URL}: {exc}")
    return client


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A URL of a real, empty Redis database (flushed before and after the test)."""
    client = _real_redis_or_skip()
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[Any]:
    """A redis-py client on the real test database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> Iterator[Any]:
    """A fakeredis client with Lua support (fast unit tests of the scripts)."""
    import fakeredis

    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield client
    client.close()


@pytest.fixture(params=["fakeredis", "redis"])
def any_redis(request: pytest.FixtureRequest) -> Any:
    """The same test on fakeredis[lua] and on a real redis-server."""
    name = "fake_redis" if request.param == "fakeredis" else "real_redis"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 as a real HTTP endpoint for the whole session; yields its URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (through its own environment variables) at moto; yields the endpoint URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DMAP_S3_ROOT", raising=False)
    return moto_server


@pytest.fixture
def s3_client(s3_env: str) -> Any:
    """A boto3 S3 client talking to moto over HTTP."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, empty bucket in moto; removed with its objects afterwards."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        for obj in page.get("Contents", []):
            s3_client.delete_object(Bucket=name, Key=obj["Key"])
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def http_integration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``DMAP_INTEGRATIONS=http`` for this test and the workers it starts (they copy the environment).

    The process's settings are read once and cached: they are re-read now and after the test, so a
    test that read them first cannot hide the integration, nor this one leak it.
    """
    from dmap.config import get_settings

    monkeypatch.setenv("DMAP_INTEGRATIONS", "http")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def memory_spans() -> Iterator[Any]:
    """This process traced into an OpenTelemetry ``InMemorySpanExporter`` for the test, untraced again afterwards.

    Skips the test when the ``otel`` extra (opentelemetry-sdk) is not installed.
    """
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dmap import telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure(provider)
    try:
        yield exporter
    finally:
        telemetry.reset()
        provider.shutdown()


@pytest.fixture(autouse=True)
def _own_metrics_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reports only the Map Runs it runs: the process's tracked runs (which linger five minutes
    after they end) start empty, so a metrics scrape does not read every run of the session before it."""
    from dmap import metrics

    monkeypatch.setattr(metrics, "_active", metrics.ActiveRuns())


@pytest.fixture
def register_handler() -> Iterator[Callable[[str, Callable[..., Any]], str]]:
    """``add(prefix, handler)`` registers a handler under ``<prefix><unique suffix>`` and returns that name;
    every handler registered so is removed from the global registry after the test."""
    from dmap.interpreter.tasks import registry

    names: list[str] = []

    def add(prefix: str, handler: Callable[..., Any]) -> str:
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        registry.register(name, handler)
        names.append(name)
        return name

    yield add
    for name in names:
        registry.unregister(name)
