"""TestState: one state of a definition run once on an input, on the local interpreter of this server.

The definition is a single state (``{"Type": "Pass", ...}``) or a whole state machine with
``stateName`` choosing the state (default: its ``StartAt``). Pass, Task (a handler registered in
this server's process), Choice, Wait (not slept), Succeed and Fail run; Map and Parallel are
refused, as are mocks. See :mod:`dmap.interpreter.single` for how Retry and Catch end a test.
"""

from __future__ import annotations

import json
from typing import Any

from ...asl import load
from ...interpreter.single import UNSUPPORTED, run_state
from ..protocol import ApiError, Call, operation, required

LEVELS = ("INFO", "DEBUG", "TRACE")
SINGLE_STATE = "TestState"
"""The name a single-state definition runs under (``$$.State.Name``) when ``stateName`` is not given."""
_DATA = ("input", "afterInputPath", "afterParameters", "result", "afterResultSelector", "afterResultPath", "variables")


def _json(body: dict[str, Any], field: str, default: Any) -> Any:
    text = body.get(field)
    if text is None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        code = "InvalidExecutionInput" if field == "input" else "ValidationException"
        raise ApiError(code, f"{field} is not JSON: {exc}") from None


def _targets(state: dict[str, Any]) -> set[str]:
    """The state names a state can go to (Next, Default, each Choice's and Catcher's Next)."""
    found = {state.get("Next"), state.get("Default")}
    found.update(c.get("Next") for c in state.get("Choices") or [] if isinstance(c, dict))
    found.update(c.get("Next") for c in state.get("Catch") or [] if isinstance(c, dict))
    return {t for t in found if isinstance(t, str)}


def _machine(definition: Any, state_name: str | None) -> tuple[dict[str, Any], str]:
    """A state machine holding the state under test, and its name.

    A single state goes into a machine of its own, every state it names standing in as a Succeed
    state (TestState runs one state: where it would go is only reported).
    """
    if not isinstance(definition, dict):
        raise ApiError("InvalidDefinition", "Invalid State Machine Definition: 'the definition is not a JSON object'")
    if "States" in definition:
        name = state_name or definition.get("StartAt")
        if not isinstance(name, str) or name not in (definition.get("States") or {}):
            raise ApiError("ValidationException", f"the definition has no state {name!r} (stateName)")
        return definition, name
    name = state_name or SINGLE_STATE
    states: dict[str, Any] = {t: {"Type": "Succeed"} for t in _targets(definition) if t != name}
    states[name] = definition
    machine = {"StartAt": name, "States": states}
    if "QueryLanguage" in definition:
        machine["QueryLanguage"] = definition["QueryLanguage"]
    return machine, name


@operation("TestState")
def test_state(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    """Run one state once and return its status, output, next state and (DEBUG, TRACE) its inspection data."""
    level = body.get("inspectionLevel") or "INFO"
    if level not in LEVELS:
        raise ApiError("ValidationException", f"inspectionLevel must be one of {', '.join(LEVELS)}, not {level!r}")
    if body.get("mock") is not None:
        raise ApiError("ValidationException", "dmap's TestState does not support mocks: the state runs for real")
    definition = _json({"definition": required(body, "definition")}, "definition", None)
    value = _json(body, "input", {})
    variables = _json(body, "variables", {})
    if not isinstance(variables, dict):
        raise ApiError("ValidationException", "variables must be a JSON object")
    raw, name = _machine(definition, body.get("stateName"))
    kind = (raw.get("States") or {}).get(name, {}).get("Type") if isinstance(raw.get("States"), dict) else None
    if kind in UNSUPPORTED:
        raise ApiError("ValidationException", f"dmap's TestState does not support {kind} states")
    machine = load(raw)  # a DefinitionError is InvalidDefinition, with dmap's diagnostics
    retries = (body.get("stateConfiguration") or {}).get("retrierRetryCount") or 0
    result = run_state(
        machine,
        name,
        value,
        variables=variables,
        retrier_retry_count=int(retries),
        payload_limit=call.settings.payload_limit,
    )
    out: dict[str, Any] = {"status": result.status}
    if result.status in ("SUCCEEDED", "CAUGHT_ERROR"):
        out["output"] = json.dumps(result.output)
    if result.next_state is not None:
        out["nextState"] = result.next_state
    if result.error is not None:
        out["error"] = result.error
    if result.cause is not None:
        out["cause"] = result.cause
    if level != "INFO":
        inspection: dict[str, Any] = {k: json.dumps(result.inspection[k]) for k in _DATA if k in result.inspection}
        if "errorDetails" in result.inspection:
            inspection["errorDetails"] = result.inspection["errorDetails"]
        out["inspectionData"] = inspection
    return out
