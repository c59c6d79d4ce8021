"""Map-state checks: processing mode, DISTRIBUTED-only fields, ItemReader, ItemBatcher, ResultWriter and Label.

Owns the cross-field rules of a Map state (AWS reference §1.1, §1.3, §1.5, §1.8, §1.9). It does
not own the ItemProcessor's own graph (walked as a nested machine by ``checks.py``), path syntax
(``checks_paths``) or the uniqueness of labels across the definition (``checks.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .checks_common import (
    DISTRIBUTED_ONLY,
    EXCLUSIVE,
    INVALID_LABEL,
    ITEMS_PATH_IGNORED,
    MISSING,
    SCHEMA,
    Loc,
    Report,
    StateCtx,
    as_mapping,
    exclusive,
    is_int,
    jsonata_body,
)

MAX_LABEL = 40
MAX_BATCH_BYTES = 262_144
#: Fields that only a DISTRIBUTED Map understands.
DISTRIBUTED_ONLY_FIELDS = (
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "Label",
)
_READER = re.compile(r"^arn:aws[a-z-]*:states:::s3:(getObject|listObjectsV2)$")
_WRITER = re.compile(r"^arn:aws[a-z-]*:states:::s3:putObject$")
# AWS's forbidden label characters: whitespace, ? * < > { } [ ] \ : ; , | ^ ~ $ # % & ` " and control characters.
_LABEL_FORBIDDEN = re.compile(r"[\s?*<>{}\[\]\\:;,|^~$#%&`\"\u0000-\u001f\u007f-\u009f]")


def check_map(report: Report, ctx: StateCtx, *, in_express: bool) -> bool:
    """Check one Map state.

    Args:
        report: Where diagnostics go.
        ctx: The Map state.
        in_express: True when the Map sits inside an EXPRESS child workflow.

    Returns:
        Whether the Map's own ItemProcessor runs inside an EXPRESS child workflow.
    """
    body, loc = ctx.body, ctx.loc
    child_express = _check_mode(report, body, loc, in_express)
    exclusive(report, body, loc, "MaxConcurrency", "MaxConcurrencyPath")
    exclusive(report, body, loc, "ToleratedFailureCount", "ToleratedFailureCountPath")
    exclusive(report, body, loc, "ToleratedFailurePercentage", "ToleratedFailurePercentagePath")
    if "ItemSelector" in body and "Parameters" in body:
        report.error(
            EXCLUSIVE,
            "'Parameters' is the legacy name of 'ItemSelector': keep only ItemSelector",
            (*loc, "Parameters"),
        )
    items = body.get("Items")
    if ctx.jsonata and "Items" in body and not isinstance(items, list | Mapping) and jsonata_body(items) is None:
        report.error(
            SCHEMA,
            f'Items takes an array, an object or a "{{% expression %}}" that evaluates to one, got {items!r}',
            (*loc, "Items"),
        )
    if "ItemReader" in body and "ItemsPath" in body and not ctx.jsonata:
        report.warning(
            ITEMS_PATH_IGNORED,
            "ItemsPath is ignored when an ItemReader is set (AWS reads the items from S3 unchanged): remove "
            "ItemsPath, or use ReaderConfig.ItemsPointer to pick a nested array of a JSON file",
            (*loc, "ItemsPath"),
        )
    params_key = "Arguments" if ctx.jsonata else "Parameters"
    reader = as_mapping(body.get("ItemReader"))
    if reader is not None:
        _check_reader(report, reader, (*loc, "ItemReader"), params_key)
    batcher = as_mapping(body.get("ItemBatcher"))
    if batcher is not None:
        _check_batcher(report, batcher, (*loc, "ItemBatcher"))
    writer = as_mapping(body.get("ResultWriter"))
    if writer is not None:
        _check_writer(report, writer, (*loc, "ResultWriter"), params_key)
    label = body.get("Label")
    if isinstance(label, str):
        _check_label(report, label, (*loc, "Label"))
    return child_express


def _check_mode(report: Report, body: Mapping[str, Any], loc: Loc, in_express: bool) -> bool:
    """ItemProcessor vs Iterator, ProcessorConfig, DISTRIBUTED-only fields; returns the child's EXPRESS-ness."""
    child_express = in_express
    if "ItemProcessor" in body and "Iterator" in body:
        report.error(
            EXCLUSIVE, "'Iterator' is the legacy name of 'ItemProcessor': keep only ItemProcessor", (*loc, "Iterator")
        )
    elif "ItemProcessor" not in body and "Iterator" not in body:
        report.error(MISSING, "a Map state needs 'ItemProcessor': the states to run for each item", loc)
    key = "ItemProcessor" if "ItemProcessor" in body else "Iterator"
    processor = as_mapping(body.get(key))
    config = as_mapping(processor.get("ProcessorConfig")) if processor is not None else None
    mode = config.get("Mode", "INLINE") if config is not None else "INLINE"
    if config is not None and mode == "DISTRIBUTED":
        config_loc = (*loc, key, "ProcessorConfig")
        execution = config.get("ExecutionType")
        if "ExecutionType" not in config:
            report.error(
                MISSING,
                'a DISTRIBUTED Map needs \'ExecutionType\': "STANDARD" or "EXPRESS" (the kind of child workflow)',
                config_loc,
            )
        if in_express:
            report.error(
                SCHEMA,
                "a DISTRIBUTED Map can't run inside an EXPRESS child workflow: make the enclosing Map's "
                "ExecutionType STANDARD, or make this Map INLINE",
                (*config_loc, "Mode"),
            )
        child_express = in_express or execution == "EXPRESS"
    elif mode == "INLINE":
        for name in DISTRIBUTED_ONLY_FIELDS:
            if name in body:
                report.error(
                    DISTRIBUTED_ONLY,
                    f"'{name}' only works in a DISTRIBUTED Map, and this Map is INLINE: set "
                    f'{key}.ProcessorConfig to {{"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}, '
                    "or remove it",
                    (*loc, name),
                )
    return child_express


def _needs_fields(
    report: Report, holder: Mapping[str, Any], owner: Loc, params_key: str, fields: tuple[str, ...], what: str
) -> None:
    """Report when the reader/writer parameters lack one of ``fields`` (``X`` or ``X.$`` both count).

    Parameters written under the other language's name (reported by ``checks_state``) are still read.
    """
    key = next((k for k in (params_key, "Parameters", "Arguments") if k in holder), None)
    if key is None:
        report.error(MISSING, f"{what} needs '{params_key}' with {' and '.join(fields)}", owner)
        return
    params = holder[key]
    if jsonata_body(params) is not None or not isinstance(params, Mapping):
        return  # a whole-object expression, or a type error the schema reports
    for name in fields:
        if name not in params and f"{name}.$" not in params:
            report.error(MISSING, f"{what} needs '{name}' in {key}", (*owner, key))


def _check_reader(report: Report, reader: Mapping[str, Any], loc: Loc, params_key: str) -> None:
    resource = reader.get("Resource")
    match = _READER.match(resource) if isinstance(resource, str) else None
    if isinstance(resource, str) and match is None:
        report.error(
            SCHEMA,
            f'unknown ItemReader Resource {resource!r}: use "arn:aws:states:::s3:getObject" (one object) or '
            '"arn:aws:states:::s3:listObjectsV2" (the objects under a prefix)',
            (*loc, "Resource"),
        )
    kind = match.group(1) if match else None
    config_loc = (*loc, "ReaderConfig")
    config = as_mapping(reader.get("ReaderConfig"))
    if "ReaderConfig" in reader and config is None:
        return
    config = config or {}
    manifest = config.get("ManifestType")
    exclusive(report, config, config_loc, "MaxItems", "MaxItemsPath")
    _check_csv(report, config, config_loc)
    if manifest == "S3_INVENTORY" and "InputType" in config:
        report.error(
            SCHEMA,
            "an S3_INVENTORY manifest must not set InputType (inventory files are read as CSV): remove it",
            (*config_loc, "InputType"),
        )
    where = config_loc if "ReaderConfig" in reader else loc
    if kind == "getObject":
        if "InputType" not in config and manifest != "S3_INVENTORY":
            report.error(
                MISSING,
                "an s3:getObject reader needs ReaderConfig.InputType: CSV, JSON, JSONL, PARQUET or MANIFEST",
                where,
            )
        _needs_fields(report, reader, loc, params_key, ("Bucket", "Key"), "an s3:getObject reader")
    elif kind == "listObjectsV2":
        _needs_fields(report, reader, loc, params_key, ("Bucket",), "an s3:listObjectsV2 reader")
    if config.get("Transformation") == "LOAD_AND_FLATTEN":
        if kind == "getObject":
            report.error(
                SCHEMA,
                "Transformation LOAD_AND_FLATTEN works only with the s3:listObjectsV2 reader (it loads each listed "
                "object): use that Resource, or remove the Transformation",
                (*config_loc, "Transformation"),
            )
        elif "InputType" not in config:
            report.error(
                MISSING,
                "Transformation LOAD_AND_FLATTEN needs InputType: the format of the listed objects",
                config_loc,
            )


def _check_csv(report: Report, config: Mapping[str, Any], config_loc: Loc) -> None:
    input_type = config.get("InputType")
    if "CSVHeaders" in config and config.get("CSVHeaderLocation") != "GIVEN":
        report.error(
            SCHEMA,
            'CSVHeaders is used only with "CSVHeaderLocation": "GIVEN" (with FIRST_ROW the header is read from '
            "the file): set CSVHeaderLocation to GIVEN, or remove CSVHeaders",
            (*config_loc, "CSVHeaders"),
        )
    if config.get("CSVHeaderLocation") == "GIVEN" and "CSVHeaders" not in config:
        report.error(MISSING, '"CSVHeaderLocation": "GIVEN" needs \'CSVHeaders\': the column names', config_loc)
    for name in ("CSVDelimiter", "CSVHeaderLocation"):
        if name in config and input_type not in ("CSV", "MANIFEST"):
            report.error(
                SCHEMA,
                f"{name} applies only to InputType CSV or MANIFEST, and InputType is {_shown(input_type)}",
                (*config_loc, name),
            )


def _shown(value: Any) -> str:
    return "not set" if value is None else repr(value)


def _check_batcher(report: Report, batcher: Mapping[str, Any], loc: Loc) -> None:
    exclusive(report, batcher, loc, "MaxItemsPerBatch", "MaxItemsPerBatchPath")
    exclusive(report, batcher, loc, "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath")
    limits = ("MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath")
    if not any(name in batcher for name in limits):
        report.error(
            MISSING,
            "an ItemBatcher needs a batch limit: MaxItemsPerBatch (or MaxItemsPerBatchPath) and/or "
            "MaxInputBytesPerBatch (or MaxInputBytesPerBatchPath)",
            loc,
        )
    size = batcher.get("MaxInputBytesPerBatch")
    if is_int(size) and size > MAX_BATCH_BYTES:
        report.error(
            SCHEMA,
            f"MaxInputBytesPerBatch can be at most {MAX_BATCH_BYTES} (256 KiB, the child input limit), got {size}",
            (*loc, "MaxInputBytesPerBatch"),
        )


def _check_writer(report: Report, writer: Mapping[str, Any], loc: Loc, params_key: str) -> None:
    if not writer:
        report.error(
            MISSING,
            "ResultWriter can't be empty: give WriterConfig (format the output), Resource "
            '"arn:aws:states:::s3:putObject" with Parameters {Bucket, Prefix} (export to S3), or all three',
            loc,
        )
        return
    resource = writer.get("Resource")
    if isinstance(resource, str) and not _WRITER.match(resource):
        report.error(
            SCHEMA,
            f'unknown ResultWriter Resource {resource!r}: the only one is "arn:aws:states:::s3:putObject"',
            (*loc, "Resource"),
        )
    if "Resource" in writer:
        _needs_fields(report, writer, loc, params_key, ("Bucket",), "a ResultWriter that exports")
    elif "Parameters" in writer or "Arguments" in writer:
        report.error(
            MISSING,
            f"a ResultWriter with {params_key} needs 'Resource': \"arn:aws:states:::s3:putObject\"",
            loc,
        )


def _check_label(report: Report, label: str, loc: Loc) -> None:
    if not label:
        report.error(INVALID_LABEL, "Label can't be empty: remove it to get a generated label", loc)
        return
    if len(label) > MAX_LABEL:
        report.error(INVALID_LABEL, f"Label is {len(label)} characters long; the limit is {MAX_LABEL}", loc)
    bad = sorted(set(_LABEL_FORBIDDEN.findall(label)))
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        report.error(
            INVALID_LABEL,
            f"Label contains characters AWS forbids ({shown}): no whitespace, control characters or "
            '? * < > { } [ ] \\ : ; , | ^ ~ $ # % & ` "',
            loc,
        )
