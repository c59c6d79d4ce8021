"""ListExecutions of a state machine ARN that names nothing is ``StateMachineDoesNotExist``, as on AWS.

dmap answered an empty list for any name, so that executions the CLI started under a name (which
have no registry record) can be listed. It now lists a name that has either a registered state
machine or executions in the journal, and answers AWS's error for a name that has neither.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.control.conftest import Ctl

from .conftest import ACCOUNT, REGION
from .flows import ROLE

PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def error_code(call: Any, **kwargs: Any) -> str:
    """The AWS error code ``call(**kwargs)`` raises (fails the test if it succeeds)."""
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return str(raised.value.response["Error"]["Code"])


def machine_arn(name: str) -> str:
    """A state machine ARN as a caller of this test's region builds it."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


@pytest.mark.parametrize("backend", ["local", "celery"])
def test_list_executions_of_an_unknown_state_machine_is_an_error_and_a_known_one_lists(
    backend: str, serve: Any, ctl: Ctl
) -> None:
    sfn = serve(backend).client()
    nothing = machine_arn(f"{ctl.ns}-nothing")
    assert error_code(sfn.list_executions, stateMachineArn=nothing) == "StateMachineDoesNotExist"
    assert error_code(sfn.list_executions, stateMachineArn=nothing, statusFilter="FAILED") == (
        "StateMachineDoesNotExist"
    )
    made = sfn.create_state_machine(name=f"{ctl.ns}-empty", definition=json.dumps(PASS), roleArn=ROLE)
    assert sfn.list_executions(stateMachineArn=made["stateMachineArn"])["executions"] == []  # registered, none ran
    # Executions outlive their state machine's record: they are still listed by its ARN.
    gone = sfn.create_state_machine(name=f"{ctl.ns}-gone", definition=json.dumps(PASS), roleArn=ROLE)
    arn = sfn.start_execution(stateMachineArn=gone["stateMachineArn"], name="kept")["executionArn"]
    sfn.delete_state_machine(stateMachineArn=gone["stateMachineArn"])
    listed = sfn.list_executions(stateMachineArn=gone["stateMachineArn"])["executions"]
    assert [e["executionArn"] for e in listed] == [arn]
    # A name sharing the prefix of one that ran is still unknown.
    assert error_code(sfn.list_executions, stateMachineArn=machine_arn(f"{ctl.ns}-gon")) == "StateMachineDoesNotExist"


def test_executions_the_cli_started_under_a_name_are_listed(serve: Any, ctl: Ctl) -> None:
    sfn = serve("celery").client()
    definition = ctl.write_json(f"{ctl.ns}-cli.json", PASS)  # filed under the file's stem, no registry record
    done = ctl.cli("run", str(definition), "--name", "by-cli")
    assert done.returncode == 0, done.stderr
    listed = sfn.list_executions(stateMachineArn=machine_arn(f"{ctl.ns}-cli"))["executions"]
    assert [(e["name"], e["status"]) for e in listed] == [("by-cli", "SUCCEEDED")]
