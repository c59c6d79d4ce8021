"""Interpreter benchmark: ``python -m bench.interpreter`` — dmap's ASL interpreter against moto's.

One child-sized workflow of 5 states (Pass with Parameters and ``States.MathAdd``, a Choice, two
Pass branches, a Lambda Task) runs ``--executions`` times on each interpreter in this process; each
execution passes through 4 states. moto runs its vendored copy of LocalStack's interpreter
(``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``) with its Docker-free
Lambda, which echoes its input; dmap runs a registered handler that does the same. moto starts an
execution on a thread, so each one is joined before the next (no polling). The outputs of both are
compared once. Prints states/s and the ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from collections.abc import Sequence
from typing import Any

import dmap
from dmap.interpreter import Registry, Runtime, execute

ACCOUNT, REGION = "123456789012", "us-east-1"
FUNCTION = "BenchEcho"
STATES_PER_EXECUTION = 4

DEFINITION: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Pass",
            "Parameters": {"value.$": "$.value", "sum.$": "States.MathAdd($.value, 7)", "tag": "bench"},
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.sum", "NumericGreaterThan": 10, "Next": "Big"}],
            "Default": "Small",
        },
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "Next": "Work"},
        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "Next": "Work"},
        "Work": {"Type": "Task", "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}", "End": True},
    },
}


def definition(task: bool) -> dict[str, Any]:
    """The workflow; without ``task`` its Task state becomes a Pass (the interpreters alone, no Lambda call)."""
    if task:
        return DEFINITION
    states = dict(DEFINITION["States"])
    states["Work"] = {"Type": "Pass", "End": True}
    return {**DEFINITION, "States": states}


def emit(line: str = "") -> None:
    """One line of the report on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_dmap(executions: int, task: bool = True) -> tuple[float, Any]:
    """Seconds for ``executions`` runs of the workflow on dmap's interpreter, and the last output."""
    handlers = Registry()
    handlers.register(FUNCTION, lambda event, context: event)
    machine = dmap.load(definition(task))
    runtime = Runtime(registry=handlers)
    output: Any = None
    start = time.perf_counter()
    for n in range(executions):
        result = execute(machine, {"value": n % 10}, runtime=runtime)
        output = result.output
    return time.perf_counter() - start, output


def _lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def run_moto(executions: int, task: bool = True) -> tuple[float, Any]:
    """Seconds for ``executions`` runs of the workflow on moto's interpreter, and the last output."""
    import boto3
    from moto import mock_aws
    from moto.stepfunctions.parser.utils import TMP_THREADS
    from moto.stepfunctions.responses import get_backend

    config: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=FUNCTION,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": _lambda_zip()},
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(name="bench", definition=json.dumps(definition(task)), roleArn=role)[
            "stateMachineArn"
        ]
        backend = get_backend(ACCOUNT, REGION)
        output: Any = None
        start = time.perf_counter()
        for n in range(executions):
            mark = len(TMP_THREADS)
            execution: Any = backend.start_execution(arn, name=f"e{n}", execution_input=json.dumps({"value": n % 10}))
            TMP_THREADS[mark].join()  # the execution's own thread, appended by start()
            if execution.exec_status is None or execution.exec_status.value != "SUCCEEDED":
                raise RuntimeError(f"moto execution {n} ended {execution.exec_status}: {execution.error}")
            output = execution.output
            del TMP_THREADS[:]
        elapsed = time.perf_counter() - start
    return elapsed, json.loads(output) if isinstance(output, str) else output


def main(argv: Sequence[str] | None = None) -> int:
    """Run both interpreters and print states/s and the ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench.interpreter", description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=2000, help="executions per interpreter")
    parser.add_argument("--moto-executions", type=int, default=300, help="executions on moto (it is slower)")
    args = parser.parse_args(argv)

    run_dmap(50)  # warm-up: path compilation caches
    emit(f"workflow: 5 states (Pass+Parameters+MathAdd, Choice, Pass x2, Lambda Task), {STATES_PER_EXECUTION} per run")
    for task, title in ((True, "with the Lambda Task"), (False, "Task replaced by a Pass (interpreters alone)")):
        dmap_seconds, dmap_output = run_dmap(args.executions, task)
        moto_seconds, moto_output = run_moto(args.moto_executions, task)
        dmap_rate = args.executions * STATES_PER_EXECUTION / dmap_seconds
        moto_rate = args.moto_executions * STATES_PER_EXECUTION / moto_seconds
        emit(f"-- {title}")
        emit(
            f"dmap: {args.executions} executions in {dmap_seconds:.2f} s = {dmap_rate:,.0f} states/s "
            f"({1e6 * dmap_seconds / args.executions:,.0f} us per execution)"
        )
        emit(
            f"moto: {args.moto_executions} executions in {moto_seconds:.2f} s = {moto_rate:,.0f} states/s "
            f"({1e6 * moto_seconds / args.moto_executions:,.0f} us per execution)"
        )
        emit(f"ratio: dmap is {dmap_rate / moto_rate:.1f} x moto")
        emit(f"same output for the last input: {dmap_output == moto_output} (dmap {dmap_output}, moto {moto_output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
