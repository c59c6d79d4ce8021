"""Every ``dmap`` verb's ``--help`` reads as plain text: no reStructuredText markup leaks from a docstring.

Typer prints a command's docstring as it is, so ``dmap serve --help`` showed
````endpoint_url="http://127.0.0.1:8083"```` and ````--import```` with their double backquotes.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from dmap.cli import app

MARKUP = re.compile(r"``|:(?:func|class|meth|mod|data|attr):|^\s*(?:Args|Returns|Raises):", re.MULTILINE)


def verbs(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The argument paths of every command and group of the CLI (``("limits", "set")``...)."""
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():  # a group's (typer's own click has no click.Group)
        found += verbs(sub, (*path, name))
    return found


def test_no_help_text_shows_docstring_markup() -> None:
    runner = CliRunner()
    paths = verbs(typer.main.get_command(app))
    assert ("serve",) in paths and ("limits", "set") in paths
    leaks = {}
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        found = MARKUP.findall(result.output)
        if found:
            leaks[" ".join(path)] = found
    assert not leaks, leaks
