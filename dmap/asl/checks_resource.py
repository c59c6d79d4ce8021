"""The form of a Task ``Resource``: what AWS accepts, and which of AWS's forms dmap cannot run.

Owns the Lambda forms (``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` and the
optimized ``arn:aws:states:::lambda:invoke``), activities, and the warning for a Resource AWS would
refuse (a bare handler name, which dmap still runs when a handler is registered under it). It does
not own whether a handler is registered or an integration enabled: that needs the registry and the
settings, and ``dmap.interpreter.tasks.check_resources`` reports it before a run.
"""

from __future__ import annotations

import json
import re

from .checks_common import Report, StateCtx

#: Diagnostic codes of this module.
NOT_AN_AWS_ARN = "NOT_AN_AWS_ARN"
INVALID_RESOURCE = "INVALID_RESOURCE"
UNSUPPORTED_RESOURCE = "UNSUPPORTED_RESOURCE"

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_LAMBDA_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]+:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)
_LAMBDA_SERVICE = re.compile(r"arn:aws[a-z-]*:lambda:")
_ACTIVITY = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]+:activity:.+")
_EXAMPLE_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"
_LAMBDA_FORMS = (
    f"AWS's Lambda resources are {LAMBDA_INVOKE} (with Parameters/Arguments FunctionName and Payload), "
    f"{LAMBDA_INVOKE}.waitForTaskToken (callback) and a function ARN such as {_EXAMPLE_ARN.format('NAME')}"
)


def check_task_resource(report: Report, ctx: StateCtx) -> None:
    """Report a Task Resource AWS would refuse, or that names a Lambda form dmap does not run.

    Args:
        report: Where diagnostics go.
        ctx: The state (only Task states with a string Resource are checked).
    """
    resource = ctx.body.get("Resource")
    if ctx.type != "Task" or not isinstance(resource, str):
        return
    loc = (*ctx.loc, "Resource")
    if not resource.startswith("arn:"):
        name = resource or "NAME"
        report.warning(
            NOT_AN_AWS_ARN,
            f"Resource {resource!r} is not an ARN, and AWS refuses it (dmap runs it when a handler is registered "
            f"under that name): use {_EXAMPLE_ARN.format(name)!r}, or {LAMBDA_INVOKE!r} with "
            f'"FunctionName": {json.dumps(name)}; dmap finds the handler registered as {name!r} either way',
            loc,
        )
    elif resource.startswith("arn:aws:states:::lambda:"):
        _lambda_integration(report, resource, loc)
    elif _LAMBDA_SERVICE.match(resource):
        if not _LAMBDA_ARN.fullmatch(resource):
            report.warning(
                NOT_AN_AWS_ARN,
                f"Resource {resource!r} is not a Lambda function ARN AWS accepts: "
                f"arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION_OR_ALIAS], e.g. {_EXAMPLE_ARN.format('NAME')}",
                loc,
            )
    elif _ACTIVITY.fullmatch(resource):
        report.error(
            UNSUPPORTED_RESOURCE,
            f"Resource {resource!r} is a Step Functions activity, which dmap does not run (nothing polls it): "
            f"do the work in a handler registered with @dmap.task and call it with {LAMBDA_INVOKE!r}",
            loc,
        )
    elif not resource.startswith("arn:aws:states:::"):
        report.warning(
            NOT_AN_AWS_ARN,
            f"Resource {resource!r} is not a Task resource AWS accepts: use a Lambda function ARN "
            f"({_EXAMPLE_ARN.format('NAME')}), {LAMBDA_INVOKE!r} or an arn:aws:states::: service integration",
            loc,
        )


def _lambda_integration(report: Report, resource: str, loc: tuple[str | int, ...]) -> None:
    """The optimized Lambda integration: only request-response ``lambda:invoke`` runs on dmap."""
    if resource == LAMBDA_INVOKE:
        return
    if resource == f"{LAMBDA_INVOKE}.waitForTaskToken":
        return  # the callback pattern: dmap.interpreter.callbacks runs it
    action = resource.removeprefix("arn:aws:states:::lambda:")
    hint = ""
    if action.startswith("invoke."):
        hint = f"; Lambda has no {action.removeprefix('invoke')!r} pattern"
    elif action.lower().startswith("invokeasync"):
        hint = "; Lambda's deprecated InvokeAsync API has no Step Functions integration"
    report.error(
        INVALID_RESOURCE,
        f"{resource!r} is not a resource AWS knows{hint}. {_LAMBDA_FORMS}",
        loc,
    )
