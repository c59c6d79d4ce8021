"""Take the README's console screenshots: ``python scripts/console_screenshots.py [docs]``.

Runs real Map Runs on the embedded backend (a handler that sleeps 20-60 ms and fails about 4 % of
its items with one of two errors), serves the console on a free port, and photographs with
Playwright and Debian's chromium: the Map Run page while its run is under way, then the execution
page and the executions page once it has failed (the tolerance is 3 %).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dmap
from dmap import control
from dmap.backends.local import LocalBackend
from dmap.config import Settings


@dmap.task("ShotWork")
def work(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Resize one image (pretend): 20-60 ms, and about 4 % of the items fail."""
    rng = random.Random(event["id"])
    time.sleep(rng.uniform(0.02, 0.06))
    roll = rng.random()
    if roll < 0.025:
        raise ValueError(f"image {event['id']} has no EXIF orientation")
    if roll < 0.04:
        raise TimeoutError(f"thumbnail service timed out for {event['id']}")
    return {"id": event["id"], "bytes": rng.randint(10_000, 90_000)}


def definition(tolerance: float) -> dict[str, Any]:
    return {
        "StartAt": "Thumbnails",
        "States": {
            "Thumbnails": {
                "Type": "Map",
                "ItemsPath": "$.images",
                "MaxConcurrency": 16,
                "ToleratedFailurePercentage": tolerance,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Resize",
                    "States": {"Resize": {"Type": "Task", "Resource": "ShotWork", "End": True}},
                },
                "End": True,
            }
        },
    }


def main(folder: str = "docs") -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from dmap.server import create_app

    out = Path(folder)
    engine = LocalBackend(Settings())
    for number in range(3):
        images = [{"id": f"warmup-{number}-{i}"} for i in range(40)]
        dmap.run(definition(50), input={"images": images}, backend=engine, name=f"thumbnails-warmup-{number}")
    images = [{"id": f"img-{i:05d}"} for i in range(4000)]
    execution = dmap.run(
        definition(3), input={"images": images}, backend=engine, name="thumbnails-2026-12-06", wait=False
    )
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    arn = execution.execution_arn
    while not control.describe_execution(arn, backend=engine).map_runs:
        time.sleep(0.1)
    map_run = control.describe_execution(arn, backend=engine).map_runs[0].map_run_arn
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/map-runs/{quote(map_run, safe=':/')}")
        while control.map_run_progress(map_run, backend=engine).done < 1800:
            time.sleep(0.5)
        page.reload()
        time.sleep(2)  # one live update after the load
        page.screenshot(path=str(out / "console-map-run.png"), full_page=True)
        while str(control.describe_execution(arn, backend=engine).status) == "RUNNING":
            time.sleep(0.5)
        page.goto(f"{base}/executions/{quote(arn, safe=':/')}")
        page.screenshot(path=str(out / "console-execution.png"), full_page=True)
        page.goto(f"{base}/")
        page.screenshot(path=str(out / "console-executions.png"), full_page=True)
        browser.close()
    server.should_exit = True
    engine.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
