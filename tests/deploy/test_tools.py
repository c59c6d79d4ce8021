"""The deployment files pass the real offline validators: Compose, kustomize + kubernetes-validate, hadolint."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import K8S, OVERLAYS, ROOT


def test_the_compose_file_is_valid_for_docker_compose(compose_binary: str) -> None:
    for profile in ([], ["--profile", "demo"]):
        done = subprocess.run(
            [compose_binary, "-f", str(ROOT / "docker-compose.yml"), *profile, "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr


def test_compose_rejects_a_broken_file_so_the_check_above_means_something(compose_binary: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  worker:\n    image: dmap:local\n"
        "    depends_on:\n      redis:\n        condition: service_healthy\n"
    )
    done = subprocess.run(
        [compose_binary, "-f", str(broken), "config", "-q"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "redis" in done.stderr


@pytest.mark.parametrize("name", ["base", *(p.name for p in OVERLAYS)])
def test_every_kustomization_builds_and_validates_strictly_against_kubernetes_1_30(
    name: str, built_overlays: dict[str, str], kubernetes_validate: list[str]
) -> None:
    done = subprocess.run(
        [*kubernetes_validate, "--strict", "-k", "1.30.0", "--quiet", "-"],
        input=built_overlays[name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Only the KEDA resources (custom kinds) may go without a schema.
    for line in done.stdout.splitlines():
        if line.startswith("WARN"):
            assert "keda.sh" in line, line


def test_the_overlays_are_the_demo_and_production_ones() -> None:
    assert [p.name for p in OVERLAYS] == ["demo", "production"]
    assert (K8S / "base" / "kustomization.yaml").is_file()


def test_kubernetes_validate_catches_an_unknown_field(kubernetes_validate: list[str]) -> None:
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {}\nspecc: 1\n"
    done = subprocess.run(
        [*kubernetes_validate, "--strict", "-k", "1.30.0", "-"],
        input=bad,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0


def test_the_dockerfile_passes_hadolint(hadolint: str) -> None:
    done = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
