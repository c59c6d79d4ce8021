"""Malformed definitions are refused before anything runs: ``DefinitionError`` / exit 1, every diagnostic, no traceback.

Two corpora: ``tests/asl/invalid`` (definitions with the exact problems the checks must find) and
``bad_inputs/definitions`` (files that are not definitions at all, or whose names and fields look
like console markup). Each runs through ``dmap.run`` and ``dmap validate`` in a subprocess; the
second corpus also through ``dmap run``. The CLI must print every diagnostic exactly as
:func:`dmap.validate` words it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import dmap
from dmap.backends.local import LocalBackend

from .conftest import BAD_INPUTS, HUNG, ROOT, Cli, run_many
from .handlers import CALLS

pytestmark = pytest.mark.timeout(600)  # fans out to many CLI subprocesses: minutes on a busy machine


def _case(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def _has_error(path: Path) -> bool:
    """Whether a corpus definition has an ERROR (a few cases there hold only WARNINGs AWS accepts)."""
    return any(d.severity == "ERROR" for d in dmap.validate(_case(path)["definition"]))


ASL_INVALID = [p for p in sorted((ROOT / "tests" / "asl" / "invalid").glob("*.json")) if _has_error(p)]
DEFINITIONS = BAD_INPUTS / "definitions"
EXPECTED: dict[str, list[dict[str, str]]] = json.loads((DEFINITIONS / "expected.json").read_text("utf-8"))
FILES = sorted(EXPECTED)

#: Corpus cases whose diagnostics quote "[index]" or "['field']": rich takes "[index]" for a style tag.
MARKUP_SWALLOWED = {"catch_result_path", "reference_path_fields", "result_path_not_reference"}


def _params(names: Sequence[Any], bugs: Mapping[Any, str]) -> list[Any]:
    """Params with ids (a path's stem), strict xfail for those with a known bug."""
    return [
        pytest.param(
            name,
            id=name.stem if isinstance(name, Path) else name,
            marks=[pytest.mark.xfail(strict=True, reason=bugs[name])] if name in bugs else [],
        )
        for name in names
    ]


def _lines(diagnostics: list[dmap.Diagnostic]) -> list[str]:
    """How the CLI prints each diagnostic (without colour, as in a pipe)."""
    return [f"{d.severity} {d.location or '/'}: {d.message} ({d.code})" for d in diagnostics]


def test_there_are_at_least_fifty_malformed_definitions() -> None:
    assert len(ASL_INVALID) + len(FILES) >= 50
    assert set(EXPECTED) == {p.name for p in DEFINITIONS.glob("*.asl.json")}


# -- tests/asl/invalid -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ASL_INVALID, ids=[p.stem for p in ASL_INVALID])
def test_dmap_run_refuses_an_invalid_definition_with_every_expected_diagnostic(
    path: Path, local_backend: Callable[..., LocalBackend]
) -> None:
    case = _case(path)
    before = sum(CALLS.values())

    with pytest.raises(dmap.DefinitionError) as raised:
        dmap.run(case["definition"], backend=local_backend())

    found = {(d.code, d.location) for d in raised.value.diagnostics}
    assert {(e["code"], e["location"]) for e in case["expected"]} <= found
    assert all(d.severity == "ERROR" for d in raised.value.diagnostics)
    for d in raised.value.diagnostics:
        assert str(d) in str(raised.value)
    assert sum(CALLS.values()) == before


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cli]:
    """``dmap validate`` of every definition of tests/asl/invalid, run once, a few at a time."""
    folder = tmp_path_factory.mktemp("asl-invalid")
    commands = []
    for path in ASL_INVALID:
        target = folder / f"{path.stem}.asl.json"
        target.write_text(json.dumps(_case(path)["definition"], indent=2), "utf-8")
        commands.append(["validate", str(target)])
    return {path.stem: run for path, run in zip(ASL_INVALID, run_many(commands), strict=True)}


@pytest.mark.slow  # ~70 subprocesses
@pytest.mark.parametrize("path", _params(ASL_INVALID, {}))
def test_dmap_validate_exits_1_printing_every_diagnostic_of_an_invalid_definition(
    path: Path, validated: dict[str, Cli]
) -> None:
    run = validated[path.stem]
    expected = dmap.validate(_case(path)["definition"])

    assert run.code == 1, run.text
    assert "Traceback" not in run.text, run.stderr[-3000:]
    for line in _lines(expected):
        assert line in run.stdout, f"missing {line!r} in:\n{run.stdout}"


# -- bad_inputs/definitions ------------------------------------------------------------------------


@pytest.mark.parametrize("name", _params(FILES, {}))
def test_dmap_run_refuses_a_file_that_is_not_a_definition_with_a_diagnostic(
    name: str, local_backend: Callable[..., LocalBackend]
) -> None:
    with pytest.raises(dmap.DefinitionError) as raised:
        dmap.run(DEFINITIONS / name, backend=local_backend())

    found = {(d.code, d.location) for d in raised.value.diagnostics}
    assert {(e["code"], e["location"]) for e in EXPECTED[name]} <= found


@pytest.fixture(scope="module")
def cli_definitions() -> dict[tuple[str, str], Cli]:
    """``dmap validate`` and ``dmap run`` of every file of bad_inputs/definitions, run once."""
    commands = [[verb, str(DEFINITIONS / name)] for name in FILES for verb in ("validate", "run")]
    return {(args[0], Path(args[1]).name): run for args, run in zip(commands, run_many(commands), strict=True)}


@pytest.mark.parametrize("verb", ["validate", "run"])
@pytest.mark.parametrize("name", _params(FILES, {}))
def test_the_cli_exits_1_printing_each_diagnostic_of_a_file_that_is_not_a_definition(
    name: str, verb: str, cli_definitions: dict[tuple[str, str], Cli]
) -> None:
    run = cli_definitions[(verb, name)]
    printed = run.stdout if verb == "validate" else run.stderr

    assert run.code != HUNG, run.text
    assert "Traceback" not in run.text, run.text[-3000:]
    assert run.code == 1, run.text
    for line in _lines(dmap.validate(DEFINITIONS / name)):
        assert line in printed, f"missing {line!r} in:\n{printed}"
    for expected in EXPECTED[name]:
        assert f"{expected['location'] or '/'}: " in printed and f"({expected['code']})" in printed


def test_dmap_run_and_dmap_validate_agree_on_a_deeply_nested_payload_template(
    local_backend: Callable[..., LocalBackend],
) -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": deep, "End": True}}}
    errors = [d for d in dmap.validate(definition) if d.severity == "ERROR"]

    if errors:  # refused: then dmap.run refuses it the same way, before running
        with pytest.raises(dmap.DefinitionError):
            dmap.run(definition, backend=local_backend())
    else:  # accepted: then it runs
        assert dmap.run(definition, backend=local_backend()).status == "SUCCEEDED"
