"""The compose demo without containers: the same processes, on this machine, then a check and a cleanup.

    python scripts/demo_local.py [--workers 2] [--concurrency 2] [--keep] [--summary FILE]

Starts what ``docker compose up demo`` starts: a ``redis-server`` on a spare port (AOF on,
``noeviction``, as in docker-compose.yml), moto's S3 server standing in for MinIO, the seed step
(``examples.demo.seed``, the compose ``minio-init`` job), ``--workers`` ``dmap worker`` processes,
and the demo run (``dmap run examples/demo/definition.json --backend celery --manifest s3://...``).
Then it checks what the ResultWriter wrote back to S3 (``manifest.json``, the SUCCEEDED and FAILED
files; ``examples.demo.verify``) and stops everything it started. Exit code 0 means the whole flow
worked; otherwise the last log line names the step that failed, after the tails of the process logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFINITION = "examples/demo/definition.json"
HANDLERS = "examples.demo.handlers"
logger = logging.getLogger("demo_local")


class DemoFailed(Exception):
    """A step of the demo failed; the message names it."""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, what: str, timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise DemoFailed(f"{what} did not listen on port {port} within {timeout:.0f} s")


class Cluster:
    """The processes of the demo, their logs, and their cleanup."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
            "DMAP_BACKEND": "celery",
            "AWS_ACCESS_KEY_ID": "dmap",
            "AWS_SECRET_ACCESS_KEY": "dmap-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for name in ("DMAP_S3_ROOT", "DMAP_BROKER_URL", "AWS_PROFILE"):
            self.env.pop(name, None)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start a process with the demo's environment, its output in ``<workdir>/<name>.log``."""
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append((name, proc, log))
        logger.info("started %s (pid %d)", name, proc.pid)
        return proc

    def check_alive(self) -> None:
        """Raise if a started process already exited."""
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise DemoFailed(f"{name} exited early with code {proc.returncode}")

    def tails(self, lines: int = 15) -> str:
        """The last lines of every process log."""
        parts = []
        for name, _, log in self.procs:
            text = log.read_text("utf-8", errors="replace").splitlines()[-lines:] if log.exists() else []
            parts.append(f"--- {name} ({log}) ---\n" + "\n".join(text))
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM every process (workers do a warm shutdown), then SIGKILL what is left after 20 s."""
        for _, proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc, _ in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop on SIGTERM; killing it", name)
                proc.kill()
                proc.wait()


@contextmanager
def cluster(keep: bool) -> Iterator[Cluster]:
    """A Cluster in a temporary folder, always stopped; the folder is removed unless ``keep``."""
    workdir = Path(tempfile.mkdtemp(prefix="dmap-demo-"))
    nodes = Cluster(workdir)
    try:
        yield nodes
    finally:
        nodes.stop()
        if keep:
            logger.info("logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


#: Python modules the demo needs: (module, what it is, how to get it).
REQUIREMENTS = [
    ("dmap", "dmap itself", 'pip install -e ".[dev]" (from the repository root)'),
    ("celery", "Celery (dmap's celery backend)", 'pip install -e ".[dev]"'),
    ("redis", "redis-py", 'pip install -e ".[dev]"'),
    ("boto3", "boto3 (S3)", 'pip install -e ".[dev]"'),
    ("moto.server", "moto's S3 server (stands in for MinIO)", 'pip install -e ".[dev]" (or "moto[server,s3]")'),
    ("flask", "Flask (moto's server runs on it)", 'pip install -e ".[dev]" (or "moto[server,s3]")'),
]


def missing_requirements() -> list[str]:
    """What the demo needs and this machine lacks, each with how to install it (empty: all there)."""
    import importlib.util

    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server is not installed: apt-get install redis-server (Debian/Ubuntu)")
    for module, what, fix in REQUIREMENTS:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing
            found = False
        if not found:
            missing.append(f"{what} is not importable (module {module!r}): {fix}")
    if not (ROOT / DEFINITION).is_file():
        missing.append(f"{ROOT / DEFINITION} is missing: run this script from a dmap checkout")
    return missing


def start_services(nodes: Cluster) -> None:
    """redis-server and moto's S3, as the compose ``redis`` and ``minio`` services."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise DemoFailed("redis-server is not installed (Debian: apt-get install redis-server)")
    redis_port, s3_port = free_port(), free_port()
    redis_args = ["--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(nodes.workdir), "--save", ""]
    redis_args += ["--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"]
    nodes.start("redis", [redis_server, *redis_args])
    nodes.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)])
    wait_for_port(redis_port, "redis-server")
    wait_for_port(s3_port, "moto S3 server")
    nodes.env["DMAP_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    nodes.env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{s3_port}"


def s3_client(nodes: Cluster) -> Any:
    """A boto3 client on the demo's S3 endpoint."""
    import boto3

    env = nodes.env
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def start_workers(nodes: Cluster, count: int, concurrency: int, timeout: float = 60.0) -> None:
    """``count`` ``dmap worker`` processes; returns once each answers a Celery ping."""
    argv = [sys.executable, "-m", "dmap", "worker", "--concurrency", str(concurrency), "--import", HANDLERS]
    for n in range(count):
        nodes.start(f"worker-{n + 1}", argv)
    from dmap.config import Settings
    from workers.app import create_app

    app = create_app(Settings(redis_url=nodes.env["DMAP_REDIS_URL"]))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            nodes.check_alive()
            if len(app.control.ping(timeout=1.0) or []) >= count:
                return
        raise DemoFailed(f"{count} worker(s) did not answer a ping within {timeout:.0f} s")
    finally:
        app.close()


def run_demo(nodes: Cluster, timeout: float = 300.0) -> dict[str, Any]:
    """The compose ``demo`` service's command; returns its JSON output (DescribeExecution shape)."""
    manifest = "s3://dmap-demo/input/orders.jsonl"
    argv = [sys.executable, "-m", "dmap", "run", DEFINITION, "--backend", "celery", "--manifest", manifest]
    argv += ["--import", HANDLERS, "--output", "json"]
    logger.info("running %s", " ".join(argv[2:]))
    done = subprocess.run(argv, cwd=ROOT, env=nodes.env, capture_output=True, timeout=timeout, check=False)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        stderr = done.stderr.decode("utf-8", errors="replace")[-3000:]
        raise DemoFailed(f"dmap run exited {done.returncode} without JSON output; stderr:\n{stderr}") from None
    if done.returncode != 0 or result.get("status") != "SUCCEEDED":
        raise DemoFailed(
            f"dmap run exited {done.returncode}: {result.get('status')} {result.get('error')}: {result.get('cause')}"
        )
    return result


def demo(workers: int, concurrency: int, keep: bool) -> dict[str, Any]:
    """The whole flow; returns a summary. Raises DemoFailed naming the failed step."""
    sys.path.insert(0, str(ROOT))
    missing = missing_requirements()
    if missing:
        raise DemoFailed("this machine lacks what the demo needs:\n  " + "\n  ".join(missing))
    from examples.demo.seed import seed
    from examples.demo.verify import DemoCheckFailed, verify

    with cluster(keep) as nodes:
        try:
            start_services(nodes)
            client = s3_client(nodes)
            seed(client, wait_seconds=30)
            start_workers(nodes, workers, concurrency)
            started = time.monotonic()
            result = run_demo(nodes)
            seconds = time.monotonic() - started
            details = result["output"]["ResultWriterDetails"]
            summary = verify(client, details["Key"])
        except (DemoFailed, DemoCheckFailed) as exc:
            logger.error("the last lines of every process log:\n%s", nodes.tails())
            raise DemoFailed(str(exc)) from None
    return {
        "status": result["status"],
        "executionArn": result["executionArn"],
        "manifest": f"s3://{details['Bucket']}/{details['Key']}",
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "pending": summary.pending,
        "workerProcesses": len(summary.workers),
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; returns the exit code."""
    parser = argparse.ArgumentParser(description="Run the compose demo on this machine, without containers.")
    parser.add_argument("--workers", type=int, default=2, help="dmap worker processes (compose: --scale worker=N).")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery processes per worker.")
    parser.add_argument("--keep", action="store_true", help="Keep the process logs (their folder is logged).")
    parser.add_argument("--summary", type=Path, help="Also write the summary as JSON to this file.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = demo(args.workers, args.concurrency, args.keep)
    except DemoFailed as exc:
        summary = {"status": "DEMO_FAILED", "reason": str(exc)}
        logger.error("demo failed: %s", exc)
    else:
        logger.info("demo passed: %s", json.dumps(summary))
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    return 0 if summary["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
