"""The console in a real browser, over a real Map Run on the celery backend (real ``dmap worker`` processes).

One run of 30 items, three of them broken, ``ToleratedFailureCount: 2``: the page is opened while
the first children are held, then watched (no reload) as the run fails on its third failure. The
rendered counts must equal ``describe-map-run``'s, the chart must have points, the failures table
must list the broken items with their causes; then, with the handler fixed, the console's Redrive
button must finish the run. With ``DMAP_CONSOLE_SCREENSHOTS=<folder>`` the test also saves the
screenshots the README shows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import expect

import dmap
from dmap import control

from ..control.conftest import Ctl, work_input, work_map

COUNT = 30
BROKEN = (5, 15, 25)
WAIT_MS = 90_000


def _number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text) or "0")


def _counts(page: Any, kind: str) -> dict[str, int]:
    cells = page.locator(f'[data-count^="{kind}."]')
    return {cell.get_attribute("data-count").split(".", 1)[1]: _number(cell.inner_text()) for cell in cells.all()}


def test_the_map_run_page_follows_a_failing_celery_run_live_and_redrives_it_to_success(
    ctl: Ctl, serve: Any, browser: Any
) -> None:
    ctl.start_workers(2, concurrency=2)
    backend = ctl.backend()
    base = serve(backend)
    definition = work_map(max_concurrency=2, tolerated_count=2)
    started = dmap.run(
        definition,
        input=work_input(ctl.ns, COUNT, failing=BROKEN, hold=2),
        backend=backend,
        name=ctl.name("console"),
        wait=False,
    )
    arn = started.execution_arn
    ctl.wait_for(lambda: len(ctl.held()) == 2, "the first two children to be held")
    (map_run,) = control.describe_execution(arn, backend=backend).map_runs
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/map-runs/{quote(map_run.map_run_arn, safe=':/')}")
    assert page.locator("#map-run-status").inner_text() == "RUNNING"
    assert _counts(page, "items")["running"] == 2
    # adaptive concurrency is off: the effective limit is MaxConcurrency, and nothing waits for a token
    assert [page.locator(f"#{f}").inner_text() for f in ("effective-concurrency", "max-concurrency", "waiting")] == [
        "2",
        "2",
        "0",
    ]
    page.evaluate("window.__sameDocument = true")

    ctl.release()
    expect(page.locator("#map-run-status")).to_have_text("FAILED", timeout=WAIT_MS)
    expect(page.locator("[data-field=execution_status]")).to_have_text("FAILED", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument === true")  # the counts changed in place: no reload
    assert _number(page.locator("[data-live]").first.get_attribute("data-updates") or "") > 0

    page.reload()  # what a fresh page shows of the ended run must equal describe-map-run
    described = control.describe_map_run(map_run.map_run_arn, backend=backend)
    assert described.status == "FAILED"
    assert _counts(page, "items") == described.item_counts
    assert _counts(page, "executions") == described.execution_counts
    chart = page.locator("#chart svg")
    assert _number(chart.get_attribute("data-points") or "") > 0
    assert page.locator("#chart polyline.line-items").get_attribute("points")
    for index in BROKEN:
        row = page.locator(f'#failures tr[data-index="{index}"]')
        assert row.locator("td").nth(1).inner_text() == "FAILED"
        assert f"item {index} is broken" in row.locator("td.cause").inner_text()
    assert page.locator("#failure-groups").get_by_text("ItemBroken").count() == 1
    _screenshots(page, base, arn)

    ctl.fix()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Redrive execution").click()
    page.wait_for_url(re.compile(r".*/map-runs/.*"))
    expect(page.locator("#map-run-status")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
    expect(page.locator("[data-field=execution_status]")).to_have_text("SUCCEEDED", timeout=WAIT_MS)
    finished = control.describe_map_run(map_run.map_run_arn, backend=backend)
    assert (finished.status, finished.redrive_count) == ("SUCCEEDED", 1)
    assert finished.item_counts["succeeded"] == COUNT
    expect(page.locator('[data-count="items.succeeded"]')).to_have_text(str(COUNT), timeout=WAIT_MS)


def _screenshots(page: Any, base: str, arn: str) -> None:
    """Save the README's screenshots of the three pages when ``DMAP_CONSOLE_SCREENSHOTS`` names a folder."""
    folder = os.environ.get("DMAP_CONSOLE_SCREENSHOTS")
    if not folder:
        return
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / "console-map-run.png"), full_page=True)
    page.goto(f"{base}/executions/{quote(arn, safe=':/')}")
    page.screenshot(path=str(out / "console-execution.png"), full_page=True)
    page.goto(f"{base}/")
    page.screenshot(path=str(out / "console-executions.png"), full_page=True)
    page.go_back()
    page.go_back()
