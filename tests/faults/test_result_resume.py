"""A coordinator that dies after a ResultWriter checkpoint, restarted: the durable result files must survive.

Regression tests of two faults scenario 2 (:mod:`tests.faults.test_coordinator_kills`) found.
Every ``SEGMENT`` records the coordinator finishes the open result files, saves their list and
``results_upto`` with the Map Run, and drops those records from the run store. A restart after a
checkpoint once lost or repeated results:

* the restarted coordinator built a fresh Map Run record instead of reading the saved one, so it
  started the files again at ``SUCCEEDED_0`` — overwriting the durable file whose records had
  left the store — and the manifest lacked them (9,999 of 20,000 items in scenario 2);
* ``results_upto`` was saved one child short (the record that triggered the checkpoint was in the
  file, but counted only once ``drain`` resumed the generator), so a restart wrote it twice.

The crash is injected in-process on the local backend: a journal that raises a ``BaseException``
right after saving the first checkpoint, which unwinds the coordinator like a kill (nothing of dmap
catches it); the same backend then runs the execution again under the same name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dmap
import dmap.results
from dmap.backends.local import LocalBackend
from dmap.config import Settings
from dmap.records import MapRun
from dmap.writers import result_base

from . import flows

ITEMS, SEGMENT = 35, 10


class Crash(BaseException):
    """The coordinator's process dies (nothing in dmap catches a BaseException that is not an Exception)."""


class CrashAfterCheckpoint:
    """Wraps a backend's journal and store: the coordinator dies after its first checkpoint.

    The checkpoint finishes the files and saves the Map Run: that save raises :class:`Crash` once it
    is done, and so does any later ``acquire``. (Waiting for the next ``acquire`` alone was not
    enough: the local pool's threads take staged children themselves, so a short run can finish
    without the coordinator asking for permits again.)
    """

    def __init__(self, backend: LocalBackend) -> None:
        self.journal, self.store, self.checkpointed = backend.journal, backend.store, ""
        backend.journal = _Delegate(self.journal, save_map_run=self._save_map_run)
        backend.store = _Delegate(self.store, acquire=self._acquire)

    def _save_map_run(self, map_run: MapRun) -> None:
        self.journal.save_map_run(map_run)
        if map_run.results_upto > 0 and not self.checkpointed:
            self.checkpointed = map_run.map_run_arn
            raise Crash()

    def _acquire(self, *args: Any, **kwargs: Any) -> Any:
        if self.checkpointed:
            raise Crash()
        return self.store.acquire(*args, **kwargs)

    def disarm(self, backend: LocalBackend) -> None:
        """Give the backend its own journal and store back (the restarted coordinator's)."""
        backend.journal, backend.store = self.journal, self.store


class _Delegate:
    def __init__(self, inner: Any, **overrides: Any) -> None:
        self._inner, self._overrides = inner, overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides.get(name) or getattr(self._inner, name)


@pytest.fixture
def crashed_run(faults_redis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A local Map Run of 35 items that died at its first checkpoint (10 records), ready to be resumed."""
    monkeypatch.setattr(dmap.results, "SEGMENT", SEGMENT)
    root, bucket = tmp_path / "s3", "faults"
    (root / bucket).mkdir(parents=True)
    (root / bucket / flows.ITEMS_KEY).write_bytes(flows.items_jsonl(ITEMS))
    backend = LocalBackend(Settings(s3_root=str(root)), threads=2)
    crash = CrashAfterCheckpoint(backend)
    name, ns = "resume-after-checkpoint", "resume"
    run = {"definition": flows.fault_map(bucket, max_concurrency=2), "input": flows.fault_input(ns)}
    with pytest.raises(Crash):
        dmap.run(run["definition"], input=run["input"], backend=backend, name=name)
    crash.disarm(backend)
    assert crash.checkpointed
    return {"backend": backend, "arn": crash.checkpointed, "root": root, "bucket": bucket, "name": name, **run}


def _records(root: Path, bucket: str, files: dict[str, list[dict[str, Any]]]) -> list[int]:
    """The item indexes in the listed result files, in file order."""
    found = []
    for group in ("SUCCEEDED", "FAILED", "PENDING"):
        for entry in files.get(group, []):
            for record in json.loads((root / bucket / str(entry["Key"])).read_bytes()):
                found.append(int(json.loads(record["Input"])["v"]["i"]))
    return found


def test_a_checkpoint_saves_the_child_up_to_which_its_files_hold_records(crashed_run: dict[str, Any]) -> None:
    map_run = crashed_run["backend"].journal.map_run(crashed_run["arn"])
    assert map_run is not None
    durable = _records(crashed_run["root"], crashed_run["bucket"], map_run.result_files or {})
    assert durable == list(range(SEGMENT))
    assert map_run.results_upto == len(durable)


def test_a_coordinator_restarted_after_a_checkpoint_keeps_the_files_written_before_it(
    crashed_run: dict[str, Any],
) -> None:
    backend = crashed_run["backend"]
    execution = dmap.run(
        crashed_run["definition"], input=crashed_run["input"], backend=backend, name=crashed_run["name"]
    )

    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    (map_run,) = execution.map_runs
    assert map_run.item_counts["succeeded"] == ITEMS
    folder = crashed_run["root"] / crashed_run["bucket"] / result_base(flows.RESULTS_PREFIX, map_run.run_id)
    manifest = json.loads((folder / "manifest.json").read_bytes())
    written = set(_records(crashed_run["root"], crashed_run["bucket"], manifest["ResultFiles"]))
    assert written == set(range(ITEMS))  # none lost (a record written twice is the other bug's test)
