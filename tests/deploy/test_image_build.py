"""What the Dockerfile's build stage does, without Docker: build the wheel from exactly the files it copies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

BUILD_CONTEXT = ("pyproject.toml", "README.md", "dmap", "workers")
"""The build stage's COPY sources (test_dockerfile checks the Dockerfile copies exactly these and examples)."""


@pytest.mark.slow
def test_the_image_build_stage_can_build_and_install_the_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for name in BUILD_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(source, context / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("dmap-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    lua = {p.name for p in (ROOT / "dmap" / "lua").glob("*.lua")}
    assert {f"dmap/lua/{name}" for name in lua} <= names
    assert {"dmap/metrics.py", "workers/app.py", "workers/tasks.py"} <= names
    assert "dmap = dmap.cli:main" in entry_points
