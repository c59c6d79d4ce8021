"""Check what the demo wrote back to S3 (``python -m examples.demo.verify [--key KEY]``).

Reads the ResultWriter's ``manifest.json`` (the newest one under ``s3://dmap-results/demo/`` unless a
key is given), then every result file it lists, and checks them against the demo data: one
SUCCEEDED record per valid order with the right total, one FAILED record (Error ``InvalidOrder``) per
invalid order, and nothing PENDING. Used by ``scripts/demo_local.py`` and by hand after
``docker compose up demo``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from .seed import ORDERS_FILE, RESULTS_BUCKET, s3_client

logger = logging.getLogger(__name__)
PREFIX = "demo/"


class DemoCheckFailed(Exception):
    """The results in S3 do not match the demo data."""


@dataclass
class Summary:
    """What :func:`verify` found."""

    manifest_key: str
    map_run_arn: str
    succeeded: int
    failed: int
    pending: int
    workers: set[str] = field(default_factory=set)


def expected_orders() -> tuple[dict[str, float], set[str]]:
    """The demo data's valid orders (id -> total with tax) and invalid order ids."""
    valid: dict[str, float] = {}
    invalid: set[str] = set()
    for line in ORDERS_FILE.read_text("utf-8").splitlines():
        order = json.loads(line)
        if any(item["qty"] <= 0 for item in order["lines"]):
            invalid.add(order["id"])
            continue
        subtotal = round(sum(item["qty"] * item["price"] for item in order["lines"]), 2)
        valid[order["id"]] = round(subtotal + round(subtotal * 0.2, 2), 2)
    return valid, invalid


def newest_manifest(client: Any) -> str:
    """The key of the most recent ``demo/<map-run-id>/manifest.json`` in the results bucket."""
    newest: tuple[Any, str] | None = None
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=RESULTS_BUCKET, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/manifest.json") and (newest is None or obj["LastModified"] > newest[0]):
                newest = (obj["LastModified"], obj["Key"])
    if newest is None:
        raise DemoCheckFailed(f"no manifest.json under s3://{RESULTS_BUCKET}/{PREFIX}")
    return newest[1]


def _read_json(client: Any, key: str) -> Any:
    return json.loads(client.get_object(Bucket=RESULTS_BUCKET, Key=key)["Body"].read())


def _records(client: Any, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for entry in files:
        records.extend(_read_json(client, entry["Key"]))
    return records


def verify(client: Any, manifest_key: str | None = None) -> Summary:
    """Check the demo's result files against its data.

    Args:
        client: A boto3 S3 client.
        manifest_key: The ``manifest.json`` key; default the newest under ``demo/``.

    Returns:
        The counts found.

    Raises:
        DemoCheckFailed: A file is missing or a record does not match.
    """
    key = manifest_key or newest_manifest(client)
    manifest = _read_json(client, key)
    if manifest.get("DestinationBucket") != RESULTS_BUCKET or "ResultFiles" not in manifest:
        raise DemoCheckFailed(f"unexpected manifest.json: {manifest}")
    files = manifest["ResultFiles"]
    succeeded = _records(client, files.get("SUCCEEDED", []))
    failed = _records(client, files.get("FAILED", []))
    pending = _records(client, files.get("PENDING", []))
    valid, invalid = expected_orders()
    totals = {}
    workers = set()
    for record in succeeded:
        output = json.loads(record["Output"])
        totals[output["order"]] = output["total"]
        workers.add(output["worker"])
    if totals != valid:
        missing = sorted(set(valid) - set(totals))
        wrong = sorted(k for k in set(valid) & set(totals) if totals[k] != valid[k])
        raise DemoCheckFailed(
            f"the SUCCEEDED files hold {len(succeeded)} records for {len(valid)} valid orders: "
            f"{len(missing)} missing (e.g. {missing[:5]}), {len(wrong)} with a wrong total (e.g. {wrong[:5]})"
        )
    failed_ids = {json.loads(r["Input"])["order"]["id"] for r in failed if r.get("Error") == "InvalidOrder"}
    if failed_ids != invalid or len(failed) != len(invalid):
        raise DemoCheckFailed(f"FAILED records {sorted(failed_ids)} do not match the invalid orders {sorted(invalid)}")
    if pending:
        raise DemoCheckFailed(f"{len(pending)} PENDING records: the Map Run did not finish")
    return Summary(key, str(manifest.get("MapRunArn")), len(succeeded), len(failed), len(pending), workers)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: exit 0 if the results match, 1 with the reason if not."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", help="The manifest.json key (default: the newest under demo/).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = verify(s3_client(), args.key)
    except DemoCheckFailed as exc:
        logger.error("demo results are wrong: %s", exc)
        sys.exit(1)
    logger.info(
        "s3://%s/%s: %d succeeded, %d failed (InvalidOrder, tolerated), %d pending; %d worker process(es)",
        RESULTS_BUCKET,
        summary.manifest_key,
        summary.succeeded,
        summary.failed,
        summary.pending,
        len(summary.workers),
    )


if __name__ == "__main__":
    main()
