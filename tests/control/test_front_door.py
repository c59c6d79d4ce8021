"""The front door never lies (DESIGN §10 detach, §11): real ``dmap`` CLI processes and real ``dmap worker`` processes.

* ``--detach`` only where it can work: refused on the local backend; on celery the item source is
  checked before anything is recorded, and a relative manifest means the submitter's file.
* ``dmap workers`` lists live workers with their handlers' code hashes and forgets stopped ones.
* A submitter without the handler code can submit; it is told at once when no worker listens and
  when the workers run different code.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

import dmap
from dmap import control
from dmap.store.workers import code_hash

from . import handlers
from .conftest import ROOT, Ctl, Worker, flat, work_input, work_items, work_map

VARIANT = '''
"""CtlWork with other code (a worker that runs an older or newer version of the handler)."""
import dmap
from tests.control import handlers  # noqa: F401 - marks the worker ready for the fixtures


@dmap.task("CtlWork")
def work(event, context):
    return handlers.work(event, context) | {"variant": {variant}}
'''


def _advertised(ctl: Ctl, workers: list[Worker]) -> list[Worker]:
    """Wait until ``workers`` are in the registry (their ready mark and their record come from two receivers
    of the same Celery signal, in an order the fixtures do not control)."""
    pids = {w.pid for w in workers}

    def listed() -> bool:
        return pids <= {w.pid for w in dmap.list_workers(backend=ctl.backend(), queue=ctl.queue)}

    ctl.wait_for(listed, "the workers to advertise themselves")
    return workers


def _names(ctl: Ctl) -> set[str]:
    return {e.name for e in control.list_executions(backend=ctl.backend(), limit=1000)}


def _cli(ctl: Ctl, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m dmap ARGS`` in the test's folder, with ``env`` on top of the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "dmap", *args],
        cwd=ctl.tmp,
        env={**ctl.env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _variant(ctl: Ctl, number: int) -> str:
    """A module in the test's folder that registers CtlWork with code of its own; returns its name."""
    name = f"ctl_variant_{ctl.ns}_{number}"
    (ctl.tmp / f"{name}.py").write_text(VARIANT.replace("{variant}", str(number)), "utf-8")
    return name


def _with_tmp_on_path(ctl: Ctl) -> str:
    return os.pathsep.join([str(ctl.tmp), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def test_detach_on_the_local_backend_is_a_usage_error_and_runs_nothing(ctl: Ctl) -> None:
    definition = ctl.write_json("fan.json", work_map())
    name = ctl.name("local")

    done = ctl.cli("run", str(definition), "--input", json.dumps(work_input(ctl.ns, 2)), "--name", name,
                   "--backend", "local", "--detach")  # fmt: skip

    assert done.returncode == 2, done
    assert flat("the local backend runs the execution in this process") in flat(done.stderr)
    assert "--backendcelery" in flat(done.stderr) and "drop--detach" in flat(done.stderr)
    assert "RUNNING" not in done.stdout
    assert name not in _names(ctl)
    assert ctl.counts("calls") == {}


def test_a_detached_run_with_a_missing_manifest_exits_2_and_records_nothing(ctl: Ctl) -> None:
    definition = ctl.write_json("fan.json", work_map())
    name = ctl.name("missing")

    done = ctl.cli("run", str(definition), "--manifest", "nope/items.json", "--input", json.dumps(work_input(ctl.ns)),
                   "--name", name, "--detach")  # fmt: skip

    assert done.returncode == 2, done
    assert "'nope/items.json'cannotberead" in flat(done.stderr)
    assert str(ctl.tmp / "nope" / "items.json") in flat(done.stderr)
    assert "Traceback" not in done.stderr
    assert name not in _names(ctl)
    assert ctl.conn.llen(ctl.queue) == 0  # no task was sent either


def test_a_detached_run_reads_a_relative_manifest_from_the_submitters_folder(ctl: Ctl) -> None:
    ctl.start_workers(1, concurrency=3)  # started in the repository root: not where the manifest is
    definition = ctl.write_json("fan.json", work_map())
    ctl.write_json("batch/items.json", work_items(5))
    data = ctl.write_json("input.json", work_input(ctl.ns))

    done = ctl.cli("run", str(definition), "--manifest", "batch/items.json", "--input", f"@{data}",
                   "--name", ctl.name("relative"), "--detach", "--output", "json")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "workers read" in done.stderr and "must see the same path" in done.stderr
    arn = json.loads(done.stdout)["executionArn"]
    backend = ctl.backend()
    ctl.wait_for(lambda: backend.journal.execution(arn).status != "RUNNING", "the detached execution to end")
    execution = backend.journal.execution(arn)
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    assert execution.output == [{"i": i, "double": 2 * i} for i in range(5)]
    assert execution.manifest == str(ctl.tmp / "batch" / "items.json")


@pytest.mark.usefixtures("s3_env")
def test_a_detached_run_of_a_missing_s3_object_or_bucket_is_rejected_before_anything_is_recorded(
    ctl: Ctl, bucket: str, s3_client: Any
) -> None:
    backend = ctl.backend()
    definition = work_map()
    data = work_input(ctl.ns)

    with pytest.raises(dmap.SourceNotReadable) as missing:
        dmap.run(definition, f"s3://{bucket}/absent.json", input=data, backend=backend, wait=False,
                 name=ctl.name("key"))  # fmt: skip
    with pytest.raises(dmap.SourceNotReadable) as no_bucket:
        dmap.run(definition, f"s3://{bucket}-gone/runs/", input=data, backend=backend, wait=False,
                 name=ctl.name("bucket"))  # fmt: skip

    assert missing.value.code == "NoSuchKey" and f"s3://{bucket}/absent.json" in str(missing.value)
    assert isinstance(missing.value, dmap.ConfigurationError) and isinstance(missing.value, dmap.StorageError)
    assert no_bucket.value.code == "NoSuchBucket" and f"s3://{bucket}-gone/runs/" in str(no_bucket.value)
    assert not {ctl.name("key"), ctl.name("bucket")} & _names(ctl)
    s3_client.put_object(Bucket=bucket, Key="present.json", Body=json.dumps(work_items(2)).encode())
    accepted = dmap.run(definition, f"s3://{bucket}/present.json", input=data, backend=backend, wait=False,
                        name=ctl.name("ok"))  # fmt: skip
    assert accepted.status == "RUNNING" and ctl.name("ok") in _names(ctl)


def test_dmap_workers_lists_live_workers_with_handler_code_hashes_and_forgets_stopped_ones(ctl: Ctl) -> None:
    polite, killed = _advertised(ctl, ctl.start_workers(2, concurrency=1))

    listed = ctl.json("workers", "--queue", ctl.queue, "--output", "json")
    table = ctl.cli("workers", "--queue", ctl.queue)

    assert sorted(w["pid"] for w in listed) == sorted([polite.pid, killed.pid])
    expected = code_hash(handlers.work)  # the same code hashes alike in every process
    for record in listed:
        assert record["queues"] == [ctl.queue] and record["concurrency"] == 1
        assert record["version"] == dmap.__version__ and record["started"] and record["host"]
        assert record["handlers"] == {"CtlWork": expected}
    assert table.returncode == 0
    assert str(polite.pid) in table.stdout and f"CtlWork{expected}" in flat(table.stdout)
    assert [w.pid for w in dmap.list_workers(backend=ctl.backend(), queue=ctl.queue)] == sorted(
        [polite.pid, killed.pid]
    )

    os.killpg(polite.pid, signal.SIGTERM)  # a clean shutdown leaves the registry at once
    polite.proc.wait(timeout=60)
    assert [w["pid"] for w in ctl.json("workers", "--queue", ctl.queue, "--output", "json")] == [killed.pid]
    killed.kill()  # SIGKILL: nothing leaves; the record expires with its TTL
    ctl.wait_for(lambda: not dmap.list_workers(backend=ctl.backend(), queue=ctl.queue), "the record to expire")
    empty = ctl.cli("workers", "--queue", ctl.queue)
    assert empty.returncode == 0
    assert "no dmap worker is listening" in empty.stdout


def test_dmap_workers_exits_3_when_redis_is_unreachable(ctl: Ctl) -> None:
    done = _cli(ctl, "workers", DMAP_REDIS_URL="redis://127.0.0.1:1/0", DMAP_BROKER_URL="redis://127.0.0.1:1/0")

    assert done.returncode == 3, done
    assert "Redis" in done.stderr and "Traceback" not in done.stderr


def test_a_submitter_without_the_handler_code_runs_on_workers_that_have_it(ctl: Ctl) -> None:
    _advertised(ctl, ctl.start_workers(1, concurrency=2))
    definition = ctl.write_json("fan.json", work_map())
    data = ctl.write_json("input.json", work_input(ctl.ns, 4))
    spec = copy.deepcopy(work_map())  # work_map shares its Task state between calls
    spec["States"]["Fan"]["ItemProcessor"]["States"]["Work"]["Resource"] = "NoSuchHandler"
    unknown = ctl.write_json("unknown.json", spec)

    # DMAP_IMPORTS empty and no --import: this process registers no handler at all.
    done = _cli(ctl, "run", str(definition), "--input", f"@{data}", "--name", ctl.name("remote"), "--output", "json",
                DMAP_IMPORTS="")  # fmt: skip
    detached = _cli(ctl, "run", str(definition), "--input", f"@{data}", "--name", ctl.name("away"), "--detach",
                    "--output", "json", DMAP_IMPORTS="")  # fmt: skip
    refused = _cli(ctl, "run", str(unknown), "--input", f"@{data}", "--name", ctl.name("unknown"), DMAP_IMPORTS="")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == [{"i": i, "double": 2 * i} for i in range(4)]
    assert "warning" not in done.stderr
    assert detached.returncode == 0, detached.stderr
    arn = json.loads(detached.stdout)["executionArn"]
    ctl.wait_for(lambda: ctl.backend().journal.execution(arn).status != "RUNNING", "the detached execution to end")
    assert ctl.backend().journal.execution(arn).status == "SUCCEEDED"
    assert refused.returncode == 1
    assert "'NoSuchHandler'" in refused.stderr and "CtlWork(onworkers)" in flat(refused.stderr)
    assert ctl.name("unknown") not in _names(ctl)


def test_run_warns_at_once_when_no_worker_listens_on_the_queue(ctl: Ctl) -> None:
    definition = ctl.write_json("fan.json", work_map())

    done = ctl.cli("run", str(definition), "--input", json.dumps(work_input(ctl.ns, 1)), "--name", ctl.name("alone"),
                   "--detach")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert f"no dmap worker is listening on queue '{ctl.queue}'" in done.stderr


def test_run_warns_when_workers_run_different_code_for_a_handler_than_each_other_or_this_machine(ctl: Ctl) -> None:
    (current,) = _advertised(ctl, ctl.start_workers(1, concurrency=2))
    ctl.extra_env.update(DMAP_IMPORTS=_variant(ctl, 1), PYTHONPATH=_with_tmp_on_path(ctl))
    (stale,) = _advertised(ctl, ctl.start_workers(1, concurrency=2))
    ctl.extra_env.pop("DMAP_IMPORTS")
    definition = ctl.write_json("fan.json", work_map())
    data = ctl.write_json("input.json", work_input(ctl.ns, 2))

    same_as_one = ctl.cli("run", str(definition), "--input", f"@{data}", "--name", ctl.name("a"), "--detach")
    newer = _cli(ctl, "run", str(definition), "--input", f"@{data}", "--name", ctl.name("b"), "--detach",
                 DMAP_IMPORTS=_variant(ctl, 2))  # fmt: skip

    assert same_as_one.returncode == 0 and newer.returncode == 0, (same_as_one.stderr, newer.stderr)
    text = flat(same_as_one.stderr)
    assert flat("workers disagree on handler code: CtlWork has 2 versions across workers") in text
    assert f":{current.pid}" in text and f":{stale.pid}" in text
    assert "restartthem" not in text  # this machine runs the code one of them runs
    assert flat("the workers run different code for handler CtlWork than this machine: restart them") in flat(
        newer.stderr
    )


def test_the_python_api_logs_the_same_warnings(ctl: Ctl, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="dmap.admission"):
        execution = dmap.run(work_map(), input=work_input(ctl.ns, 1), backend=ctl.backend(), wait=False,
                             name=ctl.name("api"))  # fmt: skip

    assert execution.status == "RUNNING"
    assert f"no dmap worker is listening on queue '{ctl.queue}'" in caplog.text


def test_a_redrive_after_a_local_fix_warns_that_the_workers_still_run_the_old_code(ctl: Ctl) -> None:
    _advertised(ctl, ctl.start_workers(1, concurrency=2))
    definition = ctl.write_json("fan.json", work_map())
    data = ctl.write_json("input.json", work_input(ctl.ns, 3, failing=[1]))
    first = ctl.cli("run", str(definition), "--input", f"@{data}", "--name", ctl.name("fix"), "--output", "json")
    failed = json.loads(first.stdout)
    assert first.returncode == 1 and failed["status"] == "FAILED", first.stderr

    # The handler was "fixed" on this machine only: the worker was not restarted.
    redrive = _cli(ctl, "redrive-execution", failed["executionArn"], "--output", "json",
                   DMAP_IMPORTS=_variant(ctl, 3), PYTHONPATH=_with_tmp_on_path(ctl))  # fmt: skip

    assert flat("the workers run different code for handler CtlWork than this machine: restart them") in flat(
        redrive.stderr
    )
    assert redrive.returncode == 1 and json.loads(redrive.stdout)["status"] == "FAILED"  # as the warning said
