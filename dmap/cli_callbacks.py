"""The ``dmap`` verbs of the callback pattern: ``send-task-success``, ``send-task-failure``, ``send-task-heartbeat``.

They mirror ``aws stepfunctions send-task-*`` (positional token, the output as JSON text) and
report errors as every verb does (AWS's code in the message, exit 1). A token of a local-backend
execution cannot be answered from another process: the verbs say so instead of "does not exist".
"""

from __future__ import annotations

from typing import Annotated

import typer

from .cli import BackendOption, app
from .errors import ConfigurationError

Token = Annotated[str, typer.Argument(help="The task token ($$.Task.Token) the waiting task handed out.")]


def _reachable(token: str) -> None:
    from .interpreter.callbacks import decode_token

    if decode_token(token).get("b") == "m":
        raise ConfigurationError(
            "this token belongs to an execution on the local backend, which lives in the process that runs it: "
            "answer it there (dmap.send_task_success) or through that process's `dmap serve` "
            "(aws stepfunctions send-task-success --endpoint-url ...)"
        )


@app.command("send-task-success")
def send_task_success(
    token: Token,
    output: Annotated[str, typer.Argument(help="The task's result, as JSON text.")],
    backend: BackendOption = None,
) -> None:
    """Complete a task waiting for its token with OUTPUT (SendTaskSuccess)."""
    from .callbacks import send_task_success as send

    _reachable(token)
    send(token, output, backend=backend)


@app.command("send-task-failure")
def send_task_failure(
    token: Token,
    error: Annotated[
        str | None, typer.Option(help="The error name Retry/Catch see (States.TaskFailed if none).")
    ] = None,
    cause: Annotated[str | None, typer.Option(help="A longer description of the failure.")] = None,
    backend: BackendOption = None,
) -> None:
    """Fail a task waiting for its token with ERROR and CAUSE (SendTaskFailure)."""
    from .callbacks import send_task_failure as send

    _reachable(token)
    send(token, error, cause, backend=backend)


@app.command("send-task-heartbeat")
def send_task_heartbeat(token: Token, backend: BackendOption = None) -> None:
    """Tell a waiting task its work goes on: its HeartbeatSeconds start again (SendTaskHeartbeat)."""
    from .callbacks import send_task_heartbeat as send

    _reachable(token)
    send(token, backend=backend)
