"""Malformed item sources fail the Map Run with ``States.ItemReaderFailed`` naming where — never a crash or a hang.

Every file of ``bad_inputs/manifests`` runs three ways: as the ``ItemReader`` of a DISTRIBUTED Map
over ``DMAP_S3_ROOT``, as ``dmap.run(manifest=<file>)``, and as ``dmap run --manifest <file>`` in a
subprocess. The cause must name the object and, where the format has one, the line or byte. A
ragged CSV is not an error (AWS: missing fields are ``""``, extra fields are dropped).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import dmap
from dmap.backends.local import LocalBackend

from .conftest import BAD_INPUTS, BUCKET, HUNG, Cli, run_many
from .flows import distributed_map, object_reader

pytestmark = pytest.mark.timeout(600)  # fans out to many CLI subprocesses: minutes on a busy machine

MANIFESTS = BAD_INPUTS / "manifests"


@dataclass(frozen=True)
class Case:
    """One bad manifest: its file, how it is read, and what its cause must say besides the object."""

    name: str
    input_type: str
    where: tuple[str, ...] = ()
    bug: str | None = None
    cli_bug: str | None = None

    @property
    def uri(self) -> str:
        return f"S3://{BUCKET}/{self.name}"


CASES = [
    Case("truncated.json", "JSON", ("premature EOF", "byte ")),
    Case("invalid_utf8.json", "JSON", ("line 3",)),
    Case("invalid_utf8.jsonl", "JSONL", ("UTF-8", "line 2")),
    Case("invalid_utf8.csv", "CSV", ("UTF-8", "line 3")),
    Case("not_json_line.jsonl", "JSONL", ("line 3",)),
    Case("deep.json", "JSON", ()),
    Case("deep.jsonl", "JSONL", ("line 2",)),
    Case("overflow.jsonl", "JSONL", ("line 2",)),
    Case("unclosed_quote.csv", "CSV", ("line 3", "never closed")),
    Case("empty.json", "JSON", ("byte 0",)),
    Case("control_char.jsonl", "JSONL", ("line 2",)),
    Case("not_gzip.jsonl.gz", "JSONL", ("GZIP",)),
    Case("truncated.jsonl.gz", "JSONL", ("end-of-stream",)),
    Case("truncated.csv.gz", "CSV", ("end-of-stream",)),
    Case("truncated.json.gz", "JSON", ("end-of-stream",)),
    Case("truncated.jsonl.zst", "JSONL", ("truncated",)),
]


def params(cases: list[Case], *, cli: bool = False) -> list[object]:
    """Cases as pytest params, strict xfail where a known bug stands in the way."""
    found: list[object] = []
    for case in cases:
        bug = (case.cli_bug or case.bug) if cli else case.bug
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        found.append(pytest.param(case, id=case.name, marks=marks))
    return found


def test_the_corpus_has_a_case_for_every_bad_manifest_file() -> None:
    files = {p.name for p in MANIFESTS.iterdir()} - {"ragged.csv"}
    assert files == {c.name for c in CASES}


def assert_reader_failed(execution: dmap.Execution, case: Case) -> None:
    assert execution.status == "FAILED", execution.output
    assert execution.error == "States.ItemReaderFailed", execution.cause
    cause = execution.cause or ""
    assert case.uri in cause, cause
    for where in case.where:
        assert where in cause, cause
    assert "Traceback" not in cause
    assert [m.status for m in execution.map_runs] == ["FAILED"]
    assert execution.map_runs[0].error == "States.ItemReaderFailed"


@pytest.mark.parametrize("case", params(CASES))
def test_a_bad_item_reader_object_fails_the_map_run_naming_where(
    case: Case, s3root: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    shutil.copy(MANIFESTS / case.name, s3root / BUCKET / case.name)
    definition = distributed_map(reader=object_reader(BUCKET, case.name, case.input_type))

    execution = dmap.run(definition, backend=local_backend())

    assert_reader_failed(execution, case)


@pytest.mark.parametrize("case", params(CASES))
def test_a_bad_manifest_file_fails_the_map_run_naming_where(
    case: Case, tmp_path: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    path = tmp_path / BUCKET / case.name  # a local manifest is read as S3://<its folder>/<its name>
    path.parent.mkdir()
    shutil.copy(MANIFESTS / case.name, path)

    execution = dmap.run(distributed_map(), manifest=path, backend=local_backend())

    assert_reader_failed(execution, case)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cli]:
    """``dmap run DEFINITION --manifest FILE --output json`` for every case, run once, a few at a time."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / BUCKET).mkdir()
    definition = folder / "fan.asl.json"
    definition.write_text(json.dumps(distributed_map()), "utf-8")
    commands = []
    for case in CASES:
        shutil.copy(MANIFESTS / case.name, folder / BUCKET / case.name)
        commands.append(
            [
                "run",
                str(definition),
                "--manifest",
                str(folder / BUCKET / case.name),
                "--import",
                "tests.hardening.handlers",
                "--output",
                "json",
            ]
        )
    runs = run_many(commands, timeout=60)  # each takes about a second; a hung one costs the whole timeout
    return {case.name: run for case, run in zip(CASES, runs, strict=True)}


@pytest.mark.slow  # a subprocess per case, and the known hang costs its whole timeout
@pytest.mark.parametrize("case", params(CASES, cli=True))
def test_dmap_run_with_a_bad_manifest_exits_1_with_the_cause_and_no_traceback(
    case: Case, cli_runs: dict[str, Cli]
) -> None:
    run = cli_runs[case.name]

    assert run.code != HUNG, f"dmap run hung:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.text, run.stderr[-3000:]
    assert run.code == 1, run.text[-3000:]
    described = json.loads(run.stdout)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.ItemReaderFailed"
    assert case.uri in described["cause"]
    for where in case.where:
        assert where in described["cause"]


def test_a_ragged_csv_is_not_an_error_missing_fields_are_empty_and_extra_fields_dropped(
    s3root: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    shutil.copy(MANIFESTS / "ragged.csv", s3root / BUCKET / "ragged.csv")
    definition = distributed_map(reader=object_reader(BUCKET, "ragged.csv", "CSV"), MaxConcurrency=1)

    execution = dmap.run(definition, backend=local_backend())

    assert execution.status == "SUCCEEDED", execution.cause
    assert [entry["event"] for entry in execution.output] == [
        {"id": "0", "name": "short", "colour": ""},
        {"id": "1", "name": "long", "colour": "red"},
        {"id": "2", "name": "exact", "colour": "blue"},
    ]


@pytest.mark.timeout(60)  # a guard: a Map over no items once never ended
@pytest.mark.parametrize("source", ["state input", "empty.json", "empty.jsonl", "listing"])
def test_a_source_of_no_items_succeeds_with_an_empty_result(
    source: str, s3root: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    (s3root / BUCKET / "empty.json").write_text("[]", "utf-8")
    (s3root / BUCKET / "empty.jsonl").write_text("", "utf-8")
    if source == "state input":
        definition = distributed_map()
    elif source == "listing":
        listing = {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": BUCKET, "Prefix": "no/"}}
        definition = distributed_map(reader=listing)
    else:
        definition = distributed_map(reader=object_reader(BUCKET, source, source.rsplit(".", 1)[1].upper()))

    execution = dmap.run(definition, input=[], backend=local_backend())

    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output == []
