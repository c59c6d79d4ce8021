"""The suite starts the redis-server it needs (tests/services.py): ``pytest`` on a fresh machine runs, not skips."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .services import REDIS_URL_VARIABLES, ServiceError, answers, ensure_redis, stop, wanted_redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def point_every_url_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for variable in REDIS_URL_VARIABLES:
        monkeypatch.setenv(variable, url)
    monkeypatch.delenv("DMAP_TEST_SERVICES", raising=False)


def test_a_redis_url_where_nothing_answers_gets_a_redis_server_started_and_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    port = free_port()
    point_every_url_at(monkeypatch, f"redis://:s3cret@127.0.0.1:{port}/3")

    (started,) = ensure_redis()
    try:
        assert answers("127.0.0.1", port)
        assert redis.Redis.from_url(f"redis://:s3cret@127.0.0.1:{port}/3").ping()
        assert ensure_redis() == []  # now it answers: nothing more to start
    finally:
        stop(started)
    assert not answers("127.0.0.1", port)


def test_without_the_redis_server_binary_the_session_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_every_url_at(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ServiceError, match="apt-get install redis-server"):
        ensure_redis()


def test_remote_and_tls_urls_are_never_started_and_the_defaults_are_the_local_6379(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in REDIS_URL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert wanted_redis() == {("127.0.0.1", 6379): None}
    monkeypatch.setenv("DMAP_TEST_REDIS_URL", "redis://redis.example.com:6379/0")
    monkeypatch.setenv("ITEST_REDIS_URL", "rediss://127.0.0.1:6390/0")
    assert wanted_redis() == {("127.0.0.1", 6379): None}


def test_dmap_test_services_0_opts_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    point_every_url_at(monkeypatch, f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DMAP_TEST_SERVICES", "0")

    assert ensure_redis() == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = root.joinpath("README.md").read_text("utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    test_command = readme.strip().splitlines()[1]
    ci = root.joinpath(".ci", "run").read_text("utf-8").strip().splitlines()

    assert test_command.endswith("&& pytest")
    assert ci[-1] == test_command
