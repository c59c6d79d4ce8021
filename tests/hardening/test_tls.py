"""``rediss://`` with a password works end to end: a real celery run against a TLS-only redis-server.

The test makes a CA and a server certificate for 127.0.0.1 with the openssl CLI, starts
redis-server with ``--port 0 --tls-port N --requirepass``, and gives coordinator and worker the
same URL, ``rediss://:pw@127.0.0.1:N/0?ssl_cert_reqs=required&ssl_ca_certs=<ca>`` — both redis-py
and kombu read the TLS options from the URL's query. The certificate really is verified: without
the CA the connection is refused.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

import dmap
from dmap.backends.celery import CeleryBackend
from dmap.config import Settings

from .conftest import RedisServer, cli_env, dump_redis, make_cluster, missing, watch_worker
from .flows import distributed_map

pytestmark = pytest.mark.timeout(120)

PASSWORD = f"tls-{uuid.uuid4().hex}"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """A folder with ``ca.pem`` and ``server.pem``/``server.key`` (CN and SAN 127.0.0.1), EC P-256."""
    if shutil.which("openssl") is None:
        missing("the openssl CLI is not installed")
    folder = tmp_path / "tls"
    folder.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dmap test CA",
        cwd=folder,
    )
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", "utf-8")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.cnf", cwd=folder,
    )  # fmt: skip
    return folder


@pytest.fixture
def tls_redis(server_factory: Callable[..., RedisServer], certificates: Path) -> RedisServer:
    """A redis-server that speaks TLS only, with a password."""
    ca = str(certificates / "ca.pem")
    return server_factory(
        "--tls-cert-file", str(certificates / "server.pem"),
        "--tls-key-file", str(certificates / "server.key"),
        "--tls-ca-cert-file", ca,
        "--tls-auth-clients", "no",
        "--requirepass", PASSWORD,
        tls=True,
        ping=lambda port: redis.Redis(
            host="127.0.0.1", port=port, password=PASSWORD, ssl=True, ssl_ca_certs=ca, ssl_cert_reqs="required"
        ),
    )  # fmt: skip


def tls_url(server: RedisServer, query: str) -> str:
    return f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0?{query}"


def test_a_celery_run_works_over_rediss_with_a_password_and_a_verified_certificate(
    tls_redis: RedisServer, certificates: Path, tmp_path: Path
) -> None:
    url = tls_url(tls_redis, f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(certificates / 'ca.pem'), safe='/')}")
    conn = redis.Redis.from_url(url)
    cluster = make_cluster(conn, url, tmp_path)
    try:
        (worker,) = cluster.start_workers(1, concurrency=2, loglevel="INFO")
        items = [{"i": i} for i in range(6)]

        execution = dmap.run(distributed_map(), input=items, backend=cluster.celery())

        assert execution.status == "SUCCEEDED", (execution.cause, worker.tail())
        assert [entry["event"] for entry in execution.output] == items
        assert execution.execution_arn in dump_redis(conn)  # the journal is on the TLS server
        log = cluster.log_text()
        assert "rediss://:**@127.0.0.1" in log
        assert "insecure SSL behaviour" not in log, "kombu ignored the URL's TLS options"
        assert PASSWORD not in log
    finally:
        cluster.close()
        conn.close()


def test_rediss_verifies_the_certificate_so_a_url_without_the_ca_is_refused(tls_redis: RedisServer) -> None:
    url = tls_url(tls_redis, "ssl_cert_reqs=required")

    with pytest.raises(dmap.BackendError) as raised:
        CeleryBackend(Settings(redis_url=url))

    assert "certificate verify failed" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_plain_redis_url_to_a_tls_only_server_is_a_clear_backend_error(tls_redis: RedisServer) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0"

    with pytest.raises(dmap.BackendError) as raised:
        CeleryBackend(Settings(redis_url=url))

    assert "cannot reach Redis" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_worker_does_not_send_its_password_to_a_tls_broker_it_cannot_verify(
    tls_redis: RedisServer, tmp_path: Path
) -> None:
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_redis.port}/0"  # the CA is known to nobody here
    with pytest.raises(dmap.BackendError, match="certificate verify failed"):
        CeleryBackend(Settings(redis_url=url))  # redis-py (the run store) verifies by default
    env = cli_env(DMAP_REDIS_URL=url, DMAP_BROKER_URL=url, DMAP_QUEUE=f"hard-{uuid.uuid4().hex[:8]}")

    text = watch_worker(env, tmp_path / "worker.log", until=("Connected to", "Cannot connect"))

    assert "Connected to rediss" not in text, "the broker connection (and its AUTH) went over unverified TLS"
    assert "certificate verify failed" in text
