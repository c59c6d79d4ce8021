"""Redis and S3 credentials never appear in logs, errors, results or the journal.

The test starts its own redis-server with ``--requirepass`` and points boto3 at moto with a
distinctive ``AWS_SECRET_ACCESS_KEY``; then it runs executions that succeed and that fail (a missing
key, a missing bucket for the reader, the writer and a Task, a handler exception) on celery workers
and in-process, runs the CLI against the same cluster, and tries a wrong password everywhere
(``CeleryBackend``, ``dmap run``, ``dmap worker``). Everything those produced — worker logs, CLI
stdout and stderr, result files, exception messages and every key of the Redis database — is
searched for the secrets, as they are and base64-encoded.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

import dmap
from dmap import control
from dmap.backends.celery import CeleryBackend
from dmap.backends.local import LocalBackend
from dmap.config import Settings

from .conftest import Cli, HardCluster, RedisServer, cli_env, dump_redis, make_cluster, run_many, watch_worker
from .flows import distributed_map, object_reader, result_writer

pytestmark = pytest.mark.timeout(180)

REDIS_SECRET = f"rpw-{uuid.uuid4().hex}"
AWS_SECRET = f"aws-{uuid.uuid4().hex}"
WRONG_SECRET = f"wrong-{uuid.uuid4().hex}"
SECRETS = (REDIS_SECRET, AWS_SECRET, WRONG_SECRET)


def encodings(secret: str) -> list[str]:
    """The secret, and the parts of its base64 that appear whatever the bytes around it (3 alignments)."""
    found = [secret]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + secret.encode()).decode()
        found.append(encoded[4 : len(encoded) - 4])  # drop the characters that depend on the neighbours
    return found


@dataclass
class Evidence:
    """Everything the runs produced, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        self.texts[where] = self.texts.get(where, "") + "\n" + text

    def leaks(self) -> list[str]:
        return [
            f"{where} holds {'the secret' if variant == secret else 'base64 of the secret'} {secret[:6]}..."
            for where, text in self.texts.items()
            for secret in SECRETS
            for variant in encodings(secret)
            if variant in text
        ]


@pytest.fixture
def secure_redis(server_factory: Callable[..., RedisServer]) -> Iterator[tuple[str, redis.Redis]]:
    """A private redis-server that wants ``REDIS_SECRET``; yields its URL (DB 0) and a client."""
    server = server_factory(
        "--requirepass",
        REDIS_SECRET,
        ping=lambda port: redis.Redis(host="127.0.0.1", port=port, password=REDIS_SECRET),
    )
    url = f"redis://:{REDIS_SECRET}@127.0.0.1:{server.port}/0"
    conn = redis.Redis.from_url(url)
    yield url, conn
    conn.close()


@pytest.fixture
def aws(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """boto3 on moto with ``AWS_SECRET_ACCESS_KEY`` = ``AWS_SECRET``; yields an S3 client."""
    import boto3

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


def s3_items_definition(bucket: str, *, results: str) -> dict[str, Any]:
    """A Map reading items from ``bucket``; each child gets an object through the s3 integration."""
    task = {"Bucket.$": "$.bucket", "Key.$": "$.key"}
    definition = distributed_map(
        reader=object_reader(bucket, "items.jsonl", "JSONL"),
        writer=result_writer(results, "results"),
        ToleratedFailurePercentage=100,
    )
    work = definition["States"]["Fan"]["ItemProcessor"]["States"]["Work"]
    work.update(Resource="arn:aws:states:::s3:getObject", Parameters=task)
    return definition


def collect_bucket(client: Any, bucket: str, evidence: Evidence) -> int:
    """Every object of ``bucket`` into the evidence; returns how many there were."""
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode("utf-8", "replace")
            evidence.add(f"s3://{bucket}/{obj['Key']}", body)
            count += 1
    return count


@pytest.mark.slow
def test_no_credential_appears_in_logs_errors_results_or_redis(
    secure_redis: tuple[str, redis.Redis],
    aws: Any,
    integrations: Callable[[str], None],
    local_backend: Callable[..., LocalBackend],
    tmp_path: Path,
) -> None:
    url, conn = secure_redis
    integrations("s3")
    evidence = Evidence()
    bucket, gone = f"hard-{uuid.uuid4().hex[:10]}", f"gone-{uuid.uuid4().hex[:10]}"
    aws.create_bucket(Bucket=bucket)
    aws.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    items = [
        {"bucket": bucket, "key": "hello.txt"},
        {"bucket": bucket, "key": "nope.txt"},
        {"bucket": gone, "key": "x"},
    ]
    aws.put_object(Bucket=bucket, Key="items.jsonl", Body="".join(json.dumps(i) + "\n" for i in items).encode())
    cluster = make_cluster(conn, url, tmp_path, DMAP_INTEGRATIONS="s3")
    try:
        cluster.start_workers(1, concurrency=2, loglevel="INFO")
        backend = cluster.celery()
        local = local_backend()
        plans = {
            "celery ok": (s3_items_definition(bucket, results=bucket), backend),
            "celery reader bucket missing": (s3_items_definition(gone, results=bucket), backend),
            "celery writer bucket missing": (s3_items_definition(bucket, results=gone), backend),
            "local reader bucket missing": (s3_items_definition(gone, results=bucket), local),
        }
        runs = {name: dmap.run(definition, backend=engine) for name, (definition, engine) in plans.items()}
        for name, execution in runs.items():
            evidence.add(name, execution.describe())
            for map_run in execution.map_runs:
                failures = control.list_failures(map_run.map_run_arn, backend=plans[name][1])
                evidence.add(f"{name} failures", [asdict(f) for f in failures])
        ok = runs["celery ok"]
        assert ok.status == "SUCCEEDED", (ok.cause, cluster.workers[0].tail())
        assert ok.map_runs[0].item_counts["succeeded"] == 1 and ok.map_runs[0].item_counts["failed"] == 2
        assert runs["celery reader bucket missing"].error == "States.ItemReaderFailed"
        assert runs["celery writer bucket missing"].error == "States.ResultWriterFailed"
        assert runs["local reader bucket missing"].error == "States.ItemReaderFailed"

        for run in cli_runs(cluster, bucket, gone, tmp_path, ok):
            evidence.add(f"cli {' '.join(run.args[:2])}", run.text)
            assert "Traceback" not in run.text, run.text[-3000:]
        assert collect_bucket(aws, bucket, evidence) >= 4  # items, hello and the result files of two runs
        evidence.add("redis", dump_redis(conn))
        evidence.add("wrong password", wrong_password_errors(url, tmp_path))
    finally:
        cluster.close()
    evidence.add("worker logs", cluster.log_text())

    assert "redis://:**@" in evidence.texts["worker logs"], "the worker banner should show the masked broker URL"
    assert ok.execution_arn in evidence.texts["redis"], "the journal should be in the Redis dump"
    assert "NoSuchBucket" in evidence.texts["celery ok failures"]
    assert evidence.leaks() == []


@pytest.mark.parametrize("secret", SECRETS)
def test_the_leak_search_finds_a_secret_as_it_is_and_inside_base64(secret: str) -> None:
    plain, encoded = Evidence(), Evidence()
    plain.add("log", f"connecting to redis://:{secret}@host/0")
    encoded.add("queue", base64.b64encode(json.dumps({"url": f"redis://:{secret}@h"}).encode()).decode())

    assert len(plain.leaks()) == 1
    assert len(encoded.leaks()) == 1
    assert Evidence().leaks() == []


def cli_runs(cluster: HardCluster, bucket: str, gone: str, tmp_path: Path, done: dmap.Execution) -> list[Cli]:
    """The CLI on the cluster: runs that succeed and fail (celery and local), describe, failures, list."""
    ok, failing = tmp_path / "ok.asl.json", tmp_path / "failing.asl.json"
    ok.write_text(json.dumps(s3_items_definition(bucket, results=bucket)), "utf-8")
    failing.write_text(json.dumps(s3_items_definition(gone, results=bucket)), "utf-8")
    env = cluster.env(DMAP_INTEGRATIONS="s3")
    celery = ["--backend", "celery"]
    commands = [
        ["run", str(ok), *celery, "--output", "json"],
        ["run", str(failing), *celery],
        ["run", str(failing)],  # local, with DMAP_REDIS_URL set all the same
        ["describe-execution", done.execution_arn, *celery],
        ["failures", done.map_runs[0].map_run_arn, *celery, "--output", "json"],
        ["list-executions", *celery],
    ]
    runs = run_many(commands, env=env)
    assert [r.code for r in runs] == [0, 1, 1, 0, 0, 0], [r.text[-2000:] for r in runs]
    return runs


def wrong_password_errors(url: str, tmp_path: Path) -> list[str]:
    """What a wrong Redis password produces: BackendError, ``dmap run`` (exit 3) and a ``dmap worker``'s log."""
    wrong = url.replace(REDIS_SECRET, WRONG_SECRET)
    with pytest.raises(dmap.BackendError) as raised:
        CeleryBackend(Settings(redis_url=wrong, broker_url=wrong))
    message = str(raised.value)
    assert "invalid username-password pair" in message or "WRONGPASS" in message or "Authentication" in message
    texts = [message, repr(raised.value)]

    definition = tmp_path / "echo.asl.json"
    definition.write_text(json.dumps(distributed_map()), "utf-8")
    env = cluster_env_with(wrong)
    [cli] = run_many([["run", str(definition), "--backend", "celery", "--import", "tests.hardening.handlers"]], env=env)
    assert cli.code == 3, cli.text
    assert "cannot reach Redis" in cli.stderr
    texts.append(cli.text)

    # A worker refuses to start against a Redis it cannot log in to (exit 3, one redacted line).
    text = watch_worker(env, tmp_path / "wrong-worker.log", until=("cannot reach Redis",))
    assert "cannot reach Redis" in text and "invalid username-password pair" in text, text[-3000:]
    texts.append(text)
    return texts


def cluster_env_with(url: str) -> dict[str, str]:
    """A CLI environment whose run store and broker are ``url``."""
    return cli_env(DMAP_REDIS_URL=url, DMAP_BROKER_URL=url, DMAP_QUEUE=f"hard-{uuid.uuid4().hex[:8]}")
