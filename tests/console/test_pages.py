"""The console over HTTP on the embedded backend: what the pages list, paging, downloads, and who may act.

A real server (uvicorn on a loopback port) serves the app of :func:`dmap.server.create_app`; the
requests are plain HTTP (httpx), as a browser's would be, with the cookies it would keep.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import dmap
from dmap import control
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from tests.definitions import distributed_map

GATE = threading.Event()


@dmap.task("ConsoleWork")
def console_work(event: dict[str, Any], context: dmap.TaskContext) -> dict[str, Any]:
    """Fail the items whose ``i`` is a multiple of ``fail_every`` (by error name ``Broken<i % 3>``); wait at a gate."""
    if event.get("gated"):
        GATE.wait(60)
    every = int(event.get("fail_every") or 0)
    if every and event["i"] % every == 0:
        raise type(f"Broken{event['i'] % 3}", (Exception,), {})(f"item {event['i']} is broken")
    return {"i": event["i"]}


def fan(max_concurrency: int = 0) -> dict[str, Any]:
    """A DISTRIBUTED Map over ``$.items`` that tolerates any failure."""
    return distributed_map(
        {"Work": {"Type": "Task", "Resource": "ConsoleWork", "End": True}},
        name="Fan",
        ItemsPath="$.items",
        ItemSelector={"i.$": "$$.Map.Item.Value", "fail_every.$": "$.fail_every", "gated.$": "$.gated"},
        MaxConcurrency=max_concurrency,
        ToleratedFailurePercentage=100,
    )


def run_input(count: int, *, fail_every: int = 0, gated: bool = False) -> dict[str, Any]:
    return {"items": list(range(count)), "fail_every": fail_every, "gated": gated}


@pytest.fixture
def local() -> Iterator[LocalBackend]:
    engine = LocalBackend(Settings())
    yield engine
    GATE.set()
    engine.close()


def csrf_of(client: httpx.Client, url: str) -> str:
    """Load a page (which sets the CSRF cookie) and read the token its forms carry."""
    page = client.get(url)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "the page has no form"
    return found.group(1)


def test_executions_are_listed_newest_first_filtered_by_status_and_state_machine(
    local: Any, serve: Any, tmp_path: Path
) -> None:
    for number in range(4):
        dmap.run(fan(), input=run_input(3, fail_every=1 if number % 2 else 0), backend=local, name=f"run-{number}")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(fan()), "utf-8")
    dmap.run(str(other), input=run_input(2), backend=local, name="other-0")
    base = serve(local)
    with httpx.Client(base_url=base) as client:
        listed = client.get("/executions.json").json()
        names = [e["name"] for e in listed["executions"]]
        assert names[:5] == ["other-0", "run-3", "run-2", "run-1", "run-0"]
        succeeded = client.get("/executions.json", params={"status": "SUCCEEDED"}).json()["executions"]
        assert {e["name"] for e in succeeded} == {"run-0", "run-1", "run-2", "run-3", "other-0"}  # tolerated
        assert client.get("/executions.json", params={"status": "FAILED"}).json()["executions"] == []
        by_machine = client.get("/executions.json", params={"machine": "other"}).json()["executions"]
        assert [(e["name"], e["machine"]) for e in by_machine] == [("other-0", "other")]
        first = client.get("/executions.json", params={"machine": "dmap"}).json()
        assert [e["name"] for e in first["executions"]] == ["run-3", "run-2", "run-1", "run-0"]
        page = client.get("/", params={"status": "SUCCEEDED"})
        assert page.status_code == 200 and 'value="SUCCEEDED" selected' in page.text
        for name in names:
            assert name in page.text


def test_the_map_run_page_pages_its_failures_and_streams_them_all_as_json_lines(local: Any, serve: Any) -> None:
    done = dmap.run(fan(), input=run_input(300, fail_every=4), backend=local, name="many")
    arn = done.map_runs[0].map_run_arn
    total = control.count_failures(arn, backend=local)
    assert total == 75
    base = serve(local)
    url = f"/map-runs/{quote(arn, safe=':/')}"
    with httpx.Client(base_url=base) as client:
        page = client.get(url)
        assert page.status_code == 200
        assert page.text.count('<tr data-index="') == 25  # one page, never all of them
        assert "Next failures" in page.text
        for name, count in control_groups(arn, local):
            assert re.search(rf"<code>{name}</code></td><td class=\"num\">{count}</td>", page.text), name
        token = re.search(r'href="\?token=([^"#&]+)#failures-section"', page.text)
        assert token is not None
        second = client.get(url, params={"token": token.group(1)})
        firsts = re.findall(r'<tr data-index="(\d+)"', page.text)
        seconds = re.findall(r'<tr data-index="(\d+)"', second.text)
        assert int(seconds[0]) > int(firsts[-1])
        filtered = client.get(url, params={"error": "Broken0"})
        assert {int(i) % 3 for i in re.findall(r'<tr data-index="(\d+)"', filtered.text)} == {0}
        with client.stream("GET", f"{url}/failures.jsonl") as download:
            assert download.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in download.iter_lines() if line]
        assert len(lines) == total
        assert sorted(r["index"] for r in lines) == list(range(0, 300, 4))
        assert all("is broken" in r["cause"] for r in lines)
        live = client.get(f"{url}/live.json").json()
        described = control.describe_map_run(arn, backend=local)
        assert live["items"] == described.item_counts and live["status"] == "SUCCEEDED"
        assert live["chart_points"] > 0


def control_groups(arn: str, backend: Any) -> list[tuple[str, int]]:
    from dmap.observe import failure_groups

    return failure_groups(arn, backend=backend)


def test_actions_need_this_sites_token_and_origin_and_stop_a_running_execution(local: Any, serve: Any) -> None:
    GATE.clear()
    running = dmap.run(fan(max_concurrency=2), input=run_input(6, gated=True), backend=local, name="held", wait=False)
    arn = running.execution_arn
    base = serve(local)
    stop = f"/executions/{quote(arn, safe=':/')}/stop"
    with httpx.Client(base_url=base) as client:
        token = csrf_of(client, f"/executions/{quote(arn, safe=':/')}")
        form = {"csrf": token}
        refused = [
            client.post(stop, data={"csrf": "not-the-token"}),
            client.post(stop, data=form, headers={"Origin": "https://evil.example"}),
            client.post(stop, data=form, headers={"Sec-Fetch-Site": "cross-site"}),
            httpx.post(base + stop, data=form),  # the token without its cookie (another browser)
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 403]
        assert control.describe_execution(arn, backend=local).status == "RUNNING"
        done = client.post(stop, data=form, headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})
        assert done.status_code == 303, done.text
        GATE.set()
        assert _eventually_status(local, arn) == "ABORTED"
        again = client.post(stop, data=form)  # a well-formed request the execution's state refuses: a conflict
        assert again.status_code == 409 and "only a RUNNING execution can be stopped" in again.text


def _eventually_status(backend: Any, arn: str) -> str:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = str(control.describe_execution(arn, backend=backend).status)
        if status != "RUNNING":
            return status
        time.sleep(0.05)
    return "RUNNING"


def test_with_access_keys_set_the_console_asks_for_one_before_showing_or_changing_anything(
    local: Any, serve: Any
) -> None:
    done = dmap.run(fan(), input=run_input(4, fail_every=2), backend=local, name="keyed")
    base = serve(local, Settings(api_keys="AKIDCONSOLE,AKIDOTHER"))
    redrive = f"/executions/{quote(done.execution_arn, safe=':/')}/redrive"
    with httpx.Client(base_url=base) as client:
        asked = client.get("/")
        assert asked.status_code == 401 and 'name="key"' in asked.text and "keyed" not in asked.text
        assert client.get("/executions.json").status_code == 401
        token = re.search(r'name="csrf" value="([^"]+)"', asked.text)
        assert token is not None
        wrong = client.post("/console/key", data={"csrf": token.group(1), "key": "AKIDWRONG", "next": "/"})
        assert wrong.status_code == 401
        assert client.post(redrive, data={"csrf": token.group(1)}).status_code == 401
        right = client.post("/console/key", data={"csrf": token.group(1), "key": "AKIDCONSOLE", "next": "//evil"})
        assert right.status_code == 303 and right.headers["location"] == "/"
        assert "keyed" in client.get("/").text


def test_the_map_run_page_shows_effective_concurrency_and_switches_adaptive_concurrency_from_its_form(
    local: Any, serve: Any
) -> None:
    GATE.clear()
    running = dmap.run(fan(max_concurrency=2), input=run_input(6, gated=True), backend=local, name="adapt", wait=False)
    arn = _eventually_map_run(local, running.execution_arn)
    base = serve(local)
    url = f"/map-runs/{quote(arn, safe=':/')}"
    with httpx.Client(base_url=base, headers={"Origin": base}) as client:
        page = client.get(url)
        assert re.search(r'id="effective-concurrency">2<', page.text) and re.search(
            r'id="max-concurrency">2<', page.text
        )
        assert re.search(r'id="adaptive">off<', page.text) and re.search(r'id="waiting">0<', page.text)
        form = {"csrf": csrf_of(client, url), "adaptive": "on", "min_concurrency": "1"}
        assert client.post(f"{url}/update", data=form).status_code == 303
        live = client.get(f"{url}/live.json").json()
        flow = control.describe_map_run(arn, backend=local).flow or {}
        assert (live["adaptive"], live["adaptive_floor"], flow["adaptive"], flow["minConcurrency"]) == (
            True,
            1,
            True,
            1,
        )
        assert live["effective_concurrency"] == flow["effectiveConcurrency"] == 2  # starts from MaxConcurrency
        assert live["max_concurrency"] == 2 and live["waiting"] == flow["waiting"] == 0
        assert re.search(r'id="adaptive">on, floor 1<', client.get(url).text)
        refused = client.post(f"{url}/update", data={**form, "adaptive": "sometimes"})
        assert refused.status_code == 400 and "adaptive must be on or off" in refused.text
        form["adaptive"], form["min_concurrency"] = "off", ""
        assert client.post(f"{url}/update", data=form).status_code == 303
        live = client.get(f"{url}/live.json").json()
        assert (live["adaptive"], live["effective_concurrency"], live["adaptive_text"]) == (False, 2, "off")
    GATE.set()
    assert _eventually_status(local, running.execution_arn) == "SUCCEEDED"


def _eventually_map_run(backend: Any, arn: str) -> str:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = control.describe_execution(arn, backend=backend).map_runs
        if runs and runs[0].status == "RUNNING":
            return runs[0].map_run_arn
        time.sleep(0.05)
    raise AssertionError("the Map Run did not start")


def test_the_execution_page_shows_its_history_events_and_the_states_each_path_reached(local: Any, serve: Any) -> None:
    fan_state = {**fan()["States"]["Fan"], "Next": "Both"}
    del fan_state["End"]
    definition = {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Next": "Route"},
            "Route": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.fail_every", "NumericEquals": 99, "Next": "Never"}],
                "Default": "Fan",
            },
            "Fan": fan_state,
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                    {"StartAt": "Right", "States": {"Right": {"Type": "Pass", "End": True}}},
                ],
                "End": True,
            },
            "Never": {"Type": "Pass", "End": True},
        },
    }
    done = dmap.run(definition, input=run_input(5, fail_every=2), backend=local, name="told")
    assert done.status == "SUCCEEDED"
    events = control.get_execution_history(done.execution_arn, backend=local)
    base = serve(local)
    with httpx.Client(base_url=base) as client:
        page = client.get(f"/executions/{quote(done.execution_arn, safe=':/')}").text
    history = page[page.index('id="history"') :]
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>(\w+)</td>', history)
    assert rows == [(str(e["id"]), e["type"]) for e in events]
    kinds = [kind for _, kind in rows]
    for kind in ("ExecutionStarted", "MapStateEntered", "MapRunStarted", "MapRunSucceeded", "ExecutionSucceeded"):
        assert kind in kinds
    reached = {
        name: how for how, name in re.findall(r'<li class="state state-(\w+)">\s*<span class="state-name">(\w+)<', page)
    }
    for name in ("Prepare", "Route", "Fan", "Both", "Left", "Right"):  # Left, Right: the Parallel's two paths
        assert reached[name] == "succeeded", name
    assert (reached["Never"], reached["Work"]) == ("unknown", "unknown")  # not taken; children keep no history
