"""Names as Step Functions spells them for AWS SDK integrations, and the boto3 names behind them.

Step Functions runs ``aws-sdk`` integrations on the AWS SDK for Java v2, and its names come from
that SDK's code generator: the service in a Resource is the SDK module name
(``arn:aws:states:::aws-sdk:sfn:startExecution``, boto3's ``stepfunctions``), and an error is
``<ServiceName>.<ExceptionName>`` in PascalCase with an ``Exception`` suffix even where the service's
own error code has none (``S3.NoSuchKeyException``, ``DynamoDb.ConditionalCheckFailedException``,
``Sfn.ExecutionDoesNotExistException``). An error the service model does not declare is the
service's base exception (``S3.S3Exception``). This module ports the generator's naming rules
(``CodegenNamingUtils.pascalCase`` and ``DefaultNamingStrategy``) and maps module names to boto3's.
It does not call any service.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.model import ServiceModel

#: Step Functions' (Java SDK module) service names that differ from boto3's, hyphens aside. Derived
#: from every botocore model's ``serviceId`` with :func:`service_name` (lower-cased).
SFN_TO_BOTO = {
    "applicationdiscovery": "discovery",
    "cloudwatchlogs": "logs",
    "cognitoidentityprovider": "cognito-idp",
    "costandusagereport": "cur",
    "costexplorer": "ce",
    "databasemigration": "dms",
    "directory": "ds",
    "directoryservicedata": "ds-data",
    "elasticloadbalancing": "elb",
    "elasticloadbalancingv2": "elbv2",
    "elasticsearch": "es",
    "eventbridge": "events",
    "iotdataplane": "iot-data",
    "iotjobsdataplane": "iot-jobs-data",
    "lexmodelbuilding": "lex-models",
    "lexmodelsv2": "lexv2-models",
    "lexruntimev2": "lexv2-runtime",
    "marketplacemetering": "meteringmarketplace",
    "migrationhub": "mgh",
    "pinpointsmsvoice": "sms-voice",
    "serverlessapplicationrepository": "serverlessrepo",
    "sfn": "stepfunctions",
    "simpledb": "sdb",
}


def split_words(text: str) -> list[str]:
    """Split on word boundaries like the Java SDK's generator (``DynamoDB`` -> ``Dynamo DB``)."""
    result = re.sub(r"[^A-Za-z0-9]+", " ", text)
    result = re.sub(r"([^a-z]{2,})v([0-9]+)", r"\1 v\2 ", result)
    result = re.sub(r"([^A-Z]{2,})V([0-9]+)", r"\1 V\2 ", result)
    result = " ".join(re.split(r"(?<=[a-z])(?=[A-Z](?:[a-zA-Z]|[0-9]))", result))
    result = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", result)
    result = re.sub(r"([0-9])([a-zA-Z])", r"\1 \2", result)
    return re.sub(r" +", " ", result).strip().split(" ")


def pascal_case(text: str) -> str:
    """``DynamoDB`` -> ``DynamoDb``, ``ACM PCA`` -> ``AcmPca``, ``NoSuchKey`` -> ``NoSuchKey``."""
    return "".join(word.lower().capitalize() for word in split_words(text) if word)


def service_name(service_id: str) -> str:
    """The Java SDK's service name of a model's ``serviceId``: ``SFN`` -> ``Sfn``, ``CloudWatch Logs`` -> ..."""
    name = pascal_case(service_id)
    for prefix in ("Amazon", "Aws"):
        name = name.removeprefix(prefix)
    return name.removesuffix("Service")


def exception_name(shape_name: str) -> str:
    """The Java SDK's exception class of an error shape: ``NoSuchKey`` -> ``NoSuchKeyException``."""
    if shape_name.endswith("Fault"):
        return pascal_case(shape_name.removesuffix("Fault")) + "Exception"
    if shape_name.endswith("Exception"):
        return pascal_case(shape_name)
    return pascal_case(shape_name) + "Exception"


def error_name(model: ServiceModel, code: str, *, operation: str | None = None, status: int | None = None) -> str:
    """The Step Functions error name of a service error.

    Args:
        model: The botocore service model.
        code: The service's error code (``NoSuchKey``, ``ConditionalCheckFailedException``, ``404``).
        operation: The operation that failed, to name a bodiless error (a HEAD's bare ``404``).
        status: Its HTTP status.

    Returns:
        ``<Service>.<Exception>``: the declared error's exception, else the service's base exception.
    """
    service = service_name(model.service_id)
    shape = _declared_errors(model).get(code)
    if shape is None and code.isdigit() and operation is not None:
        # A HEAD response has no body, so S3 answers a bare status; the SDK names it by the one error
        # the operation declares (HeadObject: NoSuchKey, HeadBucket: NoSuchBucket).
        declared = model.operation_model(operation).error_shapes
        if len(declared) == 1 and status == 404:
            shape = declared[0].name
    return f"{service}.{exception_name(shape)}" if shape else f"{service}.{service}Exception"


_DECLARED: dict[tuple[str, str], dict[str, str]] = {}


def _declared_errors(model: ServiceModel) -> dict[str, str]:
    """Error code or shape name -> shape name, of every error the service model declares (cached)."""
    key = (model.service_name, model.api_version)
    found = _DECLARED.get(key)
    if found is None:
        found = {}
        for shape in model.error_shapes:
            found[shape.name] = shape.name
            code = getattr(shape, "error_code", None)
            if isinstance(code, str) and code:
                found.setdefault(code, shape.name)
        _DECLARED[key] = found
    return found


#: boto3's names that Step Functions spells differently, to point at the right spelling.
BOTO_TO_SFN = {boto.replace("-", ""): sfn for sfn, boto in SFN_TO_BOTO.items()}


@lru_cache(maxsize=1)
def _available() -> frozenset[str]:
    import botocore.session

    return frozenset(botocore.session.get_session().get_available_services())


def boto_service(sfn_service: str) -> str | None:
    """boto3's name of a Step Functions ``aws-sdk`` service name (``sfn`` -> ``stepfunctions``), or None.

    Only Step Functions' spelling is accepted (``sfn``, not ``stepfunctions``), so a definition that
    runs on dmap also runs on AWS.
    """
    name = sfn_service.lower()
    if name in SFN_TO_BOTO:
        return SFN_TO_BOTO[name]
    if name in BOTO_TO_SFN:
        return None
    return next((s for s in sorted(_available()) if s.replace("-", "") == name), None)


def suggestions(sfn_service: str, limit: int = 3) -> list[str]:
    """Step Functions service names close to an unknown one, for an error message."""
    import difflib

    name = sfn_service.lower()
    if name.replace("-", "") in BOTO_TO_SFN:
        return [BOTO_TO_SFN[name.replace("-", "")]]
    names = ({s.replace("-", "") for s in _available()} - set(BOTO_TO_SFN)) | set(SFN_TO_BOTO)
    return difflib.get_close_matches(name.replace("-", ""), sorted(names), n=limit)
